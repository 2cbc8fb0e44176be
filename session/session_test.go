//go:build !windows

package session_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/rendezvous/rvtest"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal/method"
)

// recorder collects events from several goroutines.
type recorder struct {
	mu  sync.Mutex
	evs []session.Event
}

func (r *recorder) add(e session.Event) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }

func (r *recorder) kinds() []session.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []session.Kind
	for _, e := range r.evs {
		if !slices.Contains(out, e.Kind) {
			out = append(out, e.Kind)
		}
	}
	return out
}

// Share and Fetch move a folder over loopback through the library alone,
// and report what happened as typed events that survive a JSON round trip.
func TestShareFetch(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	src := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("machsend "), 100000)
	if err := os.WriteFile(filepath.Join(src, "sub", "f.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sent, got recorder
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Direct, Events: sent.add})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	link, err := transfer.ParseLink(sh.Link.String())
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- sh.Serve(ctx) }()
	dst := t.TempDir()
	if err := session.Fetch(ctx, link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Direct, Events: got.add}); err != nil {
		t.Fatal(err)
	}
	if err := <-serveErr; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "share", "sub", "f.bin"))
	if err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("received file differs (err %v)", err)
	}
	for _, c := range []struct {
		who  string
		r    *recorder
		want []session.Kind
	}{
		{"sender", &sent, []session.Kind{session.KindSession, session.KindLink, session.KindNAT, session.KindReport, session.KindConnected, session.KindProgress, session.KindDone}},
		{"receiver", &got, []session.Kind{session.KindSession, session.KindNAT, session.KindReport, session.KindConnected, session.KindManifest, session.KindDone}},
	} {
		if k := c.r.kinds(); !isSubsequence(c.want, k) {
			t.Errorf("%s events %v, want %v in this order", c.who, k, c.want)
		}
	}
	// The events round-trip through the JSON the CLI prints.
	var buf bytes.Buffer
	w := session.NewJSONWriter(&buf)
	for _, e := range got.evs {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	back, err := session.ReadEvents(&buf)
	if err != nil || len(back) != len(got.evs) {
		t.Fatalf("read back %d of %d events (%v)", len(back), len(got.evs), err)
	}
	n, ok := session.First(back, session.KindNAT)
	if !ok || n.NAT.Mapping != nat.SeenNone {
		t.Errorf("NAT event %+v: want mapping none on loopback", n.NAT)
	}
	c, _ := session.First(back, session.KindConnected)
	if c.Report == nil || c.Report.Method != method.Direct {
		t.Errorf("connected event %+v: want a report of method direct", c.Report)
	}
}

func isSubsequence(want, got []session.Kind) bool {
	i := 0
	for _, k := range got {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	return i == len(want)
}

// A link to a session nobody shares fails with words a user can act on.
func TestFetchExpiredLink(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	link := transfer.Link{Server: srv, Session: "nosuchsession0", Secret: transfer.NewSecret()}
	err := session.Fetch(ctx, link, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{})
	if err == nil || !strings.Contains(err.Error(), "expired or is wrong") {
		t.Fatalf("Fetch = %v, want the link-expired explanation", err)
	}
}

func TestResolveServer(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		in, want, err string
	}{
		{"198.51.100.7:4000", "198.51.100.7:4000", ""},
		{"198.51.100.7", "198.51.100.7:3478", ""},
		{"localhost:4000", "127.0.0.1:4000", ""},
		{"localhost", "127.0.0.1:3478", ""},
		{"localhost:http", "", "port must be a number"},
		{"localhost:0", "", "port must be a number"},
		{":4000", "", "no host name"},
		{"[::1]:4000", "[::1]:4000", ""},
		{"2001:db8::1", "[2001:db8::1]:3478", ""},
		{"[fe80::1%eth0]:4000", "", "others can reach"},
		{"0.0.0.0:4000", "", "others can reach"},
		{"[::ffff:198.51.100.7]:4000", "198.51.100.7:4000", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := session.ResolveServer(ctx, c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ResolveServer(%q) = %v, %v; want error %q", c.in, got, err, c.err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("ResolveServer(%q) = %v, %v; want %s", c.in, got, err, c.want)
			}
		})
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add(`{"type":"nat","time":"2026-01-01T00:00:00Z","nat":{"public":"203.0.113.2","mapping":"none"}}`)
	f.Add(`{"type":"progress","progress":{"kind":"chunk","sent":-1}}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, line string) {
		for _, e := range session.ParseEvents([]string{line}) {
			_ = e.Text()
		}
	})
}

// A stranger who knows the session id but not the secret cannot join: the
// server refuses the key, the stranger is told the secret is wrong, and
// the share goes on serving the real receiver.
func TestWrongSecretCannotJoin(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := shareDirect(t, ctx, srv, sharedDir(t, []byte("only for the link's holder")))
	serveErr := make(chan error, 1)
	go func() { serveErr <- sh.Serve(ctx) }()
	stranger := sh.Link
	stranger.Secret = transfer.NewSecret()
	err := session.Fetch(ctx, stranger, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.Direct})
	if err == nil || !strings.Contains(err.Error(), "secret in this link is wrong") {
		t.Fatalf("a wrong secret: %v; want the wrong-secret explanation", err)
	}
	dst := t.TempDir()
	if err := session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Direct}); err != nil {
		t.Fatalf("the real receiver after a stranger: %v", err)
	}
	if err := <-serveErr; err != nil {
		t.Fatal(err)
	}
}

// Every way a fetch can go wrong before data flows ends with words a user
// can act on, and quickly.
func TestFetchErrorsInWords(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	src := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	var events recorder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Direct, Events: events.add})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if e, ok := session.First(events.evs, session.KindLink); !ok || !slices.Contains(e.Skipped, "share/link") {
		t.Errorf("the symlink was not listed as skipped: %+v", e)
	}
	go sh.Serve(ctx)
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp4", "127.0.0.1:0") // accepts nothing: a server that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	silent := sh.Link
	silent.Server = listener.Addr().(*net.TCPAddr).AddrPort()
	closed := sh.Link
	closed.Server = netip.MustParseAddrPort("127.0.0.1:1")
	done, stop := context.WithCancel(context.Background())
	stop()
	old := session.ServerTimeout
	session.ServerTimeout = time.Second
	defer func() { session.ServerTimeout = old }()
	cases := []struct {
		name string
		ctx  context.Context
		link transfer.Link
		ro   transfer.ReceiveOptions
		want string
	}{
		{"destination is a file", ctx, sh.Link, transfer.ReceiveOptions{Dir: filepath.Join(file, "sub")}, "cannot use"},
		{"server refuses", ctx, closed, transfer.ReceiveOptions{Dir: t.TempDir()}, "cannot reach the rendezvous server"},
		{"server silent", ctx, silent, transfer.ReceiveOptions{Dir: t.TempDir()}, "did not answer within"},
		{"interrupted", done, sh.Link, transfer.ReceiveOptions{Dir: t.TempDir()}, "running the same command again resumes"},
		{"nothing selected", ctx, sh.Link, transfer.ReceiveOptions{Dir: t.TempDir(), Select: func(transfer.Entry) bool { return false }}, "nothing in this share matches"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := session.Fetch(c.ctx, c.link, c.ro, session.Options{Method: method.Direct})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v; want it to say %q", err, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to say so", d)
			}
		})
	}
}

// A share serves receivers one after another, each over the same method as
// the first: the previous receiver leaving does not abort the next one.
func TestKeepServesReceiversInTurn(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := shareDirect(t, ctx, srv, sharedDir(t, bytes.Repeat([]byte("x"), 100000)))
	served := make(chan error, 3)
	go func() {
		for i := 0; i < 3; i++ {
			served <- sh.Serve(ctx)
		}
	}()
	for i := 0; i < 3; i++ {
		var got recorder
		if err := session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.Direct, Events: got.add}); err != nil {
			t.Fatalf("receiver %d: %v", i+1, err)
		}
		if err := <-served; err != nil {
			t.Fatalf("serving receiver %d: %v", i+1, err)
		}
		if c, ok := session.First(got.evs, session.KindConnected); !ok || c.Report.Method != method.Direct {
			t.Errorf("receiver %d connected by %+v", i+1, c.Report)
		}
	}
}

// sharedDir makes a folder "share" holding one file f with content.
func sharedDir(t *testing.T, content []byte) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

// shareDirect shares src over loopback with the direct method.
func shareDirect(t *testing.T, ctx context.Context, srv netip.AddrPort, src string) *session.Sharing {
	t.Helper()
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Direct})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh
}

// A server without a relay is named as the reason when no path works.
func TestNoRelaySaidSo(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := rendezvous.NewServer(rendezvous.Config{}) // no relay
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	srv := ln.Addr().(*net.TCPAddr).AddrPort()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, err := session.Share(ctx, srv, []string{sharedDir(t, []byte("x"))}, session.Options{Method: method.Relay})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	go sh.Serve(ctx)
	err = session.Fetch(ctx, sh.Link, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{Method: method.Relay})
	if err == nil || !strings.Contains(err.Error(), "has no relay") {
		t.Fatalf("%v; want it to say the server has no relay", err)
	}
}

// TestLinkByHostName: a server given by name stays a name in the link
// (what people share), and the receiver resolves it with the system's
// resolver ("localhost" here; the lab has no DNS).
func TestLinkByHostName(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	name := session.ServerName("LocalHost:" + strconv.Itoa(int(srv.Port())))
	if name != "localhost:"+strconv.Itoa(int(srv.Port())) {
		t.Fatalf("ServerName: %q", name)
	}
	for _, addr := range []string{srv.String(), "127.0.0.1", "::1"} {
		if got := session.ServerName(addr); got != "" {
			t.Errorf("ServerName(%q) = %q, want \"\" for an address", addr, got)
		}
	}
	src := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(src, []byte("by name"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Direct, ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if !strings.HasPrefix(sh.Link.String(), "http://"+name+"/s/") {
		t.Fatalf("link %s does not name the server", sh.Link)
	}
	link, err := transfer.ParseLink(sh.Link.String())
	if err != nil || link.Server.IsValid() || link.Host != name {
		t.Fatalf("parsed %+v, %v", link, err)
	}
	go sh.Serve(ctx)
	dst := t.TempDir()
	if err := session.Fetch(ctx, link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Direct}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f.txt")); err != nil || string(b) != "by name" {
		t.Fatalf("received %q, %v", b, err)
	}
	bad := link
	bad.Host = "no-such-host.invalid:3478"
	if err := session.Fetch(ctx, bad, transfer.ReceiveOptions{Dir: dst}, session.Options{}); err == nil || !strings.Contains(err.Error(), "cannot find the link's server") {
		t.Fatalf("unresolvable server: %v", err)
	}
}

// TestShareFetchOverTLS: a share made over a TLS rendezvous channel gives
// a link with the server's pin, and the receiver uses it; a link with
// another pin is refused before anything is said.
func TestShareFetchOverTLS(t *testing.T) {
	srv, pin := rvtest.StartTLS(t, rendezvous.Config{})
	src := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(src, []byte("over tls"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh, err := session.Share(ctx, srv, []string{src}, session.Options{Method: method.Auto, ServerPin: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if !strings.Contains(sh.Link.String(), "?pin="+pin+"#") {
		t.Fatalf("link %s lacks the pin", sh.Link)
	}
	link, err := transfer.ParseLink(sh.Link.String())
	if err != nil {
		t.Fatal(err)
	}
	forged := link
	forged.Pin = strings.Repeat("A", 43)
	if err := session.Fetch(ctx, forged, transfer.ReceiveOptions{Dir: t.TempDir()}, session.Options{}); !errors.Is(err, rendezvous.ErrPin) {
		t.Fatalf("another pin: %v", err)
	}
	go sh.Serve(ctx)
	dst := t.TempDir()
	if err := session.Fetch(ctx, link, transfer.ReceiveOptions{Dir: dst}, session.Options{Method: method.Auto}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f.txt")); err != nil || string(b) != "over tls" {
		t.Fatalf("received %q, %v", b, err)
	}
}
