//go:build !windows

package traversal_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/method"
)

// dualServer starts a rendezvous server on 127.0.0.1 and ::1 that names
// both endpoints in its hello (a dual-stack server); it returns the IPv4
// one, which the peers dial.
func dualServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		ln4.Close()
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	e4, e6 := netip.MustParseAddrPort(ln4.Addr().String()), netip.MustParseAddrPort(ln6.Addr().String())
	srv := rendezvous.NewServer(rendezvous.Config{Endpoints: []netip.AddrPort{e4, e6}})
	go srv.Serve(ln4)
	go srv.Serve(ln6)
	t.Cleanup(func() { srv.Close() })
	return e4
}

// noIPv6 is a peer whose host has no IPv6 path: its observations in
// IPv6 fail.
type noIPv6 struct{ *traversal.RendezvousSignal }

func (s noIPv6) Observe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	if sockopt.Is6(local.Addr()) {
		return netip.AddrPort{}, nil, errors.New("network is unreachable")
	}
	return s.RendezvousSignal.Observe(ctx, local)
}

// dualPair runs Connect for both peers of a session on a dual-stack
// server; wrapB, if set, wraps B's signal.
func dualPair(t *testing.T, m traversal.Method, wrapB func(*traversal.RendezvousSignal) traversal.Signal) (result, result) {
	t.Helper()
	server := dualServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func() *rendezvous.Client {
		c, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Hello(ctx, nil, false); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	sa := traversal.NewRendezvousSignal(a, server, netip.AddrPort{}, cr.Session)
	sb := traversal.NewRendezvousSignal(b, server, netip.AddrPort{}, cr.Session)
	defer sa.Stop()
	defer sb.Stop()
	var sigB traversal.Signal = sb
	if wrapB != nil {
		sigB = wrapB(sb)
	}
	var wg sync.WaitGroup
	var ra, rb result
	run := func(role string, sig traversal.Signal, out *result) {
		defer wg.Done()
		cfg := traversal.Config{Signal: sig, Session: cr.Session, Role: role, Secret: []byte("s"), Method: m,
			Private: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, AttemptTimeout: 2 * time.Second, NoRelay: true}
		out.conn, out.rep, out.err = traversal.Connect(ctx, cfg)
	}
	wg.Add(2)
	go run(rendezvous.RoleA, sa, &ra)
	go run(rendezvous.RoleB, sigB, &rb)
	wg.Wait()
	return ra, rb
}

// A dual-stack session runs every attempt in both families, IPv6 first
// (RFC 8305): where both work, the IPv6 attempt connects and both peers
// keep it; its IPv4 twin starts FamilyDelay later, if at all.
func TestDualStackIPv6Wins(t *testing.T) {
	for _, m := range []traversal.Method{method.P2PNAT, method.Direct, method.LAN} {
		t.Run(string(m), func(t *testing.T) {
			ra, rb := dualPair(t, m, nil)
			if ra.err != nil || rb.err != nil {
				t.Fatalf("A: %v, B: %v; attempts %+v", ra.err, rb.err, ra.rep)
			}
			defer ra.conn.Close()
			defer rb.conn.Close()
			exchange(t, ra.conn, rb.conn)
			for _, r := range []result{ra, rb} {
				if !sockopt.Is6(r.rep.Remote.Addr()) || !strings.Contains(r.rep.Attempt, "@ip6/") {
					t.Errorf("connected by %s to %s, want the IPv6 attempt", r.rep.Attempt, r.rep.Remote)
				}
			}
			families := map[string]time.Time{}
			for _, a := range ra.rep.Attempts {
				for _, f := range []string{rendezvous.FamilyIPv4, rendezvous.FamilyIPv6} {
					if strings.Contains(a.Attempt, "@"+f+"/") && families[f].IsZero() {
						families[f] = a.Start
					}
				}
			}
			v4, v6 := families[rendezvous.FamilyIPv4], families[rendezvous.FamilyIPv6]
			if v6.IsZero() {
				t.Fatalf("attempts %+v: no IPv6 attempt", ra.rep.Attempts)
			}
			// On loopback the IPv6 attempt connects within milliseconds,
			// so its IPv4 twin, due FamilyDelay later, never starts.
			if !v4.IsZero() && v4.Sub(v6) < traversal.FamilyDelay*3/4 {
				t.Errorf("the IPv4 attempt started %v after the IPv6 one, want FamilyDelay (%v)", v4.Sub(v6), traversal.FamilyDelay)
			}
		})
	}
}

// When one peer has no IPv6, it still readies its IPv6 attempts, with no
// public endpoint: both peers end them as not applicable at once (no
// waiting out a timeout), and the IPv4 twins connect.
func TestDualStackFallsBackToIPv4(t *testing.T) {
	start := time.Now()
	ra, rb := dualPair(t, method.P2PNAT, func(s *traversal.RendezvousSignal) traversal.Signal { return noIPv6{s} })
	if ra.err != nil || rb.err != nil {
		t.Fatalf("A: %v, B: %v; attempts %+v", ra.err, rb.err, ra.rep)
	}
	defer ra.conn.Close()
	defer rb.conn.Close()
	exchange(t, ra.conn, rb.conn)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v: the IPv6 attempts were waited out", took)
	}
	for _, r := range []result{ra, rb} {
		if !r.rep.Remote.Addr().Is4() || !strings.Contains(r.rep.Attempt, "@ip4/") {
			t.Errorf("connected by %s to %s, want the IPv4 attempt", r.rep.Attempt, r.rep.Remote)
		}
		for _, a := range r.rep.Attempts {
			if strings.Contains(a.Attempt, "@ip6/") && a.Outcome != "not-applicable" {
				t.Errorf("%s: %s (%s), want not-applicable", a.Attempt, a.Outcome, a.Error)
			}
		}
	}
}
