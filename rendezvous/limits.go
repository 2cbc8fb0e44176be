package rendezvous

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// Resource limits. A server reads its file-descriptor limit at start and
// keeps every kind of connection below its share of it, so that no flood
// can make accept fail for good; accept errors (EMFILE among them) are
// met with a growing pause, never with an exit.
const (
	fdReserve      = 128 // descriptors kept for files, logs, the probe sniffer
	clientShare    = 60  // percent of the rest for rendezvous clients
	relayShare     = 30  // percent for relay connections (two per session)
	maxAcceptPause = time.Second
	slowSlots      = 2 // requests that may wait (probes) in flight per client
	defaultPerAddr = 256
	maxPace        = 5 * time.Second // longest a client is held for its request rate
	probeShare     = 5               // percent of the descriptors for probe dials in flight, server-wide
)

// fdLimit is the soft RLIMIT_NOFILE (Go raises it to the hard limit at
// start), or 1024 when it cannot be read.
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 1024
	}
	return int(min(r.Cur, 1<<24))
}

// probeSlot takes one of the server-wide probe-dial slots, or says the
// server is busy (the client may retry; probes are never queued).
func (s *Server) probeSlot() (release func(), err error) {
	select {
	case s.probes <- struct{}{}:
		return func() { <-s.probes }, nil
	default:
		s.Stats.Limited.Add(1)
		return nil, rpcErr(CodeLimit, "server busy with probes; retry in a second")
	}
}

// share is pct percent of the descriptors above the reserve (at least 16).
func share(limit, pct int) int { return max(16, (limit-fdReserve)*pct/100) }

// acceptLoop accepts on ln until it is closed, handing each connection to
// handle; a failing accept (out of descriptors, a network hiccup) pauses,
// doubling up to a second, and tries again.
func acceptLoop(ln net.Listener, onError func(error), handle func(net.Conn)) error {
	pause := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			onError(err)
			time.Sleep(pause)
			pause = min(2*pause, maxAcceptPause)
			continue
		}
		pause = 5 * time.Millisecond
		handle(c)
	}
}

// addrCount counts open connections per source address under a cap.
type addrCount struct {
	mu  sync.Mutex
	n   map[netip.Addr]int
	max int
}

func newAddrCount(max int) *addrCount { return &addrCount{n: map[netip.Addr]int{}, max: max} }

// take counts one more connection from a, if a is under its cap.
func (a *addrCount) take(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[ip] >= a.max {
		return false
	}
	a.n[ip]++
	return true
}

func (a *addrCount) put(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[ip]--; a.n[ip] <= 0 {
		delete(a.n, ip)
	}
}

// boundedHandler runs a client's requests in its connection's read loop,
// so that a client that sends without reading replies stops being read
// (its socket fills, nothing piles up here); the rate limit applies before
// any work. Requests that wait (probes) run beside the loop, at most
// slowSlots at once per client; more are refused.
type boundedHandler struct {
	c     *client
	h     jsonrpc2.Handler
	slots chan struct{}
}

// pace holds a client over its request rate in its read loop, so the
// excess waits in its own socket and costs the server nothing; a client
// so far over that it would wait longer than maxPace is cut off.
func (b *boundedHandler) pace(ctx context.Context, conn *jsonrpc2.Conn) bool {
	r := b.c.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return true
	}
	b.c.srv.Stats.Limited.Add(1)
	if !r.OK() || d > maxPace {
		r.Cancel()
		conn.Close()
		return false
	}
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// slow are the methods that may wait seconds on the network.
var slow = map[string]bool{MethodProbeDial: true, MethodConnectBack: true, MethodJoin: true, MethodReady: true}

func (b *boundedHandler) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Notif {
		return
	}
	if !b.pace(ctx, conn) {
		return
	}
	if !slow[req.Method] {
		b.h.Handle(ctx, conn, req)
		return
	}
	select {
	case b.slots <- struct{}{}:
		go func() {
			defer func() { <-b.slots }()
			b.h.Handle(ctx, conn, req)
		}()
	default:
		b.c.srv.Stats.Limited.Add(1)
		_ = conn.ReplyWithError(ctx, req.ID, rpcErr(CodeLimit, "too many requests waiting; wait for the answers"))
	}
}
