package sockopt

import "errors"

// ErrClass is what a socket error means, whatever number the system gives
// it: Linux and macOS report ECONNREFUSED where Windows reports
// WSAECONNREFUSED (10061), which Go's syscall.ECONNREFUSED does not match
// on Windows. sockErrs (errclass_unix.go, errclass_windows.go) lists each
// class's errors as this system reports them.
type ErrClass int

const (
	Refused      ErrClass = iota // the peer answered the SYN with a RST
	Reset                        // an established connection was reset or aborted
	Unreachable                  // no route to the host or network
	AddrInUse                    // the local address (and port) is taken
	AddrNotAvail                 // the local address is not this host's, or no port is free
	TimedOut                     // the system gave up on the connection
)

// Is says whether err is (or wraps) one of class c's errors.
func (c ErrClass) Is(err error) bool {
	if err == nil || c < 0 || int(c) >= len(sockErrs) {
		return false
	}
	for _, e := range sockErrs[c] {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
