package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/method"
)

// Stream is the authenticated byte stream a transfer runs over. Close
// ends it and everything still looking for a better path.
type Stream interface {
	io.ReadWriteCloser
}

// relayFirst says whether p starts transfers on the relay and moves them
// to a direct path: method auto with a server that relays (both peers see
// the same, so both make the same choice).
func (p *Peer) relayFirst() bool {
	return p.relay && (p.opts.Method == "" || p.opts.Method == method.Auto)
}

// ConnectStream returns the stream a transfer runs on. When relayFirst, it
// starts on the relay at once while every direct method races beside it;
// a direct path that authenticates is added to the stream, which moves to
// it (a KindMoved event), and the relay closes. Otherwise it is
// ConnectSecure's one connection.
func (p *Peer) ConnectStream(ctx context.Context) (Stream, error) {
	if !p.relayFirst() {
		sc, _, err := p.ConnectSecure(ctx)
		if err != nil {
			return nil, err
		}
		return sc, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	ms := &multiStream{cancel: cancel}
	direct := make(chan pathResult, 1)
	ms.wg.Add(1)
	go func() {
		defer ms.wg.Done()
		direct <- p.directPath(ctx)
	}()
	relay := p.relayPath(ctx)
	first := relay
	if relay.err != nil { // no relay: the direct path is the stream
		first = <-direct
		if first.err != nil {
			ms.Close()
			return nil, fmt.Errorf("no path to the peer (relay: %v): %w", relay.err, first.err)
		}
	}
	ms.mp = transfer.NewMultipath(first.sc, p.Role == rendezvous.RoleA)
	var moved atomic.Pointer[traversal.Report]
	ms.mp.OnMove = func(int) { p.opts.emit(Event{Kind: KindMoved, Report: moved.Load()}) }
	p.opts.emit(Event{Kind: KindConnected, Report: first.rep})
	if relay.err != nil {
		return ms, nil
	}
	ms.wg.Add(1)
	go func() {
		defer ms.wg.Done()
		second := <-direct
		if second.err != nil {
			return // the transfer stays on the relay
		}
		moved.Store(second.rep)
		if err := ms.mp.Add(second.sc); err != nil {
			second.sc.Close()
		}
	}()
	return ms, nil
}

// pathResult is one authenticated path, or why there is none.
type pathResult struct {
	sc  *transfer.SecureConn
	rep *traversal.Report
	err error
}

// relayPath opens the session's relay and runs the secure channel's
// handshake over it. It skips traversal's own proof of the secret and its
// nomination: the relay pairs only the two connections that present this
// pair's relay token, there is one of it, and the handshake that follows
// proves the secret anyway (a peer that cannot is dropped), so the first
// byte comes three round trips sooner.
func (p *Peer) relayPath(ctx context.Context) pathResult {
	start := time.Now()
	p.opts.emit(Event{Kind: KindStep, Step: &traversal.Event{Kind: "attempt-start", Method: method.Relay, Attempt: "relay/0", Time: start}})
	conn, sc, err := p.relayHalf(ctx)
	if err != nil {
		return pathResult{err: fmt.Errorf("relay: %w", err)}
	}
	rep := &traversal.Report{Method: method.Relay, Attempt: "relay/0", Path: string(method.Relay.Path()), Start: start, ConnectTime: time.Since(start),
		Local: traversal.AddrPortOf(conn.LocalAddr()), Remote: traversal.AddrPortOf(conn.RemoteAddr())}
	return pathResult{sc: sc, rep: rep}
}

// relayHalf opens the relay and runs the secure channel's handshake over
// it. When the relay refuses the half (the joiner's spare connection held
// a token the relay no longer knew; a sharer's half waited out the
// relay's minute before anyone joined), it asks for a slot anew: at once
// the first time, then only after a half that waited at least
// RelayRetryAfter, so that a relay refusing every half is not hammered.
func (p *Peer) relayHalf(ctx context.Context) (net.Conn, *transfer.SecureConn, error) {
	for try := 0; ; try++ {
		began := time.Now()
		conn, err := p.signal.Relay(ctx)
		if err == nil {
			var sc *transfer.SecureConn
			if sc, err = transfer.Secure(conn, p.secret, p.ID, p.Role == rendezvous.RoleB); err == nil {
				return conn, sc, nil
			}
			conn.Close()
		}
		if !errors.Is(err, rendezvous.ErrRelayRefused) || ctx.Err() != nil || try > 0 && time.Since(began) < RelayRetryAfter {
			return nil, nil, err
		}
	}
}

// RelayRetryAfter: a relay half refused sooner than this after it was
// opened is not opened again (after the first retry). A variable so that
// tests with a short relay wait can shorten it.
var RelayRetryAfter = 10 * time.Second

// directPath probes the NAT, races every direct method (no relay) and
// runs the secure channel's handshake over what wins.
func (p *Peer) directPath(ctx context.Context) pathResult {
	info, err := p.probe(ctx)
	if err != nil {
		return pathResult{err: err}
	}
	conn, rep, err := p.traverse(ctx, traversal.Config{Method: method.Auto, NoRelay: true, NAT: info})
	if err != nil {
		return pathResult{rep: rep, err: err}
	}
	sc, err := transfer.Secure(conn, p.secret, p.ID, p.Role == rendezvous.RoleB)
	if err != nil {
		return pathResult{rep: rep, err: err}
	}
	return pathResult{sc: sc, rep: rep}
}

// multiStream is a Multipath with the direct race still running beside it.
type multiStream struct {
	mp     *transfer.Multipath
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (m *multiStream) Read(b []byte) (int, error)  { return m.mp.Read(b) }
func (m *multiStream) Write(b []byte) (int, error) { return m.mp.Write(b) }

// Close stops the race (waiting for it, so no traversal outlives the
// stream on the peer's signal) and closes every path.
func (m *multiStream) Close() error {
	m.cancel()
	var err error
	if m.mp != nil {
		err = m.mp.Close()
	}
	m.wg.Wait()
	return err
}
