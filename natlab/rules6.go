package natlab

import (
	"github.com/machsend/machsend/nat"
)

// IPv6 on a NAT node. There is no NAT66 in the lab: a NAT node routes
// IPv6 untranslated and filters it with a stateful firewall, what RFC 6092
// describes for IPv6 customer-edge routers, built from the same profile's
// filtering knobs, so one profile is one dual-stack device:
//
//   - filtering: address-and-port-dependent admits only conntrack's
//     replies (RFC 6092's recommended behaviour); endpoint-independent
//     also admits inbound connections to an inside address and port that
//     has connected out; address-dependent, from an address it has
//     connected to.
//   - unsolicited_syn: what an inbound SYN nothing admits gets: dropped
//     (delayed-icmp too: the delay is an IPv4 mapper's), a TCP reset,
//     or ICMPv6 port-unreachable / administratively prohibited.
//   - simultaneous_open: an inbound SYN crossing the inside host's own
//     SYN (conntrack's reply direction) passes (RFC 6092 asks that TCP
//     simultaneous open work), is dropped, or answered with a reset.
//   - icmp_time_exceeded: dropped from the WAN, or passed.
//
// Sequence tracking and the timers are the namespace's conntrack
// settings, shared by both families.

// table6 is the IPv6 table's name (family ip6).
const table6 = "natlab6"

// firewall6 writes the IPv6 table of a NAT node whose inside is dual-stack.
func (r *ruleset) firewall6() {
	p, wan := r.p, r.wan
	life := max(p.EstablishedTimeout, p.TransitoryTimeout)
	r.w("table ip6 %s {", table6)
	r.w("  # %s as an IPv6 firewall: routes untranslated, filters by the profile's filtering knobs.", p.Name)
	switch p.Filtering {
	case nat.EndpointIndependent:
		r.w("  set eif6 { type ipv6_addr . inet_service; flags dynamic, timeout; timeout %ds; }", life)
	case nat.AddressDependent:
		r.w("  set adf6 { type ipv6_addr . inet_service . ipv6_addr; flags dynamic, timeout; timeout %ds; }", life)
	}
	r.w("  chain forward {")
	r.w("    type filter hook forward priority filter; policy accept;")
	r.w("    ct state invalid drop")
	r.simultaneousOpen()
	if p.ICMPTimeExceeded == nat.Drop {
		r.w("    iifname %s icmpv6 type time-exceeded drop", wan)
	}
	out := "iifname != " + wan + " meta l4proto tcp ct state new ct direction original"
	switch p.Filtering {
	case nat.EndpointIndependent:
		r.w("    %s update @eif6 { ip6 saddr . tcp sport }", out)
	case nat.AddressDependent:
		r.w("    %s update @adf6 { ip6 saddr . tcp sport . ip6 daddr }", out)
	}
	r.w("    iifname != %s accept", wan)
	r.w("    ct direction reply accept")
	r.w("    ct state related accept")
	switch p.Filtering {
	case nat.EndpointIndependent:
		r.w("    iifname %s meta l4proto tcp ip6 daddr . tcp dport @eif6 accept", wan)
	case nat.AddressDependent:
		r.w("    iifname %s meta l4proto tcp ip6 daddr . tcp dport . ip6 saddr @adf6 accept", wan)
	}
	syn := "iifname " + wan + " tcp flags & (syn | ack) == syn"
	switch p.UnsolicitedSYN {
	case nat.SYNRST:
		r.w("    %s reject with tcp reset", syn)
	case nat.SYNICMPPort:
		r.w("    %s reject with icmpv6 type port-unreachable", syn)
	case nat.SYNICMPAdmin:
		r.w("    %s reject with icmpv6 type admin-prohibited", syn)
	}
	r.w("    iifname %s drop", wan)
	r.w("  }")
	r.w("}")
}
