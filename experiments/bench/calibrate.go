package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/impair"
	"github.com/machsend/machsend/natlab/measure"
)

// Calibration is what the impairment datapath does against what it was
// asked to do, and its ceiling: the figures behind results/IMPAIRMENT.md.
type Calibration struct {
	Kernel  string       `json:"kernel"`
	CPUs    int          `json:"cpus"`
	Delay   []DelayPoint `json:"delay"`
	Loss    []LossPoint  `json:"loss"`
	Reorder []LossPoint  `json:"reorder"`
	Rate    []RatePoint  `json:"rate"`
	Ceiling Ceiling      `json:"ceiling"`
}

// DelayPoint is one configured RTT and what UDP echoes measured.
type DelayPoint struct {
	ConfiguredMs float64 `json:"configured_ms"`
	MedianMs     float64 `json:"median_ms"`
	MinMs        float64 `json:"min_ms"`
	MaxMs        float64 `json:"max_ms"`
	Replies      int     `json:"replies"`
}

// LossPoint is one configured loss (or reorder) rate and what was seen.
type LossPoint struct {
	Spec       string  `json:"spec"`
	Configured float64 `json:"configured"`
	Measured   float64 `json:"measured"`
	Lo         float64 `json:"lo99"`
	Hi         float64 `json:"hi99"`
	MeanBurst  float64 `json:"mean_burst,omitempty"`
	Packets    int     `json:"packets"`
}

// RatePoint is one configured rate and the wire rate of a TCP bulk transfer.
type RatePoint struct {
	ConfiguredMbps float64 `json:"configured_mbps"`
	WireMbps       float64 `json:"wire_mbps"`
	GoodputMbps    float64 `json:"goodput_mbps"`
}

// Ceiling is the delay queue's capacity at 40 ms RTT against the same path
// unimpaired, measured in the same run.
type Ceiling struct {
	RTTms            float64 `json:"rtt_ms"`
	FloodSent        int     `json:"flood_sent"`
	QueuedPPS        float64 `json:"queued_pps"`
	BaselinePPS      float64 `json:"baseline_pps"`
	QueuedMbps       float64 `json:"queued_mbps_64b"`
	BaselineMbps     float64 `json:"baseline_mbps_64b"`
	QueuedLoss       float64 `json:"queued_loss"`
	BaselineLoss     float64 `json:"baseline_loss"`
	LargeQueuedMbps  float64 `json:"queued_mbps_1400b"`
	LargeBaseMbps    float64 `json:"baseline_mbps_1400b"`
	TCPQueuedMbps    float64 `json:"tcp_queued_mbps"`
	TCPBaselineMbps  float64 `json:"tcp_baseline_mbps"`
	PassedUnqueued   uint64  `json:"passed_unqueued"`
	QueueLimit       int     `json:"queue_limit"`
	DeliveredOverall float64 `json:"ratio_pps"`
}

// Calibrate measures the impairment datapath in a two-NAT lab (peer A to
// the rendezvous host, impairments on both directions of A's NAT's WAN) and writes impairment.json and
// IMPAIRMENT.md into out.
func Calibrate(ctx context.Context, out string) (*Calibration, error) {
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		return nil, err
	}
	def, err := nat.Load("port-restricted-cone")
	if err != nil {
		return nil, err
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Default: def})
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	k, err := newCalibrator(lab)
	if err != nil {
		return nil, err
	}
	for _, stage := range []func() error{k.delays, k.losses, k.reorders, k.rates, k.ceiling} {
		if err := stage(); err != nil {
			return nil, err
		}
	}
	if err := lab.ImpairErr(); err != nil {
		return nil, err
	}
	c := k.c
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, "impairment.json"), b, 0o644); err != nil {
		return nil, err
	}
	return c, os.WriteFile(filepath.Join(out, "IMPAIRMENT.md"), []byte(c.markdown()), 0o644)
}

// calibrator measures the impairment datapath between a and rv of one lab,
// each stage on fresh ports.
type calibrator struct {
	lab      *natlab.Lab
	a, rv    *natlab.Node
	nat, wan string // peer A's NAT and the network it translates onto
	rvAddr   netip.Addr
	port     uint16
	c        *Calibration
}

// newCalibrator finds the nodes by role: peer A, the rendezvous host, and
// the NAT between them whose WAN link is impaired.
func newCalibrator(lab *natlab.Lab) (*calibrator, error) {
	k := &calibrator{lab: lab, port: 20000, c: &Calibration{Kernel: experiments.Kernel(), CPUs: runtime.NumCPU()}}
	var err error
	if k.a, err = lab.NodeWithRole(natlab.RolePeerA); err != nil {
		return nil, err
	}
	if k.rv, err = lab.NodeWithRole(natlab.RoleRendezvous); err != nil {
		return nil, err
	}
	nats := lab.Topology.NATsOf(k.a.Name)
	if len(nats) == 0 || len(k.rv.Addrs()) == 0 {
		return nil, fmt.Errorf("calibrate: topology %s has no NAT in front of peer A or no rendezvous address", lab.Topology.Name)
	}
	k.nat, k.wan, k.rvAddr = nats[0], lab.Topology.Node(nats[0]).WAN, k.rv.Addrs()[0]
	return k, nil
}

func (k *calibrator) next() netip.AddrPort { k.port++; return netip.AddrPortFrom(k.rvAddr, k.port) }

// setBoth impairs both directions of A's WAN link.
func (k *calibrator) setBoth(spec string) error {
	return k.lab.ImpairLink(natlab.LinkImpairment{Network: "wan-a", Spec: spec})
}

// delays: round-trip time against configured delay.
func (k *calibrator) delays() error {
	for _, rtt := range []time.Duration{10, 20, 40, 80, 160, 200} {
		rtt *= time.Millisecond
		if err := k.setBoth("delay=" + (rtt / 2).String()); err != nil {
			return err
		}
		rtts, err := measure.RTT(k.a.Handle, k.rv.Handle, k.next(), 100, 5*time.Millisecond)
		if err != nil {
			return err
		}
		k.c.Delay = append(k.c.Delay, DelayPoint{ConfiguredMs: ms(rtt), MedianMs: ms(measure.Median(rtts)),
			MinMs: ms(rtts[0]), MaxMs: ms(rtts[len(rtts)-1]), Replies: len(rtts)})
	}
	return k.lab.ClearImpairments()
}

// losses: random and bursty loss against the binomial interval.
func (k *calibrator) losses() error {
	const n = 100000
	for _, sp := range []struct {
		spec  string
		p     float64
		burst float64
	}{{"loss=0.5%", 0.005, 0}, {"loss=1%", 0.01, 0}, {"loss=5%", 0.05, 0}, {"loss=5% burst=3", 0.05, 3}} {
		if err := k.lab.Impair(k.nat, k.wan, impair.MustParse(sp.spec)); err != nil {
			return err
		}
		s, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), n, 64, 40000, 300*time.Millisecond)
		if err != nil {
			return err
		}
		eff := n
		if sp.burst > 1 {
			eff = int(float64(n) / (2 * sp.burst))
		}
		lo, hi := measure.Binomial99(eff, sp.p)
		k.c.Loss = append(k.c.Loss, LossPoint{Spec: sp.spec, Configured: sp.p, Measured: s.Loss, Lo: lo, Hi: hi, MeanBurst: s.MeanBurst, Packets: n})
	}
	return nil
}

// reorders: reordering (and jitter's reordering) against configuration.
func (k *calibrator) reorders() error {
	for _, sp := range []struct {
		spec string
		p    float64
	}{{"delay=10ms reorder=1%", 0.01}, {"delay=10ms reorder=10%", 0.10}, {"delay=10ms jitter=3ms", 0}} {
		if err := k.lab.Impair(k.nat, k.wan, impair.MustParse(sp.spec)); err != nil {
			return err
		}
		const count = 20000
		s, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), count, 64, 4000, 300*time.Millisecond)
		if err != nil {
			return err
		}
		lo, hi := measure.Binomial99(count, sp.p)
		k.c.Reorder = append(k.c.Reorder, LossPoint{Spec: sp.spec, Configured: sp.p, Measured: float64(s.Overtook) / float64(max(s.Received, 1)), Lo: lo, Hi: hi, Packets: count})
	}
	return nil
}

// rates: tbf rate limits against wire rate and goodput.
func (k *calibrator) rates() error {
	for _, mbit := range []uint64{10, 50, 200, 1000} {
		if err := k.lab.Impair(k.nat, k.wan, impair.Impairment{Rate: mbit * 1e6}); err != nil {
			return err
		}
		b, err := measure.TCPBulk(k.a.Handle, k.rv.Handle, k.next(), int64(mbit*1e6/8)*3)
		if err != nil {
			return err
		}
		k.c.Rate = append(k.c.Rate, RatePoint{ConfiguredMbps: float64(mbit), WireMbps: b.Wire / 1e6, GoodputMbps: b.Goodput / 1e6})
	}
	return nil
}

// ceiling: the same flood and bulk transfer unimpaired, then through the
// queue at 40 ms RTT.
func (k *calibrator) ceiling() error {
	if err := k.lab.ClearImpairments(); err != nil {
		return err
	}
	const flood = 400000
	k.c.Ceiling = Ceiling{RTTms: 40, FloodSent: flood, QueueLimit: 32768}
	base, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), flood, 64, 0, 500*time.Millisecond)
	if err != nil {
		return err
	}
	baseLarge, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), flood/4, 1400, 0, 500*time.Millisecond)
	if err != nil {
		return err
	}
	tcpBase, err := measure.TCPBulk(k.a.Handle, k.rv.Handle, k.next(), 2<<30)
	if err != nil {
		return err
	}
	if err := k.setBoth("delay=20ms"); err != nil {
		return err
	}
	q, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), flood, 64, 0, 500*time.Millisecond)
	if err != nil {
		return err
	}
	var queued uint64
	for _, s := range k.lab.Impairments() {
		if s.Node == k.nat {
			queued = s.Packets
		}
	}
	qLarge, err := measure.Datagrams(k.a.Handle, k.rv.Handle, k.next(), flood/4, 1400, 0, 500*time.Millisecond)
	if err != nil {
		return err
	}
	tcpQ, err := measure.TCPBulk(k.a.Handle, k.rv.Handle, k.next(), 1<<30)
	if err != nil {
		return err
	}
	pps := func(s measure.Stream) float64 { return float64(s.Received) / s.Duration.Seconds() }
	mbps := func(s measure.Stream, size int) float64 { return pps(s) * float64(size*8) / 1e6 }
	e := &k.c.Ceiling
	e.BaselinePPS, e.QueuedPPS = pps(base), pps(q)
	e.BaselineMbps, e.QueuedMbps = mbps(base, 64), mbps(q, 64)
	e.BaselineLoss, e.QueuedLoss = base.Loss, q.Loss
	e.LargeBaseMbps, e.LargeQueuedMbps = mbps(baseLarge, 1400), mbps(qLarge, 1400)
	e.TCPBaselineMbps, e.TCPQueuedMbps = tcpBase.Goodput/1e6, tcpQ.Goodput/1e6
	if uint64(flood) > queued {
		e.PassedUnqueued = uint64(flood) - queued
	}
	e.DeliveredOverall = e.QueuedPPS / e.BaselinePPS
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (c *Calibration) markdown() string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	p("# Impairment datapath: calibration and ceiling")
	p("")
	p("Generated by `experiment calibrate` (part of `make experiment`) in a two-NAT lab, from host a to the rendezvous host, impairments on wan-a; kernel `%s`, %d CPUs. This kernel has no netem: delay, jitter, loss and reordering come from natlab's NFQUEUE engine (held verdicts over a NETLINK_NETFILTER socket, metadata only), rate from tbf.", c.Kernel, c.CPUs)
	p("")
	p("## Delay (UDP echo, 100 probes; half the RTT on each direction of wan-a)")
	p("")
	p("| configured RTT | median | error | min | max |")
	p("|---:|---:|---:|---:|---:|")
	for _, d := range c.Delay {
		p("| %.0f ms | %.2f ms | %+.2f ms | %.2f ms | %.2f ms |", d.ConfiguredMs, d.MedianMs, d.MedianMs-d.ConfiguredMs, d.MinMs, d.MaxMs)
	}
	p("")
	p("## Loss (numbered UDP datagrams at 40,000/s)")
	p("")
	p("| impairment | datagrams | measured loss | 99%% interval | mean burst |")
	p("|---|---:|---:|---|---:|")
	for _, l := range c.Loss {
		p("| `%s` | %d | %.3f%% | [%.3f%%, %.3f%%] | %.2f |", l.Spec, l.Packets, 100*l.Measured, 100*l.Lo, 100*l.Hi, l.MeanBurst)
	}
	p("")
	p("For bursty loss the interval is the binomial one for n/(2·burst) independent events.")
	p("")
	p("## Reordering (datagrams at 4,000/s; fraction that overtook a lower-numbered one)")
	p("")
	p("| impairment | measured | 99%% interval |")
	p("|---|---:|---|")
	for _, l := range c.Reorder {
		p("| `%s` | %.2f%% | [%.2f%%, %.2f%%] |", l.Spec, 100*l.Measured, 100*max(l.Lo, 0), 100*l.Hi)
	}
	p("")
	p("## Rate (tbf; one TCP connection, three seconds' worth)")
	p("")
	p("| configured | on the wire | ratio | TCP goodput |")
	p("|---:|---:|---:|---:|")
	for _, r := range c.Rate {
		p("| %.0f Mbit/s | %.1f Mbit/s | %.3f | %.1f Mbit/s |", r.ConfiguredMbps, r.WireMbps, r.WireMbps/r.ConfiguredMbps, r.GoodputMbps)
	}
	p("")
	p("Wire rate is goodput × 1514/1448 (Ethernet frames at MTU 1500 with TCP timestamps): interface byte counters undercount, since a GSO super-packet carries its headers once.")
	p("")
	e := c.Ceiling
	p("## Ceiling of the delay queue at %.0f ms RTT", e.RTTms)
	p("")
	p("One sender, as fast as it can, against the same path unimpaired in the same run:")
	p("")
	p("| load | unimpaired | through the queue | ratio |")
	p("|---|---:|---:|---:|")
	p("| 64-byte UDP, packets/s delivered | %.0f | %.0f | %.2f |", e.BaselinePPS, e.QueuedPPS, e.QueuedPPS/e.BaselinePPS)
	p("| 64-byte UDP, Mbit/s of payload | %.1f | %.1f | %.2f |", e.BaselineMbps, e.QueuedMbps, e.QueuedMbps/e.BaselineMbps)
	p("| 64-byte UDP, loss | %.2f%% | %.2f%% | |", 100*e.BaselineLoss, 100*e.QueuedLoss)
	p("| 1400-byte UDP, Mbit/s of payload | %.0f | %.0f | %.2f |", e.LargeBaseMbps, e.LargeQueuedMbps, e.LargeQueuedMbps/e.LargeBaseMbps)
	p("| one TCP connection, Mbit/s goodput | %.0f | %.0f | %.2f |", e.TCPBaselineMbps, e.TCPQueuedMbps, e.TCPQueuedMbps/e.TCPBaselineMbps)
	p("")
	p("The queue holds up to %d packets per direction and fails open when full; %d of the %d flood datagrams passed without being queued. The sender, the engine and the receiver share %d CPUs, so these are lower bounds of the datapath alone. A single TCP connection at 40 ms is limited by its window as much as by the queue.", e.QueueLimit, e.PassedUnqueued, e.FloodSent, c.CPUs)
	return b.String()
}
