package natlab_test

import (
	"bytes"
	"context"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/measure"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// A frame's copies on the two sides of a NAT carry timestamps microseconds
// apart, even while every CPU is busy and the capture goroutines read late:
// the kernel stamps frames, not the reader. (With time.Now() after the read
// the copies were 150-280 ms apart on a loaded machine.)
func TestCaptureTimestampsFromKernel(t *testing.T) {
	l := natlabtest.New(t, "two-nat", "linux-default")
	capLAN, err := l.Capture("nat-a", "lan-a", "")
	if err != nil {
		t.Fatal(err)
	}
	capWAN, err := l.Capture("nat-a", "wan-a", "")
	if err != nil {
		t.Fatal(err)
	}
	before := natlab.UserTimestamps.Load()
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	var busy sync.WaitGroup
	for i := 0; i < 4*runtime.GOMAXPROCS(0); i++ { // bounded: ends with ctx
		busy.Add(1)
		go func() {
			defer busy.Done()
			for ctx.Err() == nil {
			}
		}()
	}
	a, rv := node(t, l, "a"), node(t, l, "rv")
	if _, err := measure.Datagrams(a.Handle, rv.Handle, netip.AddrPortFrom(rv.Addr(), 7400), 200, 64, 200, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stop()
	busy.Wait()
	if err := capLAN.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := capWAN.Stop(); err != nil {
		t.Fatal(err)
	}
	lan := udpPayloadTimes(capLAN.Packets())
	wan := udpPayloadTimes(capWAN.Packets())
	matched, worst := 0, time.Duration(0)
	for payload, tl := range lan {
		tw, ok := wan[payload]
		if !ok {
			continue
		}
		matched++
		d := tw.Sub(tl)
		if d < 0 {
			t.Errorf("a datagram left the NAT %v before it arrived", -d)
		}
		worst = max(worst, d)
	}
	t.Logf("%d datagrams seen on both sides; largest LAN-to-WAN gap %v", matched, worst)
	if matched < 150 {
		t.Fatalf("only %d of 200 datagrams seen on both sides", matched)
	}
	if worst > 5*time.Millisecond {
		t.Errorf("copies of one datagram %v apart: not the kernel's timestamps", worst)
	}
	if n := natlab.UserTimestamps.Load() - before; n != 0 {
		t.Errorf("%d frames had no kernel timestamp", n)
	}
}

// udpPayloadTimes maps each UDP payload to the time its frame was captured.
func udpPayloadTimes(pkts []natlab.CapturedPacket) map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range pkts {
		if u, ok := p.Decode().Layer(layers.LayerTypeUDP).(*layers.UDP); ok && len(u.Payload) > 0 {
			out[string(bytes.Clone(u.Payload))] = p.Time
		}
	}
	return out
}
