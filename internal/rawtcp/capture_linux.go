package rawtcp

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/machsend/machsend/internal/sockopt"
)

// Capture reads, on every interface of the namespace, the TCP segments to
// or from one local port and the ICMP errors that come back. It keeps what
// it saw for diagnosis and delivers each packet on C (dropping when full).
type Capture struct {
	C    chan Captured
	port uint16
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	seen []Captured
}

// portFilter accepts IPv4 TCP with source or destination port p, and ICMP.
// A SOCK_DGRAM packet socket delivers the packet from the IP header on.
// It listens to every protocol (ETH_P_ALL): only such sockets see outgoing
// packets, so the filter checks for IPv4 itself.
func portFilter(p uint16) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtProto}, // skb->protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_IP, SkipTrue: 9},
		bpf.LoadAbsolute{Off: 9, Size: 1}, // IP protocol
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_ICMP, SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 7},
		bpf.LoadMemShift{Off: 0}, // X = IP header length
		bpf.LoadIndirect{Off: 0, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p), SkipTrue: 3},
		bpf.LoadIndirect{Off: 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
}

// NewCapture starts capturing for local port p. It needs CAP_NET_RAW; it
// only reads, so it works in any namespace.
func NewCapture(p uint16) (*Capture, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, privErr("packet socket", err)
	}
	if err := sockopt.AttachFilterFD(fd, portFilter(p)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c := &Capture{C: make(chan Captured, 1024), port: p, done: make(chan struct{})}
	go sockopt.ReadPackets(fd, 100*time.Millisecond, 2048, c.done, c.saw)
	return c, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// saw records and delivers one captured packet.
func (c *Capture) saw(b []byte, from unix.Sockaddr) {
	s, err := ParseSegment(b)
	if err != nil {
		return
	}
	if s.ICMP && s.Src.Port() != c.port {
		return // an error about someone else's segment
	}
	out := false
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		out = ll.Pkttype == unix.PACKET_OUTGOING
	}
	cp := Captured{Segment: s, Outgoing: out, At: time.Now()}
	c.mu.Lock()
	if len(c.seen) < 4096 {
		c.seen = append(c.seen, cp)
	}
	c.mu.Unlock()
	select {
	case c.C <- cp:
	default:
	}
}

// Seen returns what was captured so far.
func (c *Capture) Seen() []Captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Captured(nil), c.seen...)
}

// Close stops the capture (its reader exits within 100 ms).
func (c *Capture) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}
