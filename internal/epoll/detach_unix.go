//go:build linux || darwin

package epoll

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Detach takes the descriptor of a TCP connection out of the Go runtime's
// poller: it returns a non-blocking duplicate the caller owns, and closes
// conn.
func Detach(conn net.Conn) (int, error) {
	defer conn.Close()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T is not a socket", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		r, err := unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			derr = fmt.Errorf("dup: %w", err)
			return
		}
		fd = r
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
