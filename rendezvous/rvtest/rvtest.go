// Package rvtest runs a real rendezvous server on loopback for tests of
// the packages above it (session, web): primary and relay endpoints on
// 127.0.0.1, the secondary on 127.0.0.2.
package rvtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"net/netip"
	"testing"

	"github.com/machsend/machsend/rendezvous"
)

// Start runs a server with cfg (its endpoints filled in) until the test
// ends, and returns its primary endpoint.
func Start(tb testing.TB, cfg rendezvous.Config) netip.AddrPort {
	tb.Helper()
	listen := func(a string) net.Listener {
		ln, err := net.Listen("tcp4", a)
		if err != nil {
			tb.Fatal(err)
		}
		return ln
	}
	ln, sec, rl := listen("127.0.0.1:0"), listen("127.0.0.2:0"), listen("127.0.0.1:0")
	ap := func(l net.Listener) netip.AddrPort { return l.Addr().(*net.TCPAddr).AddrPort() }
	cfg.Secondary, cfg.RelayAddr = ap(sec), ap(rl)
	s := rendezvous.NewServer(cfg)
	go s.Serve(ln)
	go s.Serve(sec)
	go s.ServeRelay(rl)
	tb.Cleanup(func() { s.Close() })
	return ap(ln)
}

// StartTLS is Start with TLS on the server's ports (a self-signed key);
// it also returns the key's pin.
func StartTLS(tb testing.TB, cfg rendezvous.Config) (netip.AddrPort, string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tlsCfg, pin, err := rendezvous.SelfSignedTLS(key)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.TLS = tlsCfg
	return Start(tb, cfg), pin
}
