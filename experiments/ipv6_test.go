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
	useLabDNS(t, p, map[string][]netip.Addr{name: {p.Server.Addr()}})
	server := fmt.Sprintf("%s:%d", name, p.Server.Port())
	dir := t.TempDir()
	file := filepath.Join(dir, "v6.bin")
	if err := WriteRandomFile(file, 1<<20+7, 6); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{
		{"p2pnat", "punched by p2pnat"},
		{"stunt2", "punched by stunt2"},
		{"auto", "relay"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			evs := sendGet(t, p, file, dir, server, []string{"--method", tc.method, "--server", server}, []string{"--method", tc.method})
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
	for _, tc := range []struct {
		method string
		kind   session.Kind // the event whose path must be IPv6
		path   string
	}{
		{"p2pnat", session.KindConnected, "punched by p2pnat"},
		{"auto", session.KindMoved, ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			if !p.Server.Addr().Is4() {
				t.Fatalf("links name %s, want the server's IPv4 endpoint", p.Server)
			}
			evs := sendGet(t, p, file, dir, p.Server.String(), []string{"--method", tc.method}, []string{"--method", tc.method})
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

// useLabDNS serves names on the rendezvous node and points both peers'
// resolvers at it, until the test ends.
func useLabDNS(t *testing.T, p *LabPeers, names map[string][]netip.Addr) {
	t.Helper()
	dns, err := p.Lab.ServeDNS(p.RV, names)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	for _, n := range []string{p.A, p.B} {
		if err := p.Lab.UseResolver(n, dns.Addr.Addr()); err != nil {
			t.Fatal(err)
		}
	}
}

// sendGet sends file from A with sendFlags (its link must name server),
// gets it on B into a folder of dir with getFlags, checks that it arrived
// byte for byte and returns the receiver's events.
func sendGet(t *testing.T, p *LabPeers, file, dir, server string, sendFlags, getFlags []string) []session.Event {
	t.Helper()
	snd, link, err := p.Send(p.A, []string{file}, sendFlags...)
	if err != nil {
		t.Fatalf("%v\n%s", err, snd.Stderr())
	}
	defer snd.Proc.Kill()
	if !strings.Contains(link, server) {
		t.Fatalf("link %q does not name the server %s", link, server)
	}
	out, err := os.MkdirTemp(dir, "out-")
	if err != nil {
		t.Fatal(err)
	}
	get, err := p.Get(p.B, link, out, getFlags...)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := get.Wait(time.Minute)
	if err != nil {
		t.Fatalf("get: %v\n%s", err, get.Stderr())
	}
	want, _ := os.ReadFile(file)
	if got, err := os.ReadFile(filepath.Join(out, filepath.Base(file))); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (%v)", err)
	}
	return evs
}
