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

// TestRelayPrefixNeedsARelay: the relay prefix makes a relay half only on
// a server that relays. Elsewhere the line is an ordinary request, and a
// malformed one (counted, and the connection closed); on a relaying
// server the same line reaches the relay and nothing is malformed.
func TestRelayPrefixNeedsARelay(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := NewServer(Config{})
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	relaying, relayAddr := startServer(t, Config{})
	for _, c := range []struct {
		s         *Server
		addr      string
		malformed int64
	}{{plain, ln.Addr().String(), 1}, {relaying, relayAddr.String(), 0}} {
		conn, err := net.Dial("tcp4", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(relayPrefix + newID() + "\n")); err != nil {
			t.Fatal(err)
		}
		// Both close the connection: the server for the bad line, the
		// relay for the unknown token.
		_ = conn.SetReadDeadline(time.Now().Add(12 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if err == nil {
			t.Fatal("the connection got an answer")
		}
		if got := c.s.Stats.Malformed.Load(); got != c.malformed {
			t.Errorf("relay %v: %d malformed lines, want %d", c.s.cfg.RelayAddr.IsValid(), got, c.malformed)
		}
		if n := c.s.Stats.Relays.Load(); n != 0 {
			t.Errorf("%d relays spliced", n)
		}
	}
}
