package report

import (
	"fmt"
	"slices"
	"testing"

	"github.com/machsend/machsend/experiments/spec"
)

// The cell table does not depend on the order of the trials (a single run
// against merged shards): the same trials reversed give the same cells in
// the same order.
func TestSummariseIgnoresTrialOrder(t *testing.T) {
	var trials []*spec.Trial
	for i, m := range []string{"stunt2", "p2pnat", "auto", "lan"} {
		for rep := range 3 {
			trials = append(trials, &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Method: m,
				Profiles: map[string]string{"nat-a": fmt.Sprint("p", i)}}, Rep: rep, Success: rep != 1, ConnectMs: float64(100 * rep)})
		}
	}
	key := func(cs []*CellStats) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %d/%d %v", c.Cell.Key(), c.Successes, c.N, c.ConnectMs))
		}
		return out
	}
	a := key(Summarise(trials))
	slices.Reverse(trials)
	b := key(Summarise(trials))
	if len(a) != 4 || !slices.Equal(a, b) {
		t.Errorf("forward %v\nreversed %v", a, b)
	}
}
