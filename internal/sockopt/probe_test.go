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

func errQueueMsg(typ, code uint8, from netip.Addr) []byte {
	ee := make([]byte, int(unsafe.Sizeof(unix.SockExtendedErr{})))
	ee[4] = unix.SO_EE_ORIGIN_ICMP
	ee[5], ee[6] = typ, code
	sa := make([]byte, 16)
	binary.NativeEndian.PutUint16(sa, unix.AF_INET)
	a := from.As4()
	copy(sa[4:8], a[:])
	data := append(ee, sa...)
	h := make([]byte, unix.CmsgLen(len(data)))
	hdr := (*unix.Cmsghdr)(unsafe.Pointer(&h[0]))
	hdr.Level, hdr.Type = unix.IPPROTO_IP, unix.IP_RECVERR
	hdr.SetLen(unix.CmsgLen(len(data)))
	copy(h[unix.CmsgLen(0):], data)
	return h
}

func TestParseErrQueue(t *testing.T) {
	from := netip.MustParseAddr("203.0.113.1")
	typ, code, got, ok := ParseErrQueue(errQueueMsg(11, 0, from))
	if !ok || typ != 11 || code != 0 || got != from {
		t.Fatalf("ParseErrQueue = %d %d %s %v", typ, code, got, ok)
	}
	if _, _, _, ok := ParseErrQueue([]byte{1, 2, 3}); ok {
		t.Error("garbage parsed")
	}
}

func FuzzParseErrQueue(f *testing.F) {
	f.Add(errQueueMsg(3, 3, netip.MustParseAddr("192.0.2.1")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _, _ = ParseErrQueue(b) })
}
