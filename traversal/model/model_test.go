package model

import (
	"testing"

	"github.com/machsend/machsend/nat"
)

var (
	prcV = nat.Profile{Name: "prc", NAT: true, Mapping: EI, PortAllocation: Preserv, Filtering: APD, UnsolicitedSYN: "drop",
		SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate", OutboundSYNACK: "drop"}
	prc       = &prcV
	with      = func(f func(*nat.Profile)) *nat.Profile { n := prcV; f(&n); return &n }
	full      = with(func(n *nat.Profile) { n.Filtering = EI; n.UnsolicitedSYN = "rst"; n.Hairpinning = true })
	rst       = with(func(n *nat.Profile) { n.UnsolicitedSYN = "rst" })
	strict    = with(func(n *nat.Profile) { n.SequenceTracking = "strict" })
	noSim     = with(func(n *nat.Profile) { n.SimultaneousOpen = "drop" })
	symSeq    = with(func(n *nat.Profile) { n.Mapping, n.PortAllocation = APD, Seq })
	symRand   = with(func(n *nat.Profile) { n.Mapping, n.PortAllocation = APD, Random })
	icmpDrop  = with(func(n *nat.Profile) { n.ICMPTimeExceeded = "drop" })
	public    = nat.Public("public")
	linuxDflt = with(func(n *nat.Profile) { n.UnsolicitedSYN = "rst"; n.SequenceTracking = "strict" })
	// The raw methods' NATs: ICMP time-exceeded dropped, outbound SYN-ACK translated.
	icmpDrop2 = func(n nat.Profile) *nat.Profile {
		n.ICMPTimeExceeded = "drop"
		n.OutboundSYNACK = "translate"
		return &n
	}
	raw        = icmpDrop2(prcV)
	rawStrict  = with(func(n *nat.Profile) { *n = *raw; n.SequenceTracking = "strict" })
	rawSynDrop = with(func(n *nat.Profile) { *n = *raw; n.OutboundSYNACK = "drop" })
	rawSymSeq  = with(func(n *nat.Profile) { *n = *raw; n.Mapping, n.PortAllocation = APD, Seq })
	rawSymRand = with(func(n *nat.Profile) { *n = *raw; n.Mapping, n.PortAllocation = APD, Random })
)

// Short names for the knob values in the tables below.
const (
	EI      = nat.EndpointIndependent
	AD      = nat.AddressDependent
	APD     = nat.AddressPortDependent
	Preserv = nat.Preserve
	Seq     = nat.Sequential
	Random  = nat.Random
)

func TestPredict(t *testing.T) {
	tests := []struct {
		name   string
		a, b   *nat.Profile
		method string
		want   bool
	}{
		{"machsend baseline", prc, prc, "machsend", true},
		{"machsend: RST closes the initiator's entry, both ways", rst, rst, "machsend", false},
		{"machsend: swap rescues one RST side", rst, prc, "machsend", true},
		{"machsend: strict on both", strict, strict, "machsend", false},
		{"machsend: strict on one, swap", strict, prc, "machsend", true},
		{"machsend: a full cone initiator forwards the SYN despite a NAT's RST", full, rst, "machsend", true},
		{"machsend: full cone on both sides", full, full, "machsend", true},
		{"machsend: restricted cone admits an unpredictable peer's address", with(func(n *nat.Profile) { n.Filtering = AD }), symRand, "machsend", true},
		{"machsend: public initiator", public, symRand, "machsend", true},
		{"machsend: random mapping", symRand, prc, "machsend", false},
		{"machsend: random responder reaches a full-cone initiator", symRand, full, "machsend", true},
		{"p2pnat: random side reaches a full cone", symRand, full, "p2pnat", true},
		{"machsend: sequential mapping predicted", symSeq, prc, "machsend", true},
		{"stunt2: low TTL avoids the RST", rst, rst, "stunt2", true},
		{"stunt2: strict still drops the new ISN", strict, strict, "stunt2", false},
		{"hold: ICMP translated aborts", prc, prc, "stunt2-hold", false},
		{"hold: ICMP dropped", icmpDrop, prc, "stunt2-hold", true},
		{"hold: public initiator sees the ICMP", public, prc, "stunt2-hold", false},
		{"hold: same ISN passes strict", with(func(n *nat.Profile) { n.ICMPTimeExceeded = "drop"; n.SequenceTracking = "strict" }), strict, "stunt2-hold", true},
		{"p2pnat: one side accepts simultaneous open", noSim, prc, "p2pnat", true},
		{"p2pnat: neither accepts", noSim, noSim, "p2pnat", false},
		{"p2pnat: both RST in lockstep", linuxDflt, linuxDflt, "p2pnat", false},
		{"p2pnat: full cone", full, symSeq, "p2pnat", true},
		{"p2pnat: restricted cone admits a random peer", with(func(n *nat.Profile) { n.Filtering = AD }), symRand, "p2pnat", true},
		{"p2pnat: strict RST side against an ICMP side", linuxDflt, with(func(n *nat.Profile) { n.UnsolicitedSYN = "icmp-port-unreachable" }), "p2pnat", false},
		{"direct: public peer", prc, public, "direct", true},
		{"direct: full cone peer", prc, full, "direct", true},
		{"direct: both filter", prc, rst, "direct", false},
		{"lan across NATs", prc, prc, "lan", false},
		{"relay", symRand, symRand, "relay", true},
		{"auto always connects", symRand, symRand, "auto", true},
		{"stunt1: ICMP dropped on both sides", raw, raw, "stunt1", true},
		{"stunt1: B translates ICMP, aborting its pending connect", raw, prc, "stunt1", false},
		{"stunt1: A translates ICMP", prc, raw, "stunt1", false},
		{"stunt1: strict tracking is no obstacle (exact ISNs)", rawStrict, raw, "stunt1", true},
		{"stunt1: outbound SYN-ACK handling does not matter", rawSynDrop, raw, "stunt1", true},
		{"stunt1: sequential allocation predicted", rawSymSeq, raw, "stunt1", true},
		{"stunt1: random allocation has no fallback", raw, rawSymRand, "stunt1", false},
		{"stunt1: public host sees its own ICMP", public, raw, "stunt1", false},
		{"natblaster: ICMP dropped, SYN-ACK translated", raw, raw, "natblaster", true},
		{"natblaster: A drops the outbound SYN-ACK", rawSynDrop, raw, "natblaster", false},
		{"natblaster: strict tracking with translation", rawStrict, raw, "natblaster", true},
		{"natblaster: A translates ICMP", prc, raw, "natblaster", false},
		{"natblaster: birthday against a random side", raw, rawSymRand, "natblaster", true},
		{"natblaster: birthday needs EI mapping on the predictable side", rawSymSeq, rawSymRand, "natblaster", false},
		{"natblaster: birthday meets at the random side's NAT when the other drops silently", with(func(n *nat.Profile) { *n = *raw; n.SimultaneousOpen = "drop" }), rawSymRand, "natblaster", true},
		{"natblaster: birthday fails when neither NAT accepts a simultaneous open", with(func(n *nat.Profile) { *n = *raw; n.SimultaneousOpen = "drop" }), with(func(n *nat.Profile) { *n = *rawSymRand; n.SimultaneousOpen = "drop" }), "natblaster", false},
		{"natblaster: birthday fails when the predictable side resets the colliding SYN", with(func(n *nat.Profile) { *n = *raw; n.SimultaneousOpen = "rst"; n.UnsolicitedSYN = "rst" }), rawSymRand, "natblaster", false},
		{"natblaster: birthday survives translated ICMP (routers rate-limit it)", prc, rawSymRand, "natblaster", true},
		{"natblaster: both random", rawSymRand, rawSymRand, "natblaster", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Predict(Separate, tt.a, tt.b, tt.method)
			if p.Success != tt.want {
				t.Errorf("got %v (%s), want %v", p.Success, p.Reason, tt.want)
			}
			if p.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestPredictSameNAT(t *testing.T) {
	tests := []struct {
		n      *nat.Profile
		method string
		want   bool
	}{
		{prc, "lan", true}, {prc, "direct", false}, {full, "direct", true}, {prc, "p2pnat", true}, {prc, "auto", true},
		{raw, "stunt1", false}, {raw, "natblaster", false},
	}
	for _, tt := range tests {
		if got := Predict(SameNAT, tt.n, tt.n, tt.method); got.Success != tt.want {
			t.Errorf("%s/%s: got %v (%s)", tt.n.Name, tt.method, got.Success, got.Reason)
		}
	}
	if p := predictAuto(Separate, symRand, symRand, Path{}); p.Reason[:10] != "path relay" {
		t.Errorf("auto between random NATs: %s", p.Reason)
	}
}

func TestCompose(t *testing.T) {
	c := nat.Compose(full, symSeq)
	if c.Mapping != APD || c.Filtering != APD || c.PortAllocation != Seq || c.Hairpinning {
		t.Errorf("compose: %+v", c)
	}
	if nat.Compose(public, prc).Name != "prc" || nat.Compose(prc, public).Name != "prc" {
		t.Error("a public layer is transparent")
	}
}
