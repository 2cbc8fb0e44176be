package traversal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"
)

// NATInfo is what a client learns about its own NAT from the rendezvous
// server, before punching: used for port prediction and STUNT #2's TTL.
type NATInfo struct {
	Public     netip.Addr `json:"public"`
	Mapping    nat.Seen   `json:"mapping"`
	Preserving bool       `json:"preserving"`
	// Delta is the step between successive allocations (0: none seen, or random).
	Delta int `json:"delta"`
	// Hops is how many hops the rendezvous server is away; TTL = Hops-1 takes
	// a SYN through our own NATs but not to the server's side (STUNT #2).
	Hops int `json:"hops"`
	TTL  int `json:"ttl"`
	// Observations are the raw (local, mapped) pairs behind the verdict.
	Observations []string `json:"observations"`
}

// Predict returns likely mappings of the next connection from a port whose
// mapping toward the server was m: none when the mapping is reused for
// every destination, m+Delta and m+2*Delta under sequential allocation.
func (n NATInfo) Predict(m netip.AddrPort) []netip.AddrPort {
	if n.Mapping != nat.SeenDependent || n.Delta == 0 {
		return nil
	}
	var out []netip.AddrPort
	for i := 1; i <= 2; i++ {
		p := int(m.Port()) + i*n.Delta
		if p > 0 && p < 65536 {
			out = append(out, netip.AddrPortFrom(m.Addr(), uint16(p)))
		}
	}
	return out
}

// ProbeNAT classifies the client's NAT: the same local port toward the
// server's two endpoints (mapping), two fresh ports in a row (allocation
// delta), and the hop count to the server (TTL for STUNT #2). It decides
// "behind a NAT" from what the host has versus what the server observes,
// never from address ranges.
func ProbeNAT(ctx context.Context, sig Signal, server netip.AddrPort) (NATInfo, error) {
	var info NATInfo
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	ln1, p1, err := sockopt.FreePort(ctx)
	if err != nil {
		return info, err
	}
	defer ln1.Close()
	any := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), p) }
	m1, c, err := sig.Observe(ctx, any(p1))
	if err != nil {
		return info, fmt.Errorf("observe mapping: %w", err)
	}
	closers = append(closers, c)
	info.Public = m1.Addr()
	info.Observations = append(info.Observations, fmt.Sprintf("%d->%s (primary)", p1, m1))
	m1b, c, err := sig.ObserveSecondary(ctx, any(p1))
	if err == nil {
		closers = append(closers, c)
		info.Observations = append(info.Observations, fmt.Sprintf("%d->%s (secondary)", p1, m1b))
	}
	ln2, p2, err := sockopt.FreePort(ctx)
	if err != nil {
		return info, err
	}
	defer ln2.Close()
	m2, c, err := sig.Observe(ctx, any(p2))
	if err != nil {
		return info, fmt.Errorf("observe mapping: %w", err)
	}
	closers = append(closers, c)
	info.Observations = append(info.Observations, fmt.Sprintf("%d->%s (primary)", p2, m2))

	behind := !slices.Contains(sockopt.HostIPv4(), m1.Addr())
	_, info.Mapping, _ = nat.MappingObservation{Local: p1, Primary: m1, Secondary: m1b}.Classify()
	switch {
	case !behind:
		info.Mapping, info.Preserving = nat.SeenNone, true
	case info.Mapping == nat.SeenIndependent:
		var a nat.Allocation
		a, info.Delta, _ = nat.ClassifyAllocation([]uint16{p1, p2}, []uint16{m1.Port(), m2.Port()})
		info.Preserving = a == nat.Preserve
	default:
		info.Preserving = m1.Port() == p1
		info.Delta, _ = nat.Step([]uint16{m1.Port(), m1b.Port(), m2.Port()})
	}
	info.Hops = probeHops(ctx, server)
	if info.Hops > 1 {
		info.TTL = info.Hops - 1
	}
	return info, nil
}

// probeHops finds the smallest TTL with which a connection to the server
// completes. A SYN that expires on the way comes back as ICMP time-exceeded
// (which aborts the connect at once) or, where a NAT drops that ICMP, times
// out; either way the next TTL is tried.
func probeHops(ctx context.Context, server netip.AddrPort) int {
	for ttl := 1; ttl <= 16; ttl++ {
		dctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		c, err := sockopt.Dial(dctx, netip.AddrPort{}, server, ttl)
		cancel()
		if err == nil {
			c.Close()
			return ttl
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return 0
		}
	}
	return 0
}
