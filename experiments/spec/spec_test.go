package spec_test

import (
	"testing"
	"time"

	"github.com/machsend/machsend/experiments/spec"
)

func TestSpecCells(t *testing.T) {
	tests := []struct {
		name, doc string
		cells     int
		wantErr   bool
	}{
		{"pairs", "name: x\nmethods: [machsend, relay]\ngroups:\n  - topology: two-nat\n    pairs: [[full-cone, none], [none, none]]\n", 4, false},
		{"product unordered", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat\n    nats: {nat-a: [full-cone, none, rfc5382], nat-b: [full-cone, none, rfc5382]}\n    unordered: [nat-a, nat-b]\n", 6, false},
		{"all profiles", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [all]}\n", 14, false},
		{"unknown profile", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [moon]}\n", 0, true},
		{"unknown method", "name: x\nmethods: [teleport]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [none]}\n", 0, true},
		{"not a NAT node", "name: x\nmethods: [auto]\ngroups:\n  - topology: one-public\n    nats: {nat-a: [none], core: [none]}\n", 0, true},
		{"pair arity", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat\n    pairs: [[none]]\n", 0, true},
		{"unknown field", "name: x\ncolour: red\ngroups: []\n", 0, true},
		{"cases", "name: x\nmethods: [auto, p2pnat]\nimpairments:\n  slow: {rtt: 100ms, loss: 1%}\n  busy: {cross: 20}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n  - topology: two-nat\n    pairs: [[none, none], [full-cone, none]]\n    cases: [none, slow]\n    repetitions: 2\n", 8, false},
		{"unknown case", "name: x\nmethods: [auto]\nimpairments:\n  slow: {rtt: 100ms}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n    cases: [fast]\n", 0, true},
		{"cross needs a cross host", "name: x\nmethods: [auto]\nimpairments:\n  busy: {cross: 20}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n    cases: [busy]\n", 0, true},
		{"bad loss", "name: x\nmethods: [auto]\nimpairments:\n  bad: {loss: 120%}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n", 0, true},
		{"ipv6 cells", "name: x\nmethods: [p2pnat, auto]\ngroups:\n  - topology: two-nat6\n    family: ip6\n    pairs: [[rst-unsolicited, full-cone]]\n  - topology: two-nat6\n    pairs: [[rst-unsolicited, full-cone]]\n", 4, false},
		{"ipv6 needs a dual-stack topology", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat\n    family: ip6\n    pairs: [[none, none]]\n", 0, true},
		{"unknown family", "name: x\nmethods: [auto]\ngroups:\n  - topology: two-nat6\n    family: ipx\n    pairs: [[none, none]]\n", 0, true},
		{"case named none", "name: x\nmethods: [auto]\nimpairments:\n  none: {rtt: 1ms}\ngroups:\n  - topology: two-nat\n    pairs: [[none, none]]\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := spec.ParseSpec("t.yaml", []byte(tt.doc))
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cells, _ := s.Cells()
			if len(cells) != tt.cells {
				t.Errorf("%d cells, want %d", len(cells), tt.cells)
			}
		})
	}
	for _, f := range []string{"../quick.yaml", "../paper.yaml"} {
		if _, err := spec.LoadSpec(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The round trip the noise probe expects from peer A to the server: the
// late side's offset is an egress delay on A's path only when A is late.
func TestServerRTT(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		ic   *spec.ImpairCase
		want time.Duration
	}{
		{nil, 0},
		{&spec.ImpairCase{RTT: 40 * ms}, 20 * ms},
		{&spec.ImpairCase{RTT: 40 * ms, Offset: 16 * ms}, 36 * ms},
		{&spec.ImpairCase{RTT: 40 * ms, Offset: -16 * ms}, 20 * ms},
		{&spec.ImpairCase{RTT: 30 * ms, WANADelay: 40 * ms, LANDelay: 5 * ms}, 65 * ms},
	} {
		if got := c.ic.ServerRTT(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.ic, got, c.want)
		}
	}
}

// An IPv6 cell is its own cell (its key names the family), and the model
// predicts it from the profiles' IPv6 firewalls: a symmetric NAT's
// firewall translates nothing, so p2pnat connects through it over IPv6
// where it fails over IPv4.
func TestIPv6CellPrediction(t *testing.T) {
	v4 := spec.Cell{Topology: "two-nat6", Profiles: map[string]string{"nat-a": "symmetric-random", "nat-b": "symmetric-random"}, Method: "p2pnat"}
	v6 := v4
	v6.Family = spec.FamilyIPv6
	if v4.Key() == v6.Key() {
		t.Fatalf("IPv4 and IPv6 cells share the key %q", v4.Key())
	}
	p4, err := spec.PredictUnder(v4, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	p6, err := spec.PredictUnder(v6, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p4.Success || !p6.Success {
		t.Errorf("p2pnat between symmetric-random NATs: IPv4 %v (%s), IPv6 %v (%s); want fails, connects", p4.Success, p4.Reason, p6.Success, p6.Reason)
	}
}
