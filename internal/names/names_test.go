package names

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"simple", "linux-default", true},
		{"digits", "nat-2", true},
		{"empty", "", false},
		{"upper case", "Linux", false},
		{"path", "../etc", false},
		{"space", "a b", false},
		{"40 characters", strings.Repeat("a", 40), true},
		{"41 characters", strings.Repeat("a", 41), false},
		{"non-ascii", "nät", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.in); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
