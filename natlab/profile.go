package natlab

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/machsend/machsend/internal/names"

	"gopkg.in/yaml.v3"
)

// Knob values, named after RFC 4787 / RFC 5382 and Guha & Francis (IMC 2005).
const (
	EndpointIndependent  = "endpoint-independent"
	AddressDependent     = "address-dependent"
	AddressPortDependent = "address-and-port-dependent"
	ConnectionDependent  = "connection-dependent"
	AllocPreserve        = "preserve"
	AllocSequential      = "sequential"
	AllocRandom          = "random"
	SynDrop              = "drop"
	SynRST               = "rst"
	SynICMPPort          = "icmp-port-unreachable"
	SynICMPAdmin         = "icmp-admin-prohibited"
	SynDelayedICMP       = "delayed-icmp"
	SimAccept            = "accept"
	SimDrop              = "drop"
	SimRST               = "rst"
	SeqStrict            = "strict"
	SeqLiberal           = "liberal"
	ICMPTranslate        = "translate"
	ICMPDrop             = "drop"
	SYNACKTranslate      = "translate"
	SYNACKDrop           = "drop"
	defaultTransitory    = 120
	defaultEstablished   = 7440
)

// UnknownValue is what a profile says for a knob nobody could observe.
const UnknownValue = "unknown"

// UnknownDefaults are the values a knob given as unknown is built with:
// those of the Linux NAT (linux-default), the most common home-router
// system, and RFC 5382's timers.
var UnknownDefaults = map[string]string{
	"mapping": EndpointIndependent, "port-allocation": AllocPreserve, "port-delta": "1", "filtering": AddressPortDependent,
	"unsolicited-syn": SynRST, "simultaneous-open": SimAccept, "sequence-tracking": SeqStrict,
	"icmp-time-exceeded": ICMPTranslate, "outbound-synack": SYNACKDrop, "hairpinning": "off",
	"timers.transitory": strconv.Itoa(defaultTransitory), "timers.established": strconv.Itoa(defaultEstablished),
}

// ErrProfile is wrapped by every profile parsing or validation error.
var ErrProfile = errors.New("invalid profile")

// ErrUnknownProfile is returned when a profile name is neither built in nor a file.
var ErrUnknownProfile = errors.New("unknown profile")

// Profile is one NAT's behaviour: one value per knob of the NAT model in DESIGN.md.
// The zero value is not valid; use ParseProfile or LoadProfile.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// DeviceClass names the real devices this profile stands for.
	DeviceClass string `json:"device_class"`
	// NAT is false for the "none" profile: the node routes without translation.
	NAT            bool   `json:"nat"`
	Mapping        string `json:"mapping"`
	PortAllocation string `json:"port_allocation"`
	// PortDelta is the step between successive sequential allocations.
	PortDelta        int    `json:"port_delta,omitempty"`
	Filtering        string `json:"filtering"`
	UnsolicitedSYN   string `json:"unsolicited_syn"`
	SimultaneousOpen string `json:"simultaneous_open"`
	SequenceTracking string `json:"sequence_tracking"`
	ICMPTimeExceeded string `json:"icmp_time_exceeded"`
	// OutboundSYNACK is what the NAT does with a SYN-ACK from inside on a
	// tuple whose SYN also went out and no SYN came in (NATBlaster's
	// injected SYN-ACK): translate it on the SYN's mapping, or drop it.
	// Optional in profile files: strict sequence tracking implies drop,
	// liberal implies translate.
	OutboundSYNACK string `json:"outbound_synack"`
	// TransitoryTimeout is the idle timeout of a mapping whose connection is not
	// yet established (conntrack SYN_SENT / SYN_RECV), in seconds.
	TransitoryTimeout int `json:"transitory_timeout"`
	// EstablishedTimeout is the idle timeout of an established connection, seconds.
	EstablishedTimeout int  `json:"established_timeout"`
	Hairpinning        bool `json:"hairpinning"`
	// Source is where the profile came from ("builtin" or a file path); Hash is
	// the SHA-256 of its bytes, recorded with every experiment result.
	Source string `json:"source"`
	Hash   string `json:"hash"`
	// Unknown lists the knobs the profile gives as "unknown" (a measured
	// profile: natcheck could not observe them). They are built with the
	// values in UnknownDefaults and natlab check does not check them.
	Unknown []string `json:"unknown,omitempty"`
}

var knobValues = map[string][]string{
	"mapping":            {EndpointIndependent, AddressDependent, AddressPortDependent, ConnectionDependent},
	"port-allocation":    {AllocPreserve, AllocSequential, AllocRandom},
	"filtering":          {EndpointIndependent, AddressDependent, AddressPortDependent, ConnectionDependent},
	"unsolicited-syn":    {SynDrop, SynRST, SynICMPPort, SynICMPAdmin, SynDelayedICMP},
	"simultaneous-open":  {SimAccept, SimDrop, SimRST},
	"sequence-tracking":  {SeqStrict, SeqLiberal},
	"icmp-time-exceeded": {ICMPTranslate, ICMPDrop},
	"outbound-synack":    {SYNACKTranslate, SYNACKDrop},
	"hairpinning":        {"on", "off"},
	"nat":                {"on", "off"},
}

// knobOrder is the order knobs are listed in tables and checks.
var knobOrder = []string{"name", "description", "device-class", "nat", "mapping", "port-allocation",
	"port-delta", "filtering", "unsolicited-syn", "simultaneous-open", "sequence-tracking",
	"icmp-time-exceeded", "outbound-synack", "timers", "hairpinning"}

//go:embed profiles/*.yaml
var builtinProfiles embed.FS

// BuiltinProfiles returns every embedded profile, sorted by name.
func BuiltinProfiles() ([]*Profile, error) {
	ents, err := builtinProfiles.ReadDir("profiles")
	if err != nil {
		return nil, fmt.Errorf("read embedded profiles: %w", err)
	}
	var out []*Profile
	for _, e := range ents {
		b, err := builtinProfiles.ReadFile(path.Join("profiles", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded profile %s: %w", e.Name(), err)
		}
		p, err := ParseProfile("builtin:"+e.Name(), b)
		if err != nil {
			return nil, err
		}
		p.Source = "builtin"
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LoadProfile resolves a built-in profile by name, or reads a YAML file when
// name contains a path separator or ends in .yaml/.yml.
func LoadProfile(name string) (*Profile, error) {
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		p, err := ParseProfile(name, b)
		if err != nil {
			return nil, err
		}
		p.Source = name
		return p, nil
	}
	all, err := BuiltinProfiles()
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("%w %q (built-in: %s; or give a .yaml file)", ErrUnknownProfile, name, strings.Join(names, ", "))
}

// ParseProfile parses and validates a profile document. file names the source
// in errors, which read "file:line: knob: problem".
func ParseProfile(file string, data []byte) (*Profile, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProfile, file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s:%d: a profile is a mapping of knob: value", ErrProfile, file, doc.Line)
	}
	sum := sha256.Sum256(data)
	p := &Profile{NAT: true, PortDelta: 0, TransitoryTimeout: defaultTransitory,
		EstablishedTimeout: defaultEstablished, Hash: hex.EncodeToString(sum[:])}
	errAt := func(n *yaml.Node, knob, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s: %s", ErrProfile, file, n.Line, knob, fmt.Sprintf(format, args...))
	}
	seen := map[string]bool{}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		knob := k.Value
		if seen[knob] {
			return nil, errAt(k, knob, "given twice")
		}
		seen[knob] = true
		if knob == "timers" {
			if err := parseTimers(p, v, errAt); err != nil {
				return nil, err
			}
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return nil, errAt(v, knob, "want a single value")
		}
		val := v.Value
		if val == UnknownValue {
			def, ok := UnknownDefaults[knob]
			if !ok {
				return nil, errAt(v, knob, "cannot be unknown")
			}
			p.Unknown = append(p.Unknown, knob)
			val = def
		}
		if allowed, ok := knobValues[knob]; ok {
			if !contains(allowed, val) {
				return nil, errAt(v, knob, "invalid value %q (want one of: %s)", val, strings.Join(allowed, ", "))
			}
		}
		switch knob {
		case "name":
			if !names.Valid(val) {
				return nil, errAt(v, knob, "%q: use lower-case letters, digits and '-' (at most 40)", val)
			}
			p.Name = val
		case "description":
			p.Description = val
		case "device-class":
			p.DeviceClass = val
		case "nat":
			p.NAT = val == "on"
		case "mapping":
			p.Mapping = val
		case "port-allocation":
			p.PortAllocation = val
		case "port-delta":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000 {
				return nil, errAt(v, knob, "%q: want an integer 1..1000", val)
			}
			p.PortDelta = n
		case "filtering":
			p.Filtering = val
		case "unsolicited-syn":
			p.UnsolicitedSYN = val
		case "simultaneous-open":
			p.SimultaneousOpen = val
		case "sequence-tracking":
			p.SequenceTracking = val
		case "icmp-time-exceeded":
			p.ICMPTimeExceeded = val
		case "outbound-synack":
			p.OutboundSYNACK = val
		case "hairpinning":
			p.Hairpinning = val == "on"
		default:
			return nil, errAt(k, knob, "unknown knob (known: %s)", strings.Join(knobOrder, ", "))
		}
	}
	if p.Name == "" {
		return nil, fmt.Errorf("%w: %s:%d: name: missing", ErrProfile, file, m.Line)
	}
	if !p.NAT {
		return p, nil
	}
	for _, req := range []struct {
		knob string
		val  *string
	}{{"mapping", &p.Mapping}, {"port-allocation", &p.PortAllocation}, {"filtering", &p.Filtering},
		{"unsolicited-syn", &p.UnsolicitedSYN}, {"simultaneous-open", &p.SimultaneousOpen},
		{"sequence-tracking", &p.SequenceTracking}, {"icmp-time-exceeded", &p.ICMPTimeExceeded}} {
		if *req.val == "" {
			return nil, fmt.Errorf("%w: %s:%d: %s: missing (a NAT profile sets every knob)", ErrProfile, file, m.Line, req.knob)
		}
	}
	line := func(knob string) *yaml.Node {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == knob {
				return m.Content[i]
			}
		}
		return m
	}
	if p.PortAllocation == AllocSequential && p.PortDelta == 0 {
		p.PortDelta = 1
	}
	if p.OutboundSYNACK == "" {
		// A NAT that tracks TCP state strictly finds an outbound SYN-ACK
		// after an outbound SYN invalid; one that does not, translates it.
		p.OutboundSYNACK = SYNACKTranslate
		if p.SequenceTracking == SeqStrict {
			p.OutboundSYNACK = SYNACKDrop
		}
	}
	if p.PortAllocation != AllocSequential && seen["port-delta"] && !contains(p.Unknown, "port-delta") {
		return nil, errAt(line("port-delta"), "port-delta", "only meaningful with port-allocation: sequential")
	}
	if p.PortAllocation == AllocPreserve && p.Mapping != EndpointIndependent {
		return nil, errAt(line("port-allocation"), "port-allocation",
			"preserve needs mapping: endpoint-independent (a preserved port is the same for every destination)")
	}
	return p, nil
}

func parseTimers(p *Profile, v *yaml.Node, errAt func(*yaml.Node, string, string, ...any) error) error {
	if v.Kind != yaml.MappingNode {
		return errAt(v, "timers", "want a mapping with transitory and established (seconds)")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if def, ok := UnknownDefaults["timers."+k.Value]; ok && val.Value == UnknownValue {
			p.Unknown = append(p.Unknown, "timers."+k.Value)
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: def, Line: val.Line}
		}
		n, err := strconv.Atoi(val.Value)
		if err != nil || n < 1 || n > 864000 {
			return errAt(val, "timers."+k.Value, "%q: want seconds, 1..864000", val.Value)
		}
		switch k.Value {
		case "transitory":
			p.TransitoryTimeout = n
		case "established":
			p.EstablishedTimeout = n
		default:
			return errAt(k, "timers."+k.Value, "unknown timer (known: transitory, established)")
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// KnobRealisation says how the kernel realises one knob of a profile.
type KnobRealisation struct {
	Knob  string `json:"knob"`
	Value string `json:"value"`
	Exact bool   `json:"exact"`
	How   string `json:"how"`
}

// Realisation lists, knob by knob, how this profile is built from netfilter and
// whether the result is exact or an approximation (and in what way).
func (p *Profile) Realisation() []KnobRealisation {
	if !p.NAT {
		return []KnobRealisation{{Knob: "nat", Value: "off", Exact: true, How: "plain IPv4 forwarding, no netfilter rules"}}
	}
	var out []KnobRealisation
	add := func(knob, value string, exact bool, how string) {
		out = append(out, KnobRealisation{knob, value, exact, how})
	}
	mem := "a rule right after source NAT records each new mapping in an nft map keyed by %s, in the packet path; later connections from that endpoint are SNATed to the recorded port; the mapper helper removes the entry when the mapping's last conntrack entry dies. Exact except that the mapping's lifetime is bounded by a safety timeout of max(timers)"
	switch p.Mapping {
	case EndpointIndependent:
		if p.PortAllocation == AllocPreserve {
			add("mapping", p.Mapping, true, "masquerade keeps the source port; while a conntrack entry exists for the source the same port is reused for every destination")
		} else {
			add("mapping", p.Mapping, true, fmt.Sprintf(mem, "internal address . port"))
		}
	case AddressDependent:
		add("mapping", p.Mapping, true, fmt.Sprintf(mem, "internal address . port . destination address"))
	case AddressPortDependent:
		add("mapping", p.Mapping, true, "a new allocation for every new conntrack tuple; reused only for the same destination address and port")
	case ConnectionDependent:
		add("mapping", p.Mapping, false, "realised as address-and-port-dependent: for TCP a connection is identified by its 5-tuple, so the two differ only when the same 5-tuple is reused while its old entry lives, which conntrack folds into one entry")
	}
	switch p.PortAllocation {
	case AllocPreserve:
		add("port-allocation", p.PortAllocation, false, "masquerade keeps the internal port; on a clash it picks a random free port (Linux), not the next one")
	case AllocSequential:
		add("port-allocation", fmt.Sprintf("%s (delta %d)", p.PortAllocation, p.PortDelta), false,
			"nftables numgen inc through a typed map of ports (base 20000, step delta); the counter is shared by all internal hosts, as on a real NAT, and other hosts' connections advance it")
	case AllocRandom:
		add("port-allocation", p.PortAllocation, true, "masquerade fully-random: a random port for every new mapping")
	}
	switch p.Filtering {
	case EndpointIndependent:
		add("filtering", p.Filtering, true, "each new mapping is recorded in a DNAT map (public port -> internal endpoint) in the packet path; prerouting forwards any inbound TCP to a recorded port; the mapper removes the entry when the mapping's last conntrack entry dies")
	case AddressDependent:
		add("filtering", p.Filtering, true, "as endpoint-independent, keyed by remote address . public port: one entry per destination address the mapping has sent to")
	case AddressPortDependent:
		add("filtering", p.Filtering, true, "conntrack: only packets matching an existing entry's reply tuple are translated inward")
	case ConnectionDependent:
		add("filtering", p.Filtering, false, "realised as address-and-port-dependent (conntrack); identical for TCP except for 5-tuple reuse")
	}
	switch p.UnsolicitedSYN {
	case SynDrop:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain drops new inbound TCP on the WAN")
	case SynRST:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain rejects new inbound TCP on the WAN with tcp reset")
	case SynICMPPort, SynICMPAdmin:
		add("unsolicited-syn", p.UnsolicitedSYN, true, "input chain rejects new inbound TCP with the ICMP type 3 code")
	case SynDelayedICMP:
		add("unsolicited-syn", p.UnsolicitedSYN, false, "unsolicited SYNs are dropped (the peer retransmits, so a punch inside the 6 s hold succeeds exactly as RFC 5382 REQ-4 intends); the port-unreachable that REQ-4 sends after 6 s without an outbound SYN is not generated")
	}
	switch p.SimultaneousOpen {
	case SimAccept:
		add("simultaneous-open", p.SimultaneousOpen, true, "conntrack SYN_SENT2: an inbound SYN on an outbound SYN's tuple is forwarded")
	case SimDrop:
		add("simultaneous-open", p.SimultaneousOpen, true, "forward chain drops inbound SYN (no ACK) in the reply direction")
	case SimRST:
		add("simultaneous-open", p.SimultaneousOpen, true, "forward chain answers an inbound SYN in the reply direction with tcp reset")
	}
	switch p.SequenceTracking {
	case SeqStrict:
		add("sequence-tracking", p.SequenceTracking, true, "nf_conntrack_tcp_be_liberal=0; packets conntrack marks invalid are dropped (not leaked untranslated)")
	case SeqLiberal:
		add("sequence-tracking", p.SequenceTracking, true, "nf_conntrack_tcp_be_liberal=1: out-of-window segments, e.g. a SYN-ACK with a new ISN, are accepted and translated")
	}
	switch p.ICMPTimeExceeded {
	case ICMPTranslate:
		add("icmp-time-exceeded", p.ICMPTimeExceeded, true, "conntrack RELATED: the ICMP is translated back to the internal host")
	case ICMPDrop:
		add("icmp-time-exceeded", p.ICMPTimeExceeded, true, "forward chain drops inbound ICMP time-exceeded")
	}
	switch p.OutboundSYNACK {
	case SYNACKTranslate:
		add("outbound-synack", p.OutboundSYNACK, true, "conntrack calls a SYN-ACK after an outbound SYN invalid; a forward rule rewrites it statelessly to the public endpoint the SYN's mapping got (recorded per 4-tuple in the packet path)")
	case SYNACKDrop:
		add("outbound-synack", p.OutboundSYNACK, true, "conntrack calls a SYN-ACK after an outbound SYN invalid and the forward chain drops invalid packets")
	}
	add("timers", fmt.Sprintf("transitory %ds, established %ds", p.TransitoryTimeout, p.EstablishedTimeout), true,
		"per-namespace nf_conntrack_tcp_timeout_{syn_sent,syn_recv} and _established; mappings live exactly as long as their conntrack entries")
	if p.Hairpinning {
		add("hairpinning", "on", false, "prerouting DNATs LAN packets to the public address through the mapper's map; postrouting rewrites the source to the public address keeping the internal port, which equals the mapped port only under port preservation")
	} else {
		add("hairpinning", "off", true, "LAN packets to the public address reach the NAT itself and get the unsolicited-SYN response")
	}
	return out
}

// needsMapper reports whether realising p needs the userspace mapper helper.
func (p *Profile) needsMapper() bool {
	if !p.NAT {
		return false
	}
	return p.Mapping == AddressDependent || (p.Mapping == EndpointIndependent && p.PortAllocation != AllocPreserve) ||
		p.Filtering == EndpointIndependent || p.Filtering == AddressDependent || p.Hairpinning
}
