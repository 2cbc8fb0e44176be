package report

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/traversal"
)

// The collision chance from counts: the formula, its edges, and the
// classic 600 against 600 figure.
func TestBirthdayChance(t *testing.T) {
	for _, c := range []struct {
		pending, mappings, n int
		want                 float64
	}{
		{600, 600, traversal.BirthdayRange, 1 - math.Pow(1-600.0/64512, 600)},
		{0, 600, traversal.BirthdayRange, 0},
		{600, 0, traversal.BirthdayRange, 0},
		{10, 1, 10, 1},
		{20, 1, 10, 1}, // more guesses than ports: certain
	} {
		if got := traversal.BirthdayChance(c.pending, c.mappings, c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("BirthdayChance(%d, %d, %d) = %v, want %v", c.pending, c.mappings, c.n, got, c.want)
		}
	}
	if got := traversal.BirthdayChance(600, 600, traversal.BirthdayRange); math.Abs(got-0.996) > 0.001 {
		t.Errorf("600 guesses against 600 mappings: %.4f, want about 0.996", got)
	}
}

// The section computes each cell's chance from its trials' own counts and
// says whether it lies inside the measured interval: a cell whose guesses
// were all aborted predicts failure and disagrees with a success.
func TestReportBirthday(t *testing.T) {
	trial := func(profile string, pending int, ok bool) *spec.Trial {
		return &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Method: "natblaster",
			Profiles: map[string]string{"nat-a": profile, "nat-b": "symmetric-random"}},
			Predicted: true, PredictedReason: birthdayReason + "...",
			Success: ok, Birthday: &traversal.Birthday{Guesses: 600, Pending: pending, Mappings: 600}}
	}
	var trials []*spec.Trial
	for range 5 {
		trials = append(trials, trial("full-cone", 480, true), trial("linux-default", 0, true))
	}
	trials = append(trials, &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Method: "natblaster", Case: "lossy"},
		Birthday: &traversal.Birthday{Guesses: 600, Mappings: 600}}) // impaired: left out
	trials = append(trials, &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Method: "natblaster", Profiles: map[string]string{"nat-a": "x"}},
		PredictedReason: "birthday fallback: the predictable side has dependent mapping", // ruled out by the model
		Birthday:        &traversal.Birthday{Guesses: 600, Pending: 500, Mappings: 600}})
	var b strings.Builder
	reportBirthday(func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }, trials)
	out := b.String()
	for _, want := range []string{"| 480 of 600 | 600 | 98.9% | yes |", "| 0 of 600 | 600 | 0.0% | no |", "10 of 10 trials connected", "1 of 2 cells agree", "1 more cells ran the search"} {
		if !strings.Contains(out, want) {
			t.Errorf("the section lacks %q:\n%s", want, out)
		}
	}
}
