package rendezvous

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
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

// busy is the CodeBusy error with a retry hint between busyRetryMin and
// busyRetryMax.
func (s *Server) busy() *jsonrpc2.Error {
	s.Stats.Busy.Add(1)
	hint := busyRetryMin + time.Duration(rand.Int64N(int64(busyRetryMax-busyRetryMin)))
	ms := int(hint / time.Millisecond)
	data := json.RawMessage(fmt.Sprintf(`{"retry_after_ms":%d}`, ms))
	return &jsonrpc2.Error{Code: CodeBusy, Message: fmt.Sprintf("server busy; retry in %d ms", ms), Data: &data}
}
