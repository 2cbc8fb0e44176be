//go:build !linux && !darwin

package sockopt

import (
	"fmt"
	"net"
)

// SetNotSentLowat is TCP_NOTSENT_LOWAT where the system has it; here it
// does not.
func SetNotSentLowat(c net.Conn, n int) error {
	return fmt.Errorf("not-sent low water mark: %w", ErrNotSupported)
}
