package check_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab/check"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// Every built-in profile, realised in the kernel, behaves as its YAML says.
func TestCheckAllBuiltins(t *testing.T) {
	natlabtest.RequireRoot(t)
	ps, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	reps, err := check.All(context.Background(), ps, 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked %d profiles in %v", len(reps), time.Since(start))
	for _, r := range reps {
		knobs := map[string]bool{}
		for _, x := range r.Results {
			knobs[x.Knob] = true
			if !x.OK {
				t.Errorf("%s: %s configured %s, observed %s (%s)", r.Profile, x.Knob, x.Configured, x.Observed, x.Evidence)
			}
		}
		p, _ := nat.Load(r.Profile)
		if !p.NAT {
			continue
		}
		// Every knob of the NAT model is probed ("nat" is the lab itself;
		// the port delta is observed with the allocation).
		probedAs := map[string]string{"nat": "", "port-delta": "port-allocation"}
		for _, k := range nat.Knobs {
			name, ok := probedAs[k.Name]
			if !ok {
				name = k.Name
			}
			if name != "" && !knobs[name] {
				t.Errorf("%s: knob %s was not probed", r.Profile, name)
			}
		}
	}
}

// A profile realised wrong is caught, on the knob that was broken.
func TestCheckCatchesBrokenRealisation(t *testing.T) {
	natlabtest.RequireRoot(t)
	tests := []struct {
		name, profile, sabotage, knob string
	}{
		{"full cone without inbound DNAT", "full-cone", "flush chain ip natlab prerouting\n", "filtering"},
		{"rst answered by silence", "rst-unsolicited", "flush chain ip natlab input\nadd rule ip natlab input meta l4proto tcp drop\n", "unsolicited-syn"},
		{"simultaneous open blocked", "linux-default", "add rule ip natlab forward tcp flags & (syn | ack) == syn ct direction reply drop\n", "simultaneous-open"},
		{"ports not preserved", "port-restricted-cone", "flush chain ip natlab postrouting\nadd rule ip natlab postrouting oifname \"wan\" masquerade fully-random\n", "port-allocation"},
		{"time-exceeded dropped", "full-cone", "add rule ip natlab forward icmp type time-exceeded drop\n", "icmp-time-exceeded"},
		{"IPv6 left open", "port-restricted-cone", "flush chain ip6 natlab6 forward\n", "filtering (IPv6)"},
		{"IPv6 reset answered by silence", "rst-unsolicited", "insert rule ip6 natlab6 forward iifname \"wan\" tcp flags & (syn | ack) == syn ct direction original drop\n", "unsolicited-syn (IPv6)"},
		{"IPv6 simultaneous open blocked", "port-restricted-cone", "insert rule ip6 natlab6 forward tcp flags & (syn | ack) == syn ct direction reply drop\n", "simultaneous-open (IPv6)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := nat.Load(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			lab := natlabtest.New(t, check.Topology, tt.profile)
			if err := lab.Nft("nat", tt.sabotage); err != nil {
				t.Fatal(err)
			}
			rep, err := check.Run(context.Background(), lab, "nat", p)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !errors.Is(rep.Err(), check.ErrMismatch) {
				t.Fatalf("sabotage %q not caught", tt.sabotage)
			}
			for _, x := range rep.Results {
				if x.Knob == tt.knob && x.OK {
					t.Errorf("knob %s still passes: %+v", tt.knob, x)
				}
			}
		})
	}
}
