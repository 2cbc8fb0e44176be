package natlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// SnapLen is the capture length: above the MTU because veths hand GSO
// super-packets to AF_PACKET.
const SnapLen = 262144

// maxMemPackets bounds how many packets a capture keeps in memory.
const maxMemPackets = 200000

// Capture records every frame seen on one lab interface (both directions)
// to a pcap file that tcpdump and Wireshark read, and keeps them in memory
// for the classifiers.
type Capture struct {
	Node, Iface, Path string

	lab  *Lab
	fd   int
	f    *os.File
	w    *pcapgo.Writer
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	pkts []CapturedPacket
	err  error
}

// CapturedPacket is one frame with the kernel's timestamp of its passing.
type CapturedPacket struct {
	Time time.Time
	Data []byte
}

// Capture starts capturing on a node's interface; path may be empty to keep
// packets in memory only.
func (l *Lab) Capture(node, iface, path string) (*Capture, error) {
	n, err := l.Node(node)
	if err != nil {
		return nil, err
	}
	c := &Capture{Node: node, Iface: iface, Path: path, lab: l, fd: -1, stop: make(chan struct{}), done: make(chan struct{})}
	err = Do(n.Handle, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("interface %s on %s: %w", iface, node, err)
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		// The kernel stamps every frame as it passes (CLOCK_REALTIME, the
		// clock of the trial's own events): a user-space time.Now() after
		// the read lags by however long this goroutine waited to run.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("packet socket timestamps: %w", err)
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("packet socket timeout: %w", err)
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			unix.Close(c.fd)
			return nil, fmt.Errorf("capture file: %w", err)
		}
		c.f, c.w = f, pcapgo.NewWriter(f)
		if err := c.w.WriteFileHeader(SnapLen, layers.LinkTypeEthernet); err != nil {
			f.Close()
			unix.Close(c.fd)
			return nil, fmt.Errorf("capture file: %w", err)
		}
	}
	l.state.Lock()
	l.state.captures[c] = true
	l.state.Unlock()
	go c.loop()
	return c, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func (c *Capture) loop() {
	defer close(c.done)
	buf := make([]byte, SnapLen)
	oob := make([]byte, unix.CmsgSpace(16))
	stopping := false
	for {
		flags := 0
		if !stopping {
			select {
			case <-c.stop:
				// Drain what is already queued (a dial that failed fast may
				// return before this loop has read its packets), then exit.
				stopping = true
			default:
			}
		}
		if stopping {
			flags = unix.MSG_DONTWAIT
		}
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, flags)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				if stopping {
					return
				}
				continue
			}
			c.mu.Lock()
			c.err = fmt.Errorf("capture on %s/%s: %w", c.Node, c.Iface, err)
			c.mu.Unlock()
			return
		}
		c.record(kernelTime(oob[:oobn]), buf[:n])
	}
}

// kernelTime reads the SCM_TIMESTAMPNS the kernel attached to a frame; a
// frame without one (never seen here) is stamped now and counted.
func kernelTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	UserTimestamps.Add(1)
	return time.Now()
}

// UserTimestamps counts captured frames that carried no kernel timestamp
// and were stamped on reading (zero on every kernel this runs on; tests
// assert it).
var UserTimestamps atomic.Int64

func (c *Capture) record(now time.Time, b []byte) {
	data := append([]byte(nil), b...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pkts) < maxMemPackets {
		c.pkts = append(c.pkts, CapturedPacket{now, data})
	}
	if c.w != nil && c.err == nil {
		ci := gopacket.CaptureInfo{Timestamp: now, CaptureLength: len(data), Length: len(data)}
		if err := c.w.WritePacket(ci, data); err != nil {
			c.err = fmt.Errorf("write pcap: %w", err)
		}
	}
}

// Packets returns a copy of the frames captured so far.
func (c *Capture) Packets() []CapturedPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CapturedPacket(nil), c.pkts...)
}

// Stop ends the capture, closes the file and returns any error met.
func (c *Capture) Stop() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
		if c.f != nil {
			if err := c.f.Close(); err != nil && c.err == nil {
				c.err = err
			}
		}
		c.lab.state.Lock()
		delete(c.lab.state.captures, c)
		c.lab.state.Unlock()
	}
	return c.err
}

// Decode parses a captured frame.
func (p CapturedPacket) Decode() gopacket.Packet {
	pk := gopacket.NewPacket(p.Data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	pk.Metadata().Timestamp = p.Time
	return pk
}
