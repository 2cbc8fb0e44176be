package traversal

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal/method"
	"github.com/machsend/machsend/traversal/traversaltest"
)

// Every row of method.Table runs: the relay in do, every other method
// through runners; runners has nothing the table does not list.
func TestEveryMethodRuns(t *testing.T) {
	for _, s := range method.Table {
		run, ok := runners[s.Method]
		if !ok || (run == nil && s.Method != method.Relay) {
			t.Errorf("method %s has no run function", s.Method)
		}
	}
	for m := range runners {
		if _, ok := method.Lookup(m); !ok {
			t.Errorf("runner for %s, which method.Table does not list", m)
		}
	}
}

// Auto's schedule is the table: every method appears with its AutoRounds.
// Overlapping the local and punching methods changes when attempts run,
// never which.
func TestScheduleFromTable(t *testing.T) {
	for _, c := range []struct {
		relayAfter       time.Duration
		noRelay, overlap bool
		phases           int
	}{
		{0, false, false, 2},
		{0, false, true, 2},
		{3 * time.Second, false, false, 1},
		{3 * time.Second, false, true, 1},
		{0, true, false, 1},
		{0, true, true, 1},
	} {
		count := map[Method]int{}
		phases := schedule(method.Auto, c.relayAfter, c.noRelay, c.overlap)
		for _, phase := range phases {
			for _, ch := range phase {
				for _, a := range ch.attempts {
					count[a.Method]++
				}
			}
		}
		if len(phases) != c.phases {
			t.Errorf("%+v: %d phases, want %d", c, len(phases), c.phases)
		}
		if !c.overlap { // one chain crosses the NAT: punching first, direct last
			var crossing []rendezvous.AttemptID
			for _, ch := range phases[0] {
				if len(ch.attempts) > 1 {
					crossing = ch.attempts
				}
			}
			if len(crossing) == 0 || crossing[0].Method != method.P2PNAT || crossing[len(crossing)-1].Method != method.Direct {
				t.Errorf("%+v: the chain that crosses the NAT is %v, want p2pnat first and direct last", c, crossing)
			}
		}
		for _, s := range method.Table {
			want := s.AutoRounds
			if s.Method == method.Relay && c.noRelay {
				want = 0
			}
			if count[s.Method] != want {
				t.Errorf("%+v: %s: %d attempts in auto's schedule, want %d", c, s.Method, count[s.Method], want)
			}
		}
	}
}

// Without a fixed budget, an attempt's bound grows with the peers' round
// trip through the server (the sum of the two round trips to it) beyond
// the 2 s floor; a fixed budget holds whatever the round trip; LAN and
// direct attempts are bounded by localTimeout besides; an unknown round
// trip gets the 3 s of old. Both peers compute the same bound.
func TestAttemptBudget(t *testing.T) {
	for _, c := range []struct {
		m         Method
		fixed     time.Duration
		own, peer float64
		want      time.Duration
	}{
		{method.P2PNAT, 0, 15, 15, 2 * time.Second},
		{method.P2PNAT, 0, 80, 80, 2140 * time.Millisecond},
		{method.STUNT2, 0, 250, 250, 3500 * time.Millisecond},
		{method.Machsend, 0, 2000, 1000, 10 * time.Second},
		{method.P2PNAT, 0, 0, 80, 3 * time.Second},
		{method.P2PNAT, 2 * time.Second, 250, 250, 2 * time.Second},
		{method.Direct, 0, 80, 80, 320 * time.Millisecond},
		{method.LAN, 0, 250, 250, time.Second},
		{method.LAN, 500 * time.Millisecond, 250, 250, 500 * time.Millisecond},
	} {
		got := attemptBudget(c.m, c.fixed, c.own, c.peer)
		if got != c.want || attemptBudget(c.m, c.fixed, c.peer, c.own) != got {
			t.Errorf("%s, fixed %v, own %v ms, peer %v ms: %v, want %v", c.m, c.fixed, c.own, c.peer, got, c.want)
		}
	}
}

// A LAN or direct attempt waits twice the two round trips to the server,
// within [300 ms, 1 s], and the full second when either is unknown; both
// peers get the same bound whichever side computes it.
func TestLocalTimeout(t *testing.T) {
	for _, c := range []struct {
		own, peer float64
		want      time.Duration
	}{
		{0, 20, time.Second},
		{20, 0, time.Second},
		{1, 1, 300 * time.Millisecond},
		{20, 20, 300 * time.Millisecond},
		{80, 80, 320 * time.Millisecond},
		{100, 160, 520 * time.Millisecond},
		{400, 300, time.Second},
	} {
		if got := localTimeout(c.own, c.peer); got != c.want || localTimeout(c.peer, c.own) != got {
			t.Errorf("own %v ms, peer %v ms: %v (and %v swapped), want %v", c.own, c.peer, got, localTimeout(c.peer, c.own), c.want)
		}
	}
}

// STUNT #2's responder waits the start skew the two round trips to the
// server allow plus a margin, never more than the 2009 responder delay,
// and that delay when a round trip is unknown; both roles compute alike.
func TestLowTTLDelay(t *testing.T) {
	for _, c := range []struct {
		own, peer float64
		want      time.Duration
	}{
		{20, 20, 10 * time.Millisecond},
		{20, 60, 30 * time.Millisecond},
		{0, 20, responderDelay},
		{10, 400, responderDelay},
	} {
		if got := lowTTLDelay(c.own, c.peer); got != c.want || lowTTLDelay(c.peer, c.own) != got {
			t.Errorf("own %v ms, peer %v ms: %v, want %v", c.own, c.peer, got, c.want)
		}
	}
}

// fixedClock is a Clock stopped at one instant.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// A waits for a nearer path only as long as that path's attempt could
// still be catching up: until it has had, since its own ready, the time
// the offered attempt took; the whole grace when it is not ready yet, and
// none when nothing nearer runs. A direct attempt is not nearer than a
// punched connection (the same route through both NATs): A does not wait
// for it.
func TestGraceFromAttempts(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	punched := &Attempt{ID: rendezvous.AttemptID{Method: method.P2PNAT}, Method: method.P2PNAT, Ready: t0, Authenticated: t0.Add(60 * ms)}
	for _, c := range []struct {
		name  string
		other *Attempt // another attempt still running (nil: none)
		want  time.Duration
	}{
		{"LAN ready with it", &Attempt{Method: method.LAN, Ready: t0}, minGrace},
		{"LAN ready later", &Attempt{Method: method.LAN, Ready: t0.Add(30 * ms)}, 30*ms + minGrace},
		{"LAN not ready", &Attempt{Method: method.LAN}, 250 * ms},
		{"direct not ready", &Attempt{Method: method.Direct}, 0},
		{"direct ready later", &Attempt{Method: method.Direct, Ready: t0.Add(30 * ms)}, 0},
		{"none", nil, 0},
	} {
		r := &race{cfg: &Config{Grace: 250 * ms, Clock: fixedClock{t0.Add(60 * ms)}}, running: map[rendezvous.AttemptID]Method{}}
		r.attempts = []*Attempt{punched}
		if c.other != nil {
			c.other.ID = rendezvous.AttemptID{Method: c.other.Method}
			r.attempts = append(r.attempts, c.other)
			r.running[c.other.ID] = c.other.Method
		}
		a, b := net.Pipe() // no kernel RTT: the grace's bound is cfg.Grace
		if got := r.grace(offer{conn: a, attempt: punched}); got != c.want {
			t.Errorf("%s: grace %v, want %v", c.name, got, c.want)
		}
		if got, want := r.betterRunning(method.P2PNAT), c.want > 0; got != want {
			t.Errorf("%s: a nearer attempt running %v, want %v", c.name, got, want)
		}
		a.Close()
		b.Close()
	}
}

// Once the race is decided, an attempt still authenticating a connection
// (here a peer that never answers) gives up at once instead of holding
// Connect for the authentication's timeout.
func TestOfferEndsWithTheRace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &race{cfg: &Config{Secret: []byte("s"), Session: "s1", Role: rendezvous.RoleA, Clock: realClock{}},
		offers: make(chan offer, 1), ctx: ctx}
	a := &attempt{r: r, rec: &Attempt{}}
	c, silent := net.Pipe()
	defer silent.Close()
	go io.Copy(io.Discard, silent) // reads the nonce, never answers
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if a.offer(c) {
		t.Fatal("a connection that never proved the secret was offered")
	}
	if took := time.Since(start); took >= authTimeout {
		t.Errorf("offer returned after %v: it waited out the authentication timeout after the race ended", took)
	}
}

// Behind a NAT that maps per destination, auto's punching starts at once
// and the direct attempt waits behind it: here a direct attempt would
// hang until the race ends, and p2pnat starts first and wins, with no
// direct attempt before it to take the port the peer predicted.
func TestPunchingBeforeDirectBehindPerDestinationMapping(t *testing.T) {
	direct, p2p := runners[method.Direct], runners[method.P2PNAT]
	defer func() { runners[method.Direct], runners[method.P2PNAT] = direct, p2p }()
	var mu sync.Mutex
	var directStart, directEnd, p2pStart time.Time
	runners[method.Direct] = func(a *attempt, _, actx context.Context) error {
		mu.Lock()
		directStart = time.Now()
		mu.Unlock()
		<-actx.Done() // an unreachable peer: only the timeout or the race's end stops it
		mu.Lock()
		directEnd = time.Now()
		mu.Unlock()
		return actx.Err()
	}
	runners[method.P2PNAT] = func(a *attempt, ctx, actx context.Context) error {
		mu.Lock()
		if p2pStart.IsZero() {
			p2pStart = time.Now()
		}
		mu.Unlock()
		return p2p(a, ctx, actx)
	}
	hub := traversaltest.NewHub(5 * time.Millisecond)
	hub.ObservedFor = func(role string, l netip.AddrPort) netip.AddrPort {
		if role == rendezvous.RoleB { // behind another "NAT": no LAN path
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), l.Port())
		}
		return l
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, role := range []string{rendezvous.RoleA, rendezvous.RoleB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := Config{Signal: hub.Signal(role), Session: "s1", Role: role, Secret: []byte("s"), Method: method.Auto, NoRelay: true,
				Private: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, NAT: NATInfo{Mapping: nat.SeenDependent}}
			c, _, err := Connect(ctx, cfg)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if p2pStart.IsZero() || !directStart.IsZero() && !directStart.After(p2pStart) {
		t.Errorf("direct ran %v to %v, p2pnat started %v: a direct attempt went first", directStart, directEnd, p2pStart)
	}
}
