package sockopt

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// Dial and Listen take the family from the addresses: an IPv4-mapped
// address is IPv4, and a specified local address of the other family is
// refused in words before any socket is made.
func TestNetworkFromAddress(t *testing.T) {
	for _, tc := range []struct {
		ap   string
		want string
	}{
		{"198.18.1.2:80", "tcp4"},
		{"[::ffff:198.18.1.2]:80", "tcp4"},
		{"[2001:db8::2]:80", "tcp6"},
		{"[fd00::1]:80", "tcp6"},
	} {
		if got := Network(netip.MustParseAddrPort(tc.ap)); got != tc.want {
			t.Errorf("Network(%s) = %s, want %s", tc.ap, got, tc.want)
		}
	}
	_, err := Dial(context.Background(), netip.MustParseAddrPort("198.18.1.2:4000"), netip.MustParseAddrPort("[2001:db8::2]:80"), 0)
	if err == nil || !strings.Contains(err.Error(), "different families") {
		t.Errorf("mixed families: %v", err)
	}
}
