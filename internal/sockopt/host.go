package sockopt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// HostIPv4 returns the host's IPv4 addresses (loopback included): what
// "an address of this host" means when a client compares them with the
// address a server observed, to tell whether it is behind a NAT.
func HostIPv4() []netip.Addr {
	var out []netip.Addr
	for _, a := range HostAddrs() {
		if a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// HostAddrs returns the host's addresses of both families (loopback
// included), IPv4-mapped ones unmapped.
func HostAddrs() []netip.Addr {
	var out []netip.Addr
	ifs, _ := net.InterfaceAddrs()
	for _, a := range ifs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// FreePort reserves an ephemeral port with a reuse listener on every IPv4
// address; the listener is returned so the caller decides whether to keep
// listening on it.
func FreePort(ctx context.Context) (*net.TCPListener, uint16, error) {
	return FreePortFor(ctx, netip.IPv4Unspecified())
}

// FreePortFor is FreePort in the address family of remote (the peer or
// server the port will talk to).
func FreePortFor(ctx context.Context, remote netip.Addr) (*net.TCPListener, uint16, error) {
	ln, err := Listen(ctx, netip.AddrPortFrom(unspecified(remote.Unmap()), 0))
	if err != nil {
		return nil, 0, fmt.Errorf("reserve a local port: %w", err)
	}
	return ln, ln.Addr().(*net.TCPAddr).AddrPort().Port(), nil
}
