// Package sockopt holds the socket options hole punching depends on:
// SO_REUSEADDR and SO_REUSEPORT, so that a listener and several connecting
// sockets can share one local port, and IP_TTL for low-TTL SYNs.
package sockopt

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// ErrNotSupported is what the hand-driven sockets, probes and kernel
// readings return on an operating system that lacks what they need
// (Linux's TCP_INFO, IP_RECVERR, TCP_SYNCNT and socket filters): the
// methods built on them report it as not applicable on this OS.
var ErrNotSupported = errors.New("not applicable on this OS")

// Dial connects to raddr from laddr (zero: any) with reuse options.
func Dial(ctx context.Context, laddr, raddr netip.AddrPort, ttl int) (*net.TCPConn, error) {
	d := net.Dialer{Control: Control(ttl)}
	if laddr.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
	}
	c, err := d.DialContext(ctx, "tcp4", raddr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Listen listens on laddr with reuse options.
func Listen(ctx context.Context, laddr netip.AddrPort) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: Control(0)}
	ln, err := lc.Listen(ctx, "tcp4", laddr.String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// Outcome names what a connection attempt came to, in the vocabulary the
// reports, checks and experiments use.
func Outcome(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "connected"
	case errors.Is(err, ErrNotSupported):
		return ProbeNotApplicable
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, syscall.EADDRINUSE), errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address-in-use"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
