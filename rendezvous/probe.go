package rendezvous

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
)

// NAT probing (natcheck). Besides the observed endpoint (hello) and the
// connect-back, the server offers sinks: listening sockets that swallow
// every SYN without answering, so that a client's SYN to one leaves its
// NAT mapping half-open (SYN_SENT). A later probe.dial from the sink's own
// port then looks to the NAT like the answering half of a simultaneous
// open: whether it passes tells the NAT's simultaneous-open handling, and
// (after the client closed its socket and listened instead) its sequence
// tracking and transitory timer. Every dial targets only the calling
// client's own observed address.
//
// When the server may open a raw socket (CAP_NET_RAW) it also sniffs the
// SYNs arriving at its sinks, so it knows the mapping each SYN came from
// even behind an endpoint-dependent NAT; without it, the client must name
// the mapping (possible only where the mapping is endpoint-independent).

// Probing limits.
const (
	maxSinksPerClient = 32
	maxSinks          = 4096
	sinkLife          = 60 * time.Second
	maxProbeDelay     = 15 * time.Second
	maxProbeTimeout   = 5 * time.Second
)

// sinkEntry is one sink and what was seen arriving at it.
type sinkEntry struct {
	id      string
	owner   *client
	k       *sockopt.Sink
	expires time.Time
	seen    netip.AddrPort // source of the first SYN (sniffed)
	isn     uint32
	synack  netip.AddrPort // source of the first SYN-ACK (sniffed)
}

// prober holds the sinks and the SYN sniffer.
type prober struct {
	mu     sync.Mutex
	sinks  map[string]*sinkEntry
	byPort map[uint16]*sinkEntry
	sniff  bool // a raw socket is reading SYNs
	done   chan struct{}
	once   sync.Once
}

func newProber() *prober {
	p := &prober{sinks: map[string]*sinkEntry{}, byPort: map[uint16]*sinkEntry{}, done: make(chan struct{})}
	p.startSniffer()
	return p
}

func (p *prober) close() {
	p.once.Do(func() { close(p.done) })
	p.mu.Lock()
	for _, e := range p.sinks {
		e.k.Close()
	}
	p.sinks, p.byPort = map[string]*sinkEntry{}, map[uint16]*sinkEntry{}
	p.mu.Unlock()
}

// saw records the source of the first bare SYN and of the first SYN-ACK
// reaching each sink.
func (p *prober) saw(b []byte) {
	src, dport, isn, flags, ok := parseTCPHead(b)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.byPort[dport]
	switch {
	case e == nil:
	case flags&0x12 == 0x02 && !e.seen.IsValid():
		e.seen, e.isn = src, isn
	case flags&0x12 == 0x12 && !e.synack.IsValid():
		e.synack = src
	}
}

// ipProtoTCP is the IPv4 protocol number of TCP.
const ipProtoTCP = 6

// ParseSYN reads an IPv4 packet carrying a TCP segment with SYN set and
// ACK clear: its source endpoint, destination port and sequence number.
// Anything else (or anything short or malformed) is not ok.
func ParseSYN(b []byte) (src netip.AddrPort, dport uint16, isn uint32, ok bool) {
	src, dport, isn, flags, ok := parseTCPHead(b)
	if !ok || flags&0x12 != 0x02 {
		return netip.AddrPort{}, 0, 0, false
	}
	return src, dport, isn, true
}

// parseTCPHead reads an IPv4 packet's TCP header: source endpoint,
// destination port, sequence number and flags; not ok for anything else.
func parseTCPHead(b []byte) (src netip.AddrPort, dport uint16, seq uint32, flags byte, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != ipProtoTCP {
		return netip.AddrPort{}, 0, 0, 0, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl+14 {
		return netip.AddrPort{}, 0, 0, 0, false
	}
	t := b[ihl:]
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), binary.BigEndian.Uint16(t[0:]))
	return src, binary.BigEndian.Uint16(t[2:]), binary.BigEndian.Uint32(t[4:]), t[13], true
}

// sinkSeen reports what the caller's sink has seen arrive.
func (c *client) sinkSeen(pr SinkSeenParams) (any, error) {
	p := c.srv.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.sinks[pr.Sink]
	if e == nil || e.owner != c {
		return nil, errors.New("no such sink")
	}
	return SinkSeenResult{SYN: e.seen, ISN: e.isn, SYNACK: e.synack, Sniffing: p.sniff}, nil
}

func (p *prober) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.sinks {
		if now.After(e.expires) {
			p.removeLocked(id)
		}
	}
}

// removeLocked drops a sink; p.mu is held.
func (p *prober) removeLocked(id string) {
	e := p.sinks[id]
	if e == nil {
		return
	}
	e.k.Close()
	delete(p.sinks, id)
	delete(p.byPort, e.k.Addr.Port())
}

func (p *prober) dropClient(c *client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.sinks {
		if e.owner == c {
			p.removeLocked(id)
		}
	}
}

// SinkCount is how many sinks the server holds.
func (s *Server) SinkCount() int {
	s.probe.mu.Lock()
	defer s.probe.mu.Unlock()
	return len(s.probe.sinks)
}

func (c *client) openSink() (any, error) {
	p := c.srv.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.sinks {
		if e.owner == c {
			n++
		}
	}
	if n >= maxSinksPerClient || len(p.sinks) >= maxSinks {
		return nil, rpcErr(CodeLimit, "too many sinks")
	}
	k, err := sockopt.ListenSink(netip.AddrPortFrom(c.local.Addr(), 0))
	if err != nil {
		return nil, fmt.Errorf("open sink: %w", err)
	}
	e := &sinkEntry{id: newID(), owner: c, k: k, expires: time.Now().Add(sinkLife)}
	p.sinks[e.id] = e
	p.byPort[k.Addr.Port()] = e
	return SinkResult{Sink: e.id, Addr: k.Addr, Sniffing: p.sniff}, nil
}

// probeDial sends one SYN to the client's own address, from another port,
// another address or a sink, after an optional delay, and reports what came
// back (probe vocabulary: connected, rst, icmp-..., timeout).
func (c *client) probeDial(ctx context.Context, pr ProbeDialParams) (any, error) {
	release, err := c.srv.probeSlot()
	if err != nil {
		return nil, err
	}
	defer release()
	s := c.srv
	if pr.DelayMs < 0 || time.Duration(pr.DelayMs)*time.Millisecond > maxProbeDelay {
		return nil, fmt.Errorf("delay_ms %d outside 0..%d", pr.DelayMs, maxProbeDelay.Milliseconds())
	}
	timeout := time.Duration(pr.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > maxProbeTimeout {
		timeout = 2 * time.Second
	}
	target := pr.Target
	var from netip.AddrPort
	dropSYN := false
	switch pr.From {
	case "other-port":
		from = netip.AddrPortFrom(c.local.Addr(), 0)
	case "other-address":
		if !s.cfg.Secondary.IsValid() {
			return nil, errors.New("server has no second address")
		}
		from = netip.AddrPortFrom(s.cfg.Secondary.Addr(), 0)
	case "sink":
		s.probe.mu.Lock()
		e := s.probe.sinks[pr.Sink]
		s.probe.mu.Unlock()
		if e == nil || e.owner != c {
			return nil, errors.New("no such sink")
		}
		from, dropSYN = e.k.Addr, true
		defer func() {
			s.probe.mu.Lock()
			s.probe.removeLocked(pr.Sink) // one use per sink
			s.probe.mu.Unlock()
		}()
	default:
		return nil, fmt.Errorf("from: %q (want other-port, other-address or sink)", pr.From)
	}
	if pr.DelayMs > 0 {
		select {
		case <-time.After(time.Duration(pr.DelayMs) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if pr.From == "sink" && !target.IsValid() {
		s.probe.mu.Lock()
		e := s.probe.sinks[pr.Sink]
		if e != nil {
			target = e.seen
		}
		s.probe.mu.Unlock()
		if !target.IsValid() {
			return ProbeDialResult{Outcome: "no-syn-seen"}, nil
		}
	}
	if !target.IsValid() || target.Addr() != c.remote.Addr() {
		return nil, errors.New("target must be your own observed address")
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := sockopt.DialProbe(dctx, from, target, 0, dropSYN)
	return ProbeDialResult{Outcome: r.Outcome, ICMPFrom: r.From, From: r.Local, Target: target}, nil
}
