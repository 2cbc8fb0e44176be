package traversal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal/model"
)

// Timing constants of the punching methods.
const (
	// responderDelay lets the initiator's SYN reach the responder's NAT
	// before the responder's SYN leaves it (Machsend 2009, STUNT #2-hold):
	// the order those methods are built on.
	responderDelay = 100 * time.Millisecond
	// lowTTLMargin is what STUNT #2's responder waits beyond the start skew
	// the peers' round trips to the server allow (lowTTLDelay).
	lowTTLMargin = 10 * time.Millisecond
	// retryDelay is how soon p2pnat retries a connect refused or reset.
	retryDelay = model.P2PRetry
	// holdRestore is when STUNT #2-hold restores the TTL of its pending connect.
	holdRestore = 20 * time.Millisecond
	authTimeout = 3 * time.Second
)

// attempt is one attempt in progress.
type attempt struct {
	r      *race
	rec    *Attempt
	port   uint16
	ln     *net.TCPListener
	unspec netip.Addr // 0.0.0.0 or ::, the family of the attempt's sockets
	self   rendezvous.Candidates
	peer   rendezvous.Candidates
	role   string // Initiator or Responder
	start  time.Time
	closer io.Closer // keeps the observed mapping alive

	mu    sync.Mutex
	found bool
}

func (a *attempt) emit(kind, detail string, remote netip.AddrPort) {
	a.r.emit(Event{Kind: kind, Method: a.rec.Method, Attempt: a.rec.Attempt, Role: a.role,
		Local: a.anyAddr(a.port), Remote: remote, Detail: detail})
}

// anyAddr is port p on the unspecified address of the attempt's family
// (IPv4 before it is known).
func (a *attempt) anyAddr(p uint16) netip.AddrPort {
	if !a.unspec.IsValid() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), p)
	}
	return netip.AddrPortFrom(a.unspec, p)
}

// target is where punching methods aim: the predicted mapping if the peer's
// NAT allocates sequentially, else its observed mapping.
func (a *attempt) target() (netip.AddrPort, bool) {
	if len(a.peer.Predicted) > 0 {
		return a.peer.Predicted[0], true
	}
	return a.peer.Public, false
}

// offer authenticates a connection and hands it to the race. It reports
// whether the connection was accepted as this attempt's result.
func (a *attempt) offer(c net.Conn) bool {
	remote := AddrPortOf(c.RemoteAddr())
	// Once the race is decided, an authentication still in progress ends
	// at once instead of holding Connect up for its round trips.
	stop := context.AfterFunc(a.r.ctx, func() { _ = c.SetDeadline(time.Now()) })
	err := authenticate(c, a.r.cfg.Secret, a.r.cfg.Session, a.r.cfg.Role, authTimeout)
	if !stop() && err == nil {
		err = errors.New("the race ended during authentication")
	}
	if err != nil {
		a.emit("auth-failed", err.Error(), remote)
		c.Close()
		return false
	}
	a.mu.Lock()
	first := !a.found
	a.found = true
	if first {
		a.rec.Target = remote
		a.rec.Authenticated = a.r.cfg.Clock.Now()
	}
	a.mu.Unlock()
	a.emit("authenticated", "", remote)
	// Every authenticated connection goes to the race: the peer may have
	// kept a different one of several, and A's nomination decides.
	a.r.offers <- offer{conn: c, attempt: a.rec}
	return true
}

// run performs one attempt; it reports whether it produced a connection.
func (r *race) run(ctx context.Context, id rendezvous.AttemptID) bool {
	rec := &Attempt{Attempt: id.String(), ID: id, Method: id.Method, Start: r.cfg.Clock.Now()}
	r.mu.Lock()
	r.attempts = append(r.attempts, rec)
	r.mu.Unlock()
	a := &attempt{r: r, rec: rec}
	err := a.do(ctx)
	end := r.cfg.Clock.Now()
	if a.ln != nil {
		a.ln.Close()
	}
	if a.closer != nil {
		a.closer.Close()
	}
	a.mu.Lock()
	found := a.found
	a.mu.Unlock()
	outcome, detail := "timeout", ""
	switch {
	case found:
		outcome = "connected"
	case errors.Is(err, ErrNotApplicable):
		outcome, detail = "not-applicable", err.Error()
	case errors.Is(err, ErrAuth):
		outcome, detail = "auth-failed", err.Error()
	case errors.Is(err, context.Canceled):
		outcome = "canceled"
	case err != nil:
		outcome, detail = rendezvous.Outcome(err), err.Error()
	}
	r.mu.Lock() // the race reads outcomes while other attempts run (anyFound)
	rec.End, rec.Outcome, rec.Error = end, outcome, detail
	r.mu.Unlock()
	a.emit("attempt-end", outcome+" "+detail, rec.Target)
	return found
}

func (a *attempt) do(ctx context.Context) error {
	cfg := a.r.cfg
	if a.rec.Method == method.Relay {
		a.emit("attempt-start", "", netip.AddrPort{})
		c, err := cfg.Signal.Relay(ctx)
		if err != nil {
			return err
		}
		if !a.offer(c) {
			return ErrAuth
		}
		return nil
	}
	g, err := a.prepare(ctx)
	if err != nil {
		return err
	}
	a.r.mu.Lock() // the nomination reads it (race.grace)
	a.rec.Ready = cfg.Clock.Now()
	a.r.mu.Unlock()
	a.peer, a.role = g.Peer, g.Role
	a.rec.Role, a.rec.PeerPublic = g.Role, g.Peer.Public
	a.start = time.UnixMilli(g.StartAt).Add(-cfg.Signal.ServerOffset())
	if g.Peer.Mapping != "" && a.self.Mapping != "" {
		a.r.expectOnce.Do(func() {
			a.emit("expect", model.Expect(a.self.Mapping, len(a.self.Predicted) > 0, g.Peer.Mapping, len(g.Peer.Predicted) > 0), g.Peer.Public)
		})
	}
	a.emit("attempt-start", fmt.Sprintf("peer public %s predicted %v private %v", g.Peer.Public, g.Peer.Predicted, g.Peer.Private), g.Peer.Public)
	if err := a.waitUntil(ctx, a.start); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, attemptBudget(a.rec.Method, cfg.AttemptTimeout, a.self.ServerRTTms, g.Peer.ServerRTTms))
	defer cancel()
	run, ok := runners[a.rec.Method]
	if !ok {
		return fmt.Errorf("method %s has no run function in traversal's runners", a.rec.Method)
	}
	return run(a, ctx, actx)
}

// prepare takes the attempt's local port in its family, observes the
// port's mapping at the server and exchanges candidates with the peer.
// An attempt of a dual-stack session (its ID names a family) that this
// host cannot make in its family (no address in it, or no route to the
// server's endpoint in it) still readies, with no public endpoint, so
// that the peer learns it and ends its twin; either side that has no
// path in the family ends the attempt as not applicable.
func (a *attempt) prepare(ctx context.Context) (rendezvous.PunchGo, error) {
	cfg := a.r.cfg
	a.unspec = attemptFamily(a.rec.ID.Family, cfg.NAT.Public)
	pub, err := a.observe(ctx)
	if err != nil && a.rec.ID.Family == "" {
		return rendezvous.PunchGo{}, err
	}
	if err != nil {
		g, rerr := cfg.Signal.Ready(ctx, a.rec.ID, rendezvous.Candidates{ServerRTTms: serverRTTms(cfg.Signal)})
		if rerr != nil {
			return g, rerr
		}
		return g, fmt.Errorf("%w: no path in %s here: %w", ErrNotApplicable, a.rec.ID.Family, err)
	}
	a.rec.Public = pub
	a.self = rendezvous.Candidates{Public: pub, TTL: cfg.NAT.TTL, ServerRTTms: serverRTTms(cfg.Signal)}
	if sockopt.Is6(pub.Addr()) == sockopt.Is6(cfg.NAT.Public) { // what the NAT probe learnt is of this family
		a.self.Predicted, a.self.Mapping = cfg.NAT.Predict(pub), cfg.NAT.Mapping
	}
	for _, ip := range cfg.Private {
		if sockopt.Is6(ip) == sockopt.Is6(a.unspec) {
			a.self.Private = append(a.self.Private, netip.AddrPortFrom(ip, a.port))
		}
	}
	g, err := cfg.Signal.Ready(ctx, a.rec.ID, a.self)
	if err == nil && !g.Peer.Public.IsValid() && a.rec.ID.Family != "" {
		err = fmt.Errorf("%w: the peer has no path in %s", ErrNotApplicable, a.rec.ID.Family)
	}
	return g, err
}

// observe takes the attempt's local port and the mapping the server
// observes for it.
func (a *attempt) observe(ctx context.Context) (netip.AddrPort, error) {
	var err error
	if a.ln, a.port, err = sockopt.FreePortFor(ctx, a.unspec); err != nil {
		return netip.AddrPort{}, err
	}
	a.rec.Local = a.anyAddr(a.port)
	pub, closer, err := a.r.cfg.Signal.Observe(ctx, a.anyAddr(a.port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("observe mapping: %w", err)
	}
	a.closer = closer
	return pub, nil
}

// attemptFamily is the unspecified address of an attempt's family: the
// family its ID names in a dual-stack session, else the one in which the
// server saw this host (the peer's public endpoint comes from the same
// server).
func attemptFamily(family string, public netip.Addr) netip.Addr {
	switch {
	case family == rendezvous.FamilyIPv6:
		return netip.IPv6Unspecified()
	case family == "" && sockopt.Is6(public):
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// runners runs each method of method.Table after the attempt is prepared:
// actx is bounded by the attempt timeout; ctx (the race's) outlives it for
// methods that keep a socket past the attempt. The relay is run before any
// preparation, in do. TestEveryMethodRuns fails when a row has no runner.
var runners = map[Method]func(a *attempt, ctx, actx context.Context) error{
	method.LAN:        func(a *attempt, _, actx context.Context) error { return a.lan(actx) },
	method.Direct:     func(a *attempt, _, actx context.Context) error { return a.direct(actx) },
	method.Machsend:   func(a *attempt, _, actx context.Context) error { return a.machsend(actx, 0, false) },
	method.STUNT2:     func(a *attempt, _, actx context.Context) error { return a.machsend(actx, a.lowTTL(), false) },
	method.STUNT2Hold: func(a *attempt, _, actx context.Context) error { return a.machsend(actx, a.lowTTL(), true) },
	method.P2PNAT:     func(a *attempt, _, actx context.Context) error { return a.p2pnat(actx) },
	method.Sequential: func(a *attempt, ctx, actx context.Context) error { return a.sequential(ctx, actx) },
	method.STUNT1:     func(a *attempt, _, actx context.Context) error { return a.stunt1(actx) },
	method.NATBlaster: func(a *attempt, _, actx context.Context) error { return a.natblaster(actx) },
	method.Relay:      nil, // run in do, before preparation
}

// serverRTTms is the signal's round trip to the server in milliseconds, if
// it knows it (RendezvousSignal does, from the kernel); 0 otherwise.
func serverRTTms(s Signal) float64 {
	if r, ok := s.(interface{ ServerRTT() time.Duration }); ok {
		return float64(r.ServerRTT().Microseconds()) / 1000
	}
	return 0
}

// attemptBudget bounds an attempt of method m: fixed when set (the
// experiments give every attempt the same budget, which the model
// predicts with), else model.AttemptBudgetFor the peers' round trip
// through the server (the sum of their round trips to it, in ms; unknown
// when either is 0). A LAN or public peer answers within a round trip,
// and an unreachable one should not hold up the punching phase, so a LAN
// or direct attempt is also bounded by localTimeout.
func attemptBudget(m Method, fixed time.Duration, ownMs, peerMs float64) time.Duration {
	budget := fixed
	if budget <= 0 {
		var rtt time.Duration
		if ownMs > 0 && peerMs > 0 {
			rtt = time.Duration((ownMs + peerMs) * float64(time.Millisecond))
		}
		budget = model.AttemptBudgetFor(rtt)
	}
	if p := m.Path(); p == method.PathLAN || p == method.PathDirect {
		budget = min(budget, localTimeout(ownMs, peerMs))
	}
	return budget
}

// Bounds of localTimeout.
const (
	localTimeoutMin = 300 * time.Millisecond
	localTimeoutMax = time.Second
)

// localTimeout bounds a LAN or direct attempt: the peer, if it can be
// reached at all, answers within a round trip between the peers, which is
// at most the two round trips to the server (through it). Twice that,
// within [localTimeoutMin, localTimeoutMax]: the floor absorbs a loaded
// host's scheduling; the ceiling (and the value when either round trip is
// unknown) is the fixed second this replaced. Both peers compute the same
// value from the same two numbers.
func localTimeout(ownMs, peerMs float64) time.Duration {
	if ownMs <= 0 || peerMs <= 0 {
		return localTimeoutMax
	}
	d := time.Duration(2 * (ownMs + peerMs) * float64(time.Millisecond))
	return min(max(d, localTimeoutMin), localTimeoutMax)
}

// lowTTLDelay is how long STUNT #2's responder waits before its SYN. The
// initiator's low-TTL SYN dies before the responder's NAT, so the order
// there does not matter: the responder's SYN must only find the
// initiator's entry made, i.e. reach the initiator's NAT after the
// initiator started. The starts differ by at most half the difference of
// the two round trips to the server (none when the server timed them,
// which it does when it knows both), and the responder's SYN also takes
// the path's one-way delay: it waits that bound plus lowTTLMargin, and
// never longer than responderDelay. An unknown round trip gets
// responderDelay.
func lowTTLDelay(ownMs, peerMs float64) time.Duration {
	if ownMs <= 0 || peerMs <= 0 {
		return responderDelay
	}
	skew := time.Duration(math.Abs(ownMs-peerMs) / 2 * float64(time.Millisecond))
	return min(skew+lowTTLMargin, responderDelay)
}

func (a *attempt) waitUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(a.r.cfg.Clock.Now())
	if d <= 0 {
		return nil
	}
	select {
	case <-a.r.cfg.Clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lowTTL is the TTL of STUNT #2's SYN: through our own NATs, not to the peer's.
func (a *attempt) lowTTL() int {
	if a.self.TTL > 0 {
		return a.self.TTL
	}
	return 2
}

// acceptLoop offers every connection the attempt's listener accepts.
func (a *attempt) acceptLoop(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { a.ln.SetDeadline(time.Now()) })
	defer stop()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		a.emit("accepted", "", AddrPortOf(c.RemoteAddr()))
		if a.offer(c) {
			return nil
		}
	}
}

// dialOffer connects from laddr to raddr and offers the connection.
func (a *attempt) dialOffer(ctx context.Context, laddr, raddr netip.AddrPort) error {
	a.emit("connect", "", raddr)
	c, err := sockopt.Dial(ctx, laddr, raddr, 0)
	if err != nil {
		a.emit("connect-failed", rendezvous.Outcome(err), raddr)
		return err
	}
	if !a.offer(c) {
		return ErrAuth
	}
	return nil
}

// firstOf runs fns in parallel and returns nil as soon as the attempt has a
// connection, or the first error once all have finished.
func (a *attempt) firstOf(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(fns))
	for _, f := range fns {
		go func() { errc <- f(ctx) }()
	}
	var first error
	for range fns {
		err := <-errc
		a.mu.Lock()
		found := a.found
		a.mu.Unlock()
		if found {
			return nil
		}
		if first == nil || errors.Is(first, context.Canceled) || errors.Is(first, context.DeadlineExceeded) {
			if err != nil {
				first = err
			}
		}
	}
	return first
}

// lan: both peers listen on their port and connect to the peer's private
// endpoints. Only when both are behind the same public address.
func (a *attempt) lan(ctx context.Context) error {
	if a.peer.Public.Addr() != a.self.Public.Addr() || len(a.peer.Private) == 0 {
		return fmt.Errorf("%w: peer is behind %s, we are behind %s", ErrNotApplicable, a.peer.Public.Addr(), a.self.Public.Addr())
	}
	fns := []func(context.Context) error{a.acceptLoop}
	for _, t := range a.peer.Private {
		fns = append(fns, func(ctx context.Context) error { return a.dialOffer(ctx, a.anyAddr(a.port), t) })
	}
	return a.firstOf(ctx, fns...)
}

// direct: both listen; each connects to the other's observed public
// endpoint from a fresh port, which only works when that endpoint accepts
// unsolicited connections (a public host, or endpoint-independent filtering).
func (a *attempt) direct(ctx context.Context) error {
	return a.firstOf(ctx, a.acceptLoop, func(ctx context.Context) error {
		return a.dialOffer(ctx, netip.AddrPort{}, a.peer.Public)
	})
}

// machsend is the 2009 method and its STUNT #2 variants. The initiator sends
// one SYN to the responder's mapping from its port and closes the socket
// (ttl > 0: the SYN carries a low TTL and dies before the responder's NAT),
// then listens on that port; with hold, the low-TTL connect is instead kept
// pending with its TTL restored, so the responder's SYN completes a
// simultaneous open on the same ISN. The responder, a moment later,
// connects from the port the SYN was sent to, to the initiator's mapping.
func (a *attempt) machsend(ctx context.Context, ttl int, hold bool) error {
	t, predicted := a.target()
	a.rec.Target, a.rec.Predicted = t, predicted
	if a.role == rendezvous.Responder {
		a.ln.Close() // the responder only connects
		a.ln = nil
		delay := responderDelay
		if ttl > 0 && !hold {
			delay = lowTTLDelay(a.self.ServerRTTms, a.peer.ServerRTTms)
		}
		if err := a.waitUntil(ctx, a.r.cfg.Clock.Now().Add(delay)); err != nil {
			return err
		}
		return a.dialOffer(ctx, a.anyAddr(a.port), t)
	}
	s, err := sockopt.NewRawSocket(a.anyAddr(a.port), ttl)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Connect(t); err != nil {
		return err
	}
	a.emit("syn-sent", fmt.Sprintf("ttl %d hold %v", ttl, hold), t)
	if !hold {
		s.Close() // close in SYN_SENT sends nothing
		a.emit("listen", "", netip.AddrPort{})
		return a.acceptLoop(ctx)
	}
	a.ln.Close() // the holder completes its own connect; it does not listen
	a.ln = nil
	if err := a.waitUntil(ctx, a.r.cfg.Clock.Now().Add(holdRestore)); err != nil {
		return err
	}
	if err := s.SetTTL(64); err != nil {
		return err
	}
	if err := s.Wait(ctx); err != nil {
		return err
	}
	c, err := s.Conn()
	if err != nil {
		return err
	}
	if !a.offer(c) {
		return ErrAuth
	}
	return nil
}

// p2pnat is Ford, Srisuresh & Kegel's parallel TCP hole punching: both
// peers listen on their port and, from that same port, keep connecting to
// each of the peer's endpoints (predicted, public, private), retrying after
// a refusal or reset, until one connection (dialled, accepted or a
// simultaneous open) authenticates or the attempt times out.
func (a *attempt) p2pnat(ctx context.Context) error {
	targets := append(append([]netip.AddrPort{}, a.peer.Predicted...), a.peer.Public)
	for _, p := range a.peer.Private {
		if p != a.peer.Public {
			targets = append(targets, p)
		}
	}
	fns := []func(context.Context) error{a.acceptLoop}
	for i, t := range targets {
		fns = append(fns, func(ctx context.Context) error {
			// Stagger the targets (ICE-style pacing) so the first SYN, to the
			// best target, takes the NAT's next port, as the peer predicted.
			select {
			case <-a.r.cfg.Clock.After(time.Duration(i) * 20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			for {
				err := a.dialOffer(ctx, a.anyAddr(a.port), t)
				if err == nil || ctx.Err() != nil {
					return err
				}
				if !sockopt.Refused.Is(err) && !sockopt.Reset.Is(err) && !sockopt.Unreachable.Is(err) &&
					!sockopt.AddrNotAvail.Is(err) && !errors.Is(err, ErrAuth) {
					return err
				}
				select {
				case <-a.r.cfg.Clock.After(retryDelay):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
	}
	t, _ := a.target()
	a.rec.Target = t
	return a.firstOf(ctx, fns...)
}

// sequential is NatTrav's variant: the initiator's doomed connect opens its
// NAT, then it listens and tells the peer through the rendezvous; only then
// does the responder connect. The signalling replaces Machsend's timing.
func (a *attempt) sequential(outer, ctx context.Context) error {
	t, predicted := a.target()
	a.rec.Target, a.rec.Predicted = t, predicted
	listening := a.rec.ID.WithStep("listening")
	if a.role == rendezvous.Responder {
		a.ln.Close()
		a.ln = nil
		if _, err := a.r.cfg.Signal.Ready(ctx, listening, a.self); err != nil {
			return err
		}
		return a.dialOffer(ctx, a.anyAddr(a.port), t)
	}
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	c, err := sockopt.Dial(dctx, a.anyAddr(a.port), t, 0)
	cancel()
	if err == nil {
		// The "doomed" connect got through (the peer's NAT let it in). The
		// listener stays until it proves the peer: a connection that fails
		// (the peer's own listener, about to close, took it) leaves the
		// initiator listening as the method goes on.
		if a.offer(c) {
			a.ln.Close()
			a.ln = nil
			return nil
		}
	}
	a.emit("doomed-connect", rendezvous.Outcome(err), t)
	if _, err := a.r.cfg.Signal.Ready(ctx, listening, a.self); err != nil {
		return err
	}
	a.emit("listen", "", netip.AddrPort{})
	return a.acceptLoop(ctx)
}
