package rendezvous

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// TLS on the rendezvous port: a connection whose first byte starts a TLS
// handshake (0x16) is handed from the event loop to a goroutine that
// completes the handshake (at most tlsHandshakes at once, within
// tlsHandshakeTimeout), then joins the loop through a socket pair: the
// loop serves the plaintext end as any client, under the same admission
// limits, with the TCP connection's address as the client's, while two
// goroutines carry bytes between the pair and the TLS connection. (Where
// the server has no event loops, Windows, the TLS connection is served on
// its own goroutine like any connection: conn_other.go.)
// Plain clients keep working on the same port. A client pins the server's
// key by the SHA-256 of its SubjectPublicKeyInfo (Pin), which a link
// carries, so a self-signed key is enough; an operator's certificate works
// the same way.

const (
	tlsHandshakes       = 64
	tlsHandshakeTimeout = 5 * time.Second
)

// looksTLS says whether a connection's first bytes start a TLS handshake.
func looksTLS(first []byte) bool { return len(first) > 0 && first[0] == 0x16 }

// tlsFront completes the handshakes of a server's TLS clients.
type tlsFront struct {
	srv   *Server
	cfg   *tls.Config // nil: TLS off (such a connection is malformed)
	slots chan struct{}
}

func newTLSFront(s *Server) *tlsFront {
	return &tlsFront{srv: s, cfg: s.cfg.TLS, slots: make(chan struct{}, tlsHandshakes)}
}

// handOff takes a connection that started a TLS handshake (see front).
func (t *tlsFront) handOff(c net.Conn, remote, local netip.AddrPort, first []byte) {
	select {
	case t.slots <- struct{}{}:
	default:
		c.Close()
		t.srv.Stats.Rejected.Add(1)
		return
	}
	go t.serve(c, remote, local, bytes.Clone(first))
}

// serve completes the handshake and has the server serve the plaintext
// (serveTLS: through a socket pair into an event loop, or on its own
// goroutine where the server has no event loops).
func (t *tlsFront) serve(conn net.Conn, remote, local netip.AddrPort, first []byte) {
	tc := tls.Server(&prefixConn{Conn: conn, first: first, release: func() {}}, t.cfg)
	_ = conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err := tc.Handshake()
	<-t.slots
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	tcp, _ := conn.(*net.TCPConn)
	if !t.srv.serveTLS(tc, remote, local, tcp) {
		conn.Close()
	}
}
