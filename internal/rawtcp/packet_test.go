package rawtcp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	hostA = netip.MustParseAddrPort("198.18.1.2:40000")
	pubB  = netip.MustParseAddrPort("198.51.100.2:20010")
)

func mustSYNACK(t testing.TB, own SYN) []byte {
	t.Helper()
	b, err := SYNACK(hostA, pubB, own, 41, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// icmpQuoting builds an ICMP time-exceeded from the core quoting pkt.
func icmpQuoting(t testing.TB, pkt []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: []byte{203, 0, 113, 1}, DstIP: []byte{198, 18, 1, 2}}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, 0)}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, ic, gopacket.Payload(pkt[:28])); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSYNACKRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		own  SYN
	}{
		{"linux options", SYN{ISN: 0xdeadbeef, Window: 64240, MSS: 1460, WScale: 10, SACK: true}},
		{"no options", SYN{ISN: 7, Window: 1024, WScale: -1}},
		{"wrapping ack", SYN{ISN: 0xffffffff, Window: 1, MSS: 536, WScale: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustSYNACK(t, tt.own)
			s, err := ParseSegment(b)
			if err != nil {
				t.Fatal(err)
			}
			if !s.SYN || !s.ACK || s.RST || s.FIN || s.Src != hostA || s.Dst != pubB || s.Seq != tt.own.ISN || s.Ack != 42 || s.TTL != 64 {
				t.Fatalf("parsed %+v", s)
			}
			want := tt.own
			want.To = pubB
			if s.Options != want {
				t.Errorf("options %+v, want %+v", s.Options, want)
			}
			// The TCP checksum must verify over the pseudo-header.
			p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
			if p.ErrorLayer() != nil {
				t.Fatalf("gopacket: %v", p.ErrorLayer().Error())
			}
			if sum := checksum(b[20:], b[12:20]); sum != 0 {
				t.Errorf("tcp checksum does not verify (%#x)", sum)
			}
		})
	}
}

// checksum is the Internet checksum of a TCP segment with its IPv4
// pseudo-header (addrs is source then destination); 0 when it verifies.
func checksum(seg, addrs []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(addrs)
	add([]byte{0, 6, byte(len(seg) >> 8), byte(len(seg))})
	add(seg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestParseSegment(t *testing.T) {
	synack := mustSYNACK(t, SYN{ISN: 99, Window: 100, WScale: -1})
	tests := []struct {
		name    string
		pkt     []byte
		wantErr bool
		check   func(Segment) bool
	}{
		{"syn-ack", synack, false, func(s Segment) bool { return s.SYN && s.ACK && s.Seq == 99 }},
		{"icmp time-exceeded quoting the segment", icmpQuoting(t, synack), false, func(s Segment) bool {
			return s.ICMP && s.ICMPType == 11 && s.Src == hostA && s.Dst == pubB && s.Seq == 99 && s.ICMPFrom == netip.MustParseAddr("203.0.113.1")
		}},
		{"empty", nil, true, nil},
		{"ipv6 version", append([]byte{0x60}, make([]byte, 39)...), true, nil},
		{"truncated tcp", synack[:30], true, nil},
		{"udp", func() []byte { b := append([]byte(nil), synack...); b[9] = 17; return b }(), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSegment(tt.pkt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrPacket) {
				t.Errorf("error %v does not wrap ErrPacket", err)
			}
			if tt.check != nil && !tt.check(s) {
				t.Errorf("parsed %+v", s)
			}
		})
	}
}

func TestSYNACKRejectsIPv6(t *testing.T) {
	_, err := SYNACK(netip.MustParseAddrPort("[2001:db8::1]:1"), pubB, SYN{WScale: -1}, 0, 0)
	if !errors.Is(err, ErrPacket) {
		t.Fatalf("err = %v, want ErrPacket", err)
	}
}

func FuzzParseSegment(f *testing.F) {
	synack := mustSYNACK(f, SYN{ISN: 1, Window: 2, MSS: 1460, WScale: 7, SACK: true})
	f.Add(synack)
	f.Add(icmpQuoting(f, synack))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSegment(b)
		if err == nil && s.SYN && s.Options.WScale > 14 {
			t.Fatalf("window scale %d accepted", s.Options.WScale)
		}
	})
}
