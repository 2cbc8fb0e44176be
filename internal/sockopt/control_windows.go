package sockopt

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// Control returns a net.Dialer/ListenConfig Control function that sets
// SO_REUSEADDR (on Windows it lets several sockets bind one port, what
// SO_REUSEPORT does elsewhere) and, when ttl > 0, IP_TTL (the unicast
// hop limit on an IPv6 socket).
func Control(ttl int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			h := windows.Handle(fd)
			if serr = windows.SetsockoptInt(h, windows.SOL_SOCKET, windows.SO_REUSEADDR, 1); serr != nil {
				return
			}
			switch {
			case ttl <= 0:
			case ipv6(network):
				serr = windows.SetsockoptInt(h, windows.IPPROTO_IPV6, windows.IPV6_UNICAST_HOPS, ttl)
			default:
				serr = windows.SetsockoptInt(h, windows.IPPROTO_IP, windows.IP_TTL, ttl)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
