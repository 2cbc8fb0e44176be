package model

import "testing"

var (
	prc = NAT{Name: "prc", Mapping: EI, Allocation: Preserv, Filtering: APD, UnsolicitedSYN: "drop",
		SimultaneousOpen: "accept", SequenceTracking: "liberal", ICMPTimeExceeded: "translate"}
	with      = func(f func(*NAT)) NAT { n := prc; f(&n); return n }
	full      = with(func(n *NAT) { n.Filtering = EI; n.UnsolicitedSYN = "rst"; n.Hairpinning = true })
	rst       = with(func(n *NAT) { n.UnsolicitedSYN = "rst" })
	strict    = with(func(n *NAT) { n.SequenceTracking = "strict" })
	noSim     = with(func(n *NAT) { n.SimultaneousOpen = "drop" })
	symSeq    = with(func(n *NAT) { n.Mapping, n.Allocation = APD, Seq })
	symRand   = with(func(n *NAT) { n.Mapping, n.Allocation = APD, Random })
	icmpDrop  = with(func(n *NAT) { n.ICMPTimeExceeded = "drop" })
	public    = NAT{Name: "public", None: true}
	linuxDflt = with(func(n *NAT) { n.UnsolicitedSYN = "rst"; n.SequenceTracking = "strict" })
	// The raw methods' NATs: ICMP time-exceeded dropped, outbound SYN-ACK translated.
	icmpDrop2  = func(n NAT) NAT { n.ICMPTimeExceeded = "drop"; n.OutboundSYNACK = "translate"; return n }
	raw        = icmpDrop2(prc)
	rawStrict  = with(func(n *NAT) { *n = raw; n.SequenceTracking = "strict" })
	rawSynDrop = with(func(n *NAT) { *n = raw; n.OutboundSYNACK = "drop" })
	rawSymSeq  = with(func(n *NAT) { *n = raw; n.Mapping, n.Allocation = APD, Seq })
	rawSymRand = with(func(n *NAT) { *n = raw; n.Mapping, n.Allocation = APD, Random })
)

func TestPredict(t *testing.T) {
	tests := []struct {
		name   string
		a, b   NAT
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
		{"machsend: restricted cone admits an unpredictable peer's address", with(func(n *NAT) { n.Filtering = AD }), symRand, "machsend", true},
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
		{"hold: same ISN passes strict", with(func(n *NAT) { n.ICMPTimeExceeded = "drop"; n.SequenceTracking = "strict" }), strict, "stunt2-hold", true},
		{"p2pnat: one side accepts simultaneous open", noSim, prc, "p2pnat", true},
		{"p2pnat: neither accepts", noSim, noSim, "p2pnat", false},
		{"p2pnat: both RST in lockstep", linuxDflt, linuxDflt, "p2pnat", false},
		{"p2pnat: full cone", full, symSeq, "p2pnat", true},
		{"p2pnat: restricted cone admits a random peer", with(func(n *NAT) { n.Filtering = AD }), symRand, "p2pnat", true},
		{"p2pnat: strict RST side against an ICMP side", linuxDflt, with(func(n *NAT) { n.UnsolicitedSYN = "icmp-port-unreachable" }), "p2pnat", false},
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
		{"natblaster: birthday meets at the random side's NAT when the other drops silently", with(func(n *NAT) { *n = raw; n.SimultaneousOpen = "drop" }), rawSymRand, "natblaster", true},
		{"natblaster: birthday fails when neither NAT accepts a simultaneous open", with(func(n *NAT) { *n = raw; n.SimultaneousOpen = "drop" }), with(func(n *NAT) { *n = rawSymRand; n.SimultaneousOpen = "drop" }), "natblaster", false},
		{"natblaster: birthday fails when the predictable side resets the colliding SYN", with(func(n *NAT) { *n = raw; n.SimultaneousOpen = "rst"; n.UnsolicitedSYN = "rst" }), rawSymRand, "natblaster", false},
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
		n      NAT
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
	if p := predictAuto(Separate, symRand, symRand); p.Reason[:10] != "path relay" {
		t.Errorf("auto between random NATs: %s", p.Reason)
	}
}

func TestCompose(t *testing.T) {
	c := Compose(full, symSeq)
	if c.Mapping != APD || c.Filtering != APD || c.Allocation != Seq || c.Hairpinning {
		t.Errorf("compose: %+v", c)
	}
	if Compose(public, prc).Name != "prc" || Compose(prc, public).Name != "prc" {
		t.Error("a public layer is transparent")
	}
}
