//go:build !(linux || darwin) || rvconn

package rendezvous

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
)

// Where the server has no event loop over raw descriptors (Windows: no
// epoll or kqueue, and sockets are handles), every client is served by a
// goroutine of its own that reads its connection, and written by a
// second goroutine that lives only while replies wait. The protocol, the
// limits and the fronts are the same as on Linux and macOS (lines.go,
// serverclient.go): only how bytes reach the handlers differs. Linux
// builds this transport too with -tags rvconn, so that make test runs the
// server's tests over it under the race detector.
//
// Ownership: only a client's reading goroutine closes it for good
// (closeClient) and forgets it; any goroutine may send, under io, and
// may cut the client off (shutdownLocked closes the connection, which
// ends the reading goroutine's Read). Costs: an idle client holds its
// goroutine's stack and a read buffer of readBufSize bytes, which is why
// fdLimit is lower here. Loads where a shared event loop falls behind
// cannot arise in the same way (the scheduler runs every client's
// goroutine), so overloaded never reports: the connection, rate and
// session caps bound the load.
const (
	readBufSize = 4 << 10
	// maxPending is the reply bytes a client may leave unread (queued or
	// being written) before it is cut off, as on Linux.
	maxPending = 256 << 10
)

// loop is a set of clients, each served by its own goroutine; the server
// keeps several only to share its code with the event loops.
type loop struct {
	srv  *Server
	done chan struct{} // closed by stop
	once sync.Once

	mu      sync.Mutex
	clients map[*client]struct{} // guarded by mu
}

func newLoop(s *Server) (*loop, error) {
	return &loop{srv: s, done: make(chan struct{}), clients: map[*client]struct{}{}}, nil
}

// run waits for the server to close, then cuts every client off (each
// client's goroutine then closes it).
func (l *loop) run() {
	<-l.done
	l.mu.Lock()
	cs := make([]*client, 0, len(l.clients))
	for c := range l.clients {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.io.Lock()
		c.shutdownLocked()
		c.io.Unlock()
	}
}

func (l *loop) stop() { l.once.Do(func() { close(l.done) }) }

// overloaded never reports here (see the comment at the top).
func (l *loop) overloaded(time.Time) bool { return false }

// pause makes the client's goroutine wait until resumeAt before it
// handles the line that asked for it again (its request rate).
func (l *loop) pause(c *client, until time.Time) { c.paused, c.resumeAt = true, until }

// clientIO is how a client's connection is written here: send queues,
// and a writer goroutine writes while bytes wait.
type clientIO struct {
	conn net.Conn

	io       sync.Mutex
	out      []byte // queued, not yet being written
	inFlight int    // bytes being written now
	writing  bool   // a writer goroutine runs
	closed   bool   // no more writes (cut off, or closed)
}

// serveConn serves an admitted connection on a goroutine of its own.
func (s *Server) serveConn(raw net.Conn, remote, local netip.AddrPort) {
	s.serveClient(s.newClient(func(io *clientIO) { io.conn = raw }, remote, local, nil))
}

// serveTLS serves a TLS client's plaintext like any connection, under the
// same admission limits; it reports whether the client was admitted.
func (s *Server) serveTLS(tc *tls.Conn, remote, local netip.AddrPort, tcp *net.TCPConn) bool {
	if !s.admitConn(remote.Addr(), true) {
		return false
	}
	s.serveClient(s.newClient(func(io *clientIO) { io.conn = tc }, remote, local, tcp))
	return true
}

func (s *Server) serveClient(c *client) {
	l := c.loop
	l.mu.Lock()
	l.clients[c] = struct{}{}
	l.mu.Unlock()
	select {
	case <-l.done: // the server closed meanwhile
		c.io.Lock()
		c.shutdownLocked()
		c.io.Unlock()
	default:
	}
	go l.read(c)
}

// read is the client's goroutine: it reads, and handles every complete
// line, until the client closes, goes silent past the idle timeout, or
// is handed to a front.
func (l *loop) read(c *client) {
	buf := make([]byte, readBufSize)
	for !c.gone {
		if c.paused { // nothing more is read until the pause is over
			if !l.resume(c) {
				l.closeClient(c)
				return
			}
			continue
		}
		_ = c.conn.SetReadDeadline(c.lastRead.Add(l.srv.cfg.IdleTimeout))
		n, err := c.conn.Read(buf)
		if n > 0 {
			c.lastRead = time.Now()
			if l.handedOff(c, buf[:n]) {
				return
			}
			l.consume(c, buf[:n])
		}
		if err != nil { // EOF, reset, cut off, or the idle deadline
			l.closeClient(c)
			return
		}
	}
}

// resume waits out a pause and handles what waited behind it; false if
// the server closed meanwhile.
func (l *loop) resume(c *client) bool {
	t := time.NewTimer(time.Until(c.resumeAt))
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
	}
	l.unpause(c)
	return true
}

// closeClient closes c (only its goroutine does) and lets the server
// forget it.
func (l *loop) closeClient(c *client) {
	if c.gone {
		return
	}
	c.gone = true
	c.in = nil
	l.forget(c)
	c.io.Lock()
	c.shutdownLocked()
	c.io.Unlock()
	l.srv.drop(c)
}

func (l *loop) forget(c *client) {
	l.mu.Lock()
	delete(l.clients, c)
	l.mu.Unlock()
}

// handTo stops serving c and hands its connection to f (see front); c has
// sent nothing but first, so nothing was ever queued for it.
func (l *loop) handTo(f front, c *client, first []byte) {
	c.gone = true
	l.forget(c)
	c.io.Lock()
	c.closed = true
	c.io.Unlock()
	l.srv.drop(c)
	f.handOff(c.conn, c.remote, c.local, first)
}

// send queues b for the client; a client with more than maxPending bytes
// unread is cut off.
func (c *client) send(b []byte) {
	c.io.Lock()
	defer c.io.Unlock()
	if c.closed {
		return
	}
	if len(c.out)+c.inFlight+len(b) > maxPending {
		c.srv.Stats.Limited.Add(1)
		c.shutdownLocked()
		return
	}
	c.out = append(c.out, b...)
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// write writes what is queued until nothing is; a failed write cuts the
// client off.
func (c *client) write() {
	c.io.Lock()
	defer c.io.Unlock()
	for !c.closed && len(c.out) > 0 {
		b := c.out
		c.out, c.inFlight = nil, len(b)
		c.io.Unlock()
		_, err := c.conn.Write(b)
		c.io.Lock()
		c.inFlight = 0
		if err != nil {
			c.shutdownLocked()
		}
	}
	c.writing = false
}

// shutdownLocked ends the connection from any goroutine: closing it ends
// the reading goroutine's Read (which then closes the client). c.io is
// held.
func (c *client) shutdownLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.out = nil
	_ = c.conn.Close()
}

// minRTT is the round trip the system reports for c's TCP connection
// (none on this system: sockopt.RTT).
func (c *client) minRTT() (time.Duration, bool) {
	if c.tcp != nil {
		return sockopt.RTT(c.tcp)
	}
	return sockopt.RTT(c.conn)
}
