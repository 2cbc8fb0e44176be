//go:build !windows

package session_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/wiretap"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/rendezvous/rvtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal/method"
)

// shareCodeFile shares one file with a code; it returns the sharing and
// the file's bytes.
func shareCodeFile(t *testing.T, ctx context.Context, srv netip.AddrPort, o session.Options) (*session.Sharing, []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "f.bin")
	payload := bytes.Repeat([]byte("code "), 50_000)
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	sh, err := session.ShareCode(ctx, srv, []string{src}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh, payload
}

func TestCodeTransfer(t *testing.T) {
	for _, m := range []method.Method{method.Direct, method.Auto} { // auto: starts on the relay, which needs the proven key
		t.Run(string(m), func(t *testing.T) {
			srv := rvtest.Start(t, rendezvous.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sh, payload := shareCodeFile(t, ctx, srv, session.Options{Method: m})
			code, err := session.ParseCode(strings.ToUpper(" " + sh.Code + " "))
			if err != nil || code.String() != sh.Code {
				t.Fatalf("code %q parses as %v, %v", sh.Code, code, err)
			}
			served := make(chan error, 1)
			go func() { served <- sh.Serve(ctx) }()
			dst := t.TempDir()
			var got recorder
			if err := session.FetchCode(ctx, srv, code, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: m, Events: got.add}); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dst, "f.bin")); err != nil || !bytes.Equal(b, payload) {
				t.Fatalf("file differs: %v", err)
			}
			c, ok := session.First(got.evs, session.KindConnected)
			if !ok || c.Report == nil {
				t.Fatal("no connected event")
			}
			if m == method.Auto && c.Report.Path != "relay" {
				t.Errorf("auto started on %q, want the relay (the code session's pair is proven)", c.Report.Path)
			}
		})
	}
}

// TestWrongCodeSpendsIt: a wrong guess fails on both sides, before any
// path is tried, and the code does not work afterwards, right or wrong.
func TestWrongCodeSpendsIt(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, _ := shareCodeFile(t, ctx, srv, session.Options{Method: method.Direct})
	right, _ := session.ParseCode(sh.Code)
	wrong := right
	wrong.Words = []string{right.Words[0], "zipper"}
	if right.Words[1] == "zipper" {
		wrong.Words[1] = "zebra"
	}
	served := make(chan error, 1)
	go func() { served <- sh.Serve(ctx) }()
	err := session.FetchCode(ctx, srv, wrong, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.Direct})
	if !errors.Is(err, session.ErrWrongCode) || !strings.Contains(err.Error(), "spent") {
		t.Fatalf("receiver with a wrong code: %v", err)
	}
	if err := <-served; !errors.Is(err, session.ErrWrongCode) || !strings.Contains(err.Error(), "someone tried a wrong code") {
		t.Fatalf("sender: %v", err)
	}
	err = session.FetchCode(ctx, srv, right, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.Direct})
	if !errors.Is(err, rendezvous.ErrSpent) {
		t.Fatalf("the right code after a wrong guess: %v, want it spent", err)
	}
}

func TestParseCode(t *testing.T) {
	for _, bad := range []string{"", "7", "7-guitar", "7-guitar-orbit-extra", "x-guitar-orbit", "0-guitar-orbit", "-1-guitar-orbit",
		"7-guitar-notaword", "1000000-guitar-orbit", "7-guitar-orbit\x00"} {
		if _, err := session.ParseCode(bad); !errors.Is(err, session.ErrCode) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for s, want := range map[string]bool{"7-guitar-orbit": true, "12-a-b": true, "http://x/s/y#z": false, "machsend://1.2.3.4:5/x#y": false, "guitar-7": false} {
		if session.LooksLikeCode(s) != want {
			t.Errorf("LooksLikeCode(%q) != %v", s, want)
		}
	}
}

// TestServerLearnsNothingOfTheCode: everything both peers send the
// server during a code transfer holds nothing a server could test code
// guesses against offline: not the code, not its words, not any hash or
// key derived from the code alone (as a link's secret would be). The
// proxy hides the peers' addresses from the server, so they connect by
// their local candidates (method lan).
func TestServerLearnsNothingOfTheCode(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	proxy, rec := wiretap.Proxy(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, _ := shareCodeFile(t, ctx, proxy, session.Options{Method: method.LAN})
	code, _ := session.ParseCode(sh.Code)
	go sh.Serve(ctx)
	if err := session.FetchCode(ctx, proxy, code, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.LAN}); err != nil {
		t.Fatal(err)
	}
	seen := strings.ToLower(rec.String())
	if !strings.Contains(seen, `"nameplate"`) {
		t.Fatal("the recording missed the join")
	}
	var derived []string
	for _, form := range []string{sh.Code, strings.Join(code.Words, "-"), strings.Join(code.Words, ""), "machsend code v1 " + sh.Code} {
		sum := sha256.Sum256([]byte(form))
		key, verifier := rendezvous.JoinProof([]byte(form))
		derived = append(derived, form, hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]), key, verifier)
	}
	derived = append(derived, code.Words...)
	for _, d := range derived {
		if strings.Contains(seen, strings.ToLower(d)) {
			t.Errorf("the server saw %q, derived from the code alone", d)
		}
	}
}
