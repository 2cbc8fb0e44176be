package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab"
)

// Topology is the lab a profile is checked in: hosts a and b behind the NAT
// "nat", a core router, and rv with two public addresses.
const Topology = "hairpin"

// ErrMismatch is returned when a realised profile does not behave as configured.
var ErrMismatch = errors.New("profile does not behave as configured")

// Result is one knob: what the profile says, what the probes saw, and why.
type Result struct {
	Knob       string `json:"knob"`
	Configured string `json:"configured"`
	Observed   string `json:"observed"`
	OK         bool   `json:"ok"`
	// Evidence says which probe saw what (addresses, ports, packets, conntrack).
	Evidence string `json:"evidence"`
}

// Report is the outcome of checking one profile.
type Report struct {
	Profile  string        `json:"profile"`
	Lab      string        `json:"lab"`
	Results  []Result      `json:"results"`
	Duration time.Duration `json:"duration_ns"`
}

// OK reports whether every knob matched.
func (r *Report) OK() bool {
	for _, x := range r.Results {
		if !x.OK {
			return false
		}
	}
	return true
}

// Err returns ErrMismatch naming the failing knobs, or nil.
func (r *Report) Err() error {
	var bad []string
	for _, x := range r.Results {
		if !x.OK {
			bad = append(bad, fmt.Sprintf("%s: configured %s, observed %s (%s)", x.Knob, x.Configured, x.Observed, x.Evidence))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrMismatch, r.Profile, strings.Join(bad, "; "))
}

// Profile brings up a check lab for p, probes it and tears it down.
func Profile(ctx context.Context, p *nat.Profile) (*Report, error) {
	topo, err := natlab.LoadTopology(Topology)
	if err != nil {
		return nil, err
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Default: p})
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	return Run(ctx, lab, "nat", p)
}

// All checks every profile, several labs at a time, and returns the reports
// in the order given.
func All(ctx context.Context, profiles []*nat.Profile, parallel int) ([]*Report, error) {
	if parallel < 1 {
		parallel = 1
	}
	reps := make([]*Report, len(profiles))
	errs := make([]error, len(profiles))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, p := range profiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reps[i], errs[i] = Profile(ctx, p)
		}()
	}
	wg.Wait()
	return reps, errors.Join(errs...)
}

// prober holds a check lab's endpoints.
type prober struct {
	lab      *natlab.Lab
	nat      string
	p        *nat.Profile
	a, b, rv *natlab.Node
	pub      netip.Addr
	rv1, rv2 netip.Addr
	aAddr    netip.Addr
	bAddr    netip.Addr
	closers  []func()
	acc      map[netip.AddrPort]*acceptor // rv's listeners
	rep      *Report
}

// configured and observed are knob values (typed or plain strings).
func (pr *prober) add(knob string, configured, observed any, ok bool, evidence string, args ...any) {
	pr.rep.Results = append(pr.rep.Results, Result{knob, fmt.Sprint(configured), fmt.Sprint(observed), ok, fmt.Sprintf(evidence, args...)})
}

// settle is how long probes wait for the NAT's mapper helper to install a
// mapping after its first packet (the documented race of a few ms).
const settle = 60 * time.Millisecond

// Run probes the NAT node nat of a check-topology lab that should realise p.
// The lab is left running; it may be broken on purpose by the caller first.
func Run(ctx context.Context, lab *natlab.Lab, node string, p *nat.Profile) (*Report, error) {
	start := time.Now()
	pr := &prober{lab: lab, nat: node, p: p, rep: &Report{Profile: p.Name, Lab: lab.Name},
		acc: map[netip.AddrPort]*acceptor{}}
	var err error
	for _, x := range []struct {
		name string
		n    **natlab.Node
	}{{"a", &pr.a}, {"b", &pr.b}, {"rv", &pr.rv}} {
		if *x.n, err = lab.Node(x.name); err != nil {
			return nil, fmt.Errorf("check needs the %s topology: %w", Topology, err)
		}
	}
	defer func() {
		for i := len(pr.closers) - 1; i >= 0; i-- {
			pr.closers[i]()
		}
	}()
	pr.pub = lab.Public(node)
	rvAddrs := pr.rv.Addrs()
	if len(rvAddrs) < 2 {
		return nil, fmt.Errorf("check: rv needs two public addresses")
	}
	pr.rv1, pr.rv2 = rvAddrs[0], rvAddrs[1]
	pr.aAddr, pr.bAddr = pr.a.Addr(), pr.b.Addr()
	// Probe fixture on rv (a lab host, not the NAT): ports 7100-7199 silently
	// drop bare SYNs so a NAT mapping can sit in SYN_SENT, as it does while a
	// peer's NAT drops our SYN.
	if err := lab.Nft("rv", `table inet probe {
		chain in {
			type filter hook input priority 0; policy accept;
			tcp dport 7100-7199 tcp flags & (syn | ack) == syn drop
		}
	}
`); err != nil {
		return nil, err
	}
	// Listeners on rv.
	aps := []netip.AddrPort{netip.AddrPortFrom(pr.rv1, 7001), netip.AddrPortFrom(pr.rv1, 7002),
		netip.AddrPortFrom(pr.rv2, 7001), netip.AddrPortFrom(pr.rv1, 7003)}
	if e, ok := pr.v6(); ok {
		aps = append(aps, netip.AddrPortFrom(e.rv1, 7001))
	}
	for _, ap := range aps {
		ln, err := listen(pr.rv, ap)
		if err != nil {
			return nil, err
		}
		acc := newAcceptor(ln)
		pr.closers = append(pr.closers, func() { ln.Close(); drain(acc) })
		pr.acc[ap] = acc
	}
	steps := []func(context.Context) error{pr.mapping, pr.filtering, pr.unsolicited, pr.simultaneous,
		pr.icmp, pr.outboundSYNACK, pr.timers, pr.hairpin, pr.firewall6}
	if !p.NAT {
		steps = []func(context.Context) error{pr.noNAT}
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s(ctx); err != nil {
			return nil, fmt.Errorf("check %s: %w", p.Name, err)
		}
	}
	if err := lab.HelperErr(); err != nil {
		pr.add("helper", "no errors", "errors", false, "%v", err)
	}
	// Knobs the profile gives as unknown are built with defaults and not
	// checked: a measured profile says what was observed, nothing more.
	for i := range pr.rep.Results {
		x := &pr.rep.Results[i]
		for _, u := range p.Unknown {
			if x.Knob == u || strings.HasPrefix(x.Knob, u+" ") {
				x.Evidence = fmt.Sprintf("not checked: unknown in the profile, built as %s (observed %s)", knobDefault(u), x.Observed)
				x.Configured, x.OK = nat.Unknown, true
			}
		}
	}
	pr.rep.Duration = time.Since(start)
	return pr.rep, nil
}

func drain(a *acceptor) {
	for c := range a.conns {
		c.Close()
	}
}

// observe connects from a's lport to an rv listener and returns the mapped
// endpoint rv saw.
func (pr *prober) observe(lport uint16, dst netip.AddrPort, acc *acceptor) (netip.AddrPort, net.Conn, error) {
	r := dial(pr.a, netip.AddrPortFrom(pr.aAddr, lport), dst, 2*time.Second, 0)
	if r.Err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("a:%d -> %s: %s", lport, dst, r.Outcome)
	}
	c, ok := acc.next(2 * time.Second)
	if !ok {
		r.Conn.Close()
		return netip.AddrPort{}, nil, fmt.Errorf("rv did not accept from a:%d", lport)
	}
	pr.closers = append(pr.closers, func() { r.Conn.Close(); c.Close() })
	return remoteOf(c), r.Conn, nil
}

// knobDefault is the value a knob given as unknown is built with.
func knobDefault(name string) string {
	if k, ok := nat.Lookup(name); ok {
		return k.Default
	}
	return "?"
}
