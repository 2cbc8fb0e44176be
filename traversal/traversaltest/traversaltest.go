// Package traversaltest provides an in-memory traversal.Signal for tests:
// two peers on one host (loopback, no NAT) paired through a Hub that plays
// the rendezvous server's part (observed endpoints, candidate exchange with
// roles and start times, a relay made of a socket pair).
package traversaltest

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/machsend/machsend/rendezvous"
)

// Hub pairs the two peers of one session.
type Hub struct {
	// Observed maps a local port to the "public" endpoint reported for it;
	// by default every port is observed as 127.0.0.1:port (no NAT).
	Observed func(local netip.AddrPort) netip.AddrPort
	// ObservedFor, when set, overrides Observed per role ("a" or "b"): a
	// peer that lies about its candidates.
	ObservedFor func(role string, local netip.AddrPort) netip.AddrPort
	// RelayOff makes Relay fail.
	RelayOff bool

	mu     sync.Mutex
	ready  map[rendezvous.AttemptID]map[string]chan rendezvous.PunchGo
	params map[rendezvous.AttemptID]map[string]rendezvous.Candidates
	relay  map[string]net.Conn
	delay  time.Duration
}

// NewHub makes a hub whose punches start lead after the second peer is ready.
func NewHub(lead time.Duration) *Hub {
	return &Hub{ready: map[rendezvous.AttemptID]map[string]chan rendezvous.PunchGo{},
		params: map[rendezvous.AttemptID]map[string]rendezvous.Candidates{}, relay: map[string]net.Conn{}, delay: lead}
}

// Signal returns the signalling endpoint of one role ("a" or "b").
func (h *Hub) Signal(role string) *Signal { return &Signal{hub: h, role: role} }

// Signal is one peer's side of a Hub; it implements traversal.Signal.
type Signal struct {
	hub  *Hub
	role string
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func (s *Signal) observed(local netip.AddrPort) netip.AddrPort {
	if s.hub.ObservedFor != nil {
		return s.hub.ObservedFor(s.role, local)
	}
	if s.hub.Observed != nil {
		return s.hub.Observed(local)
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), local.Port())
}

// Observe implements traversal.Signal.
func (s *Signal) Observe(_ context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	return s.observed(local), nopCloser{}, nil
}

// ObserveSecondary implements traversal.Signal.
func (s *Signal) ObserveSecondary(_ context.Context, local netip.AddrPort) (netip.AddrPort, io.Closer, error) {
	return s.observed(local), nopCloser{}, nil
}

// ServerOffset implements traversal.Signal.
func (s *Signal) ServerOffset() time.Duration { return 0 }

// Ready implements traversal.Signal.
func (s *Signal) Ready(ctx context.Context, attempt rendezvous.AttemptID, c rendezvous.Candidates) (rendezvous.PunchGo, error) {
	h := s.hub
	ch := make(chan rendezvous.PunchGo, 1)
	h.mu.Lock()
	if h.ready[attempt] == nil {
		h.ready[attempt] = map[string]chan rendezvous.PunchGo{}
		h.params[attempt] = map[string]rendezvous.Candidates{}
	}
	h.ready[attempt][s.role] = ch
	h.params[attempt][s.role] = c
	if len(h.ready[attempt]) == 2 {
		now := time.Now()
		for role, w := range h.ready[attempt] {
			other := rendezvous.RoleA
			if role == rendezvous.RoleA {
				other = rendezvous.RoleB
			}
			r := rendezvous.Responder
			if role == attempt.Initiator() {
				r = rendezvous.Initiator
			}
			w <- rendezvous.PunchGo{Attempt: attempt, Role: r, Peer: h.params[attempt][other],
				StartAt: now.Add(h.delay).UnixMilli(), ServerTime: now.UnixMilli()}
		}
		delete(h.ready, attempt)
		delete(h.params, attempt)
	}
	h.mu.Unlock()
	select {
	case g := <-ch:
		return g, nil
	case <-ctx.Done():
		return rendezvous.PunchGo{}, ctx.Err()
	}
}

// Relay implements traversal.Signal with a loopback TCP pair.
func (s *Signal) Relay(ctx context.Context) (net.Conn, error) {
	h := s.hub
	if h.RelayOff {
		return nil, rendezvous.ErrRelayDisabled
	}
	h.mu.Lock()
	if peer, ok := h.relay["waiting"]; ok {
		delete(h.relay, "waiting")
		h.mu.Unlock()
		return peer, nil
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	defer ln.Close()
	other, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	mine, err := ln.Accept()
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	h.relay["waiting"] = other
	h.mu.Unlock()
	return mine, nil
}
