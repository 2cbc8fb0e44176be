package rendezvous

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/internal/wiretap"
)

func tlsServer(t *testing.T) (*Server, netip.AddrPort, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg, pin, err := SelfSignedTLS(key)
	if err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Config{TLS: cfg})
	return s, addr, pin
}

// TestTLSClients: pinned TLS clients and plain ones share the port and
// the sessions; a wrong pin is refused before anything is said.
func TestTLSClients(t *testing.T) {
	s, addr, pin := tlsServer(t)
	ctx := context.Background()
	a, err := Dial(ctx, addr, DialOptions{TLSPin: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := a.Hello(ctx, nil, false)
	if err != nil || h.Observed != a.LocalAddr() {
		t.Fatalf("hello over TLS: observed %v (local %v), %v", h.Observed, a.LocalAddr(), err)
	}
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	b := dial(t, addr) // plain
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	next(t, a, NotifyPeerJoined)
	if rtt, ok := func() (time.Duration, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.clients {
			if c.tcp != nil {
				return c.minRTT()
			}
		}
		return 0, false
	}(); (!ok || rtt <= 0) && systemReadsRTT(t, addr) {
		t.Errorf("the server cannot read a TLS client's round trip: %v %v", rtt, ok)
	}
	other, _, _ := SelfSignedTLS(mustKey(t))
	wrongPin, _ := PinOf(other)
	if _, err := Dial(ctx, addr, DialOptions{TLSPin: wrongPin}); !errors.Is(err, ErrPin) {
		t.Fatalf("wrong pin: %v", err)
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestTLSHidesCandidates: someone on the path reads a plain client's
// private addresses, and nothing of a TLS client's.
func TestTLSHidesCandidates(t *testing.T) {
	_, addr, pin := tlsServer(t)
	ctx := context.Background()
	private := []netip.AddrPort{netip.MustParseAddrPort("198.18.77.42:4242")}
	for _, tc := range []struct {
		pin     string
		visible bool
	}{{"", true}, {pin, false}} {
		proxy, rec := wiretap.Proxy(t, addr)
		c, err := Dial(ctx, proxy, DialOptions{TLSPin: tc.pin})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Hello(ctx, private, false); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if got := strings.Contains(rec.String(), "198.18.77.42"); got != tc.visible {
			t.Errorf("pin %q: the private address visible on the path = %v, want %v", tc.pin, got, tc.visible)
		}
	}
}

// TestTLSHandshakeFlood: stalled handshakes take at most tlsHandshakes
// places; plain clients are served meanwhile, and the timeout frees the
// places for TLS clients again.
func TestTLSHandshakeFlood(t *testing.T) {
	s, addr, pin := tlsServer(t)
	for range tlsHandshakes + 10 {
		c, err := net.Dial("tcp4", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x16, 3, 1}) // a handshake that never goes on
	}
	waitFor(t, func() bool { return len(s.tls.slots) == tlsHandshakes })
	if _, err := dial(t, addr).Hello(context.Background(), nil, false); err != nil {
		t.Fatalf("plain client during the flood: %v", err)
	}
	time.Sleep(tlsHandshakeTimeout + time.Second)
	waitFor(t, func() bool { return len(s.tls.slots) == 0 })
	c, err := Dial(context.Background(), addr, DialOptions{TLSPin: pin})
	if err != nil {
		t.Fatalf("TLS client after the flood: %v", err)
	}
	c.Close()
}

// systemReadsRTT says whether this system tells a TCP connection's round
// trip (Linux does; macOS and Windows do not, through package sockopt):
// where it does, the server must read its TLS clients' too.
func systemReadsRTT(t *testing.T, addr netip.AddrPort) bool {
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, ok := sockopt.RTT(c)
	return ok
}
