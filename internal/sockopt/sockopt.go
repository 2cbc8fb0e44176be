// Package sockopt holds the socket options hole punching depends on:
// SO_REUSEADDR and SO_REUSEPORT, so that a listener and several connecting
// sockets can share one local port, and IP_TTL (IPv6: the unicast hop
// limit) for low-TTL SYNs. Dial and Listen take the address family from
// the addresses they are given.
package sockopt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNotSupported is what the hand-driven sockets, probes and kernel
// readings return on an operating system that lacks what they need
// (Linux's TCP_INFO, IP_RECVERR, TCP_SYNCNT and socket filters): the
// methods built on them report it as not applicable on this OS.
var ErrNotSupported = errors.New("not applicable on this OS")

// Dial connects to raddr from laddr (zero: any) with reuse options, over
// raddr's address family. An unspecified laddr (0.0.0.0 or ::) with a
// port binds that port in raddr's family.
func Dial(ctx context.Context, laddr, raddr netip.AddrPort, ttl int) (*net.TCPConn, error) {
	raddr = unmap(raddr)
	d := net.Dialer{Control: Control(ttl)}
	if laddr.IsValid() {
		laddr = unmap(laddr)
		if laddr.Addr().IsUnspecified() {
			laddr = netip.AddrPortFrom(unspecified(raddr.Addr()), laddr.Port())
		}
		if laddr.Addr().Is4() != raddr.Addr().Is4() {
			return nil, fmt.Errorf("dial %s from %s: the two addresses are of different families", raddr, laddr)
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
	}
	c, err := d.DialContext(ctx, Network(raddr), raddr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Listen listens on laddr with reuse options, in laddr's address family.
func Listen(ctx context.Context, laddr netip.AddrPort) (*net.TCPListener, error) {
	laddr = unmap(laddr)
	lc := net.ListenConfig{Control: Control(0)}
	ln, err := lc.Listen(ctx, Network(laddr), laddr.String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// Network is "tcp6" for an IPv6 endpoint and "tcp4" otherwise (an
// IPv4-mapped IPv6 address counts as IPv4).
func Network(ap netip.AddrPort) string {
	if ap.Addr().Unmap().Is4() || !ap.Addr().IsValid() {
		return "tcp4"
	}
	return "tcp6"
}

// ipv6 says whether a Control function's network is an IPv6 one.
func ipv6(network string) bool { return strings.HasSuffix(network, "6") }

// unmap turns an IPv4-mapped IPv6 endpoint into its IPv4 one.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// unspecified is the "any" address of a's family (IPv4's for an invalid a).
// Is6 says whether a is an IPv6 address proper (not IPv4-mapped).
func Is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

func unspecified(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
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
	case Refused.Is(err):
		return "refused"
	case Reset.Is(err):
		return "reset"
	case Unreachable.Is(err):
		return "unreachable"
	case AddrInUse.Is(err), AddrNotAvail.Is(err):
		return "address-in-use"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
