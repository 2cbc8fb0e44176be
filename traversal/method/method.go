// Package method is the one table of traversal methods: each method's
// name, the kind of path it gives, its place in auto's schedule, its
// rounds and whether it needs raw sockets. The traversal engine (which
// runs them), the NAT model (which predicts them), the command line, the
// experiment specs and the report all derive their lists from Table.
//
// It is a leaf package so that both traversal and traversal/model, which
// traversal imports, can use it. Adding a method is a row here, its run
// function in traversal (registered in traversal's runners map) and its
// rule in the model; tests in both packages fail when either is missing.
// See docs/howto-add-method.md.
package method

import (
	"fmt"
	"strings"
)

// Method names a way of establishing the connection.
type Method string

// The methods. Auto races them all.
const (
	Auto       Method = "auto"
	LAN        Method = "lan"
	Direct     Method = "direct"
	Machsend   Method = "machsend"
	STUNT2     Method = "stunt2"
	STUNT2Hold Method = "stunt2-hold"
	P2PNAT     Method = "p2pnat"
	Sequential Method = "sequential"
	STUNT1     Method = "stunt1"
	NATBlaster Method = "natblaster"
	Relay      Method = "relay"
)

// Path is the kind of path a method gives: what a user is shown.
type Path string

// Paths, in order of preference.
const (
	PathLAN     Path = "lan"
	PathDirect  Path = "direct"
	PathPunched Path = "punched"
	PathRelay   Path = "relay"
)

// Phase is when auto runs a method.
type Phase int

// Auto's phases: local candidates first, then every punching method one
// after another (port prediction needs them not to overlap), with the relay
// in parallel after a delay (or after them).
const (
	PhaseLocal Phase = iota
	PhasePunch
	PhaseRelay
)

// Spec is one row of the table.
type Spec struct {
	Method Method
	Path   Path
	// Phase is when auto runs it; within PhasePunch, table order.
	Phase Phase
	// Rounds is how many attempts a run makes: the asymmetric methods
	// swap the initiator's role once on failure. Auto runs AutoRounds.
	Rounds, AutoRounds int
	// Raw methods craft packets (CAP_NET_RAW, inside a lab only).
	Raw bool
	// Help is one line for the command line and the docs.
	Help string
}

// Table lists every method once, in auto's order of preference.
var Table = []Spec{
	{LAN, PathLAN, PhaseLocal, 1, 1, false, "connect to the peer's private endpoints (same LAN)"},
	{Direct, PathDirect, PhaseLocal, 1, 1, false, "connect to the peer's public endpoint (a public or full-cone peer)"},
	{P2PNAT, PathPunched, PhasePunch, 1, 1, false, "both sides listen and connect repeatedly from one port (Ford, Srisuresh & Kegel 2005)"},
	{Machsend, PathPunched, PhasePunch, 2, 2, false, "Machsend 2009: SYN, listen on its port, the peer connects to it; roles swap once"},
	{STUNT2Hold, PathPunched, PhasePunch, 2, 2, false, "STUNT #2 keeping the low-TTL connect pending (simultaneous open on the same ISN)"},
	{STUNT2, PathPunched, PhasePunch, 2, 2, false, "STUNT #2: a low-TTL SYN opens the NAT without reaching the peer's, then listen"},
	{Sequential, PathPunched, PhasePunch, 2, 2, false, "Machsend aimed at the predicted next port of a sequential allocator"},
	{STUNT1, PathPunched, PhasePunch, 1, 1, true, "STUNT #1: the rendezvous server forges both SYN-ACKs (raw sockets, lab only)"},
	{NATBlaster, PathPunched, PhasePunch, 1, 1, true, "NATBlaster: each peer injects the SYN-ACK; birthday search vs a random side (raw sockets, lab only)"},
	{Relay, PathRelay, PhaseRelay, 1, 1, false, "through the rendezvous server's relay (always works, slowest)"},
}

// Lookup returns a method's row.
func Lookup(m Method) (Spec, bool) {
	for _, s := range Table {
		if s.Method == m {
			return s, true
		}
	}
	return Spec{}, false
}

// All lists every single method in auto's order of preference.
func All() []Method {
	out := make([]Method, len(Table))
	for i, s := range Table {
		out[i] = s.Method
	}
	return out
}

// Names lists every method name and then "auto", as specs and reports use them.
func Names() []string {
	out := make([]string, 0, len(Table)+1)
	for _, s := range Table {
		out = append(out, string(s.Method))
	}
	return append(out, string(Auto))
}

// Parse validates a method name.
func Parse(s string) (Method, error) {
	if Method(s) == Auto {
		return Auto, nil
	}
	if _, ok := Lookup(Method(s)); ok {
		return Method(s), nil
	}
	return "", fmt.Errorf("unknown method %q (want one of %s)", s, strings.Join(Names(), ", "))
}

// Help is the --method flag's help text, from the table.
func Help() string {
	var b strings.Builder
	b.WriteString("traversal method: auto (races them all)")
	for _, s := range Table {
		fmt.Fprintf(&b, ", %s", s.Method)
		if s.Raw {
			b.WriteString(" (raw sockets, lab only)")
		}
	}
	return b.String()
}

// Path is the kind of path the method gives (auto: whichever won).
func (m Method) Path() Path {
	s, _ := Lookup(m)
	return s.Path
}

// Distance orders paths by the route their bytes take: the LAN (0), the
// Internet (1: a direct and a punched connection cross the same NATs on
// the same route, so neither is faster), the relay (2). A race waits for
// a running attempt only when its path is nearer than the one it holds.
func (m Method) Distance() int {
	switch m.Path() {
	case PathLAN:
		return 0
	case PathRelay:
		return 2
	}
	return 1
}

// Priority orders paths: LAN over direct over punched over relay. Of
// connections in hand at once, the race keeps the first in this order.
func (m Method) Priority() int {
	switch m.Path() {
	case PathLAN:
		return 0
	case PathDirect:
		return 1
	case PathRelay:
		return 3
	}
	return 2
}
