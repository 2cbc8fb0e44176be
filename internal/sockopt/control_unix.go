//go:build unix

package sockopt

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Control returns a net.Dialer/ListenConfig Control function that sets
// SO_REUSEADDR and SO_REUSEPORT and, when ttl > 0, IP_TTL (the unicast
// hop limit on an IPv6 socket).
func Control(ttl int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			switch {
			case ttl <= 0:
			case ipv6(network):
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
			default:
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
