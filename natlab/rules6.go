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

// filterSet6 is what a filtering knob keeps in an IPv6 table: the set
// (its element type), what an outbound connection records in it, and
// what an inbound packet must match in it. Address-and-port-dependent
// filtering keeps none: conntrack's replies are all it admits.
type filterSet6 struct{ name, typ, record, match string }

var filterSets6 = map[nat.Dependence]filterSet6{
	nat.EndpointIndependent: {"eif6", "ipv6_addr . inet_service", "ip6 saddr . tcp sport", "ip6 daddr . tcp dport"},
	nat.AddressDependent:    {"adf6", "ipv6_addr . inet_service . ipv6_addr", "ip6 saddr . tcp sport . ip6 daddr", "ip6 daddr . tcp dport . ip6 saddr"},
}

// firewall6 writes the IPv6 table of a NAT node whose inside is dual-stack.
func (r *ruleset) firewall6() {
	p, wan := r.p, r.wan
	life := max(p.EstablishedTimeout, p.TransitoryTimeout)
	r.w("table ip6 %s {", table6)
	r.w("  # %s as an IPv6 firewall: routes untranslated, filters by the profile's filtering knobs.", p.Name)
	set, filtered := filterSets6[p.Filtering]
	if filtered {
		r.w("  set %s { type %s; flags dynamic, timeout; timeout %ds; }", set.name, set.typ, life)
	}
	r.w("  chain forward {")
	r.w("    type filter hook forward priority filter; policy accept;")
	r.w("    ct state invalid drop")
	r.simultaneousOpen()
	if p.ICMPTimeExceeded == nat.Drop {
		r.w("    iifname %s icmpv6 type time-exceeded drop", wan)
	}
	if filtered {
		r.w("    iifname != %s meta l4proto tcp ct state new ct direction original update @%s { %s }", wan, set.name, set.record)
	}
	r.w("    iifname != %s accept", wan)
	r.w("    ct direction reply accept")
	r.w("    ct state related accept")
	if filtered {
		r.w("    iifname %s meta l4proto tcp %s @%s accept", wan, set.match, set.name)
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
