package traversal

import (
	"net"
	"net/netip"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal/method"
)

// Method names a way of establishing the connection; the methods, their
// paths and auto's schedule are the rows of method.Table.
type Method = method.Method

// Event is one timestamped step of a traversal, for --json streams.
type Event struct {
	Time    time.Time      `json:"time"`
	Kind    string         `json:"kind"`
	Method  Method         `json:"method,omitempty"`
	Attempt string         `json:"attempt,omitempty"`
	Role    string         `json:"role,omitempty"`
	Local   netip.AddrPort `json:"local,omitzero"`
	Remote  netip.AddrPort `json:"remote,omitzero"`
	Detail  string         `json:"detail,omitempty"`
}

// Attempt is the record of one attempt of one method.
type Attempt struct {
	// Attempt is ID's display name, "method/round".
	Attempt string               `json:"attempt"`
	ID      rendezvous.AttemptID `json:"-"`
	Method  Method               `json:"method"`
	Role    string               `json:"role,omitempty"`
	Start   time.Time            `json:"start"`
	// Ready is when this peer learnt that both peers were ready for the
	// attempt (the server's punch.go arrived; zero for the relay, which
	// the server pairs without it), Authenticated when the attempt's first
	// connection proved the session secret.
	Ready         time.Time      `json:"ready,omitzero"`
	Authenticated time.Time      `json:"authenticated,omitzero"`
	End           time.Time      `json:"end"`
	Outcome       string         `json:"outcome"` // connected, timeout, refused, reset, unreachable, auth-failed, not-applicable, canceled, error
	Error         string         `json:"error,omitempty"`
	Local         netip.AddrPort `json:"local,omitzero"`
	Public        netip.AddrPort `json:"public,omitzero"`
	PeerPublic    netip.AddrPort `json:"peer_public,omitzero"`
	Target        netip.AddrPort `json:"target,omitzero"`
	Predicted     bool           `json:"predicted,omitempty"`
	// Packets counts the crafted or deliberately sent packets of the raw
	// methods (low-TTL SYNs, injected SYN-ACKs, birthday SYNs).
	Packets int `json:"packets,omitempty"`
	// Birthday is what NATBlaster's birthday fallback measured on this
	// side (nil when it did not run).
	Birthday *Birthday `json:"birthday,omitempty"`
}

// Birthday is one side's part of NATBlaster's birthday search: the
// predictable side's guesses and how many were still pending (in
// SYN_SENT, not aborted by an ICMP error) when the random side opened its
// mappings; the random side's mappings opened.
type Birthday struct {
	Guesses  int `json:"guesses,omitempty"`
	Pending  int `json:"pending,omitempty"`
	Mappings int `json:"mappings,omitempty"`
}

// Duration is how long the attempt ran.
func (a Attempt) Duration() time.Duration { return a.End.Sub(a.Start) }

// Report says how a connection was made.
type Report struct {
	Method      Method         `json:"method"`
	Attempt     string         `json:"attempt"`
	Path        string         `json:"path"`
	Local       netip.AddrPort `json:"local,omitzero"`
	Remote      netip.AddrPort `json:"remote,omitzero"`
	Start       time.Time      `json:"start"`
	ConnectTime time.Duration  `json:"connect_time_ns"`
	Attempts    []Attempt      `json:"attempts"`
	NAT         NATInfo        `json:"nat"`
}

// AddrPortOf is a TCP address as an unmapped AddrPort (the zero value for
// anything else).
func AddrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// Clock is time as traversal sees it; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
