package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/model"
)

// jsonOut writes one JSON object per line, safely from several goroutines.
type jsonOut struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newJSONOut(w io.Writer) *jsonOut { return &jsonOut{enc: json.NewEncoder(w)} }

func (j *jsonOut) write(kind string, v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(map[string]any{"type": kind, "time": time.Now().UTC(), "data": v})
}

// session is a joined or created rendezvous session with its signal.
type session struct {
	client *rendezvous.Client
	signal *traversal.RendezvousSignal
	id     string
	role   string
	server netip.AddrPort
}

// openSession connects to the server and creates a session (id == "") or joins one.
func openSession(ctx context.Context, server, id string) (*session, error) {
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		return nil, fmt.Errorf("server %q: want IP:PORT", server)
	}
	c, err := rendezvous.Dial(ctx, server, rendezvous.DialOptions{})
	if err != nil {
		return nil, err
	}
	h, err := c.Hello(ctx, nil, false)
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &session{client: c, server: ap}
	if id == "" {
		r, err := c.Create(ctx)
		if err != nil {
			c.Close()
			return nil, err
		}
		s.id, s.role = r.Session, rendezvous.RoleA
	} else {
		if _, err := c.Join(ctx, id); err != nil {
			c.Close()
			return nil, err
		}
		s.id, s.role = id, rendezvous.RoleB
	}
	s.signal = traversal.NewRendezvousSignal(c, ap, h.Secondary, s.id)
	return s, nil
}

// connect probes the NAT and runs traversal for a session.
func (s *session) connect(ctx context.Context, method traversal.Method, secret []byte, attemptTimeout time.Duration, events func(traversal.Event)) (*traversal.NATInfo, net.Conn, *traversal.Report, error) {
	nat, err := traversal.ProbeNAT(ctx, s.signal, s.server)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("probe NAT: %w", err)
	}
	if events != nil {
		events(traversal.Event{Time: time.Now(), Kind: "nat", Detail: model.Describe(nat.Mapping, nat.Preserving, nat.Delta)})
	}
	conn, rep, err := traversal.Connect(ctx, traversal.Config{Signal: s.signal, Session: s.id, Role: s.role,
		Secret: secret, Method: method, NAT: nat, Events: events, AttemptTimeout: attemptTimeout})
	return &nat, conn, rep, err
}

func secretFromEnv(name string) ([]byte, error) {
	v := os.Getenv(name)
	if len(v) < 16 {
		return nil, fmt.Errorf("set %s to the session secret (at least 16 characters)", name)
	}
	return []byte(v), nil
}

// cmdPunch establishes a connection, exchanges pings and prints the report.
func cmdPunch(args []string) error {
	fs := flag.NewFlagSet("machsend punch", flag.ContinueOnError)
	server := fs.String("server", "", "rendezvous server IP:PORT (required)")
	id := fs.String("session", "", "session to join (default: create one and print its id)")
	methodName := fs.String("method", "auto", method.Help())
	asJSON := fs.Bool("json", false, "print events and the report as JSON lines")
	pings := fs.Int("pings", 3, "round trips to measure over the connection")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	secretEnv := fs.String("secret-env", "MACHSEND_SECRET", "environment variable holding the session secret")
	attemptTimeout := fs.Duration("attempt-timeout", 0, "bound on one punching attempt (default 3s)")
	bulk := fs.Int64("bulk", 0, "after the pings, A sends this many bytes unencrypted and B measures the rate (plain TCP over the punched path)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" {
		return errors.New("punch: --server is required")
	}
	method, err := method.Parse(*methodName)
	if err != nil {
		return err
	}
	secret, err := secretFromEnv(*secretEnv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out := newJSONOut(os.Stdout)
	say := func(kind string, v any, text string) {
		if *asJSON {
			out.write(kind, v)
		} else if text != "" {
			fmt.Println(text)
		}
	}
	s, err := openSession(ctx, *server, *id)
	if err != nil {
		return err
	}
	defer s.client.Close()
	say("session", map[string]string{"session": s.id, "role": s.role}, "session "+s.id+" (role "+s.role+")")
	nat, conn, rep, err := s.connect(ctx, method, secret, *attemptTimeout, func(e traversal.Event) { say("event", e, "") })
	if nat != nil {
		say("nat", nat, fmt.Sprintf("NAT: public %s, mapping %s, delta %d, hops %d", nat.Public, nat.Mapping, nat.Delta, nat.Hops))
	}
	if rep != nil {
		say("report", rep, "")
	}
	if err != nil {
		say("error", map[string]string{"error": err.Error()}, "")
		return err
	}
	defer conn.Close()
	if !*asJSON {
		fmt.Printf("connected by %s (%s) in %s: %s -> %s\n", rep.Method, rep.Path, rep.ConnectTime.Round(time.Millisecond), rep.Local, rep.Remote)
	}
	rtts, err := pingPong(conn, s.role, *pings)
	if err != nil {
		return fmt.Errorf("ping over the connection: %w", err)
	}
	var ms []float64
	for _, d := range rtts {
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	say("pings", map[string]any{"rtt_ms": ms}, fmt.Sprintf("round trips (ms): %v", ms))
	if *bulk > 0 {
		r, err := bulkCopy(conn, s.role, *bulk)
		if err != nil {
			return fmt.Errorf("bulk transfer: %w", err)
		}
		say("bulk", r, fmt.Sprintf("bulk: %d bytes in %.3fs = %.1f MB/s", r["bytes"], r["seconds"], r["mbps"]))
	}
	return nil
}

// bulkCopy sends n bytes from A to B over the raw connection; B times it
// from the first byte to the last and acknowledges.
func bulkCopy(c net.Conn, role string, n int64) (map[string]any, error) {
	buf := make([]byte, 256<<10)
	if role == rendezvous.RoleA {
		start := time.Now()
		for left := n; left > 0; {
			k := min(int64(len(buf)), left)
			w, err := c.Write(buf[:k])
			if err != nil {
				return nil, err
			}
			left -= int64(w)
		}
		ack := make([]byte, 1)
		if _, err := io.ReadFull(c, ack); err != nil {
			return nil, err
		}
		sec := time.Since(start).Seconds()
		return map[string]any{"bytes": n, "seconds": sec, "mbps": float64(n) / sec / 1e6, "side": "sender"}, nil
	}
	var got int64
	var start time.Time
	for got < n {
		k, err := c.Read(buf[:min(int64(len(buf)), n-got)])
		if got == 0 && k > 0 {
			start = time.Now()
		}
		got += int64(k)
		if err != nil {
			return nil, err
		}
	}
	sec := time.Since(start).Seconds()
	if _, err := c.Write([]byte{1}); err != nil {
		return nil, err
	}
	return map[string]any{"bytes": n, "seconds": sec, "mbps": float64(n) / sec / 1e6, "side": "receiver"}, nil
}

// pingPong exchanges n round trips: A pings, B echoes.
func pingPong(c io.ReadWriter, role string, n int) ([]time.Duration, error) {
	buf := make([]byte, 8)
	var out []time.Duration
	for i := 0; i < n; i++ {
		if role == rendezvous.RoleA {
			t0 := time.Now()
			if _, err := c.Write([]byte("pingpong")); err != nil {
				return out, err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				return out, err
			}
			out = append(out, time.Since(t0))
		} else {
			if _, err := io.ReadFull(c, buf); err != nil {
				return out, err
			}
			if _, err := c.Write(buf); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}
