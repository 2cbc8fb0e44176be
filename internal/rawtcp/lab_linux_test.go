package rawtcp_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/machsend/machsend/internal/rawtcp"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// The test process runs outside any lab namespace: injection is refused
// there whatever the privileges.
func TestInjectionRefusedOutsideLab(t *testing.T) {
	if err := rawtcp.InLab(); !errors.Is(err, rawtcp.ErrNotLab) {
		t.Fatalf("InLab() = %v, want ErrNotLab", err)
	}
	inj, err := rawtcp.NewInjector()
	if err == nil {
		inj.Close()
		t.Fatal("NewInjector succeeded outside a lab namespace")
	}
	if !errors.Is(err, rawtcp.ErrNotLab) {
		t.Fatalf("NewInjector() = %v, want ErrNotLab", err)
	}
}

// Inside a lab host's namespace injection works: the crafted SYN-ACK is on
// the LAN. With no SYN before it, conntrack calls it invalid and NAT-A drops
// it: it never reaches the WAN, with the private address or any other.
func TestInjectInsideLab(t *testing.T) {
	natlabtest.RequireRoot(t)
	lab := natlabtest.New(t, "two-nat", "linux-default")
	a, err := lab.Node("a")
	if err != nil {
		t.Fatal(err)
	}
	rv, err := lab.Node("rv")
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(rv.Addrs()[0], 7999)
	lan, err := lab.Capture("nat-a", "lan-a", "")
	if err != nil {
		t.Fatal(err)
	}
	wan, err := lab.Capture("nat-a", "wan-a", "")
	if err != nil {
		t.Fatal(err)
	}
	const isn = 12345
	err = natlab.Do(a.Handle, func() error {
		if err := rawtcp.InLab(); err != nil {
			return err
		}
		inj, err := rawtcp.NewInjector()
		if err != nil {
			return err
		}
		defer inj.Close()
		pkt, err := rawtcp.SYNACK(netip.AddrPortFrom(a.Addr(), 40001), dst, rawtcp.SYN{ISN: isn, Window: 1000, WScale: -1}, 1, 0)
		if err != nil {
			return err
		}
		return inj.Send(pkt, dst.Addr())
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range []*natlab.Capture{lan, wan} {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(c *natlab.Capture) int {
		n := 0
		for _, p := range c.Packets() {
			if t, ok := p.Decode().Layer(layers.LayerTypeTCP).(*layers.TCP); ok && t.SYN && t.ACK && t.Seq == isn {
				n++
			}
		}
		return n
	}
	if n := count(lan); n != 1 {
		t.Errorf("the LAN saw %d injected SYN-ACKs, want 1", n)
	}
	if n := count(wan); n != 0 {
		t.Errorf("the WAN saw %d injected SYN-ACKs without a SYN before them, want 0", n)
	}
}

// A namespace named like a lab is not a lab: the root namespace bind-mounted
// as /run/netns/nl-… is refused because it carries non-lab addresses.
func TestInjectionRefusedInDisguisedRoot(t *testing.T) {
	natlabtest.RequireRoot(t)
	name := fmt.Sprintf("nl-disguise%d", os.Getpid())
	path := filepath.Join(rawtcp.NetnsDir, name)
	// This thread's namespace is the root one (the process's main thread
	// may sit elsewhere). `ip netns attach NAME ID` bind-mounts
	// /proc/ID/ns/net, and a thread id names that thread there.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if out, err := exec.Command("ip", "netns", "attach", name, strconv.Itoa(syscall.Gettid())).CombinedOutput(); err != nil {
		t.Fatalf("ip netns attach: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	err := rawtcp.InLab()
	if !errors.Is(err, rawtcp.ErrNotLab) {
		t.Fatalf("InLab() in the root namespace named %s = %v, want ErrNotLab", name, err)
	}
	if !strings.Contains(err.Error(), "natlab never creates") {
		t.Errorf("refused for the wrong reason: %v", err)
	}
}

func TestIsLabAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"198.18.1.2", true}, {"198.19.255.1", true}, {"100.64.0.1", true}, {"203.0.113.9", true},
		{"198.51.100.1", true}, {"192.0.2.3", true}, {"127.0.0.1", true}, {"::1", true},
		{"fe80::1", true}, {"2001:db8::1", true}, {"fd00::1", true},
		{"10.0.0.1", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, {"8.8.8.8", false},
		{"2a00::1", false}, {"::ffff:10.0.0.1", false},
	} {
		if got := rawtcp.IsLabAddr(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("IsLabAddr(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}
