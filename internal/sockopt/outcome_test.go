package sockopt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// Outcome names every failure the attempt events and reports use, through
// wrapping; a mechanism this OS lacks is "not applicable", not an error.
func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "connected"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "refused"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "reset"},
		{syscall.EHOSTUNREACH, "unreachable"},
		{syscall.ENETUNREACH, "unreachable"},
		{syscall.EADDRINUSE, "address-in-use"},
		{os.ErrDeadlineExceeded, "timeout"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("socket: %w", ErrNotSupported), ProbeNotApplicable},
		{errors.New("something else"), "error"},
	} {
		if got := Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
