package traversal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/machsend/machsend/rendezvous"
)

// Signal is what traversal needs from the rendezvous: learn the public
// mapping of a local port, exchange candidates for an attempt (and learn the
// role and start time the server picked), and open a relayed connection.
//
// Contract: Ready sends this peer's candidates for attempt and blocks until
// the peer's arrive (or ctx ends); both peers must use the same attempt
// names. Observe returns the mapping the server sees for local and a closer
// that keeps the mapping alive until called. Implementations are safe for
// concurrent use.
type Signal interface {
	Observe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error)
	ObserveSecondary(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error)
	Ready(ctx context.Context, attempt rendezvous.AttemptID, c rendezvous.Candidates) (rendezvous.PunchGo, error)
	Relay(ctx context.Context) (net.Conn, error)
	// ServerOffset is server clock minus local clock.
	ServerOffset() time.Duration
}

// RendezvousSignal implements Signal over a rendezvous client that has
// created or joined Session.
type RendezvousSignal struct {
	Client    *rendezvous.Client
	Server    netip.AddrPort // primary endpoint (for Observe)
	Secondary netip.AddrPort // second endpoint (for mapping comparison)
	Session   string

	mu       sync.Mutex
	waiters  map[rendezvous.AttemptID]chan rendezvous.PunchGo
	early    map[rendezvous.AttemptID]rendezvous.PunchGo
	offset   time.Duration
	peerGone chan struct{}
	goneOnce sync.Once
	// waitJoin (guarded by mu) makes peer.left mean nothing until the
	// next peer.joined: a sharer's signal for its next receiver must not
	// take the previous receiver's leaving for this one's.
	waitJoin bool
	stop     chan struct{}
	stopOnce sync.Once
}

// Stop ends the signal's routing of notifications (the client stays open,
// so a new signal can serve the session's next peer).
func (s *RendezvousSignal) Stop() { s.stopOnce.Do(func() { close(s.stop) }) }

// NewRendezvousSignal starts routing the client's punch.go notifications.
func NewRendezvousSignal(c *rendezvous.Client, server, secondary netip.AddrPort, session string) *RendezvousSignal {
	return newSignal(c, server, secondary, session, false)
}

// NextRendezvousSignal is the signal for a session's next peer: until that
// peer joins, the previous one leaving is not taken for it (a sharer
// serving one receiver after another).
func NextRendezvousSignal(c *rendezvous.Client, server, secondary netip.AddrPort, session string) *RendezvousSignal {
	return newSignal(c, server, secondary, session, true)
}

func newSignal(c *rendezvous.Client, server, secondary netip.AddrPort, session string, waitJoin bool) *RendezvousSignal {
	s := &RendezvousSignal{Client: c, Server: server, Secondary: secondary, Session: session, waitJoin: waitJoin,
		waiters: map[rendezvous.AttemptID]chan rendezvous.PunchGo{}, early: map[rendezvous.AttemptID]rendezvous.PunchGo{}, peerGone: make(chan struct{}),
		stop: make(chan struct{})}
	go s.route()
	return s
}

// PeerGone is closed when the server reports that the peer left.
func (s *RendezvousSignal) PeerGone() <-chan struct{} { return s.peerGone }

func (s *RendezvousSignal) route() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.Client.Done():
			s.goneOnce.Do(func() { close(s.peerGone) })
			return
		case n := <-s.Client.Notifications():
			switch n.Method {
			case rendezvous.NotifyPunch:
				var g rendezvous.PunchGo
				if err := json.Unmarshal(n.Params, &g); err != nil || g.Session != s.Session {
					continue
				}
				s.mu.Lock()
				s.offset = time.Until(time.UnixMilli(g.ServerTime))
				if w := s.waiters[g.Attempt]; w != nil {
					delete(s.waiters, g.Attempt)
					w <- g
				} else if len(s.early) < 64 {
					s.early[g.Attempt] = g
				}
				s.mu.Unlock()
			case rendezvous.NotifyPeerJoined:
				s.mu.Lock()
				s.waitJoin = false
				s.mu.Unlock()
			case rendezvous.NotifyPeerLeft:
				var ev rendezvous.PeerEvent
				s.mu.Lock()
				waiting := s.waitJoin
				s.mu.Unlock()
				if json.Unmarshal(n.Params, &ev) == nil && ev.Session == s.Session && !waiting {
					s.goneOnce.Do(func() { close(s.peerGone) })
				}
			}
		}
	}
}

// Observe implements Signal.
func (s *RendezvousSignal) Observe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	m, c, err := rendezvous.Observe(ctx, s.Server, local)
	if err != nil {
		return m, nil, err
	}
	return m, c, nil
}

// ObserveSecondary implements Signal.
func (s *RendezvousSignal) ObserveSecondary(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	if !s.Secondary.IsValid() {
		return netip.AddrPort{}, nil, fmt.Errorf("server has no secondary endpoint")
	}
	m, c, err := rendezvous.Observe(ctx, s.Secondary, local)
	if err != nil {
		return m, nil, err
	}
	return m, c, nil
}

// Ready implements Signal.
func (s *RendezvousSignal) Ready(ctx context.Context, attempt rendezvous.AttemptID, c rendezvous.Candidates) (rendezvous.PunchGo, error) {
	ch := make(chan rendezvous.PunchGo, 1)
	s.mu.Lock()
	if g, ok := s.early[attempt]; ok {
		delete(s.early, attempt)
		ch <- g
	} else {
		s.waiters[attempt] = ch
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, attempt)
		s.mu.Unlock()
	}()
	if err := s.Client.Ready(ctx, rendezvous.ReadyParams{Session: s.Session, Attempt: attempt, Candidates: c}); err != nil {
		return rendezvous.PunchGo{}, err
	}
	select {
	case g := <-ch:
		return g, nil
	case <-s.peerGone:
		return rendezvous.PunchGo{}, ErrPeerGone
	case <-ctx.Done():
		return rendezvous.PunchGo{}, fmt.Errorf("waiting for the peer: %w", ctx.Err())
	}
}

// Relay implements Signal.
func (s *RendezvousSignal) Relay(ctx context.Context) (net.Conn, error) {
	r, err := s.Client.Relay(ctx, s.Session)
	if err != nil {
		return nil, err
	}
	return rendezvous.DialRelay(ctx, r)
}

// ServerOffset implements Signal.
func (s *RendezvousSignal) ServerOffset() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset
}
