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
	"github.com/machsend/machsend/traversal/model"
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
	// Offset makes peer A's packets leave its NAT this much later than
	// B's (negative: B's later): extra delay on one direction only, the
	// outermost NAT's egress onto its WAN link. It is the SYN-offset axis
	// of the race cells (see model.Path).
	Offset time.Duration `yaml:"offset" json:"offset,omitempty"`
	// Sweep is set on the cases a group's offsets made (the race curves).
	Sweep bool `yaml:"-" json:"sweep,omitempty"`

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
	for _, d := range []time.Duration{ic.RTT, ic.Jitter, ic.WANADelay, ic.WANBDelay, ic.LANDelay, ic.Offset.Abs()} {
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
	_, err = ic.links(map[string]string{"wan-a": "core", "wan-b": "core"}, nil, [2]side{{"nat-a", "wan-a"}, {"nat-b", "wan-b"}})
	return err
}

// Modelled reports whether the NAT model accounts for the case: delays
// and offsets only (no loss, jitter, rate limit or cross traffic, which it
// assumes away). Nil, the lab as built, is modelled.
func (ic *ImpairCase) Modelled() bool {
	return ic == nil || (ic.Loss == "" && ic.Jitter == 0 && ic.Rate == "" && ic.Cross == 0)
}

// ServerRTT is the round trip the case configures between peer A and the
// rendezvous server: A's side of the core twice, A's LAN link twice, and a
// positive offset once (it delays A's NAT's egress).
func (ic *ImpairCase) ServerRTT() time.Duration {
	if ic == nil {
		return 0
	}
	return ic.RTT/2 + ic.WANADelay + 2*ic.LANDelay + max(ic.Offset, 0)
}

// Path is the timing the NAT model needs from the case: how long each
// side's packets spend between its NAT's entry and the core (a quarter of
// the round trip, plus the side's own extra delay), and the offset.
func (ic *ImpairCase) Path() model.Path {
	if ic == nil {
		return model.Path{}
	}
	return model.Path{DelayA: ic.RTT/4 + ic.WANADelay/2, DelayB: ic.RTT/4 + ic.WANBDelay/2, Offset: ic.Offset}
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
	if ic.Offset != 0 {
		p = append(p, fmt.Sprintf("A's SYN %v later than B's", ic.Offset))
	}
	if ic.Cross > 0 {
		p = append(p, fmt.Sprintf("%g conn/s cross traffic", ic.Cross))
	}
	if len(p) == 0 {
		return "no impairment"
	}
	return strings.Join(p, ", ")
}

// side is one peer's outermost NAT and the core link it translates onto.
type side struct{ nat, wan string }

// links renders the case as per-direction link impairments. core maps each
// core link (a network joining a NAT or public host to the core router) to
// the router's name; lans lists host-router networks; sides are peer A's
// and peer B's outermost NATs and their core links.
func (ic *ImpairCase) links(core map[string]string, lans []string, sides [2]side) ([]natlab.LinkImpairment, error) {
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
		case sides[0].wan:
			d += ic.WANADelay / 2
		case sides[1].wan:
			d += ic.WANBDelay / 2
		}
		im := impair.Impairment{Delay: d, Jitter: jit, Loss: perLoss, Rate: ic.rate}
		if jit > 0 {
			im.Dist = ic.Dist
		}
		if perLoss > 0 && ic.Burst > 1 {
			im.Burst = ic.Burst
		}
		var dirs []dirImpairment
		if late := ic.offsetSide(sides); late.wan == nw {
			// The offset delays one direction: the late side's NAT's egress.
			slow := im
			slow.Delay += ic.Offset.Abs()
			dirs = []dirImpairment{{late.nat, slow}, {core[nw], im}}
		} else {
			dirs = []dirImpairment{{"", im}}
		}
		for _, di := range dirs {
			l, err := linkImpairment(nw, di.from, di.im)
			if err != nil {
				return nil, err
			}
			out = append(out, l...)
		}
	}
	if ic.LANDelay > 0 {
		for _, nw := range lans {
			out = append(out, natlab.LinkImpairment{Network: nw, Spec: "delay=" + ic.LANDelay.String()})
		}
	}
	return out, nil
}

// dirImpairment is an impairment of the packets one member sends on a
// network ("" for every member).
type dirImpairment struct {
	from string
	im   impair.Impairment
}

// offsetSide is the side whose NAT egress the offset delays (none when
// the offset is zero).
func (ic *ImpairCase) offsetSide(sides [2]side) side {
	switch {
	case ic.Offset > 0:
		return sides[0]
	case ic.Offset < 0:
		return sides[1]
	}
	return side{}
}

// linkImpairment renders one impairment of network nw (from one member,
// or every member when from is empty), checked by the parser; nothing for
// the zero impairment.
func linkImpairment(nw, from string, im impair.Impairment) ([]natlab.LinkImpairment, error) {
	if im.Zero() {
		return nil, nil
	}
	parsed, err := impair.Parse(im.String())
	if err != nil {
		return nil, err
	}
	return []natlab.LinkImpairment{{Network: nw, From: from, Spec: parsed.String()}}, nil
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

// sidesOf are each peer's outermost NAT and the network it translates
// onto (empty for a side without a NAT).
func sidesOf(t *natlab.Topology) [2]side {
	var out [2]side
	sa, sb := t.SideNATs()
	for i, nats := range [][]string{sa, sb} {
		if len(nats) > 0 {
			n := nats[len(nats)-1]
			out[i] = side{n, t.Node(n).WAN}
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
	links, err := ic.links(core, lans, sidesOf(l.Topology))
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
