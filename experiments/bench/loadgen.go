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
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/rendezvous"
)

// The load generator speaks the rendezvous protocol with as little work
// as it can (pre-formatted requests, one reader per connection, no
// library), so that on a shared machine as much CPU as possible is left
// to the server being measured. It runs in its own process (experiment
// loadgen), driven by RunLoad.

// genConn is one registered client of the generator.
type genConn struct {
	conn  net.Conn
	local netip.AddrPort

	wmu sync.Mutex // serialises writes

	mu    sync.Mutex
	next  uint64
	calls map[uint64]chan genReply
	punch map[string]chan struct{} // session -> punch.go arrived
	err   error                    // set when the connection ended
}

type genReply struct {
	result json.RawMessage
	code   int64
	msg    string
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

func dialGen(ctx context.Context, server netip.AddrPort) (*genConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", server.String())
	if err != nil {
		return nil, err
	}
	g := &genConn{conn: conn, local: netip.MustParseAddrPort(conn.LocalAddr().String()),
		calls: map[uint64]chan genReply{}, punch: map[string]chan struct{}{}}
	go g.read()
	if _, err := g.call(ctx, rendezvous.MethodHello, fmt.Appendf(nil, `{"version":%d}`, rendezvous.Version)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return g, nil
}

// read delivers replies and punch.go notifications until the connection ends.
func (g *genConn) read() {
	sc := bufio.NewScanner(g.conn)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		var m genMessage
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		g.deliver(&m)
	}
	g.mu.Lock()
	g.err = fmt.Errorf("connection ended: %v", sc.Err())
	for id, ch := range g.calls {
		ch <- genReply{code: -1, msg: g.err.Error()}
		delete(g.calls, id)
	}
	g.mu.Unlock()
}

func (g *genConn) deliver(m *genMessage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case m.Method == rendezvous.NotifyPunch:
		var p struct {
			Session string `json:"session"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			if ch := g.punch[p.Session]; ch != nil {
				ch <- struct{}{}
				delete(g.punch, p.Session)
			}
		}
	case m.ID != nil:
		ch := g.calls[*m.ID]
		if ch == nil {
			return
		}
		delete(g.calls, *m.ID)
		r := genReply{result: m.Result}
		if m.Error != nil {
			r.code, r.msg = m.Error.Code, m.Error.Message
		}
		ch <- r
	}
}

// expect arms a wait for session's punch.go.
func (g *genConn) expect(session string) chan struct{} {
	ch := make(chan struct{}, 1)
	g.mu.Lock()
	g.punch[session] = ch
	g.mu.Unlock()
	return ch
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

// call sends one request (params pre-encoded) and waits for its reply.
func (g *genConn) call(ctx context.Context, method string, params []byte) (json.RawMessage, error) {
	ch := make(chan genReply, 1)
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return nil, g.err
	}
	g.next++
	id := g.next
	g.calls[id] = ch
	g.mu.Unlock()
	line := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", id, method, params)
	g.wmu.Lock()
	_, err := g.conn.Write(line)
	g.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.code != 0 {
			return nil, &rpcError{r.code, r.msg}
		}
		return r.result, nil
	case <-ctx.Done():
		g.mu.Lock()
		delete(g.calls, id)
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// sessionOutcome is how one offered session ended.
type sessionOutcome struct {
	rejected bool // refused with "busy" at create: never admitted
	admitted bool // create succeeded
	err      error
	coord    time.Duration // second ready -> both punch.go
	total    time.Duration // create -> both punch.go
}

// runSession offers one session between a and b: create, join, both
// ready, both notified, then the creator leaves.
func runSession(ctx context.Context, a, b *genConn) (o sessionOutcome) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t0 := time.Now()
	res, err := a.call(ctx, rendezvous.MethodCreate, []byte(`{}`))
	var re *rpcError
	if errors.As(err, &re) && re.code == rendezvous.CodeBusy {
		return sessionOutcome{rejected: true}
	}
	if err != nil {
		return sessionOutcome{err: fmt.Errorf("create: %w", err)}
	}
	var cr struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal(res, &cr); err != nil {
		return sessionOutcome{err: fmt.Errorf("create: %w", err)}
	}
	o = sessionOutcome{admitted: true}
	sid := fmt.Appendf(nil, `{"session":%q}`, cr.Session)
	if _, err := b.call(ctx, rendezvous.MethodJoin, sid); err != nil {
		o.err = fmt.Errorf("join: %w", err)
		return o
	}
	wa, wb := a.expect(cr.Session), b.expect(cr.Session)
	defer a.forget(cr.Session)
	defer b.forget(cr.Session)
	ready := func(g *genConn) []byte {
		return fmt.Appendf(nil, `{"session":%q,"attempt":{"method":"machsend","round":0},"candidates":{"public":%q}}`, cr.Session, g.local)
	}
	if _, err := a.call(ctx, rendezvous.MethodReady, ready(a)); err != nil {
		o.err = fmt.Errorf("ready: %w", err)
		return o
	}
	t1 := time.Now()
	if _, err := b.call(ctx, rendezvous.MethodReady, ready(b)); err != nil {
		o.err = fmt.Errorf("ready: %w", err)
		return o
	}
	for _, w := range []chan struct{}{wa, wb} {
		select {
		case <-w:
		case <-ctx.Done():
			o.err = fmt.Errorf("punch.go: %w", ctx.Err())
			return o
		}
	}
	o.coord, o.total = time.Since(t1), time.Since(t0)
	if _, err := a.call(ctx, rendezvous.MethodLeave, sid); err != nil {
		o.err = fmt.Errorf("leave: %w", err)
		return o
	}
	return o
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
	enc := json.NewEncoder(out)
	perServer := make([][]*genConn, len(cfg.Servers))
	defer func() {
		for _, cs := range perServer {
			for _, c := range cs {
				c.conn.Close()
			}
		}
	}()
	for i, s := range cfg.Servers {
		cs, err := registerGen(ctx, s, cfg.Clients)
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
		st := runStep(ctx, pairs, r, cfg.Step)
		st.Servers = len(cfg.Servers)
		if err := enc.Encode(GenEvent{Event: "step", Step: st}); err != nil {
			return err
		}
	}
	return enc.Encode(GenEvent{Event: "done"})
}

// registerGen connects n clients to server, 64 at a time, each saying hello.
func registerGen(ctx context.Context, server netip.AddrPort, n int) ([]*genConn, error) {
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
			cs[i], errs[i] = dialGen(ctx, server)
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
func runStep(ctx context.Context, pairs [][2]*genConn, rate float64, d time.Duration) *LoadStep {
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
		go func() {
			defer wg.Done()
			outcomes[i] = runSession(ctx, p[0], p[1])
		}()
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
