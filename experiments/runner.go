package experiments

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/machsend/machsend/experiments/classify"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab/impair"
	"github.com/machsend/machsend/session"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/traversal"
)

// Options configure a run.
type Options struct {
	// Bin is the directory holding the machsend and rendezvous binaries.
	Bin string
	// Out is the results directory (trials.jsonl, pcaps/, ...).
	Out string
	// Workers overrides the spec's number of parallel labs.
	Workers int
	// AttemptTimeout is passed to machsend punch (per attempt); 0 means
	// the spec's attempt_timeout, which Run otherwise sets to it.
	AttemptTimeout time.Duration
	// Log receives one line per finished trial (may be nil).
	Log io.Writer
	// Shard, when set, runs only that shard's trials (ParseShard).
	Shard Shard
	// NoiseBound is the scheduling noise above which a trial's timings are
	// left out and fewer labs run at once (0: DefaultNoiseBound).
	NoiseBound time.Duration

	evidence *evidenceSet // which trials keep their captures (nil: all)
}

func (o *Options) noiseBound() time.Duration {
	if o.NoiseBound > 0 {
		return o.NoiseBound
	}
	return DefaultNoiseBound
}

// worker owns one lab per topology and reuses it between trials.
type worker struct {
	id     int
	opt    *Options
	labs   map[string]*natlab.Lab
	trials int // trials run, to rotate the rendezvous ports
	// cases remembers the impairment case each lab runs, so it is only
	// set again when it changes (a rebuilt lab starts with none).
	cases map[*natlab.Lab]string
}

func (w *worker) close() {
	for _, l := range w.labs {
		l.Close()
	}
}

// reset closes the worker's labs so the next trial builds fresh ones.
func (w *worker) reset() {
	w.close()
	w.labs = map[string]*natlab.Lab{}
	w.cases = map[*natlab.Lab]string{}
}

func (w *worker) lab(ctx context.Context, c spec.Cell) (*natlab.Lab, error) {
	profiles := map[string]*nat.Profile{}
	for n, name := range c.Profiles {
		p, err := nat.Load(name)
		if err != nil {
			return nil, err
		}
		profiles[n] = p
	}
	if l := w.labs[c.Topology]; l != nil {
		for n, p := range profiles {
			if err := l.SetProfile(n, p); err != nil {
				return nil, err
			}
		}
		if err := l.Reset(); err != nil {
			return nil, err
		}
		return l, nil
	}
	topo, err := natlab.LoadTopology(c.Topology)
	if err != nil {
		return nil, err
	}
	// A random name (natlab's): runners in other processes (make test
	// beside make experiment) never collide with this one's labs.
	l, err := natlab.Up(ctx, natlab.Options{Topology: topo, Profiles: profiles})
	if err != nil {
		return nil, err
	}
	w.labs[c.Topology] = l
	return l, nil
}

// lineReader collects a process's stdout lines.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	got   chan string
	done  chan struct{}
}

func collect(rd io.Reader) *lineReader {
	lr := &lineReader{got: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
			select {
			case lr.got <- sc.Text():
			default:
			}
		}
		close(lr.got)
		close(lr.done)
	}()
	return lr
}

// all returns every line, once the process's stdout is closed (or 2 s).
func (r *lineReader) all() []string {
	select {
	case <-r.done:
	case <-time.After(2 * time.Second):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// punchOutput is what one machsend punch printed.
type punchOutput struct {
	Session string
	Report  *traversal.Report
	NAT     *traversal.NATInfo
	RTT     []float64
	Err     string
}

func parsePunch(lines []string) punchOutput {
	var out punchOutput
	for _, e := range session.ParseEvents(lines) {
		switch e.Kind {
		case session.KindSession:
			out.Session = e.Session
		case session.KindReport:
			out.Report = e.Report
		case session.KindNAT:
			out.NAT = e.NAT
		case session.KindPings:
			out.RTT = e.RTTms
		case session.KindError:
			out.Err = e.Error
		}
	}
	return out
}

// secret is the session secret the trial's two peers share.
const secret = "experiment-secret-0123456789"

// waitListening polls until a TCP port answers inside a node.
func waitListening(ctx context.Context, n *natlab.Node, ap netip.AddrPort) error {
	for i := 0; i < 200; i++ {
		var err error
		_ = natlab.Do(n.Handle, func() error {
			var c net.Conn
			c, err = net.DialTimeout(sockopt.Network(ap), ap.String(), 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return nil
		})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("rendezvous did not start listening on %s", ap)
}

// runTrial runs one trial in the worker's lab: prepare the trial and its
// lab, capture both sides of every NAT, run the two peers, then record the
// outcome and its evidence.
func (w *worker) runTrial(ctx context.Context, sp *spec.Spec, c spec.Cell, rep int) (*spec.Trial, error) {
	t, ic, err := newTrial(sp, c, rep)
	if err != nil {
		return nil, err
	}
	t.Phases = &spec.Phases{}
	mark := phaseClock()
	lab, before, err := w.prepareLab(ctx, c, ic)
	if err != nil {
		return nil, err
	}
	caps, err := startCaptures(lab)
	if err != nil {
		return nil, err
	}
	t.Phases.LabMs = mark()
	// A fresh server port per trial: the previous trials' TIME_WAIT state
	// on rv survives a Reset, and a sequential NAT would otherwise hit it.
	w.trials++
	start := StartRendezvous
	if c.Family == spec.FamilyIPv6 {
		start = StartRendezvous6
	}
	peers, err := start(ctx, lab, w.opt.Bin, uint16(10000+(w.trials%2000)*3), serverArgs(ic)...)
	if err != nil {
		return nil, err
	}
	t.Phases.ServerMs = mark()
	if t.PathRTTms, t.NoiseMs, err = measureNoise(ctx, lab, peers, ic); err != nil {
		return nil, fmt.Errorf("path probe: %w", err)
	}
	t.Phases.ProbeMs = mark()
	t.Noisy = t.NoiseMs > float64(w.opt.noiseBound().Microseconds())/1000
	if ic != nil && ic.Cross > 0 {
		stop, err := startCross(lab, peers, ic.Cross)
		if err != nil {
			return nil, err
		}
		defer func() {
			st := stop()
			t.Cross = &st
		}()
	}
	oa, ob, err := w.runPeers(peers, c, sp.Deadline)
	if err != nil {
		return nil, err
	}
	t.Phases.PeersMs = mark()
	t.DurationMs = float64(time.Since(t.Start).Microseconds()) / 1000
	recordOutcome(t, oa, ob)
	if ic != nil {
		if err := recordImpairments(t, lab, before); err != nil {
			return nil, err
		}
	}
	evidence := collectEvidence(t, lab, caps)
	t.Class, t.Explanation = classify.Classify(t, lab.Topology, evidence)
	if w.opt.evidence.claim(t) {
		keepEvidence(t, w.opt.Out, evidence)
	}
	t.Phases.EvidenceMs = mark()
	return t, nil
}

// phaseClock returns a function that reports the milliseconds since its
// previous call (or since phaseClock), on the monotonic clock.
func phaseClock() func() float64 {
	last := time.Now()
	return func() float64 {
		now := time.Now()
		d := now.Sub(last)
		last = now
		return float64(d.Microseconds()) / 1000
	}
}

// newTrial is the trial's record before it runs: its cell, the model's
// prediction and the hashes of the profiles it uses.
func newTrial(sp *spec.Spec, c spec.Cell, rep int) (*spec.Trial, *spec.ImpairCase, error) {
	t := &spec.Trial{ID: TrialID(c, rep), Cell: c, Rep: rep, Start: time.Now().UTC(),
		ProfileHashes: map[string]string{}, Delay: "none (no delay emulation; SYN races decided by scheduling)"}
	ic := sp.Conditions(c)
	switch {
	case c.Case != "" && ic == nil:
		return nil, nil, fmt.Errorf("unknown impairment case %q", c.Case)
	case ic != nil:
		t.Delay = ic.Name + ": " + ic.String()
	}
	pred, err := sp.Predict(c)
	if err != nil {
		return nil, nil, err
	}
	t.Predicted, t.PredictedReason, t.PredictedRace = pred.Success, pred.Reason, pred.Race
	t.Modelled = ic.Modelled()
	if ic != nil && ic.Sweep {
		t.Sweep, t.OffsetMs = true, float64(ic.Offset.Microseconds())/1000
	}
	for n, name := range c.Profiles {
		p, _ := nat.Load(name)
		t.ProfileHashes[n] = p.Hash
	}
	return t, ic, nil
}

// prepareLab gets the worker's lab for the cell with the cell's impairment
// case in force, and the impairment counters before the trial.
func (w *worker) prepareLab(ctx context.Context, c spec.Cell, ic *spec.ImpairCase) (*natlab.Lab, map[string]impair.Stats, error) {
	lab, err := w.lab(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	// The conditions in force, by name ("path" for the spec's path); a new
	// lab has none recorded, so its first trial always applies them.
	key := "case " + c.Case
	if ic != nil {
		key = "case " + ic.Name
	}
	if w.cases[lab] != key {
		if err := ic.Apply(lab); err != nil {
			return nil, nil, fmt.Errorf("impairment case %s: %w", key, err)
		}
		w.cases[lab] = key
	}
	before := map[string]impair.Stats{}
	for _, s := range lab.Impairments() {
		before[s.Node+"/"+s.Network] = s
	}
	return lab, before, nil
}

// capRef is one running capture on one interface of a NAT.
type capRef struct {
	node, iface string
	c           *natlab.Capture
}

// startCaptures captures on both sides of every NAT.
func startCaptures(lab *natlab.Lab) ([]capRef, error) {
	var caps []capRef
	for _, nat := range lab.Topology.NATs() {
		n, _ := lab.Node(nat)
		for _, ifc := range n.Ifaces {
			cp, err := lab.Capture(nat, ifc.Name, "")
			if err != nil {
				return nil, err
			}
			caps = append(caps, capRef{nat, ifc.Name, cp})
		}
	}
	return caps, nil
}

// startCross sends cross traffic to the rendezvous host's second address, a port apart from
// the server's, from before A starts until stop is called.
func startCross(lab *natlab.Lab, peers *LabPeers, rate float64) (stop func() natlab.CrossStats, err error) {
	host := spec.CrossHost(lab.Topology)
	rvn, err := lab.Node(peers.RV)
	if err != nil {
		return nil, err
	}
	addrs := rvn.Addrs()
	target := netip.AddrPortFrom(addrs[len(addrs)-1], peers.Server.Port()+2)
	cross, err := lab.CrossTraffic(host, peers.RV, target, rate)
	if err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	return cross.Stop, nil
}

// runPeers runs `machsend punch` on A, which creates the session, then on B,
// which joins it, and waits for both (killing either after the deadline).
func (w *worker) runPeers(peers *LabPeers, c spec.Cell, deadline time.Duration) (oa, ob punchOutput, err error) {
	punch := func(node, session string) (*Running, error) {
		args := []string{"punch", "--server", peers.Server.String(), "--method", c.Method,
			"--timeout", deadline.String(), "--pings", "3"}
		if session != "" {
			args = append(args, "--session", session)
		}
		if w.opt.AttemptTimeout > 0 {
			args = append(args, "--attempt-timeout", w.opt.AttemptTimeout.String())
		}
		return peers.Machsend(node, nil, args...)
	}
	ra, err := punch(peers.A, "")
	if err != nil {
		return oa, ob, err
	}
	session, err := awaitSession(ra, deadline)
	if err != nil {
		return oa, ob, err
	}
	rb, err := punch(peers.B, session)
	if err != nil {
		return oa, ob, err
	}
	for _, p := range []*natlab.Process{ra.Proc, rb.Proc} {
		select {
		case <-p.Done():
		case <-time.After(deadline + 5*time.Second):
			p.Kill()
		}
	}
	return parsePunch(ra.lines.all()), parsePunch(rb.lines.all()), nil
}

// awaitSession reads peer A's output until it names the session it created.
func awaitSession(ra *Running, deadline time.Duration) (string, error) {
	timer := time.NewTimer(max(10*time.Second, deadline))
	defer timer.Stop()
	for {
		select {
		case line, ok := <-ra.lines.got:
			if !ok {
				return "", fmt.Errorf("peer A exited before creating a session: %v", ra.Proc.Wait())
			}
			if s := parsePunch([]string{line}).Session; s != "" {
				return s, nil
			}
		case <-timer.C:
			ra.Proc.Kill()
			return "", errors.New("peer A created no session")
		}
	}
}

// recordOutcome stores what the peers reported: success needs both peers'
// reports without error and round trips measured across the connection.
func recordOutcome(t *spec.Trial, oa, ob punchOutput) {
	t.NATA, t.NATB, t.ErrorA, t.ErrorB = oa.NAT, ob.NAT, oa.Err, ob.Err
	if oa.Report != nil {
		t.Attempts = oa.Report.Attempts
	}
	t.Birthday = joinBirthday(oa.Report, ob.Report)
	if oa.Report != nil && ob.Report != nil && oa.Err == "" && ob.Err == "" && len(oa.RTT) > 0 {
		t.Success = true
		t.Method, t.Path = string(oa.Report.Method), oa.Report.Path
		t.ConnectMs = float64(oa.Report.ConnectTime.Microseconds()) / 1000
		t.RTTms = oa.RTT
		for i, a := range oa.Report.Attempts {
			if a.Outcome == "connected" && a.Attempt == oa.Report.Attempt {
				t.AttemptsToWin = i + 1
			}
		}
	}
	t.Agree = t.Success == t.Predicted
}

// recordImpairments stores what the impairment queues did during the trial.
func recordImpairments(t *spec.Trial, lab *natlab.Lab, before map[string]impair.Stats) error {
	if err := lab.ImpairErr(); err != nil {
		return err
	}
	for _, s := range lab.Impairments() {
		b := before[s.Node+"/"+s.Network]
		s.Packets -= b.Packets
		s.Dropped -= b.Dropped
		s.Reordered -= b.Reordered
		t.Impairments = append(t.Impairments, s)
	}
	return nil
}

// collectEvidence takes every NAT's conntrack table into the trial and
// stops the captures, returning their packets.
func collectEvidence(t *spec.Trial, lab *natlab.Lab, caps []capRef) []classify.Capture {
	t.Conntrack = map[string][]natlab.ConntrackEntry{}
	for _, nat := range lab.Topology.NATs() {
		if ents, err := lab.Conntrack(nat); err == nil {
			t.Conntrack[nat] = ents
		}
	}
	// Stop every capture at once: each notices within its 50 ms read
	// timeout, so one after another cost up to 50 ms each.
	var wg sync.WaitGroup
	for _, cr := range caps {
		wg.Add(1)
		go func() { defer wg.Done(); _ = cr.c.Stop() }()
	}
	wg.Wait()
	var evidence []classify.Capture
	for _, cr := range caps {
		evidence = append(evidence, classify.Capture{Node: cr.node, Iface: cr.iface, Packets: cr.c.Packets()})
	}
	return evidence
}

// keepEvidence writes the trial's captures and conntrack under out/pcaps.
func keepEvidence(t *spec.Trial, out string, evidence []classify.Capture) {
	dir := filepath.Join(out, "pcaps", spec.FileName(t.ID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	t.Evidence, _ = filepath.Rel(out, dir)
	_ = classify.WriteConntrack(filepath.Join(dir, classify.ConntrackFile), t.Conntrack)
	for _, e := range evidence {
		p := filepath.Join(dir, e.Node+"-"+e.Iface+".pcap.gz")
		if err := classify.WritePcap(p, e.Packets); err == nil {
			rel, _ := filepath.Rel(out, p)
			t.Pcaps = append(t.Pcaps, rel)
		}
	}
}

// snapshot returns the lines read so far without waiting for the end.
func (r *lineReader) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// joinBirthday merges the two peers' last birthday-search records: one
// side guessed, the other opened mappings.
func joinBirthday(reports ...*traversal.Report) *traversal.Birthday {
	var out *traversal.Birthday
	for _, r := range reports {
		if r == nil {
			continue
		}
		for i := len(r.Attempts) - 1; i >= 0; i-- {
			b := r.Attempts[i].Birthday
			if b == nil {
				continue
			}
			if out == nil {
				out = &traversal.Birthday{}
			}
			out.Guesses, out.Pending, out.Mappings = max(out.Guesses, b.Guesses), max(out.Pending, b.Pending), max(out.Mappings, b.Mappings)
			break
		}
	}
	return out
}

// serverArgs are the rendezvous server's extra flags for a case: a case
// that offsets the peers' SYNs (the race sweep) sets that offset itself,
// as extra delay on the late side's NAT egress, which the server would
// otherwise see in that side's round trip and halve by delaying the
// early side's start.
func serverArgs(ic *spec.ImpairCase) []string {
	if ic != nil && ic.Offset != 0 {
		return []string{"--unsynced-starts"}
	}
	return nil
}
