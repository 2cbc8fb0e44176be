package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

func secretFromEnv(name string) ([]byte, error) {
	v := os.Getenv(name)
	if len(v) < 16 {
		return nil, fmt.Errorf("set %s to the session secret (at least 16 characters)", name)
	}
	return []byte(v), nil
}

// setupPunch establishes a connection, exchanges pings and prints the report.
func setupPunch(fs *flag.FlagSet) func([]string) error {
	server := fs.String("server", "", "rendezvous server HOST:PORT (default $MACHSEND_SERVER)")
	id := fs.String("session", "", "session to join (default: create one and print its id)")
	pings := fs.Int("pings", 3, "round trips to measure over the connection")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	secretEnv := fs.String("secret-env", "MACHSEND_SECRET", "environment variable holding the session secret")
	attemptTimeout := fs.Duration("attempt-timeout", 0, "bound on every punching attempt (default: from the round trip between the peers, 2s to 10s; 3s when it is unknown)")
	var bulk bulkOptions
	fs.Int64Var(&bulk.n, "bulk", 0, "after the pings, A sends this many bytes and B measures the rate (plain TCP over the punched path)")
	fs.BoolVar(&bulk.secure, "bulk-secure", false, "send the bulk bytes through machsend's secure channel (Noise handshake, AES-256-GCM records as a transfer uses): the cipher's limit on this path")
	fs.StringVar(&bulk.from, "bulk-from", "", "A reads the bulk bytes from this file (default: from memory)")
	fs.StringVar(&bulk.to, "bulk-to", "", "B writes the bulk bytes to this file (default: discards them)")
	com := commonFlags(fs)
	return func(pos []string) error {
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
		bulk.secret, bulk.session = secret, p.ID
		return exercise(conn, p.Role, *pings, bulk, d)
	}
}

// bulkOptions say what punch --bulk copies, through what, from where to where.
type bulkOptions struct {
	n        int64
	secure   bool
	from, to string
	secret   []byte
	session  string
}

// exercise measures round trips over a punched connection, then (bulk.n >
// 0) the rate of a copy.
func exercise(conn net.Conn, role string, pings int, bulk bulkOptions, d *display) error {
	rtts, err := pingPong(conn, role, pings)
	if err != nil {
		return fmt.Errorf("ping over the connection: %w", err)
	}
	var ms []float64
	for _, r := range rtts {
		ms = append(ms, float64(r.Microseconds())/1000)
	}
	d.show(session.Event{Kind: session.KindPings, RTTms: ms})
	if bulk.n <= 0 {
		return nil
	}
	b, err := bulkCopy(conn, role, bulk)
	if err != nil {
		return fmt.Errorf("bulk transfer: %w", err)
	}
	d.show(session.Event{Kind: session.KindBulk, Bulk: b})
	return nil
}

// bulkCopy sends bulk.n bytes from A to B over the connection (through
// the secure channel with bulk.secure), from a file or memory to a file or
// nowhere; B times it from the first byte to the last and acknowledges.
func bulkCopy(c net.Conn, role string, bulk bulkOptions) (*session.Bulk, error) {
	var rw io.ReadWriter = c
	cipher := ""
	if bulk.secure {
		sc, err := transfer.Secure(c, bulk.secret, bulk.session, role == rendezvous.RoleB)
		if err != nil {
			return nil, err
		}
		rw, cipher = sc, "aes-256-gcm"
	}
	buf := make([]byte, 1<<20) // what a transfer's chunk is
	if role == rendezvous.RoleA {
		return bulkSend(rw, bulk, buf, cipher)
	}
	var out io.Writer = io.Discard
	if bulk.to != "" {
		f, err := os.Create(bulk.to)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = f
	}
	var got int64
	var start time.Time
	for got < bulk.n {
		k, err := rw.Read(buf[:min(int64(len(buf)), bulk.n-got)])
		if got == 0 && k > 0 {
			start = time.Now()
		}
		if _, werr := out.Write(buf[:k]); werr != nil {
			return nil, werr
		}
		got += int64(k)
		if err != nil {
			return nil, err
		}
	}
	sec := time.Since(start).Seconds()
	if _, err := rw.Write([]byte{1}); err != nil {
		return nil, err
	}
	return &session.Bulk{Bytes: bulk.n, Seconds: sec, MBps: float64(bulk.n) / sec / 1e6, Side: "receiver", Cipher: cipher}, nil
}

// bulkSend is A's side of bulkCopy.
func bulkSend(w io.ReadWriter, bulk bulkOptions, buf []byte, cipher string) (*session.Bulk, error) {
	var in io.Reader
	if bulk.from != "" {
		f, err := os.Open(bulk.from)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	start := time.Now()
	for left := bulk.n; left > 0; {
		p := buf[:min(int64(len(buf)), left)]
		if in != nil {
			if _, err := io.ReadFull(in, p); err != nil {
				return nil, fmt.Errorf("read %s: %w", bulk.from, err)
			}
		}
		if _, err := w.Write(p); err != nil {
			return nil, err
		}
		left -= int64(len(p))
	}
	if _, err := io.ReadFull(w, make([]byte, 1)); err != nil {
		return nil, err
	}
	sec := time.Since(start).Seconds()
	return &session.Bulk{Bytes: bulk.n, Seconds: sec, MBps: float64(bulk.n) / sec / 1e6, Side: "sender", Cipher: cipher}, nil
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
