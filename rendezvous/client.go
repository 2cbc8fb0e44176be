package rendezvous

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/machsend/machsend/internal/sockopt"
)

// Notification is a server notification received by a Client.
type Notification struct {
	Method string
	Params json.RawMessage
}

// Client is one JSON-RPC connection to a rendezvous server.
type Client struct {
	conn  *jsonrpc2.Conn
	raw   net.Conn
	notes chan Notification

	mu       sync.Mutex
	closed   bool
	greeting HelloResult // the last hello's answer (not a probe's)
}

// Greeting is the server's answer to this client's last hello (zero
// before one): its endpoints in each family and the key for the client's
// probe connections among them.
func (c *Client) Greeting() HelloResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.greeting
}

func (c *Client) greeted(h HelloResult) {
	c.mu.Lock()
	c.greeting = h
	c.mu.Unlock()
}

// RTT is the kernel's smoothed round trip to the server on this client's
// connection (0 when unknown).
func (c *Client) RTT() time.Duration {
	rtt, _ := sockopt.RTT(c.raw)
	return rtt
}

// DialOptions configure a client connection.
type DialOptions struct {
	// Local fixes the local endpoint (with SO_REUSEADDR/SO_REUSEPORT), so
	// the server observes the mapping of exactly that port.
	Local netip.AddrPort
	// MaxMessage bounds received messages (default 1 MiB).
	MaxMessage int
	// TLSPin, if set, speaks TLS to the server and accepts only a server
	// key whose pin (Pin) it is: the rendezvous channel, with the
	// candidates' addresses, is then private to the two ends.
	TLSPin string
}

// Dial connects to a rendezvous server's endpoint (resolve a host name
// first, e.g. with session.ResolveServer).
func Dial(ctx context.Context, server netip.AddrPort, o DialOptions) (*Client, error) {
	raw, err := sockopt.Dial(ctx, o.Local, server, 0)
	if err != nil {
		return nil, fmt.Errorf("rendezvous server %s unreachable: %w", server, err)
	}
	if o.TLSPin == "" {
		return NewClient(raw, o), nil
	}
	tc := tls.Client(raw, pinnedTLS(o.TLSPin))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("rendezvous server %s: TLS: %w", server, err)
	}
	return NewClient(tc, o), nil
}

// ErrPin: the server's TLS key is not the one the link (or --server-pin)
// names.
var ErrPin = errors.New("the server's key does not match the pin: this is not the server the link was made on, or someone is in between")

// pinnedTLS accepts exactly the server key pin names.
func pinnedTLS(pin string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "machsend",
		InsecureSkipVerify: true, // the pin below is the verification
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || Pin(cs.PeerCertificates[0]) != pin {
				return ErrPin
			}
			return nil
		}}
}

// NewClient runs the client protocol over an established connection.
func NewClient(raw net.Conn, o DialOptions) *Client {
	if o.MaxMessage <= 0 {
		o.MaxMessage = 1 << 20
	}
	c := &Client{raw: raw, notes: make(chan Notification, 64)}
	h := jsonrpc2.HandlerWithError(func(ctx context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		if !req.Notif {
			return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "client serves no methods"}
		}
		var params json.RawMessage
		if req.Params != nil {
			params = append(params, *req.Params...)
		}
		select {
		case c.notes <- Notification{Method: req.Method, Params: params}:
		default: // a client not reading notifications loses them, not the connection
		}
		return nil, nil
	})
	c.conn = jsonrpc2.NewConn(context.Background(), newLineStream(raw, o.MaxMessage, 0), h, jsonrpc2.SetLogger(discardLogger{}))
	return c
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// LocalAddr is the client's local endpoint.
func (c *Client) LocalAddr() netip.AddrPort { return addrPortOf(c.raw.LocalAddr()) }

// Notifications delivers server notifications (peer.joined, punch.go, peer.left).
func (c *Client) Notifications() <-chan Notification { return c.notes }

// Done is closed when the connection to the server is gone.
func (c *Client) Done() <-chan struct{} { return c.conn.DisconnectNotify() }

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

func (c *Client) call(ctx context.Context, method string, params, result any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	for {
		err := c.conn.Call(ctx, method, params, result)
		if err == nil {
			return nil
		}
		wait, busy := retryAfter(err)
		if !busy {
			return fmt.Errorf("%s: %w", method, fromRPCError(err))
		}
		// The server refused at once because it is not keeping up: back
		// off as it asks, then try again (until ctx ends).
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (and %w)", method, fromRPCError(err), ctx.Err())
		case <-t.C:
		}
	}
}

// retryAfter reads a CodeBusy error's back-off hint (bounded to 5 s).
func retryAfter(err error) (time.Duration, bool) {
	var re *jsonrpc2.Error
	if !errors.As(err, &re) || re.Code != CodeBusy {
		return 0, false
	}
	var d BusyData
	if re.Data != nil {
		_ = json.Unmarshal(*re.Data, &d)
	}
	return min(max(time.Duration(d.RetryAfterMs)*time.Millisecond, busyRetryMin), 5*time.Second), true
}

// Hello introduces the client and returns the endpoint the server observes.
func (c *Client) Hello(ctx context.Context, private []netip.AddrPort, probe bool) (HelloResult, error) {
	var r HelloResult
	err := c.call(ctx, MethodHello, HelloParams{Version: Version, Private: private, Probe: probe}, &r)
	if err == nil && !probe {
		c.greeted(r)
	}
	return r, err
}

// HelloJoin says hello and joins session p.Session right behind it, in one
// round trip (the server answers a connection's requests in order). err
// is the hello's error; joinErr the join's, as Join would return it.
func (c *Client) HelloJoin(ctx context.Context, private []netip.AddrPort, p SessionParams) (h HelloResult, j JoinResult, joinErr, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	hw, err := c.conn.DispatchCall(ctx, MethodHello, HelloParams{Version: Version, Private: private})
	if err != nil {
		return h, j, nil, fmt.Errorf("%s: %w", MethodHello, fromRPCError(err))
	}
	jw, jerr := c.conn.DispatchCall(ctx, MethodJoin, p)
	if err := hw.Wait(ctx, &h); err != nil {
		return h, j, nil, fmt.Errorf("%s: %w", MethodHello, fromRPCError(err))
	}
	c.greeted(h)
	if jerr == nil {
		jerr = jw.Wait(ctx, &j)
	}
	if _, busy := retryAfter(jerr); busy {
		j, jerr = c.Join(ctx, p.Session, p.Key) // backs off as the server asks
	} else if jerr != nil {
		jerr = fmt.Errorf("%s: %w", MethodJoin, fromRPCError(jerr))
	}
	return h, j, jerr, nil
}

// Create opens a session; the caller becomes its peer A.
func (c *Client) Create(ctx context.Context, verifier string) (CreateResult, error) {
	var r CreateResult
	err := c.call(ctx, MethodCreate, CreateParams{Verifier: verifier}, &r)
	return r, err
}

// Join joins a session as peer B.
func (c *Client) Join(ctx context.Context, session, key string) (JoinResult, error) {
	var r JoinResult
	err := c.call(ctx, MethodJoin, SessionParams{Session: session, Key: key}, &r)
	return r, err
}

// Attach adds this connection to a session it created on another
// connection, as a further sender waiting for a receiver of its own;
// owner is the creation's CreateResult.Owner.
func (c *Client) Attach(ctx context.Context, session, owner string) (JoinResult, error) {
	var r JoinResult
	err := c.call(ctx, MethodAttach, SessionParams{Session: session, Key: owner}, &r)
	return r, err
}

// Leave says this peer is done with a session: the creator leaving ends
// it, the joiner leaving frees its place (the other peer is told).
func (c *Client) Leave(ctx context.Context, session string) error {
	return c.call(ctx, MethodLeave, SessionParams{Session: session}, &struct{}{})
}

// LeaveNotify is Leave without waiting for (or getting) an answer.
func (c *Client) LeaveNotify(ctx context.Context, session string) error {
	if err := c.conn.Notify(ctx, MethodLeave, SessionParams{Session: session}); err != nil {
		return fmt.Errorf("%s: %w", MethodLeave, fromRPCError(err))
	}
	return nil
}

// Ready says this peer is ready for an attempt; the server answers both
// peers with a punch.go notification once both are.
func (c *Client) Ready(ctx context.Context, p ReadyParams) error {
	return c.call(ctx, MethodReady, p, &struct{}{})
}

// ConnectBack asks the server to connect to target from another port or address.
func (c *Client) ConnectBack(ctx context.Context, p ConnectBackParams) (ConnectBackResult, error) {
	var r ConnectBackResult
	err := c.call(ctx, MethodConnectBack, p, &r)
	return r, err
}

// Sink asks for a sink (see probe.go).
func (c *Client) Sink(ctx context.Context) (SinkResult, error) {
	var r SinkResult
	err := c.call(ctx, MethodSink, struct{}{}, &r)
	return r, err
}

// SinkSeen asks what a sink has seen arrive (see probe.go).
func (c *Client) SinkSeen(ctx context.Context, sink string) (SinkSeenResult, error) {
	var r SinkSeenResult
	err := c.call(ctx, MethodSinkSeen, SinkSeenParams{Sink: sink}, &r)
	return r, err
}

// ProbeDial asks the server to send one SYN to this client's address.
func (c *Client) ProbeDial(ctx context.Context, p ProbeDialParams) (ProbeDialResult, error) {
	var r ProbeDialResult
	err := c.call(ctx, MethodProbeDial, p, &r)
	return r, err
}

// Relay asks for a relay slot in a session.
func (c *Client) Relay(ctx context.Context, session string) (RelayResult, error) {
	var r RelayResult
	err := c.call(ctx, MethodRelay, SessionParams{Session: session}, &r)
	return r, err
}

// Ping checks the server is alive and returns its clock.
func (c *Client) Ping(ctx context.Context) (time.Time, error) {
	var r struct {
		T int64 `json:"server_time_ms"`
	}
	err := c.call(ctx, MethodPing, struct{}{}, &r)
	return time.UnixMilli(r.T), err
}

// Observe opens a probe connection from local to the server and returns the
// mapping the server observes. The connection is returned open: it keeps the
// NAT mapping alive; close it when done. key, if set, is the ProbeKey of the
// caller's own connection to the server (Greeting), which makes the observed
// address one the server accepts in the caller's candidates.
func Observe(ctx context.Context, server netip.AddrPort, local netip.AddrPort, key string) (netip.AddrPort, *Client, error) {
	c, err := Dial(ctx, server, DialOptions{Local: local})
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	var r HelloResult
	err = c.call(ctx, MethodHello, HelloParams{Version: Version, Probe: true, ProbeKey: key}, &r)
	if err != nil {
		c.Close()
		return netip.AddrPort{}, nil, err
	}
	return r.Observed, c, nil
}

// DialRelay connects to a relay slot and waits until the relay has spliced
// this connection to the peer's.
func DialRelay(ctx context.Context, r RelayResult) (net.Conn, error) {
	conn, err := sockopt.Dial(ctx, netip.AddrPort{}, r.Addr, 0)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", r.Addr, err)
	}
	boundUnsent(conn)
	if _, err := conn.Write([]byte(r.Token + "\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if err := readRelayAck(conn); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// ErrRelayRefused: the relay closed a half before splicing it (an unknown
// or expired token, or no peer within the relay's wait).
var ErrRelayRefused = errors.New("the relay did not splice this connection")

// readRelayAck reads the relay's splice acknowledgement byte by byte: the
// peer's first bytes may follow it immediately and must stay unread.
func readRelayAck(conn net.Conn) error {
	ack := make([]byte, 0, 3)
	one := make([]byte, 1)
	for len(ack) < 3 {
		if _, err := conn.Read(one); err != nil {
			return fmt.Errorf("relay: peer never arrived: %w: %w", ErrRelayRefused, err)
		}
		ack = append(ack, one[0])
	}
	if string(ack) != "ok\n" {
		return fmt.Errorf("relay: unexpected reply %q: %w", ack, ErrRelayRefused)
	}
	return nil
}

// Spare is a second connection to the server's own port, dialled beside
// the rendezvous connection before there is a relay token for it: once
// the join brings one, the connection becomes a relay half at once
// (Spare.Relay), without a round trip of its own to connect.
type Spare struct {
	done   chan struct{}
	cancel context.CancelFunc
	conn   net.Conn
	err    error
}

// DialSpare starts dialling server, for at most timeout. A nil *Spare is
// valid: it has no connection.
func DialSpare(ctx context.Context, server netip.AddrPort, timeout time.Duration) *Spare {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	s := &Spare{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer cancel()
		s.conn, s.err = sockopt.Dial(ctx, netip.AddrPort{}, server, 0)
	}()
	return s
}

// Relay makes the spare connection r's relay half: it sends the token and
// returns at once, so that the caller's first message follows the token
// in the same flight (the relay forwards it when it splices). The
// relay's acknowledgement is read before the connection's first byte; a
// relay that refuses the half makes that read fail with ErrRelayRefused.
// The spare is used once.
func (s *Spare) Relay(ctx context.Context, r RelayResult) (net.Conn, error) {
	if s == nil {
		return nil, errors.New("relay: no spare connection")
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("relay: %w", ctx.Err())
	}
	if s.err != nil {
		return nil, fmt.Errorf("relay: %w", s.err)
	}
	conn := s.conn
	s.conn = nil
	if conn == nil {
		return nil, errors.New("relay: the spare connection was used already")
	}
	boundUnsent(conn)
	if _, err := conn.Write([]byte(relayPrefix + r.Token + "\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &ackConn{Conn: conn}, nil
}

// Close closes the spare connection if it was not used (waiting for its
// dial to end).
func (s *Spare) Close() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// RelayUnsent bounds the bytes a relay half's kernel holds unsent
// (TCP_NOTSENT_LOWAT, where the system has it). A transfer that starts on
// the relay moves to a direct path once there is one; what it queued on
// the relay before the move still goes that way, so the queue is kept
// short. The relay bounds its own buffers likewise (Config.RelayBuffer).
const RelayUnsent = 128 << 10

// boundUnsent applies RelayUnsent to a relay half; a system without the
// option keeps its default queue.
func boundUnsent(c net.Conn) { _ = sockopt.SetNotSentLowat(c, RelayUnsent) }

// relayPrefix starts a relay half's token line on the server's own port
// (on the relay address it may be left out).
const relayPrefix = "RELAY "

// closeWrite half-closes c where it can (TCP), and closes it otherwise.
func closeWrite(c net.Conn) error {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Close()
}

// ackConn reads the relay's acknowledgement before its first byte.
type ackConn struct {
	net.Conn
	acked bool
}

func (c *ackConn) Read(b []byte) (int, error) {
	if !c.acked {
		if err := readRelayAck(c.Conn); err != nil {
			return 0, err
		}
		c.acked = true
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection.
func (c *ackConn) CloseWrite() error { return closeWrite(c.Conn) }

// CreateCode creates a code session: its result's Nameplate is the number
// a receiver joins it by (JoinCode), once.
func (c *Client) CreateCode(ctx context.Context) (CreateResult, error) {
	var r CreateResult
	err := c.call(ctx, MethodCreate, CreateParams{Code: true}, &r)
	return r, err
}

// JoinCode joins the code session of a nameplate, spending its one join;
// the result names the session.
func (c *Client) JoinCode(ctx context.Context, nameplate int) (JoinResult, error) {
	var r JoinResult
	err := c.call(ctx, MethodJoin, SessionParams{Nameplate: nameplate}, &r)
	return r, err
}

// Message sends data to the other member of this connection's pair in a
// code session (it arrives as a NotifyMessage).
func (c *Client) Message(ctx context.Context, session string, data []byte) error {
	return c.call(ctx, MethodMessage, MessageParams{Session: session, Data: data}, nil)
}

// SetKey registers, as a code session's creator, the verifier (JoinProof)
// of the secret the peers agreed on.
func (c *Client) SetKey(ctx context.Context, session, verifier string) error {
	return c.call(ctx, MethodSetKey, SessionParams{Session: session, Key: verifier}, nil)
}

// Prove shows, as a code session's joiner, the key (JoinProof) whose
// verifier the creator registered.
func (c *Client) Prove(ctx context.Context, session, key string) error {
	return c.call(ctx, MethodProve, SessionParams{Session: session, Key: key}, nil)
}

// Outcome names what a connection attempt came to (see sockopt.Outcome).
func Outcome(err error) string { return sockopt.Outcome(err) }
