package traversal

import (
	"context"
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
//
// The probe is on the critical path of every connection (the receiver
// runs it after joining), so what can overlap does: the first port's two
// observations run at once (their mappings are made in either order; see
// allocationOrder), the second port's only after both (its allocation must
// follow theirs for the delta), and the TTL ladder after that.
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
	type seen struct {
		m   netip.AddrPort
		c   io.Closer
		err error
	}
	second := make(chan seen, 1)
	go func() {
		var o seen
		o.m, o.c, o.err = sig.ObserveSecondary(ctx, any(p1))
		second <- o
	}()
	m1, c, err := sig.Observe(ctx, any(p1))
	o := <-second
	if o.err == nil {
		closers = append(closers, o.c)
	}
	if err != nil {
		return info, fmt.Errorf("observe mapping: %w", err)
	}
	closers = append(closers, c)
	m1b := o.m
	info.Public = m1.Addr()
	info.Observations = append(info.Observations, fmt.Sprintf("%d->%s (primary)", p1, m1))
	if o.err == nil {
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
	default: // the first of the two allocations (either) may have kept the port
		info.Preserving = m1.Port() == p1 || (o.err == nil && m1b.Port() == p1)
		info.Delta, _ = nat.Step(allocationOrder(m1.Port(), m1b.Port(), m2.Port()))
	}
	info.Hops = probeHops(ctx, server)
	if info.Hops > 1 {
		info.TTL = info.Hops - 1
	}
	return info, nil
}

// allocationOrder puts the mapped ports of the first port's two
// observations (made at once, so in either order) in the order a
// sequential allocator gave them: the one nearer the second port's
// mapping, which was allocated after both, comes second. Under random
// allocation no order gives a steady step, and nat.Step finds none.
func allocationOrder(a, b, next uint16) []uint16 {
	dist := func(p uint16) int { return max(int(p), int(next)) - min(int(p), int(next)) }
	if dist(a) < dist(b) {
		a, b = b, a
	}
	return []uint16{a, b, next}
}

// probeHops finds the smallest TTL with which a connection to the server
// completes. A SYN that expires on the way comes back as ICMP time-exceeded
// (which aborts the connect at once) or, where a NAT drops that ICMP, times
// out. TTLs are tried hopBatch at a time, at once: the answer is the
// smallest that connects, known as soon as every smaller one has failed
// (the same answer as one TTL after another, in about one round trip to
// the server instead of one per hop, and one timeout instead of one per
// hop that drops ICMP).
func probeHops(ctx context.Context, server netip.AddrPort) int {
	for lo := 1; lo <= maxHops; lo += hopBatch {
		hops, ok := probeHopBatch(ctx, server, lo, min(lo+hopBatch-1, maxHops))
		if ok {
			return hops
		}
		if ctx.Err() != nil {
			return 0
		}
	}
	return 0
}

const (
	maxHops    = 16
	hopBatch   = 4
	hopTimeout = 400 * time.Millisecond
	hopPending = 0 // a TTL whose result is not in yet
)

// probeHopBatch dials the server with each TTL in [lo, hi] at once and
// returns the smallest that connected, once every smaller one failed.
func probeHopBatch(ctx context.Context, server netip.AddrPort, lo, hi int) (int, bool) {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		ttl int
		ok  bool
	}
	results := make(chan result, hi-lo+1)
	for ttl := lo; ttl <= hi; ttl++ {
		go func() {
			dctx, dcancel := context.WithTimeout(bctx, hopTimeout)
			defer dcancel()
			c, err := sockopt.Dial(dctx, netip.AddrPort{}, server, ttl)
			if err == nil {
				c.Close()
			}
			results <- result{ttl, err == nil}
		}()
	}
	state := make([]int, hi-lo+1) // hopPending, 1 connected, -1 failed
	for range state {
		r := <-results
		state[r.ttl-lo] = -1
		if r.ok {
			state[r.ttl-lo] = 1
		}
		for i, st := range state {
			if st == hopPending {
				break
			}
			if st == 1 {
				return lo + i, true
			}
		}
	}
	return 0, false
}
