package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
)

// A share serves several receivers at once: the creator attaches more
// connections with its owner token (a stranger's token, even one holding
// the join key, is refused), each joiner takes a pair of its own, punches
// stay within their pair, and leaving ends only what it should.
func TestPairsServeReceiversAtOnce(t *testing.T) {
	srv, addr := startServer(t, Config{MaxPairs: 2})
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")
	key, verifier := JoinProof(secret)
	a1, a2 := dial(t, addr), dial(t, addr)
	cr, err := a1.Create(ctx, verifier)
	if err != nil {
		t.Fatal(err)
	}
	id := cr.Session
	for name, tok := range map[string]string{"join key": key, "none": "", "other": hexOf(1)} {
		if _, err := a2.Attach(ctx, id, tok); !errors.Is(err, ErrWrongKey) {
			t.Errorf("attach with %s as the owner token: %v, want refused as a wrong key", name, err)
		}
	}
	if _, err := a2.Attach(ctx, id, cr.Owner); err != nil {
		t.Fatalf("attach with the owner token: %v", err)
	}
	if _, err := dial(t, addr).Attach(ctx, id, cr.Owner); !errors.Is(err, ErrLimit) {
		t.Errorf("a third pair beyond MaxPairs 2: %v, want the limit", err)
	}
	b1, b2, b3 := dial(t, addr), dial(t, addr), dial(t, addr)
	for _, b := range []*Client{b1, b2} {
		if _, err := b.Join(ctx, id, key); err != nil {
			t.Fatal(err)
		}
	}
	next(t, a1, NotifyPeerJoined)
	next(t, a2, NotifyPeerJoined)
	if _, err := b3.Join(ctx, id, key); !errors.Is(err, ErrSessionFull) {
		t.Errorf("a receiver with every pair busy: %v, want session full", err)
	}

	// Each pair's punch pairs its own two members.
	at := AttemptID{Method: "machsend"}
	lo := func(port uint16) Candidates { return Candidates{Public: netip.AddrPortFrom(addr.Addr(), port)} }
	for i, c := range []*Client{a1, b1, a2, b2} {
		if err := c.Ready(ctx, ReadyParams{Session: id, Attempt: at, Candidates: lo(uint16(4000 + i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []struct {
		c    *Client
		peer uint16
	}{{a1, 4001}, {b1, 4000}, {a2, 4003}, {b2, 4002}} {
		var g PunchGo
		if err := json.Unmarshal(next(t, w.c, NotifyPunch), &g); err != nil {
			t.Fatal(err)
		}
		if g.Peer.Public.Port() != w.peer {
			t.Errorf("punch.go names peer port %d, want %d (its own pair)", g.Peer.Public.Port(), w.peer)
		}
	}

	// Relay tokens splice within a pair only.
	r1, err := a1.Relay(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a2.Relay(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Token == r2.Token {
		t.Error("two pairs share a relay token")
	}

	// The second receiver leaves: its sender connection is told, the
	// first pair goes on, and the freed place takes the waiting receiver.
	if err := b2.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	next(t, a2, NotifyPeerLeft)
	if _, err := b3.Join(ctx, id, key); err != nil {
		t.Errorf("the waiting receiver after a place freed: %v", err)
	}
	// An attached sender connection leaving ends its pair and tells its
	// receiver; the creator leaving ends the share for everyone.
	if err := a2.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	next(t, b3, NotifyPeerLeft)
	if err := a1.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	next(t, b1, NotifyPeerLeft)
	if n := srv.SessionCount(); n != 0 {
		t.Errorf("%d sessions after the creator left", n)
	}
}

// hexOf is a 64-hex-digit string of byte b.
func hexOf(b byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 64)
	for i := range out {
		out[i] = digits[b&15]
	}
	return string(out)
}
