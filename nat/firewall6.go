package nat

// Firewall6 is p as a dual-stack device realises it for IPv6, which it
// routes untranslated through a stateful firewall built from the same
// profile (natlab/rules6.go, RFC 6092): no translation, so the mapping is
// endpoint-independent and keeps the host's port; the filtering, the
// answer to an unsolicited SYN, simultaneous open, ICMP time-exceeded and
// sequence tracking (with what it derives: outbound SYN-ACKs after the
// host's own SYN) are p's; a delayed ICMP answer is an IPv4 mapper's
// habit, so the firewall drops such SYNs. A host with no NAT (p.NAT
// false) has no firewall either. The model predicts IPv6 cells from it.
func (p *Profile) Firewall6() *Profile {
	if !p.NAT {
		return p
	}
	q := *p
	q.Name = p.Name + "/ipv6"
	q.Mapping, q.PortAllocation, q.PortDelta = EndpointIndependent, Preserve, 0
	if q.UnsolicitedSYN == SYNDelayedICMP {
		q.UnsolicitedSYN = SYNDrop
	}
	q.Unknown = append([]string(nil), p.Unknown...)
	return &q
}
