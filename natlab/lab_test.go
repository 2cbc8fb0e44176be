package natlab_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// dialFrom connects from a lab node to dst and returns the local end's view.
func dialFrom(t *testing.T, n *natlab.Node, dst netip.AddrPort) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := natlab.Do(n.Handle, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", dst.String(), 2*time.Second)
		return err
	})
	return c, err
}

func listenOn(t *testing.T, n *natlab.Node, ap netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := natlab.Do(n.Handle, func() error {
		var err error
		ln, err = net.Listen("tcp4", ap.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func node(t *testing.T, l *natlab.Lab, name string) *natlab.Node {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every built-in topology comes up, routes, translates at its NATs, and goes.
func TestTopologiesConnect(t *testing.T) {
	natlabtest.RequireRoot(t)
	tests := []struct {
		topology string
		peerB    bool // B reaches rv through a NAT (its source is translated)
	}{
		{"two-nat", true}, {"same-lan", true}, {"one-public", false}, {"double-nat", true}, {"hairpin", true}, {"two-nat6", true},
	}
	for _, tt := range tests {
		t.Run(tt.topology, func(t *testing.T) {
			l := natlabtest.New(t, tt.topology, "linux-default")
			rv := node(t, l, "rv")
			ln := listenOn(t, rv, netip.AddrPortFrom(rv.Addr(), 9000))
			for _, host := range []string{"a", "b"} {
				c, err := dialFrom(t, node(t, l, host), netip.AddrPortFrom(rv.Addr(), 9000))
				if err != nil {
					t.Fatalf("%s -> rv: %v", host, err)
				}
				s, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				seen := s.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
				private := node(t, l, host).Addr()
				translated := seen != private
				if want := host == "a" || tt.peerB; translated != want {
					t.Errorf("%s seen by rv as %s (private %s): translated=%v, want %v", host, seen, private, translated, want)
				}
				c.Close()
				s.Close()
			}
		})
	}
}

func TestRoutedNoneProfile(t *testing.T) {
	l := natlabtest.New(t, "two-nat", "none")
	b := node(t, l, "b")
	ln := listenOn(t, b, netip.AddrPortFrom(b.Addr(), 9001))
	c, err := dialFrom(t, node(t, l, "a"), netip.AddrPortFrom(b.Addr(), 9001))
	if err != nil {
		t.Fatalf("a -> b's own address with no NAT: %v", err)
	}
	defer c.Close()
	s, _ := ln.Accept()
	defer s.Close()
	if got := s.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != node(t, l, "a").Addr() {
		t.Errorf("b saw %s, want a's own address", got)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	natlabtest.RequireRoot(t)
	topo, _ := natlab.LoadTopology("two-nat")
	p, _ := nat.Load("linux-default")
	l := natlabtest.New(t, "two-nat", "linux-default")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		o    natlab.Options
		want error
		text string
	}{
		{"name exists", context.Background(), natlab.Options{Name: l.Name, Topology: topo, Default: p}, natlab.ErrLabExists, "already exists"},
		{"bad name", context.Background(), natlab.Options{Name: "Bad Name", Topology: topo, Default: p}, nil, "lower-case"},
		{"no profile", context.Background(), natlab.Options{Name: "noprof", Topology: topo}, nat.ErrProfile, "has no profile"},
		{"profile on non-NAT", context.Background(), natlab.Options{Name: "badnode", Topology: topo, Default: p,
			Profiles: map[string]*nat.Profile{"core": p}}, natlab.ErrNoNode, "not a NAT node"},
		{"interrupted mid-build", cancelled, natlab.Options{Name: "halfway", Topology: topo, Default: p}, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natlab.Up(tt.ctx, tt.o)
			if err == nil {
				t.Fatal("Up succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tt.text)
			}
			if tt.o.Name != l.Name {
				if _, err := os.Stat(filepath.Join(natlab.RecordDir, tt.o.Name+".json")); err == nil {
					t.Errorf("record of failed lab %s left behind", tt.o.Name)
				}
				ents, _ := os.ReadDir("/run/netns")
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), "nl-"+tt.o.Name+"-") {
						t.Errorf("namespace %s left behind", e.Name())
					}
				}
			}
		})
	}
	// The existing lab was not disturbed.
	if _, err := l.Conntrack("nat-a"); err != nil {
		t.Errorf("existing lab broken: %v", err)
	}
}

func TestProcessesDieWithLab(t *testing.T) {
	natlabtest.RequireRoot(t)
	topo, _ := natlab.LoadTopology("two-nat")
	p, _ := nat.Load("linux-default")
	l, err := natlab.Up(context.Background(), natlab.Options{Topology: topo, Default: p})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd := exec.Command("sh", "-c", "ip -o -4 addr show dev lan-a; sleep 300")
	cmd.Stdout = &out
	proc, err := l.Start("a", cmd)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("process survived the lab")
	}
	if !strings.Contains(out.String(), "198.18.1.2") {
		t.Errorf("process did not run inside host a: %q", out.String())
	}
	if err := syscall.Kill(proc.Cmd.Process.Pid, 0); err == nil {
		t.Errorf("pid %d still exists", proc.Cmd.Process.Pid)
	}
}

func TestCaptureWritesPcap(t *testing.T) {
	l := natlabtest.New(t, "two-nat", "linux-default")
	file := filepath.Join(t.TempDir(), "wan.pcap")
	capLAN, err := l.Capture("nat-a", "lan-a", "")
	if err != nil {
		t.Fatal(err)
	}
	capWAN, err := l.Capture("nat-a", "wan-a", file)
	if err != nil {
		t.Fatal(err)
	}
	rv := node(t, l, "rv")
	ln := listenOn(t, rv, netip.AddrPortFrom(rv.Addr(), 9002))
	c, err := dialFrom(t, node(t, l, "a"), netip.AddrPortFrom(rv.Addr(), 9002))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ln.Accept()
	c.Close()
	s.Close()
	if err := capLAN.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := capWAN.Stop(); err != nil {
		t.Fatal(err)
	}
	// The WAN side shows the SYN from the public address, the LAN side from the private one.
	synFrom := func(pkts []gopacket.Packet) string {
		for _, pk := range pkts {
			tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
			ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if tcp != nil && ip != nil && tcp.SYN && !tcp.ACK {
				return ip.SrcIP.String()
			}
		}
		return ""
	}
	var lan []gopacket.Packet
	for _, p := range capLAN.Packets() {
		lan = append(lan, p.Decode())
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("pcap unreadable: %v", err)
	}
	var wan []gopacket.Packet
	src := gopacket.NewPacketSource(r, r.LinkType())
	for pk := range src.Packets() {
		wan = append(wan, pk)
	}
	if got := synFrom(lan); got != "198.18.1.2" {
		t.Errorf("LAN-side SYN from %q", got)
	}
	if got := synFrom(wan); got != "203.0.113.2" {
		t.Errorf("WAN-side SYN from %q (from the pcap file)", got)
	}
}

func TestConntrackAndReset(t *testing.T) {
	l := natlabtest.New(t, "two-nat", "nat-a=full-cone", "nat-b=symmetric-sequential")
	rv := node(t, l, "rv")
	ln := listenOn(t, rv, netip.AddrPortFrom(rv.Addr(), 9003))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := func(host string) uint16 {
		c, err := dialFrom(t, node(t, l, host), netip.AddrPortFrom(rv.Addr(), 9003))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return 0
	}
	port("a")
	for i := 0; i < 3; i++ {
		port("b")
	}
	ents, err := l.Conntrack("nat-a")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		if e.Proto == "tcp" && e.OrigSrc.Addr() == node(t, l, "a").Addr() && e.ReplyDst.Addr() == l.Public("nat-a") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no translated entry in nat-a's conntrack: %v", ents)
	}
	snap := func() []uint16 {
		ents, _ := l.Conntrack("nat-b")
		var ps []uint16
		for _, e := range ents {
			if e.Proto == "tcp" {
				ps = append(ps, e.ReplyDst.Port())
			}
		}
		return ps
	}
	if ps := snap(); len(ps) != 3 || ps[0] != 20000 || ps[2] != 20002 {
		t.Fatalf("sequential mappings %v, want 20000..20002", ps)
	}
	// Let the closed connections' last segments pass before resetting, so
	// no straggler creates a fresh entry (and a mapping) after the flush.
	time.Sleep(300 * time.Millisecond)
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := l.Conntrack("nat-a"); len(ents) != 0 {
		t.Errorf("conntrack not flushed by Reset: %v", ents)
	}
	// The reloaded allocator starts at a fresh place (a reused lab must not
	// hand out the previous trial's ports) and still counts by the delta.
	port("b")
	port("b")
	ps := snap()
	consecutive := len(ps) == 2 && (ps[1]-ps[0] == 1 || ps[0]-ps[1] == 1 || ps[1]-ps[0] == 1999 || ps[0]-ps[1] == 1999)
	if !consecutive || min(ps[0], ps[1]) < 20000 || max(ps[0], ps[1]) >= 22000 {
		t.Errorf("after Reset the sequential allocator gave %v, want two consecutive ports in 20000-21999", ps)
	}
	if err := l.HelperErr(); err != nil {
		t.Errorf("helper: %v", err)
	}
	// Resetting to a profile without rules removes the old ones.
	none, _ := nat.Load("none")
	if err := l.SetProfile("nat-b", none); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if rules, _ := l.Rules("nat-b"); rules != "" {
		t.Errorf("none compiles to rules: %q", rules)
	}
	nb := node(t, l, "nat-b")
	natlab.Do(nb.Handle, func() error {
		out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
		if err != nil || strings.Contains(string(out), "natlab") {
			t.Errorf("old NAT rules survived a reset to none: %s %v", out, err)
		}
		return nil
	})
}

func TestCleanRemovesOnlyOrphans(t *testing.T) {
	natlabtest.RequireRoot(t)
	live := natlabtest.New(t, "two-nat", "linux-default")
	// A "crashed" owner: a lab whose holder process is killed with SIGKILL.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(self, "-test.run=^TestHelperHoldLab$")
	holder.Env = append(os.Environ(), "NATLAB_HELPER_HOLD=zz9")
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "up") {
		t.Fatalf("helper did not bring its lab up: %q", buf[:n])
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	// A namespace nobody claims.
	if err := exec.Command("ip", "netns", "add", "nl-zz8-stray").Run(); err != nil {
		t.Fatal(err)
	}
	rep, err := natlab.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Labs, ",") != "zz9" {
		t.Errorf("cleaned labs %v, want [zz9]", rep.Labs)
	}
	if !contains(rep.Namespaces, "nl-zz8-stray") {
		t.Errorf("stray namespace not removed: %v", rep.Namespaces)
	}
	if !contains(rep.Kept, live.Name) {
		t.Errorf("live lab %s not kept: %+v", live.Name, rep)
	}
	if _, err := live.Conntrack("nat-a"); err != nil {
		t.Errorf("live lab damaged by clean: %v", err)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "nl-zz") {
			t.Errorf("%s survived clean", e.Name())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestHelperHoldLab is not a test: TestCleanRemovesOnlyOrphans runs it in a
// child process that brings a lab up and is then killed.
func TestHelperHoldLab(t *testing.T) {
	name := os.Getenv("NATLAB_HELPER_HOLD")
	if name == "" {
		t.Skip("helper process only")
	}
	topo, _ := natlab.LoadTopology("two-nat")
	p, _ := nat.Load("full-cone")
	if _, err := natlab.Up(context.Background(), natlab.Options{Name: name, Topology: topo, Default: p}); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("up\n")
	time.Sleep(time.Minute)
}
