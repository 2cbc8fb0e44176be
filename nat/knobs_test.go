package nat_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

// Every row of the table is complete: a valid default, a way to compose,
// and for natcheck and the model either coverage or a reason.
func TestKnobTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range nat.Knobs {
		t.Run(k.Name, func(t *testing.T) {
			if seen[k.Name] {
				t.Fatal("listed twice")
			}
			seen[k.Name] = true
			if err := k.Check(k.Default); err != nil {
				t.Errorf("default %q: %v", k.Default, err)
			}
			if k.Values == nil && k.Min >= k.Max {
				t.Errorf("integer knob with range %d..%d", k.Min, k.Max)
			}
			if k.Compose == "" {
				t.Error("no composition rule")
			}
			if k.Observable == (k.Unobservable != "") {
				t.Errorf("observable %v but reason %q: say why natcheck cannot observe it, or nothing", k.Observable, k.Unobservable)
			}
			if k.Modelled == (k.NotModelled != "") {
				t.Errorf("modelled %v but reason %q: say why the model ignores it, or nothing", k.Modelled, k.NotModelled)
			}
			if err := k.Check("sometimes"); err == nil {
				t.Error("accepted a nonsense value")
			}
		})
	}
}

// write renders p as a profile file from the table alone.
func write(p *nat.Profile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", p.Name)
	timers := ""
	for _, k := range nat.Knobs {
		v := k.Get(p)
		if k.Name == "port-delta" && p.PortAllocation != nat.Sequential {
			continue
		}
		if sub, ok := strings.CutPrefix(k.Name, "timers."); ok {
			timers += fmt.Sprintf("  %s: %s\n", sub, v)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", k.Name, v)
	}
	b.WriteString("timers:\n" + timers)
	return b.String()
}

// Get and set agree with the parser for every built-in profile: written
// back knob by knob from the table, each parses to the same behaviour.
func TestKnobsRoundTrip(t *testing.T) {
	ps, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !p.NAT {
			continue
		}
		q, err := nat.Parse("roundtrip", []byte(write(p)))
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.Name, err, write(p))
		}
		for _, k := range nat.Knobs {
			if k.Get(p) != k.Get(q) {
				t.Errorf("%s: %s %q became %q", p.Name, k.Name, k.Get(p), k.Get(q))
			}
		}
	}
}

func TestCompose(t *testing.T) {
	full, sym := nat.MustBuiltin("full-cone"), nat.MustBuiltin("symmetric-sequential")
	short := nat.MustBuiltin("short-syn-timeout")
	c := nat.Compose(full, sym)
	want := map[string]string{"mapping": "address-and-port-dependent", "filtering": "address-and-port-dependent",
		"port-allocation": "sequential", "port-delta": fmt.Sprint(sym.PortDelta), "hairpinning": "off",
		"unsolicited-syn": string(sym.UnsolicitedSYN)}
	for k, v := range want {
		if got := c.Get(k); got != v {
			t.Errorf("full-cone behind symmetric-sequential: %s = %s, want %s", k, got, v)
		}
	}
	if got := nat.Compose(short, full).TransitoryTimeout; got != short.TransitoryTimeout {
		t.Errorf("transitory timer %d, want the shorter %d", got, short.TransitoryTimeout)
	}
	pub := nat.Public("public")
	if !reflect.DeepEqual(nat.Compose(pub, full), full) || !reflect.DeepEqual(nat.Compose(full, pub), full) {
		t.Error("a public layer is transparent")
	}
}
