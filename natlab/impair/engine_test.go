package impair

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
)

// The engine's decisions, without a kernel: loss rates and burst lengths,
// the reordered fraction, and delays that keep their order.
func TestFate(t *testing.T) {
	const n = 200000
	cases := []struct {
		name                     string
		spec                     string
		loss, reorder, meanBurst float64
	}{
		{"no loss", "delay=10ms", 0, 0, 0},
		{"random loss", "loss=2%", 0.02, 0, 1},
		{"bursty loss", "loss=5% burst=4", 0.05, 0, 4},
		{"reorder", "delay=10ms reorder=10%", 0, 0.10, 0},
		{"all lost", "loss=100%", 1, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &dirState{imp: MustParse(c.spec), rng: rand.New(rand.NewPCG(1, 2))}
			now := time.Unix(0, 0)
			lost, reordered, bursts := 0, 0, 0
			prevLost := false
			for i := 0; i < n; i++ {
				drop, immediate, _ := d.fate(now)
				if drop {
					lost++
					if !prevLost {
						bursts++
					}
				}
				if immediate {
					reordered++
				}
				prevLost = drop
				now = now.Add(time.Microsecond)
			}
			if got := float64(lost) / n; math.Abs(got-c.loss) > 0.1*c.loss+0.0005 {
				t.Errorf("loss %.4f, configured %.4f", got, c.loss)
			}
			if got := float64(reordered) / n; math.Abs(got-c.reorder) > 0.1*c.reorder+0.0005 {
				t.Errorf("reordered %.4f, configured %.4f", got, c.reorder)
			}
			if c.meanBurst > 0 && c.loss < 1 {
				if got := float64(lost) / float64(bursts); math.Abs(got-c.meanBurst) > 0.1*c.meanBurst {
					t.Errorf("mean burst %.2f, configured %.2f", got, c.meanBurst)
				}
			}
		})
	}
}

func TestFateDelay(t *testing.T) {
	for _, dist := range []string{DistNormal, DistUniform, DistPareto} {
		t.Run(dist, func(t *testing.T) {
			d := &dirState{imp: MustParse("delay=20ms jitter=5ms dist=" + dist), rng: rand.New(rand.NewPCG(3, 4))}
			now := time.Unix(0, 0)
			var last time.Time
			var sum, sumSq float64
			const n = 100000
			xs := make([]float64, 0, n)
			// Packets far apart: no ordering constraint, so the draws show.
			for i := 0; i < n; i++ {
				_, _, due := d.fate(now)
				if due.Before(last) {
					t.Fatalf("packet %d due %v before its predecessor %v", i, due, last)
				}
				last = due
				x := float64(due.Sub(now)) / float64(time.Millisecond)
				sum += x
				sumSq += x * x
				xs = append(xs, x)
				now = now.Add(time.Second)
			}
			mean := sum / n
			sd := math.Sqrt(sumSq/n - mean*mean)
			wantSD := 5.0
			if dist == DistUniform {
				wantSD = 5 / math.Sqrt(3) // ±jitter uniformly
			}
			slices.Sort(xs)
			median := xs[n/2]
			t.Logf("%s: mean %.2f ms, median %.2f ms, sd %.2f ms", dist, mean, median, sd)
			if dist == DistPareto {
				// Shape 3: finite variance but an infinite fourth moment, so
				// the sample sd converges too slowly to test; the median of
				// xm·2^(1/3) shifted to mean 20 ms is the check.
				xm := 2 * 5 / math.Sqrt(3)
				if want := 20 + (math.Cbrt(2)-1.5)*xm; math.Abs(mean-20) > 0.3 || math.Abs(median-want) > 0.2 {
					t.Errorf("pareto mean %.2f median %.2f, want 20 and %.2f", mean, median, want)
				}
				return
			}
			if math.Abs(mean-20) > 0.3 || math.Abs(sd-wantSD) > 0.1*wantSD {
				t.Errorf("mean %.2f ms sd %.2f ms, want 20 and %.2f", mean, sd, wantSD)
			}
		})
	}
	// Packets close together keep their order under jitter.
	d := &dirState{imp: MustParse("delay=20ms jitter=5ms"), rng: rand.New(rand.NewPCG(5, 6))}
	now := time.Unix(0, 0)
	var last time.Time
	for i := 0; i < 10000; i++ {
		_, _, due := d.fate(now)
		if due.Before(last) {
			t.Fatalf("packet %d overtook its predecessor", i)
		}
		last = due
		now = now.Add(100 * time.Microsecond)
	}
}

func packetMsg(queue uint16, id uint32) netlink.Message {
	data := make([]byte, 4)
	binary.BigEndian.PutUint16(data[2:], queue)
	attr := make([]byte, 4, 12)
	binary.NativeEndian.PutUint16(attr[0:], 11)
	binary.NativeEndian.PutUint16(attr[2:], nfqaPacketHdr)
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, id)
	binary.BigEndian.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 4 // NF_INET_POST_ROUTING
	attr = append(attr, hdr[:7]...)
	attr = append(attr, 0) // padding
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgPacket)}, Data: append(data, attr...)}
}

func TestParsePacket(t *testing.T) {
	p, err := parsePacket(packetMsg(4242, 77))
	if err != nil || p.queue != 4242 || p.id != 77 {
		t.Fatalf("parsePacket = %+v, %v", p, err)
	}
	bad := []struct {
		name string
		m    netlink.Message
	}{
		{"wrong type", netlink.Message{Header: netlink.Header{Type: 2}, Data: make([]byte, 16)}},
		{"short", netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue << 8)}, Data: []byte{1}}},
		{"no header attribute", netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue << 8)}, Data: make([]byte, 4)}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if _, err := parsePacket(b.m); err == nil {
				t.Error("accepted")
			}
		})
	}
	// A verdict encodes its queue, id and verdict where the kernel reads them.
	v := verdictMsg(4242, 77, nfDrop, true)
	if v.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgVerdictBatch) ||
		binary.BigEndian.Uint16(v.Data[2:]) != 4242 || binary.BigEndian.Uint32(v.Data[8:]) != nfDrop ||
		binary.BigEndian.Uint32(v.Data[12:]) != 77 {
		t.Errorf("verdict message % x", v.Data)
	}
	if b := encode([]netlink.Message{v, v}); len(b) != 2*(16+len(v.Data)) {
		t.Errorf("two verdicts encode to %d bytes", len(b))
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(packetMsg(1, 2).Data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parsePacket(netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue << 8)}, Data: data})
	})
}

func TestImpairRules(t *testing.T) {
	got := Rules(map[string]uint16{"wan-b": 9, "wan-a": 12})
	want := "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		"-A POSTROUTING -o wan-a -m addrtype --src-type LOCAL -m conntrack --ctstate RELATED -j RETURN\n" +
		"-A POSTROUTING -o wan-a -j NFQUEUE --queue-num 12 --queue-bypass\n" +
		"-A POSTROUTING -o wan-b -m addrtype --src-type LOCAL -m conntrack --ctstate RELATED -j RETURN\n" +
		"-A POSTROUTING -o wan-b -j NFQUEUE --queue-num 9 --queue-bypass\nCOMMIT\n"
	if got != want {
		t.Errorf("rules:\n%s\nwant:\n%s", got, want)
	}
}

// IPv6's rules mark what the node makes itself in OUTPUT (an IPv6
// firewall's RST comes from the inside host's address, so addrtype would
// not tell it) and let it leave unqueued.
func TestImpairRules6(t *testing.T) {
	got := Rules6(map[string]uint16{"wan-b": 9, "wan-a": 12})
	want := "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		"-A OUTPUT -m conntrack --ctstate RELATED -j MARK --set-xmark 0x4e4c0000/0xffff0000\n" +
		"-A POSTROUTING -o wan-a -m mark --mark 0x4e4c0000/0xffff0000 -j RETURN\n" +
		"-A POSTROUTING -o wan-a -j NFQUEUE --queue-num 12 --queue-bypass\n" +
		"-A POSTROUTING -o wan-b -m mark --mark 0x4e4c0000/0xffff0000 -j RETURN\n" +
		"-A POSTROUTING -o wan-b -j NFQUEUE --queue-num 9 --queue-bypass\nCOMMIT\n"
	if got != want {
		t.Errorf("rules:\n%s\nwant:\n%s", got, want)
	}
	if Rules6(nil) != "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n" {
		t.Error("no queued direction still marks")
	}
}
