package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/method"
	"github.com/machsend/machsend/traversal/model"

	"gopkg.in/yaml.v3"

	"github.com/machsend/machsend/natlab"
)

// ErrSpec is wrapped by every matrix spec error.
var ErrSpec = errors.New("invalid experiment spec")

// Spec is a matrix of trials: groups of topology x NAT profiles x methods,
// each cell repeated.
type Spec struct {
	Name        string        `yaml:"name" json:"name"`
	Description string        `yaml:"description" json:"description"`
	Seed        int64         `yaml:"seed" json:"seed"`
	Repetitions int           `yaml:"repetitions" json:"repetitions"`
	Deadline    time.Duration `yaml:"deadline" json:"deadline"`
	// AttemptTimeout bounds each punching attempt of a trial (default
	// 2 s); the model counts retries within it.
	AttemptTimeout time.Duration `yaml:"attempt_timeout" json:"attempt_timeout"`
	Workers        int           `yaml:"workers" json:"workers"`
	// ImpairedWorkers bounds the labs running impaired cells at once (they
	// run after the others; default 8): the delay queue's timing needs CPU.
	ImpairedWorkers int      `yaml:"impaired_workers" json:"impaired_workers,omitempty"`
	Methods         []string `yaml:"methods" json:"methods"`
	Groups          []Group  `yaml:"groups" json:"groups"`
	// Throughput, when set, measures transfer speed on one cell.
	Throughput *Throughput `yaml:"throughput" json:"throughput,omitempty"`
	// Impairments names the network conditions groups can run under
	// (the impairment axis); "none" is always there and means the lab as
	// built, with no delay, loss or cross traffic.
	Impairments map[string]*ImpairCase `yaml:"impairments" json:"impairments,omitempty"`
	// Path is the network path every cell without an impairment case runs
	// over (the main matrix): a real delay between the peers makes which
	// SYN reaches which NAT first a property of the path, not of the
	// machine's scheduling. Nil: the lab as built, no delay.
	Path *ImpairCase `yaml:"path" json:"path,omitempty"`
	Hash string      `yaml:"-" json:"hash"`
}

// Group is one topology with the profiles its NAT nodes take.
type Group struct {
	Topology string `yaml:"topology" json:"topology"`
	// NATs maps each NAT node to a list of profiles ("all" = every built-in
	// profile). The group's cells are the cartesian product.
	NATs map[string][]string `yaml:"nats" json:"nats"`
	// Pairs lists explicit profile tuples instead (one profile per NAT
	// node, in the topology's NAT order).
	Pairs [][]string `yaml:"pairs" json:"pairs,omitempty"`
	// Unordered drops the mirror image of each pair of the two named NATs
	// (A/B roles are symmetric for every method: the asymmetric ones swap).
	Unordered []string `yaml:"unordered" json:"unordered,omitempty"`
	Methods   []string `yaml:"methods" json:"methods,omitempty"`
	// Cases lists the impairment cases (keys of Spec.Impairments, or
	// "none") every cell of the group runs under; empty means none only.
	Cases []string `yaml:"cases" json:"cases,omitempty"`
	// Repetitions overrides the spec's for this group's impaired cases.
	Repetitions int `yaml:"repetitions" json:"repetitions,omitempty"`
	// Offsets sweeps the offset between the peers' SYNs (model.Path): one
	// case per offset, the spec's path with A's side delayed by it.
	Offsets []time.Duration `yaml:"offsets" json:"offsets,omitempty"`
	// Family "ip6" runs the group's cells over IPv6 only (a dual-stack
	// topology: the server on its IPv6 addresses, the NAT nodes' IPv6
	// firewalls); "" (or "ip4") is IPv4.
	Family string `yaml:"family" json:"family,omitempty"`
}

// FamilyIPv6 is Group.Family and Cell.Family for IPv6 cells.
const FamilyIPv6 = "ip6"

// Throughput asks for a bulk-transfer measurement in a two-NAT lab.
type Throughput struct {
	Bytes int64 `yaml:"bytes" json:"bytes"`
	// Repetitions is how many times each copy runs on each path (1 when
	// unset); ratios are paired within a repetition.
	Repetitions int    `yaml:"repetitions" json:"repetitions"`
	ProfileA    string `yaml:"profile_a" json:"profile_a"`
	ProfileB    string `yaml:"profile_b" json:"profile_b"`
	// Pin runs the sender on the first CPU and the receiver on the second
	// (when there are two), in every copy alike, so that a copy's rate
	// does not depend on where the scheduler put the two peers.
	Pin bool `yaml:"pin" json:"pin,omitempty"`
}

// Cell is one point of the matrix.
type Cell struct {
	Topology string            `json:"topology"`
	Profiles map[string]string `json:"profiles"` // NAT node -> profile
	Method   string            `json:"method"`
	// Case is the impairment case ("" = none).
	Case string `json:"case,omitempty"`
	// Reps is how many repetitions the cell runs (0: the spec's).
	Reps int `json:"-"`
	// Family is FamilyIPv6 for a cell run over IPv6 only (Group.Family).
	Family string `json:"family,omitempty"`
}

// Key names a cell uniquely and stably.
func (c Cell) Key() string {
	var nodes []string
	for n := range c.Profiles {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var b strings.Builder
	b.WriteString(c.Topology)
	for _, n := range nodes {
		fmt.Fprintf(&b, " %s=%s", n, c.Profiles[n])
	}
	b.WriteString(" " + c.Method)
	if c.Family != "" {
		b.WriteString(" " + c.Family)
	}
	if c.Case != "" {
		b.WriteString(" @" + c.Case)
	}
	return b.String()
}

// LoadSpec reads a matrix spec file.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return ParseSpec(path, b)
}

// ParseSpec parses and validates a matrix spec.
func ParseSpec(file string, b []byte) (*Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSpec, file, err)
	}
	sum := sha256.Sum256(b)
	s.Hash = hex.EncodeToString(sum[:])
	if s.Repetitions <= 0 {
		s.Repetitions = 1
	}
	if s.Deadline <= 0 {
		s.Deadline = 30 * time.Second
	}
	if s.AttemptTimeout <= 0 {
		s.AttemptTimeout = 2 * time.Second
	}
	if s.Workers <= 0 {
		s.Workers = 8
	}
	if s.ImpairedWorkers <= 0 {
		s.ImpairedWorkers = 8
	}
	if len(s.Groups) == 0 {
		return nil, fmt.Errorf("%w: %s: no groups", ErrSpec, file)
	}
	if s.Path != nil {
		if err := s.Path.validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: path: %v", ErrSpec, file, err)
		}
		s.Path.Name = "path"
	}
	if err := s.offsetCases(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSpec, file, err)
	}
	for name, ic := range s.Impairments {
		if name == "none" || !validCaseName(name) {
			return nil, fmt.Errorf("%w: %s: impairment case %q: use lower-case letters, digits and '-' (and not \"none\")", ErrSpec, file, name)
		}
		if err := ic.validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: impairment case %s: %v", ErrSpec, file, name, err)
		}
		ic.Name = name
	}
	if _, err := s.Cells(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSpec, file, err)
	}
	return &s, nil
}

// offsetCases adds one impairment case per SYN offset a group sweeps: the
// spec's path with the offset, named "offset-<microseconds>us" ("offset-m..."
// for negative offsets), and puts them in the group's cases.
func (s *Spec) offsetCases() error {
	for gi := range s.Groups {
		g := &s.Groups[gi]
		if len(g.Offsets) > 0 && s.Path == nil {
			return fmt.Errorf("group %d: offsets need the spec's path (the delay they are offsets within)", gi)
		}
		for _, o := range g.Offsets {
			name := fmt.Sprintf("offset-%dus", o.Microseconds())
			if o < 0 {
				name = fmt.Sprintf("offset-m%dus", -o.Microseconds())
			}
			if s.Impairments == nil {
				s.Impairments = map[string]*ImpairCase{}
			}
			if _, ok := s.Impairments[name]; !ok {
				c := *s.Path
				c.Offset, c.Sweep = o, true
				s.Impairments[name] = &c
			}
			if !slices.Contains(g.Cases, name) {
				g.Cases = append(g.Cases, name)
			}
		}
	}
	return nil
}

// Conditions is the network a cell runs over: its impairment case, or the
// spec's path (nil: the lab as built).
func (s *Spec) Conditions(c Cell) *ImpairCase {
	if c.Case != "" {
		return s.Impairments[c.Case]
	}
	return s.Path
}

// SetRepetitions makes every cell, in every group, run n times (a run
// with more repetitions than its file says, such as make experiment-full);
// the spec's hash changes with it, so such a run never resumes one of the
// file as written, nor the other way round.
func (s *Spec) SetRepetitions(n int) {
	if n <= 0 {
		return
	}
	s.Repetitions = n
	for i := range s.Groups {
		s.Groups[i].Repetitions = 0
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s repetitions=%d", s.Hash, n))
	s.Hash = hex.EncodeToString(sum[:])
}

// Predict is the NAT model's verdict for a cell over its conditions.
func (s *Spec) Predict(c Cell) (model.Prediction, error) {
	return PredictUnder(c, s.Conditions(c), s.AttemptTimeout)
}

// AllMethods is what "all" stands for in a spec.
var AllMethods = method.Names()

func expandMethods(ms []string) []string {
	if len(ms) == 1 && ms[0] == "all" {
		return AllMethods
	}
	return ms
}

// Cells expands the matrix, in a stable order.
func (s *Spec) Cells() ([]Cell, error) {
	builtin, err := nat.Builtin()
	if err != nil {
		return nil, err
	}
	var all []string
	for _, p := range builtin {
		all = append(all, p.Name)
	}
	var out []Cell
	seen := map[string]bool{}
	for gi, g := range s.Groups {
		cases := g.Cases
		if len(cases) == 0 {
			cases = []string{"none"}
		}
		if err := s.checkCases(gi, g, cases); err != nil {
			return nil, err
		}
		cells, err := s.groupCells(gi, g, all)
		if err != nil {
			return nil, err
		}
		first := len(out)
		out = expandCases(append(out, cells...), first, cases, g.Repetitions, seen)
	}
	return out, nil
}

// checkCases checks that a group's impairment cases exist and that its
// topology has a host for the cross traffic a case asks for.
func (s *Spec) checkCases(gi int, g Group, cases []string) error {
	for _, cs := range cases {
		if cs == "none" {
			continue
		}
		ic := s.Impairments[cs]
		if ic == nil {
			return fmt.Errorf("group %d: unknown impairment case %q", gi, cs)
		}
		if ic.Cross <= 0 {
			continue
		}
		topo, err := natlab.LoadTopology(g.Topology)
		if err != nil {
			return fmt.Errorf("group %d: %w", gi, err)
		}
		if CrossHost(topo) == "" {
			return fmt.Errorf("group %d: case %s needs cross traffic but %s has no host with role cross", gi, cs, g.Topology)
		}
	}
	return nil
}

// groupCells lists a group's unimpaired cells: its pairs, or the product
// of its per-NAT profile lists, times its methods, each cell once.
func (s *Spec) groupCells(gi int, g Group, all []string) ([]Cell, error) {
	topo, err := natlab.LoadTopology(g.Topology)
	if err != nil {
		return nil, fmt.Errorf("group %d: %w", gi, err)
	}
	nats := topo.NATs()
	if err := checkFamily(gi, g, topo); err != nil {
		return nil, err
	}
	methods := expandMethods(g.Methods)
	if len(methods) == 0 {
		methods = expandMethods(s.Methods)
	}
	for _, m := range methods {
		if slices.Index(AllMethods, m) < 0 {
			return nil, fmt.Errorf("group %d: unknown method %q", gi, m)
		}
	}
	var tuples [][]string
	if len(g.Pairs) > 0 {
		tuples, err = pairTuples(gi, g, nats)
	} else {
		tuples, err = productTuples(gi, g, nats, all)
	}
	if err != nil {
		return nil, err
	}
	var out []Cell
	seen := map[string]bool{}
	for _, tuple := range tuples {
		for _, m := range methods {
			c := Cell{Topology: g.Topology, Profiles: map[string]string{}, Method: m, Family: g.Family}
			for i, p := range tuple {
				c.Profiles[nats[i]] = p
			}
			if !seen[c.Key()] {
				seen[c.Key()] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// checkFamily checks a group's address family: IPv4, or IPv6 in a
// topology whose networks all have IPv6 addresses.
func checkFamily(gi int, g Group, topo *natlab.Topology) error {
	switch g.Family {
	case "", "ip4":
		return nil
	case FamilyIPv6:
	default:
		return fmt.Errorf("group %d: family %q (want ip4 or ip6)", gi, g.Family)
	}
	for _, nw := range topo.Networks {
		if nw.Subnet6 == "" {
			return fmt.Errorf("group %d: family ip6 needs a dual-stack topology, and network %q of %s has no subnet6", gi, nw.Name, g.Topology)
		}
	}
	return nil
}

// pairTuples checks a group's explicit profile tuples, one profile per NAT.
func pairTuples(gi int, g Group, nats []string) ([][]string, error) {
	for _, tuple := range g.Pairs {
		if len(tuple) != len(nats) {
			return nil, fmt.Errorf("group %d (%s): pair %v needs one profile per NAT %v", gi, g.Topology, tuple, nats)
		}
		for _, p := range tuple {
			if _, err := nat.Load(p); err != nil {
				return nil, fmt.Errorf("group %d: %w", gi, err)
			}
		}
	}
	return g.Pairs, nil
}

// productTuples is every combination of the group's per-NAT profile lists
// ("all" is every built-in profile), with an unordered pair of NATs
// counted once.
func productTuples(gi int, g Group, nats, all []string) ([][]string, error) {
	lists := make([][]string, len(nats))
	for i, n := range nats {
		ps := g.NATs[n]
		if len(ps) == 0 {
			return nil, fmt.Errorf("group %d (%s): NAT node %s has no profiles", gi, g.Topology, n)
		}
		if len(ps) == 1 && ps[0] == "all" {
			ps = all
		}
		for _, p := range ps {
			if _, err := nat.Load(p); err != nil {
				return nil, fmt.Errorf("group %d: %w", gi, err)
			}
		}
		lists[i] = ps
	}
	for n := range g.NATs {
		if slices.Index(nats, n) < 0 {
			return nil, fmt.Errorf("group %d: %s is not a NAT node of %s (%v)", gi, n, g.Topology, nats)
		}
	}
	var out [][]string
	var rec func(i int, cur []string)
	rec = func(i int, cur []string) {
		if i == len(nats) {
			if len(g.Unordered) == 2 {
				ia, ib := slices.Index(nats, g.Unordered[0]), slices.Index(nats, g.Unordered[1])
				if slices.Index(lists[ia], cur[ia]) > slices.Index(lists[ib], cur[ib]) {
					return
				}
			}
			out = append(out, append([]string(nil), cur...))
			return
		}
		for _, p := range lists[i] {
			rec(i+1, append(cur, p))
		}
	}
	rec(0, nil)
	return out, nil
}

// expandCases turns the unimpaired cells out[first:] of a group into one
// cell per case ("none" keeps the cell as it is, with the key it always had).
func expandCases(out []Cell, first int, cases []string, reps int, seen map[string]bool) []Cell {
	base := append([]Cell(nil), out[first:]...)
	out = out[:first]
	for _, c := range base {
		for _, cs := range cases {
			cc := c
			cc.Profiles = c.Profiles
			if cs != "none" {
				cc.Case = cs
				cc.Reps = reps
			}
			if !seen[cc.Key()] {
				seen[cc.Key()] = true
				out = append(out, cc)
			}
		}
	}
	return out
}

func validCaseName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
