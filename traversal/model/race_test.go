package model

import (
	"testing"
	"time"

	"github.com/machsend/machsend/nat"
)

// p2pnat between two NATs that reset unsolicited SYNs is a race: it
// connects exactly when the SYNs cross (each NAT has made its own entry
// before the peer's SYN arrives), which depends on the path's delay and
// the offset between the two SYNs, and the prediction says so.
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
		{"A 10 ms late: outside", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond, Offset: 10 * ms}, false},
		{"A 10 ms early: outside", rst, rst, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond, Offset: -10 * ms}, false},
		{"asymmetric window", rst, rst, Path{DelayA: 2 * ms, DelayB: 20 * ms, Offset: 10 * ms}, true},
		{"strict RST against ICMP, crossing", strictRST, icmp, Path{DelayA: 7500 * time.Microsecond, DelayB: 7500 * time.Microsecond}, true},
		{"strict RST against ICMP, not crossing", strictRST, icmp, Path{}, false},
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
