package report

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/classify"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/nat"
)

// The 2005 criterion (consistent mapping, no active rejection of
// unsolicited SYNs) read from the built-in profiles' knobs.
func TestFordCriterion(t *testing.T) {
	for _, c := range []struct {
		profile string
		want    bool
	}{
		{"port-restricted-cone", true},
		{"rfc5382", true}, // delayed ICMP rejects nothing within the attempt
		{"none", true},
		{"rst-unsolicited", false},
		{"icmp-unsolicited", false},
		{"symmetric-random", false},
	} {
		p, err := nat.Load(c.profile)
		if err != nil {
			t.Fatal(err)
		}
		if got := fordCriterion(p); got != c.want {
			t.Errorf("%s: criterion %v, want %v", c.profile, got, c.want)
		}
	}
}

// Failed trials are split by class into the hosts' and the NATs', counted
// once each, and only for the 2005 approaches' unimpaired two-NAT trials;
// every host class is one the classifier assigns.
func TestHostVsNATSplit(t *testing.T) {
	for _, c := range hostClasses {
		if !slices.Contains(classify.FailureClasses(), c) {
			t.Errorf("host class %q is not a classifier class", c)
		}
	}
	trial := func(method, class, caseName string, ok bool) *spec.Trial {
		return &spec.Trial{Cell: spec.Cell{Topology: "two-nat", Method: method, Case: caseName}, Class: class, Success: ok}
	}
	trials := []*spec.Trial{
		trial("stunt2", "icmp-translated", "", false),
		trial("stunt2", "syn-rst", "", false),
		trial("stunt2", "icmp-translated", "lossy", false), // impaired: not counted
		trial("stunt2", "", "", true),                      // success: not counted
		trial("relay", "syn-rst", "", false),               // not a 2005 approach
	}
	var b strings.Builder
	writeHostVsNAT(func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }, trials)
	if !strings.Contains(b.String(), "| stunt2 | 2 | 1 | 1 |") {
		t.Errorf("split table:\n%s", b.String())
	}
}
