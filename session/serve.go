package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAtOnce is how many receivers ServeEach serves at once unless
// told otherwise.
const DefaultAtOnce = 4

// slotEvent is what a sender connection tells ServeEach.
type slotEvent struct {
	slot *slot
	kind slotKind
	err  error
}

type slotKind int

const (
	slotJoined slotKind = iota // a receiver joined: the slot is busy
	slotFreed                  // that receiver is done (or failed)
	slotEnded                  // the connection to the server is gone
)

// slot is one of a share's sender connections and the receiver it serves.
type slot struct {
	peer    *Peer
	joinedN *atomic.Int64 // the share's count of receivers that joined

	// mu guards the current round: its joined channel (the peer's, for
	// the receiver being waited for or served) and that receiver's number.
	mu       sync.Mutex
	joined   <-chan struct{}
	receiver int // numbered from 1 in order of joining; 0 while it waits
}

// beginRound starts waiting for the slot's next receiver.
func (sl *slot) beginRound() <-chan struct{} {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.joined, sl.receiver = sl.peer.Joined(), 0
	return sl.joined
}

// number is the current receiver's number, given when it is first asked
// for after the receiver joined (by the event sink or the join watcher,
// whichever comes first), so every event of a receiver carries its
// number; 0 before anyone joined.
func (sl *slot) number() int { return sl.numberFor(false) }

// numberFor is number; with present, the caller knows a receiver is there
// although its join has not been seen yet, and numbers it at once: a
// relay splice (or a direct path) can connect the receiver before the
// server's join notice reaches this connection, and its first events must
// not go out unnumbered (the sharer's page would count a receiver 0).
func (sl *slot) numberFor(present bool) int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.receiver == 0 && sl.joined != nil {
		select {
		case <-sl.joined:
			present = true
		default:
		}
		if present {
			sl.receiver = int(sl.joinedN.Add(1))
		}
	}
	return sl.receiver
}

// withReceiver are the kinds of event that exist only once a receiver is
// connected.
var withReceiver = map[Kind]bool{KindConnected: true, KindMoved: true, KindManifest: true, KindListed: true, KindProgress: true, KindDone: true}

// ServeEach serves every receiver that comes, up to atOnce at a time,
// until ctx ends: each on a sender connection of its own to the server
// (the first is the one Share made; another is attached whenever all are
// busy) and with a traversal of its own, so each receiver gets the
// methods and the path the first one got. A receiver that fails is
// reported (KindError, with its number) and does not end the share. It
// returns when ctx ends or the share's first connection to the server is
// lost (the link then stops working).
func (s *Sharing) ServeEach(ctx context.Context, atOnce int) error {
	if s.code != nil {
		return errors.New("a code serves one receiver: share with a link to serve several")
	}
	atOnce = max(1, atOnce)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan slotEvent)
	var wg sync.WaitGroup
	var joinedN atomic.Int64
	start := func(p *Peer) *slot {
		sl := &slot{peer: p, joinedN: &joinedN}
		p.opts.Events = s.tagged(sl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSlot(ctx, sl, events)
		}()
		return sl
	}
	first := start(s.peer)
	slots, busy := 1, 0
	var extra []*Peer
	defer func() {
		cancel()
		wg.Wait()
		for _, p := range extra {
			p.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-events:
			switch {
			case ev.kind == slotJoined:
				busy++
				if busy < slots || slots >= atOnce {
					continue
				}
				p, err := s.peer.Attach(ctx, s.opts)
				if err != nil {
					s.opts.emit(Event{Kind: KindError, Error: fmt.Sprintf("cannot open another connection for the next receiver (they wait their turn): %v", err)})
					continue
				}
				extra = append(extra, p)
				start(p)
				slots++
			case ev.kind == slotFreed:
				busy--
			case ev.slot == first:
				return fmt.Errorf("the share's connection to the rendezvous server is lost; the link no longer works: %w", ev.err)
			default:
				slots--
			}
		}
	}
}

// tagged is the share's event sink with every event of sl's current
// receiver numbered.
func (s *Sharing) tagged(sl *slot) func(Event) {
	return func(e Event) {
		e.Receiver = sl.numberFor(withReceiver[e.Kind])
		s.opts.emit(e)
	}
}

// serveSlot serves receivers on one sender connection, one after another,
// telling ServeEach when each joins and is done.
func (s *Sharing) serveSlot(ctx context.Context, sl *slot, events chan<- slotEvent) {
	tell := func(ev slotEvent) bool {
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		joined := sl.beginRound()
		watched := make(chan bool, 1)
		served := make(chan struct{})
		go func() {
			select {
			case <-joined:
				sl.number()
				watched <- tell(slotEvent{slot: sl, kind: slotJoined})
			case <-served:
				watched <- false
			}
		}()
		err := s.serveOne(ctx, sl.peer)
		close(served)
		hadReceiver := <-watched
		if hadReceiver && !tell(slotEvent{slot: sl, kind: slotFreed}) {
			return
		}
		pause := time.Duration(0)
		if err != nil && !hadReceiver {
			pause = time.Second // failed before anyone joined: do not spin
		}
		select {
		case <-ctx.Done():
			return
		case <-sl.peer.Done():
			tell(slotEvent{slot: sl, kind: slotEnded, err: errors.Join(err, errors.New("connection closed"))})
			return
		case <-time.After(pause):
		}
	}
}

// serveOne waits for one receiver on p, connects to it and sends what it
// asks for; the error is also emitted.
func (s *Sharing) serveOne(ctx context.Context, p *Peer) error {
	defer p.Next()
	st, err := p.ConnectStream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.opts.emit(Event{Kind: KindError, Error: err.Error()})
		}
		return err
	}
	defer st.Close()
	return sendTo(ctx, st, s, p.opts)
}
