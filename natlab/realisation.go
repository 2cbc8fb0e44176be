package natlab

import (
	"fmt"

	"github.com/machsend/machsend/nat"
)

// KnobRealisation says how the kernel realises one knob of a profile.
type KnobRealisation struct {
	Knob  string `json:"knob"`
	Value string `json:"value"`
	Exact bool   `json:"exact"`
	How   string `json:"how"`
}

// Realisation lists, knob by knob, how this profile is built from netfilter and
// whether the result is exact or an approximation (and in what way).
func Realisation(p *nat.Profile) []KnobRealisation {
	if !p.NAT {
		return []KnobRealisation{{Knob: "nat", Value: "off", Exact: true, How: "plain IPv4 forwarding, no netfilter rules"}}
	}
	var out []KnobRealisation
	add := func(knob string, value any, exact bool, how string) {
		out = append(out, KnobRealisation{knob, fmt.Sprint(value), exact, how})
	}
	mem := "a rule right after source NAT records each new mapping in an nft map keyed by %s, in the packet path; later connections from that endpoint are SNATed to the recorded port; the mapper helper removes the entry when the mapping's last conntrack entry dies. Exact except that the mapping's lifetime is bounded by a safety timeout of max(timers)"
	switch p.Mapping {
	case nat.EndpointIndependent:
		if p.PortAllocation == nat.Preserve {
			add("mapping", p.Mapping, true, "masquerade keeps the source port; while a conntrack entry exists for the source the same port is reused for every destination")
		} else {
			add("mapping", p.Mapping, true, fmt.Sprintf(mem, "internal address . port"))
		}
	case nat.AddressDependent:
		add("mapping", p.Mapping, true, fmt.Sprintf(mem, "internal address . port . destination address"))
	case nat.AddressPortDependent:
		add("mapping", p.Mapping, true, "a new allocation for every new conntrack tuple; reused only for the same destination address and port")
	case nat.ConnectionDependent:
		add("mapping", p.Mapping, false, "realised as address-and-port-dependent: for TCP a connection is identified by its 5-tuple, so the two differ only when the same 5-tuple is reused while its old entry lives, which conntrack folds into one entry")
	}
	switch p.PortAllocation {
	case nat.Preserve:
		add("port-allocation", p.PortAllocation, false, "masquerade keeps the internal port; on a clash it picks a random free port (Linux), not the next one")
	case nat.Sequential:
		add("port-allocation", fmt.Sprintf("%s (delta %d)", p.PortAllocation, p.PortDelta), false,
			"nftables numgen inc through a typed map of ports (base 20000, step delta); the counter is shared by all internal hosts, as on a real NAT, and other hosts' connections advance it")
	case nat.Random:
		add("port-allocation", p.PortAllocation, true, "masquerade fully-random: a random port for every new mapping")
	}
	switch p.Filtering {
	case nat.EndpointIndependent:
		add("filtering", p.Filtering, true, "each new mapping is recorded in a DNAT map (public port -> internal endpoint) in the packet path; prerouting forwards any inbound TCP to a recorded port; the mapper removes the entry when the mapping's last conntrack entry dies")
	case nat.AddressDependent:
		add("filtering", p.Filtering, true, "as endpoint-independent, keyed by remote address . public port: one entry per destination address the mapping has sent to")
	case nat.AddressPortDependent:
		add("filtering", p.Filtering, true, "conntrack: only packets matching an existing entry's reply tuple are translated inward")
	case nat.ConnectionDependent:
		add("filtering", p.Filtering, false, "realised as address-and-port-dependent (conntrack); identical for TCP except for 5-tuple reuse")
	}
	switch p.UnsolicitedSYN {
	case nat.SYNDrop:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain drops new inbound TCP on the WAN")
	case nat.SYNRST:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain rejects new inbound TCP on the WAN with tcp reset")
	case nat.SYNICMPPort, nat.SYNICMPAdmin:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain rejects new inbound TCP with the ICMP type 3 code")
	case nat.SYNDelayedICMP:
		add("unsolicited-syn", p.UnsolicitedSYN, false, "unsolicited SYNs are dropped (the peer retransmits, so a punch inside the 6 s hold succeeds exactly as RFC 5382 REQ-4 intends); the port-unreachable that REQ-4 sends after 6 s without an outbound SYN is not generated")
	}
	switch p.SimultaneousOpen {
	case nat.SimAccept:
		add("simultaneous-open", p.SimultaneousOpen, true, "conntrack SYN_SENT2: an inbound SYN on an outbound SYN's tuple is forwarded")
	case nat.SimDrop:
		add("simultaneous-open", p.SimultaneousOpen, true, "forward chain drops inbound SYN (no ACK) in the reply direction")
	case nat.SimRST:
		add("simultaneous-open", p.SimultaneousOpen, true, "forward chain answers an inbound SYN in the reply direction with tcp reset")
	}
	switch p.SequenceTracking {
	case nat.SeqStrict:
		add("sequence-tracking", p.SequenceTracking, true, "nf_conntrack_tcp_be_liberal=0; packets conntrack marks invalid are dropped (not leaked untranslated)")
	case nat.SeqLiberal:
		add("sequence-tracking", p.SequenceTracking, true, "nf_conntrack_tcp_be_liberal=1: out-of-window segments, e.g. a SYN-ACK with a new ISN, are accepted and translated")
	}
	switch p.ICMPTimeExceeded {
	case nat.Translate:
		add("icmp-time-exceeded", p.ICMPTimeExceeded, true, "conntrack RELATED: the ICMP is translated back to the internal host")
	case nat.Drop:
		add("icmp-time-exceeded", p.ICMPTimeExceeded, true, "forward chain drops inbound ICMP time-exceeded")
	}
	switch p.OutboundSYNACK {
	case nat.Translate:
		add("outbound-synack", p.OutboundSYNACK, true, "conntrack calls a SYN-ACK after an outbound SYN invalid; a forward rule rewrites it statelessly to the public endpoint the SYN's mapping got (recorded per 4-tuple in the packet path)")
	case nat.Drop:
		add("outbound-synack", p.OutboundSYNACK, true, "conntrack calls a SYN-ACK after an outbound SYN invalid and the forward chain drops invalid packets")
	}
	add("timers", fmt.Sprintf("transitory %ds, established %ds", p.TransitoryTimeout, p.EstablishedTimeout), true,
		"per-namespace nf_conntrack_tcp_timeout_{syn_sent,syn_recv} and _established; mappings live exactly as long as their conntrack entries")
	if p.Hairpinning {
		add("hairpinning", "on", false, "prerouting DNATs LAN packets to the public address through the mapper's map; postrouting rewrites the source to the public address keeping the internal port, which equals the mapped port only under port preservation")
	} else {
		add("hairpinning", "off", true, "LAN packets to the public address reach the NAT itself and get the unsolicited-SYN response")
	}
	return out
}

// needsMapper reports whether realising p needs the userspace mapper helper.
func needsMapper(p *nat.Profile) bool {
	if !p.NAT {
		return false
	}
	return p.Mapping == nat.AddressDependent || (p.Mapping == nat.EndpointIndependent && p.PortAllocation != nat.Preserve) ||
		p.Filtering == nat.EndpointIndependent || p.Filtering == nat.AddressDependent || p.Hairpinning
}
