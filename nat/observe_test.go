package nat_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

func TestMappingObservation(t *testing.T) {
	ap := netip.MustParseAddrPort
	p, s := ap("203.0.113.2:4000"), ap("203.0.113.2:4001")
	cases := []struct {
		name    string
		obs     nat.MappingObservation
		want    nat.Dependence
		seen    nat.Seen
		because string
	}{
		{"no secondary", nat.MappingObservation{Local: 1, Primary: p}, nat.Unknown, nat.SeenIndependent, "no second address"},
		{"independent", nat.MappingObservation{Local: 1, Primary: p, Secondary: p, Alternate: p}, nat.EndpointIndependent, nat.SeenIndependent, "every destination"},
		{"dependent, no alternate", nat.MappingObservation{Local: 1, Primary: p, Secondary: s}, nat.Unknown, nat.SeenDependent, "no alternate port"},
		{"address-dependent", nat.MappingObservation{Local: 1, Primary: p, Secondary: s, Alternate: p}, nat.AddressDependent, nat.SeenDependent, "same address"},
		{"address-and-port", nat.MappingObservation{Local: 1, Primary: p, Secondary: s, Alternate: ap("203.0.113.2:4002")}, nat.AddressPortDependent, nat.SeenDependent, "every destination port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, seen, ev := c.obs.Classify()
			if d != c.want || seen != c.seen || !strings.Contains(ev, c.because) {
				t.Errorf("Classify = %s, %s, %q; want %s, %s, mentioning %q", d, seen, ev, c.want, c.seen, c.because)
			}
		})
	}
}

func TestClassifyAllocation(t *testing.T) {
	cases := []struct {
		name          string
		local, mapped []uint16
		want          nat.Allocation
		delta         int
	}{
		{"preserved", []uint16{5, 9}, []uint16{5, 9}, nat.Preserve, 0},
		{"sequential", []uint16{5, 9, 11, 20}, []uint16{100, 102, 104, 106}, nat.Sequential, 2},
		{"descending", []uint16{5, 9, 11}, []uint16{100, 99, 98}, nat.Sequential, -1},
		{"irregular", []uint16{5, 9, 11}, []uint16{100, 102, 105}, nat.Random, 0},
		{"step too large", []uint16{5, 9}, []uint16{100, 4000}, nat.Random, 0},
		{"repeated port", []uint16{5, 9}, []uint16{100, 100}, nat.Random, 0},
		{"one observation", []uint16{5}, []uint16{7}, nat.Unknown, 0},
		{"mismatched", []uint16{5}, []uint16{7, 8}, nat.Unknown, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, d, _ := nat.ClassifyAllocation(c.local, c.mapped)
			if a != c.want || d != c.delta {
				t.Errorf("ClassifyAllocation = %s, %d; want %s, %d", a, d, c.want, c.delta)
			}
		})
	}
}
