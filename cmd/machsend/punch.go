package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/session"
)

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
	server := fs.String("server", "", "rendezvous server HOST:PORT (default $MACHSEND_SERVER)")
	id := fs.String("session", "", "session to join (default: create one and print its id)")
	pings := fs.Int("pings", 3, "round trips to measure over the connection")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	secretEnv := fs.String("secret-env", "MACHSEND_SECRET", "environment variable holding the session secret")
	attemptTimeout := fs.Duration("attempt-timeout", 0, "bound on one punching attempt (default 3s)")
	bulk := fs.Int64("bulk", 0, "after the pings, A sends this many bytes unencrypted and B measures the rate (plain TCP over the punched path)")
	com := commonFlags(fs)
	if pos, err := cli.Parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("punch: unexpected argument %q (flags only)", pos[0])
	}
	secret, err := secretFromEnv(*secretEnv)
	if err != nil {
		return err
	}
	o, d, sigCtx, stop, err := com.options()
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, *timeout)
	defer cancel()
	o.AttemptTimeout = *attemptTimeout
	srv, err := serverFrom(ctx, *server)
	if err != nil {
		return err
	}
	var p *session.Peer
	if *id == "" {
		p, err = session.Create(ctx, srv, secret, o)
	} else {
		p, err = session.Join(ctx, srv, *id, secret, o)
	}
	if err != nil {
		return err
	}
	defer p.Close()
	conn, _, err := p.Connect(ctx)
	if err != nil {
		d.show(session.Event{Kind: session.KindError, Error: err.Error()})
		return err
	}
	defer conn.Close()
	return exercise(conn, p.Role, *pings, *bulk, d)
}

// exercise measures round trips over a punched connection, then (bulk > 0)
// the rate of an unencrypted copy.
func exercise(conn net.Conn, role string, pings int, bulk int64, d *display) error {
	rtts, err := pingPong(conn, role, pings)
	if err != nil {
		return fmt.Errorf("ping over the connection: %w", err)
	}
	var ms []float64
	for _, r := range rtts {
		ms = append(ms, float64(r.Microseconds())/1000)
	}
	d.show(session.Event{Kind: session.KindPings, RTTms: ms})
	if bulk <= 0 {
		return nil
	}
	b, err := bulkCopy(conn, role, bulk)
	if err != nil {
		return fmt.Errorf("bulk transfer: %w", err)
	}
	d.show(session.Event{Kind: session.KindBulk, Bulk: b})
	return nil
}

// bulkCopy sends n bytes from A to B over the raw connection; B times it
// from the first byte to the last and acknowledges.
func bulkCopy(c net.Conn, role string, n int64) (*session.Bulk, error) {
	buf := make([]byte, 256<<10)
	if role == rendezvous.RoleA {
		start := time.Now()
		for left := n; left > 0; {
			w, err := c.Write(buf[:min(int64(len(buf)), left)])
			if err != nil {
				return nil, err
			}
			left -= int64(w)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return nil, err
		}
		sec := time.Since(start).Seconds()
		return &session.Bulk{Bytes: n, Seconds: sec, MBps: float64(n) / sec / 1e6, Side: "sender"}, nil
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
	return &session.Bulk{Bytes: n, Seconds: sec, MBps: float64(n) / sec / 1e6, Side: "receiver"}, nil
}

// pingPong exchanges n round trips: A pings, B echoes.
func pingPong(c io.ReadWriter, role string, n int) ([]time.Duration, error) {
	buf := make([]byte, 8)
	var out []time.Duration
	for i := 0; i < n; i++ {
		if role != rendezvous.RoleA {
			if _, err := io.ReadFull(c, buf); err != nil {
				return out, err
			}
			if _, err := c.Write(buf); err != nil {
				return out, err
			}
			continue
		}
		t0 := time.Now()
		if _, err := c.Write([]byte("pingpong")); err != nil {
			return out, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}
