//go:build !windows

package natcheck_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natcheck"
	"github.com/machsend/machsend/rendezvous"
)

func result(knobs map[string]string) *natcheck.Result {
	r := &natcheck.Result{Server: netip.MustParseAddrPort("192.0.2.2:3478"), Layered: "no"}
	for _, k := range []string{"nat", "mapping", "port-allocation", "port-delta", "filtering", "unsolicited-syn", "simultaneous-open",
		"sequence-tracking", "icmp-time-exceeded", "timers.transitory", "timers.established", "hairpinning"} {
		if v, ok := knobs[k]; ok {
			r.Knobs = append(r.Knobs, natcheck.Knob{Name: k, Value: v, Evidence: "test: " + k})
		}
	}
	return r
}

// A written profile is one natlab accepts, unknown knobs included.
func TestProfileParses(t *testing.T) {
	cases := []struct {
		name    string
		knobs   map[string]string
		unknown []string
	}{
		{"measured port-restricted", map[string]string{"nat": "on", "mapping": "endpoint-independent", "port-allocation": "preserve",
			"filtering": "address-and-port-dependent", "unsolicited-syn": "drop", "simultaneous-open": "accept", "sequence-tracking": "liberal",
			"icmp-time-exceeded": "translate", "timers.transitory": "3", "timers.established": "unknown", "hairpinning": "off"}, []string{"timers.established"}},
		{"symmetric with unknowns", map[string]string{"nat": "on", "mapping": "address-and-port-dependent", "port-allocation": "sequential", "port-delta": "2",
			"filtering": "address-and-port-dependent", "unsolicited-syn": "rst", "simultaneous-open": "drop", "sequence-tracking": "unknown",
			"icmp-time-exceeded": "drop", "timers.transitory": "unknown", "timers.established": "unknown", "hairpinning": "off"},
			[]string{"sequence-tracking", "timers.transitory", "timers.established"}},
		{"no NAT", map[string]string{"nat": "off"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := result(c.knobs).Profile("measured")
			p, err := nat.Parse("measured.yaml", []byte(y))
			if err != nil {
				t.Fatalf("%v\n%s", err, y)
			}
			if !slices.Equal(p.Unknown, c.unknown) {
				t.Errorf("unknown knobs %v, want %v", p.Unknown, c.unknown)
			}
			if c.knobs["nat"] == "on" && (string(p.Mapping) != c.knobs["mapping"] || string(p.Filtering) != c.knobs["filtering"]) {
				t.Errorf("profile %+v from\n%s", p, y)
			}
		})
	}
}

func TestVerdicts(t *testing.T) {
	prc := result(map[string]string{"nat": "on", "mapping": "endpoint-independent", "port-allocation": "preserve",
		"filtering": "address-and-port-dependent", "unsolicited-syn": "drop", "simultaneous-open": "accept", "sequence-tracking": "liberal",
		"icmp-time-exceeded": "translate", "hairpinning": "off"})
	vs := prc.Verdicts()
	if len(vs) != len(natcheck.Peers) {
		t.Fatalf("%d verdicts", len(vs))
	}
	for _, v := range vs {
		if !slices.Contains(v.Works, "relay") {
			t.Errorf("relay fails against %s", v.Peer)
		}
		if v.Peer == "port-restricted cone" && !slices.Contains(v.Works, "p2pnat") {
			t.Errorf("p2pnat fails between two port-restricted cones: %v", v.Fails)
		}
		if v.Peer == "symmetric, random" && slices.Contains(v.Works, "p2pnat") {
			t.Errorf("p2pnat works against a random symmetric NAT from a port-restricted cone")
		}
		if len(v.Assumed) != 0 {
			t.Errorf("assumed %v with every knob measured", v.Assumed)
		}
	}
	partial := result(map[string]string{"nat": "on", "mapping": "endpoint-independent"})
	if _, assumed := partial.NAT(); len(assumed) != 7 {
		t.Errorf("assumed %v for a result with only the mapping", assumed)
	}
}

// On loopback there is no NAT: natcheck says so after one connection and
// leaves nothing open.
func TestNoNATOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rendezvous.NewServer(rendezvous.Config{})
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := natcheck.Run(ctx, natcheck.Options{Server: netip.MustParseAddrPort(ln.Addr().String())})
	if err != nil {
		t.Fatal(err)
	}
	if r.Behind || r.Get("nat") != "off" || r.LeftOpen != 0 {
		t.Errorf("loopback: behind %v, nat %q, %d sockets left open", r.Behind, r.Get("nat"), r.LeftOpen)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "nat") {
		t.Errorf("table %q, %v", b.String(), err)
	}
}

func TestServerUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := natcheck.Run(ctx, natcheck.Options{Server: addr}); err == nil {
		t.Error("natcheck ran without a server")
	}
}
