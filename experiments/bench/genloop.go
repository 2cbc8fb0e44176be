package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/epoll"
)

// genLoops read the generator's connections: one event loop per CPU, like
// the server's, so that ten thousand idle clients cost no goroutines and a
// message costs one read, not a goroutine wake-up.
type genLoops struct {
	loops []*genLoop
	next  atomic.Uint32
}

type genLoop struct {
	set *epoll.Set

	mu    sync.Mutex
	conns map[int32]*genConn // guarded by mu
}

func newGenLoops() (*genLoops, error) {
	ls := &genLoops{}
	for range max(1, runtime.GOMAXPROCS(0)) {
		set, err := epoll.New()
		if err != nil {
			ls.close()
			return nil, err
		}
		l := &genLoop{set: set, conns: map[int32]*genConn{}}
		ls.loops = append(ls.loops, l)
		go l.run()
	}
	return ls, nil
}

// add makes a loop read g (g.fd set).
func (ls *genLoops) add(g *genConn) error {
	l := ls.loops[int(ls.next.Add(1))%len(ls.loops)]
	l.mu.Lock()
	l.conns[int32(g.fd)] = g
	l.mu.Unlock()
	return l.set.Ctl(epoll.CtlAdd, g.fd, epoll.In|epoll.RdHup)
}

func (ls *genLoops) close() {
	for _, l := range ls.loops {
		l.set.Wake()
	}
}

func (l *genLoop) run() {
	events := make([]epoll.Event, 64)
	buf := make([]byte, 64<<10)
	for {
		n, _, woken, err := l.set.Wait(events, time.Second)
		if err != nil || woken {
			l.closeAll()
			return
		}
		for _, ev := range events[:n] {
			l.mu.Lock()
			g := l.conns[ev.Fd]
			l.mu.Unlock()
			if g != nil && !l.readable(g, buf) {
				l.mu.Lock()
				delete(l.conns, ev.Fd)
				l.mu.Unlock()
				_ = l.set.Ctl(epoll.CtlDel, g.fd, 0)
				g.end(io.ErrUnexpectedEOF)
			}
		}
	}
}

// readable reads what g received and delivers its complete lines; false
// when the connection ended.
func (l *genLoop) readable(g *genConn, buf []byte) bool {
	for {
		n, err := syscall.Read(g.fd, buf)
		switch {
		case n > 0:
			g.consume(buf[:n])
			if n < len(buf) {
				return true
			}
		case errors.Is(err, syscall.EAGAIN):
			return true
		case errors.Is(err, syscall.EINTR):
		default:
			return false
		}
	}
}

func (l *genLoop) closeAll() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[int32]*genConn{}
	l.mu.Unlock()
	for _, g := range conns {
		g.end(errors.New("generator stopped"))
	}
	l.set.Close()
}

// consume delivers the complete lines of data (after what was pending).
func (g *genConn) consume(data []byte) {
	if len(g.in) > 0 {
		g.in = append(g.in, data...)
		data = g.in
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		var m genMessage
		if json.Unmarshal(data[:i], &m) == nil {
			g.deliver(&m)
		}
		data = data[i+1:]
	}
	g.in = append(g.in[:0:0], data...)
}

// end fails every pending call and closes the descriptor (its loop calls
// it once).
func (g *genConn) end(cause error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = fmt.Errorf("connection ended: %w", cause)
	}
	calls := g.calls
	g.calls = map[uint64]func(genReply){}
	g.mu.Unlock()
	g.wmu.Lock()
	syscall.Close(g.fd)
	g.fd = -1
	g.wmu.Unlock()
	for _, fn := range calls {
		fn(genReply{code: -1, msg: g.err.Error()})
	}
}

// write sends b (a whole message) on g's socket.
func (g *genConn) write(b []byte) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	for len(b) > 0 {
		if g.fd < 0 {
			return errors.New("connection closed")
		}
		n, err := syscall.Write(g.fd, b)
		if n > 0 {
			b = b[n:]
		}
		switch {
		case err == nil, errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			// The server is not reading: wait for room (messages are
			// small; this does not happen unless the server stalls).
			time.Sleep(100 * time.Microsecond)
		default:
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}
