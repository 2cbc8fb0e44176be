package rendezvous

import (
	"errors"
	"net/netip"
	"runtime"
	"testing"

	"github.com/machsend/machsend/internal/sockopt"

	"github.com/machsend/machsend/internal/rawtcp"
)

// The server forges only when configured to, only toward the two peers'
// own observed addresses, and never outside a lab namespace (the test
// process is not in one).
func TestForgeRefuses(t *testing.T) {
	outsideLab := rawtcp.ErrNotLab
	if runtime.GOOS != "linux" { // no raw packets at all
		outsideLab = sockopt.ErrNotSupported
	}
	a, b := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("198.51.100.2")
	synTo := func(to string) rawtcp.SYN {
		return rawtcp.SYN{ISN: 1, WScale: -1, To: netip.MustParseAddrPort(to)}
	}
	tests := []struct {
		name       string
		forge      bool
		synA, synB rawtcp.SYN
		want       error
	}{
		{"forging off", false, synTo("198.51.100.2:20010"), synTo("203.0.113.2:20010"), ErrForgeOff},
		{"A aims at a third party", true, synTo("192.0.2.99:80"), synTo("203.0.113.2:20010"), nil},
		{"B aims at a third party", true, synTo("198.51.100.2:20010"), synTo("192.0.2.99:80"), nil},
		{"outside a lab namespace", true, synTo("198.51.100.2:20010"), synTo("203.0.113.2:20010"), outsideLab},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(Config{Forge: tt.forge})
			defer s.Close()
			n, err := s.forge(a, b, tt.synA, tt.synB)
			if err == nil || n != 0 {
				t.Fatalf("forged %d packets, err %v", n, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
