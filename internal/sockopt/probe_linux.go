package sockopt

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// EnableRecvErr asks the kernel to queue ICMP errors on the socket.
func (s *RawSocket) EnableRecvErr() error {
	if s.v6 {
		return unix.SetsockoptInt(s.fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	return unix.SetsockoptInt(s.fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
}

// Local returns the socket's local endpoint.
func (s *RawSocket) Local() netip.AddrPort {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return netip.AddrPort{}
	}
	switch in := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr), uint16(in.Port))
	}
	return netip.AddrPort{}
}

// ICMPError reads one queued ICMP error: its type, code and sender.
func (s *RawSocket) ICMPError() (typ, code uint8, from netip.Addr, ok bool) {
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, 0, netip.Addr{}, false
	}
	return ParseErrQueue(oob[:oobn])
}

// ParseErrQueue reads the IP_RECVERR (or IPV6_RECVERR) control message
// of an error-queue read: struct sock_extended_err followed by the
// offender's sockaddr_in (sockaddr_in6). An ICMPv6 error comes back in
// ICMP's (IPv4) types and codes (icmp6As4), so that one vocabulary
// classifies both. It never panics on short or foreign input.
func ParseErrQueue(oob []byte) (typ, code uint8, from netip.Addr, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, netip.Addr{}, false
	}
	const eeSize = int(unsafe.Sizeof(unix.SockExtendedErr{}))
	for _, m := range msgs {
		v4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if !v4 && !v6 || len(m.Data) < eeSize {
			continue
		}
		// errno u32, origin u8, type u8, code u8, pad u8, info u32, data u32.
		typ, code = m.Data[5], m.Data[6]
		off := m.Data[eeSize:] // the offender's address, right after the struct
		switch {
		case v4 && m.Data[4] == unix.SO_EE_ORIGIN_ICMP:
			if len(off) >= 8 && binary.NativeEndian.Uint16(off[0:]) == unix.AF_INET {
				from = netip.AddrFrom4([4]byte(off[4:8]))
			}
			return typ, code, from, true
		case v6 && m.Data[4] == unix.SO_EE_ORIGIN_ICMP6:
			t4, ok := icmp6As4[[2]uint8{typ, code}]
			if !ok {
				t4 = [2]uint8{icmpDestUnreach, icmpCodeOther}
				if typ == icmp6TimeExceeded {
					t4 = [2]uint8{icmpTimeExceeded, 0}
				}
			}
			if len(off) >= 24 && binary.NativeEndian.Uint16(off[0:]) == unix.AF_INET6 {
				from = netip.AddrFrom16([16]byte(off[8:24]))
			}
			return t4[0], t4[1], from, true
		}
	}
	return 0, 0, netip.Addr{}, false
}

// icmp6As4 translates ICMPv6 errors (type, code) to the ICMP ones of the
// same meaning: destination unreachable's no route, administratively
// prohibited, address unreachable and port unreachable, and time
// exceeded (any other destination unreachable reads as "other").
var icmp6As4 = map[[2]uint8][2]uint8{
	{1, 0}: {icmpDestUnreach, 0},                       // no route: network unreachable
	{1, 1}: {icmpDestUnreach, icmpCodeAdminProhibited}, // administratively prohibited
	{1, 3}: {icmpDestUnreach, 1},                       // address unreachable: host unreachable
	{1, 4}: {icmpDestUnreach, icmpCodePort},            // port unreachable
	{3, 0}: {icmpTimeExceeded, 0},                      // hop limit exceeded in transit
}

// icmp6TimeExceeded is ICMPv6's time-exceeded type; icmpCodeOther a
// destination-unreachable code that names none of the others.
const (
	icmp6TimeExceeded = 3
	icmpCodeOther     = 255
)

// DialProbe sends one SYN from laddr (zero port: any) to raddr and reports
// what came back within ctx: a connection (closed at once), an RST, an
// ICMP error (with its sender), or nothing. dropSYN installs a socket
// filter that discards bare SYNs arriving for the socket, so that the
// target's own retransmitted SYN cannot complete a simultaneous open at
// this end (a sink's dial-back must be answered by the target's SYN-ACK).
func DialProbe(ctx context.Context, laddr, raddr netip.AddrPort, ttl int, dropSYN bool) ProbeResult {
	if !laddr.IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	s, err := NewRawSocket(laddr, ttl)
	if err != nil {
		return ProbeResult{Outcome: ProbeError}
	}
	defer s.Close()
	_ = s.EnableRecvErr()
	if dropSYN {
		if err := s.AttachFilter(DropBareSYN); err != nil {
			return ProbeResult{Outcome: ProbeError}
		}
	}
	res := ProbeResult{}
	if err := s.Connect(raddr); err != nil {
		typ, code, from, ok := s.ICMPError()
		res.Outcome, res.From = ClassifyProbe(err, ok, typ, code), from
		return res
	}
	res.Local = s.Local()
	err = s.Wait(ctx)
	typ, code, from, ok := s.ICMPError()
	res.Outcome, res.From = ClassifyProbe(err, ok, typ, code), from
	return res
}

// AttachFilter installs a classic BPF socket filter.
func (s *RawSocket) AttachFilter(prog []bpf.Instruction) error {
	return attachFilter(s.fd, prog)
}

func attachFilter(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble filter: %w", err)
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fp := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	return nil
}

// Sink is a listening socket that swallows every SYN (DropAll): a SYN sent
// to it leaves the sender's NAT mapping half-open, and the sink's port can
// then dial back (DialProbe from Addr) as if it were answering.
type Sink struct {
	fd   int
	Addr netip.AddrPort
}

// ListenSink opens a sink on laddr (port 0: any).
func ListenSink(laddr netip.AddrPort) (*Sink, error) {
	s, err := NewRawSocket(laddr, 0)
	if err != nil {
		return nil, err
	}
	if err := s.AttachFilter(DropAll); err != nil {
		s.Close()
		return nil, err
	}
	if err := unix.Listen(s.fd, 8); err != nil {
		s.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	k := &Sink{fd: s.fd, Addr: s.Local()}
	s.fd = -1
	return k, nil
}

// Close closes the sink.
func (k *Sink) Close() error {
	if k.fd < 0 {
		return nil
	}
	err := unix.Close(k.fd)
	k.fd = -1
	return err
}

// AttachFilterFD installs a classic BPF socket filter on any socket.
func AttachFilterFD(fd int, prog []bpf.Instruction) error { return attachFilter(fd, prog) }

// ReadPackets reads datagrams from a raw or packet socket and calls fn for
// each until done is closed; a receive timeout wakes it every wake to notice
// done. It closes fd when it returns. fn must not keep b.
func ReadPackets(fd int, wake time.Duration, size int, done <-chan struct{}, fn func(b []byte, from unix.Sockaddr)) {
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(wake))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, size)
	for {
		select {
		case <-done:
			return
		default:
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n <= 0 {
			continue
		}
		fn(buf[:n], from)
	}
}
