//go:build linux || darwin

package sockopt

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetNotSentLowat bounds how many bytes c's kernel holds that it has not
// sent yet (TCP_NOTSENT_LOWAT): a write blocks until the unsent queue is
// below n, while what is in flight stays bounded by the congestion and
// receive windows. A stream that may move to another path uses it so
// that little of it is committed to the path it leaves.
func SetNotSentLowat(c net.Conn, n int) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("not-sent low water mark on %T: %w", c, ErrNotSupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("not-sent low water mark: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	}); err != nil {
		return fmt.Errorf("not-sent low water mark: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("not-sent low water mark: %w", serr)
	}
	return nil
}
