package transfer

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the bytes read through a connection; slow makes each
// read return at most 16 KiB after a millisecond (a slow first path, so
// the second is added while data still flows).
type countConn struct {
	net.Conn
	n    *atomic.Int64
	slow bool
}

func (c countConn) Read(p []byte) (int, error) {
	if c.slow {
		time.Sleep(time.Millisecond)
		p = p[:min(len(p), 16<<10)]
	}
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A transfer that starts on one path moves to a second one added while it
// runs (at the start, in the middle, or after the data): every file
// arrives whole, the second path carries data when added in time, and
// the first path is closed once both directions have left it.
func TestMultipathMoves(t *testing.T) {
	for _, c := range []struct {
		name  string
		after int64 // add the second path once the receiver read this much on the first
	}{{"before any data", 0}, {"mid-transfer", 4 * MinChunk}, {"never", -1}} {
		t.Run(c.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			paths := tree(t, src, 12<<20+5)
			m, srcs, err := BuildManifest(paths)
			if err != nil {
				t.Fatal(err)
			}
			m.ChunkSize = MinChunk
			var onFirst, onSecond atomic.Int64
			a1, b1, errA, errB := securePair(t, secret, secret, func(c net.Conn) net.Conn {
				_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // little in flight: the move is felt
				return countConn{c, &onFirst, true}
			})
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			ms, mr := NewMultipath(a1, true), NewMultipath(b1, false)
			moved := make(chan int, 1)
			ms.OnMove = func(n int) { moved <- n }
			sendErr, recvErr := make(chan error, 1), make(chan error, 1)
			go func() { sendErr <- Send(context.Background(), ms, m, srcs, nil) }()
			go func() {
				_, err := Receive(context.Background(), mr, ReceiveOptions{Dir: dst}, nil)
				recvErr <- err
			}()
			if c.after >= 0 {
				for onFirst.Load() < c.after {
					time.Sleep(time.Millisecond)
				}
				a2, b2, errA, errB := securePair(t, secret, secret, func(c net.Conn) net.Conn { return countConn{c, &onSecond, false} })
				if errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				onSecond.Store(0) // the handshake's bytes
				go func() { _ = ms.Add(a2) }()
				_ = mr.Add(b2)
			}
			if err := <-recvErr; err != nil {
				t.Fatal(err)
			}
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			sameTree(t, paths[0], dst)
			if c.after < 0 {
				return
			}
			if n := <-moved; n != 1 {
				t.Errorf("moved to path %d", n)
			}
			if n := onSecond.Load(); n < int64(m.Total())/4 {
				t.Errorf("%d bytes arrived on the second path, want a good part of the %d", n, m.Total())
			}
			// The first path is closed on the receiver's side: reading it fails.
			if _, err := b1.conn.Read(make([]byte, 1)); err == nil {
				t.Error("the first path is still open")
			}
			ms.Close()
			mr.Close()
		})
	}
}

// A peer that ends its path with no path to follow fails the reader after
// its wait, with a clear error, rather than hanging.
func TestMultipathNoNextPath(t *testing.T) {
	a, b, errA, errB := securePair(t, secret, secret, nil)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	mr := NewMultipath(b, false)
	mr.Wait = 50 * time.Millisecond
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := a.EndPath(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(mr)
	if string(got) != "hello" || !errors.Is(err, ErrNoNextPath) {
		t.Errorf("read %q, %v; want hello, ErrNoNextPath", got, err)
	}
}
