package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/method"
)

// DefaultPort is the rendezvous port a server address without one gets.
const DefaultPort = 3478

// ServerTimeout bounds reaching the rendezvous server and its hello (a
// variable so that tests can shorten it).
var ServerTimeout = 10 * time.Second

// serverErr says in words what failed on the way to the server.
func serverErr(ctx context.Context, server netip.AddrPort, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted while reaching the rendezvous server %s: %w", server, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the rendezvous server %s did not answer within %v: check the address, and that the server is running and reachable: %w", server, ServerTimeout, err)
	}
	return fmt.Errorf("cannot reach the rendezvous server %s (check the address, and that the server is running): %w", server, err)
}

// Options configure a Peer.
type Options struct {
	// Method is the traversal method (the zero value means method.Auto).
	Method method.Method
	// AttemptTimeout bounds one punching attempt (0: traversal's default).
	AttemptTimeout time.Duration
	// ServerPin, if set, is the server's TLS key pin: the rendezvous
	// channel is then TLS to exactly that key, and a share's link carries
	// the pin (a link's own pin is used by Fetch).
	ServerPin string
	// ServerName is the server as the user named it (host:port); a share's
	// link then shows the name, resolved by each receiver, instead of the
	// address ("" : the address).
	ServerName string
	// Events receives every event; it may be called from several
	// goroutines at once and must not block for long. Nil discards them.
	Events func(Event)
}

func (o Options) emit(e Event) {
	if o.Events == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	o.Events(e)
}

// Peer is one side of a session on a rendezvous server. Its methods are
// not safe for concurrent use.
type Peer struct {
	ID     string
	Role   string // rendezvous.RoleA (created the session) or RoleB (joined it)
	Server netip.AddrPort

	opts      Options
	secret    []byte
	relay     bool // the server offers a relay
	client    *rendezvous.Client
	secondary netip.AddrPort
	signal    *traversal.RendezvousSignal
	owner     string // the creator's owner token (Attach); "" for a joiner
}

// Create opens a new session on the server, joinable only with proof of
// secret (rendezvous.JoinProof); the caller passes ID and the secret, out
// of band, to the other peer.
func Create(ctx context.Context, server netip.AddrPort, secret []byte, o Options) (*Peer, error) {
	return open(ctx, server, "", secret, o)
}

// Join joins the session id on the server with the session's secret.
func Join(ctx context.Context, server netip.AddrPort, id string, secret []byte, o Options) (*Peer, error) {
	if id == "" {
		return nil, errors.New("join: no session id")
	}
	return open(ctx, server, id, secret, o)
}

func open(ctx context.Context, server netip.AddrPort, id string, secret []byte, o Options) (*Peer, error) {
	if len(secret) < 16 {
		return nil, errors.New("session secret shorter than 16 bytes")
	}
	key, verifier := rendezvous.JoinProof(secret)
	var join *rendezvous.SessionParams
	var spare *rendezvous.Spare
	if id != "" {
		join = &rendezvous.SessionParams{Session: id, Key: key}
		if usesRelay(o.Method) {
			// A joiner's relay slot comes with the join's answer: a
			// second connection dialled now carries it without a round
			// trip of its own.
			spare = rendezvous.DialSpare(ctx, server, ServerTimeout)
		}
	}
	p, joined, err := dialPeer(ctx, server, secret, o, join)
	if err != nil {
		spare.Close()
		return nil, err
	}
	var relay *rendezvous.RelayResult
	if id == "" {
		r, err := p.client.Create(ctx, verifier)
		if err != nil {
			p.client.Close()
			return nil, fmt.Errorf("create session: %w", err)
		}
		p.ID, p.Role, p.owner = r.Session, rendezvous.RoleA, r.Owner
	} else {
		r, err := joinWhenFree(ctx, p.client, id, key, joined, o)
		if err != nil {
			spare.Close()
			p.client.Close()
			return nil, fmt.Errorf("join session: %w", err)
		}
		p.ID, p.Role, relay = id, rendezvous.RoleB, r.Relay
	}
	p.signal = traversal.NewRendezvousSignal(p.client, server, p.secondary, p.ID)
	if relay != nil && p.relay {
		p.signal.OfferRelay(relay, spare)
	} else {
		spare.Close()
	}
	o.emit(Event{Kind: KindSession, Session: p.ID, Role: p.Role})
	return p, nil
}

// usesRelay says whether method m may use the server's relay.
func usesRelay(m method.Method) bool {
	return m == "" || m == method.Auto || m == method.Relay
}

// dialPeer connects to the server and says hello, within ServerTimeout;
// with join, the join goes out right behind the hello, in the same round
// trip, and its answer is returned.
func dialPeer(ctx context.Context, server netip.AddrPort, secret []byte, o Options, join *rendezvous.SessionParams) (*Peer, *joinAnswer, error) {
	if o.Method == "" {
		o.Method = method.Auto
	}
	o.emit(Event{Kind: KindServer, Server: server.String()})
	dctx, cancel := context.WithTimeout(ctx, ServerTimeout)
	defer cancel()
	c, err := rendezvous.Dial(dctx, server, rendezvous.DialOptions{TLSPin: o.ServerPin})
	if err != nil {
		return nil, nil, serverErr(ctx, server, err)
	}
	var h rendezvous.HelloResult
	var joined *joinAnswer
	if join == nil {
		h, err = c.Hello(dctx, nil, false)
	} else {
		var ja joinAnswer
		h, ja.result, ja.err, err = c.HelloJoin(dctx, nil, *join)
		joined = &ja
	}
	if err != nil {
		c.Close()
		return nil, nil, serverErr(ctx, server, err)
	}
	return &Peer{Server: server, opts: o, secret: secret, client: c, secondary: h.Secondary, relay: h.Relay}, joined, nil
}

// joinAnswer is a join sent behind the hello: its result or error.
type joinAnswer struct {
	result rendezvous.JoinResult
	err    error
}

// Attach opens another connection to the server and attaches it to the
// session p created, as a further sender waiting for a receiver of its
// own (a share serving several receivers at once, each with its own
// traversal); o configures the new peer.
func (p *Peer) Attach(ctx context.Context, o Options) (*Peer, error) {
	if p.owner == "" {
		return nil, errors.New("attach: only the session's creator can attach connections")
	}
	q, _, err := dialPeer(ctx, p.Server, p.secret, o, nil)
	if err != nil {
		return nil, err
	}
	if _, err := q.client.Attach(ctx, p.ID, p.owner); err != nil {
		q.client.Close()
		return nil, fmt.Errorf("attach a connection to the session: %w", err)
	}
	q.ID, q.Role, q.owner = p.ID, rendezvous.RoleA, p.owner
	q.signal = traversal.NewRendezvousSignal(q.client, p.Server, q.secondary, p.ID)
	return q, nil
}

// Connect probes this side's NAT and runs traversal to the other peer,
// authenticated with the session secret; it returns the connection (not yet encrypted) and the
// report of every attempt, which is also returned (and emitted) when no
// attempt connected.
func (p *Peer) Connect(ctx context.Context) (net.Conn, *traversal.Report, error) {
	info, err := p.probe(ctx)
	if err != nil {
		return nil, nil, err
	}
	conn, rep, err := p.traverse(ctx, traversal.Config{Method: p.opts.Method, NAT: info})
	if err != nil && !p.relay {
		return nil, rep, fmt.Errorf("no path to the peer, and the rendezvous server %s has no relay to fall back on (its operator can start it with --relay): %w", p.Server, err)
	}
	if err != nil {
		return nil, rep, fmt.Errorf("no path to the peer: %w", err)
	}
	p.opts.emit(Event{Kind: KindConnected, Report: rep})
	return conn, rep, nil
}

// probe runs the cheap NAT probe and reports it (KindNAT).
func (p *Peer) probe(ctx context.Context) (traversal.NATInfo, error) {
	info, err := traversal.ProbeNAT(ctx, p.signal, p.Server)
	if err != nil {
		return info, fmt.Errorf("probe NAT: %w", err)
	}
	p.opts.emit(Event{Kind: KindNAT, NAT: &info})
	return info, nil
}

// traverse runs traversal.Connect with cfg completed from p (signal,
// session, role, secret, attempt bound, events) and reports its attempts
// (KindReport), whether or not one connected.
func (p *Peer) traverse(ctx context.Context, cfg traversal.Config) (net.Conn, *traversal.Report, error) {
	cfg.Signal, cfg.Session, cfg.Role, cfg.Secret, cfg.AttemptTimeout = p.signal, p.ID, p.Role, p.secret, p.opts.AttemptTimeout
	cfg.Events = func(e traversal.Event) {
		if e.Kind == "expect" && !p.relay && strings.Contains(e.Detail, "relay") {
			e.Detail += "; but this rendezvous server has no relay (its operator can start it with --relay), so if no direct path works the transfer cannot happen"
		}
		p.opts.emit(Event{Kind: KindStep, Time: e.Time, Step: &e})
	}
	conn, rep, err := traversal.Connect(ctx, cfg)
	if rep != nil {
		p.opts.emit(Event{Kind: KindReport, Report: rep})
	}
	return conn, rep, err
}

// ConnectSecure is Connect followed by the secure channel's handshake.
func (p *Peer) ConnectSecure(ctx context.Context) (*transfer.SecureConn, *traversal.Report, error) {
	secret := p.secret
	conn, rep, err := p.Connect(ctx)
	if err != nil {
		return nil, rep, err
	}
	sc, err := transfer.Secure(conn, secret, p.ID, p.Role == rendezvous.RoleB)
	if err != nil {
		conn.Close()
		return nil, rep, err
	}
	return sc, rep, nil
}

// Next readies the session for its next peer (a sharer serving one
// receiver after another).
func (p *Peer) Next() { p.signal.Next() }

// Joined is closed when a receiver joins this creator's connection (since
// it was made, or since Next).
func (p *Peer) Joined() <-chan struct{} { return p.signal.Joined() }

// Done is closed when the connection to the server is lost.
func (p *Peer) Done() <-chan struct{} { return p.client.Done() }

// Close leaves the session and closes the server connection.
func (p *Peer) Close() error {
	p.signal.Stop()
	return p.client.Close()
}

// joinWait is how long a receiver waits for a share that is serving
// someone else (or whose previous receiver is still leaving).
const joinWait = 30 * time.Second

// joinWhenFree joins id, waiting while the session already has a receiver:
// a sharer serves receivers in turn. first is the answer to a join
// already sent (nil: none yet).
func joinWhenFree(ctx context.Context, c *rendezvous.Client, id, key string, first *joinAnswer, o Options) (rendezvous.JoinResult, error) {
	deadline := time.Now().Add(joinWait)
	told := false
	for {
		var r rendezvous.JoinResult
		var err error
		if first != nil {
			r, err, first = first.result, first.err, nil
		} else {
			r, err = c.Join(ctx, id, key)
		}
		if !errors.Is(err, rendezvous.ErrSessionFull) || time.Now().After(deadline) {
			return r, err
		}
		if !told {
			o.emit(Event{Kind: KindWaiting})
			told = true
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return rendezvous.JoinResult{}, ctx.Err()
		}
	}
}

// usableServer refuses a server address no one else could reach: a
// zone (a link-local address of this host's link) or the unspecified
// address.
func usableServer(s string, a netip.Addr) error {
	if a.Zone() != "" || a.IsUnspecified() {
		return fmt.Errorf("server %q: give an address others can reach too (not a link-local address with a zone, not 0.0.0.0 or ::)", s)
	}
	return nil
}

// ServerName is the host:port a user typed for the server, with the
// default port added, or "" when it is an address, not a name.
func ServerName(s string) string {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, strconv.Itoa(DefaultPort))
	}
	if !transfer.ValidHostPort(s) {
		return ""
	}
	return strings.ToLower(s)
}

// ResolveServer turns what a user typed ("IP:PORT", "[IPv6]:PORT", "IP",
// "host:port" or "host") into the server's endpoint, IPv4 or IPv6 (a
// name with both: its IPv4 address); the port defaults to DefaultPort.
func ResolveServer(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), usableServer(s, ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), DefaultPort), usableServer(s, a)
	}
	host, port := s, uint64(DefaultPort)
	if h, ps, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || p == 0 {
			return netip.AddrPort{}, fmt.Errorf("server %q: the port must be a number from 1 to 65535", s)
		}
		host, port = h, p
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("server %q: no host name or address", s)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("server %q: cannot resolve %s: %w", s, host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("server %q: %s has no address", s, host)
	}
	// An IPv4 address first where the name has both: the two families
	// are not raced yet (no Happy Eyeballs), and IPv4 is the one the lab
	// has measured most.
	best := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			best = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(best, uint16(port)), nil
}
