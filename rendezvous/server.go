package rendezvous

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"golang.org/x/time/rate"

	"github.com/machsend/machsend/internal/sockopt"
)

// Config bounds and configures a Server. Zero values take the defaults.
type Config struct {
	// Secondary is the server's second endpoint (another address and port)
	// reported to clients for mapping comparison and used for connect-back
	// from another address.
	Secondary netip.AddrPort
	// RelayAddr is where the relay accepts spliced connections; invalid
	// disables the relay.
	RelayAddr netip.AddrPort
	// Alternate is a further listening endpoint on the primary address
	// (another port), reported to clients for mapping classification.
	Alternate netip.AddrPort
	// Endpoints are the server's primary endpoints, one per address family,
	// when it listens on both (dual stack): hello tells every client of
	// them, and peers that learn one in each family race IPv6 and IPv4
	// candidates. Empty (the default) or one family: no dual-stack race.
	Endpoints []netip.AddrPort
	// TLS, if set, also serves clients that start a TLS handshake on the
	// rendezvous ports (tlsfront.go); plain clients keep working.
	TLS *tls.Config

	MaxMessage           int           // bytes per JSON-RPC message (default 16 KiB)
	MaxClients           int           // concurrent connections (default and ceiling: 60% of the fd limit read at start)
	MaxClientsPerAddr    int           // concurrent connections from one address (default 256)
	MaxRelayConns        int           // concurrent relay connections (default and ceiling: 30% of the fd limit)
	MaxSessions          int           // sessions held at once (default 100000)
	MaxSessionsPerClient int           // sessions one connection may hold, created by it (default 16)
	MaxSessionsPerAddr   int           // sessions created from one address held at once (default 64)
	MaxAttempts          int           // pending punch attempts per pair (default 64)
	MaxPairs             int           // receivers one share serves at once: its creator's connection and those it attaches (default 8)
	SessionTTL           time.Duration // a session's lifetime (default 30 min)
	IdleTimeout          time.Duration // a silent connection is closed (default 5 min)
	ConnRate             float64       // new connections per second per source address (default 50)
	ConnBurst            int           // (default 200)
	RequestRate          float64       // requests per second per connection (default 200)
	// PunchDelay is a lead before a coordinated punch (default none).
	// A peer times its start from punch.go's arrival (its clock offset
	// comes from that message), so a lead does not bring the peers'
	// starts closer together: it only delays both.
	PunchDelay time.Duration
	// UnsyncedStarts starts both peers of a punch when punch.go reaches
	// them, without making the nearer one wait for the farther (for
	// experiments that set the offset between the peers' SYNs themselves).
	UnsyncedStarts bool
	// RelayTokenTTL is how long a relay token stays good after it was
	// issued (default a minute, as long as a half waits for the other).
	RelayTokenTTL time.Duration
	// Budget is how long requests may wait for an event loop that is not
	// keeping up before new sessions are refused with "busy" (and a
	// back-off hint) instead of waiting (default 10 ms).
	Budget           time.Duration
	RelayMaxBytes    int64         // per relayed session, both directions (default 8 GiB)
	RelayMaxDuration time.Duration // per relayed session (default 1 h)
	// RelayRate bounds the relay's bandwidth, all sessions together, in
	// bytes per second (default 1 GiB/s); RelaySessionRate bounds one
	// relayed session, both directions together (default: no bound of
	// its own, within RelayRate).
	RelayRate, RelaySessionRate float64
	// RelayBuffer is each relayed connection's socket receive and send
	// buffer, in bytes (default 256 KiB; the kernel doubles it for its
	// bookkeeping). It bounds the kernel memory a relayed pair holds, and
	// the bytes a transfer leaves on the relay when it moves to a direct
	// path. A relayed stream's rate is at most about this much per round
	// trip.
	RelayBuffer int
	// FaultFlipByte, when > 0, makes the relay a faulty middlebox: it flips
	// the byte at that offset of the first direction it relays. For
	// experiments that check end-to-end integrity; never set in production.
	FaultFlipByte int64
	// Forge lets the server forge SYN-ACKs for STUNT #1, spoofed from one
	// peer's public endpoint to the other's. It only ever works inside a
	// natlab namespace (rawtcp refuses elsewhere) and only toward the two
	// peers' own observed addresses.
	Forge  bool
	Logger *slog.Logger
}

func (c *Config) defaults() {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.MaxMessage, 16<<10)
	fds := fdLimit()
	set(&c.MaxClients, 100000)
	c.MaxClients = min(c.MaxClients, share(fds, clientShare))
	set(&c.MaxRelayConns, share(fds, relayShare))
	c.MaxRelayConns = min(c.MaxRelayConns, share(fds, relayShare))
	set(&c.MaxClientsPerAddr, defaultPerAddr)
	set(&c.MaxSessions, 100000)
	set(&c.MaxSessionsPerClient, 16)
	set(&c.MaxSessionsPerAddr, 64)
	set(&c.MaxAttempts, 64)
	set(&c.MaxPairs, 8)
	set(&c.ConnBurst, 200)
	set(&c.RelayBuffer, 256<<10)
	if c.SessionTTL <= 0 {
		c.SessionTTL = 30 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.ConnRate <= 0 {
		c.ConnRate = 50
	}
	if c.RequestRate <= 0 {
		c.RequestRate = 200
	}
	if c.Budget <= 0 {
		c.Budget = 10 * time.Millisecond
	}
	c.PunchDelay = max(c.PunchDelay, 0)
	if c.RelayMaxBytes <= 0 {
		c.RelayMaxBytes = 8 << 30
	}
	if c.RelayRate <= 0 {
		c.RelayRate = 1 << 30
	}
	if c.RelayMaxDuration <= 0 {
		c.RelayMaxDuration = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the rendezvous/STUNT server: it reports observed endpoints,
// holds sessions, exchanges candidates, coordinates punches, serves NAT
// probing and, when enabled, relays.
type Server struct {
	cfg    Config
	log    *slog.Logger
	relay  *relay
	probe  *prober
	forger forger
	web    *webFront // landing pages (landing.go)
	tls    *tlsFront // TLS clients (tlsfront.go)

	mu         sync.Mutex
	probeKeys  map[string]*client // clients by their probe key (probed.go)
	sessions   map[string]*session
	nameplates map[int]*session   // code sessions by nameplate (codes.go)
	byAddr     map[netip.Addr]int // sessions held per creator's address
	clients    map[*client]struct{}
	tlsHeld    int // clients among them that came over TLS (three descriptors each)
	perIP      map[netip.Addr]*rate.Limiter
	perAddr    *addrCount    // open connections per source address
	probes     chan struct{} // probe dials in flight, server-wide
	closed     bool
	lns        []net.Listener
	wg         sync.WaitGroup

	loops    []*loop // event loops serving the clients (loop.go)
	loopsErr error
	next     atomic.Uint32 // round robin over loops

	Stats Stats
}

// Stats are the server's counters.
type Stats struct {
	Accepted, Rejected, Malformed, Sessions, Punches, Relays atomic.Int64
	// AcceptErrors counts failed accepts (each followed by a pause);
	// Limited counts requests refused by the rate or in-flight limits.
	AcceptErrors, Limited atomic.Int64
	// WrongKeys counts joins refused for a key that did not match;
	// Evicted counts idle sessions dropped to make room in a full table.
	WrongKeys, Evicted atomic.Int64
	// Busy counts new sessions refused because the server was not keeping
	// up (CodeBusy, with a back-off hint).
	Busy atomic.Int64
}

// NewServer makes a server; call Serve for each listener.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, log: cfg.Logger, probeKeys: map[string]*client{}, sessions: map[string]*session{}, nameplates: map[int]*session{}, byAddr: map[netip.Addr]int{}, clients: map[*client]struct{}{},
		perIP: map[netip.Addr]*rate.Limiter{}, perAddr: newAddrCount(cfg.MaxClientsPerAddr),
		probes: make(chan struct{}, share(fdLimit(), probeShare))}
	s.relay = newRelay(s)
	s.probe = newProber()
	s.web = newWebFront(s)
	s.tls = newTLSFront(s)
	for range max(1, runtime.GOMAXPROCS(0)) {
		l, err := newLoop(s)
		if err != nil {
			s.loopsErr = err
			break
		}
		s.loops = append(s.loops, l)
		go l.run()
	}
	return s
}

// Serve accepts rendezvous connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	if s.loopsErr != nil {
		s.mu.Unlock()
		return fmt.Errorf("rendezvous: cannot serve: %w", s.loopsErr)
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	defer s.wg.Done()
	stop := make(chan struct{})
	defer close(stop)
	go s.janitor(stop)
	return acceptLoop(ln, s.acceptFailed, s.accept)
}

// acceptFailed counts and logs a failed accept; the loop pauses and goes on.
func (s *Server) acceptFailed(err error) {
	s.Stats.AcceptErrors.Add(1)
	s.log.Warn("accept failed; pausing", "err", err)
}

// ServeRelay accepts relay connections on ln (see Config.RelayAddr).
func (s *Server) ServeRelay(ln net.Listener) error {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	return s.relay.serve(ln)
}

// Close stops every listener and connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := s.lns
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, l := range s.loops {
		l.stop() // each loop closes its clients
	}
	s.relay.close()
	s.web.close()
	if s.forger.inj != nil {
		s.forger.inj.Close()
	}
	s.probe.close()
	return nil
}

// admit applies the per-address connection rate and the global client cap.
func (s *Server) admit(ip netip.Addr, tlsClient bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A TLS client holds three descriptors (its TCP connection and a
	// socket pair): it counts three times against the cap, which is a
	// share of the descriptor limit.
	weight := 1
	if tlsClient {
		weight = 3
	}
	if len(s.clients)+2*s.tlsHeld+weight > s.cfg.MaxClients {
		return false
	}
	l := s.perIP[ip]
	if l == nil {
		if len(s.perIP) > 4*s.cfg.MaxClients {
			s.perIP = map[netip.Addr]*rate.Limiter{} // bounded: forget old limiters
		}
		l = rate.NewLimiter(rate.Limit(s.cfg.ConnRate), s.cfg.ConnBurst)
		s.perIP[ip] = l
	}
	return l.Allow()
}

func (s *Server) accept(raw net.Conn) {
	remote := addrPortOf(raw.RemoteAddr())
	if !s.admitConn(remote.Addr(), false) {
		raw.Close()
		return
	}
	s.serveConn(raw, remote, addrPortOf(raw.LocalAddr()))
}

// admitConn counts a connection from remote against its address's cap
// (perAddr) and applies admit (a TLS client weighs more): whether it may
// be served. A refused connection is counted and leaves no count behind.
func (s *Server) admitConn(remote netip.Addr, tlsClient bool) bool {
	if !s.perAddr.take(remote) {
		s.Stats.Rejected.Add(1)
		return false
	}
	if !s.admit(remote, tlsClient) {
		s.perAddr.put(remote)
		s.Stats.Rejected.Add(1)
		s.log.Warn("connection rejected by limits", "remote", remote)
		return false
	}
	return true
}

// newClient makes the client of an admitted connection, owned by the
// next loop, sets its socket (setIO), and counts it; tcp, for a TLS
// client, is its TCP connection (for round-trip readings).
func (s *Server) newClient(setIO func(*clientIO), remote, local netip.AddrPort, tcp *net.TCPConn) *client {
	s.Stats.Accepted.Add(1)
	l := s.loops[int(s.next.Add(1))%len(s.loops)]
	c := &client{srv: s, loop: l, remote: remote, local: local, lastRead: time.Now(), tcp: tcp,
		limiter: rate.NewLimiter(rate.Limit(s.cfg.RequestRate), int(s.cfg.RequestRate))}
	setIO(&c.clientIO)
	s.mu.Lock()
	s.clients[c] = struct{}{}
	if tcp != nil {
		s.tlsHeld++
	}
	s.mu.Unlock()
	return c
}

func (s *Server) janitor(stop chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.probe.expire(now)
			s.mu.Lock()
			for _, ss := range s.sessions {
				if now.After(ss.expires) {
					s.removeSessionLocked(ss, nil)
				}
			}
			s.mu.Unlock()
		}
	}
}

func rpcErr(code int64, format string, args ...any) *jsonrpc2.Error {
	return &jsonrpc2.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handle runs one request and maps its error to a JSON-RPC error.
func (c *client) handle(ctx context.Context, req *wireRequest) (any, *jsonrpc2.Error) {
	res, err := c.dispatch(ctx, req)
	if err == nil {
		return res, nil
	}
	var re *jsonrpc2.Error
	if !errors.As(err, &re) {
		c.srv.Stats.Malformed.Add(1)
		re = rpcErr(jsonrpc2.CodeInvalidParams, "%v", err)
	}
	c.srv.log.Debug("request failed", "remote", c.remote, "method", req.Method, "err", re.Message)
	return nil, re
}

func (c *client) dispatch(ctx context.Context, req *wireRequest) (any, error) {
	s := c.srv
	switch req.Method {
	case MethodPing:
		return map[string]int64{"server_time_ms": time.Now().UnixMilli()}, nil
	case MethodHello:
		var p HelloParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		if p.Version != Version {
			return nil, rpcErr(jsonrpc2.CodeInvalidRequest, "protocol version %d not supported (want %d)", p.Version, Version)
		}
		return HelloResult{Observed: c.remote, Secondary: s.cfg.Secondary, ServerTime: time.Now().UnixMilli(),
			Relay: s.cfg.RelayAddr.IsValid(), Alternate: s.cfg.Alternate, Endpoints: s.cfg.Endpoints, ProbeKey: c.hello(p)}, nil
	case MethodSink:
		return c.openSink()
	case MethodSinkSeen:
		var p SinkSeenParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.sinkSeen(p)
	case MethodProbeDial:
		var p ProbeDialParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.probeDial(ctx, p)
	case MethodLeave:
		var p SessionParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.leave(p.Session)
	case MethodCreate:
		if c.loop.overloaded(time.Now()) {
			return nil, s.busy()
		}
		var p CreateParams
		if req.Params != nil {
			if err := decodeParams(req.Params, &p); err != nil {
				return nil, err
			}
		}
		return c.create(p)
	case MethodJoin:
		var p SessionParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.join(p)
	case MethodAttach:
		var p SessionParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.attach(p)
	case MethodReady:
		var p ReadyParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.ready(p)
	case MethodConnectBack:
		var p ConnectBackParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.connectBack(ctx, p)
	case MethodRelay:
		var p SessionParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.relayOpen(p.Session)
	case MethodMessage:
		var p MessageParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		return c.pairMessage(p)
	case MethodSetKey, MethodProve:
		var p SessionParams
		if err := decodeParams(req.Params, &p); err != nil {
			return nil, err
		}
		if req.Method == MethodSetKey {
			return c.setKey(p)
		}
		return c.prove(p)
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: fmt.Sprintf("unknown method %q", req.Method)}
}

// connectBack dials the caller's mapping from another port or address. It
// only ever targets the caller's own observed address, so it cannot be used
// to make the server scan third parties.
func (c *client) connectBack(ctx context.Context, p ConnectBackParams) (any, error) {
	release, err := c.srv.probeSlot()
	if err != nil {
		return nil, err
	}
	defer release()
	if p.Target.Addr() != c.remote.Addr() {
		return nil, errors.New("target must be your own observed address")
	}
	var from netip.Addr
	switch p.From {
	case "other-port":
		from = c.local.Addr()
	case "other-address":
		if !c.srv.cfg.Secondary.IsValid() {
			return nil, errors.New("server has no second address")
		}
		from = c.srv.cfg.Secondary.Addr()
		if from == c.local.Addr() {
			from = c.srv.cfg.Secondary.Addr()
		}
	default:
		return nil, fmt.Errorf("from: %q (want other-port or other-address)", p.From)
	}
	timeout := time.Duration(p.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > 5*time.Second {
		timeout = 2 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := sockopt.Dial(dctx, netip.AddrPortFrom(from, 0), p.Target, 0)
	res := ConnectBackResult{Outcome: Outcome(err)}
	if conn != nil {
		res.From = addrPortOf(conn.LocalAddr())
		conn.Close()
	}
	return res, nil
}

// SessionCount returns how many sessions the server holds.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// ClientCount returns how many connections the server holds.
func (s *Server) ClientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}
