package natcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/rendezvous"
)

// Unknown is the value of a knob natcheck could not observe.
const Unknown = nat.Unknown

// ErrNoServer is returned when the rendezvous server cannot be reached.
var ErrNoServer = errors.New("rendezvous server unreachable")

// Options configure a check.
type Options struct {
	// Server is the rendezvous server's primary endpoint.
	Server netip.AddrPort
	// MaxTransitory bounds the transitory-timer ladder (default 10 s): a
	// longer timer is reported unknown ("more than ...").
	MaxTransitory time.Duration
	// ProbeTimeout is how long one probe SYN waits for an answer (default
	// 1.5 s; an answer the NAT withholds longer reads as silence).
	ProbeTimeout time.Duration
	// Quick measures only mapping and allocation (what send and get use).
	Quick bool
}

// Knob is one measured knob.
type Knob struct {
	Name     string `json:"knob"`
	Value    string `json:"value"`
	Evidence string `json:"evidence"`
}

// Hop is one step of the TTL sweep toward the server.
type Hop struct {
	TTL     int        `json:"ttl"`
	Outcome string     `json:"outcome"`
	From    netip.Addr `json:"from,omitzero"`
}

// Result is everything a check found.
type Result struct {
	Server   netip.AddrPort `json:"server"`
	Local    netip.Addr     `json:"local"`
	Public   netip.Addr     `json:"public"`
	Behind   bool           `json:"behind_nat"`
	Knobs    []Knob         `json:"knobs"`
	Hops     []Hop          `json:"hops,omitempty"`
	Layered  string         `json:"layered"`
	Probes   int64          `json:"probe_connections"`
	LeftOpen int            `json:"sockets_left_open"`
	Duration time.Duration  `json:"duration_ns"`
	// Warn is Warning(), for JSON readers.
	Warn string `json:"warning,omitempty"`

	mu sync.Mutex // probes running side by side set knobs
}

// Get returns a knob's value ("" if absent).
func (r *Result) Get(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.Knobs {
		if k.Name == name {
			return k.Value
		}
	}
	return ""
}

func (r *Result) set(name, value, evidence string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.Knobs {
		if r.Knobs[i].Name == name {
			r.Knobs[i] = Knob{name, value, fmt.Sprintf(evidence, args...)}
			return
		}
	}
	r.Knobs = append(r.Knobs, Knob{name, value, fmt.Sprintf(evidence, args...)})
}

// checker carries one run's state.
type checker struct {
	o      Options
	hello  rendezvous.HelloResult
	ctrl   *rendezvous.Client
	probes atomic.Int64
	res    *Result
}

// Run checks the NAT in front of this host.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.MaxTransitory <= 0 {
		o.MaxTransitory = 10 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 1500 * time.Millisecond
	}
	start := time.Now()
	fds := openFDs()
	ctrl, err := rendezvous.Dial(ctx, o.Server, rendezvous.DialOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoServer, err)
	}
	h, err := ctrl.Hello(ctx, nil, false)
	if err != nil {
		ctrl.Close()
		return nil, fmt.Errorf("%w: %v", ErrNoServer, err)
	}
	c := &checker{o: o, hello: h, ctrl: ctrl, res: &Result{Server: o.Server, Public: h.Observed.Addr()}}
	c.probes.Add(1)
	err = c.run(ctx)
	ctrl.Close()
	c.res.Probes = c.probes.Load()
	c.res.Duration = time.Since(start)
	c.res.Warn = c.res.Warning()
	// Every probe socket is closed: count descriptors again (the control
	// connection's goroutines may need a moment to let go).
	for i := 0; i < 20; i++ {
		if c.res.LeftOpen = openFDs() - fds; c.res.LeftOpen <= 0 {
			c.res.LeftOpen = 0
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	return c.res, err
}

// openFDs counts this process's open descriptors (-1 if unknown).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// observe opens a rendezvous connection from local to server and returns the
// endpoint the server saw, with the connection (the mapping lives while it
// is open).
func (c *checker) observe(ctx context.Context, local, server netip.AddrPort) (netip.AddrPort, *rendezvous.Client, error) {
	c.probes.Add(1)
	cl, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{Local: local})
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	h, err := cl.Hello(ctx, nil, false)
	if err != nil {
		cl.Close()
		return netip.AddrPort{}, nil, err
	}
	return h.Observed, cl, nil
}

// freshPort reserves a local port with a reuse listener (kept open by the
// caller when the probe needs to accept).
func freshPort(ctx context.Context) (*net.TCPListener, netip.AddrPort, error) {
	ln, port, err := sockopt.FreePort(ctx)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return ln, netip.AddrPortFrom(netip.IPv4Unspecified(), port), nil
}

func (c *checker) run(ctx context.Context) error {
	r := c.res
	r.Behind = !slices.Contains(sockopt.HostIPv4(), c.hello.Observed.Addr())
	if !r.Behind {
		r.Local = c.hello.Observed.Addr()
		r.set("nat", "off", "the server sees %s, an address of this host", c.hello.Observed)
		r.Layered = "no NAT"
		return nil
	}
	r.set("nat", "on", "the server sees %s, not an address of this host", c.hello.Observed)
	if err := c.mapping(ctx); err != nil {
		return err
	}
	if err := c.allocation(ctx); err != nil {
		return err
	}
	if c.o.Quick {
		return nil
	}
	c.filtering(ctx)
	c.unsolicited(ctx)
	so := c.simultaneousOpen(ctx)
	seq := ""
	if so == "accept" {
		seq = c.sequence(ctx)
	} else {
		r.set("sequence-tracking", Unknown, "masked: the NAT does not pass the simultaneous open the probe needs (%s)", so)
	}
	// The ladder takes longest: it runs beside the remaining probes.
	var wg sync.WaitGroup
	if so == "accept" && seq == "liberal" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.transitory(ctx)
		}()
	} else {
		r.set("timers.transitory", Unknown, "the ladder needs a NAT that passes a SYN-ACK with a new sequence number after a simultaneous open (here: simultaneous-open %s, sequence tracking %s)", so, orDash(seq))
	}
	c.hops(ctx)
	c.hairpin(ctx)
	c.outboundSYNACK(ctx)
	wg.Wait()
	r.set("timers.established", Unknown, "not measured: an established mapping's idle timer is hours long")
	order(r)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// order puts the knobs in the order of nat.Knobs and reports every knob
// natcheck cannot observe as unknown, saying why.
func order(r *Result) {
	var out []Knob
	for _, n := range nat.Knobs {
		found := false
		for _, k := range r.Knobs {
			if k.Name == n.Name {
				out = append(out, k)
				found = true
			}
		}
		if !found && !n.Observable && r.Get("nat") != "off" {
			out = append(out, Knob{n.Name, Unknown, "not observable by natcheck: " + n.Unobservable})
		}
	}
	r.Knobs = out
}

// mapping: the same local port toward three server endpoints.
func (c *checker) mapping(ctx context.Context) error {
	r := c.res
	ln, p, err := freshPort(ctx)
	if err != nil {
		return err
	}
	defer ln.Close()
	m1, c1, err := c.observe(ctx, p, c.o.Server)
	if err != nil {
		return fmt.Errorf("mapping probe: %w", err)
	}
	defer c1.Close()
	r.Local = netip.MustParseAddrPort(c1.LocalAddr().String()).Addr()
	var m2, m3 netip.AddrPort
	if c.hello.Secondary.IsValid() {
		var c2 *rendezvous.Client
		if m2, c2, err = c.observe(ctx, p, c.hello.Secondary); err == nil {
			defer c2.Close()
		}
	}
	if c.hello.Alternate.IsValid() {
		var c3 *rendezvous.Client
		if m3, c3, err = c.observe(ctx, p, c.hello.Alternate); err == nil {
			defer c3.Close()
		}
	}
	obs := nat.MappingObservation{Local: p.Port(), Primary: m1, Secondary: m2, Alternate: m3}
	d, _, ev := obs.Classify()
	r.set("mapping", string(d), "%s", ev)
	return nil
}

// allocation: four fresh ports in a row to the primary endpoint.
func (c *checker) allocation(ctx context.Context) error {
	r := c.res
	var locals, mapped []uint16
	for i := 0; i < 4; i++ {
		ln, p, err := freshPort(ctx)
		if err != nil {
			return err
		}
		m, cl, err := c.observe(ctx, p, c.o.Server)
		ln.Close()
		if err != nil {
			return fmt.Errorf("allocation probe: %w", err)
		}
		cl.Close()
		locals = append(locals, p.Port())
		mapped = append(mapped, m.Port())
	}
	a, d, ev := nat.ClassifyAllocation(locals, mapped)
	r.set("port-allocation", string(a), "%s", ev)
	if a == nat.Sequential {
		r.set("port-delta", fmt.Sprint(d), "%s", ev)
	}
	return nil
}

// mappedListener is a local port with a listener and a mapping toward the
// primary endpoint, kept open until the returned close.
func (c *checker) mappedListener(ctx context.Context) (*net.TCPListener, netip.AddrPort, func(), error) {
	ln, p, err := freshPort(ctx)
	if err != nil {
		return nil, netip.AddrPort{}, nil, err
	}
	m, cl, err := c.observe(ctx, p, c.o.Server)
	if err != nil {
		ln.Close()
		return nil, netip.AddrPort{}, nil, err
	}
	go acceptAndClose(ln)
	return ln, m, func() { cl.Close(); ln.Close() }, nil
}

// acceptAndClose answers a probe's listener until it is closed: a
// connection that arrives is what the probe wanted to know.
func acceptAndClose(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Close()
	}
}

func (c *checker) dial(ctx context.Context, p rendezvous.ProbeDialParams) string {
	c.probes.Add(1)
	if p.TimeoutMs == 0 {
		p.TimeoutMs = int(c.o.ProbeTimeout.Milliseconds())
	}
	res, err := c.ctrl.ProbeDial(ctx, p)
	if err != nil {
		return "error: " + err.Error()
	}
	return res.Outcome
}

func blocked(o string) bool { return o != sockopt.ProbeConnected }

// filtering: connect-backs to a listening mapping.
func (c *checker) filtering(ctx context.Context) {
	r := c.res
	_, m, done, err := c.mappedListener(ctx)
	if err != nil {
		r.set("filtering", Unknown, "probe failed: %v", err)
		return
	}
	defer done()
	op := c.dial(ctx, rendezvous.ProbeDialParams{Target: m, From: "other-port"})
	if !c.hello.Secondary.IsValid() {
		r.set("filtering", Unknown, "from another port: %s; the server has no second address", op)
		return
	}
	oa := c.dial(ctx, rendezvous.ProbeDialParams{Target: m, From: "other-address"})
	ev := fmt.Sprintf("SYN to listening mapping %s from the server's other port: %s, from its other address: %s", m, op, oa)
	switch {
	case !blocked(oa):
		r.set("filtering", "endpoint-independent", "%s", ev)
	case !blocked(op):
		r.set("filtering", "address-dependent", "%s", ev)
	default:
		r.set("filtering", "address-and-port-dependent", "%s", ev)
	}
}

// unsolicited: a SYN to a public port nobody mapped.
func (c *checker) unsolicited(ctx context.Context) {
	port := uint16(20000 + rand.IntN(40000))
	target := netip.AddrPortFrom(c.res.Public, port)
	o := c.dial(ctx, rendezvous.ProbeDialParams{Target: target, From: "other-port"})
	v := ""
	switch o {
	case sockopt.ProbeRST:
		v = "rst"
	case sockopt.ProbeICMPPort:
		v = "icmp-port-unreachable"
	case sockopt.ProbeICMPAdmin:
		v = "icmp-admin-prohibited"
	case sockopt.ProbeTimeout:
		v = "drop"
	}
	if v == "" {
		c.res.set("unsolicited-syn", Unknown, "SYN to unmapped %s: %s", target, o)
		return
	}
	ev := "SYN to unmapped %s: %s"
	if v == "drop" {
		ev += fmt.Sprintf(" (nothing within %v; an RFC 5382 delayed ICMP after 6 s reads the same)", c.o.ProbeTimeout)
	}
	c.res.set("unsolicited-syn", v, ev, target, o)
}

// halfOpen is one SYN from a fresh local port into a new sink.
type halfOpen struct {
	s     *sockopt.RawSocket // in SYN_SENT; the caller closes it (close sends nothing)
	sink  rendezvous.SinkResult
	local netip.AddrPort // the SYN's local port (0.0.0.0:port)
	// target is the mapping to dial back; zero when the server sniffs it.
	target netip.AddrPort
}

// openHalf sends one SYN from a fresh port into a new sink.
func (c *checker) openHalf(ctx context.Context) (*halfOpen, error) {
	sink, err := c.ctrl.Sink(ctx)
	if err != nil {
		return nil, err
	}
	ln, p, err := freshPort(ctx)
	if err != nil {
		return nil, err
	}
	ln.Close()
	h := &halfOpen{sink: sink, local: p}
	if !sink.Sniffing {
		if c.res.Get("mapping") != "endpoint-independent" {
			return nil, errors.New("the server cannot see where the SYN came from (no CAP_NET_RAW) and the mapping is not endpoint-independent")
		}
		m, cl, err := c.observe(ctx, p, c.o.Server)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		h.target = m
	}
	if h.s, err = sockopt.NewRawSocket(p, 0); err != nil {
		return nil, err
	}
	c.probes.Add(1)
	if err := h.s.Connect(sink.Addr); err != nil {
		h.s.Close()
		return nil, err
	}
	// connect sent the SYN; give the server's sniffer a moment to see it
	// before anything asks it where the SYN came from.
	time.Sleep(50 * time.Millisecond)
	return h, nil
}

// simultaneousOpen: SYN into a sink, then the sink's port SYNs back.
func (c *checker) simultaneousOpen(ctx context.Context) string {
	h, err := c.openHalf(ctx)
	if err != nil {
		c.res.set("simultaneous-open", Unknown, "%v", err)
		return Unknown
	}
	defer h.s.Close()
	sink := h.sink
	o := c.dial(ctx, rendezvous.ProbeDialParams{Target: h.target, From: "sink", Sink: sink.Sink})
	v := map[string]string{sockopt.ProbeConnected: "accept", sockopt.ProbeRST: "rst", sockopt.ProbeTimeout: "drop"}[o]
	if v == "" {
		c.res.set("simultaneous-open", Unknown, "SYN from sink %s back to the half-open mapping: %s", sink.Addr, o)
		return Unknown
	}
	c.res.set("simultaneous-open", v, "SYN to sink %s, then a SYN from the sink back to the mapping: %s", sink.Addr, o)
	return v
}

// sequence: the same, but the SYN's socket is closed and a listener answers
// the sink's SYN with a SYN-ACK of a new sequence number.
func (c *checker) sequence(ctx context.Context) string {
	v, o, err := c.closeThenListen(ctx, 0)
	if err != nil {
		c.res.set("sequence-tracking", Unknown, "%v", err)
		return Unknown
	}
	c.res.set("sequence-tracking", v, "SYN to a sink, socket closed, listener on the port; the sink's SYN got %s (a SYN-ACK with a new sequence number %s)", o,
		map[string]string{"liberal": "passed", "strict": "was stopped"}[v])
	return v
}

// closeThenListen runs one half-open probe dialled back after delay and
// says whether the listener's SYN-ACK got through: "liberal" or "strict",
// with the outcome the server saw.
func (c *checker) closeThenListen(ctx context.Context, delay time.Duration) (string, string, error) {
	h, err := c.openHalf(ctx)
	if err != nil {
		return "", "", err
	}
	h.s.Close() // in SYN_SENT: sends nothing, so the mapping stays half-open
	ln, err := sockopt.Listen(ctx, h.local)
	if err != nil {
		return "", "", fmt.Errorf("listen on %s: %w", h.local, err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	o := c.dial(ctx, rendezvous.ProbeDialParams{Target: h.target, From: "sink", Sink: h.sink.Sink, DelayMs: int(delay.Milliseconds())})
	switch o {
	case sockopt.ProbeConnected:
		return "liberal", o, nil
	case sockopt.ProbeTimeout, sockopt.ProbeRST:
		return "strict", o, nil
	}
	return "", o, fmt.Errorf("SYN from the sink met %s", o)
}

// transitory: a ladder of half-open mappings, dialled back after 0.5, 1.5,
// 2.5 ... seconds, all at once; the timer lies between the last rung that
// passed and the first that did not.
func (c *checker) transitory(ctx context.Context) {
	var rungs []time.Duration
	for d := 500 * time.Millisecond; d < c.o.MaxTransitory; d += time.Second {
		rungs = append(rungs, d)
	}
	alive := make([]string, len(rungs))
	var wg sync.WaitGroup
	for i, d := range rungs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, o, err := c.closeThenListen(ctx, d)
			switch {
			case err != nil:
				alive[i] = "error"
			case v == "liberal":
				alive[i] = "alive"
			default:
				alive[i] = "gone (" + o + ")"
			}
		}()
	}
	wg.Wait()
	ev := ""
	first := -1
	for i, d := range rungs {
		ev += fmt.Sprintf("%.1fs:%s ", d.Seconds(), alive[i])
		if first < 0 && alive[i] != "alive" {
			first = i
		}
	}
	for i := first + 1; first >= 0 && i < len(rungs); i++ {
		if alive[i] == "alive" || alive[i] == "error" {
			c.res.set("timers.transitory", Unknown, "inconsistent ladder: %s", ev)
			return
		}
	}
	switch {
	case first < 0:
		c.res.set("timers.transitory", Unknown, "longer than %v (every rung alive: %s)", rungs[len(rungs)-1], ev)
	case first == 0 || alive[first] == "error":
		c.res.set("timers.transitory", Unknown, "ladder: %s", ev)
	default:
		// Between rungs[first-1] and rungs[first]: a whole number of seconds.
		c.res.set("timers.transitory", fmt.Sprint(int((rungs[first-1]+rungs[first])/2/time.Second)),
			"half-open mapping alive after %.1f s, gone after %.1f s (%s)", rungs[first-1].Seconds(), rungs[first].Seconds(), ev)
	}
}

// cgn is RFC 6598 shared address space: a hop answering from it behind the
// first NAT is a carrier-grade NAT.
var cgn = netip.MustParsePrefix("100.64.0.0/10")

// hops: a TTL sweep to the server; the low-TTL SYN of STUNT #2 shows
// whether ICMP time-exceeded comes back through the NAT.
func (c *checker) hops(ctx context.Context) {
	r := c.res
	reached := 0
	for ttl := 1; ttl <= 12 && reached == 0; ttl++ {
		c.probes.Add(1)
		dctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		res := sockopt.DialProbe(dctx, netip.AddrPort{}, c.o.Server, ttl, false)
		cancel()
		r.Hops = append(r.Hops, Hop{TTL: ttl, Outcome: res.Outcome, From: res.From})
		if res.Outcome == sockopt.ProbeConnected || res.Outcome == sockopt.ProbeRST {
			reached = ttl
		}
	}
	if reached == 0 {
		r.set("icmp-time-exceeded", Unknown, "the server was not reached within 12 hops")
		r.Layered = "cannot tell"
		return
	}
	// A SYN that dies beyond the first hop (the NAT itself answers the
	// first one without translating) must have its ICMP translated back.
	var beyond []Hop
	for _, h := range r.Hops {
		if h.TTL >= 2 && h.TTL < reached {
			beyond = append(beyond, h)
		}
	}
	ev := ""
	for i, h := range r.Hops {
		if i > 0 {
			ev += "; "
		}
		ev += fmt.Sprintf("ttl %d: %s", h.TTL, h.Outcome)
		if h.From.IsValid() {
			ev += " from " + h.From.String()
		}
	}
	last := Hop{}
	if len(beyond) > 0 {
		last = beyond[len(beyond)-1]
	}
	switch {
	case len(beyond) == 0:
		r.set("icmp-time-exceeded", Unknown, "the server is %d hops away: no hop beyond the NAT to test (%s)", reached, ev)
	case last.Outcome == sockopt.ProbeICMPTimeExceeded:
		r.set("icmp-time-exceeded", "translate", "a SYN with TTL %d (STUNT #2) died at %s and its ICMP came back (%s)", last.TTL, last.From, ev)
	case last.Outcome == sockopt.ProbeTimeout:
		r.set("icmp-time-exceeded", "drop", "a SYN with TTL %d died beyond the NAT and no ICMP came back (%s)", last.TTL, ev)
	default:
		r.set("icmp-time-exceeded", Unknown, "%s", ev)
	}
	r.Layered = "no"
	silent := false
	for _, h := range beyond {
		if h.Outcome == sockopt.ProbeICMPTimeExceeded && cgn.Contains(h.From) {
			r.Layered = fmt.Sprintf("yes: hop %d answered from %s (RFC 6598 shared space, a carrier-grade NAT)", h.TTL, h.From)
			return
		}
		silent = silent || h.Outcome != sockopt.ProbeICMPTimeExceeded
	}
	if silent {
		r.Layered = "cannot tell: hops beyond the first are silent"
	}
}

// hairpin: a connection to this host's own public mapping.
func (c *checker) hairpin(ctx context.Context) {
	_, m, done, err := c.mappedListener(ctx)
	if err != nil {
		c.res.set("hairpinning", Unknown, "probe failed: %v", err)
		return
	}
	defer done()
	c.probes.Add(1)
	dctx, cancel := context.WithTimeout(ctx, c.o.ProbeTimeout)
	res := sockopt.DialProbe(dctx, netip.AddrPort{}, m, 0, false)
	cancel()
	if res.Outcome == sockopt.ProbeConnected {
		c.res.set("hairpinning", "on", "a connection from this host to its own public mapping %s: connected", m)
		return
	}
	c.res.set("hairpinning", "off", "a connection from this host to its own public mapping %s: %s", m, res.Outcome)
}
