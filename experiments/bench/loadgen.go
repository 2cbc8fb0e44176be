package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/epoll"
	"github.com/machsend/machsend/rendezvous"
)

// The load generator speaks the rendezvous protocol with as little work
// as it can (pre-formatted requests, one reader per connection, no
// library), so that on a shared machine as much CPU as possible is left
// to the server being measured. It runs in its own process (experiment
// loadgen), driven by RunLoad.

// genConn is one registered client of the generator. Replies and
// notifications are handled by callbacks in the connection's reader
// goroutine, which sends the session's next request at once: a message
// costs one goroutine wake-up, and a session no goroutine of its own.
type genConn struct {
	local netip.AddrPort
	in    []byte // an incomplete line; its loop's only

	wmu sync.Mutex // serialises writes; guards fd
	fd  int        // owned by a genLoop; -1 once closed

	mu    sync.Mutex
	next  uint64
	calls map[uint64]func(genReply)
	punch map[string]func() // session -> punch.go arrived
	err   error             // set when the connection ended
}

// genReply is a reply: a result, or an error (code and message; code -1
// when the connection ended first).
type genReply struct {
	result json.RawMessage
	code   int64
	msg    string
}

func (r genReply) error() error {
	if r.code == 0 {
		return nil
	}
	return &rpcError{r.code, r.msg}
}

// genMessage is what the server sends: a reply (id) or a notification.
type genMessage struct {
	ID     *uint64         `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func dialGen(ctx context.Context, loops *genLoops, server netip.AddrPort) (*genConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", server.String())
	if err != nil {
		return nil, err
	}
	g := &genConn{local: netip.MustParseAddrPort(conn.LocalAddr().String()),
		calls: map[uint64]func(genReply){}, punch: map[string]func(){}}
	if g.fd, err = epoll.Detach(conn); err != nil {
		return nil, err
	}
	if err := loops.add(g); err != nil {
		syscall.Close(g.fd)
		return nil, err
	}
	done := make(chan genReply, 1)
	g.call(rendezvous.MethodHello, fmt.Appendf(nil, `{"version":%d}`, rendezvous.Version), func(r genReply) { done <- r })
	select {
	case r := <-done:
		if err := r.error(); err != nil {
			return nil, fmt.Errorf("hello: %w", err)
		}
		return g, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("hello: %w", ctx.Err())
	}
}

func (g *genConn) deliver(m *genMessage) {
	var fn func()
	g.mu.Lock()
	switch {
	case m.Method == rendezvous.NotifyPunch:
		var p struct {
			Session string `json:"session"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			fn = g.punch[p.Session]
			delete(g.punch, p.Session)
		}
	case m.ID != nil:
		cb := g.calls[*m.ID]
		delete(g.calls, *m.ID)
		if cb != nil {
			r := genReply{result: m.Result}
			if m.Error != nil {
				r.code, r.msg = m.Error.Code, m.Error.Message
			}
			fn = func() { cb(r) }
		}
	}
	g.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// expect calls fn when session's punch.go arrives.
func (g *genConn) expect(session string, fn func()) {
	g.mu.Lock()
	g.punch[session] = fn
	g.mu.Unlock()
}

func (g *genConn) forget(session string) {
	g.mu.Lock()
	delete(g.punch, session)
	g.mu.Unlock()
}

// rpcError is a server's error reply.
type rpcError struct {
	code int64
	msg  string
}

func (e *rpcError) Error() string { return fmt.Sprintf("%s (code %d)", e.msg, e.code) }

// call sends one request (params pre-encoded); fn gets its reply, in the
// reader goroutine (or at once, with an error, if it cannot be sent).
func (g *genConn) call(method string, params []byte, fn func(genReply)) {
	g.mu.Lock()
	if g.err != nil {
		err := g.err
		g.mu.Unlock()
		fn(genReply{code: -1, msg: err.Error()})
		return
	}
	g.next++
	id := g.next
	g.calls[id] = fn
	g.mu.Unlock()
	line := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", id, method, params)
	if err := g.write(line); err != nil {
		g.mu.Lock()
		_, pending := g.calls[id]
		delete(g.calls, id)
		g.mu.Unlock()
		if pending {
			fn(genReply{code: -1, msg: err.Error()})
		}
	}
}

// notify sends a notification (no id, no answer).
func (g *genConn) notify(method string, params []byte) error {
	return g.write(fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%q,"params":%s}`+"\n", method, params))
}

// sessionOutcome is how one offered session ended.
type sessionOutcome struct {
	rejected bool // refused with "busy" at create: never admitted
	admitted bool // create succeeded
	err      error
	coord    time.Duration // second ready -> both punch.go
	total    time.Duration // create -> both punch.go
}

// sessionTimeout is when an offered session counts as failed.
const sessionTimeout = 5 * time.Second

// genSession is one offered session between a and b: create, join, both
// ready, both notified, then the creator leaves. Each step is sent from
// the callback of the one before.
type genSession struct {
	a, b   *genConn
	done   func(sessionOutcome)
	t0, t1 time.Time
	sid    string
	timer  *time.Timer

	mu       sync.Mutex
	o        sessionOutcome
	punches  int
	finished bool
}

func startSession(a, b *genConn, done func(sessionOutcome)) {
	s := &genSession{a: a, b: b, done: done, t0: time.Now()}
	s.timer = time.AfterFunc(sessionTimeout, func() { s.finish(fmt.Errorf("no answer within %v", sessionTimeout)) })
	a.call(rendezvous.MethodCreate, []byte(`{}`), s.created)
}

// finish ends the session once, with err (nil: completed).
func (s *genSession) finish(err error) {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	s.finished = true
	if err != nil {
		s.o.err = err
	}
	o := s.o
	s.mu.Unlock()
	s.timer.Stop()
	if s.sid != "" {
		s.a.forget(s.sid)
		s.b.forget(s.sid)
	}
	s.done(o)
}

func (s *genSession) created(r genReply) {
	var re *rpcError
	if err := r.error(); errors.As(err, &re) && re.code == rendezvous.CodeBusy {
		s.mu.Lock()
		s.o.rejected = true
		s.mu.Unlock()
		s.finish(nil)
		return
	} else if err != nil {
		s.finish(fmt.Errorf("create: %w", err))
		return
	}
	var cr struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal(r.result, &cr); err != nil {
		s.finish(fmt.Errorf("create: %w", err))
		return
	}
	s.mu.Lock()
	s.o.admitted, s.sid = true, cr.Session
	s.mu.Unlock()
	s.a.expect(cr.Session, s.punched)
	s.b.expect(cr.Session, s.punched)
	s.b.call(rendezvous.MethodJoin, s.sessionParams(), s.step("join", func() {
		s.a.call(rendezvous.MethodReady, s.ready(s.a), s.step("ready", func() {
			s.mu.Lock()
			s.t1 = time.Now()
			s.mu.Unlock()
			s.b.call(rendezvous.MethodReady, s.ready(s.b), s.step("ready", func() {}))
		}))
	}))
}

// step is a callback that ends the session on an error, else runs next.
func (s *genSession) step(name string, next func()) func(genReply) {
	return func(r genReply) {
		if err := r.error(); err != nil {
			s.finish(fmt.Errorf("%s: %w", name, err))
			return
		}
		next()
	}
}

// punched counts punch.go notifications; with both in, the creator leaves.
func (s *genSession) punched() {
	s.mu.Lock()
	s.punches++
	both := s.punches == 2
	if both {
		s.o.coord, s.o.total = time.Since(s.t1), time.Since(s.t0)
	}
	s.mu.Unlock()
	if both {
		// The creator leaves with a notification (no answer to wait for).
		if err := s.a.notify(rendezvous.MethodLeave, s.sessionParams()); err != nil {
			s.finish(fmt.Errorf("leave: %w", err))
			return
		}
		s.finish(nil)
	}
}

func (s *genSession) sessionParams() []byte { return fmt.Appendf(nil, `{"session":%q}`, s.sid) }

func (s *genSession) ready(g *genConn) []byte {
	return fmt.Appendf(nil, `{"session":%q,"attempt":{"method":"machsend","round":0},"candidates":{"public":%q}}`, s.sid, g.local)
}

// GenConfig configures the generator process.
type GenConfig struct {
	Servers []netip.AddrPort
	Clients int // per server
	Rates   []float64
	Step    time.Duration
}

// GenEvent is one line the generator writes: "registered" (then it waits
// for a line on its input), "step-start", "step" (with its figures), "done".
type GenEvent struct {
	Event   string    `json:"event"`
	Clients int       `json:"clients,omitempty"`
	Rate    float64   `json:"rate,omitempty"`
	Step    *LoadStep `json:"step,omitempty"`
}

// RunLoadGen is the generator process: it registers cfg.Clients clients
// with each server, says so, waits for a line on in, then offers sessions
// at each rate for cfg.Step, reporting each step on out.
func RunLoadGen(ctx context.Context, cfg GenConfig, in io.Reader, out io.Writer) error {
	// The generator's garbage is short-lived and its memory is not
	// measured: collect less often, to leave the CPU to the server.
	debug.SetGCPercent(400)
	enc := json.NewEncoder(out)
	loops, err := newGenLoops()
	if err != nil {
		return err
	}
	defer loops.close()
	perServer := make([][]*genConn, len(cfg.Servers))
	for i, s := range cfg.Servers {
		cs, err := registerGen(ctx, loops, s, cfg.Clients)
		perServer[i] = cs
		if err != nil {
			return fmt.Errorf("registering clients with %s: %w", s, err)
		}
	}
	if err := enc.Encode(GenEvent{Event: "registered", Clients: cfg.Clients * len(cfg.Servers)}); err != nil {
		return err
	}
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the go-ahead: %w", err)
	}
	pairs := pairUp(perServer)
	for _, r := range cfg.Rates {
		if err := enc.Encode(GenEvent{Event: "step-start", Rate: r}); err != nil {
			return err
		}
		st := runStep(pairs, r, cfg.Step)
		st.Servers = len(cfg.Servers)
		if err := enc.Encode(GenEvent{Event: "step", Step: st}); err != nil {
			return err
		}
	}
	return enc.Encode(GenEvent{Event: "done"})
}

// registerGen connects n clients to server, 64 at a time, each saying hello.
func registerGen(ctx context.Context, loops *genLoops, server netip.AddrPort, n int) ([]*genConn, error) {
	cs := make([]*genConn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cs[i], errs[i] = dialGen(ctx, loops, server)
		}()
	}
	wg.Wait()
	kept := cs[:0]
	var first error
	failed := 0
	for i, c := range cs {
		if c != nil {
			kept = append(kept, c)
		}
		if errs[i] != nil {
			failed++
			first = cmp.Or(first, errs[i])
		}
	}
	if first != nil {
		return kept, fmt.Errorf("%d of %d clients failed, the first with: %w", failed, n, first)
	}
	return kept, nil
}

// pairUp pairs clients of the same server (a link names its server), the
// servers' pairs interleaved.
func pairUp(perServer [][]*genConn) [][2]*genConn {
	var pairs [][2]*genConn
	for i := 0; ; i++ {
		added := false
		for _, cs := range perServer {
			if 2*i+1 < len(cs) {
				pairs = append(pairs, [2]*genConn{cs[2*i], cs[2*i+1]})
				added = true
			}
		}
		if !added {
			return pairs
		}
	}
}

// runStep offers sessions at rate per second for d (open loop: a session
// starts on schedule whether or not earlier ones finished) and waits for
// them all.
func runStep(pairs [][2]*genConn, rate float64, d time.Duration) *LoadStep {
	n := int(rate * d.Seconds())
	outcomes := make([]sessionOutcome, n)
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if w := time.Until(due); w > 500*time.Microsecond {
			time.Sleep(w)
		}
		p := pairs[i%len(pairs)]
		wg.Add(1)
		startSession(p[0], p[1], func(o sessionOutcome) {
			outcomes[i] = o
			wg.Done()
		})
	}
	offeredFor := time.Since(start)
	wg.Wait()
	elapsed := time.Since(start)
	st := &LoadStep{TargetRate: rate, Offered: n, OfferedRate: float64(n) / max(offeredFor.Seconds(), d.Seconds()),
		Seconds: elapsed.Seconds(), GenCPUSeconds: selfCPU() - cpu0}
	st.summarise(outcomes)
	return st
}

// selfCPU is this process's CPU time so far (user and system), seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
