package rendezvous

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair is a connected pair of stream sockets, closed on exec (macOS
// has no SOCK_CLOEXEC: the flag is set under the fork lock, as the os
// package does).
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(pair[0])
		unix.CloseOnExec(pair[1])
	}
	return pair, err
}
