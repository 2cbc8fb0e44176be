package traversal_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/method"

	"go.uber.org/goleak"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/traversaltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type result struct {
	conn net.Conn
	rep  *traversal.Report
	err  error
}

// pair runs Connect for both peers of a hub and returns both results.
func pair(t *testing.T, hub *traversaltest.Hub, method traversal.Method, secretA, secretB string) (result, result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ra, rb result
	run := func(role, secret string, out *result) {
		defer wg.Done()
		cfg := traversal.Config{Signal: hub.Signal(role), Session: "s1", Role: role, Secret: []byte(secret),
			Method: method, Private: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, AttemptTimeout: 2 * time.Second}
		out.conn, out.rep, out.err = traversal.Connect(ctx, cfg)
	}
	wg.Add(2)
	go run(rendezvous.RoleA, secretA, &ra)
	go run(rendezvous.RoleB, secretB, &rb)
	wg.Wait()
	return ra, rb
}

// exchange proves the two ends are one connection.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	go a.Write([]byte("ping"))
	buf := make([]byte, 4)
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("A and B do not hold the same connection: %q %v", buf, err)
	}
}

// On one host there is no NAT, so every method that does not depend on a
// NAT dropping packets connects; both peers agree on one connection.
func TestMethodsOnLoopback(t *testing.T) {
	tests := []struct {
		method traversal.Method
		path   string
	}{
		{method.LAN, "lan"},
		{method.Direct, "direct"},
		{method.Machsend, "punched"},
		{method.STUNT2, "punched"},
		{method.P2PNAT, "punched"},
		{method.Sequential, "punched"},
		{method.Relay, "relay"},
		{method.Auto, "lan"},
	}
	for _, tt := range tests {
		t.Run(string(tt.method), func(t *testing.T) {
			ra, rb := pair(t, traversaltest.NewHub(20*time.Millisecond), tt.method, "secret", "secret")
			if ra.err != nil || rb.err != nil {
				t.Fatalf("A: %v, B: %v; attempts %+v", ra.err, rb.err, ra.rep)
			}
			defer ra.conn.Close()
			defer rb.conn.Close()
			if ra.rep.Path != tt.path || rb.rep.Path != tt.path {
				t.Errorf("paths %s/%s, want %s", ra.rep.Path, rb.rep.Path, tt.path)
			}
			if ra.rep.Method != rb.rep.Method {
				t.Errorf("peers disagree: %s vs %s", ra.rep.Method, rb.rep.Method)
			}
			exchange(t, ra.conn, rb.conn)
			exchange(t, rb.conn, ra.conn)
		})
	}
}

// STUNT #2-hold needs the peer's SYN to reach the pending socket; on one
// host the peer's stack answers the held SYN with a RST first.
func TestHoldRefusedWithoutNAT(t *testing.T) {
	ra, rb := pair(t, traversaltest.NewHub(20*time.Millisecond), method.STUNT2Hold, "s", "s")
	if ra.err == nil || rb.err == nil {
		ra.conn.Close()
		rb.conn.Close()
		t.Fatal("hold connected on loopback")
	}
	if len(ra.rep.Attempts) != 2 {
		t.Errorf("want two rounds (roles swapped once), got %+v", ra.rep.Attempts)
	}
	for _, a := range ra.rep.Attempts {
		if a.Role == "" || a.Outcome == "connected" {
			t.Errorf("attempt %+v", a)
		}
	}
}

func TestWrongSecretRejected(t *testing.T) {
	ra, rb := pair(t, traversaltest.NewHub(20*time.Millisecond), method.Direct, "right", "wrong")
	if ra.err == nil || rb.err == nil {
		t.Fatal("connected with different secrets")
	}
	if !errors.Is(ra.err, traversal.ErrNoPath) {
		t.Errorf("A: %v", ra.err)
	}
	sawAuthFail := false
	for _, a := range ra.rep.Attempts {
		if a.Outcome == "auth-failed" {
			sawAuthFail = true
		}
	}
	if !sawAuthFail {
		t.Errorf("no auth-failed attempt in %+v", ra.rep.Attempts)
	}
}

// With LAN unavailable (different "public" addresses) auto falls through to
// a punched path, and with no relay that is what both agree on.
func TestAutoPrefersBetterPaths(t *testing.T) {
	hub := traversaltest.NewHub(20 * time.Millisecond)
	hub.Observed = func(l netip.AddrPort) netip.AddrPort {
		// Pretend each peer is behind its own NAT so LAN is not applicable,
		// but keep the real loopback port reachable.
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Port())
	}
	ra, rb := pair(t, hub, method.Auto, "s", "s")
	if ra.err != nil || rb.err != nil {
		t.Fatal(ra.err, rb.err)
	}
	defer ra.conn.Close()
	defer rb.conn.Close()
	if ra.rep.Method != method.LAN {
		t.Errorf("auto picked %s over LAN", ra.rep.Method)
	}
	for _, a := range ra.rep.Attempts {
		if a.Method == method.Relay && a.Outcome == "connected" {
			t.Errorf("relay ran although better paths existed")
		}
	}
}

func TestParseMethod(t *testing.T) {
	for _, s := range []string{"auto", "lan", "direct", "machsend", "stunt2", "stunt2-hold", "p2pnat", "sequential", "relay"} {
		if _, err := method.Parse(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := method.Parse("teleport"); err == nil {
		t.Error("accepted an unknown method")
	}
}

func TestPredict(t *testing.T) {
	m := netip.MustParseAddrPort("203.0.113.2:20004")
	tests := []struct {
		name string
		nat  traversal.NATInfo
		want []string
	}{
		{"independent", traversal.NATInfo{Mapping: nat.SeenIndependent, Delta: 2}, nil},
		{"sequential", traversal.NATInfo{Mapping: nat.SeenDependent, Delta: 1}, []string{"203.0.113.2:20005", "203.0.113.2:20006"}},
		{"random", traversal.NATInfo{Mapping: nat.SeenDependent}, nil},
		{"wrap", traversal.NATInfo{Mapping: nat.SeenDependent, Delta: 30000}, []string{"203.0.113.2:50004"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.nat.Predict(m)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// Behind a NAT that maps endpoint-independently, auto starts every method
// at once (each attempt's port has a mapping of its own); behind one that
// maps per destination, the LAN attempt and p2pnat start at once and the
// other punching methods wait behind p2pnat in one chain (here a path is
// found first, so none of them runs).
func TestAutoRunsMethodsAtOnce(t *testing.T) {
	for _, c := range []struct {
		mapping nat.Seen
		atOnce  bool
	}{
		{nat.SeenIndependent, true},
		{nat.SeenDependent, false},
	} {
		hub := traversaltest.NewHub(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		var ra, rb result
		run := func(role string, out *result) {
			defer wg.Done()
			cfg := traversal.Config{Signal: hub.Signal(role), Session: "s1", Role: role, Secret: []byte("s"), Method: method.Auto,
				Private: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, NAT: traversal.NATInfo{Mapping: c.mapping}, NoRelay: true}
			out.conn, out.rep, out.err = traversal.Connect(ctx, cfg)
		}
		wg.Add(2)
		go run(rendezvous.RoleA, &ra)
		go run(rendezvous.RoleB, &rb)
		wg.Wait()
		cancel()
		if ra.err != nil || rb.err != nil {
			t.Fatal(ra.err, rb.err)
		}
		ra.conn.Close()
		rb.conn.Close()
		var lan time.Time
		started := map[traversal.Method]time.Time{}
		for _, a := range ra.rep.Attempts {
			started[a.Method] = a.Start
			if a.Method == method.LAN {
				lan = a.Start
			}
		}
		for _, m := range []traversal.Method{method.P2PNAT, method.Machsend, method.STUNT2} {
			at, ran := started[m]
			switch {
			case c.atOnce && (!ran || at.Sub(lan) > 100*time.Millisecond):
				t.Errorf("mapping %s: %s started %v after the LAN attempt (ran %v), want at once", c.mapping, m, at.Sub(lan), ran)
			case !c.atOnce && m == method.P2PNAT && (!ran || at.Sub(lan) > 100*time.Millisecond):
				t.Errorf("mapping %s: p2pnat started %v after the LAN attempt (ran %v), want at once", c.mapping, at.Sub(lan), ran)
			case !c.atOnce && m != method.P2PNAT && ran:
				t.Errorf("mapping %s: %s ran beside p2pnat", c.mapping, m)
			}
		}
	}
}
