package natcheck

import (
	"net/netip"
	"strings"
	"testing"
)

func TestWarning(t *testing.T) {
	tests := []struct {
		seen string
		want string // "" : no warning
	}{
		{"127.0.0.1", "loopback"},
		{"::1", "loopback"},
		{"192.168.1.20", "private"},
		{"10.1.2.3", "private"},
		{"172.20.0.5", "private"},
		{"fd00::1", "private"},
		{"100.64.3.4", "carrier-grade"},
		{"169.254.0.9", "link-local"},
		{"203.0.113.7", ""},
		{"198.18.1.2", ""},
		{"::ffff:127.0.0.1", "loopback"},
	}
	for _, tc := range tests {
		r := &Result{Server: netip.MustParseAddrPort("127.0.0.1:3478"), Public: netip.MustParseAddr(tc.seen)}
		got := r.Warning()
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("seen at %s: %q, want %q", tc.seen, got, tc.want)
		}
	}
}
