package experiments

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/session"
)

// sendCode starts `machsend send --code` on a node and returns it with
// its code.
func sendCode(t *testing.T, p *LabPeers, node, path string) (*Running, string) {
	t.Helper()
	snd, err := p.Machsend(node, nil, "send", "--server", p.Server.String(), "--code", path)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if e, ok := session.First(snd.Events(), session.KindLink); ok && e.Code != "" {
			return snd, e.Code
		}
		time.Sleep(50 * time.Millisecond)
	}
	snd.Proc.Kill()
	t.Fatal("send --code printed no code")
	return nil, ""
}

// TestShortCodeThroughNATs: the real binaries in a lab of two
// port-restricted NATs: a file arrives with `get CODE`; a wrong code
// fails on both sides, and spends the code.
func TestShortCodeThroughNATs(t *testing.T) {
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "port-restricted-cone")
	srcDir := t.TempDir()
	src := filepath.Join(srcDir, "f.bin")
	if err := WriteRandomFile(src, 8<<20, 3); err != nil {
		t.Fatal(err)
	}
	snd, code := sendCode(t, p, p.A, src)
	dst := t.TempDir()
	get, err := p.Machsend(p.B, nil, "get", "--server", p.Server.String(), "-o", dst, code)
	if err != nil {
		t.Fatal(err)
	}
	evs := waitOK(t, get, "get CODE", 2*time.Minute)
	waitOK(t, snd, "send --code", time.Minute)
	if got, want := treeHashes(t, dst)["f.bin"], treeHashes(t, srcDir)["f.bin"]; got != want {
		t.Fatalf("file differs: %s vs %s", got, want)
	}
	t.Logf("code %s: path %s", code, pathOf(evs))

	// A wrong guess: both sides say so, and the right code is spent.
	snd, code = sendCode(t, p, p.A, src)
	parts := strings.Split(code, "-")
	wrong := fmt.Sprintf("%s-%s-%s", parts[0], parts[1], map[bool]string{true: "zebra", false: "zipper"}[parts[2] == "zipper"])
	// After the wrong guess the sender has given up and left, so the right
	// code finds no share any more (while it stays, the server says the
	// code was already used: rendezvous.TestCodeSessions).
	for _, c := range []struct{ code, want string }{{wrong, "does not match"}, {code, "no share has this code"}} {
		g, err := p.Machsend(p.B, nil, "get", "--server", p.Server.String(), "-o", t.TempDir(), c.code)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := g.Wait(time.Minute)
		if err == nil {
			t.Fatalf("get %s succeeded", c.code)
		}
		var msgs []string
		for _, e := range evs {
			if e.Kind == session.KindError {
				msgs = append(msgs, e.Error)
			}
		}
		if stderr := g.Stderr(); !strings.Contains(stderr, c.want) {
			t.Errorf("get %s: stderr %q, want %q (events %q)", c.code, stderr, c.want, msgs)
		}
	}
	if _, err := snd.Wait(time.Minute); err == nil {
		t.Fatal("send --code succeeded after a wrong guess")
	}
	if e, ok := session.First(snd.Events(), session.KindError); !ok || !strings.Contains(e.Error, "someone tried a wrong code") {
		t.Fatalf("the sender was not told: %+v", e)
	}
}

// TestTLSRendezvousThroughNATs: the real server with --tls-key, a sender
// given the key's pin, and a receiver that has only the link: the link
// carries the pin, both speak TLS to the server, the file arrives.
func TestTLSRendezvousThroughNATs(t *testing.T) {
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	keyFile := filepath.Join(t.TempDir(), "tls.pem")
	key, err := rendezvous.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	_, pin, err := rendezvous.SelfSignedTLS(key)
	if err != nil {
		t.Fatal(err)
	}
	p := labPeers(t, bin, "two-nat", []string{"--tls-key", keyFile}, "port-restricted-cone")
	srcDir := t.TempDir()
	src := filepath.Join(srcDir, "f.bin")
	if err := WriteRandomFile(src, 4<<20, 5); err != nil {
		t.Fatal(err)
	}
	snd, link, err := p.Send(p.A, []string{src}, "--server-pin", pin)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Proc.Kill()
	if !strings.Contains(link, "?pin="+pin+"#") {
		t.Fatalf("link %s lacks the pin", link)
	}
	dst := t.TempDir()
	get, err := p.Get(p.B, link, dst)
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, get, "get over TLS", 2*time.Minute)
	if got, want := treeHashes(t, dst)["f.bin"], treeHashes(t, srcDir)["f.bin"]; got != want {
		t.Fatalf("file differs: %s vs %s", got, want)
	}
}
