package check

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/machsend/machsend/internal/rawtcp"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"

	"github.com/google/gopacket/layers"

	"github.com/machsend/machsend/natlab"
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// mapping: the same internal endpoint to two ports of one address and to a
// second address; then successive mappings from fresh internal ports.
func (pr *prober) mapping(ctx context.Context) error {
	const lp = 31001
	var m [3]netip.AddrPort
	for i, dst := range []netip.AddrPort{ap(pr.rv1, 7001), ap(pr.rv1, 7002), ap(pr.rv2, 7001)} {
		var err error
		if m[i], _, err = pr.observe(lp, dst, pr.acc[dst]); err != nil {
			return fmt.Errorf("mapping probe: %w", err)
		}
		time.Sleep(settle)
	}
	var obs string
	switch {
	case m[0].Addr() != pr.pub:
		obs = "not translated to " + pr.pub.String()
	case m[0] == m[1] && m[0] == m[2]:
		obs = string(nat.EndpointIndependent)
	case m[0] == m[1]:
		obs = string(nat.AddressDependent)
	case m[0] != m[1] && m[0] != m[2] && m[1] != m[2]:
		obs = string(nat.AddressPortDependent)
	default:
		obs = "inconsistent"
	}
	want := pr.p.Mapping
	if want == nat.ConnectionDependent {
		want = nat.AddressPortDependent // indistinguishable for TCP; see Realisation
	}
	pr.add("mapping", pr.p.Mapping, obs, obs == string(want),
		"a:%d seen by rv as %s (to %s:7001), %s (to %s:7002), %s (to %s:7001)", lp, m[0], pr.rv1, m[1], pr.rv1, m[2], pr.rv2)

	// Port allocation: four fresh internal ports, one after another.
	var ports []int
	preserved := true
	for i := 0; i < 4; i++ {
		lp := uint16(31011 + i)
		o, _, err := pr.observe(lp, ap(pr.rv1, 7003), pr.acc[ap(pr.rv1, 7003)])
		if err != nil {
			return fmt.Errorf("allocation probe: %w", err)
		}
		ports = append(ports, int(o.Port()))
		if o.Port() != lp {
			preserved = false
		}
		time.Sleep(settle)
	}
	delta := ports[1] - ports[0]
	seq := delta != 0
	for i := 2; i < len(ports); i++ {
		if ports[i]-ports[i-1] != delta {
			seq = false
		}
	}
	var aobs, want2 string
	switch {
	case preserved:
		aobs = string(nat.Preserve)
	case seq:
		aobs = fmt.Sprintf("%s (delta %d)", nat.Sequential, delta)
	default:
		aobs = string(nat.Random)
	}
	want2 = string(pr.p.PortAllocation)
	if want2 == string(nat.Sequential) {
		want2 = fmt.Sprintf("%s (delta %d)", nat.Sequential, pr.p.PortDelta)
	}
	pr.add("port-allocation", want2, aobs, aobs == want2, "internal ports 31011-31014 mapped to %v", ports)
	return nil
}

// filtering: after a connects out, SYNs to its mapping from the same address
// on another port and from another address.
func (pr *prober) filtering(ctx context.Context) error {
	const q = 31021
	ln, err := listen(pr.a, ap(pr.aAddr, q))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	pr.closers = append(pr.closers, func() { ln.Close(); drain(acc) })
	m, _, err := pr.observe(q, ap(pr.rv1, 7001), pr.acc[ap(pr.rv1, 7001)])
	if err != nil {
		return fmt.Errorf("filtering probe: %w", err)
	}
	time.Sleep(settle)
	sameOut, same := pr.inbound(ap(pr.rv1, 7301), m, acc)
	otherOut, other := pr.inbound(ap(pr.rv2, 7302), m, acc)
	obs := filteringSeen(same, other)
	pr.add("filtering", pr.p.Filtering, obs, obs == pr.filteringWanted(),
		"a:%d mapped to %s after a SYN to %s:7001; SYN from %s:7301 -> %s, from %s:7302 -> %s",
		q, m, pr.rv1, pr.rv1, sameOut, pr.rv2, otherOut)
	return nil
}

// inbound dials from rv's endpoint from to to, where acc accepts, and
// reports the dial's outcome and whether the connection got through.
func (pr *prober) inbound(from, to netip.AddrPort, acc *acceptor) (string, bool) {
	r := dial(pr.rv, from, to, 1500*time.Millisecond, 0)
	if r.Conn != nil {
		defer r.Conn.Close()
	}
	c, ok := acc.next(200 * time.Millisecond)
	if ok {
		c.Close()
	}
	return r.Outcome, r.Err == nil && ok
}

// filteringSeen names the filtering two inbound SYNs to a port that
// connected out showed: one from the address it connected to (another
// port), one from another address.
func filteringSeen(same, other bool) string {
	switch {
	case same && other:
		return string(nat.EndpointIndependent)
	case same:
		return string(nat.AddressDependent)
	case !other:
		return string(nat.AddressPortDependent)
	}
	return "inconsistent"
}

// filteringWanted is the filtering the probes should see for the profile
// (connection-dependent filtering looks address-and-port-dependent).
func (pr *prober) filteringWanted() string {
	if pr.p.Filtering == nat.ConnectionDependent {
		return string(nat.AddressPortDependent)
	}
	return string(pr.p.Filtering)
}

// simultaneousSeen names what a SYN from rv on the tuple of a's own
// (lost) SYN came to: r is rv's dial, a is a's.
func simultaneousSeen(r, a dialResult) string {
	switch {
	case r.Err == nil && a.Err == nil:
		return string(nat.SimAccept)
	case r.Outcome == "refused" || r.Outcome == "reset":
		return string(nat.SimRST)
	case r.Outcome == "timeout":
		return string(nat.SimDrop)
	}
	return "rv " + r.Outcome + ", a " + a.Outcome
}

// unsolicited: what comes back for a SYN to an unmapped public port.
func (pr *prober) unsolicited(ctx context.Context) error {
	c, err := pr.lab.Capture("rv", "pub", "")
	if err != nil {
		return err
	}
	r := dial(pr.rv, ap(pr.rv1, 7303), ap(pr.pub, 39999), 1500*time.Millisecond, 0)
	if r.Conn != nil {
		r.Conn.Close()
	}
	if err := c.Stop(); err != nil {
		return err
	}
	obs := "silent"
	for _, p := range c.Packets() {
		pk := p.Decode()
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil || !ip.SrcIP.Equal(pr.pub.AsSlice()) {
			continue
		}
		if t, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && t.RST && t.SrcPort == 39999 {
			obs = string(nat.SYNRST)
		}
		if ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && ic.TypeCode.Type() == layers.ICMPv4TypeDestinationUnreachable {
			switch ic.TypeCode.Code() {
			case layers.ICMPv4CodePort:
				obs = string(nat.SYNICMPPort)
			case layers.ICMPv4CodeCommAdminProhibited:
				obs = string(nat.SYNICMPAdmin)
			default:
				obs = "icmp " + ic.TypeCode.String()
			}
		}
	}
	pr.add("unsolicited-syn", pr.p.UnsolicitedSYN, obs, obs == pr.unsolicitedWanted(),
		"SYN %s:7303 -> %s:39999: dial %s; %d frames captured on rv", pr.rv1, pr.pub, r.Outcome, len(c.Packets()))
	return nil
}

// unsolicitedWanted is what the probes should see answer an unsolicited
// SYN within their 1.5 s: delayed-icmp is silent that long (REQ-4 holds
// 6 s).
func (pr *prober) unsolicitedWanted() string {
	if w := pr.p.UnsolicitedSYN; w != nat.SYNDrop && w != nat.SYNDelayedICMP {
		return string(w)
	}
	return "silent"
}

// mappingOf finds, in the NAT's conntrack table, the public endpoint of the
// connection from a:lport to dst.
func (pr *prober) mappingOf(lport uint16, dst netip.AddrPort) (natlab.ConntrackEntry, error) {
	ents, err := pr.lab.Conntrack(pr.nat)
	if err != nil {
		return natlab.ConntrackEntry{}, err
	}
	for _, e := range ents {
		if e.OrigSrc == ap(pr.aAddr, lport) && e.OrigDst == dst {
			return e, nil
		}
	}
	return natlab.ConntrackEntry{}, fmt.Errorf("no conntrack entry for a:%d -> %s on %s", lport, dst, pr.nat)
}

// simultaneous: a's SYN is lost beyond the NAT (rv drops it); rv's SYN then
// arrives on that tuple. Then, if accepted, the same with a's socket closed
// and a listener answering with a new ISN (sequence tracking).
func (pr *prober) simultaneous(ctx context.Context) error {
	const lp = 31031
	dst := ap(pr.rv1, 7101)
	ares := make(chan dialResult, 1)
	go func() { ares <- dial(pr.a, ap(pr.aAddr, lp), dst, 3*time.Second, 0) }()
	time.Sleep(150 * time.Millisecond)
	e, err := pr.mappingOf(lp, dst)
	if err != nil {
		return err
	}
	r := dial(pr.rv, dst, e.ReplyDst, 2*time.Second, 0)
	a := <-ares
	for _, c := range []dialResult{r, a} {
		if c.Conn != nil {
			c.Conn.Close()
		}
	}
	obs := simultaneousSeen(r, a)
	pr.add("simultaneous-open", pr.p.SimultaneousOpen, obs, obs == string(pr.p.SimultaneousOpen),
		"a:%d SYN -> %s (dropped at rv), mapping %s [%s]; rv SYN %s -> %s: rv %s, a %s",
		lp, dst, e.ReplyDst, e.State, dst, e.ReplyDst, r.Outcome, a.Outcome)
	if obs != string(nat.SimAccept) {
		pr.add("sequence-tracking", pr.p.SequenceTracking, "not observable", true,
			"masked: the NAT does not accept simultaneous open (%s), so no SYN-ACK with a new ISN can be provoked", obs)
		return nil
	}
	return pr.sequence(ctx)
}

func (pr *prober) sequence(ctx context.Context) error {
	const lp = 31041
	dst := ap(pr.rv1, 7102)
	if err := synThenClose(pr.a, ap(pr.aAddr, lp), dst); err != nil {
		return err
	}
	e, err := pr.mappingOf(lp, dst)
	if err != nil {
		return err
	}
	ln, err := listen(pr.a, ap(pr.aAddr, lp))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	defer func() { ln.Close(); drain(acc) }()
	r := dial(pr.rv, dst, e.ReplyDst, 2*time.Second, 0)
	if r.Conn != nil {
		r.Conn.Close()
	}
	obs := nat.SeqLiberal
	if r.Err != nil {
		obs = nat.SeqStrict
	}
	pr.add("sequence-tracking", pr.p.SequenceTracking, obs, obs == pr.p.SequenceTracking,
		"a:%d SYN then close, listen; rv SYN %s -> %s reached a's listener, whose SYN-ACK carries a new ISN: rv %s",
		lp, dst, e.ReplyDst, r.Outcome)
	return nil
}

// icmp: a SYN with a TTL that expires at the core router.
func (pr *prober) icmp(ctx context.Context) error {
	c, err := pr.lab.Capture("a", "lan", "")
	if err != nil {
		return err
	}
	const ttl = 2 // a -> nat (1 hop) -> core: expires at the core
	r := dial(pr.a, ap(pr.aAddr, 31051), ap(pr.rv1, 7104), 1200*time.Millisecond, ttl)
	if r.Conn != nil {
		r.Conn.Close()
	}
	if err := c.Stop(); err != nil {
		return err
	}
	obs := nat.Drop
	var from string
	for _, p := range c.Packets() {
		pk := p.Decode()
		ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ok && ip != nil && ic.TypeCode.Type() == layers.ICMPv4TypeTimeExceeded && ip.DstIP.Equal(pr.aAddr.AsSlice()) {
			obs, from = nat.Translate, ip.SrcIP.String()
		}
	}
	pr.add("icmp-time-exceeded", pr.p.ICMPTimeExceeded, obs, obs == pr.p.ICMPTimeExceeded,
		"SYN a:31051 -> %s:7104 with TTL %d: dial %s; time-exceeded reached a: %v %s (%d frames)", pr.rv1, ttl, r.Outcome, obs == nat.Translate, from, len(c.Packets()))
	return nil
}

// outboundSYNACK: NATBlaster's packet. a sends a low-TTL SYN (it dies at the
// core), then injects the SYN-ACK answering a SYN that never came; rv's
// capture says whether it left the NAT translated (public address, the
// SYN's mapped port), not at all, or untranslated.
func (pr *prober) outboundSYNACK(ctx context.Context) error {
	c, err := pr.lab.Capture("rv", "pub", "")
	if err != nil {
		return err
	}
	const lport, rport, ttl = 31091, 7105, 2
	dst := ap(pr.rv1, rport)
	var isn uint32
	err = natlab.Do(pr.a.Handle, func() error {
		cp, err := rawtcp.NewCapture(lport)
		if err != nil {
			return err
		}
		defer cp.Close()
		inj, err := rawtcp.NewInjector()
		if err != nil {
			return err
		}
		defer inj.Close()
		s, err := sockopt.NewRawSocket(ap(netip.IPv4Unspecified(), lport), ttl)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Connect(dst); err != nil {
			return err
		}
		deadline := time.After(time.Second)
		for {
			select {
			case seg := <-cp.C:
				if !seg.Outgoing || !seg.SYN || seg.ACK || seg.Dst != dst {
					continue
				}
				isn = seg.Options.ISN
				pkt, err := rawtcp.SYNACK(seg.Src, dst, seg.Options, 0x5eed, 0)
				if err != nil {
					return err
				}
				return inj.Send(pkt, dst.Addr())
			case <-deadline:
				return fmt.Errorf("outbound-synack probe: own SYN not captured")
			}
		}
	})
	time.Sleep(100 * time.Millisecond)
	if serr := c.Stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	obs, from := nat.Drop, "nothing"
	for _, p := range c.Packets() {
		pk := p.Decode()
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		t, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || ip == nil || !t.SYN || !t.ACK || uint16(t.DstPort) != rport || t.Seq != isn {
			continue
		}
		from = fmt.Sprintf("%s:%d", ip.SrcIP, t.SrcPort)
		if ip.SrcIP.Equal(pr.pub.AsSlice()) {
			obs = nat.Translate
		} else {
			obs = "leaked untranslated"
		}
	}
	pr.add("outbound-synack", pr.p.OutboundSYNACK, obs, obs == pr.p.OutboundSYNACK,
		"a:%d SYN with TTL %d to %s (dies at the core), then an injected SYN-ACK seq %d: rv saw %s", lport, ttl, dst, isn, from)
	return nil
}

// timers: conntrack's remaining timeout for a fresh half-open mapping and an
// established one; a short transitory timer is also waited out.
func (pr *prober) timers(ctx context.Context) error {
	if _, _, err := pr.observe(31062, ap(pr.rv1, 7003), pr.acc[ap(pr.rv1, 7003)]); err != nil {
		return fmt.Errorf("timer probe: %w", err)
	}
	est, err := pr.mappingOf(31062, ap(pr.rv1, 7003))
	if err != nil {
		return err
	}
	et := pr.p.EstablishedTimeout
	pr.add("timers.established", fmt.Sprintf("%ds", et), fmt.Sprintf("%ds", est.Timeout),
		int(est.Timeout) <= et && int(est.Timeout) >= et-2,
		"established a:31062 -> %s:7003 [%s] has %ds left", pr.rv1, est.State, est.Timeout)
	const lp = 31061
	dst := ap(pr.rv1, 7105)
	if err := synThenClose(pr.a, ap(pr.aAddr, lp), dst); err != nil {
		return err
	}
	e, err := pr.mappingOf(lp, dst)
	if err != nil {
		return err
	}
	tr := pr.p.TransitoryTimeout
	ok := int(e.Timeout) <= tr && int(e.Timeout) >= tr-2
	ev := fmt.Sprintf("half-open a:%d -> %s [%s] has %ds left", lp, dst, e.State, e.Timeout)
	if tr <= 10 {
		time.Sleep(time.Duration(tr)*time.Second + 1500*time.Millisecond)
		_, err := pr.mappingOf(lp, dst)
		gone := err != nil
		ok = ok && gone
		ev += fmt.Sprintf("; after %ds it is gone: %v", tr+1, gone)
	}
	pr.add("timers.transitory", fmt.Sprintf("%ds", tr), fmt.Sprintf("%ds", e.Timeout), ok, "%s", ev)

	return nil
}

// hairpin: a connects to b's public mapping.
func (pr *prober) hairpin(ctx context.Context) error {
	const lp = 31071
	ln, err := listen(pr.b, ap(pr.bAddr, lp))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	defer func() { ln.Close(); drain(acc) }()
	rb := dial(pr.b, ap(pr.bAddr, lp), ap(pr.rv1, 7001), 2*time.Second, 0)
	if rb.Err != nil {
		return fmt.Errorf("hairpin probe: b -> rv: %s", rb.Outcome)
	}
	defer rb.Conn.Close()
	rc, ok := pr.acc[ap(pr.rv1, 7001)].next(2 * time.Second)
	if !ok {
		return fmt.Errorf("hairpin probe: rv did not accept b")
	}
	defer rc.Close()
	mb := remoteOf(rc)
	time.Sleep(settle)
	r := dial(pr.a, ap(pr.aAddr, 31072), mb, 1500*time.Millisecond, 0)
	if r.Conn != nil {
		defer r.Conn.Close()
	}
	obs, seen := "off", "nothing"
	if c, ok := acc.next(300 * time.Millisecond); ok && r.Err == nil {
		seen = remoteOf(c).String()
		obs = "on"
		if remoteOf(c).Addr() != pr.pub {
			obs = "on (source not rewritten)"
		}
		c.Close()
	}
	want := "off"
	if pr.p.Hairpinning {
		want = "on"
	}
	pr.add("hairpinning", want, obs, obs == string(want),
		"b:%d mapped to %s; a:31072 -> %s: dial %s, b saw %s", lp, mb, mb, r.Outcome, seen)
	return nil
}

// noNAT: the "none" profile must neither translate nor filter.
func (pr *prober) noNAT(ctx context.Context) error {
	m, _, err := pr.observe(31081, ap(pr.rv1, 7001), pr.acc[ap(pr.rv1, 7001)])
	if err != nil {
		return err
	}
	ln, err := listen(pr.a, ap(pr.aAddr, 31082))
	if err != nil {
		return err
	}
	acc := newAcceptor(ln)
	defer func() { ln.Close(); drain(acc) }()
	r := dial(pr.rv, ap(pr.rv1, 7304), ap(pr.aAddr, 31082), 1500*time.Millisecond, 0)
	if r.Conn != nil {
		r.Conn.Close()
	}
	obs := "off"
	if m.Addr() != pr.aAddr || r.Err != nil {
		obs = "on"
	}
	pr.add("nat", "off", obs, obs == "off", "a:31081 seen by rv as %s; unsolicited SYN to a: %s", m, r.Outcome)
	if e, ok := pr.v6(); ok {
		ln6, err := listen(pr.a, ap(e.a, 31082))
		if err != nil {
			return err
		}
		acc6 := newAcceptor(ln6)
		defer func() { ln6.Close(); drain(acc6) }()
		r6 := dial(pr.rv, ap(e.rv1, 7304), ap(e.a, 31082), 1500*time.Millisecond, 0)
		if r6.Conn != nil {
			r6.Conn.Close()
		}
		obs6 := "off"
		if r6.Err != nil {
			obs6 = "on"
		}
		pr.add("firewall (IPv6)", "off", obs6, obs6 == "off", "unsolicited SYN to %s: %s", ap(e.a, 31082), r6.Outcome)
	}
	return nil
}
