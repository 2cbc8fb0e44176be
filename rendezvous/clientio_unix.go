//go:build (linux || darwin) && !rvconn

package rendezvous

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/epoll"
	"github.com/machsend/machsend/internal/sockopt"
)

// clientIO is how a client's socket is written on systems with event
// loops: any goroutine may send under io, and what the socket will not
// take yet waits in out until the loop sees it drain.
type clientIO struct {
	fd int

	io         sync.Mutex
	out        []byte // bytes the socket would not take yet
	closed     bool   // no more writes (shut down, or closed by the loop)
	wantIn     bool
	events     uint32 // what the epoll set watches for the client
	deferred   bool   // out waits for the loop's batch to end, not for the socket
	dirty      bool   // on its loop's list to flush after the batch; guarded by loop.dmu
	registered bool
}

// updateEpollLocked makes the epoll set watch what the client needs:
// input unless paused, output while bytes wait. c.io is held.
func (c *client) updateEpollLocked() error {
	var ev uint32
	if c.wantIn {
		ev |= epoll.In | epoll.RdHup
	}
	if len(c.out) > 0 {
		ev |= epoll.Out
	}
	if ev == c.events && c.registered == (ev != 0) {
		return nil
	}
	var err error
	switch {
	case ev == 0:
		err = c.loop.set.Ctl(epoll.CtlDel, c.fd, 0)
		c.registered = false
	case !c.registered:
		err = c.loop.set.Ctl(epoll.CtlAdd, c.fd, ev)
		c.registered = err == nil
	default:
		err = c.loop.set.Ctl(epoll.CtlMod, c.fd, ev)
	}
	c.events = ev
	return err
}

// send writes b to the client, or buffers what the socket will not take
// yet; a client with more than maxPending bytes unread is cut off.
func (c *client) send(b []byte) {
	c.io.Lock()
	defer c.io.Unlock()
	if c.closed {
		return
	}
	if len(c.out) == 0 && c.loop.deferFlush(c) {
		c.deferred = true // written after the loop's batch
	}
	if len(c.out) == 0 && !c.deferred {
		n, err := writeAll(c.fd, b)
		b = b[n:]
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			c.shutdownLocked()
			return
		}
		if len(b) == 0 {
			return
		}
	}
	if len(c.out)+len(b) > maxPending {
		c.srv.Stats.Limited.Add(1)
		c.shutdownLocked()
		return
	}
	c.out = append(c.out, b...)
	if !c.deferred {
		_ = c.updateEpollLocked() // watch for the socket to drain
	}
}

// flush writes buffered bytes once the socket drains (the loop calls it).
func (c *client) flush() {
	c.io.Lock()
	defer c.io.Unlock()
	c.deferred = false
	if c.closed || len(c.out) == 0 {
		return
	}
	n, err := writeAll(c.fd, c.out)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		c.shutdownLocked()
		return
	}
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	_ = c.updateEpollLocked()
}

func writeAll(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := syscall.Write(fd, b[done:])
		if n > 0 {
			done += n
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// shutdownLocked ends the connection from any goroutine: the socket is
// shut down (its loop sees the hang-up and closes the descriptor).
func (c *client) shutdownLocked() {
	if c.closed {
		return
	}
	c.closed = true
	c.out = nil
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	c.wantIn = true // the loop must see the hang-up even if paused
	_ = c.updateEpollLocked()
}

// minRTT is the kernel's minimum round trip of c's TCP connection.
func (c *client) minRTT() (time.Duration, bool) {
	if c.tcp == nil {
		return sockopt.MinRTT(c.fd)
	}
	raw, err := c.tcp.SyscallConn()
	if err != nil {
		return 0, false
	}
	var rtt time.Duration
	var ok bool
	if raw.Control(func(fd uintptr) { rtt, ok = sockopt.MinRTT(int(fd)) }) != nil {
		return 0, false
	}
	return rtt, ok
}
