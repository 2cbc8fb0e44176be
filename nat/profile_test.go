package nat_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"
)

func TestParseProfileErrors(t *testing.T) {
	base := "name: x\nmapping: endpoint-independent\nport-allocation: preserve\nfiltering: address-and-port-dependent\n" +
		"unsolicited-syn: drop\nsimultaneous-open: accept\nsequence-tracking: liberal\nicmp-time-exceeded: translate\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown knob", base + "colour: blue\n", "my.yaml:9: colour: unknown knob"},
		{"bad value", strings.Replace(base, "filtering: address-and-port-dependent", "filtering: sometimes", 1), "my.yaml:4: filtering: invalid value \"sometimes\""},
		{"duplicate", base + "mapping: endpoint-independent\n", "my.yaml:9: mapping: given twice"},
		{"missing knob", strings.Replace(base, "unsolicited-syn: drop\n", "", 1), "unsolicited-syn: missing"},
		{"missing name", strings.Replace(base, "name: x\n", "", 1), "name: missing"},
		{"bad name", strings.Replace(base, "name: x", "name: X Y", 1), "my.yaml:1: name:"},
		{"preserve needs eim", strings.Replace(base, "mapping: endpoint-independent", "mapping: address-and-port-dependent", 1), "my.yaml:3: port-allocation: preserve needs"},
		{"delta without sequential", base + "port-delta: 2\n", "my.yaml:9: port-delta: only meaningful"},
		{"delta not a number", strings.Replace(base, "port-allocation: preserve", "port-allocation: sequential", 1) + "port-delta: lots\n", "my.yaml:9: port-delta: \"lots\""},
		{"timer not a number", base + "timers:\n  transitory: soon\n", "my.yaml:10: timers.transitory: \"soon\""},
		{"unknown timer", base + "timers:\n  idle: 3\n", "my.yaml:10: timers.idle: unknown timer"},
		{"timers not a map", base + "timers: 5\n", "my.yaml:9: timers: want a mapping"},
		{"not a mapping", "- a\n- b\n", "a profile is a mapping"},
		{"not yaml", "name: [\n", "my.yaml"},
		{"list value", base + "hairpinning: [on]\n", "my.yaml:9: hairpinning: want a single value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nat.Parse("my.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.doc)
			}
			if !errors.Is(err, nat.ErrProfile) {
				t.Errorf("error %v does not wrap ErrProfile", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseProfileDefaults(t *testing.T) {
	doc := "name: seq\nmapping: address-and-port-dependent\nport-allocation: sequential\nfiltering: address-and-port-dependent\n" +
		"unsolicited-syn: rst\nsimultaneous-open: rst\nsequence-tracking: strict\nicmp-time-exceeded: drop\nhairpinning: on\n"
	p, err := nat.Parse("f", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.PortDelta != 1 || p.TransitoryTimeout != 120 || p.EstablishedTimeout != 7440 || !p.Hairpinning || !p.NAT {
		t.Errorf("defaults not applied: %+v", p)
	}
}

func TestLoadProfileUnknown(t *testing.T) {
	_, err := nat.Load("no-such-nat")
	if !errors.Is(err, nat.ErrUnknownProfile) || !strings.Contains(err.Error(), "full-cone") {
		t.Errorf("got %v, want ErrUnknownProfile listing the built-ins", err)
	}
	_, err = nat.Load("/nonexistent/x.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/x.yaml") {
		t.Errorf("got %v, want an error naming the file", err)
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("name: x\nnat: off\n"))
	f.Add([]byte("name: a\nmapping: endpoint-independent\nport-allocation: sequential\nport-delta: 3\ntimers:\n  transitory: 1\n"))
	f.Add([]byte("{name: [1, 2]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := nat.Parse("fuzz", b)
		if err != nil {
			if !errors.Is(err, nat.ErrProfile) {
				t.Fatalf("error does not wrap ErrProfile: %v", err)
			}
			return
		}
		if p.Name == "" {
			t.Fatal("accepted a profile without a name")
		}
		if p.NAT && (p.Mapping == "" || p.Filtering == "") {
			t.Fatalf("accepted an incomplete NAT profile: %+v", p)
		}
	})
}

// An IPv6 firewall translates nothing (endpoint-independent, port kept)
// and keeps every filtering knob of its profile; a delayed ICMP becomes a
// drop; a public host stays public.
func TestFirewall6(t *testing.T) {
	for _, name := range []string{"symmetric-random", "no-simultaneous-open", "rst-unsolicited", "icmp-unsolicited", "strict-sequence"} {
		p, err := nat.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		f := p.Firewall6()
		if f.Mapping != nat.EndpointIndependent || f.PortAllocation != nat.Preserve || f.PortDelta != 0 {
			t.Errorf("%s: mapping %s, allocation %s, delta %d: want no translation", name, f.Mapping, f.PortAllocation, f.PortDelta)
		}
		if f.Filtering != p.Filtering || f.SimultaneousOpen != p.SimultaneousOpen || f.SequenceTracking != p.SequenceTracking ||
			f.ICMPTimeExceeded != p.ICMPTimeExceeded || f.OutboundSYNACK != p.OutboundSYNACK {
			t.Errorf("%s: a filtering knob changed: %+v from %+v", name, f, p)
		}
		want := p.UnsolicitedSYN
		if want == nat.SYNDelayedICMP {
			want = nat.SYNDrop
		}
		if f.UnsolicitedSYN != want {
			t.Errorf("%s: unsolicited SYN %s from %s, want %s", name, f.UnsolicitedSYN, p.UnsolicitedSYN, want)
		}
	}
	if pub := nat.Public("public"); pub.Firewall6() != pub {
		t.Error("a public host gained a firewall")
	}
}
