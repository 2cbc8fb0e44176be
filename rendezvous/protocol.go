package rendezvous

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/method"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/machsend/machsend/internal/rawtcp"
)

// Protocol version spoken by this package.
const Version = 1

// JSON-RPC methods (client to server).
const (
	MethodHello       = "hello"
	MethodCreate      = "session.create"
	MethodJoin        = "session.join"
	MethodReady       = "punch.ready"
	MethodConnectBack = "probe.connectback"
	MethodRelay       = "relay.open"
	MethodPing        = "ping"
	MethodSink        = "probe.sink"
	MethodProbeDial   = "probe.dial"
	MethodSinkSeen    = "probe.seen"
	MethodLeave       = "session.leave"
	MethodAttach      = "session.attach"
	// Code sessions (codes.go): a message to the other member of the
	// pair, the creator registering a verifier after the peers' PAKE, and
	// the joiner proving it.
	MethodMessage = "pair.message"
	MethodSetKey  = "session.key"
	MethodProve   = "session.prove"
)

// Notifications (server to client, on the same connection).
const (
	NotifyPeerJoined = "peer.joined"
	NotifyPunch      = "punch.go"
	NotifyPeerLeft   = "peer.left"
	NotifyMessage    = "peer.message" // MessageParams from the other member of the pair
)

// Roles in a session: the creator (sender) is A, the joiner is B.
const (
	RoleA = "a"
	RoleB = "b"
)

// Punch roles chosen by the server for asymmetric methods.
const (
	Initiator = "initiator"
	Responder = "responder"
)

// JSON-RPC error codes beyond the standard ones.
const (
	CodeNoSession   = 1001
	CodeLimit       = 1002
	CodeSessionFull = 1003
	CodeRelayOff    = 1004
	CodeBadState    = 1005
	CodeWrongKey    = 1006
	// CodeBusy: the server is not keeping up and refused to start new work;
	// the error's data carries {"retry_after_ms": N}. Retry after N ms.
	CodeBusy = 1007
	// CodeSpent: the short code's one join was used (a code buys one
	// guess); the sender must make a new one.
	CodeSpent = 1008
)

// BusyData is the data of a CodeBusy error: when to retry.
type BusyData struct {
	RetryAfterMs int `json:"retry_after_ms"`
}

// Sentinel errors a client tests for.
var (
	ErrNoSession     = errors.New("no such session (expired, or the id is wrong)")
	ErrLimit         = errors.New("server limit reached")
	ErrSessionFull   = errors.New("session already has two peers")
	ErrWrongKey      = errors.New("the secret in this link is wrong")
	ErrRelayDisabled = errors.New("relay disabled on this server")
	ErrTooLarge      = errors.New("message too large")
	ErrClosed        = errors.New("rendezvous connection closed")
	ErrBusy          = errors.New("rendezvous server busy")
	ErrSpent         = errors.New("this code was already used")
)

// HelloParams introduce a client. Probe marks a short-lived connection used
// only to learn the mapping of one local port.
type HelloParams struct {
	Version int              `json:"version"`
	Private []netip.AddrPort `json:"private,omitempty"`
	Probe   bool             `json:"probe,omitempty"`
	// ProbeKey, on a probe connection, is the ProbeKey the server gave the
	// client's own connection: the server then accepts the address it
	// observes here as that client's public address in punch.ready (a
	// peer's candidates in the other address family; see probed.go).
	ProbeKey string `json:"probe_key,omitempty"`
}

// HelloResult reports what the server sees (STUNT).
type HelloResult struct {
	Observed netip.AddrPort `json:"observed"`
	// Secondary is the server's other listening endpoint (another address
	// and port), for comparing mappings; invalid when not configured.
	Secondary  netip.AddrPort `json:"secondary"`
	ServerTime int64          `json:"server_time_ms"`
	Relay      bool           `json:"relay"`
	// Alternate is another endpoint on the primary address (another port),
	// to tell address-dependent from address-and-port-dependent mapping.
	Alternate netip.AddrPort `json:"alternate,omitzero"`
	// Endpoints are the server's primary endpoints, one per address
	// family, when it listens on both (Config.Endpoints).
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	// ProbeKey names this connection's client to its probe connections
	// (HelloParams.ProbeKey); empty on a probe connection.
	ProbeKey string `json:"probe_key,omitempty"`
}

// CreateResult names a new session. Owner is the token that lets the
// creator attach more connections to it (session.attach), so that it
// serves several receivers at once; it is given to the creator only.
type CreateResult struct {
	Session string    `json:"session"`
	Expires time.Time `json:"expires"`
	Owner   string    `json:"owner"`
	// Nameplate is a code session's number, the first part of its code.
	Nameplate int `json:"nameplate,omitempty"`
}

// CreateParams create a session; Verifier (JoinProof) makes joining it
// require the matching key. Without one, anyone with the id may join.
type CreateParams struct {
	Verifier string `json:"verifier,omitempty"`
	// Code asks for a code session: no verifier yet, a short nameplate
	// to join it by, one join ever, one pair (see codes.go).
	Code bool `json:"code,omitempty"`
}

// SessionParams name a session; Key is the join key (JoinProof) when the
// session has a verifier, or the owner token (CreateResult.Owner) to
// attach.
type SessionParams struct {
	Session string `json:"session"`
	Key     string `json:"key,omitempty"`
	// Nameplate joins a code session by its number instead of its id.
	Nameplate int `json:"nameplate,omitempty"`
}

// MessageParams carry an opaque message between the two members of a
// pair of a code session (the peers' PAKE), at most MaxMessage bytes.
type MessageParams struct {
	Session string `json:"session"`
	Data    []byte `json:"data"`
}

// JoinResult tells the joiner about the session.
type JoinResult struct {
	Session string `json:"session"`
	Role    string `json:"role"`
	// Relay is the joiner's relay slot (as PeerEvent.Relay is the
	// sender's); nil when the server does not relay this session.
	Relay *RelayResult `json:"relay,omitempty"`
}

// Candidates are the endpoints a peer may be reached at for one attempt.
type Candidates struct {
	// Private endpoints of the attempt's local port (the host's addresses).
	Private []netip.AddrPort `json:"private,omitempty"`
	// Public is the mapping the server observed for that local port.
	Public netip.AddrPort `json:"public"`
	// Predicted are likely mappings for the next connection (port prediction).
	Predicted []netip.AddrPort `json:"predicted,omitempty"`
	// TTL is the hop count that takes a SYN past the peer's own NATs but not
	// to the other peer (STUNT #2); 0 when unknown.
	TTL int `json:"ttl,omitempty"`
	// Mapping is the peer's NAT mapping class from its cheap check (none,
	// endpoint-independent, endpoint-dependent), for the expected path.
	Mapping nat.Seen `json:"mapping,omitempty"`
	// SYN describes this peer's own low-TTL SYN (STUNT #1, NATBlaster) once
	// captured: its ISN and options, and where it was sent.
	SYN *rawtcp.SYN `json:"syn,omitempty"`
	// Forge asks the server to forge the SYN-ACKs of this exchange (STUNT
	// #1); it acts only when both peers ask and it was started with Forge.
	Forge bool `json:"forge,omitempty"`
	// ServerRTTms is this peer's round trip to the server (the kernel's
	// smoothed RTT of its connection), from which both peers bound the
	// attempts that need one round trip between them; 0 when unknown.
	ServerRTTms float64 `json:"server_rtt_ms,omitempty"`
}

// AttemptID names one exchange of a punching attempt: the method (a row of
// method.Table), its round (the initiator is A on even rounds and B on odd
// ones, so a retried method swaps roles) and, for methods that exchange more
// than once, the step ("" for the first exchange). A dual-stack session
// (the server has an endpoint in each family) runs each attempt in both
// address families, named by Family.
type AttemptID struct {
	Method method.Method `json:"method"`
	Round  int           `json:"round"`
	Step   string        `json:"step,omitempty"`
	// Family is the attempt's address family, FamilyIPv4 or FamilyIPv6,
	// in a dual-stack session; "" otherwise: each peer's sockets then take
	// the family of its connection to the server.
	Family string `json:"family,omitempty"`
}

// Address families of a dual-stack session's attempts (AttemptID.Family).
const (
	FamilyIPv4 = "ip4"
	FamilyIPv6 = "ip6"
)

// MaxRound bounds an attempt's round: no method runs more than a few.
const MaxRound = 15

// attemptSteps are the later exchanges methods make within one attempt.
var attemptSteps = []string{"", "listening", "syn", "guessed"}

// String is the attempt's display name, "method[@family]/round[/step]".
func (a AttemptID) String() string {
	s := fmt.Sprintf("%s/%d", a.Method, a.Round)
	if a.Family != "" {
		s = fmt.Sprintf("%s@%s/%d", a.Method, a.Family, a.Round)
	}
	if a.Step != "" {
		s += "/" + a.Step
	}
	return s
}

// WithStep is the same attempt's later exchange named step.
func (a AttemptID) WithStep(step string) AttemptID { a.Step = step; return a }

// Check validates an attempt from the wire.
func (a AttemptID) Check() error {
	if _, ok := method.Lookup(a.Method); !ok {
		return fmt.Errorf("attempt: unknown method %q", a.Method)
	}
	if a.Round < 0 || a.Round > MaxRound {
		return fmt.Errorf("attempt: round %d outside 0..%d", a.Round, MaxRound)
	}
	if !slices.Contains(attemptSteps, a.Step) {
		return fmt.Errorf("attempt: unknown step %q", a.Step)
	}
	if a.Family != "" && a.Family != FamilyIPv4 && a.Family != FamilyIPv6 {
		return fmt.Errorf("attempt: unknown address family %q (%s or %s)", a.Family, FamilyIPv4, FamilyIPv6)
	}
	return nil
}

// Initiator is the role that initiates the attempt: A on even rounds.
func (a AttemptID) Initiator() string {
	if a.Round%2 == 1 {
		return RoleB
	}
	return RoleA
}

// ReadyParams say a peer is ready for one punching attempt.
type ReadyParams struct {
	Session    string     `json:"session"`
	Attempt    AttemptID  `json:"attempt"`
	Candidates Candidates `json:"candidates"`

	// minRTT is the server's own measure of the peer's round trip (the
	// kernel's minimum RTT on its connection; 0 when unknown).
	minRTT time.Duration
}

// PunchGo is the server's notification that both peers are ready: the peer's
// candidates, this peer's role, and when to start (server clock, ms).
type PunchGo struct {
	Session    string     `json:"session"`
	Attempt    AttemptID  `json:"attempt"`
	Role       string     `json:"role"`
	Peer       Candidates `json:"peer"`
	StartAt    int64      `json:"start_at_ms"`
	ServerTime int64      `json:"server_time_ms"`
	// Forged is how many SYN-ACKs the server forged for this exchange
	// (STUNT #1: one to each peer); ForgeError says why it forged none.
	Forged     int    `json:"forged,omitempty"`
	ForgeError string `json:"forge_error,omitempty"`
}

// PeerEvent tells a peer that the other peer joined or left.
type PeerEvent struct {
	Session string `json:"session"`
	Role    string `json:"role"`
	// Relay is the receiving peer's relay slot, handed out with peer.joined
	// when the server relays and the joiner proved the link's key, so the
	// relay needs no relay.open round trip.
	Relay *RelayResult `json:"relay,omitempty"`
}

// ConnectBackParams ask the server to open a TCP connection to Target (the
// client's mapping) from another port or address, to test filtering.
type ConnectBackParams struct {
	Target netip.AddrPort `json:"target"`
	// From is "other-port" (primary address, fresh port) or "other-address".
	From      string `json:"from"`
	TimeoutMs int    `json:"timeout_ms"`
}

// ConnectBackResult says what the connect-back came to.
type ConnectBackResult struct {
	From    netip.AddrPort `json:"from"`
	Outcome string         `json:"outcome"` // connected, refused, timeout, unreachable, error
}

// SinkResult names a sink: a server port that swallows SYNs unanswered.
type SinkResult struct {
	Sink string         `json:"sink"`
	Addr netip.AddrPort `json:"addr"`
	// Sniffing says the server sees the source of SYNs reaching its sinks
	// (so a probe.dial from the sink needs no target port).
	Sniffing bool `json:"sniffing"`
}

// SinkSeenParams name the sink whose sightings probe.seen reports.
type SinkSeenParams struct {
	Sink string `json:"sink"`
}

// SinkSeenResult is what a sniffing server saw arrive at a sink: the
// source of the first bare SYN (and its sequence number) and of the first
// SYN-ACK; invalid when none arrived or the server cannot sniff.
type SinkSeenResult struct {
	SYN      netip.AddrPort `json:"syn,omitzero"`
	ISN      uint32         `json:"isn,omitempty"`
	SYNACK   netip.AddrPort `json:"synack,omitzero"`
	Sniffing bool           `json:"sniffing"`
}

// ProbeDialParams ask the server to send one SYN to the caller's own
// address: from another port, another address, or a sink's port.
type ProbeDialParams struct {
	// Target is the caller's endpoint to dial; with From "sink" and a
	// sniffing server, an invalid target means "where the SYN came from".
	Target netip.AddrPort `json:"target,omitzero"`
	// From is "other-port", "other-address" or "sink".
	From string `json:"from"`
	Sink string `json:"sink,omitempty"`
	// DelayMs waits before dialing (transitory-timer probes), at most 15 s.
	DelayMs   int `json:"delay_ms,omitempty"`
	TimeoutMs int `json:"timeout_ms,omitempty"`
}

// ProbeDialResult is what the SYN met: connected, rst,
// icmp-port-unreachable, icmp-admin-prohibited, icmp-unreachable,
// icmp-time-exceeded, timeout, no-syn-seen or error.
type ProbeDialResult struct {
	Outcome  string         `json:"outcome"`
	ICMPFrom netip.Addr     `json:"icmp_from,omitzero"`
	From     netip.AddrPort `json:"from,omitzero"`
	Target   netip.AddrPort `json:"target,omitzero"`
}

// RelayResult tells a peer where to connect for the relay and with what token.
type RelayResult struct {
	Addr  netip.AddrPort `json:"addr"`
	Token string         `json:"token"`
}

// lineStream is a jsonrpc2.ObjectStream of one JSON object per line, with a
// size bound on every message and an idle timeout on reads.
type lineStream struct {
	conn    net.Conn
	r       *bufio.Reader
	max     int
	idle    time.Duration
	writeMu sync.Mutex
}

func newLineStream(c net.Conn, max int, idle time.Duration) *lineStream {
	return &lineStream{conn: c, r: bufio.NewReaderSize(c, 4096), max: max, idle: idle}
}

func (s *lineStream) WriteObject(obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = s.conn.Write(b)
	return err
}

func (s *lineStream) ReadObject(v any) error {
	if s.idle > 0 {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.idle))
	}
	line, err := readLine(s.r, s.max)
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func (s *lineStream) Close() error { return s.conn.Close() }

// readLine reads one newline-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return nil, fmt.Errorf("%w (over %d bytes)", ErrTooLarge, max)
		}
		buf = append(buf, frag...)
		if err == nil {
			return bytes.TrimSpace(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(bytes.TrimSpace(buf)) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// decodeParams unmarshals a request's params strictly (unknown fields and
// trailing data are errors) into v.
func decodeParams(params *json.RawMessage, v any) error {
	if params == nil {
		return errors.New("missing params")
	}
	dec := json.NewDecoder(bytes.NewReader(*params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad params: %w", err)
	}
	if dec.More() {
		return errors.New("bad params: trailing data")
	}
	return nil
}

// fromRPCError maps a server error to the package's sentinels.
func fromRPCError(err error) error {
	var re *jsonrpc2.Error
	if !errors.As(err, &re) {
		if errors.Is(err, jsonrpc2.ErrClosed) {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return err
	}
	switch re.Code {
	case CodeNoSession:
		return fmt.Errorf("%w: %s", ErrNoSession, re.Message)
	case CodeLimit:
		return fmt.Errorf("%w: %s", ErrLimit, re.Message)
	case CodeSessionFull:
		return fmt.Errorf("%w: %s", ErrSessionFull, re.Message)
	case CodeWrongKey:
		return fmt.Errorf("%w (%s)", ErrWrongKey, re.Message)
	case CodeRelayOff:
		return fmt.Errorf("%w: %s", ErrRelayDisabled, re.Message)
	case CodeBusy:
		return fmt.Errorf("%w: %s", ErrBusy, re.Message)
	case CodeSpent:
		return fmt.Errorf("%w: %s", ErrSpent, re.Message)
	}
	return fmt.Errorf("rendezvous: %s (code %d)", re.Message, re.Code)
}

// Candidate limits: what one peer may make the other send SYNs to.
const (
	maxPrivate   = 8
	maxPredicted = 4
	// maxServerRTTms bounds a claimed round trip to the server.
	maxServerRTTms = 60_000
)

// check bounds the candidates a peer submits: a handful of private
// endpoints, and a public endpoint and predictions on the address the
// server sees the peer at (observed, or in the other address family one
// of the addresses its own probe connections came from), so that no peer
// can point the other's SYNs at a third party or at a spread of ports.
func (c Candidates) check(observed netip.Addr, probed ...netip.Addr) error {
	switch {
	case len(c.Private) > maxPrivate:
		return fmt.Errorf("candidates: %d private endpoints (at most %d)", len(c.Private), maxPrivate)
	case len(c.Predicted) > maxPredicted:
		return fmt.Errorf("candidates: %d predicted endpoints (at most %d)", len(c.Predicted), maxPredicted)
	case c.ServerRTTms < 0 || c.ServerRTTms > maxServerRTTms || c.ServerRTTms != c.ServerRTTms:
		return fmt.Errorf("candidates: server round trip %v ms (0 to %d)", c.ServerRTTms, maxServerRTTms)
	case c.Public.IsValid() && c.Public.Addr() != observed && !slices.Contains(probed, c.Public.Addr()):
		return fmt.Errorf("candidates: public endpoint %s is not on the address the server sees (%s) nor on one its probes came from", c.Public, observed)
	}
	for _, p := range c.Predicted {
		if p.Addr() != c.Public.Addr() {
			return fmt.Errorf("candidates: predicted endpoint %s is not on the public address %s", p, c.Public.Addr())
		}
	}
	return nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func newID() string {
	b := make([]byte, 16) // 128 random bits
	_, _ = rand.Read(b)   // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}

// Overload: a loop that has not caught up with its sockets for longer than
// Config.Budget refuses new sessions at once with CodeBusy and a back-off
// hint, so that the sessions it admitted keep their latency and nobody
// waits for a timeout. The hint is spread (jittered) so that refused
// clients do not return together.
const (
	busyRetryMin = 50 * time.Millisecond
	busyRetryMax = 250 * time.Millisecond
)
