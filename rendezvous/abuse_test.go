package rendezvous

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n accepts the way an exhausted process
// does (EMFILE), then accepts for real.
type flakyListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.n > 0
	l.n--
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// helloTimes says hello n times on fresh connections and returns how long
// each took.
func helloTimes(t *testing.T, addr netip.AddrPort, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		c := dial(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Hello(ctx, nil, false)
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("a legitimate hello failed: %v", err)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

// A server out of descriptors pauses and accepts again: it never exits
// on an accept error.
func TestAcceptSurvivesErrors(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{})
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Serve(&flakyListener{Listener: ln, n: 6}) }()
	helloTimes(t, addrPortOf(ln.Addr()), 3)
	if got := s.Stats.AcceptErrors.Load(); got != 6 {
		t.Errorf("%d accept errors counted, want 6", got)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned after accept errors: %v", err)
	default:
	}
}

// Limits read at start: connection caps stay below the descriptor limit.
func TestLimitsBelowFDLimit(t *testing.T) {
	cfg := Config{MaxClients: 1 << 30, MaxRelayConns: 1 << 30}
	cfg.defaults()
	if fds := fdLimit(); cfg.MaxClients+cfg.MaxRelayConns >= fds {
		t.Errorf("clients %d + relay %d reach the descriptor limit %d", cfg.MaxClients, cfg.MaxRelayConns, fds)
	}
}

// One address cannot hold more than its share of connections, on the
// rendezvous port or the relay port; others are still served.
func TestPerAddressCap(t *testing.T) {
	s, addr := startServer(t, Config{MaxClientsPerAddr: 8, ConnBurst: 1000, ConnRate: 1000})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, target := range []netip.AddrPort{addr, s.cfg.RelayAddr} {
		for i := 0; i < 20; i++ {
			c, err := net.Dial("tcp4", target.String())
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := s.Stats.Rejected.Load(); got < 24 {
		t.Errorf("%d connections rejected, want at least 24 (12 over the cap on each port)", got)
	}
	// Another address is still served.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	raw, err := d.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(raw, DialOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx, nil, false); err != nil {
		t.Fatalf("another address could not say hello: %v", err)
	}
}

// A client that sends requests as fast as it can and never reads a reply
// holds a bounded amount of the server's memory (it stops being read once
// its socket is full), and legitimate clients keep getting answers.
func TestFloodWithoutReading(t *testing.T) {
	_, addr := startServer(t, Config{})
	base := helloTimes(t, addr, 40)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for f := 0; f < 4; f++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp4", addr.String())
			if err != nil {
				return
			}
			defer c.Close()
			line := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n")
			batch := make([]byte, 0, len(line)*512)
			for i := 0; i < 512; i++ {
				batch = append(batch, line...)
			}
			for ctx.Err() == nil {
				_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Write(batch); err != nil && !isTimeout(err) {
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	times := helloTimes(t, addr, 40)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	stop()
	wg.Wait()
	grew := int64(during.HeapInuse) - int64(before.HeapInuse)
	p99 := times[len(times)*99/100]
	baseP99 := base[len(base)*99/100]
	t.Logf("heap grew %d KiB during the flood; hello p50 %v, p99 %v (before the flood: p99 %v)", grew>>10, times[len(times)/2], p99, baseP99)
	if grew > 64<<20 {
		t.Errorf("four flooding clients grew the heap by %d MiB", grew>>20)
	}
	// The flood may add at most 50 ms to a hello's p99 over the same
	// machine's p99 just before it (on an idle machine: p99 under 50 ms).
	if p99 > baseP99+50*time.Millisecond {
		t.Errorf("hello p99 %v during the flood against %v before it: the flood added more than 50 ms", p99, baseP99)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Requests that wait (probes) run at most two at a time per client: the
// rest are refused at once instead of piling up.
func TestSlowRequestsBounded(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := c.Hello(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// A port nobody listens on behind a dropping filter is not available
	// on loopback; a delayed dial waits just the same.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ProbeDial(ctx, ProbeDialParams{From: "other-port", Target: h.Observed, DelayMs: 1500})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	refused := 0
	for err := range errs {
		if err != nil {
			refused++
		}
	}
	if refused != 8 {
		t.Errorf("%d of 10 waiting requests refused, want 8 (two run at once)", refused)
	}
}

// A session created with a verifier admits only the matching key; the id
// alone, a wrong key or a malformed one are refused and counted.
func TestJoinNeedsKey(t *testing.T) {
	s, addr := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key, verifier := JoinProof([]byte("the link's secret, 32 bytes long"))
	wrong, _ := JoinProof([]byte("another secret entirely, 32 byte"))
	a := dial(t, addr)
	cr, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", wrong, "zz", key[:10]} {
		c := dial(t, addr)
		if _, err := c.Join(ctx, cr.Session, k); !errors.Is(err, ErrWrongKey) {
			t.Errorf("join with key %q: %v, want ErrWrongKey", k, err)
		}
		c.Close()
	}
	if _, err := dial(t, addr).Join(ctx, cr.Session, key); err != nil {
		t.Fatalf("the right key: %v", err)
	}
	if got := s.Stats.WrongKeys.Load(); got != 4 {
		t.Errorf("%d wrong keys counted, want 4", got)
	}
	if _, err := dial(t, addr).Create(ctx, "not hex"); err == nil {
		t.Error("a malformed verifier was accepted")
	}
}

// A peer cannot point the other's SYNs at a third party or a spread of
// ports: its public endpoint and predictions must be on the address the
// server sees it at, and their number is bounded.
func TestCandidatesBounded(t *testing.T) {
	me := netip.MustParseAddr("198.51.100.7")
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	many := func(n int) []netip.AddrPort {
		var out []netip.AddrPort
		for i := 0; i < n; i++ {
			out = append(out, netip.AddrPortFrom(me, uint16(2000+i)))
		}
		return out
	}
	v6 := netip.MustParseAddr("2001:db8::7")
	cases := []struct {
		name   string
		c      Candidates
		ok     bool
		probed []netip.Addr
	}{
		{"honest", Candidates{Public: ap("198.51.100.7:4000"), Predicted: many(2), Private: []netip.AddrPort{ap("198.18.1.2:4000")}}, true, nil},
		{"the other family, where its probe came from", Candidates{Public: netip.AddrPortFrom(v6, 4000)}, true, []netip.Addr{v6}},
		{"the other family, no probe from there", Candidates{Public: netip.AddrPortFrom(v6, 4000)}, false, []netip.Addr{netip.MustParseAddr("2001:db8::8")}},
		{"the other family, predictions elsewhere", Candidates{Public: netip.AddrPortFrom(v6, 4000), Predicted: []netip.AddrPort{ap("[2001:db8::8]:4000")}}, false, []netip.Addr{v6}},
		{"no public yet", Candidates{}, true, nil},
		{"someone else's address", Candidates{Public: ap("192.0.2.99:80")}, false, nil},
		{"prediction elsewhere", Candidates{Public: ap("198.51.100.7:4000"), Predicted: []netip.AddrPort{ap("192.0.2.99:80")}}, false, nil},
		{"a spread of ports", Candidates{Public: ap("198.51.100.7:4000"), Predicted: many(33)}, false, nil},
		{"many private", Candidates{Public: ap("198.51.100.7:4000"), Private: many(9)}, false, nil},
		{"a server round trip", Candidates{ServerRTTms: 41.5}, true, nil},
		{"a negative round trip", Candidates{ServerRTTms: -1}, false, nil},
		{"a round trip of days", Candidates{ServerRTTms: 1e9}, false, nil},
		{"a round trip that is not a number", Candidates{ServerRTTms: math.NaN()}, false, nil},
	}
	for _, c := range cases {
		if err := c.c.check(me, c.probed...); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// Candidates in the other address family count only on an address from
// which a probe connection bearing the client's own probe key came: a
// peer that never probed from there, or probed with a guessed key, is
// refused; the key's owner, having probed, is accepted; a probe
// connection gets no key of its own.
func TestProbeKeyBindsTheOtherFamily(t *testing.T) {
	s, addr := startServer(t, Config{})
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	go s.Serve(ln6)
	server6 := addrPortOf(ln6.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owner, attacker := dialFrom(t, "127.0.0.5", addr), dialFrom(t, "127.0.0.6", addr)
	h, err := owner.Hello(ctx, nil, false)
	if err != nil || h.ProbeKey == "" || owner.Greeting().ProbeKey != h.ProbeKey {
		t.Fatalf("hello: %+v %v, want a probe key, kept as the greeting", h, err)
	}
	if _, err := attacker.Hello(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	cr, err := owner.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attacker.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	ready := func(c *Client, public netip.AddrPort) error {
		return c.Ready(ctx, ReadyParams{Session: cr.Session, Attempt: AttemptID{Method: "p2pnat", Family: FamilyIPv6},
			Candidates: Candidates{Public: public}})
	}
	probe := func(key string) netip.AddrPort {
		m, c, err := Observe(ctx, server6, netip.MustParseAddrPort("[::1]:0"), key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.Greeting().ProbeKey != "" {
			t.Errorf("a probe connection was given a key")
		}
		return m
	}
	if err := ready(attacker, netip.MustParseAddrPort("[::1]:4000")); err == nil {
		t.Error("IPv6 candidates with no probe from there were accepted")
	}
	probe("0123456789abcdef0123456789abcdef") // a guessed key
	if err := ready(attacker, netip.MustParseAddrPort("[::1]:4000")); err == nil {
		t.Error("IPv6 candidates bought with a guessed probe key were accepted")
	}
	m := probe(h.ProbeKey)
	if err := ready(owner, m); err != nil {
		t.Errorf("the owner's IPv6 candidates, observed on its own probe: %v", err)
	}
}

// dialFrom connects to the server from a loopback address of its own.
func dialFrom(t *testing.T, from string, addr netip.AddrPort) *Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	raw, err := d.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(raw, DialOptions{})
	t.Cleanup(func() { c.Close() })
	return c
}

// No address can fill the session table: it holds at most its share, and
// a full table makes room by dropping the oldest idle session of the
// address that holds most, so a newcomer can still share.
func TestSessionTableFair(t *testing.T) {
	s, addr := startServer(t, Config{MaxSessions: 20, MaxSessionsPerAddr: 15, MaxSessionsPerClient: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hog := dialFrom(t, "127.0.0.5", addr)
	for i := 0; i < 15; i++ {
		if _, err := hog.Create(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hog.Create(ctx, ""); !errors.Is(err, ErrLimit) {
		t.Fatalf("the 16th session from one address: %v, want ErrLimit", err)
	}
	other := dialFrom(t, "127.0.0.6", addr)
	for i := 0; i < 5; i++ {
		if _, err := other.Create(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dialFrom(t, "127.0.0.7", addr).Create(ctx, ""); err != nil {
		t.Fatalf("a newcomer could not share in a full table: %v", err)
	}
	if got := s.Stats.Evicted.Load(); got != 1 {
		t.Errorf("%d sessions evicted, want 1", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr[netip.MustParseAddr("127.0.0.5")] != 14 || len(s.sessions) != 20 {
		t.Errorf("after the eviction: %v, %d sessions", s.byAddr, len(s.sessions))
	}
}

// Probe dials in flight are bounded server-wide: past the bound a client
// is told the server is busy at once, and a slot given back is usable.
func TestProbeSlotsBounded(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	if cap(s.probes) >= fdLimit() {
		t.Fatalf("%d probe slots for %d descriptors", cap(s.probes), fdLimit())
	}
	s.probes = make(chan struct{}, 2)
	r1, err1 := s.probeSlot()
	_, err2 := s.probeSlot()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := s.probeSlot(); err == nil {
		t.Fatal("a third probe got a slot out of two")
	}
	r1()
	if _, err := s.probeSlot(); err != nil {
		t.Fatalf("a slot given back was not usable: %v", err)
	}
}
