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

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/rendezvous"
)

// Signal is what traversal needs from the rendezvous: learn the public
// mapping of a local port, exchange candidates for an attempt (and learn the
// role and start time the server picked), and open a relayed connection.
//
// Contract: Ready sends this peer's candidates for attempt and blocks until
// the peer's arrive (or ctx ends); both peers must use the same attempt
// names. Observe returns the mapping the server sees for local and a closer
// that keeps the mapping alive until called. Relay returns a connection to
// the peer through the server's relay; it may return before the relay has
// spliced it (what is written first is forwarded at the splice), and the
// first Read then fails with rendezvous.ErrRelayRefused if the relay never
// splices it. Implementations are safe for concurrent use.
type Signal interface {
	Observe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error)
	ObserveSecondary(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error)
	Ready(ctx context.Context, attempt rendezvous.AttemptID, c rendezvous.Candidates) (rendezvous.PunchGo, error)
	Relay(ctx context.Context) (net.Conn, error)
	// ServerOffset is server clock minus local clock.
	ServerOffset() time.Duration
}

// DualStack is implemented by a Signal whose session may run attempts in
// both address families: Families returns them in order of preference
// (rendezvous.FamilyIPv6 first), or nil for one (each peer's sockets in
// the family of its connection to the server). Both peers must get the
// same answer: their attempt names must match.
type DualStack interface {
	Families() []string
}

var _ DualStack = (*RendezvousSignal)(nil)

// RendezvousSignal implements Signal over a rendezvous client that has
// created or joined Session. One goroutine routes the client's
// notifications for the client's lifetime (or until Stop); Next readies
// the signal for the session's next peer on the same client.
type RendezvousSignal struct {
	Client    *rendezvous.Client
	Server    netip.AddrPort // primary endpoint (for Observe)
	Secondary netip.AddrPort // second endpoint (for mapping comparison)
	Session   string

	stop     chan struct{}
	stopOnce sync.Once
	// messages are a code session's pair.messages from the peer, in order
	// (at most as many as the server lets a peer send).
	messages chan []byte

	// mu guards the state of the current peer, which Next resets.
	mu      sync.Mutex
	waiters map[rendezvous.AttemptID]chan rendezvous.PunchGo
	early   map[rendezvous.AttemptID]rendezvous.PunchGo
	offset  time.Duration
	// peerGone is closed (gone set) when the server reports that the
	// peer left; joined (hasJoined) when it reports that a peer joined.
	peerGone  chan struct{}
	gone      bool
	joined    chan struct{}
	hasJoined bool
	// waitJoin makes peer.left mean nothing until the next peer.joined:
	// a sharer's signal for its next receiver must not take the previous
	// receiver's leaving for this one's.
	waitJoin bool
	// nextJoined records a peer.joined that came while the current peer
	// was still being served (its place freed, the next peer took it at
	// once): it belongs to the round Next starts, with nextRelay.
	nextJoined bool
	// relay is the relay slot the server handed out with the join (to the
	// sharer with peer.joined, to the joiner with its join's answer), used
	// by the first Relay of the round instead of asking for one.
	relay, nextRelay *rendezvous.RelayResult
	// spare, when set, is a connection to the server dialled beside the
	// rendezvous connection: the round's first Relay with an offered slot
	// makes it the relay half, its token and first message sent at once.
	spare *rendezvous.Spare
}

// Messages delivers the peer's messages in a code session.
func (s *RendezvousSignal) Messages() <-chan []byte { return s.messages }

// Stop ends the signal's routing of notifications.
func (s *RendezvousSignal) Stop() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		spare := s.spare
		s.spare = nil
		s.mu.Unlock()
		spare.Close()
	})
}

// NewRendezvousSignal starts routing the client's punch.go notifications.
func NewRendezvousSignal(c *rendezvous.Client, server, secondary netip.AddrPort, session string) *RendezvousSignal {
	s := &RendezvousSignal{Client: c, Server: server, Secondary: secondary, Session: session, stop: make(chan struct{}),
		messages: make(chan []byte, 8)}
	s.resetLocked(false)
	go s.route()
	return s
}

// Next readies the signal for the session's next peer (a sharer serving
// one receiver after another on the same connection): until that peer
// joins, the previous one leaving is not taken for it. No Ready may be in
// flight.
func (s *RendezvousSignal) Next() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked(true)
	if s.nextJoined {
		s.nextJoined = false
		s.joinedLocked()
		s.relay, s.nextRelay = s.nextRelay, nil
	}
}

// OfferRelay hands the signal the relay slot the server gave with the
// join (JoinResult.Relay), for the round's first Relay, and the spare
// connection that is to carry it (nil: Relay dials the relay). The signal
// owns spare from then on (Stop closes it if unused).
func (s *RendezvousSignal) OfferRelay(r *rendezvous.RelayResult, spare *rendezvous.Spare) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relay = r
	s.spare.Close()
	s.spare = spare
}

func (s *RendezvousSignal) resetLocked(waitJoin bool) {
	s.waiters = map[rendezvous.AttemptID]chan rendezvous.PunchGo{}
	s.early = map[rendezvous.AttemptID]rendezvous.PunchGo{}
	s.peerGone, s.gone = make(chan struct{}), false
	s.joined, s.hasJoined = make(chan struct{}), false
	s.waitJoin = waitJoin
	s.relay = nil
}

// PeerGone is closed when the server reports that the current peer left.
func (s *RendezvousSignal) PeerGone() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerGone
}

// Joined is closed when the server reports that a peer joined the
// creator's session (since the signal started, or since Next).
func (s *RendezvousSignal) Joined() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined
}

// joinedLocked marks the current round's peer as joined.
func (s *RendezvousSignal) joinedLocked() {
	s.waitJoin = false
	clear(s.early) // nothing from before this peer is for it
	s.hasJoined = true
	close(s.joined)
}

func (s *RendezvousSignal) goneLocked() {
	if !s.gone {
		s.gone = true
		close(s.peerGone)
	}
}

func (s *RendezvousSignal) route() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.Client.Done():
			s.mu.Lock()
			s.goneLocked()
			s.mu.Unlock()
			return
		case n := <-s.Client.Notifications():
			s.mu.Lock()
			s.handleLocked(n)
			s.mu.Unlock()
		}
	}
}

// handleLocked routes one notification; s.mu is held.
func (s *RendezvousSignal) handleLocked(n rendezvous.Notification) {
	switch n.Method {
	case rendezvous.NotifyPunch:
		var g rendezvous.PunchGo
		if err := json.Unmarshal(n.Params, &g); err != nil || g.Session != s.Session {
			return
		}
		s.offset = time.Until(time.UnixMilli(g.ServerTime))
		if w := s.waiters[g.Attempt]; w != nil {
			delete(s.waiters, g.Attempt)
			w <- g
		} else if len(s.early) < 64 {
			s.early[g.Attempt] = g
		}
	case rendezvous.NotifyPeerJoined:
		var ev rendezvous.PeerEvent
		if json.Unmarshal(n.Params, &ev) != nil || ev.Session != s.Session {
			return
		}
		if s.hasJoined {
			// The current peer's place was freed and taken again before
			// Next: this join is the next round's.
			s.nextJoined, s.nextRelay = true, ev.Relay
			return
		}
		s.joinedLocked()
		s.relay = ev.Relay
	case rendezvous.NotifyMessage:
		var m rendezvous.MessageParams
		if json.Unmarshal(n.Params, &m) != nil || m.Session != s.Session {
			return
		}
		select {
		case s.messages <- m.Data:
		default: // more than the server lets a peer send: not this peer's
		}
	case rendezvous.NotifyPeerLeft:
		var ev rendezvous.PeerEvent
		if json.Unmarshal(n.Params, &ev) != nil || ev.Session != s.Session {
			return
		}
		switch {
		case s.nextJoined: // the next round's peer left before its round began
			s.nextJoined, s.nextRelay = false, nil
		case !s.waitJoin:
			s.goneLocked()
		}
	}
}

// Observe implements Signal.
// A local endpoint in the other address family than the server's
// observes at the server's endpoint in that family when it has one (a
// dual-stack session's attempt), with the probe key that makes the
// server accept the mapping in this peer's candidates.
func (s *RendezvousSignal) Observe(ctx context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	server, g := s.Server, s.Client.Greeting()
	if sockopt.Is6(local.Addr()) != sockopt.Is6(server.Addr()) {
		// Without an endpoint in local's family (not a dual-stack
		// session), the probe goes to the server in its own family from
		// the same port (sockopt.Dial takes the server's family).
		if e := endpointIn(g.Endpoints, sockopt.Is6(local.Addr())); e.IsValid() {
			server = e
		}
	}
	m, c, err := rendezvous.Observe(ctx, server, local, g.ProbeKey)
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
	m, c, err := rendezvous.Observe(ctx, s.Secondary, local, "")
	if err != nil {
		return m, nil, err
	}
	return m, c, nil
}

// Families implements DualStack: both when the server's hello named an
// endpoint in each address family (both peers hear the same hello, so
// they schedule the same attempts), IPv6 first.
func (s *RendezvousSignal) Families() []string {
	g := s.Client.Greeting()
	if endpointIn(g.Endpoints, true).IsValid() && endpointIn(g.Endpoints, false).IsValid() {
		return []string{rendezvous.FamilyIPv6, rendezvous.FamilyIPv4}
	}
	return nil
}

// endpointIn is the first of eps in IPv6 (v6) or IPv4.
func endpointIn(eps []netip.AddrPort, v6 bool) netip.AddrPort {
	for _, e := range eps {
		if sockopt.Is6(e.Addr()) == v6 {
			return e
		}
	}
	return netip.AddrPort{}
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
	case <-s.PeerGone():
		return rendezvous.PunchGo{}, ErrPeerGone
	case <-ctx.Done():
		return rendezvous.PunchGo{}, fmt.Errorf("waiting for the peer: %w", ctx.Err())
	}
}

// Relay implements Signal.
func (s *RendezvousSignal) Relay(ctx context.Context) (net.Conn, error) {
	s.mu.Lock()
	offered, spare := s.relay, s.spare
	s.relay, s.spare = nil, nil
	s.mu.Unlock()
	if offered != nil && spare != nil {
		c, err := spare.Relay(ctx, *offered)
		spare.Close()
		if err == nil || ctx.Err() != nil {
			return c, err
		}
	}
	if offered != nil {
		c, err := rendezvous.DialRelay(ctx, *offered)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		// The slot given with the join did not work (the relay may have
		// restarted, or dropped an unused token): ask for it anew.
	}
	r, err := s.Client.Relay(ctx, s.Session)
	if err != nil {
		return nil, err
	}
	return rendezvous.DialRelay(ctx, r)
}

// ServerRTT is the kernel's smoothed round trip to the server (0 when
// unknown); traversal reads it through serverRTT.
func (s *RendezvousSignal) ServerRTT() time.Duration { return s.Client.RTT() }

// ServerOffset implements Signal.
func (s *RendezvousSignal) ServerOffset() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset
}
