package natlab_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/machsend/machsend/natlab"
)

func TestBuiltinTopologies(t *testing.T) {
	ts, err := natlab.BuiltinTopologies()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	for _, tp := range ts {
		have[tp.Name] = len(tp.NATs())
	}
	for name, nats := range map[string]int{"two-nat": 2, "same-lan": 1, "one-public": 1, "double-nat": 3, "hairpin": 1} {
		if got, ok := have[name]; !ok || got != nats {
			t.Errorf("topology %s: have %v with %d NATs, want %d", name, ok, got, nats)
		}
	}
}

func TestParseTopologyErrors(t *testing.T) {
	ok := `name: t
nodes:
  - {name: a, kind: host, gateway: r}
  - {name: r, kind: router}
networks:
  - {name: n, subnet: 198.18.9.0/24, members: {a: [2], r: [1]}}
`
	v6 := func(p string) string {
		return strings.Replace(ok, "subnet: 198.18.9.0/24,", "subnet: 198.18.9.0/24, subnet6: \""+p+"\",", 1)
	}
	tests := []struct{ name, doc, want string }{
		{"private range", strings.Replace(ok, "198.18.9.0/24", "10.0.0.0/24", 1), "outside the lab ranges"},
		{"rfc1918 inside lab-looking", strings.Replace(ok, "198.18.9.0/24", "192.168.1.0/24", 1), "outside the lab ranges"},
		{"wide prefix", strings.Replace(ok, "198.18.9.0/24", "198.0.0.0/8", 1), "outside the lab ranges"},
		{"unknown member", strings.Replace(ok, "r: [1]", "q: [1]", 1), "unknown member"},
		{"bad kind", strings.Replace(ok, "kind: router", "kind: toaster", 1), "kind \"toaster\""},
		{"gateway elsewhere", strings.Replace(ok, "gateway: r", "gateway: zz", 1), "gateway \"zz\""},
		{"host number reused", strings.Replace(ok, "r: [1]", "r: [2]", 1), "reused"},
		{"host number out of range", strings.Replace(ok, "r: [1]", "r: [300]", 1), "out of range"},
		{"unknown field", ok + "colour: red\n", "field colour not found"},
		{"long name", strings.ReplaceAll(ok, "{name: a,", "{name: abcdefghijklmn,"), "at most 12"},
		{"IPv6 outside the documentation prefix", v6("2001:db9::/64"), "outside the lab ranges"},
		{"IPv6 link-local", v6("fe80::/64"), "outside the lab ranges"},
		{"IPv6 wider than /64", v6("2001:db8::/48"), "/64 to /120"},
		{"IPv4 as subnet6", v6("198.18.9.0/24"), "not an IPv6 prefix"},
		{"IPv6 route without a dual-stack network", ok + "routes:\n  - {node: a, to: \"2001:db8:5::/64\", via: r}\n", "has no subnet6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natlab.ParseTopology("t.yaml", []byte(tt.doc))
			if err == nil || !errors.Is(err, natlab.ErrTopology) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrTopology containing %q", err, tt.want)
			}
		})
	}
	for _, doc := range []string{ok, v6("2001:db8:9::/64"), v6("fd00:1::/120")} {
		if _, err := natlab.ParseTopology("t.yaml", []byte(doc)); err != nil {
			t.Errorf("valid topology rejected: %v", err)
		}
	}
	if _, err := natlab.LoadTopology("moon"); !errors.Is(err, natlab.ErrUnknownTopology) {
		t.Errorf("unknown topology: %v", err)
	}
}

func FuzzParseTopology(f *testing.F) {
	f.Add([]byte("name: t\nnodes: [{name: a, kind: host}]\nnetworks: []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tp, err := natlab.ParseTopology("fuzz", b)
		if err != nil {
			if !errors.Is(err, natlab.ErrTopology) {
				t.Fatalf("error does not wrap ErrTopology: %v", err)
			}
			return
		}
		_ = tp.NATs()
	})
}
