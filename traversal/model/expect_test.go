package model

import (
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

func TestExpect(t *testing.T) {
	cases := []struct {
		name   string
		a      string
		aPred  bool
		b      string
		bPred  bool
		substr string
	}{
		{"both public", MappingNone, false, MappingNone, false, "public addresses"},
		{"both EIM", string(nat.EndpointIndependent), false, string(nat.EndpointIndependent), false, "endpoint-independent: a direct connection"},
		{"EIM and predictable", string(nat.EndpointIndependent), false, MappingDependent, true, "port prediction"},
		{"EIM and random", string(nat.EndpointIndependent), false, MappingDependent, false, "unpredictable"},
		{"both random", MappingDependent, false, MappingDependent, false, "relay is expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Expect(c.a, c.aPred, c.b, c.bPred); !strings.Contains(got, c.substr) {
				t.Errorf("Expect = %q, want it to mention %q", got, c.substr)
			}
		})
	}
	for _, d := range []struct {
		m    string
		p    bool
		dl   int
		want string
	}{{MappingNone, true, 0, "no NAT"}, {string(nat.EndpointIndependent), true, 0, "ports preserved"}, {MappingDependent, false, 2, "step 2"}, {MappingDependent, false, 0, "unpredictable"}} {
		if got := Describe(d.m, d.p, d.dl); !strings.Contains(got, d.want) {
			t.Errorf("Describe(%s, %v, %d) = %q", d.m, d.p, d.dl, got)
		}
	}
}
