package natcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/machsend/machsend/internal/rawtcp"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/rendezvous"
)

// outboundSYNACK observes what the NAT does with a SYN-ACK this host sends
// after its own SYN on the same tuple (NATBlaster's injected SYN-ACK): a
// SYN from a fresh port to one of the server's sinks (swallowed
// unanswered, so the NAT holds the tuple in SYN_SENT), then a crafted
// SYN-ACK on that tuple; the sniffing server reports whether it arrived and
// from which mapping. The SYN-ACK is crafted and injected with raw sockets,
// which machsend uses only inside natlab labs (package rawtcp refuses
// elsewhere), and the server must be able to sniff its sinks: otherwise
// the knob is reported unknown, saying why, and the written profile leaves
// it to be derived from sequence tracking.
func (c *checker) outboundSYNACK(ctx context.Context) {
	const name = "outbound-synack"
	if err := rawtcp.InLab(); err != nil {
		c.res.set(name, Unknown, "not measured: crafting a SYN-ACK takes raw sockets, which machsend uses only inside natlab labs (%v)", err)
		return
	}
	sink, err := c.ctrl.Sink(ctx)
	switch {
	case err != nil:
		c.res.set(name, Unknown, "probe failed: %v", err)
		return
	case !sink.Sniffing:
		c.res.set(name, Unknown, "not measured: the server cannot see what reaches its sinks (it needs CAP_NET_RAW)")
		return
	}
	c.probes.Add(1)
	local, err := c.synThenSYNACK(ctx, sink.Addr)
	if err != nil {
		c.res.set(name, Unknown, "probe failed: %v", err)
		return
	}
	seen, err := c.awaitSYNACK(ctx, sink.Sink)
	switch {
	case err != nil:
		c.res.set(name, Unknown, "probe failed: %v", err)
	case !seen.SYN.IsValid():
		c.res.set(name, Unknown, "the SYN from %s to sink %s never arrived, so the SYN-ACK after it tells nothing", local, sink.Addr)
	case seen.SYNACK == seen.SYN:
		c.res.set(name, "translate", "SYN from %s reached sink %s as %s; the SYN-ACK crafted on the same tuple arrived from the same mapping", local, sink.Addr, seen.SYN)
	case seen.SYNACK.IsValid():
		c.res.set(name, "translate", "SYN from %s reached sink %s as %s; the SYN-ACK crafted on the same tuple arrived, from %s", local, sink.Addr, seen.SYN, seen.SYNACK)
	default:
		c.res.set(name, "drop", "SYN from %s reached sink %s as %s; the SYN-ACK crafted on the same tuple did not arrive within %v", local, sink.Addr, seen.SYN, c.o.ProbeTimeout)
	}
}

// synThenSYNACK sends a SYN from a fresh port to the sink (captured, for
// its sequence number and options) and then a SYN-ACK on the same tuple
// carrying that sequence number, and returns the local endpoint.
func (c *checker) synThenSYNACK(ctx context.Context, sink netip.AddrPort) (netip.AddrPort, error) {
	ln, p, err := freshPort(ctx)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ln.Close() // the port is ours: the raw socket below binds it
	capt, err := rawtcp.NewCapture(p.Port())
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer capt.Close()
	s, err := sockopt.NewRawSocket(p, 0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer s.Close() // a socket closed in SYN_SENT sends nothing
	if err := s.Connect(sink); err != nil {
		return netip.AddrPort{}, err
	}
	syn, local, err := ownSYN(ctx, capt, sink)
	if err != nil {
		return netip.AddrPort{}, err
	}
	inj, err := rawtcp.NewInjector()
	if err != nil {
		return local, err
	}
	defer inj.Close()
	pkt, err := rawtcp.SYNACK(local, sink, syn, rand.Uint32(), 0)
	if err != nil {
		return local, err
	}
	return local, inj.Send(pkt, sink.Addr())
}

// ownSYN waits for the SYN this host sent to dst and returns its sequence
// number and options, and its source endpoint.
func ownSYN(ctx context.Context, capt *rawtcp.Capture, dst netip.AddrPort) (rawtcp.SYN, netip.AddrPort, error) {
	deadline := time.After(time.Second)
	for {
		select {
		case p := <-capt.C:
			if p.Outgoing && p.SYN && !p.ACK && p.Dst == dst {
				return p.Options, p.Src, nil
			}
		case <-deadline:
			return rawtcp.SYN{}, netip.AddrPort{}, fmt.Errorf("own SYN to %s not seen on the wire within 1s", dst)
		case <-ctx.Done():
			return rawtcp.SYN{}, netip.AddrPort{}, ctx.Err()
		}
	}
}

// awaitSYNACK polls the sink until a SYN-ACK has arrived or the probe
// timeout passed.
func (c *checker) awaitSYNACK(ctx context.Context, sink string) (rendezvous.SinkSeenResult, error) {
	end := time.Now().Add(c.o.ProbeTimeout)
	for {
		seen, err := c.ctrl.SinkSeen(ctx, sink)
		if err != nil || seen.SYNACK.IsValid() || time.Now().After(end) {
			return seen, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return seen, errors.Join(ctx.Err(), err)
		}
	}
}
