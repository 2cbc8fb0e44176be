package session

import (
	"sync/atomic"
	"testing"
)

// A receiver's events are numbered even when its path connects before
// the server's join notice reaches the sharer's connection (a relay
// splice can): the first event that needs a receiver numbers it, the
// join notice then finds it numbered, and events of the slot itself
// before anyone joined stay unnumbered.
func TestSlotNumbersBeforeTheJoinNotice(t *testing.T) {
	var n atomic.Int64
	n.Store(1) // a receiver before this one
	joined := make(chan struct{})
	var got []Event
	sl := &slot{joinedN: &n, joined: joined}
	s := &Sharing{opts: Options{Events: func(e Event) { got = append(got, e) }}}
	emit := s.tagged(sl)
	emit(Event{Kind: KindNAT})       // the slot's own, before anyone joined
	emit(Event{Kind: KindConnected}) // the relay spliced: a receiver is there
	close(joined)                    // the join notice comes after
	emit(Event{Kind: KindDone})
	if len(got) != 3 || got[0].Receiver != 0 || got[1].Receiver != 2 || got[2].Receiver != 2 {
		t.Fatalf("receivers %d, %d, %d; want 0, 2, 2", got[0].Receiver, got[1].Receiver, got[2].Receiver)
	}
	if sl.number() != 2 || n.Load() != 2 {
		t.Fatalf("the join notice numbered the receiver again: %d (count %d)", sl.number(), n.Load())
	}
}
