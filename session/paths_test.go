//go:build !windows

package session_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/rendezvous/rvtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal/method"
)

// With method auto and a server that relays, a transfer starts on the
// relay and moves to the direct path the race finds: both sides report
// the relay first and then the move, and the file arrives whole. A share
// kept open serves a second receiver the same way (the race of the first
// is over before the next receiver's begins).
func TestRelayFirstThenDirect(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	src := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("relay first, then direct "), 1<<21) // 50 MiB
	if err := os.WriteFile(filepath.Join(src, "f.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sent recorder
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Auto, Events: sent.add})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	for round := 0; round < 2; round++ {
		serveErr := make(chan error, 1)
		go func() { serveErr <- sh.Serve(ctx) }()
		var got recorder
		// A receiver that takes 30 ms a chunk (1.5 s in all): the direct
		// race, a few hundred milliseconds on loopback, ends mid-transfer.
		slow := func(e session.Event) {
			if e.Kind == session.KindProgress && e.Progress.Kind == "chunk" {
				time.Sleep(30 * time.Millisecond)
			}
			got.add(e)
		}
		dst := t.TempDir()
		if err := session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Auto, Events: slow}); err != nil {
			t.Fatal(err)
		}
		if err := <-serveErr; err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dst, "share", "f.bin")); err != nil || !bytes.Equal(b, payload) {
			t.Fatalf("round %d: received file differs (%v)", round, err)
		}
		c, ok := session.First(got.evs, session.KindConnected)
		if !ok || c.Report.Method != method.Relay {
			t.Errorf("round %d: first path %+v, want the relay", round, c.Report)
		}
		if m, ok := session.First(got.evs, session.KindMoved); !ok || m.Report == nil || m.Report.Method == method.Relay {
			t.Errorf("round %d: receiver did not move to a direct path: %v", round, got.kinds())
		}
	}
	if _, ok := session.First(sent.evs, session.KindMoved); !ok {
		t.Errorf("sender did not move to a direct path: %v", sent.kinds())
	}
}

// A sharer's relay half waits at the relay before anyone joins, and the
// relay closes a half that waits longer than a token lives: the sharer
// opens it anew, so a receiver who comes after several such waits still
// starts on the relay at once.
func TestRelayHalfRenewedWhileWaiting(t *testing.T) {
	const ttl = 200 * time.Millisecond
	old := session.RelayRetryAfter
	session.RelayRetryAfter = ttl / 2
	defer func() { session.RelayRetryAfter = old }()
	srv := rvtest.Start(t, rendezvous.Config{RelayTokenTTL: ttl})
	src := filepath.Join(t.TempDir(), "late.bin")
	if err := os.WriteFile(src, []byte("for a receiver who comes late"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Auto})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- sh.Serve(ctx) }()
	time.Sleep(5 * ttl) // the sharer's half is closed and reopened several times
	var got recorder
	dst := t.TempDir()
	if err := session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Auto, Events: got.add}); err != nil {
		t.Fatal(err)
	}
	if err := <-serveErr; err != nil {
		t.Fatal(err)
	}
	c, ok := session.First(got.evs, session.KindConnected)
	if !ok || c.Report == nil {
		t.Fatalf("no connection reported: %v", got.kinds())
	}
	if c.Report.Method != method.Relay {
		t.Errorf("first path %s, want the relay", c.Report.Method)
	}
}
