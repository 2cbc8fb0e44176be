package rendezvous

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
)

func synPacket(src netip.AddrPort, dport uint16, flags byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	b[9] = 6
	s := src.Addr().As4()
	copy(b[12:16], s[:])
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint32(b[24:], 12345)
	b[33] = flags
	return b
}

func TestParseSYN(t *testing.T) {
	src := netip.MustParseAddrPort("203.0.113.2:4242")
	cases := []struct {
		name string
		pkt  []byte
		ok   bool
	}{
		{"syn", synPacket(src, 80, 0x02), true},
		{"syn-ack", synPacket(src, 80, 0x12), false},
		{"ack", synPacket(src, 80, 0x10), false},
		{"short", synPacket(src, 80, 0x02)[:30], false},
		{"empty", nil, false},
		{"ipv6", append([]byte{0x60}, make([]byte, 39)...), false},
		{"udp", func() []byte { b := synPacket(src, 80, 0x02); b[9] = 17; return b }(), false},
		{"bad ihl", func() []byte { b := synPacket(src, 80, 0x02); b[0] = 0x4f; return b }(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, dport, isn, ok := ParseSYN(c.pkt)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if ok && (got != src || dport != 80 || isn != 12345) {
				t.Errorf("got %s -> %d isn %d", got, dport, isn)
			}
		})
	}
}

func FuzzParseSYN(f *testing.F) {
	f.Add(synPacket(netip.MustParseAddrPort("192.0.2.1:1"), 2, 0x02))
	f.Add([]byte{0x45})
	p := &prober{sinks: map[string]*sinkEntry{}, byPort: map[uint16]*sinkEntry{2: {id: "x"}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _ = ParseSYN(b)
		p.saw(b) // never panics; records at most one SYN and one SYN-ACK
	})
}

// Sinks and probe.dial on loopback (no NAT: the client's mapping is its
// own endpoint): a SYN into a sink stays unanswered, and the sink's port
// dialling back completes a simultaneous open; connect-backs tell a
// listener from a closed port; limits hold; sinks go with their client.
func TestSinkProbes(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	sink, ok := linuxSink(ctx, t, c)
	if !ok {
		return
	}
	// The SYN into the sink is swallowed: the connect stays pending.
	rs, err := sockopt.NewRawSocket(netip.MustParseAddrPort("127.0.0.1:0"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := rs.Connect(sink.Addr); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := rs.Wait(wctx); err == nil {
		t.Fatal("a sink answered a SYN")
	}
	wcancel()
	local := rs.Local()
	// What the sink saw is its owner's business only.
	if _, err := dial(t, addr).SinkSeen(ctx, sink.Sink); err == nil || !strings.Contains(err.Error(), "no such sink") {
		t.Errorf("another client read the sink: %v", err)
	}
	if seen, err := c.SinkSeen(ctx, sink.Sink); err != nil || (sink.Sniffing && seen.SYN != local) {
		t.Errorf("the sink saw %+v (%v), want the SYN from %s (sniffing %v)", seen, err, local, sink.Sniffing)
	}
	target := local
	if sink.Sniffing {
		target = netip.AddrPort{} // the server saw where the SYN came from
	}
	r, err := c.ProbeDial(ctx, ProbeDialParams{From: "sink", Sink: sink.Sink, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != sockopt.ProbeConnected || r.Target != local {
		t.Errorf("dial-back from the sink: %+v (client at %s, sniffing %v)", r, local, sink.Sniffing)
	}
	// One use per sink.
	if _, err := c.ProbeDial(ctx, ProbeDialParams{From: "sink", Sink: sink.Sink, Target: local}); err == nil {
		t.Error("a sink was used twice")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnAddr := netip.MustParseAddrPort(ln.Addr().String())
	ln2, _ := net.Listen("tcp4", "127.0.0.1:0")
	closed := netip.MustParseAddrPort(ln2.Addr().String())
	ln2.Close()
	defer ln.Close()
	cases := []struct {
		name    string
		p       ProbeDialParams
		want    string
		wantErr string
	}{
		{"listener", ProbeDialParams{From: "other-port", Target: lnAddr}, sockopt.ProbeConnected, ""},
		{"closed port", ProbeDialParams{From: "other-port", Target: closed}, sockopt.ProbeRST, ""},
		{"someone else", ProbeDialParams{From: "other-port", Target: netip.MustParseAddrPort("127.0.0.9:80")}, "", "your own"},
		{"bad from", ProbeDialParams{From: "moon", Target: lnAddr}, "", "from"},
		{"no sink", ProbeDialParams{From: "sink", Sink: "nope", Target: lnAddr}, "", "no such sink"},
		{"long delay", ProbeDialParams{From: "other-port", Target: lnAddr, DelayMs: 60000}, "", "delay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.ProbeDial(ctx, tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Outcome != tc.want {
				t.Fatalf("%+v, %v; want %s", r, err, tc.want)
			}
		})
	}
	sinksBounded(ctx, t, s, addr)
}

// sinksBounded: a client gets at most maxSinksPerClient sinks, and its
// sinks go with it.
func sinksBounded(ctx context.Context, t *testing.T, s *Server, addr netip.AddrPort) {
	t.Helper()
	c2 := dial(t, addr)
	if _, err := c2.Hello(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; n < maxSinksPerClient+2; n++ {
		if _, err := c2.Sink(ctx); err != nil {
			break
		}
	}
	if n != maxSinksPerClient {
		t.Errorf("%d sinks granted, limit %d", n, maxSinksPerClient)
	}
	c2.Close()
	deadline := time.Now().Add(3 * time.Second)
	for s.SinkCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.SinkCount() != 0 {
		t.Errorf("%d sinks left after their clients closed or used them", s.SinkCount())
	}
}

// The sniffer records, per sink, the first bare SYN and the first SYN-ACK
// and nothing else; packets to other ports are ignored.
func TestSinkSniffer(t *testing.T) {
	e := &sinkEntry{id: "s"}
	p := &prober{sinks: map[string]*sinkEntry{"s": e}, byPort: map[uint16]*sinkEntry{80: e}}
	a, b := netip.MustParseAddrPort("203.0.113.2:4000"), netip.MustParseAddrPort("203.0.113.2:4001")
	for _, pkt := range [][]byte{
		synPacket(b, 81, 0x02), // another port
		synPacket(a, 80, 0x10), // a bare ACK
		synPacket(a, 80, 0x02), // the SYN
		synPacket(b, 80, 0x02), // a second SYN: not recorded
		synPacket(a, 80, 0x12), // the SYN-ACK
		synPacket(b, 80, 0x12), // a second SYN-ACK: not recorded
	} {
		p.saw(pkt)
	}
	if e.seen != a || e.isn != 12345 || e.synack != a {
		t.Errorf("sink saw SYN %s (isn %d) and SYN-ACK %s; want both from %s", e.seen, e.isn, e.synack, a)
	}
}

// linuxSink opens a sink, which only Linux servers have (sinks filter SYNs
// with a Linux socket filter): elsewhere the server must say so, in the
// vocabulary natcheck reports, and there is nothing more to test.
func linuxSink(ctx context.Context, t *testing.T, c *Client) (SinkResult, bool) {
	t.Helper()
	sink, err := c.Sink(ctx)
	if runtime.GOOS != "linux" {
		if err == nil || !strings.Contains(err.Error(), sockopt.ErrNotSupported.Error()) {
			t.Fatalf("probe.sink off Linux: %v, want %q", err, sockopt.ErrNotSupported)
		}
		return sink, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return sink, true
}
