package spec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/impair"
)

// ImpairCase is one point of the impairment axis: network conditions a
// group's cells run under, stated the way a network is described (round
// trip between the peers, per-trip jitter and loss) and realised on the
// lab's links by Apply.
type ImpairCase struct {
	Name string `yaml:"-" json:"name"`
	// RTT is the round trip between the two peers across the core. It is
	// spread over the core links (a quarter on each one-way crossing of
	// the two WAN links in two-nat), so a peer's round trip to the
	// rendezvous server is half of it.
	RTT time.Duration `yaml:"rtt" json:"rtt,omitempty"`
	// Jitter is the standard deviation of one peer-to-peer trip's delay.
	Jitter time.Duration `yaml:"jitter" json:"jitter,omitempty"`
	// Dist is the jitter distribution (normal, uniform, pareto).
	Dist string `yaml:"dist" json:"dist,omitempty"`
	// Loss is the loss rate of one peer-to-peer trip ("0.5%").
	Loss string `yaml:"loss" json:"loss,omitempty"`
	// Burst is the mean loss burst length (Gilbert model).
	Burst float64 `yaml:"burst" json:"burst,omitempty"`
	// WANADelay and WANBDelay add round-trip delay on one side only.
	WANADelay time.Duration `yaml:"wan-a-delay" json:"wan_a_delay,omitempty"`
	WANBDelay time.Duration `yaml:"wan-b-delay" json:"wan_b_delay,omitempty"`
	// LANDelay is the one-way delay between each host and its router,
	// separate from the core.
	LANDelay time.Duration `yaml:"lan-delay" json:"lan_delay,omitempty"`
	// Rate limits each core link direction ("20mbit").
	Rate string `yaml:"rate" json:"rate,omitempty"`
	// Cross is connections per second opened by the topology's cross
	// host (role "cross") during the trial.
	Cross float64 `yaml:"cross" json:"cross,omitempty"`

	loss float64
	rate uint64
}

func (ic *ImpairCase) validate() error {
	var err error
	if ic.Loss != "" {
		if ic.loss, err = impair.ParseFraction(ic.Loss); err != nil {
			return fmt.Errorf("loss: %w", err)
		}
		if ic.loss >= 1 {
			return errors.New("loss: must be below 100%")
		}
	}
	if ic.Rate != "" {
		if ic.rate, err = impair.ParseRate(ic.Rate); err != nil {
			return err
		}
	}
	for _, d := range []time.Duration{ic.RTT, ic.Jitter, ic.WANADelay, ic.WANBDelay, ic.LANDelay} {
		if d < 0 || d > impair.MaxDelay {
			return fmt.Errorf("delay %v outside 0..%v", d, impair.MaxDelay)
		}
	}
	if ic.Cross < 0 || ic.Cross > 1000 {
		return fmt.Errorf("cross %g/s outside 0..1000", ic.Cross)
	}
	if ic.Burst != 0 && (ic.Burst < 1 || ic.Burst > 1000) {
		return fmt.Errorf("burst %g outside 1..1000", ic.Burst)
	}
	// Every per-link impairment it makes must parse.
	_, err = ic.links(map[string]string{"wan-a": "core", "wan-b": "core"}, nil, [2]string{"wan-a", "wan-b"})
	return err
}

// String describes the case for trial records and the report.
func (ic *ImpairCase) String() string {
	var p []string
	if ic.RTT > 0 {
		p = append(p, "RTT "+ic.RTT.String())
	}
	if ic.Jitter > 0 {
		p = append(p, "jitter "+ic.Jitter.String())
	}
	if ic.Loss != "" {
		s := "loss " + ic.Loss
		if ic.Burst > 1 {
			s += fmt.Sprintf(" in bursts of %g", ic.Burst)
		}
		p = append(p, s)
	}
	if ic.WANADelay > 0 {
		p = append(p, "+"+ic.WANADelay.String()+" on A's side")
	}
	if ic.WANBDelay > 0 {
		p = append(p, "+"+ic.WANBDelay.String()+" on B's side")
	}
	if ic.LANDelay > 0 {
		p = append(p, ic.LANDelay.String()+" host-router")
	}
	if ic.Rate != "" {
		p = append(p, ic.Rate+" per core link")
	}
	if ic.Cross > 0 {
		p = append(p, fmt.Sprintf("%g conn/s cross traffic", ic.Cross))
	}
	if len(p) == 0 {
		return "no impairment"
	}
	return strings.Join(p, ", ")
}

// links renders the case as per-direction link impairments. core maps each
// core link (a network joining a NAT or public host to the core router) to
// the router's name; lans lists host-router networks; wans are the core
// links of peer A's and peer B's sides.
func (ic *ImpairCase) links(core map[string]string, lans []string, wans [2]string) ([]natlab.LinkImpairment, error) {
	// A peer-to-peer one-way trip crosses two core link directions (its
	// side's uplink and the other side's downlink).
	const crossings = 2
	perLoss := 0.0
	if ic.loss > 0 {
		perLoss = 1 - math.Pow(1-ic.loss, 1.0/crossings)
	}
	jit := time.Duration(float64(ic.Jitter) / math.Sqrt(crossings))
	var out []natlab.LinkImpairment
	nets := make([]string, 0, len(core))
	for n := range core {
		nets = append(nets, n)
	}
	sort.Strings(nets)
	for _, nw := range nets {
		d := ic.RTT / 4
		switch nw {
		case wans[0]:
			d += ic.WANADelay / 2
		case wans[1]:
			d += ic.WANBDelay / 2
		}
		im := impair.Impairment{Delay: d, Jitter: jit, Loss: perLoss, Rate: ic.rate}
		if jit > 0 {
			im.Dist = ic.Dist
		}
		if perLoss > 0 && ic.Burst > 1 {
			im.Burst = ic.Burst
		}
		if im.Zero() {
			continue
		}
		// Round-trip through the parser: the same checks as any spec.
		parsed, err := impair.Parse(im.String())
		if err != nil {
			return nil, err
		}
		out = append(out, natlab.LinkImpairment{Network: nw, Spec: parsed.String()})
	}
	if ic.LANDelay > 0 {
		for _, nw := range lans {
			out = append(out, natlab.LinkImpairment{Network: nw, Spec: "delay=" + ic.LANDelay.String()})
		}
	}
	return out, nil
}

// coreLinks finds a topology's core links (networks of a router node,
// other than the rendezvous host's) and its host-router networks.
func coreLinks(t *natlab.Topology) (core map[string]string, lans []string) {
	core = map[string]string{}
	kind := map[string]string{}
	role := map[string]string{}
	for _, n := range t.Nodes {
		kind[n.Name], role[n.Name] = n.Kind, n.Role
	}
	for _, nw := range t.Networks {
		router, rv, host, nat := "", false, false, false
		for m := range nw.Members {
			switch {
			case kind[m] == natlab.KindRouter:
				router = m
			case role[m] == natlab.RoleRendezvous:
				rv = true
			case kind[m] == natlab.KindHost:
				host = true
			case kind[m] == natlab.KindNAT:
				nat = true
			}
		}
		switch {
		case router != "" && !rv:
			core[nw.Name] = router
		case router == "" && host && nat:
			lans = append(lans, nw.Name)
		}
	}
	sort.Strings(lans)
	return core, lans
}

// sideWANs are the networks the outermost NAT of each peer translates onto
// ("" for a side without a NAT).
func sideWANs(t *natlab.Topology) [2]string {
	var out [2]string
	sa, sb := t.SideNATs()
	for i, side := range [][]string{sa, sb} {
		if len(side) > 0 {
			out[i] = t.Node(side[len(side)-1]).WAN
		}
	}
	return out
}

// CrossHost is the topology's cross-traffic host ("" if none).
func CrossHost(t *natlab.Topology) string {
	for _, n := range t.Nodes {
		if n.Role == natlab.RoleCross {
			return n.Name
		}
	}
	return ""
}

// apply sets the case's impairments on a lab (clearing the previous case's).
func (ic *ImpairCase) Apply(l *natlab.Lab) error {
	if err := l.ClearImpairments(); err != nil {
		return err
	}
	if ic == nil {
		return nil
	}
	core, lans := coreLinks(l.Topology)
	links, err := ic.links(core, lans, sideWANs(l.Topology))
	if err != nil {
		return err
	}
	for _, li := range links {
		if err := l.ImpairLink(li); err != nil {
			return err
		}
	}
	return nil
}
