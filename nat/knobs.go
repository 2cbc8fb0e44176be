package nat

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Dependence is how a NAT's mapping or filtering depends on the remote
// endpoint (RFC 4787 section 4.1 and 5).
type Dependence string

// Dependence values, least restrictive first.
const (
	EndpointIndependent  Dependence = "endpoint-independent"
	AddressDependent     Dependence = "address-dependent"
	AddressPortDependent Dependence = "address-and-port-dependent"
	ConnectionDependent  Dependence = "connection-dependent"
)

// Allocation is how a NAT picks the public port of a new mapping.
type Allocation string

// Allocation values, most predictable first.
const (
	Preserve   Allocation = "preserve"
	Sequential Allocation = "sequential"
	Random     Allocation = "random"
)

// SYNResponse is what a NAT does with an unsolicited inbound SYN.
type SYNResponse string

// SYNResponse values (Guha & Francis; RFC 5382 REQ-4 is DelayedICMP).
const (
	SYNDrop        SYNResponse = "drop"
	SYNRST         SYNResponse = "rst"
	SYNICMPPort    SYNResponse = "icmp-port-unreachable"
	SYNICMPAdmin   SYNResponse = "icmp-admin-prohibited"
	SYNDelayedICMP SYNResponse = "delayed-icmp"
)

// SimOpen is what a NAT does with an inbound SYN on a tuple whose own SYN
// went out (a TCP simultaneous open).
type SimOpen string

// SimOpen values, most permissive first.
const (
	SimAccept SimOpen = "accept"
	SimRST    SimOpen = "rst"
	SimDrop   SimOpen = "drop"
)

// SeqTracking is whether a NAT checks TCP sequence numbers (a SYN-ACK with
// another ISN than the one it saw).
type SeqTracking string

// SeqTracking values, most permissive first.
const (
	SeqLiberal SeqTracking = "liberal"
	SeqStrict  SeqTracking = "strict"
)

// Passing is whether a NAT translates (passes on) or drops a kind of
// packet: the ICMP time-exceeded a low-TTL SYN draws, or the SYN-ACK a host
// sends after its own SYN (NATBlaster's injected SYN-ACK).
type Passing string

// Passing values, most permissive first.
const (
	Translate Passing = "translate"
	Drop      Passing = "drop"
)

// Unknown is what a profile says for a knob nobody could observe; the knob
// is then built with the table's Default.
const Unknown = "unknown"

// Composition says how a knob of two NATs in series (a host behind inner,
// behind outer) combines into the one NAT the host's peers see.
type Composition string

// Compositions.
const (
	// Worst takes the later of the two values in the knob's Values order
	// (values are listed from most to least permissive).
	Worst Composition = "worst"
	// Outer takes the outer NAT's value: it meets inbound packets first.
	Outer Composition = "outer"
	// Shortest takes the smaller number: the first timer to expire wins.
	Shortest Composition = "shortest"
	// WithAllocation follows the NAT whose allocation the composition took.
	WithAllocation Composition = "with-allocation"
)

// Knob is one row of the NAT model: a name as written in profile files,
// its values, and what every part of machsend does with it.
type Knob struct {
	// Name as in a profile file ("timers.transitory" is the transitory
	// member of the timers mapping).
	Name string
	// Values are the allowed values, most permissive first; nil for an
	// integer knob, whose range is Min..Max.
	Values   []string
	Min, Max int
	// Default is the value built for "unknown": Linux's, the most common
	// home-router system, and RFC 5382's timers.
	Default string
	// Required knobs must be given by every NAT profile; the others have
	// defaults (or, for outbound-synack, follow sequence-tracking).
	Required bool
	// Compose says how two NATs in series combine this knob.
	Compose Composition
	// Observable is true when natcheck can measure the knob from outside
	// (where it needs privileges, it says so when it cannot);
	// Unobservable says why not otherwise.
	Observable   bool
	Unobservable string
	// Derived, when set, says how a profile that omits the knob derives
	// it from the others (instead of taking Default).
	Derived string
	// Modelled is true when the traversal model's predictions depend on
	// the knob; NotModelled says why not otherwise.
	Modelled    bool
	NotModelled string

	get func(*Profile) string
	set func(*Profile, string)
}

func strs[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Knobs is the NAT model, one row per knob, in the order profiles list them.
var Knobs = []Knob{
	{Name: "nat", Values: []string{"on", "off"}, Default: "on", Compose: Outer, Observable: true, Modelled: true,
		get: func(p *Profile) string { return onOff(p.NAT) }, set: func(p *Profile, v string) { p.NAT = v == "on" }},
	{Name: "mapping", Values: strs(EndpointIndependent, AddressDependent, AddressPortDependent, ConnectionDependent),
		Default: string(EndpointIndependent), Required: true, Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.Mapping) }, set: func(p *Profile, v string) { p.Mapping = Dependence(v) }},
	{Name: "port-allocation", Values: strs(Preserve, Sequential, Random), Default: string(Preserve), Required: true,
		Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.PortAllocation) }, set: func(p *Profile, v string) { p.PortAllocation = Allocation(v) }},
	{Name: "port-delta", Min: 1, Max: 1000, Default: "1", Compose: WithAllocation, Observable: true,
		NotModelled: "the traversal methods measure the delta themselves; the model needs only that allocation is sequential",
		get:         func(p *Profile) string { return strconv.Itoa(p.PortDelta) }, set: func(p *Profile, v string) { p.PortDelta, _ = strconv.Atoi(v) }},
	{Name: "filtering", Values: strs(EndpointIndependent, AddressDependent, AddressPortDependent, ConnectionDependent),
		Default: string(AddressPortDependent), Required: true, Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.Filtering) }, set: func(p *Profile, v string) { p.Filtering = Dependence(v) }},
	{Name: "unsolicited-syn", Values: strs(SYNDrop, SYNRST, SYNICMPPort, SYNICMPAdmin, SYNDelayedICMP),
		Default: string(SYNRST), Required: true, Compose: Outer, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.UnsolicitedSYN) }, set: func(p *Profile, v string) { p.UnsolicitedSYN = SYNResponse(v) }},
	{Name: "simultaneous-open", Values: strs(SimAccept, SimRST, SimDrop), Default: string(SimAccept), Required: true,
		Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.SimultaneousOpen) }, set: func(p *Profile, v string) { p.SimultaneousOpen = SimOpen(v) }},
	{Name: "sequence-tracking", Values: strs(SeqLiberal, SeqStrict), Default: string(SeqStrict), Required: true,
		Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.SequenceTracking) }, set: func(p *Profile, v string) { p.SequenceTracking = SeqTracking(v) }},
	{Name: "icmp-time-exceeded", Values: strs(Translate, Drop), Default: string(Translate), Required: true,
		Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return string(p.ICMPTimeExceeded) }, set: func(p *Profile, v string) { p.ICMPTimeExceeded = Passing(v) }},
	// natcheck observes it only where it may craft packets (inside a lab,
	// with CAP_NET_RAW, against a sniffing server); elsewhere it reports
	// it unknown and the profile it writes derives it from sequence-tracking.
	{Name: "outbound-synack", Values: strs(Translate, Drop), Default: string(Drop), Compose: Worst, Observable: true,
		Modelled: true, Derived: "translate where sequence-tracking is liberal, drop where it is strict",
		get: func(p *Profile) string { return string(p.OutboundSYNACK) }, set: func(p *Profile, v string) { p.OutboundSYNACK = Passing(v) }},
	{Name: "timers.transitory", Min: 1, Max: 864000, Default: "120", Compose: Shortest, Observable: true,
		NotModelled: "every method completes its handshake within seconds, far inside any transitory timer",
		get:         func(p *Profile) string { return strconv.Itoa(p.TransitoryTimeout) }, set: func(p *Profile, v string) { p.TransitoryTimeout, _ = strconv.Atoi(v) }},
	{Name: "timers.established", Min: 1, Max: 864000, Default: "7440", Compose: Shortest,
		Unobservable: "RFC 5382's minimum is 2 h 4 min: natcheck would have to hold a mapping idle that long",
		NotModelled:  "a transfer keeps its connection busy; the established timer never decides whether a method connects",
		get:          func(p *Profile) string { return strconv.Itoa(p.EstablishedTimeout) }, set: func(p *Profile, v string) { p.EstablishedTimeout, _ = strconv.Atoi(v) }},
	{Name: "hairpinning", Values: []string{"on", "off"}, Default: "off", Compose: Worst, Observable: true, Modelled: true,
		get: func(p *Profile) string { return onOff(p.Hairpinning) }, set: func(p *Profile, v string) { p.Hairpinning = v == "on" }},
}

// Lookup returns the knob named name.
func Lookup(name string) (*Knob, bool) {
	for i := range Knobs {
		if Knobs[i].Name == name {
			return &Knobs[i], true
		}
	}
	return nil, false
}

// KnobNames lists every knob's name in table order.
func KnobNames() []string {
	out := make([]string, len(Knobs))
	for i, k := range Knobs {
		out[i] = k.Name
	}
	return out
}

// Check says whether v is a valid value of the knob (not "unknown").
func (k *Knob) Check(v string) error {
	if k.Values != nil {
		if !slices.Contains(k.Values, v) {
			return fmt.Errorf("invalid value %q (want one of: %s)", v, strings.Join(k.Values, ", "))
		}
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < k.Min || n > k.Max {
		return fmt.Errorf("%q: want an integer %d..%d", v, k.Min, k.Max)
	}
	return nil
}

// Get returns the profile's value of the knob, as written in a profile.
func (k *Knob) Get(p *Profile) string { return k.get(p) }

// Set stores a value already validated by Check.
func (k *Knob) Set(p *Profile, v string) { k.set(p, v) }

// number is an integer knob's value (its values are checked on parsing).
func (k *Knob) number(v string) int {
	n, _ := strconv.Atoi(v)
	return n
}

// rank is a value's position in the knob's Values, for Worst.
func (k *Knob) rank(v string) int {
	if i := slices.Index(k.Values, v); i >= 0 {
		return i
	}
	return len(k.Values)
}
