package experiments

import (
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/model"
)

// Predict is the NAT model's verdict for a cell: which NATs stand between
// the peers depends on the topology.
func Predict(c Cell) (model.Prediction, error) {
	load := func(node string) (*nat.Profile, error) {
		name, ok := c.Profiles[node]
		if !ok {
			return nat.Public("public"), nil
		}
		return nat.Load(name)
	}
	var a, b *nat.Profile
	var err error
	kind := model.Separate
	switch c.Topology {
	case "same-lan", "hairpin":
		kind = model.SameNAT
		a, err = load("nat")
		b = a
	case "double-nat":
		var home, cgn *nat.Profile
		if home, err = load("home-a"); err == nil {
			if cgn, err = load("cgn"); err == nil {
				a = nat.Compose(home, cgn)
				b, err = load("nat-b")
			}
		}
	case "one-public":
		a, err = load("nat-a")
		b = nat.Public("public")
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
