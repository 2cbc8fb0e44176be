package rawtcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Sentinel errors callers test for.
var (
	// ErrNotLab: injection was refused because this is not a lab namespace.
	ErrNotLab = errors.New("raw packet injection refused: not inside a natlab lab namespace (nl-*)")
	// ErrPrivilege: raw or packet sockets need CAP_NET_RAW.
	ErrPrivilege = errors.New("raw sockets need CAP_NET_RAW")
	// ErrPacket: a packet could not be parsed.
	ErrPacket = errors.New("malformed packet")
)

// SYN is what a peer learned about its own SYN and tells the other side (or
// the server) so that a matching SYN-ACK can be crafted.
type SYN struct {
	ISN    uint32 `json:"isn"`
	Window uint16 `json:"window"`
	MSS    uint16 `json:"mss,omitempty"`
	// WScale is the window-scale shift; -1 when the SYN had no such option.
	WScale int  `json:"wscale"`
	SACK   bool `json:"sack,omitempty"`
	// To is where the SYN was sent: the other peer's public endpoint as
	// this peer targeted it.
	To netip.AddrPort `json:"to"`
	// Aborted, when set, says this peer's connect died before the exchange
	// (for example an ICMP time-exceeded reached its kernel).
	Aborted string `json:"aborted,omitempty"`
}

// Segment is one parsed packet: a TCP segment, or an ICMP error quoting one.
type Segment struct {
	Src, Dst netip.AddrPort
	TTL      uint8
	Seq, Ack uint32
	SYN, ACK bool
	RST, FIN bool
	Window   uint16
	Options  SYN // ISN (= Seq), Window and options when SYN is set
	// ICMP is set for an ICMP error; Src/Dst/Seq are then those of the
	// quoted segment and ICMPFrom is the error's sender.
	ICMP     bool
	ICMPType uint8
	ICMPCode uint8
	ICMPFrom netip.Addr
}

// TimeExceeded says whether s is an ICMP time-exceeded quoting a segment.
func (s Segment) TimeExceeded() bool {
	return s.ICMP && s.ICMPType == uint8(layers.ICMPv4TypeTimeExceeded)
}

// ParseSegment reads an IPv4 packet carrying TCP, or an ICMP error quoting
// a TCP segment. It never panics; anything else is ErrPacket.
func ParseSegment(b []byte) (Segment, error) {
	var s Segment
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		return s, fmt.Errorf("%w: ip: %v", ErrPacket, err)
	}
	s.TTL = ip.TTL
	switch ip.Protocol {
	case layers.IPProtocolTCP:
		return parseTCP(s, ip.SrcIP, ip.DstIP, ip.Payload)
	case layers.IPProtocolICMPv4:
		var ic layers.ICMPv4
		if err := ic.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			return s, fmt.Errorf("%w: icmp: %v", ErrPacket, err)
		}
		t := ic.TypeCode.Type()
		if t != layers.ICMPv4TypeTimeExceeded && t != layers.ICMPv4TypeDestinationUnreachable {
			return s, fmt.Errorf("%w: icmp type %d is not an error", ErrPacket, t)
		}
		var inner layers.IPv4
		if err := inner.DecodeFromBytes(ic.Payload, gopacket.NilDecodeFeedback); err != nil {
			return s, fmt.Errorf("%w: quoted ip: %v", ErrPacket, err)
		}
		if inner.Protocol != layers.IPProtocolTCP || len(inner.Payload) < 8 {
			return s, fmt.Errorf("%w: icmp does not quote a tcp segment", ErrPacket)
		}
		q := inner.Payload
		from, _ := netip.AddrFromSlice(ip.SrcIP.To4())
		s.ICMP, s.ICMPType, s.ICMPCode, s.ICMPFrom = true, t, ic.TypeCode.Code(), from
		sa, _ := netip.AddrFromSlice(inner.SrcIP.To4())
		da, _ := netip.AddrFromSlice(inner.DstIP.To4())
		s.Src = netip.AddrPortFrom(sa, uint16(q[0])<<8|uint16(q[1]))
		s.Dst = netip.AddrPortFrom(da, uint16(q[2])<<8|uint16(q[3]))
		s.Seq = uint32(q[4])<<24 | uint32(q[5])<<16 | uint32(q[6])<<8 | uint32(q[7])
		return s, nil
	}
	return s, fmt.Errorf("%w: protocol %d", ErrPacket, ip.Protocol)
}

func parseTCP(s Segment, src, dst []byte, payload []byte) (Segment, error) {
	var t layers.TCP
	if err := t.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
		return s, fmt.Errorf("%w: tcp: %v", ErrPacket, err)
	}
	sa, ok1 := netip.AddrFromSlice(src)
	da, ok2 := netip.AddrFromSlice(dst)
	if !ok1 || !ok2 {
		return s, fmt.Errorf("%w: addresses", ErrPacket)
	}
	s.Src = netip.AddrPortFrom(sa.Unmap(), uint16(t.SrcPort))
	s.Dst = netip.AddrPortFrom(da.Unmap(), uint16(t.DstPort))
	s.Seq, s.Ack, s.Window = t.Seq, t.Ack, t.Window
	s.SYN, s.ACK, s.RST, s.FIN = t.SYN, t.ACK, t.RST, t.FIN
	if t.SYN {
		s.Options = SYN{ISN: t.Seq, Window: t.Window, WScale: -1, To: s.Dst}
		for _, o := range t.Options {
			switch o.OptionType {
			case layers.TCPOptionKindMSS:
				if len(o.OptionData) == 2 {
					s.Options.MSS = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
				}
			case layers.TCPOptionKindWindowScale:
				if len(o.OptionData) == 1 && o.OptionData[0] <= 14 {
					s.Options.WScale = int(o.OptionData[0])
				}
			case layers.TCPOptionKindSACKPermitted:
				s.Options.SACK = true
			}
		}
	}
	return s, nil
}

// SYNACK builds the IPv4 packet of a SYN-ACK from src to dst that answers
// the SYN whose sequence number was peerISN, with the answering side's own
// SYN (its sequence number and options). ttl 0 means 64.
func SYNACK(src, dst netip.AddrPort, own SYN, peerISN uint32, ttl uint8) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("%w: IPv4 endpoints only (%s -> %s)", ErrPacket, src, dst)
	}
	if ttl == 0 {
		ttl = 64
	}
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: s4[:], DstIP: d4[:]}
	t := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: own.ISN, Ack: peerISN + 1, SYN: true, ACK: true, Window: own.Window}
	if own.MSS > 0 {
		t.Options = append(t.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4,
			OptionData: []byte{byte(own.MSS >> 8), byte(own.MSS)}})
	}
	if own.SACK {
		t.Options = append(t.Options, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
	}
	if own.WScale >= 0 && own.WScale <= 14 {
		t.Options = append(t.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(own.WScale)}})
	}
	if err := t.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, t); err != nil {
		return nil, fmt.Errorf("serialize: %w", err)
	}
	return buf.Bytes(), nil
}

// Captured is one segment seen by a Capture, with its direction.
type Captured struct {
	Segment
	Outgoing bool
	At       time.Time
}
