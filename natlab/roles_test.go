package natlab

import (
	"slices"
	"testing"
)

// Every built-in topology gives the roles experiments need, and the NATs
// of each side follow the gateways.
func TestRoles(t *testing.T) {
	want := map[string][2][]string{
		"two-nat":           {{"nat-a"}, {"nat-b"}},
		"two-nat-broadband": {{"nat-a"}, {"nat-b"}},
		"two-nat-cross":     {{"nat-a"}, {"nat-b"}},
		"two-nat6":          {{"nat-a"}, {"nat-b"}},
		"double-nat":        {{"home-a", "cgn"}, {"nat-b"}},
		"one-public":        {{"nat-a"}, nil},
		"same-lan":          {{"nat"}, {"nat"}},
		"hairpin":           {{"nat"}, {"nat"}},
	}
	all, err := BuiltinTopologies()
	if err != nil {
		t.Fatal(err)
	}
	for _, topo := range all {
		t.Run(topo.Name, func(t *testing.T) {
			for _, r := range []string{RolePeerA, RolePeerB, RoleRendezvous} {
				if _, err := topo.MustRole(r); err != nil {
					t.Error(err)
				}
			}
			w, ok := want[topo.Name]
			if !ok {
				t.Fatalf("no expectation for topology %s", topo.Name)
			}
			a, b := topo.SideNATs()
			if !slices.Equal(a, w[0]) || !slices.Equal(b, w[1]) {
				t.Errorf("SideNATs = %v, %v; want %v, %v", a, b, w[0], w[1])
			}
		})
	}
	if _, err := (&Topology{Name: "x"}).MustRole(RolePeerA); err == nil {
		t.Error("a topology without peers gave a peer")
	}
}
