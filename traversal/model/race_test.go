package model

import (
	"testing"
	"time"

	"github.com/machsend/machsend/nat"
)

// p2pnat between two NATs that reset unsolicited SYNs is a race: it
// connects at once when the SYNs cross (each NAT has made its own entry
// before the peer's SYN arrives), and outside that window only if the two
// sides' refusal-and-retry loops differ by no more than the window, so
// that the retried SYNs drift into it; the prediction says so. The sweep
// cases are the lab's (10 ms a side, offsets of 12 and 16 ms).
func TestRaceDependsOnPath(t *testing.T) {
	ms := time.Millisecond
	icmp := with(func(n *nat.Profile) { n.UnsolicitedSYN = "icmp-port-unreachable" })
	strictRST := with(func(n *nat.Profile) { n.UnsolicitedSYN = "rst"; n.SequenceTracking = "strict" })
	cases := []struct {
		name string
		a, b *nat.Profile
		path Path
		want bool
	}{
		{"zero delay: nothing crosses for certain", rst, rst, Path{}, false},
		{"30 ms round trip, together", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond}, true},
		{"A 5 ms late: still inside", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond, Offset: 5 * ms}, true},
		{"A 10 ms late: outside, retries drift in", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond, Offset: 10 * ms}, true},
		{"A 10 ms early: outside, retries drift in", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond, Offset: -10 * ms}, true},
		{"sweep: A 16 ms late", rst, rst, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 16 * ms}, true},
		{"A 40 ms late: a later pair of retries lands in the window", rst, rst, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 40 * ms}, true},
		{"outside, equal loops: lockstep", rst, rst, Path{DelayA: 10 * ms, Offset: -10 * ms}, false},
		{"asymmetric window", rst, rst, Path{DelayA: 2 * ms, DelayB: 20 * ms, Offset: 10 * ms}, true},
		{"strict RST against ICMP, crossing", strictRST, icmp, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond}, true},
		{"strict RST against ICMP, not crossing", strictRST, icmp, Path{}, false},
		{"sweep: strict RST side early", strictRST, icmp, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: -12 * ms}, false},
		{"sweep: strict RST side 12 ms late: it retries first", strictRST, icmp, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 12 * ms}, true},
		{"sweep: strict RST side 16 ms late: it retries first", strictRST, icmp, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 16 * ms}, true},
		{"sweep: strict RST side 24 ms late: the peer's retry comes first", strictRST, icmp, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 24 * ms}, false},
		{"sweep: strict RST side B early", icmp, strictRST, Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 16 * ms}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PredictAt(Separate, c.a, c.b, "p2pnat", c.path)
			if p.Success != c.want {
				t.Errorf("success %v, want %v: %s", p.Success, c.want, p.Reason)
			}
		})
	}
	for _, x := range [][2]*nat.Profile{{rst, rst}, {strictRST, icmp}, {icmp, strictRST}} {
		if p := PredictAt(Separate, x[0], x[1], "p2pnat", Path{}); p.Race == "" {
			t.Errorf("%+v: not marked as a race", p)
		}
	}
	if p := PredictAt(Separate, prc, prc, "p2pnat", Path{}); p.Race != "" {
		t.Errorf("a cell that does not depend on timing marked as a race: %+v", p)
	}
}

// The refusal loops and their drift, from the path: the late side's
// offset lengthens its loop, a side's own delay counts twice (out and
// back), the far side's once (its NAT's RST skips the egress delay).
func TestRetryDrift(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		path   Path
		drift  time.Duration
		cross  bool
		rounds int
	}{
		// The capture of the first sweep: A's 8th SYN crossed B's 9th.
		{Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 16 * ms}, 16 * ms, true, 8},
		{Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 40 * ms}, 40 * ms, true, 10},
		{Path{DelayA: 10 * ms, DelayB: 10 * ms, Offset: 40 * ms, Budget: 1500 * ms}, 40 * ms, false, 0},
		// Equal loops outside the window: lockstep.
		{Path{DelayA: 10 * ms, Offset: -10 * ms}, 0, false, 0},
		// Periods of 220 and 100 ms whose pairs all miss a 2 ms window
		// within the attempt.
		{Path{DelayA: 1 * ms, DelayB: 1 * ms, Offset: 118 * ms}, 118 * ms, false, 0},
	} {
		ok, n := c.path.RetriesCross()
		if d := c.path.RetryDrift(); d != c.drift || ok != c.cross || n != c.rounds {
			t.Errorf("%+v: drift %v, crosses %v after %d rounds; want %v, %v, %d", c.path, d, ok, n, c.drift, c.cross, c.rounds)
		}
	}
}
