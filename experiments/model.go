package experiments

import (
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/traversal/model"
)

// modelNAT translates a natlab profile into the model's terms.
func modelNAT(p *natlab.Profile) model.NAT {
	if !p.NAT {
		return model.NAT{Name: p.Name, None: true}
	}
	return model.NAT{Name: p.Name, Mapping: p.Mapping, Allocation: p.PortAllocation, Filtering: p.Filtering,
		UnsolicitedSYN: p.UnsolicitedSYN, SimultaneousOpen: p.SimultaneousOpen, SequenceTracking: p.SequenceTracking,
		ICMPTimeExceeded: p.ICMPTimeExceeded, OutboundSYNACK: p.OutboundSYNACK, Hairpinning: p.Hairpinning}
}

// Predict is the NAT model's verdict for a cell: which NATs stand between
// the peers depends on the topology.
func Predict(c Cell) (model.Prediction, error) {
	load := func(node string) (model.NAT, error) {
		name, ok := c.Profiles[node]
		if !ok {
			return model.NAT{None: true}, nil
		}
		p, err := natlab.LoadProfile(name)
		if err != nil {
			return model.NAT{}, err
		}
		return modelNAT(p), nil
	}
	var a, b model.NAT
	var err error
	kind := model.Separate
	switch c.Topology {
	case "same-lan", "hairpin":
		kind = model.SameNAT
		a, err = load("nat")
		b = a
	case "double-nat":
		var home, cgn model.NAT
		if home, err = load("home-a"); err == nil {
			if cgn, err = load("cgn"); err == nil {
				a = model.Compose(home, cgn)
				b, err = load("nat-b")
			}
		}
	case "one-public":
		a, err = load("nat-a")
		b = model.NAT{Name: "public", None: true}
	default:
		if a, err = load("nat-a"); err == nil {
			b, err = load("nat-b")
		}
	}
	if err != nil {
		return model.Prediction{}, err
	}
	return model.Predict(kind, a, b, c.Method), nil
}
