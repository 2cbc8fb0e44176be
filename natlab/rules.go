package natlab

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/machsend/machsend/nat"
)

// NAT port range used for non-preserving allocation (sequential); ports below
// the hosts' ephemeral range make a translated port easy to tell apart.
const (
	seqBase  = 20000
	seqCount = 2000
)

// natPlan is what a NAT node's profile compiles to: one nftables ruleset
// (loaded atomically by `nft -f`) and per-namespace sysctls.
type natPlan struct {
	Ruleset string
	Sysctls map[string]string
	// Mapper says whether the userspace mapper helper must run.
	Mapper bool
}

// natIfaces describes a NAT node's interfaces (and, for sequential
// allocation, where the counter starts).
type natIfaces struct {
	WAN     string         // outside interface name
	Public  netip.Addr     // its public address
	LANs    []string       // inside interface names
	LANNets []netip.Prefix // inside subnets
	// V6 says the inside is dual-stack: the node also filters IPv6
	// (rules6.go).
	V6 bool
	// SeqStart is the index of the first sequentially allocated port. Each
	// (re)load starts elsewhere, so a reused lab does not hand out the
	// ports of the previous trial, whose TIME_WAIT state survives on the
	// far hosts (a conntrack flush does not clear it).
	SeqStart int
}

// compile turns a profile into rules for one NAT node. The ruleset is plain
// nft syntax, so `natlab up --print-rules` shows exactly what the kernel runs.
// Each chain is one stage, in the order the kernel meets them.
func compile(p *nat.Profile, ifs natIfaces) natPlan {
	sys := map[string]string{
		"net/ipv4/ip_forward":                  "1",
		"net/ipv4/conf/all/send_redirects":     "0",
		"net/ipv4/conf/default/send_redirects": "0",
	}
	if ifs.V6 {
		sys["net/ipv6/conf/all/forwarding"] = "1"
	}
	if !p.NAT {
		return natPlan{Sysctls: sys}
	}
	conntrackSysctls(p, sys)
	var lanSet []string
	for _, n := range ifs.LANNets {
		lanSet = append(lanSet, n.String())
	}
	r := &ruleset{p: p, ifs: ifs, wan: strconv.Quote(ifs.WAN), pub: ifs.Public.String(),
		lans: "{ " + strings.Join(lanSet, ", ") + " }"}
	r.w("table ip natlab {")
	r.w("  # %s: %s", p.Name, p.Description)
	r.maps()
	r.prerouting()
	r.postrouting()
	r.record()
	r.forward()
	r.input()
	r.w("}")
	if ifs.V6 {
		r.firewall6()
	}
	return natPlan{Ruleset: r.b.String(), Sysctls: sys, Mapper: needsMapper(p)}
}

// conntrackSysctls sets the per-namespace conntrack knobs: sequence
// tracking and the timers.
func conntrackSysctls(p *nat.Profile, sys map[string]string) {
	liberal := "0"
	if p.SequenceTracking == nat.SeqLiberal {
		liberal = "1"
	}
	sys["net/netfilter/nf_conntrack_tcp_be_liberal"] = liberal
	sys["net/netfilter/nf_conntrack_tcp_timeout_syn_sent"] = strconv.Itoa(p.TransitoryTimeout)
	sys["net/netfilter/nf_conntrack_tcp_timeout_syn_recv"] = strconv.Itoa(p.TransitoryTimeout)
	sys["net/netfilter/nf_conntrack_tcp_timeout_established"] = strconv.Itoa(p.EstablishedTimeout)
}

// ruleset is one NAT node's nftables table being written.
type ruleset struct {
	b    strings.Builder
	p    *nat.Profile
	ifs  natIfaces
	wan  string // quoted WAN interface name
	pub  string // public address
	lans string // inside subnets as an nft set
}

func (r *ruleset) w(format string, args ...any) { fmt.Fprintf(&r.b, format+"\n", args...) }

// seqPorts is how many ports the sequential allocator cycles through.
func seqPorts(delta int) int { return min(seqCount, (65535-seqBase)/delta) }

// maps declares the mapping state the kernel keeps itself: a rule after
// source NAT (record chain) inserts each new mapping in the same packet
// path, so there is no window in which a second connection misses it. The
// mapper helper removes an element when the mapping's last conntrack entry
// dies; the element timeout is only a safety net.
func (r *ruleset) maps() {
	p := r.p
	life := max(p.EstablishedTimeout, p.TransitoryTimeout)
	for _, m := range []string{"eim_map { type ipv4_addr . inet_service : inet_service;",
		"adm_map { type ipv4_addr . inet_service . ipv4_addr : inet_service;",
		"fwd_map { type inet_service : ipv4_addr . inet_service;",
		"adf_map { type ipv4_addr . inet_service : ipv4_addr . inet_service;"} {
		r.w("  map %s flags dynamic, timeout; timeout %ds; }", m, life)
	}
	if p.OutboundSYNACK == nat.Translate {
		// The public port each outbound SYN got, per 4-tuple, for
		// translating an outbound SYN-ACK that conntrack calls invalid.
		r.w("  map syn_map { type ipv4_addr . inet_service . ipv4_addr . inet_service : inet_service; flags dynamic, timeout; timeout %ds; }", p.TransitoryTimeout)
	}
	if p.PortAllocation == nat.Sequential {
		n := seqPorts(p.PortDelta)
		var el []string
		for i := 0; i < n; i++ {
			el = append(el, fmt.Sprintf("%d : %d", i, seqBase+((i+r.ifs.SeqStart)%n)*p.PortDelta))
		}
		r.w("  map seq_map { typeof numgen inc mod %d : tcp sport; elements = { %s } }", n, strings.Join(el, ", "))
	}
}

// prerouting: inbound translation beyond conntrack's own reply tuples.
func (r *ruleset) prerouting() {
	r.w("  chain prerouting {")
	r.w("    type nat hook prerouting priority dstnat; policy accept;")
	switch r.p.Filtering {
	case nat.EndpointIndependent:
		r.w("    iifname %s meta l4proto tcp dnat ip to tcp dport map @fwd_map", r.wan)
	case nat.AddressDependent:
		r.w("    iifname %s meta l4proto tcp dnat ip to ip saddr . tcp dport map @adf_map", r.wan)
	}
	if r.p.Hairpinning {
		r.w("    iifname != %s ip daddr %s meta l4proto tcp dnat ip to tcp dport map @fwd_map", r.wan, r.pub)
	}
	r.w("  }")
}

// postrouting: outbound mapping and port allocation.
func (r *ruleset) postrouting() {
	p, wan, pub := r.p, r.wan, r.pub
	r.w("  chain postrouting {")
	r.w("    type nat hook postrouting priority srcnat; policy accept;")
	if p.Hairpinning {
		r.w("    oifname != %s ip saddr %s ip daddr %s ct status dnat snat ip to %s", wan, r.lans, r.lans, pub)
	}
	switch p.Mapping {
	case nat.EndpointIndependent:
		if p.PortAllocation != nat.Preserve {
			r.w("    oifname %s ip saddr . tcp sport @eim_map snat ip to %s : ip saddr . tcp sport map @eim_map", wan, pub)
		}
	case nat.AddressDependent:
		r.w("    oifname %s ip saddr . tcp sport . ip daddr @adm_map snat ip to %s : ip saddr . tcp sport . ip daddr map @adm_map", wan, pub)
	}
	switch p.PortAllocation {
	case nat.Sequential:
		r.w("    oifname %s meta l4proto tcp snat ip to %s : numgen inc mod %d map @seq_map", wan, pub, seqPorts(p.PortDelta))
	case nat.Random:
		r.w("    oifname %s meta l4proto tcp masquerade fully-random", wan)
	}
	r.w("    oifname %s masquerade", wan)
	r.w("  }")
}

// record: each new mapping is recorded as it is made (after source NAT, so
// tcp sport is the public port and ct original the internal endpoint).
func (r *ruleset) record() {
	p := r.p
	var rec []string
	intEP := "ct original ip saddr . ct original proto-src"
	if p.Mapping == nat.EndpointIndependent && p.PortAllocation != nat.Preserve {
		rec = append(rec, fmt.Sprintf("update @eim_map { %s : tcp sport }", intEP))
	}
	if p.Mapping == nat.AddressDependent {
		rec = append(rec, fmt.Sprintf("update @adm_map { %s . ip daddr : tcp sport }", intEP))
	}
	if p.Filtering == nat.EndpointIndependent || p.Hairpinning {
		rec = append(rec, fmt.Sprintf("update @fwd_map { tcp sport : %s }", intEP))
	}
	if p.Filtering == nat.AddressDependent {
		rec = append(rec, fmt.Sprintf("update @adf_map { ip daddr . tcp sport : %s }", intEP))
	}
	if p.OutboundSYNACK == nat.Translate {
		rec = append(rec, fmt.Sprintf("tcp flags & (fin | syn | rst | ack) == syn update @syn_map { %s . ip daddr . tcp dport : tcp sport }", intEP))
	}
	if len(rec) == 0 {
		return
	}
	r.w("  chain record {")
	r.w("    type filter hook postrouting priority srcnat + 10; policy accept;")
	for _, x := range rec {
		r.w("    oifname %s meta l4proto tcp ct state new ct direction original %s", r.wan, x)
	}
	r.w("  }")
}

// forward: filtering decisions on forwarded traffic.
func (r *ruleset) forward() {
	p, wan := r.p, r.wan
	r.w("  chain forward {")
	r.w("    type filter hook forward priority filter; policy accept;")
	r.w("    # Lab decision (docs/DESIGN.md): packets conntrack calls invalid are dropped, never leaked untranslated.")
	if p.OutboundSYNACK == nat.Translate {
		r.w("    # outbound-synack translate: a SYN-ACK after our own SYN (invalid to conntrack) is")
		r.w("    # rewritten statelessly to the public endpoint its SYN's mapping got.")
		r.w("    iifname != %s ct state invalid tcp flags & (fin | syn | rst | ack) == syn | ack tcp sport set ip saddr . tcp sport . ip daddr . tcp dport map @syn_map ip saddr set %s accept", wan, r.pub)
	}
	r.w("    ct state invalid drop")
	r.w("    # Nothing from the WAN reaches an inside address unless a mapping admits it")
	r.w("    # (conntrack reply direction, or a DNAT the filtering behaviour installed).")
	r.w("    iifname %s ct direction original ct status & dnat == 0 drop", wan)
	r.simultaneousOpen()
	if p.ICMPTimeExceeded == nat.Drop {
		r.w("    iifname %s icmp type time-exceeded drop", wan)
	}
	r.w("  }")
}

// simultaneousOpen: what an inbound SYN crossing the inside host's own
// (conntrack's reply direction) gets, in either family's forward chain.
func (r *ruleset) simultaneousOpen() {
	switch r.p.SimultaneousOpen {
	case nat.SimDrop:
		r.w("    iifname %s tcp flags & (syn | ack) == syn ct direction reply drop", r.wan)
	case nat.SimRST:
		r.w("    iifname %s tcp flags & (syn | ack) == syn ct direction reply reject with tcp reset", r.wan)
	}
}

// input: unsolicited inbound TCP reaches the NAT itself.
func (r *ruleset) input() {
	wan := r.wan
	r.w("  chain input {")
	r.w("    type filter hook input priority filter; policy accept;")
	r.w("    iifname %s ct state established,related accept", wan)
	switch r.p.UnsolicitedSYN {
	case nat.SYNDrop, nat.SYNDelayedICMP:
		r.w("    iifname %s meta l4proto tcp drop", wan)
	case nat.SYNRST:
		r.w("    iifname %s meta l4proto tcp reject with tcp reset", wan)
	case nat.SYNICMPPort:
		r.w("    iifname %s meta l4proto tcp reject with icmp type port-unreachable", wan)
	case nat.SYNICMPAdmin:
		r.w("    iifname %s meta l4proto tcp reject with icmp type admin-prohibited", wan)
	}
	r.w("  }")
}
