package natlab_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/impair"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// dial6 connects over IPv6 from a lab node, from local (any port when
// zero), and gives up after wait.
func dial6(n *natlab.Node, local, dst netip.AddrPort, wait time.Duration) (net.Conn, error) {
	var c net.Conn
	err := natlab.Do(n.Handle, func() error {
		d := net.Dialer{Control: sockopt.Control(0), Timeout: wait}
		if local.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(local)
		}
		var err error
		c, err = d.Dial("tcp6", dst.String())
		return err
	})
	return c, err
}

// listen6 listens (over IPv6, or IPv4 for an IPv4 address) on a lab node (with port reuse, so a dial
// from the same port can share it) and accepts in the background.
func listen6(t *testing.T, n *natlab.Node, ap netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := natlab.Do(n.Handle, func() error {
		lc := net.ListenConfig{Control: sockopt.Control(0)}
		var err error
		ln, err = lc.Listen(context.Background(), sockopt.Network(ap), ap.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// simultaneousOpen dials a and b at each other at once, each from the
// port the other aims at, and reports what a's dial came to.
func simultaneousOpen(a, b *natlab.Node, pa, pb uint16) string {
	ea, eb := netip.AddrPortFrom(a.Addr6(), pa), netip.AddrPortFrom(b.Addr6(), pb)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if c, err := dial6(b, eb, ea, 3*time.Second); err == nil {
			c.Close()
		}
	}()
	c, err := dial6(a, ea, eb, 3*time.Second)
	if err == nil {
		c.Close()
	}
	<-done
	return sockopt.Outcome(err)
}

// TestIPv6Firewall: in the dual-stack lab, IPv6 crosses a NAT node
// untranslated, and the node filters it as its profile's filtering knobs
// say: an outbound connection works and shows the host's own address; an
// unsolicited inbound SYN is dropped, reset or answered with ICMPv6; an
// endpoint-independent filter admits a connection to a port that has
// connected out; simultaneous open passes unless the profile drops it.
func TestIPv6Firewall(t *testing.T) {
	natlabtest.RequireRoot(t)
	for _, tc := range []struct {
		profile     string
		unsolicited string // rv -> a with nothing open from a
		afterOut    string // b -> a's port that connected out to rv
		simOpen     string // a and b dialling each other at once
	}{
		{"port-restricted-cone", "timeout", "timeout", "connected"},
		{"rst-unsolicited", "refused", "refused", ""},
		{"icmp-unsolicited", "refused", "refused", ""},
		{"no-simultaneous-open", "timeout", "timeout", "timeout"},
		{"full-cone", "refused", "connected", ""},
		{"none", "connected", "connected", ""},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			l := natlabtest.New(t, "two-nat6", tc.profile)
			a, b, rv := node(t, l, "a"), node(t, l, "b"), node(t, l, "rv")
			listen6(t, rv, netip.AddrPortFrom(rv.Addr6(), 9000))
			listen6(t, a, netip.AddrPortFrom(a.Addr6(), 9001))
			listen6(t, a, netip.AddrPortFrom(a.Addr6(), 9002))

			c, err := dial6(a, netip.AddrPortFrom(a.Addr6(), 9002), netip.AddrPortFrom(rv.Addr6(), 9000), 2*time.Second)
			if err != nil {
				t.Fatalf("a -> rv over IPv6: %v", err)
			}
			if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != a.Addr6() {
				t.Errorf("a's connection left from %s, want its own %s", got, a.Addr6())
			}
			defer c.Close()
			// Long enough for the SYN's retransmission after a second: with
			// no delay on the path, the ICMPv6 error to the first SYN comes
			// back while connect still holds the socket, so the kernel keeps
			// it as a soft error and only the second one's ends the dial.
			wait := 1500 * time.Millisecond
			if _, err := dial6(rv, netip.AddrPort{}, netip.AddrPortFrom(a.Addr6(), 9001), wait); sockopt.Outcome(err) != tc.unsolicited {
				t.Errorf("unsolicited rv -> a: %v (%s), want %s", err, sockopt.Outcome(err), tc.unsolicited)
			}
			if _, err := dial6(b, netip.AddrPort{}, netip.AddrPortFrom(a.Addr6(), 9002), wait); sockopt.Outcome(err) != tc.afterOut {
				t.Errorf("b -> a's port that connected out: %v (%s), want %s", err, sockopt.Outcome(err), tc.afterOut)
			}
			if tc.simOpen == "" {
				return // a reset (a NAT's, or the host's own with no filter) races the other SYN
			}
			if got := simultaneousOpen(a, b, 9101, 9102); got != tc.simOpen {
				t.Errorf("simultaneous open: %s, want %s", got, tc.simOpen)
			}
		})
	}
}

// TestIPv6FirewallLoadsForEveryProfile: the kernel takes every built-in
// profile's rules on a dual-stack NAT node (their IPv6 table too).
func TestIPv6FirewallLoadsForEveryProfile(t *testing.T) {
	natlabtest.RequireRoot(t)
	profiles, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	l := natlabtest.New(t, "two-nat6", "port-restricted-cone")
	for _, p := range profiles {
		if err := l.SetProfile("nat-a", p); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
}

// TestIPv6HopLimit: sockopt's TTL is the unicast hop limit on an IPv6
// socket, and Dial picks the family from the addresses (an unspecified
// local address with a port binds that port in the remote's family): a
// SYN with one hop dies at the NAT node, whose ICMPv6 time-exceeded ends
// the dial as unreachable (at the retransmission: see TestIPv6Firewall),
// and the same dial without a limit connects from the port asked for.
func TestIPv6HopLimit(t *testing.T) {
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat6", "port-restricted-cone")
	a, rv := node(t, l, "a"), node(t, l, "rv")
	listen6(t, rv, netip.AddrPortFrom(rv.Addr6(), 9000))
	for _, tc := range []struct {
		ttl  int
		want string
	}{{1, "unreachable"}, {0, "connected"}} {
		local := netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(9200+tc.ttl))
		var got netip.AddrPort
		err := natlab.Do(a.Handle, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
			defer cancel()
			c, err := sockopt.Dial(ctx, local, netip.AddrPortFrom(rv.Addr6(), 9000), tc.ttl)
			if err == nil {
				got = c.LocalAddr().(*net.TCPAddr).AddrPort()
				c.Close()
			}
			return err
		})
		if sockopt.Outcome(err) != tc.want {
			t.Errorf("hop limit %d: %v (%s), want %s", tc.ttl, err, sockopt.Outcome(err), tc.want)
		}
		if err == nil && (got.Port() != local.Port() || !got.Addr().Is6()) {
			t.Errorf("hop limit %d: connected from %s, want IPv6 port %d", tc.ttl, got, local.Port())
		}
	}
}

// An impairment delays IPv6 as it delays IPv4 (both families take the
// node's queue): a handshake to the server over either family takes the
// round trip the core adds. The firewall's own answers are not queued
// (the kernel would drop them there): with nat-a's WAN impaired, its RST
// to an unsolicited IPv6 SYN still reaches the sender.
func TestIPv6Impaired(t *testing.T) {
	natlabtest.RequireRoot(t)
	l := natlabtest.New(t, "two-nat6", "rst-unsolicited")
	a, rv := node(t, l, "a"), node(t, l, "rv")
	listen6(t, rv, netip.AddrPortFrom(rv.Addr6(), 9000))
	listen6(t, rv, netip.AddrPortFrom(rv.Addr(), 9001))
	const delay = 40 * time.Millisecond
	for _, nw := range rv.Ifaces {
		if err := l.Impair(rv.Name, nw.Network, impair.MustParse("delay="+delay.String())); err != nil {
			t.Fatal(err)
		}
	}
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(rv.Addr6(), 9000), netip.AddrPortFrom(rv.Addr(), 9001)} {
		var took time.Duration
		err := natlab.Do(a.Handle, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			c, err := sockopt.Dial(ctx, netip.AddrPort{}, dst, 0)
			took = time.Since(start)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		if took < delay || took > delay+30*time.Millisecond {
			t.Errorf("%s: handshake took %v, want the %v the server's egress adds", dst, took, delay)
		}
	}
	if err := l.Impair("nat-a", "wan-a", impair.MustParse("delay=10ms")); err != nil {
		t.Fatal(err)
	}
	err := natlab.Do(rv.Handle, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		defer cancel()
		c, err := sockopt.Dial(ctx, netip.AddrPort{}, netip.AddrPortFrom(a.Addr6(), 39999), 0)
		if err == nil {
			c.Close()
		}
		return err
	})
	if got := sockopt.Outcome(err); got != "refused" {
		t.Errorf("unsolicited SYN to a through its impaired firewall: %v (%s), want refused (the firewall's RST)", err, got)
	}
}
