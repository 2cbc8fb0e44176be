package natlab_test

import (
	"testing"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab"
)

func TestBuiltinProfiles(t *testing.T) {
	ps, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rfc5382", "linux-default", "full-cone", "restricted-cone", "port-restricted-cone",
		"symmetric-sequential", "symmetric-random", "rst-unsolicited", "icmp-unsolicited",
		"no-simultaneous-open", "strict-sequence", "short-syn-timeout", "none", "eim-sequential"}
	have := map[string]*nat.Profile{}
	for _, p := range ps {
		have[p.Name] = p
		if p.Description == "" || p.DeviceClass == "" {
			t.Errorf("%s: every built-in profile documents what it stands for", p.Name)
		}
		if len(p.Hash) != 64 {
			t.Errorf("%s: hash %q", p.Name, p.Hash)
		}
	}
	for _, n := range want {
		if have[n] == nil {
			t.Errorf("built-in profile %s missing", n)
		}
	}
	// Every knob of the NAT model (nat.Knobs) says how it is realised:
	// "nat" is the profile itself, the port delta is part of the
	// allocation, and the two timers are realised together.
	realisedAs := map[string]string{"nat": "", "port-delta": "port-allocation",
		"timers.transitory": "timers", "timers.established": "timers"}
	var knobs []string
	for _, k := range nat.Knobs {
		name, ok := realisedAs[k.Name]
		if !ok {
			name = k.Name
		}
		if name != "" {
			knobs = append(knobs, name)
		}
	}
	for _, p := range ps {
		if !p.NAT {
			continue
		}
		got := map[string]bool{}
		for _, k := range natlab.Realisation(p) {
			got[k.Knob] = true
			if k.How == "" {
				t.Errorf("%s/%s: no explanation", p.Name, k.Knob)
			}
		}
		for _, k := range knobs {
			if !got[k] {
				t.Errorf("%s: realisation of %s not documented", p.Name, k)
			}
		}
	}
}

// Realisation never fails on a profile Parse accepted.
func FuzzRealisation(f *testing.F) {
	f.Add([]byte("name: x\nnat: off\n"))
	f.Add([]byte("name: a\nmapping: address-dependent\nport-allocation: sequential\nport-delta: 3\nfiltering: endpoint-independent\n" +
		"unsolicited-syn: rst\nsimultaneous-open: drop\nsequence-tracking: strict\nicmp-time-exceeded: drop\nhairpinning: on\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := nat.Parse("fuzz", b)
		if err != nil {
			return
		}
		for _, k := range natlab.Realisation(p) {
			if k.How == "" {
				t.Fatalf("%s: no explanation", k.Knob)
			}
		}
	})
}
