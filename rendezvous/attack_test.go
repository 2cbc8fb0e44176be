package rendezvous_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/rendezvous"
)

// Bounds every attack must stay within, on loopback against the real
// server binary: it stays up, its resident memory stays under rssBound,
// and a legitimate client (from an address of its own) gets its hello
// answered with a p99 under helloBound.
const (
	rssBound   = 128 << 20
	helloBound = 50 * time.Millisecond
	attackFor  = 1500 * time.Millisecond
)

// attack is one abuse, run against server (primary) and relay endpoints
// until stop is closed. Attackers use 127.0.0.10 and up; the legitimate
// client uses 127.0.0.2.
type attack struct {
	name string
	run  func(t *testing.T, server, relay netip.AddrPort, stop <-chan struct{})
}

var attacks = []attack{
	{"silent connections from one address", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		holdSilent(t, stop, s, []string{"127.0.0.10"}, 2000, "")
	}},
	{"silent connections from 30 addresses", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		holdSilent(t, stop, s, loopbacks(11, 30), 100, "")
	}},
	{"silent connections to the relay port", func(t *testing.T, _, r netip.AddrPort, stop <-chan struct{}) {
		holdSilent(t, stop, r, loopbacks(41, 8), 250, "")
	}},
	{"relay halves on the server's port that never finish their token", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		holdSilent(t, stop, s, loopbacks(140, 8), 250, "RELAY ")
	}},
	{"requests without reading the replies", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		line := `{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n"
		flood(stop, s, loopbacks(50, 4), func(int) string { return strings.Repeat(line, 64) })
	}},
	{"malformed and oversized messages", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		junk := []string{"{\"jsonrpc\":\n", "[1,2,3]\n", strings.Repeat("x", 1<<20) + "\n", "\x00\xff\xfe\n", `{"id":1,"method":"session.join","params":{"session":7}}` + "\n"}
		flood(stop, s, loopbacks(60, 8), func(i int) string { return junk[i%len(junk)] })
	}},
	{"sessions created as fast as possible", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		line := `{"jsonrpc":"2.0","id":1,"method":"session.create","params":{}}` + "\n"
		flood(stop, s, loopbacks(70, 40), func(int) string { return strings.Repeat(line, 8) })
	}},
	{"joins with wrong keys", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		ctx := context.Background()
		owner, err := rendezvous.Dial(ctx, s, rendezvous.DialOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		defer owner.Close()
		_, v := rendezvous.JoinProof([]byte("the real secret"))
		cr, err := owner.Create(ctx, v)
		if err != nil {
			t.Error(err)
			return
		}
		line := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"session.join","params":{"session":%q,"key":"00"}}`+"\n", cr.Session)
		flood(stop, s, loopbacks(120, 8), func(int) string { return strings.Repeat(line, 8) })
	}},
	{"probe dials that wait", func(t *testing.T, s, _ netip.AddrPort, stop <-chan struct{}) {
		var wg sync.WaitGroup
		for _, from := range loopbacks(130, 20) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probeFlood(stop, s, from)
			}()
		}
		wg.Wait()
	}},
}

// Every attack of the hardening issue, one after another against one
// server process: it survives each, its RSS stays bounded, and a
// legitimate client's hello p99 stays under 50 ms during each.
func TestAttacksOnTheRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the attack suite takes about 15 s")
	}
	bin := buildtest.Commands(t, "rendezvous")
	srv := startBinary(t, bin)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.run(t, srv.addr, srv.relay, stop)
			}()
			time.Sleep(200 * time.Millisecond) // let the attack build up
			times := hellos(t, srv.addr, attackFor)
			rss := srv.rss()
			close(stop)
			<-done
			if err := srv.alive(); err != nil {
				t.Fatalf("the server died: %v", err)
			}
			p99 := times[len(times)*99/100]
			t.Logf("%d hellos: p50 %v, p99 %v; server RSS %d MiB", len(times), times[len(times)/2], p99, rss>>20)
			if p99 > helloBound {
				t.Errorf("hello p99 %v during the attack (bound %v)", p99, helloBound)
			}
			if rss > rssBound {
				t.Errorf("server RSS %d MiB during the attack (bound %d MiB)", rss>>20, rssBound>>20)
			}
		})
	}
}

type binServer struct {
	cmd         *exec.Cmd
	addr, relay netip.AddrPort
	exited      chan error
}

// startBinary runs the rendezvous binary on loopback with its defaults
// (and a connection rate high enough for the legitimate client's many
// fresh connections); it is stopped by its PID when the test ends.
func startBinary(t *testing.T, bin string) *binServer {
	t.Helper()
	port := freePort(t)
	s := &binServer{addr: netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port)),
		relay: netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(freePort(t))), exited: make(chan error, 1)}
	s.cmd = exec.Command(filepath.Join(bin, "rendezvous"), "--listen", s.addr.String(), "--relay", s.relay.String(),
		"--log-level", "error", "--conn-rate", "1000")
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp4", s.addr.String()); err == nil {
			c.Close()
			return s
		}
		if i > 200 {
			t.Fatal("the server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *binServer) alive() error {
	select {
	case err := <-s.exited:
		s.exited <- err
		return fmt.Errorf("exited: %v", err)
	default:
		return nil
	}
}

// rss is the server's peak resident set (VmHWM) so far.
func (s *binServer) rss() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// hellos says hello on fresh connections from 127.0.0.2 for d and returns
// the sorted times (a failed hello counts as the 2 s it was given).
func hellos(t *testing.T, addr netip.AddrPort, d time.Duration) []time.Duration {
	var out []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end) || len(out) < 20; {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := rendezvous.Dial(ctx, addr, rendezvous.DialOptions{Local: netip.MustParseAddrPort("127.0.0.2:0")})
		if err == nil {
			_, err = c.Hello(ctx, nil, false)
			c.Close()
		}
		cancel()
		if err != nil {
			t.Errorf("a legitimate hello failed: %v", err)
		}
		out = append(out, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(out)
	return out
}

func loopbacks(first, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("127.0.%d.%d", (first+i)/250, 10+(first+i)%250))
	}
	return out
}

func dialFrom(from string, to netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
	return d.Dial("tcp4", to.String())
}

// holdSilent opens per connections from each address and holds them,
// silent after writing first, until stop.
func holdSilent(t *testing.T, stop <-chan struct{}, to netip.AddrPort, from []string, per int, first string) {
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, f := range from {
		for range per {
			select {
			case <-stop:
				return
			default:
			}
			if c, err := dialFrom(f, to); err == nil {
				held = append(held, c)
				if first != "" {
					_, _ = c.Write([]byte(first))
				}
			}
		}
	}
	<-stop
}

// flood writes what line(i) gives, without reading, from one connection
// per address (reconnecting when the server cuts it off), until stop. Each
// attacker writes a batch every 5 ms: far over the server's request rate
// (so its pacing is what stops them), but bounded, so that the attackers,
// who share this machine's CPUs with the server, do not measure loopback's
// cost instead of the server's defences.
func flood(stop <-chan struct{}, to netip.AddrPort, from []string, line func(int) string) {
	var wg sync.WaitGroup
	for _, f := range from {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if c == nil {
					var err error
					if c, err = dialFrom(f, to); err != nil {
						c = nil
						continue
					}
				}
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Millisecond))
				if _, err := c.Write([]byte(line(i))); err != nil && !os.IsTimeout(err) {
					c.Close()
					c = nil // cut off by the server: come back
				}
			}
		}()
	}
	wg.Wait()
}

// probeFlood asks for probe dials back to itself with the longest delay,
// as many as the server lets it, until stop.
func probeFlood(stop <-chan struct{}, to netip.AddrPort, from string) {
	raw, err := dialFrom(from, to)
	if err != nil {
		return
	}
	c := rendezvous.NewClient(raw, rendezvous.DialOptions{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	h, err := c.Hello(ctx, nil, false)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		_, _ = c.ProbeDial(ctx, rendezvous.ProbeDialParams{From: "other-port", Target: h.Observed, DelayMs: 2000})
	}
}
