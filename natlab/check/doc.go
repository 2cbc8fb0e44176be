// Package check verifies that a realised NAT profile behaves as its YAML
// says. It is white-box: it brings the profile up in the "hairpin" topology
// (hosts a and b behind the NAT, rv with two public addresses behind a core
// router), opens real sockets inside the lab namespaces, and uses packet
// captures and conntrack snapshots of the NAT as evidence.
//
// Every knob has a probe: mapping (one internal endpoint to two ports and two
// addresses), port allocation (successive mappings and their deltas),
// filtering (inbound SYNs from the peer's address on another port and from
// another address), the response to an unsolicited SYN (nothing, RST or which
// ICMP, read from a capture), simultaneous open, sequence tracking (a SYN-ACK
// with a new ISN), ICMP time-exceeded for a low-TTL SYN, the transitory and
// established timers (conntrack's remaining timeout, and a short transitory
// timer waited out), and hairpinning. The lab is dual-stack, and a NAT node
// filters IPv6 untranslated by the same profile's filtering knobs, so
// filtering, the answer to an unsolicited SYN and simultaneous open are
// probed again over IPv6 ("KNOB (IPv6)"; probes6.go). A Report lists
// configured against observed for each knob with the evidence.
package check
