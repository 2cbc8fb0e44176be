package spec

import (
	"fmt"
	"sync"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/traversal/model"
)

// topologies caches parsed topologies by name: Predict runs once per trial.
var topologies sync.Map // string -> *natlab.Topology

// Topology loads a cell's topology (built-in name or file), once.
func Topology(name string) (*natlab.Topology, error) {
	if t, ok := topologies.Load(name); ok {
		return t.(*natlab.Topology), nil
	}
	t, err := natlab.LoadTopology(name)
	if err != nil {
		return nil, err
	}
	topologies.Store(name, t)
	return t, nil
}

// PredictUnder is the NAT model's verdict for a cell over the network ic
// describes (nil: no delay), with attempts of budget (0: the model's
// default). The NATs between the peers come from the
// topology's roles: the NATs on each peer's way out, nearest first,
// composed into the one NAT the model sees per side; peers behind the same
// NAT meet at it (hairpinning), a side without NATs is public.
func PredictUnder(c Cell, ic *ImpairCase, budget time.Duration) (model.Prediction, error) {
	topo, err := Topology(c.Topology)
	if err != nil {
		return model.Prediction{}, err
	}
	sa, sb := topo.SideNATs()
	a, err := c.chain(sa)
	if err != nil {
		return model.Prediction{}, err
	}
	kind, b := model.Separate, a
	if len(sa) > 0 && len(sb) > 0 && sa[0] == sb[0] {
		kind = model.SameNAT
	} else if b, err = c.chain(sb); err != nil {
		return model.Prediction{}, err
	}
	path := ic.Path()
	path.Budget = budget
	return model.PredictAt(kind, a, b, c.Method, path), nil
}

// chain composes the profiles of a side's NATs, nearest first (a NAT
// node the cell gives no profile, or no NAT at all, is a public address;
// in an IPv6 cell each is its profile's IPv6 firewall, nat.Firewall6).
func (c Cell) chain(nats []string) (*nat.Profile, error) {
	var out *nat.Profile
	for _, n := range nats {
		p := nat.Public("public")
		if name, ok := c.Profiles[n]; ok {
			var err error
			if p, err = nat.Load(name); err != nil {
				return nil, fmt.Errorf("cell %s: %w", c.Key(), err)
			}
			if c.Family == FamilyIPv6 { // what the node is to IPv6: a firewall
				p = p.Firewall6()
			}
		}
		if out == nil {
			out = p
		} else {
			out = nat.Compose(out, p)
		}
	}
	if out == nil {
		return nat.Public("public"), nil
	}
	return out, nil
}

// SideProfiles names the profiles of the NATs nearest peer A and peer B
// ("" for a side without a NAT, or a topology that cannot be loaded).
func (c Cell) SideProfiles() (a, b string) {
	topo, err := Topology(c.Topology)
	if err != nil {
		return "", ""
	}
	sa, sb := topo.SideNATs()
	if len(sa) > 0 {
		a = c.Profiles[sa[0]]
	}
	if len(sb) > 0 {
		b = c.Profiles[sb[0]]
	}
	return a, b
}
