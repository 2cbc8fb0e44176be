//go:build !windows

package traversal_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/traversaltest"
)

// instantClock lets every wait elapse at once.
type instantClock struct{}

func (instantClock) Now() time.Time { return time.Now() }
func (instantClock) After(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func pairWith(t *testing.T, hub *traversaltest.Hub, method traversal.Method, clock traversal.Clock, events func(traversal.Event)) (result, result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ra, rb result
	run := func(role string, out *result) {
		defer wg.Done()
		cfg := traversal.Config{Signal: hub.Signal(role), Session: "s1", Role: role, Secret: []byte("secret"),
			Method: method, Private: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, AttemptTimeout: 2 * time.Second, Clock: clock}
		if role == rendezvous.RoleA {
			cfg.Events = events
		}
		out.conn, out.rep, out.err = traversal.Connect(ctx, cfg)
	}
	wg.Add(2)
	go run(rendezvous.RoleA, &ra)
	go run(rendezvous.RoleB, &rb)
	wg.Wait()
	return ra, rb
}

// The engine waits only through its Clock: with one that never makes it
// wait, the coordinated start (500 ms ahead here) and p2pnat's pacing
// vanish from the connect time. (Machsend is not used: without its
// responder delay both sides' SYNs cross on one host, and the initiator's
// close then resets the simultaneous open, which is why the delay exists.)
func TestInjectedClock(t *testing.T) {
	ra, rb := pairWith(t, traversaltest.NewHub(500*time.Millisecond), method.P2PNAT, instantClock{}, nil)
	if ra.err != nil || rb.err != nil {
		t.Fatal(ra.err, rb.err)
	}
	defer ra.conn.Close()
	defer rb.conn.Close()
	if ra.rep.ConnectTime > 400*time.Millisecond {
		t.Errorf("connect took %v: a wait bypassed the injected clock (the hub's start is 500 ms ahead)", ra.rep.ConnectTime)
	}
}

// A peer that lies about its candidates points A at a stranger. The stray
// connection fails authentication and is never handed out; the race goes on
// and, where a real path exists, finds it.
func TestStrayConnectionRejected(t *testing.T) {
	rogue, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	var strays atomic.Int32
	go func() {
		for {
			c, err := rogue.Accept()
			if err != nil {
				return
			}
			strays.Add(1)
			// A role byte, a nonce and a MAC that cannot be right.
			c.Write([]byte("b0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	rogueAP := netip.MustParseAddrPort(rogue.Addr().String())
	closed := netip.MustParseAddrPort("127.0.0.1:1")
	lie := func(role string, l netip.AddrPort) netip.AddrPort {
		if role == rendezvous.RoleB {
			return rogueAP // B "claims" the rogue's endpoint
		}
		return closed // and nobody can reach A's claimed endpoint
	}
	t.Run("only the stray", func(t *testing.T) {
		hub := traversaltest.NewHub(20 * time.Millisecond)
		hub.ObservedFor = lie
		before := strays.Load()
		ra, rb := pairWith(t, hub, method.Direct, nil, nil)
		if ra.err == nil || rb.err == nil {
			t.Fatal("a connection was handed out although only the stray existed")
		}
		if !errors.Is(ra.err, traversal.ErrNoPath) {
			t.Errorf("A: %v", ra.err)
		}
		if strays.Load() == before {
			t.Error("A never reached the stray endpoint")
		}
	})
	t.Run("race continues", func(t *testing.T) {
		hub := traversaltest.NewHub(20 * time.Millisecond)
		hub.ObservedFor = lie
		before := strays.Load()
		// p2pnat tries the claimed public endpoint first, the private one 20 ms later.
		ra, rb := pairWith(t, hub, method.P2PNAT, nil, nil)
		if ra.err != nil || rb.err != nil {
			t.Fatalf("the real path was not found: %v / %v", ra.err, rb.err)
		}
		defer ra.conn.Close()
		defer rb.conn.Close()
		exchange(t, ra.conn, rb.conn) // one connection, not the stray
		if strays.Load() == before {
			t.Error("A never reached the stray endpoint")
		}
	})
}

// The server vanishing mid-punch ends the wait promptly with an error.
func TestServerVanishesMidPunch(t *testing.T) {
	srv, server := loopbackServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	sig := traversal.NewRendezvousSignal(a, server, netip.AddrPort{}, cr.Session)
	done := make(chan error, 1)
	go func() {
		_, err := sig.Ready(ctx, rendezvous.AttemptID{Method: method.Machsend}, rendezvous.Candidates{Public: server})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	srv.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Ready succeeded without a server")
		}
		if !errors.Is(err, traversal.ErrPeerGone) && !errors.Is(err, rendezvous.ErrClosed) {
			t.Logf("error: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Ready hung after the server vanished")
	}
}

// A sharer's next receiver can join the moment the previous one leaves,
// while the sharer is still finishing with it: that join belongs to the
// round Next starts and must not be lost (the round would wait for a join
// that already happened), and a join and leave both before Next cancel out.
func TestJoinBeforeNextIsKept(t *testing.T) {
	_, server := loopbackServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() *rendezvous.Client {
		c, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := dial()
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	sig := traversal.NewRendezvousSignal(a, server, netip.AddrPort{}, cr.Session)
	defer sig.Stop()
	closedWithin := func(c <-chan struct{}, d time.Duration) bool {
		select {
		case <-c:
			return true
		case <-time.After(d):
			return false
		}
	}
	join := func() *rendezvous.Client {
		b := dial()
		if _, err := b.Join(ctx, cr.Session, ""); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := join()
	if !closedWithin(sig.Joined(), 2*time.Second) {
		t.Fatal("the first receiver's join was not seen")
	}
	// The first leaves and a second takes its place before Next.
	if err := first.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	second := join()
	time.Sleep(100 * time.Millisecond) // both notifications routed
	sig.Next()
	if !closedWithin(sig.Joined(), time.Second) {
		t.Fatal("the second receiver joined before Next and its round never saw it")
	}
	if closedWithin(sig.PeerGone(), 100*time.Millisecond) {
		t.Fatal("the first receiver's leaving was taken for the second's")
	}
	// The second leaves and a third joins and leaves, all before Next:
	// the round Next starts has nobody yet.
	if err := second.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	third := join()
	if err := third.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	sig.Next()
	if closedWithin(sig.Joined(), 200*time.Millisecond) {
		t.Fatal("a receiver that joined and left before Next counts as joined")
	}
}

// loopbackServer starts a rendezvous server on loopback, closed when the
// test ends (or earlier by the test).
func loopbackServer(t *testing.T) (*rendezvous.Server, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rendezvous.NewServer(rendezvous.Config{})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, netip.MustParseAddrPort(ln.Addr().String())
}
