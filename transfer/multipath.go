package transfer

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errPathEnd is what SecureConn.Read returns for an end-of-path record:
// the peer's stream in this direction goes on over the next path.
var errPathEnd = errors.New("the peer moved to the next path")

// ErrNoNextPath means the peer moved its stream to a path this side does
// not have (its authentication failed here, or it never came).
var ErrNoNextPath = errors.New("the peer moved to a path this side does not have")

// moveWait bounds how long a reader waits for the path its peer moved to.
const moveWait = 10 * time.Second

// Multipath is one byte stream carried by a sequence of secure
// connections: it starts on the first path and moves to each path added
// after it, in the order both peers add them (so both must add the same
// paths in the same order). Every byte keeps its place in the stream: a
// side moves its writes by sending an authenticated end-of-path record on
// the old path and writing on the new one from then on, and the other
// side's reads follow at that record.
//
// The leader (the sender) moves its writes as soon as a path is added;
// the other side moves its writes when its reads reach the leader's
// end-of-path record. A path is closed once both directions have left it.
// Read and Write may be called from different goroutines (one each).
type Multipath struct {
	leader bool

	// mu guards the paths, wakes readers waiting for the next one, and
	// records how far each direction has moved (readAt, writeAt).
	mu              sync.Mutex
	paths           []*SecureConn
	added           chan struct{} // closed and replaced when a path is added
	closed          bool
	readAt, writeAt int

	// rmu and wmu serialize reads and writes; r and w are the indices of
	// the paths they are on.
	rmu sync.Mutex
	r   int
	wmu sync.Mutex
	w   int

	// OnMove, if set, is called when this side's writes move to path n.
	OnMove func(n int)
	// Wait bounds how long a read waits for the path the peer moved to
	// (moveWait when 0).
	Wait time.Duration
}

// NewMultipath starts a stream on first; leader is the side that decides
// when to move (the sender).
func NewMultipath(first *SecureConn, leader bool) *Multipath {
	return &Multipath{leader: leader, paths: []*SecureConn{first}, added: make(chan struct{})}
}

// Add appends an authenticated path. The leader moves its writes to it at
// once (after a write in progress); the other side moves when the
// leader's stream does.
func (m *Multipath) Add(sc *SecureConn) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		sc.Close()
		return errors.New("multipath: closed")
	}
	m.paths = append(m.paths, sc)
	close(m.added)
	m.added = make(chan struct{})
	m.mu.Unlock()
	if m.leader {
		return m.moveWrites(len(m.paths) - 1)
	}
	return nil
}

// Paths is how many paths were added, the first included.
func (m *Multipath) Paths() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.paths)
}

// path returns path i, waiting up to moveWait for it to be added.
func (m *Multipath) path(i int) (*SecureConn, error) {
	wait := m.Wait
	if wait <= 0 {
		wait = moveWait
	}
	deadline := time.After(wait)
	for {
		m.mu.Lock()
		if i < len(m.paths) {
			p := m.paths[i]
			m.mu.Unlock()
			return p, nil
		}
		closed, added := m.closed, m.added
		m.mu.Unlock()
		if closed {
			return nil, errors.New("multipath: closed")
		}
		select {
		case <-added:
		case <-deadline:
			return nil, fmt.Errorf("%w (waited %s for path %d)", ErrNoNextPath, wait, i+1)
		}
	}
}

// moveWrites moves this side's writes to path to (if not there already),
// ending each path it leaves with an end-of-path record.
func (m *Multipath) moveWrites(to int) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	for m.w < to {
		old, err := m.path(m.w)
		if err != nil {
			return err
		}
		if err := old.EndPath(); err != nil {
			return fmt.Errorf("end the old path: %w", err)
		}
		m.w++
		m.moved(false, m.w)
		if m.OnMove != nil {
			m.OnMove(m.w)
		}
	}
	return nil
}

// moved records that reads (or writes) are now on path to, and closes
// the path they left once the other direction has left it too.
func (m *Multipath) moved(read bool, to int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if read {
		m.readAt = to
	} else {
		m.writeAt = to
	}
	if left := to - 1; m.readAt > left && m.writeAt > left {
		m.paths[left].Close()
	}
}

// movePiece bounds what one Write puts on the first path at a time: a
// move waits for the piece in progress, and on a relay whose buffers are
// bounded (rendezvous.Config.RelayBuffer) a chunk of megabytes takes many
// round trips, which the move would wait out. Pieces are whole records,
// so the stream is the same; once the writes have moved, Write puts p on
// the path whole.
const movePiece = 4 * maxPlain

// Write writes p to the current path, in pieces of movePiece bytes while
// on the first path, so that a move (Add) waits for a piece, not for p.
func (m *Multipath) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k, err := m.writePiece(p)
		n += k
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// writePiece writes p, or its first movePiece bytes while on the first
// path, and says how much it wrote.
func (m *Multipath) writePiece(p []byte) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	sc, err := m.path(m.w)
	if err != nil {
		return 0, err
	}
	if m.w == 0 && len(p) > movePiece {
		p = p[:movePiece]
	}
	return sc.Write(p)
}

// Read reads from the current path, following the peer to the next path
// at an end-of-path record.
func (m *Multipath) Read(p []byte) (int, error) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	for {
		sc, err := m.path(m.r)
		if err != nil {
			return 0, err
		}
		n, err := sc.Read(p)
		if !errors.Is(err, errPathEnd) {
			return n, err
		}
		m.r++
		m.moved(true, m.r)
		if !m.leader {
			if err := m.moveWrites(m.r); err != nil {
				return 0, err
			}
		}
	}
}

// Close closes every path.
func (m *Multipath) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, p := range m.paths {
		p.Close()
	}
	return nil
}
