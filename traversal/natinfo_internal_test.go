package traversal

import (
	"slices"
	"testing"

	"github.com/machsend/machsend/nat"
)

// The first port's two observations run at once, so a sequential NAT may
// have mapped either first: allocationOrder restores the order from the
// second port's mapping, allocated after both, and the step comes out
// the same either way; random allocations give no step in any order.
func TestAllocationOrder(t *testing.T) {
	tests := []struct {
		name       string
		a, b, next uint16
		want       []uint16
		step       int
	}{
		{"ascending, in order", 20001, 20002, 20003, []uint16{20001, 20002, 20003}, 1},
		{"ascending, swapped", 20002, 20001, 20003, []uint16{20001, 20002, 20003}, 1},
		{"step 2, swapped", 20012, 20010, 20014, []uint16{20010, 20012, 20014}, 2},
		{"descending, in order", 30010, 30009, 30008, []uint16{30010, 30009, 30008}, -1},
		{"descending, swapped", 30009, 30010, 30008, []uint16{30010, 30009, 30008}, -1},
		{"random", 41234, 5321, 61000, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allocationOrder(tt.a, tt.b, tt.next)
			if tt.want != nil && !slices.Equal(got, tt.want) {
				t.Errorf("allocationOrder(%d, %d, %d) = %v, want %v", tt.a, tt.b, tt.next, got, tt.want)
			}
			if step, _ := nat.Step(got); step != tt.step {
				t.Errorf("step of %v = %d, want %d", got, step, tt.step)
			}
		})
	}
}
