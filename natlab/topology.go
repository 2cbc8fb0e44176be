package natlab

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/machsend/machsend/internal/names"
	"github.com/machsend/machsend/natlab/impair"

	"gopkg.in/yaml.v3"
)

// Node kinds.
const (
	KindHost   = "host"   // an end host (runs programs)
	KindNAT    = "nat"    // a NAT whose behaviour comes from a nat.Profile (package nat)
	KindRouter = "router" // forwards, no translation
)

// ErrTopology is wrapped by every topology parsing or validation error.
var ErrTopology = errors.New("invalid topology")

// ErrUnknownTopology is returned for a topology name that is neither built in nor a file.
var ErrUnknownTopology = errors.New("unknown topology")

// Topology is a lab's shape: nodes, the networks joining them and routes. It is
// data (YAML), so a new topology needs no new code.
type Topology struct {
	Name        string     `yaml:"name" json:"name"`
	Description string     `yaml:"description" json:"description"`
	Nodes       []NodeSpec `yaml:"nodes" json:"nodes"`
	Networks    []NetSpec  `yaml:"networks" json:"networks"`
	Routes      []Route    `yaml:"routes" json:"routes,omitempty"`
	// Impairments shape links from the start (delay, jitter, loss,
	// reordering, rate), each on one direction or both.
	Impairments []LinkImpairment `yaml:"impairments" json:"impairments,omitempty"`
	// Source is the file a topology was read from ("" when built in).
	Source string `yaml:"-" json:"source,omitempty"`
}

// NodeSpec is one namespace of a topology.
type NodeSpec struct {
	Name string `yaml:"name" json:"name"`
	Kind string `yaml:"kind" json:"kind"`
	// Gateway names the node this node's default route points to.
	Gateway string `yaml:"gateway" json:"gateway,omitempty"`
	// WAN is the network a NAT translates onto (its outside interface).
	WAN string `yaml:"wan" json:"wan,omitempty"`
	// Role is a free label experiments use to find nodes ("peer-a", "rendezvous").
	Role string `yaml:"role" json:"role,omitempty"`
}

// NetSpec is one layer-2 network. Two members are joined by a veth pair; more
// are joined by a bridge in a switch namespace of their own (so no NAT's
// netfilter ever sees bridged traffic).
type NetSpec struct {
	Name   string `yaml:"name" json:"name"`
	Subnet string `yaml:"subnet" json:"subnet"`
	// Subnet6, when set, makes the network dual-stack: an IPv6 prefix of
	// the documentation range 2001:db8::/32 or a unique local one
	// (fd00::/8), /64 to /120; each member gets the same host numbers in
	// it as in Subnet. IPv6 has no NAT here: a NAT node routes it and
	// filters it as its profile's filtering knobs say (rules6.go).
	Subnet6 string `yaml:"subnet6" json:"subnet6,omitempty"`
	// Members maps node name to host numbers inside Subnet (the first is the
	// node's primary address on this network).
	Members map[string][]int `yaml:"members" json:"members"`
}

// Route is a static route on one node.
type Route struct {
	Node string `yaml:"node" json:"node"`
	To   string `yaml:"to" json:"to"`
	Via  string `yaml:"via" json:"via"`
}

//go:embed topologies/*.yaml
var builtinTopologies embed.FS

// BuiltinTopologies returns every embedded topology, sorted by name.
func BuiltinTopologies() ([]*Topology, error) {
	ents, err := builtinTopologies.ReadDir("topologies")
	if err != nil {
		return nil, fmt.Errorf("read embedded topologies: %w", err)
	}
	var out []*Topology
	for _, e := range ents {
		b, err := builtinTopologies.ReadFile(path.Join("topologies", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded topology: %w", err)
		}
		t, err := ParseTopology("builtin:"+e.Name(), b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LoadTopology resolves a built-in topology by name, or reads a YAML file.
func LoadTopology(name string) (*Topology, error) {
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("topology %s: %w", name, err)
		}
		t, err := ParseTopology(name, b)
		if err != nil {
			return nil, err
		}
		t.Source = name
		return t, nil
	}
	all, err := BuiltinTopologies()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range all {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return nil, fmt.Errorf("%w %q (built-in: %s; or give a .yaml file)", ErrUnknownTopology, name, strings.Join(names, ", "))
}

// ParseTopology parses and validates a topology document.
func ParseTopology(file string, data []byte) (*Topology, error) {
	var t Topology
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTopology, file, err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTopology, file, err)
	}
	return &t, nil
}

// labRanges are the only prefixes a lab may use (docs/DESIGN.md).
var labRanges = []string{"198.18.0.0/15", "100.64.0.0/10", "203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "2001:db8::/32", "fd00::/8"}

// labSafe reports whether a prefix lies in the lab's address ranges (docs/DESIGN.md).
func labSafe(p netip.Prefix) bool {
	for _, s := range labRanges {
		r := netip.MustParsePrefix(s)
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Validate checks a topology built or changed in code (ParseTopology
// validates what it reads).
func (t *Topology) Validate() error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrTopology, t.Name, err)
	}
	return nil
}

func (t *Topology) validate() error {
	if !names.Valid(t.Name) {
		return fmt.Errorf("name %q: use lower-case letters, digits and '-'", t.Name)
	}
	nodes := map[string]*NodeSpec{}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if !names.Valid(n.Name) || len(n.Name) > 12 {
			return fmt.Errorf("node %q: name must be lower-case letters, digits, '-' and at most 12 characters", n.Name)
		}
		if nodes[n.Name] != nil {
			return fmt.Errorf("node %q defined twice", n.Name)
		}
		switch n.Kind {
		case KindHost, KindNAT, KindRouter:
		default:
			return fmt.Errorf("node %q: kind %q (want host, nat or router)", n.Name, n.Kind)
		}
		nodes[n.Name] = n
	}
	member := map[string]map[string]bool{} // node -> networks
	seenNet := map[string]bool{}
	for _, nw := range t.Networks {
		if !names.Valid(nw.Name) || len(nw.Name) > 12 {
			return fmt.Errorf("network %q: name must be lower-case letters, digits, '-' and at most 12 characters", nw.Name)
		}
		if seenNet[nw.Name] {
			return fmt.Errorf("network %q defined twice", nw.Name)
		}
		seenNet[nw.Name] = true
		p, err := netip.ParsePrefix(nw.Subnet)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("network %q: subnet %q is not an IPv4 prefix", nw.Name, nw.Subnet)
		}
		if !labSafe(p) {
			return fmt.Errorf("network %q: subnet %s is outside the lab ranges (198.18.0.0/15, 100.64.0.0/10, 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24)", nw.Name, p)
		}
		if err := nw.validate6(); err != nil {
			return err
		}
		if len(nw.Members) < 2 {
			return fmt.Errorf("network %q: needs at least two members", nw.Name)
		}
		used := map[int]bool{}
		for m, hosts := range nw.Members {
			if nodes[m] == nil {
				return fmt.Errorf("network %q: unknown member %q", nw.Name, m)
			}
			if len(hosts) == 0 {
				return fmt.Errorf("network %q: member %q has no host number", nw.Name, m)
			}
			for _, h := range hosts {
				if h < 1 || h >= 1<<(32-p.Bits())-1 || used[h] || nw.Subnet6 != "" && h > 255 {
					return fmt.Errorf("network %q: host number %d of %q is out of range or reused", nw.Name, h, m)
				}
				used[h] = true
			}
			if member[m] == nil {
				member[m] = map[string]bool{}
			}
			member[m][nw.Name] = true
		}
	}
	for _, n := range t.Nodes {
		if len(member[n.Name]) == 0 {
			return fmt.Errorf("node %q is on no network", n.Name)
		}
		if n.Gateway != "" && !t.shareNet(n.Name, n.Gateway) {
			return fmt.Errorf("node %q: gateway %q shares no network with it", n.Name, n.Gateway)
		}
		if n.Kind == KindNAT && !member[n.Name][n.WAN] {
			return fmt.Errorf("nat %q: wan %q is not one of its networks", n.Name, n.WAN)
		}
	}
	for i := range t.Impairments {
		li := &t.Impairments[i]
		if !seenNet[li.Network] {
			return fmt.Errorf("impairment %d: unknown network %q", i, li.Network)
		}
		if li.From != "" && !member[li.From][li.Network] {
			return fmt.Errorf("impairment %d: %q is not on network %q", i, li.From, li.Network)
		}
		if _, err := impair.Parse(li.Spec); err != nil {
			return fmt.Errorf("impairment %d on %s: %v", i, li.Network, err)
		}
	}
	for _, r := range t.Routes {
		if nodes[r.Node] == nil || !t.shareNet(r.Node, r.Via) {
			return fmt.Errorf("route on %q via %q: unknown node or no shared network", r.Node, r.Via)
		}
		p, err := netip.ParsePrefix(r.To)
		if err != nil || !labSafe(p) {
			return fmt.Errorf("route on %q: destination %q is not a lab prefix", r.Node, r.To)
		}
		if nw, _ := t.commonNet(r.Node, r.Via); p.Addr().Is6() && nw.Subnet6 == "" {
			return fmt.Errorf("route on %q to %s: network %q between it and %q has no subnet6", r.Node, r.To, nw.Name, r.Via)
		}
	}
	return nil
}

// shareNet returns the first network (in file order) that a and b are both on.
func (t *Topology) shareNet(a, b string) bool { _, ok := t.commonNet(a, b); return ok }

func (t *Topology) commonNet(a, b string) (*NetSpec, bool) {
	for i := range t.Networks {
		nw := &t.Networks[i]
		if _, ok := nw.Members[a]; ok {
			if _, ok := nw.Members[b]; ok && a != b {
				return nw, true
			}
		}
	}
	return nil, false
}

// addr returns a member's i-th address on a network.
func (nw *NetSpec) addr(node string, i int) netip.Prefix {
	p := netip.MustParsePrefix(nw.Subnet).Masked()
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(nw.Members[node][i])
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), p.Bits())
}

// validate6 checks Subnet6, when there is one.
func (nw *NetSpec) validate6() error {
	if nw.Subnet6 == "" {
		return nil
	}
	p, err := netip.ParsePrefix(nw.Subnet6)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() < 64 || p.Bits() > 120 {
		return fmt.Errorf("network %q: subnet6 %q is not an IPv6 prefix of /64 to /120", nw.Name, nw.Subnet6)
	}
	if !labSafe(p) {
		return fmt.Errorf("network %q: subnet6 %s is outside the lab ranges (2001:db8::/32, fd00::/8)", nw.Name, p)
	}
	return nil
}

// addr6 returns a member's i-th IPv6 address on a network (the same host
// number as its i-th IPv4 address); invalid when the network has none.
func (nw *NetSpec) addr6(node string, i int) netip.Prefix {
	p, err := netip.ParsePrefix(nw.Subnet6)
	if err != nil {
		return netip.Prefix{}
	}
	a := p.Masked().Addr().As16()
	a[15] += byte(nw.Members[node][i]) // validate keeps host numbers below 256
	return netip.PrefixFrom(netip.AddrFrom16(a), p.Bits())
}

// HasIPv6 reports whether some network of t is dual-stack.
func (t *Topology) HasIPv6() bool {
	for _, nw := range t.Networks {
		if nw.Subnet6 != "" {
			return true
		}
	}
	return false
}

// NATs returns the names of the topology's NAT nodes in file order.
func (t *Topology) NATs() []string {
	var out []string
	for _, n := range t.Nodes {
		if n.Kind == KindNAT {
			out = append(out, n.Name)
		}
	}
	return out
}

func (t *Topology) node(name string) *NodeSpec {
	for i := range t.Nodes {
		if t.Nodes[i].Name == name {
			return &t.Nodes[i]
		}
	}
	return nil
}

// Addresses returns a node's addresses on each of its networks (prefixes
// carry the network's length), computed from the topology alone: its IPv4
// addresses first, then, on a dual-stack network, its IPv6 ones.
func (t *Topology) Addresses(node string) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for i := range t.Networks {
		nw := &t.Networks[i]
		for j := range nw.Members[node] {
			out[nw.Name] = append(out[nw.Name], nw.addr(node, j))
		}
		for j := range nw.Members[node] {
			if p := nw.addr6(node, j); p.IsValid() {
				out[nw.Name] = append(out[nw.Name], p)
			}
		}
	}
	return out
}

// Node returns a node's spec by name (nil if there is none).
func (t *Topology) Node(name string) *NodeSpec { return t.node(name) }

// LinkImpairment places an impair.Impairment on one direction of a link: packets
// that node From sends on Network. An empty From means every member's egress
// on the network (both directions of a two-member link).
type LinkImpairment struct {
	Network string `yaml:"network" json:"network"`
	From    string `yaml:"from" json:"from,omitempty"`
	// Spec is the impairment in impair.Parse's syntax.
	Spec string `yaml:"spec" json:"spec"`
}
