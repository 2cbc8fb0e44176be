//go:build linux || darwin

package rendezvous

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// TLS on the rendezvous port: a connection whose first byte starts a TLS
// handshake (0x16) is handed from the event loop to a goroutine that
// completes the handshake (at most tlsHandshakes at once, within
// tlsHandshakeTimeout), then joins the loop through a socket pair: the
// loop serves the plaintext end as any client, under the same admission
// limits, with the TCP connection's address as the client's, while two
// goroutines carry bytes between the pair and the TLS connection.
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
func (t *tlsFront) handOff(fd int, remote, local netip.AddrPort, first []byte) {
	select {
	case t.slots <- struct{}{}:
	default:
		unix.Close(fd)
		t.srv.Stats.Rejected.Add(1)
		return
	}
	go t.serve(fd, remote, local, bytes.Clone(first))
}

func (t *tlsFront) serve(fd int, remote, local netip.AddrPort, first []byte) {
	conn, err := fdConn(fd)
	if err != nil {
		<-t.slots
		return
	}
	tc := tls.Server(&prefixConn{Conn: conn, first: first, release: func() {}}, t.cfg)
	_ = conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err = tc.Handshake()
	<-t.slots
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	pair, err := socketpair()
	if err != nil {
		conn.Close()
		return
	}
	outer, err := fdConn(pair[1])
	if err != nil {
		unix.Close(pair[0])
		conn.Close()
		return
	}
	tcp, _ := conn.(*net.TCPConn)
	if !t.srv.register(pair[0], remote, local, tcp) {
		outer.Close()
		conn.Close()
		return
	}
	go func() { io.Copy(outer, tc); outer.Close(); tc.Close() }()
	go func() { io.Copy(tc, outer); tc.Close(); outer.Close() }()
}
