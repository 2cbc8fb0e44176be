//go:build linux || darwin

package rendezvous

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/epoll"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/sourcegraph/jsonrpc2"
	"golang.org/x/time/rate"
)

// client is one rendezvous connection, owned by one event loop (loop.go).
type client struct {
	srv     *Server
	loop    *loop
	fd      int
	remote  netip.AddrPort
	local   netip.AddrPort
	tcp     *net.TCPConn // a TLS client's TCP connection (fd is its plaintext end); nil otherwise
	limiter *rate.Limiter
	waiting atomic.Int32 // slow requests (probes) in flight

	// The loop goroutine's own state.
	in       []byte    // an incomplete line, or what follows a pause
	lastRead time.Time // for the idle timeout
	resumeAt time.Time
	paused   bool // reading paused for the request rate
	reserved bool // the next request already took its rate token
	gone     bool // closed by the loop
	spoke    bool // sent its first bytes (which may say it is a browser)

	// io guards writing: any goroutine may send to the client.
	io         sync.Mutex
	out        []byte // bytes the socket would not take yet
	closed     bool   // no more writes (shut down, or closed by the loop)
	wantIn     bool
	events     uint32 // what the epoll set watches for the client
	deferred   bool   // out waits for the loop's batch to end, not for the socket
	dirty      bool   // on its loop's list to flush after the batch; guarded by loop.dmu
	registered bool

	// Session state; guarded by srv.mu.
	owned    int              // sessions it created and still holds
	sessions map[string]*pair // id -> its place there; nil until the first session
	probeKey string           // names its probe connections (probed.go); "" until its hello
	probed   []netip.Addr     // addresses its probe connections came from (probed.go)
}

// updateEpollLocked makes the epoll set watch what the client needs:
// input unless paused, output while bytes wait. c.io is held.
func (c *client) updateEpollLocked() error {
	var ev uint32
	if c.wantIn {
		ev |= epoll.In | epoll.RdHup
	}
	if len(c.out) > 0 {
		ev |= epoll.Out
	}
	if ev == c.events && c.registered == (ev != 0) {
		return nil
	}
	var err error
	switch {
	case ev == 0:
		err = c.loop.set.Ctl(epoll.CtlDel, c.fd, 0)
		c.registered = false
	case !c.registered:
		err = c.loop.set.Ctl(epoll.CtlAdd, c.fd, ev)
		c.registered = err == nil
	default:
		err = c.loop.set.Ctl(epoll.CtlMod, c.fd, ev)
	}
	c.events = ev
	return err
}

// send writes b to the client, or buffers what the socket will not take
// yet; a client with more than maxPending bytes unread is cut off.
func (c *client) send(b []byte) {
	c.io.Lock()
	defer c.io.Unlock()
	if c.closed {
		return
	}
	if len(c.out) == 0 && c.loop.deferFlush(c) {
		c.deferred = true // written after the loop's batch
	}
	if len(c.out) == 0 && !c.deferred {
		n, err := writeAll(c.fd, b)
		b = b[n:]
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			c.shutdownLocked()
			return
		}
		if len(b) == 0 {
			return
		}
	}
	if len(c.out)+len(b) > maxPending {
		c.srv.Stats.Limited.Add(1)
		c.shutdownLocked()
		return
	}
	c.out = append(c.out, b...)
	if !c.deferred {
		_ = c.updateEpollLocked() // watch for the socket to drain
	}
}

// flush writes buffered bytes once the socket drains (the loop calls it).
func (c *client) flush() {
	c.io.Lock()
	defer c.io.Unlock()
	c.deferred = false
	if c.closed || len(c.out) == 0 {
		return
	}
	n, err := writeAll(c.fd, c.out)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		c.shutdownLocked()
		return
	}
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	_ = c.updateEpollLocked()
}

func writeAll(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := syscall.Write(fd, b[done:])
		if n > 0 {
			done += n
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// shutdownLocked ends the connection from any goroutine: the socket is
// shut down (its loop sees the hang-up and closes the descriptor).
func (c *client) shutdownLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.out = nil
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	c.wantIn = true // the loop must see the hang-up even if paused
	_ = c.updateEpollLocked()
}

// wireRequest is a JSON-RPC 2.0 request or notification (no id).
type wireRequest struct {
	ID     json.RawMessage  `json:"id"`
	Method string           `json:"method"`
	Params *json.RawMessage `json:"params"`
}

// encoder is a pooled buffer with its JSON encoder.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// message encodes head, then key and v as a JSON member, as one line.
func (c *client) message(head []byte, key string, v any) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf.Reset()
	e.buf.Write(head)
	e.buf.WriteString(key)
	if err := e.enc.Encode(v); err != nil {
		c.srv.log.Error("encoding a reply failed", "err", err)
		return
	}
	e.buf.Truncate(e.buf.Len() - 1) // Encode's newline
	e.buf.WriteString("}\n")
	c.send(e.buf.Bytes())
	if e.buf.Cap() > 64<<10 {
		e.buf = bytes.Buffer{} // do not pool a rare large buffer
	}
}

// reply answers request id with a result or an error.
func (c *client) reply(id json.RawMessage, res any, err *jsonrpc2.Error) {
	head := append(append([]byte(`{"jsonrpc":"2.0","id":`), id...), ',')
	if err != nil {
		c.message(head, `"error":`, err)
		return
	}
	c.message(head, `"result":`, res)
}

// notify sends the client a notification.
func (c *client) notify(method string, params any) {
	head := append(append([]byte(`{"jsonrpc":"2.0","method":`), mustQuote(method)...), ',')
	c.message(head, `"params":`, params)
}

func mustQuote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// lineVerdict is what handling a line asks of the loop.
type lineVerdict int

const (
	lineDone  lineVerdict = iota
	lineAgain             // paused for the rate: handle this line again on resume
	lineClose             // malformed or abusive: close the connection
)

// handleLine handles one request line in the loop. The request rate is
// applied before any work: a client over it is paused (its later bytes
// wait in its socket), and one so far over that it would wait longer than
// maxPace is cut off.
func (c *client) handleLine(line []byte) lineVerdict {
	var req wireRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Method == "" {
		c.srv.Stats.Malformed.Add(1)
		return lineClose
	}
	notif := len(req.ID) == 0 || string(req.ID) == "null"
	if notif && !notifications[req.Method] {
		return lineDone // nothing to do, nobody to answer
	}
	if v, ok := c.pace(); !ok {
		return v
	}
	if notif {
		_, _ = c.handle(context.Background(), &req) // no answer, as asked
		return lineDone
	}
	if !slow[req.Method] {
		res, err := c.handle(context.Background(), &req)
		c.reply(req.ID, res, err)
		return lineDone
	}
	if c.waiting.Add(1) > slowSlots {
		c.waiting.Add(-1)
		c.srv.Stats.Limited.Add(1)
		c.reply(req.ID, nil, rpcErr(CodeLimit, "too many requests waiting; wait for the answers"))
		return lineDone
	}
	go func() {
		defer c.waiting.Add(-1)
		res, err := c.handle(context.Background(), &req)
		c.reply(req.ID, res, err)
	}()
	return lineDone
}

// pace takes a rate token for the next request, or pauses the client.
func (c *client) pace() (lineVerdict, bool) {
	if c.reserved {
		c.reserved = false
		return lineDone, true
	}
	r := c.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return lineDone, true
	}
	c.srv.Stats.Limited.Add(1)
	if !r.OK() || d > maxPace {
		r.Cancel()
		return lineClose, false
	}
	c.reserved = true
	c.loop.pause(c, time.Now().Add(d))
	return lineAgain, false
}

// notifications are the methods a client may also send without an id,
// when it needs no answer.
var notifications = map[string]bool{MethodLeave: true}

// slow are the methods that may wait seconds on the network: they run
// beside the loop, at most slowSlots at once per client.
var slow = map[string]bool{MethodProbeDial: true, MethodConnectBack: true}

// minRTT is the kernel's minimum round trip of c's TCP connection.
func (c *client) minRTT() (time.Duration, bool) {
	if c.tcp == nil {
		return sockopt.MinRTT(c.fd)
	}
	raw, err := c.tcp.SyscallConn()
	if err != nil {
		return 0, false
	}
	var rtt time.Duration
	var ok bool
	if raw.Control(func(fd uintptr) { rtt, ok = sockopt.MinRTT(int(fd)) }) != nil {
		return 0, false
	}
	return rtt, ok
}
