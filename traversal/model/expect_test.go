package model

import (
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

func TestExpect(t *testing.T) {
	cases := []struct {
		name   string
		a      nat.Seen
		aPred  bool
		b      nat.Seen
		bPred  bool
		substr string
	}{
		{"both public", nat.SeenNone, false, nat.SeenNone, false, "public addresses"},
		{"both EIM", nat.SeenIndependent, false, nat.SeenIndependent, false, "endpoint-independent: a direct connection"},
		{"EIM and predictable", nat.SeenIndependent, false, nat.SeenDependent, true, "port prediction"},
		{"EIM and random", nat.SeenIndependent, false, nat.SeenDependent, false, "unpredictable"},
		{"both random", nat.SeenDependent, false, nat.SeenDependent, false, "relay is expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Expect(c.a, c.aPred, c.b, c.bPred); !strings.Contains(got, c.substr) {
				t.Errorf("Expect = %q, want it to mention %q", got, c.substr)
			}
		})
	}
	for _, d := range []struct {
		m    nat.Seen
		p    bool
		dl   int
		want string
	}{{nat.SeenNone, true, 0, "no NAT"}, {nat.SeenIndependent, true, 0, "ports preserved"}, {nat.SeenDependent, false, 2, "step 2"}, {nat.SeenDependent, false, 0, "unpredictable"}} {
		if got := Describe(d.m, d.p, d.dl); !strings.Contains(got, d.want) {
			t.Errorf("Describe(%s, %v, %d) = %q", d.m, d.p, d.dl, got)
		}
	}
}
