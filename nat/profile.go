package nat

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/machsend/machsend/internal/names"

	"gopkg.in/yaml.v3"
)

// ErrProfile is wrapped by every profile parsing or validation error.
var ErrProfile = errors.New("invalid profile")

// ErrUnknownProfile is returned when a profile name is neither built in nor a file.
var ErrUnknownProfile = errors.New("unknown profile")

// Profile is one NAT's behaviour: one value per knob of Knobs. The zero
// value is not valid; use Parse, Load or Public.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// DeviceClass names the real devices this profile stands for.
	DeviceClass string `json:"device_class"`
	// NAT is false for a host with a public address (the "none" profile):
	// it routes without translation or filtering.
	NAT            bool       `json:"nat"`
	Mapping        Dependence `json:"mapping"`
	PortAllocation Allocation `json:"port_allocation"`
	// PortDelta is the step between successive sequential allocations.
	PortDelta        int         `json:"port_delta,omitempty"`
	Filtering        Dependence  `json:"filtering"`
	UnsolicitedSYN   SYNResponse `json:"unsolicited_syn"`
	SimultaneousOpen SimOpen     `json:"simultaneous_open"`
	SequenceTracking SeqTracking `json:"sequence_tracking"`
	ICMPTimeExceeded Passing     `json:"icmp_time_exceeded"`
	// OutboundSYNACK is what the NAT does with a SYN-ACK from inside on a
	// tuple whose SYN also went out and no SYN came in (NATBlaster's
	// injected SYN-ACK). Optional in profile files: strict sequence
	// tracking implies drop, liberal implies translate.
	OutboundSYNACK Passing `json:"outbound_synack"`
	// TransitoryTimeout is the idle timeout of a mapping whose connection
	// is not yet established (conntrack SYN_SENT / SYN_RECV), in seconds.
	TransitoryTimeout int `json:"transitory_timeout"`
	// EstablishedTimeout is the idle timeout of an established connection, seconds.
	EstablishedTimeout int  `json:"established_timeout"`
	Hairpinning        bool `json:"hairpinning"`
	// Source is where the profile came from ("builtin" or a file path);
	// Hash is the SHA-256 of its bytes, recorded with every experiment result.
	Source string `json:"source"`
	Hash   string `json:"hash"`
	// Unknown lists the knobs the profile gives as "unknown" (a measured
	// profile: natcheck could not observe them). They hold their knob's
	// Default and natlab check does not check them.
	Unknown []string `json:"unknown,omitempty"`
}

// Public is a host with a public address: no NAT between it and the Internet.
func Public(name string) *Profile {
	p := defaults()
	p.Name, p.NAT = name, false
	return p
}

// defaults is a NAT with every knob at its Default.
func defaults() *Profile {
	p := &Profile{}
	for i := range Knobs {
		Knobs[i].set(p, Knobs[i].Default)
	}
	return p
}

// Get returns the profile's value of a knob by name ("" for no such knob).
func (p *Profile) Get(knob string) string {
	if k, ok := Lookup(knob); ok {
		return k.get(p)
	}
	return ""
}

//go:embed profiles/*.yaml
var builtinFS embed.FS

// builtin holds the embedded profiles, parsed once.
var builtin struct {
	once     sync.Once
	profiles []*Profile
	err      error
}

// Builtin returns every embedded profile, sorted by name. The files are
// parsed once per process; each call returns copies the caller may change.
func Builtin() ([]*Profile, error) {
	builtin.once.Do(func() { builtin.profiles, builtin.err = parseBuiltin() })
	if builtin.err != nil {
		return nil, builtin.err
	}
	out := make([]*Profile, len(builtin.profiles))
	for i, p := range builtin.profiles {
		c := *p
		c.Unknown = slices.Clone(p.Unknown)
		out[i] = &c
	}
	return out, nil
}

func parseBuiltin() ([]*Profile, error) {
	ents, err := builtinFS.ReadDir("profiles")
	if err != nil {
		return nil, fmt.Errorf("read embedded profiles: %w", err)
	}
	var out []*Profile
	for _, e := range ents {
		b, err := builtinFS.ReadFile(path.Join("profiles", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded profile %s: %w", e.Name(), err)
		}
		p, err := Parse("builtin:"+e.Name(), b)
		if err != nil {
			return nil, err
		}
		p.Source = "builtin"
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Load resolves a built-in profile by name, or reads a YAML file when name
// contains a path separator or ends in .yaml/.yml.
func Load(name string) (*Profile, error) {
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		p, err := Parse(name, b)
		if err != nil {
			return nil, err
		}
		p.Source = name
		return p, nil
	}
	all, err := Builtin()
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

// MustBuiltin returns a built-in profile by name and panics if it is not
// one; for tables of built-in names fixed at compile time.
func MustBuiltin(name string) *Profile {
	p, err := Load(name)
	if err != nil || p.Source != "builtin" {
		panic(fmt.Sprintf("nat: %q is not a built-in profile: %v", name, err))
	}
	return p
}

// parser holds one document being parsed, for errors that name the line.
type parser struct {
	file string
	top  *yaml.Node
	p    *Profile
	seen map[string]*yaml.Node // knob -> its key node
}

func (ps *parser) errAt(n *yaml.Node, knob, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s: %s", ErrProfile, ps.file, n.Line, knob, fmt.Sprintf(format, args...))
}

// Parse parses and validates a profile document. file names the source in
// errors, which read "file:line: knob: problem".
func Parse(file string, data []byte) (*Profile, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProfile, file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s:%d: a profile is a mapping of knob: value", ErrProfile, file, doc.Line)
	}
	sum := sha256.Sum256(data)
	p := &Profile{NAT: true, Hash: hex.EncodeToString(sum[:])}
	ps := &parser{file: file, top: doc.Content[0], p: p, seen: map[string]*yaml.Node{}}
	m := ps.top
	for i := 0; i+1 < len(m.Content); i += 2 {
		if err := ps.entry(m.Content[i], m.Content[i+1]); err != nil {
			return nil, err
		}
	}
	if err := ps.complete(); err != nil {
		return nil, err
	}
	return p, nil
}

// entry parses one top-level key: value.
func (ps *parser) entry(k, v *yaml.Node) error {
	key := k.Value
	if ps.seen[key] != nil {
		return ps.errAt(k, key, "given twice")
	}
	ps.seen[key] = k
	if key == "timers" {
		return ps.timers(v)
	}
	if v.Kind != yaml.ScalarNode {
		return ps.errAt(v, key, "want a single value")
	}
	switch key {
	case "name":
		if !names.Valid(v.Value) {
			return ps.errAt(v, key, "%q: use lower-case letters, digits and '-' (at most 40)", v.Value)
		}
		ps.p.Name = v.Value
		return nil
	case "description":
		ps.p.Description = v.Value
		return nil
	case "device-class":
		ps.p.DeviceClass = v.Value
		return nil
	}
	knob, ok := Lookup(key)
	if !ok || strings.HasPrefix(key, "timers.") {
		return ps.errAt(k, key, "unknown knob (known: name, description, device-class, %s)", strings.Join(fileKeys(), ", "))
	}
	return ps.value(knob, v)
}

// fileKeys are the knob names as they appear at the top of a file.
func fileKeys() []string {
	var out []string
	for _, n := range KnobNames() {
		top, _, _ := strings.Cut(n, ".")
		if !slices.Contains(out, top) {
			out = append(out, top)
		}
	}
	return out
}

// value validates and stores one knob's value ("unknown" takes the default).
func (ps *parser) value(knob *Knob, v *yaml.Node) error {
	val := v.Value
	if val == Unknown {
		if knob.Name == "nat" {
			return ps.errAt(v, knob.Name, "cannot be unknown")
		}
		ps.p.Unknown = append(ps.p.Unknown, knob.Name)
		val = knob.Default
	}
	if err := knob.Check(val); err != nil {
		return ps.errAt(v, knob.Name, "%v", err)
	}
	knob.set(ps.p, val)
	ps.seen[knob.Name] = v
	return nil
}

func (ps *parser) timers(v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return ps.errAt(v, "timers", "want a mapping with transitory and established (seconds)")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		knob, ok := Lookup("timers." + k.Value)
		if !ok {
			return ps.errAt(k, "timers."+k.Value, "unknown timer (known: transitory, established)")
		}
		if val.Kind != yaml.ScalarNode {
			return ps.errAt(val, knob.Name, "want a single value")
		}
		if err := ps.value(knob, val); err != nil {
			return err
		}
	}
	return nil
}

// complete checks what a single knob cannot and fills the defaults.
func (ps *parser) complete() error {
	p := ps.p
	if p.Name == "" {
		return fmt.Errorf("%w: %s:%d: name: missing", ErrProfile, ps.file, ps.top.Line)
	}
	for i := range Knobs {
		k := &Knobs[i]
		if ps.seen[k.Name] != nil {
			continue
		}
		if k.Required && p.NAT {
			return fmt.Errorf("%w: %s:%d: %s: missing (a NAT profile sets every knob)", ErrProfile, ps.file, ps.top.Line, k.Name)
		}
		if k.Derived == "" && k.Name != "nat" {
			k.set(p, k.Default)
		}
	}
	if !p.NAT {
		return nil
	}
	if p.OutboundSYNACK == "" {
		// Derived (see its row): a NAT that tracks TCP state strictly finds
		// an outbound SYN-ACK after an outbound SYN invalid; one that does
		// not, translates it.
		p.OutboundSYNACK = Translate
		if p.SequenceTracking == SeqStrict {
			p.OutboundSYNACK = Drop
		}
	}
	if p.PortAllocation != Sequential {
		if n := ps.seen["port-delta"]; n != nil && !slices.Contains(p.Unknown, "port-delta") {
			return ps.errAt(ps.keyLine("port-delta"), "port-delta", "only meaningful with port-allocation: sequential")
		}
		p.PortDelta = 0
	}
	if p.PortAllocation == Preserve && p.Mapping != EndpointIndependent {
		return ps.errAt(ps.keyLine("port-allocation"), "port-allocation",
			"preserve needs mapping: endpoint-independent (a preserved port is the same for every destination)")
	}
	return nil
}

// keyLine is the key node of a top-level knob, for errors about it.
func (ps *parser) keyLine(knob string) *yaml.Node {
	m := ps.top
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == knob {
			return m.Content[i]
		}
	}
	return m
}

// Compose is the NAT a host behind inner, behind outer, sees as one, knob
// by knob as the table's Compose says: a mapping is predictable and a SYN
// admitted only if both NATs allow it.
func Compose(inner, outer *Profile) *Profile {
	switch {
	case !inner.NAT:
		return outer
	case !outer.NAT:
		return inner
	}
	n := &Profile{Name: inner.Name + "+" + outer.Name, NAT: true}
	for i := range Knobs {
		k := &Knobs[i]
		a, b := k.get(inner), k.get(outer)
		switch k.Compose {
		case Worst:
			if k.rank(a) > k.rank(b) {
				b = a
			}
		case Shortest:
			if x, y := k.number(a), k.number(b); x < y {
				b = a
			}
		case WithAllocation:
			if inner.PortAllocation == n.PortAllocation && outer.PortAllocation != n.PortAllocation {
				b = a
			}
		}
		k.set(n, b)
	}
	return n
}
