package sockopt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// RawSocket is a TCP socket driven by hand, for the punching steps the net
// package cannot express: send one SYN and close (which sends nothing more
// while in SYN_SENT), or keep a connect pending while changing its TTL.
// Its address family is its local address's (an IPv6 socket's TTL is its
// unicast hop limit).
type RawSocket struct {
	fd int
	v6 bool
}

// NewRawSocket opens a non-blocking TCP socket bound to laddr with reuse options.
func NewRawSocket(laddr netip.AddrPort, ttl int) (*RawSocket, error) {
	laddr = unmap(laddr)
	if !laddr.Addr().IsValid() {
		return nil, fmt.Errorf("raw socket: no local address (0.0.0.0 or :: for any)")
	}
	s := &RawSocket{v6: laddr.Addr().Is6()}
	family := unix.AF_INET
	if s.v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	s.fd = fd
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			s.Close()
			return nil, fmt.Errorf("setsockopt: %w", err)
		}
	}
	if ttl > 0 {
		if err := s.SetTTL(ttl); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := unix.Bind(fd, s.sockaddr(laddr)); err != nil {
		s.Close()
		return nil, fmt.Errorf("bind %s: %w", laddr, err)
	}
	return s, nil
}

// ErrFamily: an endpoint of the other address family than the socket's.
var ErrFamily = errors.New("the address is of the other family than the socket")

// sockaddr is ap as the socket's family's address (ap's family checked by
// the caller).
func (s *RawSocket) sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if s.v6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// Connect starts a non-blocking connect (sends the SYN).
func (s *RawSocket) Connect(raddr netip.AddrPort) error {
	raddr = unmap(raddr)
	if raddr.Addr().Is6() != s.v6 {
		return fmt.Errorf("connect %s: %w", raddr, ErrFamily)
	}
	err := unix.Connect(s.fd, s.sockaddr(raddr))
	if err != nil && err != unix.EINPROGRESS {
		return fmt.Errorf("connect %s: %w", raddr, err)
	}
	return nil
}

// SetTTL changes the socket's TTL, or its hop limit when it is IPv6 (for
// the retransmitted SYN and what follows).
func (s *RawSocket) SetTTL(ttl int) error {
	var err error
	if s.v6 {
		err = unix.SetsockoptInt(s.fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
	} else {
		err = unix.SetsockoptInt(s.fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
	}
	if err != nil {
		return fmt.Errorf("TTL %d: %w", ttl, err)
	}
	return nil
}

// Wait waits until the pending connect completes or fails, or the deadline.
func (s *RawSocket) Wait(ctx context.Context) error {
	for {
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, 50)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("poll: %w", err)
		}
		if n > 0 {
			return s.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Conn turns a connected raw socket into a net.Conn (the socket is handed over).
func (s *RawSocket) Conn() (net.Conn, error) {
	f := osFile(s.fd)
	s.fd = -1
	defer f.Close()
	return net.FileConn(f)
}

// Close closes the socket if it was not handed over.
func (s *RawSocket) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// SetSynCount bounds the SYN retransmissions of a pending connect (TCP_SYNCNT).
func (s *RawSocket) SetSynCount(n int) error {
	return unix.SetsockoptInt(s.fd, unix.IPPROTO_TCP, unix.TCP_SYNCNT, n)
}

// Pending reports whether the socket's connect is still in SYN_SENT (not
// completed, refused or aborted by an ICMP error). It reads TCP_INFO, so
// unlike Err it consumes no pending error.
func (s *RawSocket) Pending() bool {
	info, err := unix.GetsockoptTCPInfo(s.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && info.State == tcpSynSent
}

// tcpSynSent is TCP_SYN_SENT of include/net/tcp_states.h.
const tcpSynSent = 2

// Err reports, without waiting, whether a pending connect has failed
// (for example aborted by an ICMP error); nil while it is still pending or
// once it has completed.
func (s *RawSocket) Err() error {
	soerr, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soerr != 0 {
		return syscall.Errno(soerr)
	}
	return nil
}

// WaitAny waits until one of several pending connects completes and returns
// its index. Sockets whose connect fails drop out; when all have failed it
// returns the last failure.
func WaitAny(ctx context.Context, socks []*RawSocket) (int, error) {
	live := map[int]bool{}
	for i := range socks {
		live[i] = true
	}
	var last error = errors.New("no sockets")
	for len(live) > 0 {
		var pfd []unix.PollFd
		var idx []int
		for i := range live {
			pfd = append(pfd, unix.PollFd{Fd: int32(socks[i].fd), Events: unix.POLLOUT})
			idx = append(idx, i)
		}
		n, err := unix.Poll(pfd, 50)
		if err != nil && err != unix.EINTR {
			return -1, fmt.Errorf("poll: %w", err)
		}
		for k := 0; n > 0 && k < len(pfd); k++ {
			if pfd[k].Revents == 0 {
				continue
			}
			i := idx[k]
			soerr, err := unix.GetsockoptInt(socks[i].fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soerr == 0 {
				return i, nil
			}
			if err == nil {
				err = syscall.Errno(soerr)
			}
			last = err
			delete(live, i)
		}
		if err := ctx.Err(); err != nil {
			return -1, err
		}
	}
	return -1, last
}

// RTT is the kernel's smoothed round-trip time of a TCP connection
// (TCP_INFO's tcpi_rtt); ok is false when c is not a TCP connection or the
// kernel has no sample yet. A *tls.Conn is looked through to its TCP
// connection.
func RTT(c net.Conn) (rtt time.Duration, ok bool) {
	if t, isTLS := c.(interface{ NetConn() net.Conn }); isTLS {
		c = t.NetConn()
	}
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	cerr := raw.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if cerr != nil || err != nil || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}

// MinRTT is the smallest round trip the kernel has seen on the TCP socket
// fd (TCP_INFO's tcpi_min_rtt): the path's delay without the queueing and
// scheduling delays that inflate a smoothed RTT. ok is false when fd is
// not a TCP socket or has no sample yet.
func MinRTT(fd int) (rtt time.Duration, ok bool) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil || info.Min_rtt == 0 || info.Min_rtt == ^uint32(0) {
		return 0, false
	}
	return time.Duration(info.Min_rtt) * time.Microsecond, true
}
