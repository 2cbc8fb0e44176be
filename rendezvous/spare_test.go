//go:build !windows

package rendezvous

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestSpareCarriesTheFirstMessage: a joiner's spare connection to the
// server's own port becomes its relay half with the token from its join,
// and what it writes at once, before any splice, reaches the sharer's
// half right behind the relay's "ok"; the two halves then carry bytes
// both ways. A spare with a token the relay does not know fails its first
// read with ErrRelayRefused, and on a server without a relay the prefix
// buys nothing.
func TestSpareCarriesTheFirstMessage(t *testing.T) {
	_, addr := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := dial(t, addr)
	key, verifier := JoinProof([]byte("spare secret"))
	cr, err := a.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	// The sharer's half waits at the relay before anyone joins.
	ra, err := a.Relay(ctx, cr.Session)
	if err != nil {
		t.Fatal(err)
	}
	wait := dialRelayAsync(ctx, ra)

	spare := DialSpare(ctx, addr, time.Second)
	defer spare.Close()
	b := dial(t, addr)
	jr, err := b.Join(ctx, cr.Session, key)
	if err != nil || jr.Relay == nil {
		t.Fatalf("join: %v, relay %+v", err, jr.Relay)
	}
	cb, err := spare.Relay(ctx, *jr.Relay)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	if _, err := cb.Write([]byte("first")); err != nil { // before the splice
		t.Fatal(err)
	}
	ca, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	got := make([]byte, 5)
	if _, err := io.ReadFull(ca, got); err != nil || string(got) != "first" {
		t.Fatalf("the sharer's half read %q, %v", got, err)
	}
	if _, err := ca.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(cb, got[:4]); err != nil || string(got[:4]) != "back" {
		t.Fatalf("the joiner's half read %q, %v", got[:4], err)
	}
	if _, err := spare.Relay(ctx, *jr.Relay); err == nil {
		t.Error("a spare was used twice")
	}

	bad := DialSpare(ctx, addr, time.Second)
	defer bad.Close()
	cx, err := bad.Relay(ctx, RelayResult{Token: "not-a-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer cx.Close()
	if _, err := cx.Read(got); !errors.Is(err, ErrRelayRefused) {
		t.Errorf("unknown token: read %v, want ErrRelayRefused", err)
	}
}

// TestRelayPrefixNeedsARelay: on a server that does not relay, a
// connection starting with the relay prefix is an ordinary client whose
// line is not a request: it gets an error, never a splice.
func TestRelayPrefixNeedsARelay(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{})
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	spare := DialSpare(ctx, addrPortOf(ln.Addr()), time.Second)
	defer spare.Close()
	c, err := spare.Relay(ctx, RelayResult{Token: newID()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrRelayRefused) {
		t.Errorf("read %v, want ErrRelayRefused", err)
	}
	if n := s.Stats.Relays.Load(); n != 0 {
		t.Errorf("%d relays spliced", n)
	}
}
