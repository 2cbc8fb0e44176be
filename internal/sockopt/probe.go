package sockopt

import (
	"context"
	"errors"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Probe outcomes: what came back for one SYN, finer than Outcome because an
// RST and an ICMP port-unreachable both end a connect with ECONNREFUSED.
// The ICMP is read from the socket's error queue (IP_RECVERR), so no
// privileges are needed to tell them apart.
const (
	ProbeConnected        = "connected"
	ProbeRST              = "rst"
	ProbeICMPPort         = "icmp-port-unreachable"
	ProbeICMPAdmin        = "icmp-admin-prohibited"
	ProbeICMPTimeExceeded = "icmp-time-exceeded"
	ProbeICMPOtherUnreach = "icmp-unreachable"
	ProbeTimeout          = "timeout"
	ProbeError            = "error"
	// ProbeNotApplicable: this OS cannot send or read such a probe.
	ProbeNotApplicable      = "not-applicable-on-this-os"
	icmpDestUnreach         = 3
	icmpTimeExceeded        = 11
	icmpCodePort            = 3
	icmpCodeAdminProhibited = 13
)

// ProbeResult is what one probe SYN met.
type ProbeResult struct {
	Outcome string `json:"outcome"`
	// From is the address the ICMP came from (the hop or NAT that sent it).
	From netip.Addr `json:"from,omitzero"`
	// Local is the socket's local endpoint.
	Local netip.AddrPort `json:"local,omitzero"`
}

// ClassifyProbe names what a finished connect met, from its error and the
// ICMP (if any) queued on the socket.
func ClassifyProbe(err error, icmpOK bool, typ, code uint8) string {
	if icmpOK {
		switch {
		case typ == icmpDestUnreach && code == icmpCodePort:
			return ProbeICMPPort
		case typ == icmpDestUnreach && (code == icmpCodeAdminProhibited || code == 9 || code == 10):
			return ProbeICMPAdmin
		case typ == icmpDestUnreach:
			return ProbeICMPOtherUnreach
		case typ == icmpTimeExceeded:
			return ProbeICMPTimeExceeded
		}
	}
	switch {
	case err == nil:
		return ProbeConnected
	case Refused.Is(err), Reset.Is(err):
		return ProbeRST
	case errors.Is(err, context.DeadlineExceeded), TimedOut.Is(err):
		return ProbeTimeout
	case Unreachable.Is(err):
		return ProbeICMPOtherUnreach
	}
	return ProbeError
}

// Socket filters (classic BPF over the TCP header: a TCP socket's filter
// runs with the packet's data at the transport header).
var (
	// DropAll discards every packet: a sink listener swallows SYNs without
	// answering, so the prober's mapping stays half-open.
	DropAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}
	// DropBareSYN discards segments with SYN set and ACK clear.
	DropBareSYN = []bpf.Instruction{
		bpf.LoadAbsolute{Off: 13, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
)
