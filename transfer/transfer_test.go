package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// securePair returns the two ends of an authenticated channel over loopback
// TCP; wrapB, when set, wraps B's raw connection (fault injection).
func securePair(t testing.TB, secretA, secretB []byte, wrapB func(net.Conn) net.Conn) (*SecureConn, *SecureConn, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var a *SecureConn
	var errA error
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			errA = err
			return
		}
		a, errA = Secure(c, secretA, "sess", false)
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if wrapB != nil {
		c = wrapB(c)
	}
	b, errB := Secure(c, secretB, "sess", true)
	<-done
	if a != nil {
		t.Cleanup(func() { a.Close() })
	}
	if b != nil {
		t.Cleanup(func() { b.Close() })
	}
	return a, b, errA, errB
}

func TestSecureWrongSecret(t *testing.T) {
	_, _, errA, errB := securePair(t, secret, []byte("ffffffffffffffffffffffffffffffff"), nil)
	if !errors.Is(errA, ErrWrongSecret) || !errors.Is(errB, ErrWrongSecret) {
		t.Errorf("A: %v, B: %v; want ErrWrongSecret on both", errA, errB)
	}
}

// flipConn flips one byte of what it reads at a given position.
type flipConn struct {
	net.Conn
	at   int64
	seen int64
}

func (f *flipConn) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	if f.seen <= f.at && f.at < f.seen+int64(n) {
		p[f.at-f.seen] ^= 0x40
	}
	f.seen += int64(n)
	return n, err
}

// tree makes a source tree: nested folders, an empty file, an empty folder,
// a multi-chunk file and small files.
func tree(t testing.TB, root string, big int) []string {
	t.Helper()
	files := map[string]int{"share/a.txt": 10, "share/sub/deeper/b.bin": big, "share/empty": 0, "share/sub/c": 70000}
	for p, n := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(full, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "share/nothing-here"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{filepath.Join(root, "share")}
}

func sameTree(t *testing.T, src, dst string) {
	t.Helper()
	filepath.Walk(src, func(p string, info os.FileInfo, werr error) error {
		if werr != nil {
			t.Fatal(werr)
		}
		rel, _ := filepath.Rel(filepath.Dir(src), p)
		got, err := os.Stat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("%s missing: %v", rel, err)
			return nil
		}
		if info.IsDir() != got.IsDir() || info.Mode().Perm() != got.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, got.Mode(), info.Mode())
		}
		if !info.IsDir() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(dst, rel))
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs", rel)
			}
		}
		return nil
	})
}

type run struct {
	m        *Manifest
	sent     int64
	resumed  int64
	sendErr  error
	recvErr  error
	progress []Progress
}

// transferOnce sends srcs to dst over a fresh secure pair.
func transferOnce(t *testing.T, srcPaths []string, dst string, opts ReceiveOptions, wrapB func(net.Conn) net.Conn) run {
	t.Helper()
	m, srcs, err := BuildManifest(srcPaths)
	if err != nil {
		t.Fatal(err)
	}
	m.ChunkSize = MinChunk
	a, b, errA, errB := securePair(t, secret, secret, wrapB)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	var r run
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.sendErr = Send(context.Background(), a, m, srcs, nil)
		a.Close()
	}()
	opts.Dir = dst
	r.m, r.recvErr = Receive(context.Background(), b, opts, func(p Progress) {
		mu.Lock()
		r.progress = append(r.progress, p)
		r.sent, r.resumed = p.Sent, p.Resumed
		mu.Unlock()
	})
	b.Close()
	wg.Wait()
	return r
}

func TestRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	paths := tree(t, src, 3*MinChunk+12345)
	r := transferOnce(t, paths, dst, ReceiveOptions{}, nil)
	if r.sendErr != nil || r.recvErr != nil {
		t.Fatal(r.sendErr, r.recvErr)
	}
	sameTree(t, paths[0], dst)
	if r.sent != r.m.Total() || r.resumed != 0 {
		t.Errorf("sent %d resumed %d, total %d", r.sent, r.resumed, r.m.Total())
	}
	// Nothing is left behind but the files.
	filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
		if strings.HasSuffix(p, ".part") || strings.HasSuffix(p, ".part.json") {
			t.Errorf("leftover %s", p)
		}
		return nil
	})
	// A second run finds everything in place and transfers nothing.
	r2 := transferOnce(t, paths, dst, ReceiveOptions{}, nil)
	if r2.recvErr != nil || r2.sent != 0 {
		t.Errorf("second run: %v, sent %d", r2.recvErr, r2.sent)
	}
}

// cutConn fails reads after limit bytes, like a sender killed mid-file.
type cutConn struct {
	net.Conn
	limit int64
	n     atomic.Int64
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.n.Load() >= c.limit {
		c.Conn.Close()
		return 0, io.ErrUnexpectedEOF
	}
	if rem := c.limit - c.n.Load(); int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestResumeSendsNothingTwice(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	big := 20*MinChunk + 777
	paths := tree(t, src, big)
	r1 := transferOnce(t, paths, dst, ReceiveOptions{}, func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: int64(big / 2)} })
	if r1.recvErr == nil {
		t.Fatal("interrupted transfer reported success")
	}
	if !errors.Is(r1.recvErr, ErrPeerGone) {
		t.Errorf("interrupted: %v, want ErrPeerGone", r1.recvErr)
	}
	part := filepath.Join(dst, PartPath("share/sub/deeper/b.bin"))
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("the .part is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "share/sub/deeper/b.bin")); err == nil {
		t.Fatal("an unverified file was renamed into place")
	}
	verified := st.Size()
	r2 := transferOnce(t, paths, dst, ReceiveOptions{}, nil)
	if r2.recvErr != nil || r2.sendErr != nil {
		t.Fatal(r2.recvErr, r2.sendErr)
	}
	sameTree(t, paths[0], dst)
	if r2.resumed == 0 || r2.resumed < verified-int64(MinChunk) || r2.sent+r2.resumed != r2.m.Total()-alreadyDone(r1) {
		t.Errorf("resume: sent %d, resumed %d, verified before %d, total %d", r2.sent, r2.resumed, verified, r2.m.Total())
	}
}

// alreadyDone is what the first run completed in full (skipped on resume).
func alreadyDone(r run) int64 {
	var n int64
	for _, p := range r.progress {
		if p.Kind == "file-done" {
			n += p.FileSize
		}
	}
	return n
}

func TestTamperedInTransit(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	paths := tree(t, src, 8*MinChunk)
	// Flip a byte well inside the stream (after the handshake and manifest).
	r := transferOnce(t, paths, dst, ReceiveOptions{}, func(c net.Conn) net.Conn { return &flipConn{Conn: c, at: 300000} })
	if !errors.Is(r.recvErr, ErrTampered) {
		t.Fatalf("receiver: %v, want ErrTampered", r.recvErr)
	}
	matches, _ := filepath.Glob(filepath.Join(dst, "share/sub/deeper/*"))
	for _, m := range matches {
		if filepath.Base(m) == "b.bin" {
			t.Error("tampered file renamed into place")
		}
	}
}

func TestDestinationExists(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	paths := tree(t, src, 100)
	os.MkdirAll(filepath.Join(dst, "share"), 0o755)
	os.WriteFile(filepath.Join(dst, "share/a.txt"), []byte("mine, keep it"), 0o644)
	r := transferOnce(t, paths, dst, ReceiveOptions{}, nil)
	if !errors.Is(r.recvErr, ErrExists) {
		t.Fatalf("got %v, want ErrExists", r.recvErr)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "share/a.txt")); string(b) != "mine, keep it" {
		t.Error("existing file overwritten")
	}
	r = transferOnce(t, paths, dst, ReceiveOptions{Overwrite: true}, nil)
	if r.recvErr != nil {
		t.Fatal(r.recvErr)
	}
	sameTree(t, paths[0], dst)
}

func TestSymlinkInDestinationRefused(t *testing.T) {
	src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
	paths := tree(t, src, 100)
	os.MkdirAll(filepath.Join(dst, "share"), 0o755)
	if err := os.Symlink(outside, filepath.Join(dst, "share/sub")); err != nil {
		t.Fatal(err)
	}
	r := transferOnce(t, paths, dst, ReceiveOptions{}, nil)
	if r.recvErr == nil {
		t.Fatal("wrote through a symlink")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("files written outside the destination: %v", ents)
	}
}

func TestSelectAndList(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	paths := tree(t, src, 100)
	r := transferOnce(t, paths, dst, ReceiveOptions{ListOnly: true}, nil)
	if r.recvErr != nil || len(r.m.Files) != 8 {
		t.Fatalf("list: %v, %d entries", r.recvErr, len(r.m.Files))
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Error("--list wrote files")
	}
	r = transferOnce(t, paths, dst, ReceiveOptions{Select: func(e Entry) bool { return strings.HasSuffix(e.Path, "a.txt") }}, nil)
	if r.recvErr != nil {
		t.Fatal(r.recvErr)
	}
	if _, err := os.Stat(filepath.Join(dst, "share/a.txt")); err != nil {
		t.Error("selected file missing")
	}
	if _, err := os.Stat(filepath.Join(dst, "share/sub/c")); err == nil {
		t.Error("unselected file received")
	}
}

// hostileSender speaks the protocol with a manifest of its choosing.
func hostileSender(t *testing.T, m string) error {
	t.Helper()
	a, b, errA, errB := securePair(t, secret, secret, nil)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	go func() {
		writeFrame(a, frameManifest, []byte(m))
		io.Copy(io.Discard, a)
	}()
	_, err := Receive(context.Background(), b, ReceiveOptions{Dir: t.TempDir()}, nil)
	return err
}

func TestHostileManifests(t *testing.T) {
	h := strings.Repeat("0", 64)
	tests := []struct{ name, manifest string }{
		{"dot-dot", `{"version":3,"chunk_size":65536,"files":[{"path":"../escape","size":1,"sha256":"` + h + `"}]}`},
		{"nested dot-dot", `{"version":3,"chunk_size":65536,"files":[{"path":"a/../../b","size":1,"sha256":"` + h + `"}]}`},
		{"absolute", `{"version":3,"chunk_size":65536,"files":[{"path":"/etc/passwd","size":1,"sha256":"` + h + `"}]}`},
		{"control char", `{"version":3,"chunk_size":65536,"files":[{"path":"a\u0007b","size":1,"sha256":"` + h + `"}]}`},
		{"backslash", `{"version":3,"chunk_size":65536,"files":[{"path":"..\\x","size":1,"sha256":"` + h + `"}]}`},
		{"duplicate", `{"version":3,"chunk_size":65536,"files":[{"path":"a","size":1,"sha256":"` + h + `"},{"path":"a","size":1,"sha256":"` + h + `"}]}`},
		{"file under file", `{"version":3,"chunk_size":65536,"files":[{"path":"a","size":1,"sha256":"` + h + `"},{"path":"a/b","size":1,"sha256":"` + h + `"}]}`},
		{"huge size", `{"version":3,"chunk_size":65536,"files":[{"path":"a","size":9223372036854775807,"sha256":"` + h + `"}]}`},
		{"negative size", `{"version":3,"chunk_size":65536,"files":[{"path":"a","size":-5,"sha256":"` + h + `"}]}`},
		{"bad chunk", `{"version":3,"chunk_size":1,"files":[]}`},
		{"old protocol", `{"version":1,"chunk_size":65536,"files":[{"path":"a","size":1,"sha256":"` + h + `"}]}`},
		{"not json", `{{{`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := hostileSender(t, tt.manifest); !errors.Is(err, ErrManifest) {
				t.Errorf("got %v, want ErrManifest", err)
			}
		})
	}
	// Huge counts are refused before anything is allocated per entry.
	var b strings.Builder
	b.WriteString(`{"version":3,"chunk_size":65536,"files":[`)
	for i := 0; i <= MaxFiles; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"path":"d","dir":true}`)
	}
	b.WriteString(`]}`)
	if err := hostileSender(t, b.String()); err == nil {
		t.Error("accepted more than MaxFiles entries")
	}
}

func TestLink(t *testing.T) {
	l := Link{Secret: NewSecret(), Session: strings.Repeat("ab", 16)}
	l.Server, _ = ParseLinkServer("192.0.2.2:3478")
	if !strings.HasPrefix(l.String(), "http://192.0.2.2:3478/s/"+l.Session+"#") || !strings.HasPrefix(l.App(), "machsend://192.0.2.2:3478/"+l.Session+"#") {
		t.Fatalf("forms: %s %s", l.String(), l.App())
	}
	for _, form := range []string{l.String(), l.App(), "  " + l.App() + "\n"} {
		got, err := ParseLink(form)
		if err != nil || got.String() != l.String() || got.App() != l.App() {
			t.Fatalf("round trip of %q: %v %v", form, got, err)
		}
	}
	sid, sec := strings.Repeat("ab", 16), strings.Repeat("A", 30)
	byName, err := ParseLink("http://RV.Example.org:3478/s/" + sid + "#" + sec)
	if err != nil || byName.Host != "rv.example.org:3478" || byName.Server.IsValid() || !strings.HasPrefix(byName.App(), "machsend://rv.example.org:3478/"+sid) {
		t.Fatalf("link by host name: %+v %v", byName, err)
	}
	v6, err := ParseLink("http://[2001:db8::1]:3478/s/" + sid + "#" + sec)
	if err != nil || v6.Server != netip.MustParseAddrPort("[2001:db8::1]:3478") || !strings.Contains(v6.String(), "[2001:db8::1]:3478") {
		t.Fatalf("link to an IPv6 server: %+v %v", v6, err)
	}
	if back, err := ParseLink(v6.App()); err != nil || back.Server != v6.Server {
		t.Fatalf("IPv6 app form: %v %v", back, err)
	}
	pin := strings.Repeat("P", 42) + "A"
	pinned, err := ParseLink("http://rv.example.org:3478/s/" + sid + "?pin=" + pin + "#" + sec)
	if err != nil || pinned.Pin != pin || !strings.Contains(pinned.App(), sid+"?pin="+pin+"#") {
		t.Fatalf("link with a pin: %+v %v", pinned, err)
	}
	if back, err := ParseLink(pinned.App()); err != nil || back.String() != pinned.String() {
		t.Fatalf("pinned app form: %v %v", back, err)
	}
	bad := []string{"", "http://x",
		"http://rv.example:1/s/" + sid + "?pin=short#" + sec,
		"http://rv.example:1/s/" + sid + "?other=1#" + sec,
		"http://rv.example:1/s/" + sid + "?pin=" + pin + "&x=1#" + sec, "machsend://192.0.2.2:3478/" + sid,
		"machsend://192.0.2.2:3478/abc#" + sec, "machsend://host/" + sid + "#" + sec,
		"machsend://192.0.2.2:3478/" + sid + "#short", "machsend://192.0.2.2:0/" + sid + "#" + sec,
		"http://192.0.2.2:3478/" + sid + "#" + sec,       // the web form needs /s/
		"http://192.0.2.2:3478/x/" + sid + "#" + sec,     // another page of the server
		"http://192.0.2.2:3478/s/" + sid,                 // no secret: a link cut short
		"https://192.0.2.2:3478/s/" + sid + "#" + sec,    // no TLS rendezvous yet
		"machsend://192.0.2.2:3478/s/" + sid + "#" + sec, // the app form has no /s/
		"http://-bad.example:3478/s/" + sid + "#" + sec,
		"http://rv.example/s/" + sid + "#" + sec, // no port
		"http://rv.example:0/s/" + sid + "#" + sec,
		"http://exa_mple.org:1/s/" + sid + "#" + sec,
		"http://1.2.3.4.5:1/s/" + sid + "#" + sec,        // not an address, not a name
		"http://[fe80::1%25eth0]:1/s/" + sid + "#" + sec, // a zone names this host's link
		"http://[fe80::1%eth0]:1/s/" + sid + "#" + sec,
		"http://[::]:1/s/" + sid + "#" + sec, // unspecified
		"http://user@rv.example:1/s/" + sid + "#" + sec,
	}
	for _, s := range bad {
		if _, err := ParseLink(s); !errors.Is(err, ErrLink) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestValidHostPort(t *testing.T) {
	for s, want := range map[string]bool{
		"rv.example.org:3478": true, "localhost:1": true, "a-b.c:65535": true, "x1.example.:80": true,
		"rv.example.org": false, "rv.example.org:0": false, "rv.example.org:65536": false, "rv.example.org:08": false,
		"-a.example:1": false, "a-.example:1": false, "a..b:1": false, "1.2.3.4:1": false, "a_b.example:1": false,
		":1": false, "[::1]:1": false, strings.Repeat("a", 64) + ".example:1": false, "ex ample:1": false,
	} {
		if got := ValidHostPort(s); got != want {
			t.Errorf("ValidHostPort(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestWrongSecretTransfer(t *testing.T) {
	_, _, errA, errB := securePair(t, secret, []byte("a different secret of 32 bytes!!"), nil)
	if errA == nil || errB == nil {
		t.Fatal("handshake succeeded with the wrong secret")
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":3,"chunk_size":65536,"files":[{"path":"a/b","size":3,"sha256":"` + strings.Repeat("0", 64) + `"},{"path":"a","dir":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, e := range m.Files {
			if _, err := CleanPath(e.Path); err != nil || strings.Contains(e.Path, "..") && strings.Contains("/"+e.Path+"/", "/../") {
				t.Fatalf("accepted unsafe path %q", e.Path)
			}
		}
	})
}

func FuzzFrames(f *testing.F) {
	f.Add([]byte{frameChunk, 0, 0, 0, 12, 0, 0, 0, 1})
	f.Add(append([]byte{frameEnd, 0, 0, 0, 36, 0, 0, 0, 1}, make([]byte, 32)...))
	f.Add([]byte{frameEnd, 0, 0, 0, 4, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		var buf []byte
		for i := 0; i < 8; i++ {
			fr, nb, err := readFrame(r, MinChunk, buf)
			buf = nb
			if err != nil {
				return
			}
			switch fr.typ {
			case frameChunk:
				if c, err := parseChunk(fr.payload); err == nil && len(c.data) > MinChunk {
					t.Fatalf("chunk of %d bytes passed a %d limit", len(c.data), MinChunk)
				}
			case frameEnd:
				if e, err := parseEnd(fr.payload); err == nil && e.sum != nil && len(e.sum) != sha256.Size {
					t.Fatalf("end frame with a %d-byte checksum", len(e.sum))
				}
			}
		}
	})
}

func FuzzParseLink(f *testing.F) {
	f.Add("machsend://192.0.2.2:3478/" + strings.Repeat("ab", 16) + "#" + strings.Repeat("A", 43))
	f.Add("http://192.0.2.2:3478/s/" + strings.Repeat("ab", 16) + "#" + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			return
		}
		if len(l.Secret) < 16 || len(l.Session) != 32 {
			t.Fatalf("accepted weak link %q", s)
		}
		for _, form := range []string{l.String(), l.App()} {
			if back, err := ParseLink(form); err != nil || back.String() != l.String() {
				t.Fatalf("re-render %q of %q does not parse back: %v", form, s, err)
			}
		}
	})
}
