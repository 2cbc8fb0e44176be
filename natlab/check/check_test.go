package check

import (
	"context"
	"testing"

	"github.com/machsend/machsend/natlab"
)

func TestCheckSmoke(t *testing.T) {
	ps, err := natlab.BuiltinProfiles()
	if err != nil {
		t.Fatal(err)
	}
	reps, err := All(context.Background(), ps, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		for _, x := range r.Results {
			t.Logf("%-22s %-18s %-28s %-28s %v  %s", r.Profile, x.Knob, x.Configured, x.Observed, x.OK, x.Evidence)
		}
		t.Logf("%s: %v", r.Profile, r.Duration)
	}
}
