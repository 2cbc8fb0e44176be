//go:build (linux || darwin) && !rvconn

package rendezvous

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A server that is not keeping up refuses new sessions at once with
// "busy" and a back-off hint (never a timeout), and the client backs off
// as asked and tries again. A budget of a nanosecond makes every create
// arrive "late".
func TestOverloadAnsweredBusy(t *testing.T) {
	s, addr := startServer(t, Config{Budget: time.Nanosecond})
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Create(ctx, "")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("create on an overloaded server: %v, want ErrBusy", err)
	}
	// Hints are 50-250 ms: within 600 ms the client asked at least twice.
	if n := s.Stats.Busy.Load(); n < 2 {
		t.Errorf("the client asked %d times in %v; it should have retried after the hint", n, time.Since(start))
	}
	// The hint itself is there and in bounds.
	err = c.conn.Call(context.Background(), MethodCreate, CreateParams{}, &CreateResult{})
	wait, busy := retryAfter(err)
	if !busy || wait < busyRetryMin || wait > busyRetryMax {
		t.Errorf("busy reply %v: hint %v (want %v..%v)", err, wait, busyRetryMin, busyRetryMax)
	}
	// Requests of admitted work are still served.
	if _, err := c.Hello(context.Background(), nil, false); err != nil {
		t.Errorf("hello on an overloaded server: %v", err)
	}
}

// session.leave: the joiner leaving frees its place (the creator is told),
// the creator leaving ends the session (the joiner is told), and a client
// not in the session cannot make anyone leave.
func TestLeave(t *testing.T) {
	s, addr := startServer(t, Config{})
	a, b, x := dial(t, addr), dial(t, addr), dial(t, addr)
	ctx := context.Background()
	cr, err := a.Create(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		t.Fatal(err)
	}
	if err := x.Leave(ctx, cr.Session); !errors.Is(err, ErrNoSession) {
		t.Errorf("a stranger's leave: %v, want ErrNoSession", err)
	}
	if err := b.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	next(t, a, NotifyPeerLeft)
	if _, err := x.Join(ctx, cr.Session, ""); err != nil {
		t.Fatalf("the place the joiner left is not free: %v", err)
	}
	if err := a.Leave(ctx, cr.Session); err != nil {
		t.Fatal(err)
	}
	next(t, x, NotifyPeerLeft)
	if n := s.SessionCount(); n != 0 {
		t.Errorf("%d sessions after the creator left", n)
	}
	// A connection's cap counts sessions it holds: leaving frees room,
	// also when the leave is a notification (no answer).
	for i := range 40 {
		cr, err := a.Create(ctx, "")
		if err != nil {
			t.Fatalf("create after leaving: %v", err)
		}
		leave := a.Leave
		if i%2 == 1 {
			leave = a.LeaveNotify
		}
		if err := leave(ctx, cr.Session); err != nil {
			t.Fatal(err)
		}
	}
}

// Connections that come and go one after another reuse descriptor
// numbers at once; every one is answered (a loop that forgot a client's
// descriptor after its number was reused left a new client unanswered).
func TestDescriptorReuse(t *testing.T) {
	_, addr := startServer(t, Config{ConnRate: 1e6, ConnBurst: 1e6})
	for i := range 3000 {
		c, err := Dial(context.Background(), addr, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = c.Hello(ctx, nil, false)
		cancel()
		c.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
}
