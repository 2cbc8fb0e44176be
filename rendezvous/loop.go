//go:build (linux || darwin) && !rvconn

package rendezvous

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/epoll"
	"golang.org/x/sys/unix"
)

// The server's clients are served by a fixed number of event loops (one
// per CPU), not by goroutines: each loop waits on an epoll set for the
// client sockets it owns, reads what arrived into one buffer of its own,
// and handles every complete request line at once, in the loop. An idle
// registered client therefore costs its client struct and its socket, no
// goroutine stack and no read buffer; a request costs no goroutine either
// (only the few that wait on the network, probes, run beside the loop,
// bounded per client and server-wide).
//
// Ownership: only a client's loop reads its socket and closes its
// descriptor, so a descriptor number is never reused while anything may
// still read it. Any goroutine may write to a client (replies from probes,
// notifications from the peer's loop) under the client's io mutex; a
// write that cannot complete is buffered, up to maxPending bytes, and
// finished by the loop when the socket drains. A client that lets more
// than that pile up is cut off (shutdown; its loop then closes it).
const (
	readBufSize = 64 << 10
	maxEvents   = 64
	// maxPending is the reply bytes a client may leave unread before it
	// is cut off: far above any legitimate backlog (a few notifications).
	maxPending = 256 << 10
	sweepEvery = time.Second
)

// loop is one event loop and the clients it owns.
type loop struct {
	srv *Server
	set *epoll.Set // Server.Close wakes it to end the loop

	mu      sync.Mutex
	clients map[int32]*client // by descriptor; guarded by mu

	// While the loop handles a batch of events, what is sent to its
	// clients waits in their backlog and goes out in one write per client
	// after the batch (a reply and a notification to the same client
	// share a write; under load, more do).
	dmu     sync.Mutex
	inBatch bool      // guarded by dmu
	dirty   []*client // guarded by dmu

	// The loop goroutine's own state.
	buf        []byte
	paused     []*client // reading paused for the request rate
	batchStart time.Time // when the current batch's wait returned
	oldest     time.Time // the earliest a current event may have become ready
	full       bool      // the last wait returned as many events as it could
	lastSweep  time.Time
}

func newLoop(s *Server) (*loop, error) {
	set, err := epoll.New()
	if err != nil {
		return nil, err
	}
	return &loop{srv: s, set: set, clients: map[int32]*client{}, buf: make([]byte, readBufSize),
		batchStart: time.Now(), oldest: time.Now(), lastSweep: time.Now()}, nil
}

// add makes the loop own c (c.fd set) and starts reading it.
func (l *loop) add(c *client) error {
	l.mu.Lock()
	l.clients[int32(c.fd)] = c
	l.mu.Unlock()
	c.io.Lock()
	defer c.io.Unlock()
	c.wantIn = true
	if err := c.updateEpollLocked(); err != nil {
		l.mu.Lock()
		if l.clients[int32(c.fd)] == c {
			delete(l.clients, int32(c.fd))
		}
		l.mu.Unlock()
		return err
	}
	return nil
}

// run is the loop goroutine: wait, read, handle, until the server closes.
func (l *loop) run() {
	events := make([]epoll.Event, maxEvents)
	for {
		n, err := l.wait(events)
		if err != nil {
			l.srv.log.Error("epoll_wait failed; the loop stops", "err", err)
			return
		}
		if n < 0 {
			l.closeAll()
			return
		}
		l.setBatch(true)
		for _, ev := range events[:n] {
			l.mu.Lock()
			c := l.clients[ev.Fd]
			l.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&(epoll.Hup|epoll.Err) != 0 {
				// Shut down (by another goroutine) or reset: nothing more
				// to read or write. Closing now matters for a paused client,
				// which would otherwise report this event until it resumes.
				l.closeClient(c)
				continue
			}
			if ev.Events&epoll.Out != 0 {
				c.flush()
			}
			if ev.Events&(epoll.In|epoll.Hup|epoll.Err|epoll.RdHup) != 0 {
				l.readable(c)
			}
		}
		now := time.Now()
		l.resumeDue(now)
		if now.Sub(l.lastSweep) >= sweepEvery {
			l.lastSweep = now
			l.sweepIdle(now)
		}
		l.flushDirty()
	}
}

// wait returns the ready events, none once the next paused client or
// sweep is due, or -1 when the server closes. The loop goroutine parks in
// the Go runtime's poller while nothing is ready (package epoll).
func (l *loop) wait(events []epoll.Event) (int, error) {
	n, idled, woken, err := l.set.Wait(events, l.waitFor())
	if err != nil {
		return 0, err
	}
	if woken {
		return -1, nil
	}
	// The oldest of the returned events may have become ready just after
	// the previous wait returned, unless the loop idled in between; and
	// when the previous wait filled its batch, older events may still
	// have been waiting behind it, so the estimate stays where it was.
	now := time.Now()
	switch {
	case idled:
		l.oldest = now
	case !l.full:
		l.oldest = l.batchStart
	}
	l.batchStart, l.full = now, n == len(events)
	return n, nil
}

func (l *loop) setBatch(on bool) {
	l.dmu.Lock()
	l.inBatch = on
	l.dmu.Unlock()
}

// deferFlush puts c on the list written after the batch, if the loop is
// handling one; c.io is held.
func (l *loop) deferFlush(c *client) bool {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if !l.inBatch {
		return false
	}
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	return true
}

// flushDirty ends the batch and writes what it left in the backlogs.
func (l *loop) flushDirty() {
	l.dmu.Lock()
	l.inBatch = false
	list := l.dirty
	l.dirty = nil
	for _, c := range list {
		c.dirty = false
	}
	l.dmu.Unlock()
	for _, c := range list {
		c.flush()
	}
}

// waitFor is how long the loop may sleep: until the next paused client is
// due, and at most until the next idle sweep.
func (l *loop) waitFor() time.Duration {
	d := sweepEvery
	for _, c := range l.paused {
		d = min(d, time.Until(c.resumeAt))
	}
	return max(d, 100*time.Microsecond)
}

// overloaded says a request handled now may have waited longer than the
// server's budget: since the oldest of this batch's events could have
// become ready (the previous batch's start, or the end of an idle wait).
func (l *loop) overloaded(now time.Time) bool { return now.Sub(l.oldest) > l.srv.cfg.Budget }

// readable reads what c sent and handles its complete lines.
func (l *loop) readable(c *client) {
	for !c.paused && !c.gone {
		n, err := syscall.Read(c.fd, l.buf)
		switch {
		case n > 0:
			c.lastRead = time.Now()
			if l.handedOff(c, l.buf[:n]) {
				return
			}
			l.consume(c, l.buf[:n])
			if n < len(l.buf) {
				return
			}
		case errors.Is(err, syscall.EAGAIN):
			return
		case errors.Is(err, syscall.EINTR):
		default: // EOF, reset, or the socket was shut down
			l.closeClient(c)
			return
		}
	}
}

// pause stops reading c until resumeAt (its request rate); what it sent
// meanwhile waits in its socket.
func (l *loop) pause(c *client, until time.Time) {
	c.paused, c.resumeAt = true, until
	l.paused = append(l.paused, c)
	c.io.Lock()
	c.wantIn = false
	_ = c.updateEpollLocked()
	c.io.Unlock()
}

// resumeDue resumes reading the paused clients whose time has come.
func (l *loop) resumeDue(now time.Time) {
	if len(l.paused) == 0 {
		return
	}
	keep := l.paused[:0]
	var due []*client
	for _, c := range l.paused {
		if c.gone {
			continue
		}
		if now.Before(c.resumeAt) {
			keep = append(keep, c)
			continue
		}
		due = append(due, c)
	}
	clear(l.paused[len(keep):])
	l.paused = keep
	for _, c := range due {
		l.unpause(c)
		if c.gone || c.paused {
			continue
		}
		c.io.Lock()
		c.wantIn = true
		_ = c.updateEpollLocked()
		c.io.Unlock()
	}
}

// sweepIdle closes clients silent for longer than the idle timeout.
func (l *loop) sweepIdle(now time.Time) {
	var idle []*client
	l.mu.Lock()
	for _, c := range l.clients {
		if now.Sub(c.lastRead) > l.srv.cfg.IdleTimeout {
			idle = append(idle, c)
		}
	}
	l.mu.Unlock()
	for _, c := range idle {
		l.closeClient(c)
	}
}

// closeClient closes c's descriptor (only its loop does) and lets the
// server forget it.
func (l *loop) closeClient(c *client) {
	if c.gone {
		return
	}
	c.gone = true
	c.in = nil
	// Forget the descriptor before closing it: once closed, its number
	// may come back at once for a new client of this loop.
	l.mu.Lock()
	if l.clients[int32(c.fd)] == c {
		delete(l.clients, int32(c.fd))
	}
	l.mu.Unlock()
	c.io.Lock()
	c.closed = true
	c.out = nil
	_ = l.set.Ctl(epoll.CtlDel, c.fd, 0)
	syscall.Close(c.fd)
	c.io.Unlock()
	l.srv.drop(c)
}

// handTo stops serving c and hands its connection to f (the landing
// pages, landing.go; the TLS front, tlsfront.go, which brings the
// plaintext back as a new client; or the relay, relay.go).
func (l *loop) handTo(f front, c *client, first []byte) {
	fd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	l.closeClient(c)
	if err != nil {
		return
	}
	conn, err := fdConn(fd)
	if err != nil {
		return
	}
	f.handOff(conn, c.remote, c.local, first)
}

// fdConn makes a net.Conn of a socket descriptor (and closes fd: the
// conn holds its own duplicate).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "rendezvous")
	defer f.Close()
	return net.FileConn(f)
}

// closeAll ends the loop: every client closes, then the epoll set.
func (l *loop) closeAll() {
	l.mu.Lock()
	cs := make([]*client, 0, len(l.clients))
	for _, c := range l.clients {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		l.closeClient(c)
	}
	l.set.Close()
}

// stop wakes the loop so that it closes everything and returns.
func (l *loop) stop() { l.set.Wake() }
