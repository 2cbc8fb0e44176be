package check

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/machsend/machsend/nat"
)

// The IPv6 probes: the check lab is dual-stack, and a NAT node filters
// IPv6 (untranslated) with its profile's filtering knobs (natlab's
// rules6.go). Each knob that applies to IPv6 is probed again over it and
// reported as "KNOB (IPv6)".

// ends6 are the IPv6 addresses the IPv6 probes use.
type ends6 struct {
	a, rv1, rv2 netip.Addr
}

// v6 returns the lab's IPv6 ends, or false when the lab is IPv4 only.
func (pr *prober) v6() (ends6, bool) {
	var e ends6
	e.a = pr.a.Addr6()
	for _, i := range pr.rv.Ifaces {
		if len(i.Addrs6) >= 2 {
			e.rv1, e.rv2 = i.Addrs6[0].Addr(), i.Addrs6[1].Addr()
		}
	}
	return e, e.a.IsValid() && e.rv1.IsValid()
}

// firewall6 probes filtering, the answer to an unsolicited SYN and
// simultaneous open over IPv6.
func (pr *prober) firewall6(ctx context.Context) error {
	e, ok := pr.v6()
	if !ok {
		return nil
	}
	for _, probe := range []func(ends6) error{pr.filtering6, pr.unsolicited6, pr.simultaneous6} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := probe(e); err != nil {
			return fmt.Errorf("IPv6: %w", err)
		}
	}
	return nil
}

// filtering6: a connects out from port q; then SYNs to a:q from the same
// remote address (another port) and from another address.
func (pr *prober) filtering6(e ends6) error {
	const q = 32021
	ln, err := listen(pr.a, ap(e.a, q))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	pr.closers = append(pr.closers, func() { ln.Close(); drain(acc) })
	out := dial(pr.a, ap(e.a, q), ap(e.rv1, 7001), 2*time.Second, 0)
	if out.Err != nil {
		return fmt.Errorf("a:%d -> %s: %s", q, ap(e.rv1, 7001), out.Outcome)
	}
	pr.closers = append(pr.closers, func() { out.Conn.Close() })
	sameOut, same := pr.inbound(ap(e.rv1, 7301), ap(e.a, q), acc)
	otherOut, other := pr.inbound(ap(e.rv2, 7302), ap(e.a, q), acc)
	obs := filteringSeen(same, other)
	pr.add("filtering (IPv6)", pr.p.Filtering, obs, obs == pr.filteringWanted(),
		"a:%d connected out to %s; SYN from %s -> %s, from %s -> %s",
		q, ap(e.rv1, 7001), ap(e.rv1, 7301), sameOut, ap(e.rv2, 7302), otherOut)
	return nil
}

// unsolicited6: a SYN to a port of a that never connected out (a listens
// there, so a SYN the firewall let through would connect); rv's capture
// tells a reset from ICMPv6 and which.
func (pr *prober) unsolicited6(e ends6) error {
	const port = 32099
	ln, err := listen(pr.a, ap(e.a, port))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	defer func() { ln.Close(); drain(acc) }()
	c, err := pr.lab.Capture("rv", "pub", "")
	if err != nil {
		return err
	}
	// 1.5 s: an ICMPv6 error to the first SYN may come back while connect
	// holds the socket (the kernel keeps it as a soft error); the one to
	// the retransmission after a second ends the dial.
	r := dial(pr.rv, ap(e.rv1, 7303), ap(e.a, port), 1500*time.Millisecond, 0)
	if r.Conn != nil {
		r.Conn.Close()
	}
	if err := c.Stop(); err != nil {
		return err
	}
	obs := "silent"
	if r.Err == nil {
		obs = "passed"
	}
	for _, p := range c.Packets() {
		pk := p.Decode()
		if t, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && t.RST && t.SrcPort == port {
			obs = string(nat.SYNRST)
		}
		if ic, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && ic.TypeCode.Type() == layers.ICMPv6TypeDestinationUnreachable {
			switch ic.TypeCode.Code() {
			case layers.ICMPv6CodePortUnreachable:
				obs = string(nat.SYNICMPPort)
			case layers.ICMPv6CodeAdminProhibited:
				obs = string(nat.SYNICMPAdmin)
			default:
				obs = "icmpv6 " + ic.TypeCode.String()
			}
		}
	}
	pr.add("unsolicited-syn (IPv6)", pr.p.UnsolicitedSYN, obs, obs == pr.unsolicitedWanted(),
		"SYN %s -> %s: dial %s; %d frames captured on rv", ap(e.rv1, 7303), ap(e.a, port), r.Outcome, len(c.Packets()))
	return nil
}

// simultaneous6: a's SYN is lost beyond the firewall (rv drops it); rv's
// SYN then comes back on that tuple.
func (pr *prober) simultaneous6(e ends6) error {
	const lp = 32031
	dst := ap(e.rv1, 7101)
	ares := make(chan dialResult, 1)
	go func() { ares <- dial(pr.a, ap(e.a, lp), dst, 3*time.Second, 0) }()
	time.Sleep(150 * time.Millisecond)
	r := dial(pr.rv, dst, ap(e.a, lp), 2*time.Second, 0)
	a := <-ares
	for _, c := range []dialResult{r, a} {
		if c.Conn != nil {
			c.Conn.Close()
		}
	}
	obs := simultaneousSeen(r, a)
	pr.add("simultaneous-open (IPv6)", pr.p.SimultaneousOpen, obs, obs == string(pr.p.SimultaneousOpen),
		"a SYN %s -> %s (dropped at rv); rv SYN %s -> %s: rv %s, a %s",
		ap(e.a, lp), dst, dst, ap(e.a, lp), r.Outcome, a.Outcome)
	return nil
}
