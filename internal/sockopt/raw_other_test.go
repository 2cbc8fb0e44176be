//go:build !linux

package sockopt

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// Off Linux, the hand-driven sockets and probes say they do not apply,
// in the words the attempt events use, and plain dialling still works.
func TestNotApplicableOffLinux(t *testing.T) {
	if _, err := NewRawSocket(netip.MustParseAddrPort("127.0.0.1:0"), 0); !errors.Is(err, ErrNotSupported) {
		t.Errorf("NewRawSocket: %v, want ErrNotSupported", err)
	}
	if r := DialProbe(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"), 0, false); r.Outcome != ProbeNotApplicable {
		t.Errorf("DialProbe: %q, want %q", r.Outcome, ProbeNotApplicable)
	}
	if _, err := ListenSink(netip.MustParseAddrPort("127.0.0.1:0")); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ListenSink: %v, want ErrNotSupported", err)
	}
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort(ln.Addr().String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
