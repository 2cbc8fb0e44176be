package rendezvous

import (
	"crypto/rand"
	"math/big"
)

// Code sessions let a receiver join with a short code ("7-guitar-orbit")
// instead of a link. The code's words are a weak secret, so nothing
// derived from them may reach the server (it could try every code
// offline): the joiner presents no key, only the nameplate (the code's
// number). Instead the two peers run a PAKE over pair.message and derive a
// strong secret from it; the creator then registers a verifier of that
// secret (session.key) and the joiner proves it (session.prove), after
// which the pair is as proven as one joined with a link (relay included).
//
// A code buys one guess: a code session takes exactly one join, ever, and
// refuses joins by session id; a wrong guess fails the PAKE and the
// sender makes a new code. Nameplates are drawn at random among the free
// numbers below 2×(code sessions)+100, so they stay short and are not
// handed out in an order.

const (
	// MaxMessage bounds one pair.message.
	MaxMessage = 2048
	// maxMessages bounds the messages one member sends in a pair.
	maxMessages = 8
)

// allocNameplateLocked gives ss a free nameplate; s.mu is held.
func (s *Server) allocNameplateLocked(ss *session) {
	limit := int64(2*len(s.nameplates) + 100)
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(limit))
		np := int(n.Int64()) + 1
		if s.nameplates[np] == nil {
			s.nameplates[np] = ss
			ss.nameplate = np
			return
		}
	}
}

// joinCodeLocked finds the code session of nameplate np and spends its
// one join; s.mu is held.
func (c *client) joinCodeLocked(np int) (*session, error) {
	ss := c.srv.nameplates[np]
	switch {
	case ss == nil:
		return nil, rpcErr(CodeNoSession, "no share has this code (check the number before the first '-')")
	case ss.spent:
		return nil, rpcErr(CodeSpent, "codes work once: ask the sender for a new one")
	case len(c.sessions) >= c.srv.cfg.MaxSessionsPerClient:
		return nil, rpcErr(CodeLimit, "a connection may be in at most %d sessions", c.srv.cfg.MaxSessionsPerClient)
	}
	ss.spent = true
	return ss, nil
}

// pairMessage is pair.message: data goes to the other member of c's pair in
// a code session.
func (c *client) pairMessage(p MessageParams) (any, error) {
	if len(p.Data) == 0 || len(p.Data) > MaxMessage {
		return nil, rpcErr(CodeLimit, "a message holds 1 to %d bytes", MaxMessage)
	}
	s := c.srv
	s.mu.Lock()
	q, role, err := c.pairIn(p.Session)
	if err == nil && q.ss.nameplate == 0 {
		err = rpcErr(CodeBadState, "messages pass only in code sessions")
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if q.sent[role] >= maxMessages {
		s.mu.Unlock()
		return nil, rpcErr(CodeLimit, "at most %d messages per peer", maxMessages)
	}
	to := q.b
	if role == RoleB {
		to = q.a
	}
	if to == nil {
		s.mu.Unlock()
		return nil, rpcErr(CodeBadState, "nobody to send to yet")
	}
	if q.sent == nil {
		q.sent = map[string]int{}
	}
	q.sent[role]++
	s.mu.Unlock()
	to.notify(NotifyMessage, MessageParams{Session: p.Session, Data: p.Data})
	return struct{}{}, nil
}

// setKey is session.key: the creator of a code session registers the
// verifier of the secret the peers agreed on, once.
func (c *client) setKey(p SessionParams) (any, error) {
	v, err := parseDigest("verifier", p.Key)
	if err != nil {
		return nil, err
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	q, role, err := c.pairIn(p.Session)
	switch {
	case err != nil:
		return nil, err
	case role != RoleA || q.ss.nameplate == 0:
		return nil, rpcErr(CodeBadState, "only the creator of a code session sets its key")
	case q.ss.verifier != nil:
		return nil, rpcErr(CodeBadState, "the key is set already")
	}
	q.ss.verifier = &v
	return struct{}{}, nil
}

// prove is session.prove: the joiner of a code session shows the key
// whose verifier the creator registered; the pair is then proven, and
// gets the relay. A wrong key ends the joiner's place (one guess).
func (c *client) prove(p SessionParams) (any, error) {
	s := c.srv
	s.mu.Lock()
	q, role, err := c.pairIn(p.Session)
	switch {
	case err != nil:
	case role != RoleB || q.ss.nameplate == 0:
		err = rpcErr(CodeBadState, "only the joiner of a code session proves its key")
	case q.ss.verifier == nil:
		err = rpcErr(CodeBadState, "the creator has not set the key yet")
	case !keyMatches(p.Key, *q.ss.verifier):
		s.Stats.WrongKeys.Add(1)
		notes := s.leaveLocked(c, p.Session)
		s.mu.Unlock()
		sendNotes(notes)
		return nil, rpcErr(CodeWrongKey, "the key does not match")
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	q.proven = true
	s.mu.Unlock()
	return struct{}{}, nil
}

// codeSession reports whether ss is a code session.
func (ss *session) codeSession() bool { return ss.nameplate != 0 }
