package rawtcp_test

import (
	"errors"
	"net/netip"
	"os"
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
