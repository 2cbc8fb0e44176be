// Package wiretap records bytes: a Recorder is a goroutine-safe, bounded
// buffer (what a process wrote to stderr), and Proxy puts a recording TCP
// relay in front of a server, to show what someone on the path sees.
package wiretap

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Recorder keeps what is written to it, up to Limit bytes (0: no limit);
// it may be written and read from several goroutines at once.
type Recorder struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps p (or the part of it under Limit) and never fails.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := p
	if r.Limit > 0 {
		keep = p[:min(len(p), max(0, r.Limit-r.buf.Len()))]
	}
	r.buf.Write(keep)
	return len(p), nil
}

// String is what was kept so far.
func (r *Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// Proxy relays TCP connections on a loopback port to target until the
// test ends, and records every byte the clients send.
func Proxy(tb testing.TB, target netip.AddrPort) (netip.AddrPort, *Recorder) {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	rec := &Recorder{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp4", target.String())
			if err != nil {
				c.Close()
				continue
			}
			// Record before forwarding: once the server has answered a
			// client's bytes, they are in the recording.
			go func() { io.Copy(io.MultiWriter(rec, s), c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), rec
}
