package rendezvous

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// relay splices the two peers of a session when no direct path works. Each
// peer connects to the relay address and sends its one-time token (from
// relay.open) on one line; when both halves are there, bytes are copied both
// ways, within the byte and time limits. The relay sees only what the peers
// send, which is ciphertext.
type relay struct {
	s      *Server
	mu     sync.Mutex
	tokens map[string]relayToken // token -> slot, until it expires
	// issued lists tokens in the order they were (re)issued, so expired
	// ones are forgotten from the front, a few at each expect.
	issued  []issuedToken
	waiting map[relayKey]net.Conn
	active  map[net.Conn]struct{}
	closed  bool

	open    *addrCount    // relay connections held (one counter, under MaxRelayConns)
	perAddr *addrCount    // per source address (MaxClientsPerAddr)
	rate    *rate.Limiter // bytes per second, every session together
}

// relayChunk is the most the relay copies at once (and the limiters'
// smallest burst).
const relayChunk = 64 << 10

// newByteLimiter allows bps bytes per second in bursts of a tenth of a
// second (at least one chunk); nil when bps is not positive (no bound).
func newByteLimiter(bps float64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), max(relayChunk, int(bps/10)))
}

// countedConn gives its slot back when it is closed, once.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection where it can (TCP).
func (c *countedConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *countedConn) inner() net.Conn { return c.Conn }

// bufConn reads what its reader buffered before reading the connection.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(b)
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection where it can.
func (c *bufConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *bufConn) inner() net.Conn { return c.Conn }

// wrapper is a connection of this package around another.
type wrapper interface{ inner() net.Conn }

// boundBuffers sets c's socket receive and send buffers to n bytes, on
// the socket under this package's wrappers. A connection that is not a
// socket (a TLS front's inner end) keeps its own.
func boundBuffers(c net.Conn, n int) {
	for {
		w, ok := c.(wrapper)
		if !ok {
			break
		}
		c = w.inner()
	}
	if s, ok := c.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		_ = s.SetReadBuffer(n)
		_ = s.SetWriteBuffer(n)
	}
}

type relayKey struct{ session, role string }

// relayToken is what a token opens (a pair's side), and until when.
type relayToken struct {
	key     relayKey
	expires time.Time
}

type issuedToken struct {
	tok     string
	expires time.Time
}

// relayTokenTTL is how long a token stays good after it was last issued:
// as long as the relay holds a half waiting for the other. A token of a
// pair that ended is not revoked (its side may be on its way to the relay
// as the pair ends and a next receiver takes its place); it expires.
const relayTokenTTL = time.Minute

func newRelay(s *Server) *relay {
	return &relay{s: s, tokens: map[string]relayToken{}, waiting: map[relayKey]net.Conn{}, active: map[net.Conn]struct{}{},
		open: newAddrCount(s.cfg.MaxRelayConns), perAddr: newAddrCount(s.cfg.MaxClientsPerAddr), rate: newByteLimiter(s.cfg.RelayRate)}
}

// expect registers (or renews) a token handed out for session's role,
// good for relayTokenTTL; tokens that expired unused are forgotten, so
// they never accumulate.
func (r *relay) expect(tok, session, role string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.forgetExpiredLocked(now)
	if len(r.tokens) > 2*r.s.cfg.MaxSessions {
		return
	}
	exp := now.Add(r.ttl())
	r.tokens[tok] = relayToken{relayKey{session, role}, exp}
	r.issued = append(r.issued, issuedToken{tok, exp})
}

// forgetExpiredLocked drops the tokens at the front of issued that
// expired (unless renewed since); r.mu is held.
func (r *relay) forgetExpiredLocked(now time.Time) {
	n := 0
	for ; n < len(r.issued) && now.After(r.issued[n].expires); n++ {
		it := r.issued[n]
		if t, ok := r.tokens[it.tok]; ok && !t.expires.After(it.expires) {
			delete(r.tokens, it.tok)
		}
	}
	r.issued = r.issued[n:]
}

func (r *relay) ttl() time.Duration {
	if r.s.cfg.RelayTokenTTL > 0 {
		return r.s.cfg.RelayTokenTTL
	}
	return relayTokenTTL
}

func (r *relay) serve(ln net.Listener) error {
	return acceptLoop(ln, r.s.acceptFailed, func(c net.Conn) {
		release, ok := r.admit(addrPortOf(c.RemoteAddr()).Addr())
		if !ok {
			c.Close()
			return
		}
		go r.handle(&countedConn{Conn: c, release: release})
	})
}

// admit takes a relay connection's place from ip under the relay's caps
// (MaxRelayConns, MaxClientsPerAddr), and returns what gives it back; ok
// is false, and the refusal counted, when there is no place.
func (r *relay) admit(ip netip.Addr) (release func(), ok bool) {
	if !r.open.take(netip.Addr{}) {
		r.s.Stats.Rejected.Add(1)
		return nil, false
	}
	if !r.perAddr.take(ip) {
		r.open.put(netip.Addr{})
		r.s.Stats.Rejected.Add(1)
		return nil, false
	}
	return func() { r.open.put(netip.Addr{}); r.perAddr.put(ip) }, true
}

// handOff takes a connection the server's loop found to start with
// relayPrefix: a relay half on the server's own port (see front), bounded
// by the same counts as one on the relay address.
func (r *relay) handOff(c net.Conn, remote, _ netip.AddrPort, first []byte) {
	release, ok := r.admit(remote.Addr())
	if !ok {
		c.Close()
		return
	}
	go r.handle(&prefixConn{Conn: c, first: bytes.Clone(first), release: release})
}

// handle reads a half's token line and parks the half until the other
// arrives, or splices the two. What a half sends behind its token line
// (its first message, sent without waiting for the splice) is kept and
// forwarded to the other half after "ok".
func (r *relay) handle(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 128)
	line, err := readLine(br, 128)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	c = &bufConn{Conn: c, r: br}
	tok := strings.TrimPrefix(strings.TrimSpace(string(line)), relayPrefix)
	r.mu.Lock()
	t, ok := r.tokens[tok]
	key := t.key
	if !ok || r.closed || time.Now().After(t.expires) {
		r.mu.Unlock()
		c.Close()
		return
	}
	delete(r.tokens, tok)
	other := RoleA
	if key.role == RoleA {
		other = RoleB
	}
	peer := r.waiting[relayKey{key.session, other}]
	if peer == nil {
		if old := r.waiting[key]; old != nil {
			old.Close()
		}
		r.waiting[key] = c
		r.mu.Unlock()
		// Give the other half as long as a token lives to arrive.
		time.AfterFunc(r.ttl(), func() {
			r.mu.Lock()
			if r.waiting[key] == c {
				delete(r.waiting, key)
				c.Close()
			}
			r.mu.Unlock()
		})
		return
	}
	delete(r.waiting, relayKey{key.session, other})
	r.active[c], r.active[peer] = struct{}{}, struct{}{}
	r.mu.Unlock()
	r.s.Stats.Relays.Add(1)
	r.s.log.Info("relay spliced", "session", key.session[:8])
	// Tell both halves the splice is live, so neither sends before it is.
	if _, err := c.Write([]byte("ok\n")); err == nil {
		_, _ = peer.Write([]byte("ok\n"))
	}
	r.splice(c, peer)
	r.mu.Lock()
	delete(r.active, c)
	delete(r.active, peer)
	r.mu.Unlock()
}

func (r *relay) splice(a, b net.Conn) {
	boundBuffers(a, r.s.cfg.RelayBuffer)
	boundBuffers(b, r.s.cfg.RelayBuffer)
	deadline := time.Now().Add(r.s.cfg.RelayMaxDuration)
	_ = a.SetDeadline(deadline)
	_ = b.SetDeadline(deadline)
	var budget atomic.Int64
	budget.Store(r.s.cfg.RelayMaxBytes)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	limits := []*rate.Limiter{r.rate, newByteLimiter(r.s.cfg.RelaySessionRate)}
	var wg sync.WaitGroup
	var flipOnce sync.Once
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, relayChunk)
		var seen int64
		for {
			n, err := src.Read(buf)
			if at := r.s.cfg.FaultFlipByte; at > 0 && seen <= at && at < seen+int64(n) {
				flipOnce.Do(func() { buf[at-seen] ^= 0x01 })
			}
			seen += int64(n)
			if n > 0 {
				if budget.Add(-int64(n)) < 0 || waitBytes(ctx, limits, n) != nil {
					break
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// Half-close so the other side sees EOF, then tear down.
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// waitBytes waits until every limiter allows n more bytes.
func waitBytes(ctx context.Context, limits []*rate.Limiter, n int) error {
	for _, l := range limits {
		if l == nil {
			continue
		}
		if err := l.WaitN(ctx, n); err != nil {
			return fmt.Errorf("relay bandwidth: %w", err)
		}
	}
	return nil
}

func (r *relay) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, c := range r.waiting {
		c.Close()
	}
	for c := range r.active {
		c.Close()
	}
}
