package model

import (
	"strings"
	"testing"

	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/nat"
)

// Every knob the table marks Modelled changes at least one prediction: for
// some built-in profile, some other value of the knob and some peer and
// method, the model answers differently. A knob added to the table and
// forgotten by the model fails here.
func TestModelUsesEveryModelledKnob(t *testing.T) {
	builtin, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	peers := append(builtin, nat.Public("public"))
	methods := method.Names()
	for _, k := range nat.Knobs {
		if !k.Modelled {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			if !changesSomePrediction(&k, builtin, peers, methods) {
				t.Errorf("no prediction depends on %s: the model does not use it (or mark it NotModelled with a reason)", k.Name)
			}
		})
	}
}

func changesSomePrediction(k *nat.Knob, builtin, peers []*nat.Profile, methods []string) bool {
	for _, p := range builtin {
		for _, v := range k.Values {
			if v == k.Get(p) {
				continue
			}
			q := *p
			k.Set(&q, v)
			for _, o := range peers {
				for _, m := range methods {
					for _, kind := range []string{Separate, SameNAT} {
						if Predict(kind, p, o, m) != Predict(kind, &q, o, m) {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// Every method of the table has a rule, between separate NATs and behind
// one NAT: none answers "unknown method".
func TestEveryMethodHasARule(t *testing.T) {
	prc := nat.MustBuiltin("port-restricted-cone")
	for _, m := range method.Names() {
		for _, kind := range []string{Separate, SameNAT} {
			if p := Predict(kind, prc, prc, m); strings.HasPrefix(p.Reason, "unknown method") {
				t.Errorf("%s (%s): %s", m, kind, p.Reason)
			}
		}
	}
}
