//go:build !windows

package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/rendezvous/rvtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal/method"
)

// A share serves several receivers at the same time, each over its own
// connection and traversal: three receivers each hold their transfer open
// until all three have their manifest, which only a share serving them at
// once can satisfy. A receiver that gives up first does not end the share,
// and every receiver connects by the same method as the first.
func TestServeEachServesReceiversAtOnce(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	content := bytes.Repeat([]byte("y"), 200000)
	var shared recorder
	sh, err := session.Share(ctx, srv, []string{sharedDir(t, content)}, session.Options{Method: method.Direct, Events: shared.add})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	serveCtx, stopServing := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- sh.ServeEach(serveCtx, 3) }()

	// A receiver that leaves as soon as it sees the manifest.
	quitter, quit := context.WithCancel(ctx)
	err = session.Fetch(quitter, sh.Link, transfer.ReceiveOptions{Dir: t.TempDir(), OnManifest: func(*transfer.Manifest) { quit() }},
		session.Options{Method: method.Direct})
	if err == nil {
		t.Fatal("the receiver that quit reported success")
	}

	const n = 3
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	errs := make(chan error, n)
	dirs := make([]string, n)
	for i := range n {
		dirs[i] = t.TempDir()
		go func() {
			var got recorder
			hold := func(*transfer.Manifest) {
				arrived.Done()
				select { // every receiver has its manifest before any goes on
				case <-all:
				case <-ctx.Done():
				}
			}
			err := session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: dirs[i], OnManifest: hold},
				session.Options{Method: method.Direct, Events: got.add})
			if c, ok := session.First(got.evs, session.KindConnected); err == nil && (!ok || c.Report.Method != method.Direct) {
				err = fmt.Errorf("connected by %+v, not by the first receiver's method", c.Report)
			}
			errs <- err
		}()
	}
	for i := range n {
		if err := <-errs; err != nil {
			t.Errorf("receiver %d: %v", i+1, err)
		}
	}
	for i, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "share", "f")); err != nil || !bytes.Equal(b, content) {
			t.Errorf("receiver %d's file: %v", i+1, err)
		}
	}
	stopServing()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Errorf("ServeEach ended with %v, want the cancellation", err)
	}
	done := map[int]bool{}
	shared.mu.Lock()
	for _, e := range shared.evs {
		if e.Kind == session.KindDone {
			done[e.Receiver] = true
		}
	}
	shared.mu.Unlock()
	if len(done) != n || done[0] {
		t.Errorf("the sharer's done events name receivers %v; want %d numbered ones", done, n)
	}
}
