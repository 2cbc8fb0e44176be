//go:build !linux

package rawtcp

import (
	"fmt"
	"net/netip"

	"github.com/machsend/machsend/internal/sockopt"
)

// Capture reads the TCP segments of one local port; on this OS there is
// none (NewCapture fails).
type Capture struct {
	C chan Captured
}

// NewCapture is not applicable on this OS.
func NewCapture(uint16) (*Capture, error) {
	return nil, fmt.Errorf("packet capture: %w", sockopt.ErrNotSupported)
}

// Seen is empty on this OS.
func (c *Capture) Seen() []Captured { return nil }

// Close does nothing on this OS.
func (c *Capture) Close() error { return nil }

// Injector sends raw IPv4 packets; on this OS there is none.
type Injector struct{}

// NewInjector is not applicable on this OS.
func NewInjector() (*Injector, error) {
	return nil, fmt.Errorf("raw packet injection: %w", sockopt.ErrNotSupported)
}

// Send is not applicable on this OS.
func (i *Injector) Send([]byte, netip.Addr) error { return sockopt.ErrNotSupported }

// Sent is 0 on this OS.
func (i *Injector) Sent() int64 { return 0 }

// Close does nothing on this OS.
func (i *Injector) Close() error { return nil }

// InLab refuses on this OS: labs are Linux network namespaces.
func InLab() error { return fmt.Errorf("%w: labs are Linux network namespaces", ErrNotLab) }
