//go:build (linux || darwin) && !rvconn

package rendezvous

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"syscall"

	"github.com/machsend/machsend/internal/epoll"
)

// serveConn serves an admitted connection from an event loop: its
// descriptor leaves the Go runtime's poller for the loop's epoll set.
func (s *Server) serveConn(raw net.Conn, remote, local netip.AddrPort) {
	fd, err := epoll.Detach(raw)
	if err != nil {
		s.perAddr.put(remote.Addr())
		s.log.Warn("cannot serve connection", "remote", remote, "err", err)
		return
	}
	s.serveFD(fd, remote, local, nil)
}

// serveTLS serves a TLS client's plaintext from an event loop, through a
// socket pair: the loop serves one end as any client, under the same
// admission limits, while two goroutines carry bytes between the other
// end and the TLS connection. It reports whether the client was admitted.
func (s *Server) serveTLS(tc *tls.Conn, remote, local netip.AddrPort, tcp *net.TCPConn) bool {
	pair, err := socketpair()
	if err != nil {
		return false
	}
	outer, err := fdConn(pair[1])
	if err != nil {
		syscall.Close(pair[0])
		return false
	}
	if !s.register(pair[0], remote, local, tcp) {
		outer.Close()
		return false
	}
	go func() { io.Copy(outer, tc); outer.Close(); tc.Close() }()
	go func() { io.Copy(tc, outer); tc.Close(); outer.Close() }()
	return true
}

// register admits a TLS client's plaintext end fd (tlsfront.go) under the
// same limits as any connection, and serves it; it reports whether it was
// admitted (if not, fd is closed).
func (s *Server) register(fd int, remote, local netip.AddrPort, tcp *net.TCPConn) bool {
	if !s.admitConn(remote.Addr(), true) {
		syscall.Close(fd)
		return false
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		s.perAddr.put(remote.Addr())
		syscall.Close(fd)
		return false
	}
	s.serveFD(fd, remote, local, tcp)
	return true
}

// serveFD hands an admitted connection's descriptor to an event loop;
// tcp, for a TLS client, is its TCP connection (for round-trip readings).
func (s *Server) serveFD(fd int, remote, local netip.AddrPort, tcp *net.TCPConn) {
	c := s.newClient(func(io *clientIO) { io.fd = fd }, remote, local, tcp)
	if err := c.loop.add(c); err != nil {
		syscall.Close(fd)
		s.drop(c)
		s.log.Warn("cannot serve connection", "remote", remote, "err", err)
	}
}
