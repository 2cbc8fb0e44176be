package natlab_test

import (
	"context"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"

	"go.uber.org/goleak"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/impair"
	"github.com/machsend/machsend/natlab/measure"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// impairLab is a two-NAT lab with a and rv as the ends; wan-a carries the
// impairment.
func impairLab(t *testing.T) (*natlab.Lab, *natlab.Node, *natlab.Node) {
	t.Helper()
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat", "port-restricted-cone")
	return l, node(t, l, "a"), node(t, l, "rv")
}

// Measured RTT through the delay queue is within 1 ms of the configured
// RTT at 10-200 ms (delay on both directions of wan-a, half the RTT each),
// beyond the spread of the unimpaired round trip measured just before.
func TestImpairDelay(t *testing.T) {
	l, a, rv := impairLab(t)
	base, err := measure.RTT(a.Handle, rv.Handle, netip.MustParseAddrPort("192.0.2.2:7001"), 50, 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	baseMed := measure.Median(base)
	// The queue's own error is asserted within 1 ms, plus however much the
	// machine's scheduling spreads an unimpaired round trip right now (a
	// busy machine delays the release of a packet as it delays the echo).
	slack := time.Millisecond + (base[len(base)*9/10] - base[0])
	for i, rtt := range []time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 200 * time.Millisecond} {
		t.Run(rtt.String(), func(t *testing.T) {
			if err := l.ImpairLink(natlab.LinkImpairment{Network: "wan-a", Spec: "delay=" + (rtt / 2).String()}); err != nil {
				t.Fatal(err)
			}
			rtts, err := measure.RTT(a.Handle, rv.Handle, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(7010+i)), 40, 5*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			med := measure.Median(rtts)
			t.Logf("configured %v: median %v (min %v, max %v; unimpaired %v)", rtt, med, rtts[0], rtts[len(rtts)-1], baseMed)
			if d := med - rtt; d < 0 || d > slack {
				t.Errorf("median RTT %v, configured %v: off by %v (allowed 0..%v)", med, rtt, d, slack)
			}
			if len(rtts) != 40 {
				t.Errorf("%d of 40 echoes came back without loss configured", len(rtts))
			}
		})
	}
	if err := l.ImpairErr(); err != nil {
		t.Fatal(err)
	}
}

// Loss rates fall in the binomial 99.9% interval; bursty loss keeps its rate
// and its mean burst length.
func TestImpairLoss(t *testing.T) {
	l, a, rv := impairLab(t)
	cases := []struct {
		name  string
		spec  string
		p     float64
		burst float64
	}{
		{"random 1%", "loss=1%", 0.01, 0},
		{"random 5%", "loss=5%", 0.05, 0},
		{"bursty 5% of 4", "loss=5% burst=4", 0.05, 4},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := l.Impair("nat-a", "wan-a", impair.MustParse(c.spec)); err != nil {
				t.Fatal(err)
			}
			const n = 40000
			s, err := measure.Datagrams(a.Handle, rv.Handle, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(7100+i)), n, 64, 20000, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: loss %.3f%% (%d/%d), mean burst %.2f", c.spec, s.Loss*100, s.Sent-s.Received, s.Sent, s.MeanBurst)
			if c.burst == 0 {
				lo, hi := measure.Binomial999(n, c.p)
				if s.Loss < lo || s.Loss > hi {
					t.Errorf("loss %.4f outside the 99.9%% interval [%.4f, %.4f]", s.Loss, lo, hi)
				}
				return
			}
			// Losses come in bursts: the effective sample is about n/burst
			// independent events, widened by the burst variance.
			lo, hi := measure.Binomial999(int(float64(n)/(2*c.burst)), c.p)
			if s.Loss < lo || s.Loss > hi {
				t.Errorf("bursty loss %.4f outside [%.4f, %.4f]", s.Loss, lo, hi)
			}
			if math.Abs(s.MeanBurst-c.burst) > 0.25*c.burst {
				t.Errorf("mean burst %.2f, configured %.0f", s.MeanBurst, c.burst)
			}
		})
	}
}

// Reordering sends the configured fraction at once, overtaking the delayed
// ones; jitter alone keeps the order.
func TestImpairReorder(t *testing.T) {
	l, a, rv := impairLab(t)
	for i, c := range []struct {
		name string
		spec string
		p    float64
	}{
		{"reorder 10%", "delay=10ms reorder=10%", 0.10},
		{"jitter keeps order", "delay=10ms jitter=3ms", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := l.Impair("nat-a", "wan-a", impair.MustParse(c.spec)); err != nil {
				t.Fatal(err)
			}
			const n = 5000
			s, err := measure.Datagrams(a.Handle, rv.Handle, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(7200+i)), n, 64, 2000, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			frac := float64(s.Overtook) / float64(s.Received)
			t.Logf("%s: %.2f%% overtook, received %d/%d", c.spec, frac*100, s.Received, s.Sent)
			if s.Received != n {
				t.Errorf("lost %d datagrams without loss configured", n-s.Received)
			}
			if c.p == 0 {
				if s.Overtook != 0 {
					t.Errorf("%d datagrams overtook with jitter alone", s.Overtook)
				}
				return
			}
			lo, hi := measure.Binomial999(n, c.p)
			if frac < lo || frac > hi {
				t.Errorf("overtaking fraction %.4f outside [%.4f, %.4f]", frac, lo, hi)
			}
		})
	}
}

// Rate limits hold within 5% on the wire: never above the limit, and not
// below it by more than 5% when the unshaped path, measured just before,
// could carry at least twice the limit (a busy machine may not, and then
// only the limit itself is asserted).
func TestImpairRate(t *testing.T) {
	l, a, rv := impairLab(t)
	for i, mbit := range []uint64{10, 50, 200} {
		t.Run(impair.FormatRate(mbit*1e6), func(t *testing.T) {
			bytes := int64(mbit*1e6/8) * 3 // three seconds' worth
			dst := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(7300+2*i))
			base, err := measure.TCPBulk(a.Handle, rv.Handle, dst, bytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Impair("nat-a", "wan-a", impair.Impairment{Rate: mbit * 1e6}); err != nil {
				t.Fatal(err)
			}
			defer l.Impair("nat-a", "wan-a", impair.Impairment{})
			b, err := measure.TCPBulk(a.Handle, rv.Handle, netip.AddrPortFrom(dst.Addr(), dst.Port()+1), bytes)
			if err != nil {
				t.Fatal(err)
			}
			ratio := b.Wire / float64(mbit*1e6)
			t.Logf("%d Mbit/s: wire %.2f Mbit/s (ratio %.3f), goodput %.2f Mbit/s; unshaped %.1f Mbit/s", mbit, b.Wire/1e6, ratio, b.Goodput/1e6, base.Wire/1e6)
			if ratio > 1.05 {
				t.Errorf("wire rate %.2f Mbit/s exceeds the %d Mbit/s limit by more than 5%%", b.Wire/1e6, mbit)
			}
			if base.Wire >= 2*float64(mbit*1e6) && ratio < 0.95 {
				t.Errorf("wire rate %.2f Mbit/s against %d configured (ratio %.3f) on a path that carried %.1f Mbit/s unshaped", b.Wire/1e6, mbit, ratio, base.Wire/1e6)
			}
		})
	}
	if err := l.Impair("nat-a", "wan-a", impair.Impairment{}); err != nil {
		t.Fatal(err)
	}
	if got := l.Impairments(); len(got) != 0 {
		t.Errorf("impairments left after removal: %+v", got)
	}
}

// A topology file's impairments are in force once the lab is up, in each
// direction as written.
func TestTopologyImpairments(t *testing.T) {
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat-broadband", "port-restricted-cone")
	a, rv := node(t, l, "a"), node(t, l, "rv")
	rtts, err := measure.RTT(a.Handle, rv.Handle, netip.MustParseAddrPort("192.0.2.2:7400"), 60, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// a -> rv: lan-a twice (1 ms each way) and wan-a twice (7.5 ms each way).
	med := measure.Median(rtts)
	t.Logf("a -> rv: median %v over %d replies; impairments %+v", med, len(rtts), l.Impairments())
	if med < 16*time.Millisecond || med > 19*time.Millisecond {
		t.Errorf("median RTT %v, want about 17 ms (1 ms jitter each way)", med)
	}
	got := l.Impairments()
	if len(got) != 8 {
		t.Fatalf("%d impaired directions, want 8: %+v", len(got), got)
	}
	for _, s := range got {
		if s.Node == "nat-a" && s.Network == "wan-a" && s.Spec != "delay=7.5ms jitter=1ms loss=0.5% rate=10mbit" {
			t.Errorf("nat-a/wan-a runs %q", s.Spec)
		}
	}
}

// Cross traffic from a host beside A takes the ports a sequential NAT would
// have given A next: what breaks port prediction.
func TestCrossTraffic(t *testing.T) {
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat-cross", "nat-a=symmetric-sequential", "nat-b=port-restricted-cone")
	a, rv := node(t, l, "a"), node(t, l, "rv")
	ln := listenOn(t, rv, netip.MustParseAddrPort("192.0.2.2:7500"))
	observed := make(chan netip.AddrPort, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			observed <- netip.MustParseAddrPort(c.RemoteAddr().String())
			c.Close()
		}
	}()
	port := func() uint16 {
		t.Helper()
		c, err := dialFrom(t, a, netip.MustParseAddrPort("192.0.2.2:7500"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return (<-observed).Port()
	}
	p1 := port()
	p2 := port()
	quiet := int(p2) - int(p1)
	cross, err := l.CrossTraffic("c", "rv", netip.MustParseAddrPort("192.0.2.3:7501"), 100)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	p3 := port()
	st := cross.Stop()
	busy := int(p3) - int(p2)
	t.Logf("quiet step %d, step with cross traffic %d (%d/%d cross connections)", quiet, busy, st.Connected, st.Attempted)
	if quiet != 1 {
		t.Fatalf("quiet allocation step %d, want 1 (symmetric-sequential)", quiet)
	}
	if st.Connected < 10 || busy < int(st.Connected)/2 {
		t.Errorf("cross traffic made %d connections but A's port moved only %d", st.Connected, busy)
	}
}

// Impairment engines and cross traffic stop with the lab: no goroutine
// outlives Close.
func TestImpairEngineStops(t *testing.T) {
	natlabtest.RequireRoot(t)
	ignore := goleak.IgnoreCurrent()
	topo, err := natlab.LoadTopology("two-nat-cross")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := nat.Load("port-restricted-cone")
	l, err := natlab.Up(context.Background(), natlab.Options{Topology: topo, Default: p})
	if err != nil {
		t.Fatal(err)
	}
	a, rv := node(t, l, "a"), node(t, l, "rv")
	if err := l.ImpairLink(natlab.LinkImpairment{Network: "wan-a", Spec: "delay=5ms loss=1%"}); err != nil {
		l.Close()
		t.Fatal(err)
	}
	cross, err := l.CrossTraffic("c", "rv", netip.MustParseAddrPort("192.0.2.3:7601"), 50)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	if _, err := measure.RTT(a.Handle, rv.Handle, netip.MustParseAddrPort("192.0.2.2:7600"), 20, time.Millisecond); err != nil {
		t.Error(err)
	}
	cross.Stop()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, ignore)
}

// The control socket of a held lab: impairments change and list; a bad
// request gets an error answer and the socket keeps serving.
func TestControlSocket(t *testing.T) {
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat", "port-restricted-cone")
	stop, err := l.ServeControl()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cases := []struct {
		name    string
		req     natlab.ControlRequest
		wantErr string
		want    int // impaired directions after the request
	}{
		{"set", natlab.ControlRequest{Op: "impair", Node: "core", Network: "wan-b", Spec: "delay=5ms"}, "", 1},
		{"list", natlab.ControlRequest{Op: "list"}, "", 1},
		{"bad spec", natlab.ControlRequest{Op: "impair", Node: "core", Network: "wan-b", Spec: "delay=soon"}, "delay", 1},
		{"not on network", natlab.ControlRequest{Op: "impair", Node: "a", Network: "wan-b", Spec: "delay=1ms"}, "not on network", 1},
		{"unknown op", natlab.ControlRequest{Op: "reboot"}, "unknown op", 1},
		{"remove", natlab.ControlRequest{Op: "impair", Node: "core", Network: "wan-b", Spec: "none"}, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := natlab.Control(l.Name, c.req)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if rep == nil || len(rep.Impairments) != c.want {
				t.Fatalf("reply %+v, want %d impaired directions", rep, c.want)
			}
		})
	}
	// Garbage on the socket: an error answer, and the next request works.
	c, err := net.Dial("unix", filepath.Join(natlab.RecordDir, l.Name+".ctl"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("{not json\n"))
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), "bad request") {
		t.Errorf("garbage got %q", buf[:n])
	}
	if _, err := natlab.Control(l.Name, natlab.ControlRequest{Op: "list"}); err != nil {
		t.Errorf("after garbage: %v", err)
	}
}

// A new direction can be added while packets are held on another one of the
// same node: binding its queue waits for an acknowledgement the engine's
// reader delivers, which must not wait for the engine's lock meanwhile.
func TestImpairWhileBusy(t *testing.T) {
	l, a, rv := impairLab(t)
	if err := l.Impair("nat-a", "wan-a", impair.MustParse("delay=100ms")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := measure.Datagrams(a.Handle, rv.Handle, netip.MustParseAddrPort("192.0.2.2:7700"), 6000, 64, 4000, 300*time.Millisecond)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	for i, nw := range []string{"lan-a", "lan-a", "lan-a"} {
		start := time.Now()
		spec := []string{"delay=1ms", "delay=2ms loss=1%", "none"}[i]
		if err := l.Impair("nat-a", nw, impair.MustParse(spec)); err != nil {
			t.Fatalf("%s on %s under load: %v", spec, nw, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("setting %s under load took %v", spec, d)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.ImpairErr(); err != nil {
		t.Fatal(err)
	}
}

// A NAT's own answers to an unsolicited SYN (REJECT's RST or ICMP error)
// still leave through an impaired egress: queued, the kernel would drop
// them (they share the SYN's unconfirmed conntrack entry), and an "rst"
// NAT would silently behave like a "drop" one under every delay.
func TestImpairKeepsNATReplies(t *testing.T) {
	natlabtest.RequireRoot(t)
	for _, profile := range []string{"linux-default", "icmp-unsolicited"} {
		t.Run(profile, func(t *testing.T) {
			l := natlabtest.New(t, "two-nat", profile)
			if err := l.ImpairLink(natlab.LinkImpairment{Network: "wan-a", Spec: "delay=7500us"}); err != nil {
				t.Fatal(err)
			}
			natA := node(t, l, "nat-a")
			start := time.Now()
			_, err := dialFrom(t, node(t, l, "rv"), netip.AddrPortFrom(natA.Addr("wan-a"), 5555))
			if err == nil || strings.Contains(err.Error(), "timeout") {
				t.Fatalf("an unsolicited SYN to %s through the impaired link: %v after %v; want the NAT's refusal", profile, err, time.Since(start))
			}
			if err := l.ImpairErr(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
