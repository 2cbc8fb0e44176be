package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// rpcCode is the server's error code behind a client's error.
func rpcCode(err error) int64 {
	for code, sentinel := range map[int64]error{CodeNoSession: ErrNoSession, CodeLimit: ErrLimit, CodeWrongKey: ErrWrongKey, CodeSpent: ErrSpent} {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	if err != nil && strings.HasSuffix(err.Error(), fmt.Sprintf("(code %d)", CodeBadState)) {
		return CodeBadState
	}
	return 0
}

// TestCodeSessions walks a code session through every rule: one join by
// nameplate, none by id, messages only between the pair and bounded, the
// key set by the creator once and proven by the joiner, and the relay
// only after that proof.
func TestCodeSessions(t *testing.T) {
	_, addr := startServer(t, Config{})
	ctx := context.Background()
	a, b, c := dial(t, addr), dial(t, addr), dial(t, addr)
	cr, err := a.CreateCode(ctx)
	if err != nil || cr.Nameplate < 1 || cr.Nameplate > 100 {
		t.Fatalf("create: %+v %v", cr, err)
	}
	if _, err := c.Join(ctx, cr.Session, ""); rpcCode(err) != CodeWrongKey {
		t.Fatalf("join by id: %v, want wrong key", err)
	}
	if _, err := b.JoinCode(ctx, cr.Nameplate+1000); rpcCode(err) != CodeNoSession {
		t.Fatalf("join an unknown nameplate: %v", err)
	}
	jr, err := b.JoinCode(ctx, cr.Nameplate)
	if err != nil || jr.Session != cr.Session || jr.Relay != nil {
		t.Fatalf("join by nameplate: %+v %v (no relay before the proof)", jr, err)
	}
	if _, err := c.JoinCode(ctx, cr.Nameplate); rpcCode(err) != CodeSpent {
		t.Fatalf("second join: %v, want spent", err)
	}
	next(t, a, NotifyPeerJoined)
	// Messages pass between the pair, both ways, and only so many.
	if err := a.Message(ctx, cr.Session, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var m MessageParams
	if err := json.Unmarshal(next(t, b, NotifyMessage), &m); err != nil || string(m.Data) != "x" {
		t.Fatalf("message: %+v %v", m, err)
	}
	if err := c.Message(ctx, cr.Session, []byte("x")); rpcCode(err) != CodeNoSession {
		t.Fatalf("message from outside the pair: %v", err)
	}
	if err := a.Message(ctx, cr.Session, make([]byte, MaxMessage+1)); rpcCode(err) != CodeLimit {
		t.Fatalf("oversized message: %v", err)
	}
	for range maxMessages {
		if err := b.Message(ctx, cr.Session, []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Message(ctx, cr.Session, []byte("y")); rpcCode(err) != CodeLimit {
		t.Fatalf("message over the cap: %v", err)
	}
	// The relay waits for the proof.
	if _, err := a.Relay(ctx, cr.Session); rpcCode(err) != CodeBadState {
		t.Fatalf("relay before the proof: %v", err)
	}
	key, verifier := JoinProof([]byte("the secret the peers agreed on!!"))
	if err := b.SetKey(ctx, cr.Session, verifier); rpcCode(err) != CodeBadState {
		t.Fatalf("the joiner setting the key: %v", err)
	}
	if err := b.Prove(ctx, cr.Session, key); rpcCode(err) != CodeBadState {
		t.Fatalf("proof before the key: %v", err)
	}
	if err := a.SetKey(ctx, cr.Session, verifier); err != nil {
		t.Fatal(err)
	}
	if err := a.SetKey(ctx, cr.Session, verifier); rpcCode(err) != CodeBadState {
		t.Fatalf("setting the key twice: %v", err)
	}
	if err := b.Prove(ctx, cr.Session, key); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Client{a, b} {
		if r, err := cl.Relay(ctx, cr.Session); err != nil || r.Token == "" {
			t.Fatalf("relay after the proof: %+v %v", r, err)
		}
	}
	if _, err := a.Attach(ctx, cr.Session, cr.Owner); err == nil {
		t.Fatal("a code session took a second pair")
	}
}

// TestCodeWrongProof: a joiner that proves a wrong key loses its place,
// and the code stays spent.
func TestCodeWrongProof(t *testing.T) {
	_, addr := startServer(t, Config{})
	ctx := context.Background()
	a, b, c := dial(t, addr), dial(t, addr), dial(t, addr)
	cr, _ := a.CreateCode(ctx)
	if _, err := b.JoinCode(ctx, cr.Nameplate); err != nil {
		t.Fatal(err)
	}
	_, verifier := JoinProof([]byte("the secret the peers agreed on!!"))
	wrong, _ := JoinProof([]byte("another secret, another guess..."))
	if err := a.SetKey(ctx, cr.Session, verifier); err != nil {
		t.Fatal(err)
	}
	if err := b.Prove(ctx, cr.Session, wrong); rpcCode(err) != CodeWrongKey {
		t.Fatalf("wrong proof: %v", err)
	}
	next(t, a, NotifyPeerLeft)
	if _, err := c.JoinCode(ctx, cr.Nameplate); rpcCode(err) != CodeSpent {
		t.Fatalf("join after a wrong proof: %v", err)
	}
}

// TestNameplatesStayShortAndFree: nameplates are unique among live code
// sessions, small, and freed with their session.
func TestNameplatesStayShortAndFree(t *testing.T) {
	s, addr := startServer(t, Config{MaxSessionsPerClient: 64})
	ctx := context.Background()
	a := dial(t, addr)
	seen := map[int]bool{}
	for range 50 {
		cr, err := a.CreateCode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[cr.Nameplate] || cr.Nameplate > 2*50+100 {
			t.Fatalf("nameplate %d (seen %v)", cr.Nameplate, seen[cr.Nameplate])
		}
		seen[cr.Nameplate] = true
	}
	a.Close()
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.nameplates) == 0
	})
}
