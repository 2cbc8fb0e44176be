package experiments

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
	"github.com/machsend/machsend/session"
)

// TestTransferOverIPv6: in the dual-stack lab with the server on IPv6
// only, named by a host name with only an AAAA record (the lab's name
// server), a transfer goes from A to B through two RFC 6092 firewalls (the
// port-restricted-cone profile's IPv6 side): by simultaneous open
// (p2pnat), by STUNT #2's low hop-limit SYN, and by auto, which starts on
// the relay. Every path is IPv6, and the file arrives byte-identical.
func TestTransferOverIPv6(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	lab := natlabtest.New(t, "two-nat6", "port-restricted-cone")
	p, err := StartRendezvous6(context.Background(), lab, bin, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Server.Addr().Is6() {
		t.Fatalf("server on %s, want IPv6", p.Server)
	}
	// The peers name the server by a name that has only an AAAA record.
	const name = "rendezvous6.lab.test"
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
	server := fmt.Sprintf("%s:%d", name, p.Server.Port())
	dir := t.TempDir()
	file := filepath.Join(dir, "v6.bin")
	if err := WriteRandomFile(file, 1<<20+7, 6); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(file)
	for _, tc := range []struct{ method, path string }{
		{"p2pnat", "punched by p2pnat"},
		{"stunt2", "punched by stunt2"},
		{"auto", "relay"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			snd, link, err := p.Send(p.A, []string{file}, "--method", tc.method, "--server", server)
			if err != nil {
				t.Fatalf("%v\n%s", err, snd.Stderr())
			}
			defer snd.Proc.Kill()
			if !strings.Contains(link, server) {
				t.Fatalf("link %q does not name the server %s", link, server)
			}
			out := filepath.Join(dir, "out-"+tc.method)
			get, err := p.Get(p.B, link, out, "--method", tc.method)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := get.Wait(time.Minute)
			if err != nil {
				t.Fatalf("get: %v\n%s", err, get.Stderr())
			}
			if got, err := os.ReadFile(filepath.Join(out, "v6.bin")); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("received file differs (%v)", err)
			}
			e, ok := session.First(evs, session.KindConnected)
			if !ok || e.Report == nil || !e.Report.Remote.Addr().Is6() || session.PathName(e.Report) != tc.path {
				t.Fatalf("first path %+v, want %s over IPv6", e.Report, tc.path)
			}
		})
	}
}

// TestDualStackTransferIPv6Wins: the same lab with the server dual-stack
// (links name its IPv4 endpoint; hello names both). Both NATs would let
// p2pnat through in IPv4 too, so the race is between the families, and
// IPv6, which starts first (Happy Eyeballs), wins it: p2pnat connects
// over IPv6, and auto, which starts on the relay (IPv4), moves to an
// IPv6 path. The file arrives byte-identical.
func TestDualStackTransferIPv6Wins(t *testing.T) {
	natlabtest.RequireRoot(t)
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	lab := natlabtest.New(t, "two-nat6", "port-restricted-cone")
	p, err := StartRendezvousDual(context.Background(), lab, bin, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A 30 ms round trip, so that the file is still on its way over the
	// relay when the direct path authenticates.
	if err := (&spec.ImpairCase{RTT: 30 * time.Millisecond}).Apply(lab); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "dual.bin")
	if err := WriteRandomFile(file, 32<<20+3, 7); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(file)
	for _, tc := range []struct {
		method string
		kind   session.Kind // the event whose path must be IPv6
		path   string
	}{
		{"p2pnat", session.KindConnected, "punched by p2pnat"},
		{"auto", session.KindMoved, ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			snd, link, err := p.Send(p.A, []string{file}, "--method", tc.method)
			if err != nil {
				t.Fatal(err)
			}
			defer snd.Proc.Kill()
			if !strings.Contains(link, p.Server.Addr().String()) || !p.Server.Addr().Is4() {
				t.Fatalf("link %q does not name the server's IPv4 endpoint %s", link, p.Server)
			}
			out := filepath.Join(dir, "out-"+tc.method)
			get, err := p.Get(p.B, link, out, "--method", tc.method)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := get.Wait(time.Minute)
			if err != nil {
				t.Fatalf("get: %v\n%s", err, get.Stderr())
			}
			if got, err := os.ReadFile(filepath.Join(out, "dual.bin")); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("received file differs (%v)", err)
			}
			e, ok := session.First(evs, tc.kind)
			if !ok || e.Report == nil || !e.Report.Remote.Addr().Is6() || !strings.Contains(e.Report.Attempt, "@ip6/") {
				t.Fatalf("%s: %+v, want an IPv6 attempt's path", tc.kind, e.Report)
			}
			if tc.path != "" && session.PathName(e.Report) != tc.path {
				t.Errorf("path %s, want %s", session.PathName(e.Report), tc.path)
			}
		})
	}
}
