package rendezvous

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// session is a share: an id, the verifier a joiner's key must match, and
// the pairs that serve it. pairs[0] is its creator's connection; the
// creator may attach more connections (session.attach, with the owner
// token only it was given), each waiting for a receiver of its own, so
// one share serves several receivers at once, every pair with its own
// candidates, punches and relay tokens.
type session struct {
	verifier *[32]byte // nil: anyone with the id may join
	owner    [32]byte  // SHA-256 of the owner token
	addr     netip.Addr
	created  time.Time
	expires  time.Time
	id       string
	pairs    []*pair
	serial   int // numbers pairs, for relay keys
	// A code session (codes.go) has a nameplate, and is spent once joined.
	nameplate int
	spent     bool
}

// pair is one sender connection (a) and the receiver it serves (b, nil
// until one joins).
type pair struct {
	ss    *session
	n     int
	a, b  *client
	ready map[AttemptID]map[string]ReadyParams // attempt -> role -> params
	relay map[string]string                    // role -> token
	// proven: the receiver showed the session's key (at its join, or with
	// session.prove in a code session); only then does it get its relay
	// token (the sender may hold its own before anyone joins: a splice
	// needs both).
	proven bool
	sent   map[string]int // role -> pair.messages sent (code sessions)
}

// key names the pair for the relay.
func (p *pair) key() string { return p.ss.id + "/" + strconv.Itoa(p.n) }

// roleOf is c's role in the pair.
func (p *pair) roleOf(c *client) string {
	if p.a == c {
		return RoleA
	}
	return RoleB
}

// creator is the connection that created the session.
func (ss *session) creator() *client { return ss.pairs[0].a }

// peerNote is a peer.left notification to send once s.mu is released.
type peerNote struct {
	to *client
	ev PeerEvent
}

func sendNotes(notes []peerNote) {
	for _, n := range notes {
		n.to.notify(NotifyPeerLeft, n.ev)
	}
}

// drop forgets a disconnected client and tells its peers.
func (s *Server) drop(c *client) {
	s.perAddr.put(c.remote.Addr())
	s.probe.dropClient(c)
	s.mu.Lock()
	delete(s.clients, c)
	delete(s.probeKeys, c.probeKey)
	if c.tcp != nil {
		s.tlsHeld--
	}
	var notes []peerNote
	for id := range c.sessions {
		notes = append(notes, s.leaveLocked(c, id)...)
	}
	s.mu.Unlock()
	sendNotes(notes)
}

// leaveLocked takes c out of session id: the creator leaving ends the
// session, an attached sender connection leaving ends its pair, a
// receiver leaving frees its place. It returns the notifications the
// others are owed; s.mu is held.
func (s *Server) leaveLocked(c *client, id string) []peerNote {
	p, ss := c.sessions[id], s.sessions[id]
	switch {
	case p == nil || ss == nil || p.ss != ss:
		delete(c.sessions, id)
		return nil
	case c == ss.creator():
		return s.removeSessionLocked(ss, c)
	case c == p.a:
		s.forgetRelayLocked(p)
		ss.pairs = slices.DeleteFunc(ss.pairs, func(q *pair) bool { return q == p })
		delete(c.sessions, id)
		if p.b != nil {
			delete(p.b.sessions, id)
			return []peerNote{{p.b, PeerEvent{Session: id, Role: RoleA}}}
		}
	default:
		s.forgetRelayLocked(p)
		p.b, p.ready, p.proven, p.sent = nil, nil, false, nil
		delete(c.sessions, id)
		return []peerNote{{p.a, PeerEvent{Session: id, Role: RoleB}}}
	}
	return nil
}

// leave is session.leave: the caller is done with the session.
func (c *client) leave(id string) (any, error) {
	s := c.srv
	s.mu.Lock()
	if _, _, err := c.pairIn(id); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	notes := s.leaveLocked(c, id)
	s.mu.Unlock()
	sendNotes(notes)
	return struct{}{}, nil
}

// removeSessionLocked forgets a session everywhere and returns the
// peer.left notifications its members other than except are owed; s.mu
// is held.
func (s *Server) removeSessionLocked(ss *session, except *client) []peerNote {
	delete(s.sessions, ss.id)
	if ss.nameplate != 0 {
		delete(s.nameplates, ss.nameplate)
	}
	if s.byAddr[ss.addr]--; s.byAddr[ss.addr] <= 0 {
		delete(s.byAddr, ss.addr)
	}
	ss.creator().owned--
	var notes []peerNote
	for _, p := range ss.pairs {
		s.forgetRelayLocked(p)
		for _, c := range []*client{p.a, p.b} {
			if c == nil {
				continue
			}
			delete(c.sessions, ss.id)
			if c != except {
				notes = append(notes, peerNote{c, PeerEvent{Session: ss.id, Role: RoleA}})
			}
		}
	}
	return notes
}

// joined reports whether any receiver is in the session.
func (ss *session) joined() bool {
	return slices.ContainsFunc(ss.pairs, func(p *pair) bool { return p.b != nil })
}

// evictIdleLocked makes room in a full session table fairly: the oldest
// session nobody has joined, of the address that holds the most sessions,
// goes (its creator learns it when the link stops working). It reports
// whether a session was evicted; s.mu is held.
func (s *Server) evictIdleLocked() bool {
	var top netip.Addr
	for a, n := range s.byAddr {
		if n > s.byAddr[top] {
			top = a
		}
	}
	var oldest *session
	for _, ss := range s.sessions {
		if ss.addr == top && !ss.joined() && (oldest == nil || ss.created.Before(oldest.created)) {
			oldest = ss
		}
	}
	if oldest == nil {
		return false
	}
	s.removeSessionLocked(oldest, nil)
	s.Stats.Evicted.Add(1)
	return true
}

func (c *client) create(p CreateParams) (any, error) {
	var verifier *[32]byte
	if p.Verifier != "" {
		v, err := parseDigest("verifier", p.Verifier)
		if err != nil {
			return nil, err
		}
		verifier = &v
	}
	token := make([]byte, 32)
	_, _ = rand.Read(token) // never fails on Linux
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := c.remote.Addr()
	if s.byAddr[addr] >= s.cfg.MaxSessionsPerAddr {
		return nil, rpcErr(CodeLimit, "this address holds its maximum of %d sessions", s.cfg.MaxSessionsPerAddr)
	}
	if len(s.sessions) >= s.cfg.MaxSessions && !s.evictIdleLocked() {
		return nil, rpcErr(CodeLimit, "server holds its maximum of %d sessions", s.cfg.MaxSessions)
	}
	if c.owned >= s.cfg.MaxSessionsPerClient || len(c.sessions) >= s.cfg.MaxSessionsPerClient {
		return nil, rpcErr(CodeLimit, "a connection may hold at most %d sessions", s.cfg.MaxSessionsPerClient)
	}
	now := time.Now()
	ss := &session{id: newID(), addr: addr, created: now, expires: now.Add(s.cfg.SessionTTL), verifier: verifier,
		owner: sha256.Sum256(token)}
	ss.pairs = []*pair{{ss: ss, a: c}}
	ss.serial = 1
	s.sessions[ss.id] = ss
	if p.Code {
		ss.verifier = nil // set after the peers' PAKE (session.key)
		s.allocNameplateLocked(ss)
	}
	s.byAddr[addr]++
	c.joinLocked(ss.pairs[0])
	c.owned++
	s.Stats.Sessions.Add(1)
	s.log.Info("session created", "remote", c.remote)
	return CreateResult{Session: ss.id, Expires: ss.expires, Owner: hex.EncodeToString(token), Nameplate: ss.nameplate}, nil
}

func validSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// lookupLocked finds session id for a join or an attach; s.mu is held.
func (c *client) lookupLocked(id string) (*session, error) {
	if !validSessionID(id) {
		return nil, rpcErr(CodeNoSession, "malformed session id")
	}
	ss := c.srv.sessions[id]
	if ss == nil {
		return nil, rpcErr(CodeNoSession, "no such session")
	}
	if len(c.sessions) >= c.srv.cfg.MaxSessionsPerClient {
		return nil, rpcErr(CodeLimit, "a connection may be in at most %d sessions", c.srv.cfg.MaxSessionsPerClient)
	}
	return ss, nil
}

// join puts c in the first pair of session id that has no receiver yet.
func (c *client) join(p SessionParams) (any, error) {
	s := c.srv
	s.mu.Lock()
	if q := c.sessions[p.Session]; q != nil {
		s.mu.Unlock()
		if q.b == c {
			return JoinResult{Session: p.Session, Role: RoleB}, nil
		}
		return nil, rpcErr(CodeBadState, "cannot join your own session")
	}
	ss, err := c.joinTargetLocked(p)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if !ss.codeSession() && ss.verifier != nil && !keyMatches(p.Key, *ss.verifier) {
		s.mu.Unlock()
		s.Stats.WrongKeys.Add(1)
		return nil, rpcErr(CodeWrongKey, "the join key does not match the session's verifier")
	}
	i := slices.IndexFunc(ss.pairs, func(q *pair) bool { return q.b == nil })
	if i < 0 {
		s.mu.Unlock()
		return nil, rpcErr(CodeSessionFull, "session already has a receiver on each of its %d sender connections", len(ss.pairs))
	}
	q := ss.pairs[i]
	q.b, q.proven = c, !ss.codeSession() && ss.verifier != nil
	c.joinLocked(q)
	// Both relay slots go out with the join, so a pair that starts on the
	// relay spends no round trip asking for them.
	relayA, relayB := s.relayTokenLocked(q, RoleA), s.relayTokenLocked(q, RoleB)
	s.mu.Unlock()
	q.a.notify(NotifyPeerJoined, PeerEvent{Session: ss.id, Role: RoleB, Relay: relayA})
	return JoinResult{Session: ss.id, Role: RoleB, Relay: relayB}, nil
}

// joinTargetLocked is the session a join names: by nameplate a code
// session (spending its one join), by id any other; s.mu is held.
func (c *client) joinTargetLocked(p SessionParams) (*session, error) {
	if p.Nameplate != 0 {
		return c.joinCodeLocked(p.Nameplate)
	}
	ss, err := c.lookupLocked(p.Session)
	if err == nil && ss.codeSession() {
		return nil, rpcErr(CodeWrongKey, "this share is joined by its code, not its id")
	}
	return ss, err
}

// attach adds c to session id as a further sender connection, a pair
// waiting for a receiver of its own; only the creator's owner token
// allows it, and a share holds at most MaxPairs pairs.
func (c *client) attach(p SessionParams) (any, error) {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.sessions[p.Session] != nil {
		return nil, rpcErr(CodeBadState, "already in that session")
	}
	ss, err := c.lookupLocked(p.Session)
	if err != nil {
		return nil, err
	}
	if !keyMatches(p.Key, ss.owner) {
		s.Stats.WrongKeys.Add(1)
		return nil, rpcErr(CodeWrongKey, "the owner token does not match the session's")
	}
	if ss.codeSession() {
		return nil, rpcErr(CodeBadState, "a code serves one receiver")
	}
	if len(ss.pairs) >= s.cfg.MaxPairs {
		return nil, rpcErr(CodeLimit, "a share serves at most %d receivers at once", s.cfg.MaxPairs)
	}
	q := &pair{ss: ss, n: ss.serial, a: c}
	ss.serial++
	ss.pairs = append(ss.pairs, q)
	c.joinLocked(q)
	return JoinResult{Session: p.Session, Role: RoleA}, nil
}

// joinLocked records c's place in pair p; s.mu is held.
func (c *client) joinLocked(p *pair) {
	if c.sessions == nil {
		c.sessions = map[string]*pair{}
	}
	c.sessions[p.ss.id] = p
}

// pairIn returns c's pair in session id and its role there, or an error;
// s.mu is held.
func (c *client) pairIn(id string) (*pair, string, error) {
	p := c.sessions[id]
	if p == nil || c.srv.sessions[id] != p.ss {
		return nil, "", rpcErr(CodeNoSession, "not in that session")
	}
	return p, p.roleOf(c), nil
}

// readyLocked records c's candidates for an attempt; once both members of
// the pair have sent theirs it returns them and the pair's peers.
func (c *client) readyLocked(p ReadyParams) (both map[string]ReadyParams, a, b *client, err error) {
	q, role, err := c.pairIn(p.Session)
	if err != nil {
		return nil, nil, nil, err
	}
	if q.ready[p.Attempt] == nil {
		if len(q.ready) >= c.srv.cfg.MaxAttempts {
			return nil, nil, nil, rpcErr(CodeLimit, "too many pending attempts")
		}
		if q.ready == nil {
			q.ready = map[AttemptID]map[string]ReadyParams{}
		}
		q.ready[p.Attempt] = map[string]ReadyParams{}
	}
	q.ready[p.Attempt][role] = p
	both = q.ready[p.Attempt]
	if len(both) < 2 || q.b == nil {
		return nil, nil, nil, nil
	}
	delete(q.ready, p.Attempt)
	return both, q.a, q.b, nil
}

func (c *client) ready(p ReadyParams) (any, error) {
	s := c.srv
	if err := p.Attempt.Check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	probed := slices.Clone(c.probed)
	s.mu.Unlock()
	if err := p.Candidates.check(c.remote.Addr(), probed...); err != nil {
		return nil, err
	}
	p.minRTT, _ = c.minRTT() // c's own loop: its descriptor is live
	s.mu.Lock()
	both, a, b, err := c.readyLocked(p)
	s.mu.Unlock()
	if err != nil || both == nil {
		return struct{}{}, err
	}
	now := time.Now()
	leadA, leadB := s.startLeads(both[RoleA].minRTT, both[RoleB].minRTT)
	init := p.Attempt.Initiator()
	roleOf := func(r string) string {
		if r == init {
			return Initiator
		}
		return Responder
	}
	s.Stats.Punches.Add(1)
	s.log.Info("punch", "session", p.Session[:8], "attempt", p.Attempt.String(), "a", both[RoleA].Candidates.Public, "b", both[RoleB].Candidates.Public)
	forged, ferr := 0, ""
	if ca, cb := both[RoleA].Candidates, both[RoleB].Candidates; ca.Forge && cb.Forge && ca.SYN != nil && cb.SYN != nil {
		var err error
		if forged, err = s.forge(a.remote.Addr(), b.remote.Addr(), *ca.SYN, *cb.SYN); err != nil {
			ferr = err.Error()
			s.log.Info("forge", "session", p.Session[:8], "attempt", p.Attempt.String(), "err", err)
		}
	}
	a.notify(NotifyPunch, PunchGo{Session: p.Session, Attempt: p.Attempt, Role: roleOf(RoleA),
		Peer: both[RoleB].Candidates, StartAt: now.Add(leadA).UnixMilli(), ServerTime: now.UnixMilli(), Forged: forged, ForgeError: ferr})
	b.notify(NotifyPunch, PunchGo{Session: p.Session, Attempt: p.Attempt, Role: roleOf(RoleB),
		Peer: both[RoleA].Candidates, StartAt: now.Add(leadB).UnixMilli(), ServerTime: now.UnixMilli(), Forged: forged, ForgeError: ferr})
	return struct{}{}, nil
}

// startLeads is how long after punch.go reaches each peer it starts (a
// peer times its start from that message's arrival). Timed like DCUtR:
// the nearer peer waits half the difference of the two round trips, so
// both start when the farther one hears the message, and SYNs sent at the
// same moment meet on a path whose two halves are alike. The round trips
// are the kernel's minimum RTTs of the peers' connections (queueing and
// scheduling only ever add to an RTT); with one unknown, or
// Config.UnsyncedStarts, neither waits beyond PunchDelay.
func (s *Server) startLeads(rttA, rttB time.Duration) (a, b time.Duration) {
	a, b = s.cfg.PunchDelay, s.cfg.PunchDelay
	if s.cfg.UnsyncedStarts || rttA <= 0 || rttB <= 0 {
		return a, b
	}
	far := max(rttA, rttB)
	return a + (far-rttA)/2, b + (far-rttB)/2
}

func (c *client) relayOpen(id string) (any, error) {
	s := c.srv
	if !s.cfg.RelayAddr.IsValid() {
		return nil, rpcErr(CodeRelayOff, "relay disabled")
	}
	s.mu.Lock()
	q, role, err := c.pairIn(id)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	r := s.relayTokenLocked(q, role)
	s.mu.Unlock()
	if r == nil {
		return nil, rpcErr(CodeBadState, "the relay serves only sessions whose joiner proved the key")
	}
	return *r, nil
}

// relayTokenLocked is role's relay slot in pair q, its token made on first
// use and registered with the relay; nil when the server does not relay
// or q's session has no join verifier. The relay carries bytes only for
// a session created with a join verifier: its tokens go to the pair's
// members only, and the joiner's only to one that proved the link's
// secret, so a splice (both tokens) always joins two peers that know it;
// a session id alone never buys relay bandwidth. s.mu is held.
func (s *Server) relayTokenLocked(q *pair, role string) *RelayResult {
	if !s.cfg.RelayAddr.IsValid() || s.relay == nil || q.ss.verifier == nil || role == RoleB && !q.proven {
		return nil
	}
	tok := q.relay[role]
	if tok == "" {
		tok = newID()
		if q.relay == nil {
			q.relay = map[string]string{}
		}
		q.relay[role] = tok
	}
	s.relay.expect(tok, q.key(), role)
	return &RelayResult{Addr: s.cfg.RelayAddr, Token: tok}
}

// forgetRelayLocked ends pair q's relay slots: the pair's next members
// get tokens of their own, and these expire (relayTokenTTL). s.mu is held.
func (s *Server) forgetRelayLocked(q *pair) {
	q.relay = nil
}
