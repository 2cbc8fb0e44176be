//go:build linux

package sockopt

import (
	"context"
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestClassifyProbe(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		icmp      bool
		typ, code uint8
		want      string
	}{
		{"connected", nil, false, 0, 0, ProbeConnected},
		{"rst", syscall.ECONNREFUSED, false, 0, 0, ProbeRST},
		{"port unreachable looks like rst", syscall.ECONNREFUSED, true, 3, 3, ProbeICMPPort},
		{"admin prohibited", syscall.EHOSTUNREACH, true, 3, 13, ProbeICMPAdmin},
		{"host unreachable", syscall.EHOSTUNREACH, true, 3, 1, ProbeICMPOtherUnreach},
		{"time exceeded", syscall.EHOSTUNREACH, true, 11, 0, ProbeICMPTimeExceeded},
		{"timeout", context.DeadlineExceeded, false, 0, 0, ProbeTimeout},
		{"other", syscall.EPERM, false, 0, 0, ProbeError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ClassifyProbe(c.err, c.icmp, c.typ, c.code); got != c.want {
				t.Errorf("%s, want %s", got, c.want)
			}
		})
	}
}

// errQueueMsg is the control message of an error-queue read: an ICMP
// error from an IPv4 sender, or an ICMPv6 one from an IPv6 sender.
func errQueueMsg(typ, code uint8, from netip.Addr) []byte {
	ee := make([]byte, int(unsafe.Sizeof(unix.SockExtendedErr{})))
	ee[4] = unix.SO_EE_ORIGIN_ICMP
	ee[5], ee[6] = typ, code
	level, kind := unix.IPPROTO_IP, unix.IP_RECVERR
	sa := make([]byte, 16)
	binary.NativeEndian.PutUint16(sa, unix.AF_INET)
	if from.Is6() {
		ee[4], level, kind = unix.SO_EE_ORIGIN_ICMP6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
		sa = make([]byte, 28)
		binary.NativeEndian.PutUint16(sa, unix.AF_INET6)
		a := from.As16()
		copy(sa[8:24], a[:])
	} else {
		a := from.As4()
		copy(sa[4:8], a[:])
	}
	data := append(ee, sa...)
	h := make([]byte, unix.CmsgLen(len(data)))
	hdr := (*unix.Cmsghdr)(unsafe.Pointer(&h[0]))
	hdr.Level, hdr.Type = int32(level), int32(kind)
	hdr.SetLen(unix.CmsgLen(len(data)))
	copy(h[unix.CmsgLen(0):], data)
	return h
}

// An ICMP error is read as it came; an ICMPv6 one in ICMP's types and
// codes of the same meaning, with its IPv6 sender.
func TestParseErrQueue(t *testing.T) {
	v4, v6 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name               string
		typ, code          uint8
		from               netip.Addr
		wantTyp, wantCode  uint8
		wantClassification string
	}{
		{"time exceeded", 11, 0, v4, 11, 0, ProbeICMPTimeExceeded},
		{"port unreachable", 3, 3, v4, 3, 3, ProbeICMPPort},
		{"IPv6 hop limit exceeded", 3, 0, v6, 11, 0, ProbeICMPTimeExceeded},
		{"IPv6 port unreachable", 1, 4, v6, 3, 3, ProbeICMPPort},
		{"IPv6 administratively prohibited", 1, 1, v6, 3, 13, ProbeICMPAdmin},
		{"IPv6 address unreachable", 1, 3, v6, 3, 1, ProbeICMPOtherUnreach},
		{"IPv6 unknown unreachable code", 1, 99, v6, 3, 255, ProbeICMPOtherUnreach},
	} {
		typ, code, got, ok := ParseErrQueue(errQueueMsg(tc.typ, tc.code, tc.from))
		if !ok || typ != tc.wantTyp || code != tc.wantCode || got != tc.from {
			t.Errorf("%s: ParseErrQueue = %d %d %s %v, want %d %d %s", tc.name, typ, code, got, ok, tc.wantTyp, tc.wantCode, tc.from)
		}
		if c := ClassifyProbe(syscall.EHOSTUNREACH, ok, typ, code); c != tc.wantClassification {
			t.Errorf("%s: classified %s, want %s", tc.name, c, tc.wantClassification)
		}
	}
	if _, _, _, ok := ParseErrQueue([]byte{1, 2, 3}); ok {
		t.Error("garbage parsed")
	}
}

func FuzzParseErrQueue(f *testing.F) {
	f.Add(errQueueMsg(3, 3, netip.MustParseAddr("192.0.2.1")))
	f.Add(errQueueMsg(1, 4, netip.MustParseAddr("2001:db8::1")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _, _ = ParseErrQueue(b) })
}
