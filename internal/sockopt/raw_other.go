//go:build !linux

package sockopt

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// RawSocket is a TCP socket driven by hand; on this OS there is none
// (NewRawSocket returns ErrNotSupported), and the methods that need one
// report themselves not applicable.
type RawSocket struct{}

// NewRawSocket returns ErrNotSupported on this OS.
func NewRawSocket(netip.AddrPort, int) (*RawSocket, error) { return nil, ErrNotSupported }

// Connect returns ErrNotSupported on this OS.
func (s *RawSocket) Connect(netip.AddrPort) error { return ErrNotSupported }

// SetTTL returns ErrNotSupported on this OS.
func (s *RawSocket) SetTTL(int) error { return ErrNotSupported }

// Wait returns ErrNotSupported on this OS.
func (s *RawSocket) Wait(context.Context) error { return ErrNotSupported }

// Conn returns ErrNotSupported on this OS.
func (s *RawSocket) Conn() (net.Conn, error) { return nil, ErrNotSupported }

// Close does nothing on this OS.
func (s *RawSocket) Close() error { return nil }

// SetSynCount returns ErrNotSupported on this OS.
func (s *RawSocket) SetSynCount(int) error { return ErrNotSupported }

// Pending is false on this OS.
func (s *RawSocket) Pending() bool { return false }

// Err returns ErrNotSupported on this OS.
func (s *RawSocket) Err() error { return ErrNotSupported }

// Local is the zero endpoint on this OS.
func (s *RawSocket) Local() netip.AddrPort { return netip.AddrPort{} }

// WaitAny returns ErrNotSupported on this OS.
func WaitAny(context.Context, []*RawSocket) (int, error) { return -1, ErrNotSupported }

// RTT is unknown on this OS (no TCP_INFO reading here).
func RTT(net.Conn) (time.Duration, bool) { return 0, false }

// MinRTT is unknown on this OS.
func MinRTT(int) (time.Duration, bool) { return 0, false }
