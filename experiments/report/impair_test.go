package report

import (
	"fmt"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/spec"
)

// The race-cost table is computed from the trials: the best and fastest
// single methods of each pair-case, auto's success without the relay (a
// relayed auto trial does not count) and its median against the fastest
// in round trips of the case's measured RTT.
func TestCaseRaceTable(t *testing.T) {
	pair := map[string]string{"nat-a": "port-restricted-cone", "nat-b": "port-restricted-cone"}
	trial := func(m string, ok bool, path string, ms float64) *spec.Trial {
		return &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Profiles: pair, Method: m, Case: "slow"},
			Success: ok, Method: m, Path: path, ConnectMs: ms, RTTms: []float64{30}}
	}
	g := &caseGroup{topology: "two-nat", cases: []string{"slow"}, pairs: []string{profilesString(spec.Cell{Profiles: pair})},
		byCase: map[string][]*spec.Trial{"slow": {
			trial("p2pnat", true, "punched", 300), trial("p2pnat", true, "punched", 320),
			trial("stunt2", true, "punched", 250), trial("stunt2", false, "", 0),
			trial("relay", true, "relay", 100),
			trial("auto", true, "punched", 310), trial("auto", true, "punched", 290), trial("auto", true, "relay", 3100),
		}}}
	var out strings.Builder
	caseRaceTable(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, g)
	for _, want := range []string{
		"| nat-a=port-restricted-cone nat-b=port-restricted-cone | slow | p2pnat 100% | 67% | stunt2 250 ms | 300 ms | +1.7 RTT |",
		"in 0 of 1 pair-cases, and its median connect time was within one round trip of the fastest single method's in 0.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
