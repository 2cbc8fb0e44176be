package impair

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The delay datapath. netem is not built into this kernel, so every packet
// a node sends on an impaired interface is handed to userspace by an
// NFQUEUE rule (iptables-nft's xt target in the node's mangle POSTROUTING;
// nft's native queue expression is not built here either). The engine, one
// per node, reads only metadata (packet id, queue), decides each packet's
// fate at once (lost, sent at once to overtake, or due at a time drawn from
// the delay distribution) and sends verdicts when they are due: batched per
// queue, since packets of one queue leave in arrival order. No thread is
// locked and nothing spins: the release timer is a timerfd (a kernel hrtimer)
// read through the Go netpoller, because Go's own timers may fire up to a
// millisecond late, and the socket is read through the netpoller too, so
// that dozens of engines in one process (an experiment runs 40 labs) park
// goroutines instead of blocking threads.

// queueMaxLen bounds packets held per queue (at 40 ms that is ~800k pps).
const queueMaxLen = 32768

// Stats counts what one impaired direction did.
type Stats struct {
	Node      string `json:"node"`
	Network   string `json:"network"`
	Spec      string `json:"spec"`
	Queue     uint16 `json:"queue"`
	Packets   uint64 `json:"packets"`
	Dropped   uint64 `json:"dropped"`
	Reordered uint64 `json:"reordered"`
	Held      int    `json:"held"`
}

// dirState is one impaired egress: its queue and the state of its models.
type dirState struct {
	network string
	imp     Impairment
	queue   uint16
	rng     *rand.Rand
	bad     bool      // Gilbert state
	lastDue time.Time // packets keep their order
	fifo    []held    // due times non-decreasing
	stats   Stats
}

type held struct {
	id  uint32
	due time.Time
}

// fate decides one packet: dropped, sent now, or held until due.
func (d *dirState) fate(now time.Time) (drop, now_ bool, due time.Time) {
	im := d.imp
	if im.Loss > 0 {
		if im.Burst > 1 {
			// Gilbert: bad state loses everything; mean burst Burst;
			// stationary loss Loss.
			pbg := 1 / im.Burst
			pgb := im.Loss * pbg / (1 - im.Loss)
			if d.bad {
				d.bad = d.rng.Float64() >= pbg
			} else {
				d.bad = d.rng.Float64() < pgb
			}
			if d.bad {
				return true, false, time.Time{}
			}
		} else if d.rng.Float64() < im.Loss {
			return true, false, time.Time{}
		}
	}
	if im.Reorder > 0 && d.rng.Float64() < im.Reorder {
		return false, true, now
	}
	delay := im.Delay
	if im.Jitter > 0 {
		j := float64(im.Jitter)
		var x float64
		switch im.Dist {
		case DistUniform:
			x = (d.rng.Float64()*2 - 1) * j
		case DistPareto:
			// Pareto with shape 3: sd = xm*sqrt(3)/2, mean = 1.5 xm.
			xm := 2 * j / math.Sqrt(3)
			u := 1 - d.rng.Float64()
			x = xm/math.Cbrt(u) - 1.5*xm
		default:
			x = d.rng.NormFloat64() * j
		}
		delay += time.Duration(x)
		if delay < 0 {
			delay = 0
		}
	}
	due = now.Add(delay)
	if due.Before(d.lastDue) {
		due = d.lastDue
	}
	d.lastDue = due
	return false, false, due
}

// Engine runs the impaired directions of one node: its NFQUEUE socket, its
// release timer and two goroutines. Its methods are safe for concurrent
// use; after Stop (or a failure, see Err) it impairs nothing.
type Engine struct {
	node string
	q    *nfq

	mu    sync.Mutex
	dirs  map[uint16]*dirState // by queue
	tfd   int                  // release timer (timerfd)
	tf    *os.File             // tfd under the netpoller
	armed time.Time            // when the timer fires next (zero: disarmed)
	wg    sync.WaitGroup
	err   error // why the reader stopped (then every queued packet passes unimpaired or is lost)
	close sync.Once
}

// Start opens the node's queue socket inside its namespace (inNS runs a
// function there, on a thread locked to the namespace, as natlab.Do does)
// and starts the engine.
func Start(node string, inNS func(func() error) error) (*Engine, error) {
	q, err := dialNFQ(inNS)
	if err != nil {
		return nil, err
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		q.close()
		return nil, fmt.Errorf("impairment timer: %w", err)
	}
	e := &Engine{node: node, q: q, dirs: map[uint16]*dirState{}, tfd: tfd, tf: os.NewFile(uintptr(tfd), "impair-timer")}
	e.wg.Add(2)
	go e.read()
	go e.release()
	return e, nil
}

// Set installs or replaces the impairment of one direction. A new direction
// gets a queue number of its own (random, so that a queue a dying engine
// still holds is never reused). The queue is bound without holding e.mu:
// the bind waits for an acknowledgement that only the reader delivers, and
// the reader takes e.mu for every batch of packets.
func (e *Engine) Set(network string, im Impairment, seed uint64) error {
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		return fmt.Errorf("impairment engine of %s stopped: %w", e.node, e.err)
	}
	for _, d := range e.dirs {
		if d.network == network {
			d.imp = im
			d.rng = rand.New(rand.NewPCG(seed, uint64(d.queue)))
			d.bad = false
			e.mu.Unlock()
			return nil
		}
	}
	var qn uint16
	for qn == 0 || e.dirs[qn] != nil {
		qn = uint16(1 + rand.IntN(65000))
	}
	e.mu.Unlock()
	// Packets can reach the queue as soon as it is bound; until the
	// direction is added below, the reader passes them unimpaired.
	if err := e.q.bind(qn, queueMaxLen); err != nil {
		return err
	}
	e.mu.Lock()
	e.dirs[qn] = &dirState{network: network, imp: im, queue: qn,
		rng:   rand.New(rand.NewPCG(seed, uint64(qn))),
		stats: Stats{Node: e.node, Network: network, Queue: qn}}
	e.mu.Unlock()
	return nil
}

// Queues returns the queue number of each direction, by network.
func (e *Engine) Queues() map[string]uint16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]uint16{}
	for q, d := range e.dirs {
		out[d.network] = q
	}
	return out
}

// Stats returns a copy of every direction's counters, by network.
func (e *Engine) Stats() []Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Stats
	for _, d := range e.dirs {
		s := d.stats
		s.Held = len(d.fifo)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Network < out[j].Network })
	return out
}

func (e *Engine) fail(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

// Err returns why the engine stopped working, or nil.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *Engine) read() {
	defer e.wg.Done()
	buf := make([]byte, 1<<20)
	for {
		if e.q.closed.Load() {
			return
		}
		pkts, err := e.q.recv(buf)
		if errors.Is(err, errTimeout) {
			continue
		}
		if err != nil {
			if !e.q.closed.Load() {
				e.fail(fmt.Errorf("receive: %w", err))
			}
			return
		}
		if len(pkts) == 0 {
			continue
		}
		now := time.Now()
		var verdicts []netlink.Message
		var earliest time.Time
		e.mu.Lock()
		for _, p := range pkts {
			d := e.dirs[p.queue]
			if d == nil {
				verdicts = append(verdicts, verdictMsg(p.queue, p.id, nfAccept, false))
				continue
			}
			d.stats.Packets++
			drop, immediate, due := d.fate(now)
			switch {
			case drop:
				d.stats.Dropped++
				verdicts = append(verdicts, verdictMsg(p.queue, p.id, nfDrop, false))
			case immediate:
				d.stats.Reordered++
				verdicts = append(verdicts, verdictMsg(p.queue, p.id, nfAccept, false))
			case !due.After(now) && len(d.fifo) == 0:
				verdicts = append(verdicts, verdictMsg(p.queue, p.id, nfAccept, false))
			default:
				if len(d.fifo) == 0 && (earliest.IsZero() || due.Before(earliest)) {
					earliest = due
				}
				d.fifo = append(d.fifo, held{p.id, due})
			}
		}
		if !earliest.IsZero() && (e.armed.IsZero() || earliest.Before(e.armed)) {
			e.arm(earliest)
		}
		e.mu.Unlock()
		if len(verdicts) > 0 {
			if err := e.q.send(verdicts); err != nil && !e.q.closed.Load() {
				e.fail(fmt.Errorf("verdict: %w", err))
			}
		}
	}
}

// arm sets the release timer to fire at due (e.mu is held). The timer is
// a timerfd read through the Go netpoller, so waiting parks a goroutine,
// not a thread, and the wake-up comes from a kernel hrtimer, not from Go's
// timer heap (which may fire a millisecond late).
func (e *Engine) arm(due time.Time) {
	e.armed = due
	var now unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	at := now.Nano() + int64(time.Until(due))
	if at <= now.Nano() {
		at = now.Nano() + 1
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(at)}
	_ = unix.TimerfdSettime(e.tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

// release sends verdicts when they are due: for each queue, one batch
// verdict for the held packets whose time has come.
func (e *Engine) release() {
	defer e.wg.Done()
	buf := make([]byte, 8)
	for {
		if _, err := e.tf.Read(buf); err != nil {
			return // closed by stop
		}
		now := time.Now()
		var verdicts []netlink.Message
		e.mu.Lock()
		var next time.Time
		for _, d := range e.dirs {
			n := 0
			for n < len(d.fifo) && !d.fifo[n].due.After(now) {
				n++
			}
			if n > 0 {
				verdicts = append(verdicts, verdictMsg(d.queue, d.fifo[n-1].id, nfAccept, true))
				d.fifo = append(d.fifo[:0], d.fifo[n:]...)
			}
			if len(d.fifo) > 0 && (next.IsZero() || d.fifo[0].due.Before(next)) {
				next = d.fifo[0].due
			}
		}
		e.armed = time.Time{}
		if !next.IsZero() {
			e.arm(next)
		}
		e.mu.Unlock()
		if len(verdicts) > 0 {
			if err := e.q.send(verdicts); err != nil && !e.q.closed.Load() {
				e.fail(fmt.Errorf("verdict: %w", err))
			}
		}
	}
}

// Stop closes the socket: the kernel unbinds its queues, and packets still
// held are dropped (the rules bypass a queue with no listener).
func (e *Engine) Stop() {
	e.close.Do(func() {
		e.q.close()
		e.tf.Close()
		e.wg.Wait()
	})
}

// Rules renders the node's mangle table: one NFQUEUE rule per queued
// direction. The table belongs to natlab (iptables-nft's "ip mangle").
//
// The node's own replies to other packets (a NAT's RST or ICMP error for
// an unsolicited SYN, made by REJECT) skip the queue: they share the
// conntrack entry of the packet they answer, which is not yet confirmed,
// and the kernel drops a queued packet whose unconfirmed entry is shared
// (nf_queue), so queued they would never leave. They leave at once,
// without the direction's delay.
func Rules(dirs map[string]uint16) string {
	return mangle(dirs, "", "-m addrtype --src-type LOCAL -m conntrack --ctstate RELATED")
}

// mangle renders a mangle table that queues each direction of dirs: the
// packets the match own selects leave unqueued, and output (if set) is
// the OUTPUT chain's one rule while some direction is queued.
func mangle(dirs map[string]uint16, output, own string) string {
	var b strings.Builder
	b.WriteString("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	var nets []string
	for n := range dirs {
		nets = append(nets, n)
	}
	sort.Strings(nets)
	if len(nets) > 0 && output != "" {
		fmt.Fprintf(&b, "-A OUTPUT %s\n", output)
	}
	for _, n := range nets {
		fmt.Fprintf(&b, "-A POSTROUTING -o %s %s -j RETURN\n", n, own)
		fmt.Fprintf(&b, "-A POSTROUTING -o %s -j NFQUEUE --queue-num %d --queue-bypass\n", n, dirs[n])
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// ownMark marks, in Rules6, the packets a node makes itself in answer to
// another (see Rules).
const ownMark = "0x4e4c0000/0xffff0000"

// Rules6 is Rules for a dual-stack node's IPv6 packets (ip6tables-nft's
// "ip6 mangle"). An IPv6 firewall's RST for an unsolicited SYN comes from
// the address the SYN was for, an inside host's, not from the node's own,
// so addrtype cannot tell the node's answers from forwarded packets: the
// mangle OUTPUT chain, which only packets the node makes pass, marks
// them, and POSTROUTING lets the marked ones leave unqueued.
func Rules6(dirs map[string]uint16) string {
	return mangle(dirs, "-m conntrack --ctstate RELATED -j MARK --set-xmark "+ownMark, "-m mark --mark "+ownMark)
}
