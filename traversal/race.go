package traversal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/rendezvous"
)

// Config describes one traversal.
type Config struct {
	Signal  Signal
	Session string
	// Role is this peer's role in the session (rendezvous.RoleA for the
	// creator, RoleB for the joiner). A nominates the connection both keep.
	Role   string
	Secret []byte
	Method Method
	// NAT is what ProbeNAT learned (port prediction, STUNT #2 TTL).
	NAT NATInfo
	// Private are the host addresses to offer as LAN candidates, each to
	// the attempts of its family (default: the host's non-loopback IPv4
	// addresses and its global and unique-local IPv6 ones).
	Private []netip.Addr
	// AttemptTimeout bounds every punching attempt when set. When zero,
	// each attempt's bound comes from the round trip between the peers
	// (model.AttemptBudgetFor the sum of both peers' round trips to the
	// server, which they exchange when ready): 2 s up to about 120 ms,
	// longer on slower paths, 3 s when a round trip is unknown.
	AttemptTimeout time.Duration
	// Grace bounds how long A waits, once it has a connection, for a
	// better path still being tried (default 250 ms): A waits until each
	// better attempt has had as long as the held one took (race.grace), at
	// most a round trip of the held connection, within Grace.
	Grace time.Duration
	// RelayAfter starts the relay in auto mode after this long even while
	// punching continues, as a fallback that is already up when punching
	// fails (default 3 s; negative: only after every punching attempt).
	RelayAfter time.Duration
	// NoRelay leaves the relay out of auto's race: the caller runs it
	// beside the race (a transfer that starts on the relay and moves to
	// the direct path the race finds).
	NoRelay bool
	Clock   Clock
	// Events receives every event (may be nil). It is called from several
	// goroutines; it must not block for long.
	Events func(Event)
}

func (c *Config) defaults() {
	if c.Grace <= 0 {
		c.Grace = 250 * time.Millisecond
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Private == nil {
		c.Private = hostAddrs()
	}
	if c.Method == "" {
		c.Method = method.Auto
	}
	if c.RelayAfter == 0 {
		c.RelayAfter = 3 * time.Second
	}
}

// chain is a list of attempts run one after another. A schedule is a list
// of phases; the chains of a phase run in parallel, and a phase starts only
// when the previous one ended without a connection. (Port prediction needs
// this: a concurrent attempt's connection would take the predicted port.)
type chain struct {
	at       time.Duration // offset within its phase
	attempts []rendezvous.AttemptID
}

// schedule returns the phases of attempts for a method, from method.Table.
// Both peers compute the same attempts, so their punch.ready names match.
// With overlap, auto runs every method at once (each method's rounds in
// turn) and the relay beside them after relayAfter (or after them when
// relayAfter is 0; never with noRelay). A peer overlaps only when its NAT
// maps endpoint-independently (or it has none): then each attempt's port
// has a mapping of its own. Behind a NAT that maps per destination, a
// concurrent attempt's SYN would take the port the peer predicted, so
// the attempts that cross the NAT take their ports one after another in
// one chain, p2pnat first; the LAN attempt, whose SYNs stay on the LAN,
// runs beside it; and direct comes after the punching methods, because
// p2pnat dials the same public endpoint from a port whose mapping the
// peer knows (the direct attempt before it cost a punch its port and a
// few round trips). The peers may choose differently: an attempt starts
// when both are ready for it. The raw-socket methods of 2005 come last in
// the table: both peers always list them (so their names match); a peer
// without raw sockets in a lab namespace says so in the exchange and both
// skip them.
func schedule(m Method, relayAfter time.Duration, noRelay, overlap bool) [][]chain {
	rounds := func(m Method, n int) []rendezvous.AttemptID {
		var out []rendezvous.AttemptID
		for i := 0; i < n; i++ {
			out = append(out, rendezvous.AttemptID{Method: m, Round: i})
		}
		return out
	}
	if m != method.Auto {
		spec, _ := method.Lookup(m)
		return [][]chain{{{0, rounds(m, max(spec.Rounds, 1))}}}
	}
	var first []chain // the methods that start at once
	var punch, late, relay []rendezvous.AttemptID
	for _, s := range method.Table {
		ids := rounds(s.Method, s.AutoRounds)
		switch {
		case s.Phase == method.PhaseRelay:
			relay = append(relay, ids...)
		case overlap, s.Method == method.LAN:
			first = append(first, chain{0, ids})
		case s.Phase == method.PhaseLocal:
			late = append(late, ids...)
		default:
			punch = append(punch, ids...)
		}
	}
	if !overlap {
		first = append(first, chain{0, append(punch, late...)})
	}
	switch {
	case noRelay:
		return [][]chain{first}
	case relayAfter > 0:
		return [][]chain{append(first, chain{relayAfter, relay})}
	}
	return [][]chain{first, {{0, relay}}}
}

// offer is an authenticated connection found by an attempt.
type offer struct {
	conn    net.Conn
	attempt *Attempt
}

// FamilyDelay is how long a dual-stack session's IPv4 attempts start
// after their IPv6 twins: RFC 8305's recommended Connection Attempt
// Delay (Happy Eyeballs), so that IPv6 wins where both families work
// alike and IPv4 costs only this much where IPv6 fails.
const FamilyDelay = 250 * time.Millisecond

// inFamilies runs a schedule's attempts in each of families (none or
// one: the schedule as it is): every chain but the relay's once per
// family, the i-th family's i*FamilyDelay later, its attempts named by
// their family. A NAT that maps per destination makes concurrent
// attempts take each other's predicted ports, but only within a family:
// IPv6 crosses no NAT.
func inFamilies(phases [][]chain, families []string) [][]chain {
	if len(families) < 2 {
		return phases
	}
	out := make([][]chain, len(phases))
	for i, ph := range phases {
		for _, ch := range ph {
			if len(ch.attempts) > 0 && ch.attempts[0].Method == method.Relay {
				out[i] = append(out[i], ch)
				continue
			}
			for k, f := range families {
				c := chain{at: ch.at + time.Duration(k)*FamilyDelay}
				for _, id := range ch.attempts {
					id.Family = f
					c.attempts = append(c.attempts, id)
				}
				out[i] = append(out[i], c)
			}
		}
	}
	return out
}

// race runs a schedule and agrees with the peer on one connection.
type race struct {
	cfg *Config
	// expectOnce emits the expected path once, when the first attempt
	// learns the peer's NAT class.
	expectOnce sync.Once
	start      time.Time
	offers     chan offer
	// ctx ends when the peers agreed on a connection (or the race
	// failed): an authentication still running then is cut short.
	ctx context.Context

	mu       sync.Mutex
	attempts []*Attempt
	running  map[rendezvous.AttemptID]Method
}

func (r *race) emit(e Event) {
	if r.cfg.Events != nil {
		if e.Time.IsZero() {
			e.Time = r.cfg.Clock.Now()
		}
		r.cfg.Events(e)
	}
}

// Connect establishes one authenticated connection to the session's peer by
// cfg.Method (auto races every method) and reports how.
func Connect(ctx context.Context, cfg Config) (net.Conn, *Report, error) {
	cfg.defaults()
	if cfg.Signal == nil || cfg.Session == "" || len(cfg.Secret) == 0 {
		return nil, nil, errors.New("traversal: Signal, Session and Secret are required")
	}
	if cfg.Role != rendezvous.RoleA && cfg.Role != rendezvous.RoleB {
		return nil, nil, fmt.Errorf("traversal: role %q (want a or b)", cfg.Role)
	}
	r := &race{cfg: &cfg, start: cfg.Clock.Now(), offers: make(chan offer, 64), running: map[rendezvous.AttemptID]Method{}}
	rep := &Report{Start: r.start, NAT: cfg.NAT}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx

	var wg sync.WaitGroup
	phases := schedule(cfg.Method, cfg.RelayAfter, cfg.NoRelay, cfg.NAT.Mapping.Easy())
	if d, ok := cfg.Signal.(DualStack); ok {
		phases = inFamilies(phases, d.Families())
	}
	for _, ph := range phases {
		for _, ch := range ph {
			for _, a := range ch.attempts {
				r.running[a] = a.Method
			}
		}
	}
	allDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var chains sync.WaitGroup
		for _, ph := range phases {
			var pw sync.WaitGroup
			for _, ch := range ph {
				pw.Add(1)
				chains.Add(1)
				go func() {
					defer chains.Done()
					defer pw.Done()
					r.runChain(ctx, ch)
				}()
			}
			pw.Wait()
			if ctx.Err() != nil || r.anyFound() {
				break
			}
		}
		chains.Wait()
		r.mu.Lock()
		clear(r.running)
		r.mu.Unlock()
	}()
	go func() { wg.Wait(); close(allDone) }()

	conn, won, err := r.agree(ctx, allDone)
	agreed := cfg.Clock.Now()
	cancel()
	wg.Wait()
	// Drain offers that arrived late.
	for {
		select {
		case o := <-r.offers:
			if o.conn != conn {
				o.conn.Close()
			}
			continue
		default:
		}
		break
	}
	r.mu.Lock()
	for _, a := range r.attempts {
		rep.Attempts = append(rep.Attempts, *a)
	}
	r.mu.Unlock()
	sort.Slice(rep.Attempts, func(i, j int) bool { return rep.Attempts[i].Start.Before(rep.Attempts[j].Start) })
	if err != nil {
		return nil, rep, err
	}
	rep.Method, rep.Attempt, rep.Path = won.Method, won.Attempt, string(won.Method.Path())
	rep.Local, rep.Remote = AddrPortOf(conn.LocalAddr()), AddrPortOf(conn.RemoteAddr())
	rep.ConnectTime = agreed.Sub(r.start)
	r.emit(Event{Kind: "connected", Method: won.Method, Attempt: won.Attempt, Local: rep.Local, Remote: rep.Remote,
		Detail: fmt.Sprintf("path %s after %s", rep.Path, rep.ConnectTime.Round(time.Millisecond))})
	return conn, rep, nil
}

// runChain runs a chain's attempts in order until one connects.
func (r *race) runChain(ctx context.Context, ch chain) {
	if ch.at > 0 {
		select {
		case <-r.cfg.Clock.After(ch.at):
		case <-ctx.Done():
			return
		}
	}
	for _, a := range ch.attempts {
		if ctx.Err() != nil {
			return
		}
		ok := r.run(ctx, a)
		r.mu.Lock()
		delete(r.running, a)
		r.mu.Unlock()
		if ok {
			return
		}
	}
}

// anyFound reports whether some attempt produced a connection.
func (r *race) anyFound() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.attempts {
		if a.Outcome == "connected" {
			return true
		}
	}
	return false
}

// betterRunning reports whether an attempt whose path is nearer than m's
// (Method.Distance) is still running or queued.
func (r *race) betterRunning(m Method) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, other := range r.running {
		if other.Distance() < m.Distance() {
			return true
		}
	}
	return false
}

// grace is how long A waits, once it holds o, for a nearer path still
// being tried (the LAN's when o crosses the Internet; any but the relay's
// when o is the relay: Method.Distance). A nearer attempt that became
// ready (both peers) with o's and has not connected in the time o took
// from ready to authenticated is failing: a nearer path needs no more
// round trips than a farther one. So A waits until every nearer attempt still running has
// had that long since its own ready, plus minGrace; and never longer than
// a round trip of o's path (its kernel RTT), within cfg.Grace, which is
// also the wait for a nearer attempt not yet ready.
func (r *race) grace(o offer) time.Duration {
	limit := r.cfg.Grace
	if rtt, ok := sockopt.RTT(o.conn); ok {
		limit = min(limit, max(rtt, minGrace))
	}
	took := o.attempt.Authenticated.Sub(o.attempt.Ready)
	if o.attempt.Ready.IsZero() || took <= 0 {
		return limit
	}
	now, d := r.cfg.Clock.Now(), o.attempt.Method.Distance()
	r.mu.Lock()
	defer r.mu.Unlock()
	wait := time.Duration(0)
	for _, a := range r.attempts {
		if _, running := r.running[a.ID]; !running || a.Method.Distance() >= d {
			continue
		}
		if a.Ready.IsZero() {
			return limit
		}
		wait = max(wait, a.Ready.Add(took+minGrace).Sub(now))
	}
	return min(limit, wait)
}

// minGrace keeps a grace above a host's scheduling delays on a path whose
// round trip is shorter.
const minGrace = 10 * time.Millisecond

// agree turns offers into the one connection both peers keep: A nominates
// (the best path, after a grace period for better ones), B follows.
func (r *race) agree(ctx context.Context, allDone <-chan struct{}) (net.Conn, *Attempt, error) {
	if r.cfg.Role == rendezvous.RoleA {
		return r.nominate(ctx, allDone)
	}
	return r.follow(ctx, allDone)
}

func (r *race) nominate(ctx context.Context, allDone <-chan struct{}) (net.Conn, *Attempt, error) {
	var pending []offer
	var grace <-chan time.Time
	done := allDone
	sortPending := func() {
		sort.SliceStable(pending, func(i, j int) bool {
			return pending[i].attempt.Method.Priority() < pending[j].attempt.Method.Priority()
		})
	}
	for {
		// Take every offer already queued before choosing, so a better
		// path that finished at the same moment is not passed over.
	drain:
		for {
			select {
			case o := <-r.offers:
				pending = append(pending, o)
			default:
				break drain
			}
		}
		sortPending()
		if len(pending) > 0 && (grace == nil || !r.betterRunning(pending[0].attempt.Method)) {
			best := pending[0]
			pending = pending[1:]
			if err := sendNomination(best.conn); err != nil {
				r.emit(Event{Kind: "nomination-failed", Method: best.attempt.Method, Attempt: best.attempt.Attempt, Detail: err.Error()})
				best.conn.Close()
				continue
			}
			for _, o := range pending {
				o.conn.Close()
			}
			return best.conn, best.attempt, nil
		}
		select {
		case o := <-r.offers:
			pending = append(pending, o)
			sortPending()
			if grace == nil && r.betterRunning(pending[0].attempt.Method) {
				grace = r.cfg.Clock.After(r.grace(pending[0]))
			}
		case <-grace:
			grace = nil
			if len(pending) > 0 {
				best := pending[0]
				pending = pending[1:]
				if err := sendNomination(best.conn); err != nil {
					best.conn.Close()
					continue
				}
				for _, o := range pending {
					o.conn.Close()
				}
				return best.conn, best.attempt, nil
			}
		case <-done:
			done = nil
			if len(pending) == 0 {
				select {
				case o := <-r.offers:
					pending = append(pending, o)
					continue
				default:
				}
				return nil, nil, ErrNoPath
			}
		case <-ctx.Done():
			for _, o := range pending {
				o.conn.Close()
			}
			return nil, nil, fmt.Errorf("%w: %v", ErrNoPath, ctx.Err())
		}
	}
}

func sendNomination(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{nominate}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if b[0] != accept {
		return fmt.Errorf("peer answered nomination with %q", b[0])
	}
	return nil
}

func (r *race) follow(ctx context.Context, allDone <-chan struct{}) (net.Conn, *Attempt, error) {
	winner := make(chan offer, 1)
	lost := make(chan struct{}, 64)
	var mu sync.Mutex
	var held []offer
	live := 0
	decided := false
	done := allDone
	var wg sync.WaitGroup
	defer wg.Wait()
	closeOthers := func(keep net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		decided = true
		for _, o := range held {
			if o.conn != keep {
				o.conn.Close()
			}
		}
	}
	for {
		select {
		case o := <-r.offers:
			mu.Lock()
			if decided {
				mu.Unlock()
				o.conn.Close()
				continue
			}
			held = append(held, o)
			live++
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Wait for A's nomination on this connection (A closes the
				// ones it does not keep).
				_ = o.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				b := make([]byte, 1)
				_, err := o.conn.Read(b)
				if err == nil && b[0] == nominate {
					_ = o.conn.SetReadDeadline(time.Time{})
					if _, err = o.conn.Write([]byte{accept}); err == nil {
						select {
						case winner <- o:
							return
						default:
						}
					}
				}
				o.conn.Close()
				lost <- struct{}{}
			}()
		case w := <-winner:
			closeOthers(w.conn)
			return w.conn, w.attempt, nil
		case <-lost:
			live--
			if done == nil && live == 0 && len(r.offers) == 0 {
				return nil, nil, ErrNoPath
			}
		case <-done:
			done = nil
			if live == 0 && len(r.offers) == 0 {
				return nil, nil, ErrNoPath
			}
		case <-ctx.Done():
			closeOthers(nil)
			return nil, nil, fmt.Errorf("%w: %v", ErrNoPath, ctx.Err())
		}
	}
}

// hostAddrs returns the host's non-loopback IPv4 addresses and its
// IPv6 addresses of global or unique-local scope: the private candidates
// a peer on the same LAN can reach (an attempt offers those of its own
// family).
func hostAddrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range sockopt.HostAddrs() {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast() {
			out = append(out, a)
		}
	}
	return out
}
