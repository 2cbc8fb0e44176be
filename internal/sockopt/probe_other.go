//go:build !linux

package sockopt

import (
	"context"
	"net/netip"

	"golang.org/x/net/bpf"
)

// EnableRecvErr returns ErrNotSupported on this OS.
func (s *RawSocket) EnableRecvErr() error { return ErrNotSupported }

// ICMPError finds nothing on this OS.
func (s *RawSocket) ICMPError() (typ, code uint8, from netip.Addr, ok bool) {
	return 0, 0, netip.Addr{}, false
}

// AttachFilter returns ErrNotSupported on this OS.
func (s *RawSocket) AttachFilter([]bpf.Instruction) error { return ErrNotSupported }

// DialProbe cannot probe on this OS: its outcome is ProbeNotApplicable.
func DialProbe(context.Context, netip.AddrPort, netip.AddrPort, int, bool) ProbeResult {
	return ProbeResult{Outcome: ProbeNotApplicable}
}

// Sink is a listening socket that swallows every SYN; this OS has none.
type Sink struct {
	Addr netip.AddrPort
}

// ListenSink returns ErrNotSupported on this OS.
func ListenSink(netip.AddrPort) (*Sink, error) { return nil, ErrNotSupported }

// Close does nothing on this OS.
func (k *Sink) Close() error { return nil }
