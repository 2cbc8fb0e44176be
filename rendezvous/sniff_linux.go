package rendezvous

import (
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/machsend/machsend/internal/sockopt"
)

// startSniffer reads the SYNs arriving at the sinks from a raw socket,
// when the server may open one (CAP_NET_RAW).
func (p *prober) startSniffer() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return
	}
	// Only segments with SYN set reach the sniffer: a raw TCP socket
	// otherwise copies every segment the host receives to it.
	if err := sockopt.AttachFilterFD(fd, synOnly); err != nil {
		unix.Close(fd)
		return
	}
	p.sniff = true
	go sockopt.ReadPackets(fd, 200*time.Millisecond, 256, p.done, func(b []byte, _ unix.Sockaddr) { p.saw(b) })
}

// synOnly is a socket filter passing IPv4 TCP segments with SYN set (SYN
// and SYN-ACK) and nothing else.
var synOnly = []bpf.Instruction{
	bpf.LoadMemShift{Off: 0},           // X = IPv4 header length
	bpf.LoadIndirect{Off: 13, Size: 1}, // A = TCP flags
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x02, SkipFalse: 1},
	bpf.RetConstant{Val: 256},
	bpf.RetConstant{Val: 0},
}
