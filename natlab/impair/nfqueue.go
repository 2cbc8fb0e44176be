package impair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h), spoken
// directly over a NETLINK_NETFILTER socket: go-nfqueue is not available
// here, and the lab needs only metadata, batched verdicts and a few config
// messages.
const (
	nfnlSubsysQueue = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueMax = 3
	nfqaCfgMask     = 4
	nfqaCfgFlags    = 5

	nfqnlCfgCmdBind = 1

	nfqnlCopyMeta = 1

	nfqaCfgFFailOpen = 1
	nfqaCfgFGSO      = 4

	nfDrop   = 0
	nfAccept = 1
)

// errBadPacket is returned for a queue message the engine cannot read.
var errBadPacket = errors.New("malformed nfqueue packet message")

// nfq is a NETLINK_NETFILTER socket in one namespace, bound to queues. It
// is a raw socket rather than a netlink.Conn: one goroutine reads packets
// forever while configuration goes on, and the read loop hands the
// acknowledgements of configuration messages back to their senders.
type nfq struct {
	fd int
	f  *os.File        // fd under the Go netpoller: reads park goroutines, not threads
	rc syscall.RawConn // reads and writes through the poller

	mu      sync.Mutex
	seq     uint32
	pending map[uint32]chan error
	closed  atomic.Bool
}

func dialNFQ(inNS func(func() error) error) (*nfq, error) {
	q := &nfq{fd: -1, pending: map[uint32]chan error{}}
	err := inNS(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		q.fd = fd
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		if q.fd >= 0 {
			unix.Close(q.fd)
		}
		return nil, fmt.Errorf("nfqueue: socket: %w", err)
	}
	// Never fail on a full receive buffer: the queue is the buffer.
	_ = unix.SetsockoptInt(q.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	q.f = os.NewFile(uintptr(q.fd), "nfqueue")
	rc, err := q.f.SyscallConn()
	if err != nil {
		q.f.Close()
		return nil, fmt.Errorf("nfqueue: %w", err)
	}
	q.rc = rc
	return q, nil
}

func nfqHeader(queue uint16) []byte {
	b := make([]byte, 4)
	b[0] = 0 // AF_UNSPEC
	b[1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[2:], queue)
	return b
}

// encode renders messages as one buffer for a single sendto.
func encode(msgs []netlink.Message) []byte {
	var out []byte
	for _, m := range msgs {
		l := 16 + len(m.Data)
		h := make([]byte, 16, nlAlign(l))
		binary.NativeEndian.PutUint32(h[0:], uint32(l))
		binary.NativeEndian.PutUint16(h[4:], uint16(m.Header.Type))
		binary.NativeEndian.PutUint16(h[6:], uint16(m.Header.Flags))
		binary.NativeEndian.PutUint32(h[8:], m.Header.Sequence)
		h = append(h, m.Data...)
		for len(h) < nlAlign(l) {
			h = append(h, 0)
		}
		out = append(out, h...)
	}
	return out
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// send writes messages to the kernel in one datagram.
func (q *nfq) send(msgs []netlink.Message) error {
	if q.closed.Load() {
		return net.ErrClosed
	}
	b := encode(msgs)
	var serr error
	err := q.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// config sends one configuration message and waits for its acknowledgement,
// which the read loop (recv) delivers.
func (q *nfq) config(queue uint16, attrs []netlink.Attribute) error {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.seq++
	seq := q.seq
	ch := make(chan error, 1)
	q.pending[seq] = ch
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.pending, seq)
		q.mu.Unlock()
	}()
	m := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge, Sequence: seq},
		Data: append(nfqHeader(queue), data...),
	}
	if err := q.send([]netlink.Message{m}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("nfqueue: no acknowledgement (is an engine reading?)")
	}
}

// recv waits for one datagram (parked in the netpoller) and returns the
// packets in it; acknowledgements go to the config call waiting for them.
// It returns errTimeout for a read that brought nothing (EINTR, ENOBUFS).
func (q *nfq) recv(buf []byte) ([]queued, error) {
	var n int
	var rerr error
	err := q.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		if errors.Is(rerr, unix.EINTR) || errors.Is(rerr, unix.ENOBUFS) {
			return nil, errTimeout
		}
		return nil, rerr
	}
	var out []queued
	b := buf[:n]
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < 16 || l > len(b) {
			break
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		data := b[16:l]
		switch {
		case typ == unix.NLMSG_ERROR:
			var e error
			if len(data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
					e = unix.Errno(-code)
				}
			}
			q.mu.Lock()
			if ch := q.pending[seq]; ch != nil {
				ch <- e
			}
			q.mu.Unlock()
		default:
			m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: data}
			if p, err := parsePacket(m); err == nil {
				out = append(out, p)
			}
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return out, nil
}

// bind attaches the socket to queue and asks for metadata only (the
// packet id), GSO packets unsegmented, a queue of maxLen packets, and
// fail-open when it is full (a full queue is a lab limit, so packets pass
// undelayed rather than vanish).
func (q *nfq) bind(queue uint16, maxLen uint32) error {
	cmd := []byte{nfqnlCfgCmdBind, 0, 0, unix.AF_INET}
	if err := q.config(queue, []netlink.Attribute{{Type: nfqaCfgCmd, Data: cmd}}); err != nil {
		return fmt.Errorf("nfqueue: bind queue %d: %w", queue, err)
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0) // copy range: no payload
	params[4] = nfqnlCopyMeta
	qmax := binary.BigEndian.AppendUint32(nil, maxLen)
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFGSO|nfqaCfgFFailOpen)
	if err := q.config(queue, []netlink.Attribute{
		{Type: nfqaCfgParams, Data: params},
		{Type: nfqaCfgQueueMax, Data: qmax},
		{Type: nfqaCfgMask, Data: flags},
		{Type: nfqaCfgFlags, Data: flags},
	}); err != nil {
		return fmt.Errorf("nfqueue: configure queue %d: %w", queue, err)
	}
	return nil
}

// queued is one packet the kernel handed over.
type queued struct {
	queue uint16
	id    uint32
}

// parsePacket reads a NFQNL_MSG_PACKET message: the queue number from the
// nfgenmsg header and the packet id from NFQA_PACKET_HDR.
func parsePacket(m netlink.Message) (queued, error) {
	if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgPacket) {
		return queued{}, fmt.Errorf("%w: type %#x", errBadPacket, m.Header.Type)
	}
	if len(m.Data) < 4 {
		return queued{}, fmt.Errorf("%w: %d bytes", errBadPacket, len(m.Data))
	}
	p := queued{queue: binary.BigEndian.Uint16(m.Data[2:4])}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return queued{}, fmt.Errorf("%w: %v", errBadPacket, err)
	}
	found := false
	for ad.Next() {
		if ad.Type() == nfqaPacketHdr {
			b := ad.Bytes()
			if len(b) < 4 {
				return queued{}, fmt.Errorf("%w: short packet header", errBadPacket)
			}
			p.id = binary.BigEndian.Uint32(b[:4])
			found = true
		}
	}
	if err := ad.Err(); err != nil {
		return queued{}, fmt.Errorf("%w: %v", errBadPacket, err)
	}
	if !found {
		return queued{}, fmt.Errorf("%w: no packet header", errBadPacket)
	}
	return p, nil
}

// verdictMsg builds a verdict for one packet, or (batch) for every packet of
// the queue with an id up to and including id.
func verdictMsg(queue uint16, id uint32, verdict uint32, batch bool) netlink.Message {
	typ := nfqnlMsgVerdict
	if batch {
		typ = nfqnlMsgVerdictBatch
	}
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr[0:], verdict)
	binary.BigEndian.PutUint32(hdr[4:], id)
	// One attribute: 4 bytes of header + 8 of value, already aligned.
	attr := make([]byte, 4, 12)
	binary.NativeEndian.PutUint16(attr[0:], 12)
	binary.NativeEndian.PutUint16(attr[2:], nfqaVerdictHdr)
	attr = append(attr, hdr...)
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | typ), Flags: netlink.Request},
		Data:   append(nfqHeader(queue), attr...),
	}
}

// close closes the socket; a read parked in the poller returns at once.
func (q *nfq) close() {
	if q.closed.Swap(true) {
		return
	}
	q.f.Close()
}

// errTimeout is recv's "nothing this time".
var errTimeout = errors.New("nfqueue: receive timeout")
