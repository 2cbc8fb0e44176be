package experiments

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
)

// TestServerByName: the sender names the rendezvous server by host name,
// which both lab hosts resolve through a name server inside the lab
// (their own /etc/resolv.conf, in a mount namespace of their own). The
// link carries the name, and the receiver behind the other NAT resolves
// it and gets the file byte for byte. A name the lab's server does not
// know is reported in words, with a non-zero exit.
func TestServerByName(t *testing.T) {
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	p := labPeers(t, bin, "two-nat", nil, "port-restricted-cone", "port-restricted-cone")
	const name = "rendezvous.lab.test"
	dns, err := p.Lab.ServeDNS(p.RV, map[string][]netip.Addr{name: {p.Server.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	for _, n := range []string{p.A, p.B} {
		if err := p.Lab.UseResolver(n, dns.Addr.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "by-name.bin")
	if err := WriteRandomFile(file, 1<<20+3, 5); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("%s:%d", name, p.Server.Port())
	snd, link, err := p.Send(p.A, []string{file}, "--server", server)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Proc.Kill()
	if !strings.Contains(link, server) {
		t.Fatalf("link %q does not name the server %s", link, server)
	}
	out := filepath.Join(dir, "out")
	get, err := p.Get(p.B, link, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get.Wait(time.Minute); err != nil {
		t.Fatalf("get by name: %v\n%s", err, get.Stderr())
	}
	want, _ := os.ReadFile(file)
	got, err := os.ReadFile(filepath.Join(out, "by-name.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (%v)", err)
	}

	unknown := strings.Replace(link, name, "nowhere.lab.test", 1)
	bad, err := p.Get(p.B, unknown, filepath.Join(dir, "bad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Wait(time.Minute); err == nil {
		t.Fatal("get with a server name nobody knows succeeded")
	}
	if !strings.Contains(bad.Stderr(), "nowhere.lab.test") {
		t.Errorf("the error does not name the server: %q", bad.Stderr())
	}
}
