package report

import (
	"testing"

	"github.com/machsend/machsend/experiments/spec"
)

// Every unimpaired IPv6 cell gets a row, beside the two-nat IPv4 cell of
// the same method and profiles in either order, or none.
func TestIPv6Rows(t *testing.T) {
	cell := func(topo, a, b, m, family, cs string) *CellStats {
		return &CellStats{Cell: spec.Cell{Topology: topo, Profiles: map[string]string{"nat-a": a, "nat-b": b}, Method: m, Family: family, Case: cs}}
	}
	v4 := cell("two-nat", "rst-unsolicited", "port-restricted-cone", "p2pnat", "", "")
	cells := []*CellStats{
		v4,
		cell("two-nat", "rst-unsolicited", "port-restricted-cone", "p2pnat", "", "rtt-30ms"),
		cell("two-nat6", "port-restricted-cone", "rst-unsolicited", "p2pnat", spec.FamilyIPv6, ""),      // mirrored twin
		cell("two-nat6", "port-restricted-cone", "rst-unsolicited", "stunt2", spec.FamilyIPv6, ""),      // no twin
		cell("two-nat6", "port-restricted-cone", "rst-unsolicited", "p2pnat", spec.FamilyIPv6, "lossy"), // impaired: left out
	}
	rows := ipv6Rows(cells)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	if rows[0].v4 != v4 || rows[0].v6 != cells[2] {
		t.Errorf("row 0 pairs %+v with %+v", rows[0].v6.Cell, rows[0].v4)
	}
	if rows[1].v4 != nil {
		t.Errorf("stunt2 over IPv6 got an IPv4 twin %+v", rows[1].v4.Cell)
	}
}
