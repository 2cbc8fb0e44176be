package rendezvous

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// startServer runs a server on loopback (primary, secondary on 127.0.0.2 and
// a relay) and returns it with its primary endpoint.
func startServer(t testing.TB, cfg Config) (*Server, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RelayAddr = addrPortOf(rl.Addr())
	cfg.Secondary = addrPortOf(sec.Addr())
	s := NewServer(cfg)
	go s.Serve(ln)
	go s.Serve(sec)
	go s.ServeRelay(rl)
	t.Cleanup(func() { s.Close() })
	return s, addrPortOf(ln.Addr())
}

func dial(t testing.TB, addr netip.AddrPort) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t testing.TB, c *Client, method string) json.RawMessage {
	t.Helper()
	for {
		select {
		case n := <-c.Notifications():
			if n.Method == method {
				return n.Params
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no %s notification", method)
		}
	}
}

func TestHelloObserved(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	r, err := c.Hello(context.Background(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Observed != c.LocalAddr() {
		t.Errorf("observed %s, local %s", r.Observed, c.LocalAddr())
	}
	if !r.Secondary.IsValid() || r.Secondary.Addr() == addr.Addr() || !r.Relay {
		t.Errorf("hello result %+v: want a secondary on another address and the relay", r)
	}
	// Observe from a fixed port twice: the same mapping on loopback.
	m1, p1, err := Observe(context.Background(), addr, netip.MustParseAddrPort("127.0.0.1:0"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	m2, p2, err := Observe(context.Background(), r.Secondary, m1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if m1 != m2 {
		t.Errorf("same local port observed as %s and %s", m1, m2)
	}
}

func TestSessionPunchCoordination(t *testing.T) {
	_, addr := startServer(t, Config{PunchDelay: 50 * time.Millisecond})
	ctx := context.Background()
	a, b := dial(t, addr), dial(t, addr)
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.Session) != 32 {
		t.Fatalf("session id %q is not 128 bits of hex", cr.Session)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	next(t, a, NotifyPeerJoined)
	candA := Candidates{Public: netip.MustParseAddrPort("127.0.0.1:4000")}
	candB := Candidates{Public: netip.MustParseAddrPort("127.0.0.1:5000"), Predicted: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5001")}}
	tests := []struct {
		attempt      AttemptID
		roleA, roleB string
	}{
		{AttemptID{Method: "machsend", Round: 0}, Initiator, Responder},
		{AttemptID{Method: "machsend", Round: 1}, Responder, Initiator},
		{AttemptID{Method: "p2pnat", Round: 0}, Initiator, Responder},
		{AttemptID{Method: "p2pnat", Round: 0, Step: "listening"}, Initiator, Responder},
	}
	for _, tt := range tests {
		t.Run(tt.attempt.String(), func(t *testing.T) {
			if err := a.Ready(ctx, ReadyParams{Session: cr.Session, Attempt: tt.attempt, Candidates: candA}); err != nil {
				t.Fatal(err)
			}
			if err := b.Ready(ctx, ReadyParams{Session: cr.Session, Attempt: tt.attempt, Candidates: candB}); err != nil {
				t.Fatal(err)
			}
			var ga, gb PunchGo
			json.Unmarshal(next(t, a, NotifyPunch), &ga)
			json.Unmarshal(next(t, b, NotifyPunch), &gb)
			if ga.Role != tt.roleA || gb.Role != tt.roleB {
				t.Errorf("roles a=%s b=%s, want %s/%s", ga.Role, gb.Role, tt.roleA, tt.roleB)
			}
			if ga.Peer.Public != candB.Public || len(ga.Peer.Predicted) != 1 || gb.Peer.Public != candA.Public {
				t.Errorf("candidates not exchanged: %+v / %+v", ga.Peer, gb.Peer)
			}
			// 50 ms after the message, each: on loopback the two round
			// trips differ by microseconds, which the millisecond clock
			// may round to one.
			if la, lb := ga.StartAt-ga.ServerTime, gb.StartAt-gb.ServerTime; la < 50 || la > 51 || lb < 50 || lb > 51 {
				t.Errorf("start times %d/%d, server %d", ga.StartAt, gb.StartAt, ga.ServerTime)
			}
		})
	}
	b.Close()
	var ev PeerEvent
	json.Unmarshal(next(t, a, NotifyPeerLeft), &ev)
	if ev.Role != RoleB {
		t.Errorf("peer.left %+v", ev)
	}
}

func TestSessionErrors(t *testing.T) {
	_, addr := startServer(t, Config{MaxSessionsPerClient: 2})
	ctx := context.Background()
	a, b, c := dial(t, addr), dial(t, addr), dial(t, addr)
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"guessed id", func() error { _, err := c.Join(ctx, strings.Repeat("ab", 16), ""); return err }, ErrNoSession},
		{"malformed id", func() error { _, err := c.Join(ctx, "../../etc", ""); return err }, ErrNoSession},
		{"full session", func() error { _, err := c.Join(ctx, cr.Session, ""); return err }, ErrSessionFull},
		{"ready without joining", func() error {
			return c.Ready(ctx, ReadyParams{Session: cr.Session, Attempt: AttemptID{Method: "machsend"}})
		}, ErrNoSession},
		{"relay outside session", func() error { _, err := c.Relay(ctx, cr.Session); return err }, ErrNoSession},
		{"session limit", func() error {
			if _, err := c.Create(ctx, ""); err != nil {
				return err
			}
			if _, err := c.Create(ctx, ""); err != nil {
				return err
			}
			_, err := c.Create(ctx, "")
			return err
		}, ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// The connection that made bad requests still works.
	if _, err := c.Hello(ctx, nil, false); err != nil {
		t.Errorf("client unusable after errors: %v", err)
	}
}

// rawExchange sends raw bytes on a fresh connection and returns what the
// server answers before closing (or the timeout).
func rawExchange(t *testing.T, addr netip.AddrPort, payload string) (string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(payload))
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	line, err := bufio.NewReader(conn).ReadString('\n')
	closed := errors.Is(err, io.EOF)
	if err != nil && !closed {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			closed = true
		}
	}
	return line, closed
}

func TestHostileMessages(t *testing.T) {
	s, addr := startServer(t, Config{MaxMessage: 1024})
	tests := []struct {
		name       string
		payload    string
		wantInLine string
		wantClosed bool
	}{
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"steal","params":{}}` + "\n", `"code":-32601`, false},
		{"wrong types", `{"jsonrpc":"2.0","id":2,"method":"hello","params":{"version":"one"}}` + "\n", `"code":-32602`, false},
		{"unknown field", `{"jsonrpc":"2.0","id":3,"method":"hello","params":{"version":1,"admin":true}}` + "\n", `"code":-32602`, false},
		{"missing params", `{"jsonrpc":"2.0","id":4,"method":"session.join"}` + "\n", `"code":-32602`, false},
		{"wrong version", `{"jsonrpc":"2.0","id":5,"method":"hello","params":{"version":99}}` + "\n", "not supported", false},
		{"bad candidate", `{"jsonrpc":"2.0","id":6,"method":"punch.ready","params":{"session":"x","attempt":{"method":"machsend","round":0},"candidates":{"public":"not-an-endpoint"}}}` + "\n", `"code":-32602`, false},
		{"connect-back elsewhere", `{"jsonrpc":"2.0","id":7,"method":"probe.connectback","params":{"target":"192.0.2.99:80","from":"other-port"}}` + "\n", "your own observed address", false},
		{"garbage", "\x00\x01not json at all\n", "", true},
		{"oversized", `{"jsonrpc":"2.0","id":8,"method":"hello","params":{"private":["` + strings.Repeat("9", 4000) + `"]}}` + "\n", "", true},
		{"truncated", `{"jsonrpc":"2.0","id":9,"meth`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, closed := rawExchange(t, addr, tt.payload)
			if !strings.Contains(line, tt.wantInLine) {
				t.Errorf("reply %q, want it to contain %q", line, tt.wantInLine)
			}
			if tt.wantClosed && !closed {
				t.Errorf("connection left open after %s", tt.name)
			}
		})
	}
	// The server and a well-behaved client carry on.
	c := dial(t, addr)
	if _, err := c.Hello(context.Background(), nil, false); err != nil {
		t.Fatalf("server wedged: %v", err)
	}
	if s.Stats.Malformed.Load() == 0 {
		t.Error("malformed requests not counted")
	}
}

func TestConnectBack(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	r, _ := c.Hello(context.Background(), nil, false)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			s.Close()
		}
	}()
	target := netip.AddrPortFrom(r.Observed.Addr(), addrPortOf(ln.Addr()).Port())
	for _, from := range []string{"other-port", "other-address"} {
		res, err := c.ConnectBack(context.Background(), ConnectBackParams{Target: target, From: from})
		if err != nil || res.Outcome != "connected" {
			t.Errorf("%s: %+v %v", from, res, err)
		}
		if from == "other-address" && res.From.Addr() != netip.MustParseAddr("127.0.0.2") {
			t.Errorf("connect-back from %s, want the secondary address", res.From)
		}
	}
	ln.Close()
	res, _ := c.ConnectBack(context.Background(), ConnectBackParams{Target: target, From: "other-port"})
	if res.Outcome != "refused" {
		t.Errorf("closed port: outcome %s", res.Outcome)
	}
}

// relayPair makes a session with a join verifier, joins it with the key
// and returns both peers' spliced relay connections (and A's token).
func relayPair(t *testing.T, ctx context.Context, addr netip.AddrPort) (ca, cb net.Conn, ra RelayResult) {
	t.Helper()
	a, b := dial(t, addr), dial(t, addr)
	key, verifier := JoinProof([]byte("relay test secret"))
	cr, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, key); err != nil {
		t.Fatal(err)
	}
	if ra, err = a.Relay(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	rb, err := b.Relay(ctx, cr.Session)
	if err != nil {
		t.Fatal(err)
	}
	wait := dialRelayAsync(ctx, ra)
	cb, err = DialRelay(ctx, rb)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return ca, cb, ra
}

// dialRelayAsync starts DialRelay(ctx, r) and returns what waits for it.
func dialRelayAsync(ctx context.Context, r RelayResult) func() (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := DialRelay(ctx, r); ch <- res{c, err} }()
	return func() (net.Conn, error) { x := <-ch; return x.c, x.err }
}

// The relay serves only sessions whose joiner proved the secret: without
// a verifier, or before anyone joined, relay.open is refused.
func TestRelayNeedsProvenSession(t *testing.T) {
	_, addr := startServer(t, Config{})
	ctx := context.Background()
	a, b := dial(t, addr), dial(t, addr)
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{a, b} {
		if _, err := c.Relay(ctx, cr.Session); err == nil {
			t.Error("relay opened for a session without a join verifier")
		}
	}
	// With a verifier, only members get a token: a stranger who knows the
	// session id gets none (and cannot join without the key).
	_, verifier := JoinProof([]byte("s"))
	cr2, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	x := dial(t, addr)
	if _, err := x.Relay(ctx, cr2.Session); !errors.Is(err, ErrNoSession) {
		t.Errorf("a stranger's relay.open: %v, want ErrNoSession", err)
	}
	if _, err := x.Join(ctx, cr2.Session, ""); !errors.Is(err, ErrWrongKey) {
		t.Errorf("a stranger's join without the key: %v, want ErrWrongKey", err)
	}
}

// The relay's bandwidth is bounded per session and for all sessions
// together: over a second, a peer that sends as fast as it can gets no
// more than the rate allows (plus one burst).
func TestRelayBandwidthCaps(t *testing.T) {
	const rate = 256 << 10
	for _, cfg := range []Config{{RelaySessionRate: rate}, {RelayRate: rate}} {
		_, addr := startServer(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ca, cb, _ := relayPair(t, ctx, addr)
		go func() {
			buf := make([]byte, 32<<10)
			for {
				if _, err := cb.Write(buf); err != nil {
					return
				}
			}
		}()
		start := time.Now()
		ca.SetReadDeadline(start.Add(time.Second))
		n, _ := io.Copy(io.Discard, ca)
		allowed := float64(relayChunk+rate/10) + rate*time.Since(start).Seconds() + relayChunk
		if float64(n) > allowed {
			t.Errorf("%+v: relayed %d bytes in %v, more than the %.0f the cap allows", cfg, n, time.Since(start), allowed)
		}
		if n == 0 {
			t.Errorf("%+v: nothing relayed", cfg)
		}
		cancel()
	}
}

func TestRelaySplice(t *testing.T) {
	_, addr := startServer(t, Config{RelayMaxBytes: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, cb, ra := relayPair(t, ctx, addr)
	r := struct{ c net.Conn }{ca}
	msg := []byte("ciphertext only")
	go cb.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r.c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("relayed %q, %v", got, err)
	}
	// Over the byte budget the relay cuts the session.
	go func() {
		buf := make([]byte, 64<<10)
		for i := 0; i < 40; i++ {
			if _, err := cb.Write(buf); err != nil {
				return
			}
		}
	}()
	n, _ := io.Copy(io.Discard, r.c)
	if n > 1<<20 {
		t.Errorf("relay carried %d bytes past its 1 MiB budget", n)
	}
	// A token is single-use.
	if _, err := DialRelay(ctx, ra); err == nil {
		t.Error("relay token reused")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, addr := startServerNoCleanup(t)
	c, err := Dial(context.Background(), addr, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Hello(context.Background(), nil, false)
	c.Close()
	s.Close()
	time.Sleep(100 * time.Millisecond)
}

func startServerNoCleanup(t *testing.T) (*Server, netip.AddrPort) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{})
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	t.Cleanup(func() { <-done })
	return s, addrPortOf(ln.Addr())
}

func FuzzServerMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"hello","params":{"version":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"session.create","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"session.join","params":{"session":"00000000000000000000000000000000"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"punch.ready","params":{"session":"x","attempt":{"method":"machsend","round":0},"candidates":{"public":"1.2.3.4:5"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"probe.connectback","params":{"target":"127.0.0.1:1","from":"other-port","timeout_ms":10}}`,
		`{"jsonrpc":"2.0","id":1,"method":"relay.open","params":{"session":"x"}}`,
		`[1,2,3]`, `{"id":null}`, "",
	} {
		f.Add([]byte(seed))
	}
	s := NewServer(Config{MaxMessage: 4096, ConnRate: 1e9, ConnBurst: 1 << 30})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(ln)
	f.Cleanup(func() { s.Close() })
	ap := addrPortOf(ln.Addr())
	f.Fuzz(func(t *testing.T, msg []byte) {
		cliSide, err := net.Dial("tcp4", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		cliSide.SetDeadline(time.Now().Add(200 * time.Millisecond))
		cliSide.Write(append(msg, '\n'))
		bufio.NewReader(cliSide).ReadString('\n')
		cliSide.Close()
		// The server still answers a well-formed hello on a new connection.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := Dial(ctx, ap, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Hello(ctx, nil, false); err != nil {
			t.Fatalf("server stopped answering after %q: %v", msg, err)
		}
		c.Close()
	})
}

func FuzzDecodeParams(f *testing.F) {
	f.Add([]byte(`{"session":"abc","attempt":{"method":"p2pnat","round":1,"step":"syn"},"candidates":{"public":"1.2.3.4:5","predicted":["1.2.3.4:6"]}}`))
	f.Add([]byte(`{"target":"1.2.3.4:5","from":"other-port"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		raw := json.RawMessage(b)
		for _, v := range []any{&HelloParams{}, &SessionParams{}, &ReadyParams{}, &ConnectBackParams{}} {
			_ = decodeParams(&raw, v)
		}
		var rp ReadyParams
		if decodeParams(&raw, &rp) == nil && rp.Attempt.Check() == nil {
			if rp.Attempt.Round < 0 || rp.Attempt.Round > MaxRound || len(rp.Attempt.String()) > 64 {
				t.Fatalf("accepted attempt %+v", rp.Attempt)
			}
		}
	})
}

// An attempt from the wire names a method of the table, a bounded round and
// a known step; anything else is refused before the server holds it.
func TestAttemptCheck(t *testing.T) {
	for _, c := range []struct {
		a  AttemptID
		ok bool
	}{
		{AttemptID{Method: "machsend", Round: 1}, true},
		{AttemptID{Method: "natblaster", Round: 0, Step: "guessed"}, true},
		{AttemptID{Method: "auto"}, false},
		{AttemptID{Method: "x"}, false},
		{AttemptID{Method: "p2pnat", Round: -1}, false},
		{AttemptID{Method: "p2pnat", Round: MaxRound + 1}, false},
		{AttemptID{Method: "p2pnat", Step: "../x"}, false},
	} {
		if err := c.a.Check(); (err == nil) != c.ok {
			t.Errorf("%+v: Check() = %v, want ok=%v", c.a, err, c.ok)
		}
	}
}

// The relay slots go out with the join, one to each peer (the joiner's in
// its join's answer, the sharer's with peer.joined), and splice without a
// relay.open; a hello and a join sent back to back are answered in one
// round trip. A next receiver gets slots of its own; tokens that were
// never used expire, so they never pile up; a session without a join
// verifier gets none.
func TestRelaySlotsComeWithTheJoin(t *testing.T) {
	const ttl = 300 * time.Millisecond
	_, addr := startServer(t, Config{RelayTokenTTL: ttl})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := dial(t, addr)
	key, verifier := JoinProof([]byte("relay slot secret"))
	cr, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	b := dial(t, addr)
	h, jr, jerr, err := b.HelloJoin(ctx, nil, SessionParams{Session: cr.Session, Key: key})
	if err != nil || jerr != nil || !h.Relay {
		t.Fatalf("hello+join: %v / %v, relay offered %v", err, jerr, h.Relay)
	}
	var ev PeerEvent
	if err := json.Unmarshal(next(t, a, NotifyPeerJoined), &ev); err != nil {
		t.Fatal(err)
	}
	if jr.Relay == nil || ev.Relay == nil || jr.Relay.Token == ev.Relay.Token {
		t.Fatalf("relay slots: joiner %+v, sharer %+v; want one each", jr.Relay, ev.Relay)
	}
	wait := dialRelayAsync(ctx, *ev.Relay)
	cb, err := DialRelay(ctx, *jr.Relay)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ca, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if _, err := cb.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1)
	if _, err := io.ReadFull(ca, got); err != nil || got[0] != 'x' {
		t.Fatalf("spliced relay carried %q, %v", got, err)
	}

	// A second receiver joins after the first left: its slots are new.
	if err := b.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	jr2, err := c.Join(ctx, cr.Session, key)
	if err != nil {
		t.Fatal(err)
	}
	if jr2.Relay == nil || jr2.Relay.Token == jr.Relay.Token {
		t.Fatalf("the next receiver's slot %+v repeats the first's", jr2.Relay)
	}
	if err := c.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	// A live slot waits for its other half; an expired one is refused.
	time.Sleep(ttl + 100*time.Millisecond)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if rc, err := DialRelay(short, *jr2.Relay); err == nil || short.Err() != nil {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("a slot unused past its lifetime still opens the relay (%v)", err)
	}

	open, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	jr3, err := dial(t, addr).Join(ctx, open.Session, "")
	if err != nil || jr3.Relay != nil {
		t.Fatalf("a session without a join verifier: join %v, relay slot %+v", err, jr3.Relay)
	}
}

// A punch is timed like DCUtR's: the peer nearer the server waits half
// the difference of the two round trips, so both start when the farther
// hears punch.go; not when a round trip is unknown or starts are unsynced.
func TestStartLeads(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		cfg          Config
		rttA, rttB   time.Duration
		wantA, wantB time.Duration
	}{
		{Config{}, 20 * ms, 20 * ms, 0, 0},
		{Config{}, 20 * ms, 60 * ms, 20 * ms, 0},
		{Config{}, 90 * ms, 10 * ms, 0, 40 * ms},
		{Config{}, 0, 60 * ms, 0, 0},
		{Config{UnsyncedStarts: true}, 20 * ms, 60 * ms, 0, 0},
		{Config{PunchDelay: 5 * ms}, 20 * ms, 60 * ms, 25 * ms, 5 * ms},
	} {
		s := &Server{cfg: c.cfg}
		if a, b := s.startLeads(c.rttA, c.rttB); a != c.wantA || b != c.wantB {
			t.Errorf("%+v, RTTs %v/%v: leads %v/%v, want %v/%v", c.cfg, c.rttA, c.rttB, a, b, c.wantA, c.wantB)
		}
	}
}

// Tokens that expire unused are forgotten as new ones are issued, so the
// relay's table holds only live tokens; a renewed token lives on.
func TestRelayForgetsExpiredTokens(t *testing.T) {
	r := newRelay(&Server{cfg: Config{MaxSessions: 1000, RelayTokenTTL: 20 * time.Millisecond}})
	for i := range 100 {
		r.expect(fmt.Sprint("old", i), "s", RoleA)
	}
	r.expect("renewed", "s", RoleB)
	time.Sleep(15 * time.Millisecond)
	r.expect("renewed", "s", RoleB)
	time.Sleep(10 * time.Millisecond)
	r.expect("new", "s", RoleA)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tokens) != 2 || r.tokens["renewed"].key.role != RoleB {
		t.Errorf("tokens after expiry: %d (%v), want the renewed and the new one", len(r.tokens), r.tokens["renewed"])
	}
}
