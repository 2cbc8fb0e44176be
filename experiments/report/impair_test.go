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
	for _, c := range []struct {
		name  string
		rtt   float64 // every trial's measured RTT, ms
		noise float64 // the run's noise bound, ms
		want  []string
	}{
		{"round trip above the noise", 30, 5, []string{
			"| nat-a=port-restricted-cone nat-b=port-restricted-cone | slow | p2pnat 100% | 67% | stunt2 250 ms | 300 ms | +1.7 RTT |",
			"in 0 of 1 pair-cases, and its median connect time was within one round trip (or the noise bound, where that is longer) of the fastest single method's in 0.",
		}},
		{"round trip above the difference", 60, 5, []string{"| +0.8 RTT |", "of the fastest single method's in 1."}},
		{"round trip below the noise", 0.3, 5, []string{"| +50 ms |", "of the fastest single method's in 0."}},
		{"difference below the noise", 0.3, 60, []string{"| +50 ms |", "of the fastest single method's in 1."}},
	} {
		trial := func(m string, ok bool, path string, ms float64) *spec.Trial {
			return &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Profiles: pair, Method: m, Case: "slow"},
				Success: ok, Method: m, Path: path, ConnectMs: ms, RTTms: []float64{c.rtt}}
		}
		g := &caseGroup{topology: "two-nat", cases: []string{"slow"}, pairs: []string{profilesString(spec.Cell{Profiles: pair})}, noiseMs: c.noise,
			byCase: map[string][]*spec.Trial{"slow": {
				trial("p2pnat", true, "punched", 300), trial("p2pnat", true, "punched", 320),
				trial("stunt2", true, "punched", 250), trial("stunt2", false, "", 0),
				trial("relay", true, "relay", 100),
				trial("auto", true, "punched", 310), trial("auto", true, "punched", 290), trial("auto", true, "relay", 3100),
			}}}
		var out strings.Builder
		caseRaceTable(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, g)
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: table lacks %q:\n%s", c.name, want, out.String())
			}
		}
	}
}
