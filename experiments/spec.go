package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/machsend/machsend/natlab"
	"gopkg.in/yaml.v3"
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
	Workers     int           `yaml:"workers" json:"workers"`
	Methods     []string      `yaml:"methods" json:"methods"`
	Groups      []Group       `yaml:"groups" json:"groups"`
	// Throughput, when set, measures transfer speed on one cell.
	Throughput *Throughput `yaml:"throughput" json:"throughput,omitempty"`
	Hash       string      `yaml:"-" json:"hash"`
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
}

// Throughput asks for a bulk-transfer measurement in a two-NAT lab.
type Throughput struct {
	Bytes    int64  `yaml:"bytes" json:"bytes"`
	ProfileA string `yaml:"profile_a" json:"profile_a"`
	ProfileB string `yaml:"profile_b" json:"profile_b"`
}

// Cell is one point of the matrix.
type Cell struct {
	Topology string            `json:"topology"`
	Profiles map[string]string `json:"profiles"` // NAT node -> profile
	Method   string            `json:"method"`
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
	if s.Workers <= 0 {
		s.Workers = 8
	}
	if len(s.Groups) == 0 {
		return nil, fmt.Errorf("%w: %s: no groups", ErrSpec, file)
	}
	if _, err := s.Cells(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSpec, file, err)
	}
	return &s, nil
}

// AllMethods is what "all" stands for in a spec.
var AllMethods = []string{"lan", "direct", "machsend", "stunt2", "stunt2-hold", "p2pnat", "sequential", "relay", "auto"}

func expandMethods(ms []string) []string {
	if len(ms) == 1 && ms[0] == "all" {
		return AllMethods
	}
	return ms
}

// Cells expands the matrix, in a stable order.
func (s *Spec) Cells() ([]Cell, error) {
	builtin, err := natlab.BuiltinProfiles()
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
		topo, err := natlab.LoadTopology(g.Topology)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", gi, err)
		}
		nats := topo.NATs()
		methods := expandMethods(g.Methods)
		if len(methods) == 0 {
			methods = expandMethods(s.Methods)
		}
		for _, m := range methods {
			if index(AllMethods, m) < 0 {
				return nil, fmt.Errorf("group %d: unknown method %q", gi, m)
			}
		}
		if len(g.Pairs) > 0 {
			for _, tuple := range g.Pairs {
				if len(tuple) != len(nats) {
					return nil, fmt.Errorf("group %d (%s): pair %v needs one profile per NAT %v", gi, g.Topology, tuple, nats)
				}
				for _, m := range methods {
					c := Cell{Topology: g.Topology, Profiles: map[string]string{}, Method: m}
					for i, p := range tuple {
						if _, err := natlab.LoadProfile(p); err != nil {
							return nil, fmt.Errorf("group %d: %w", gi, err)
						}
						c.Profiles[nats[i]] = p
					}
					if !seen[c.Key()] {
						seen[c.Key()] = true
						out = append(out, c)
					}
				}
			}
			continue
		}
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
				if _, err := natlab.LoadProfile(p); err != nil {
					return nil, fmt.Errorf("group %d: %w", gi, err)
				}
			}
			lists[i] = ps
		}
		for n := range g.NATs {
			if index(nats, n) < 0 {
				return nil, fmt.Errorf("group %d: %s is not a NAT node of %s (%v)", gi, n, g.Topology, nats)
			}
		}
		var rec func(i int, cur map[string]string)
		rec = func(i int, cur map[string]string) {
			if i == len(nats) {
				if len(g.Unordered) == 2 {
					x, y := cur[g.Unordered[0]], cur[g.Unordered[1]]
					if index(lists[index(nats, g.Unordered[0])], x) > index(lists[index(nats, g.Unordered[1])], y) {
						return
					}
				}
				for _, m := range methods {
					c := Cell{Topology: g.Topology, Profiles: map[string]string{}, Method: m}
					for k, v := range cur {
						c.Profiles[k] = v
					}
					if !seen[c.Key()] {
						seen[c.Key()] = true
						out = append(out, c)
					}
				}
				return
			}
			for _, p := range lists[i] {
				cur[nats[i]] = p
				rec(i+1, cur)
			}
		}
		rec(0, map[string]string{})
	}
	return out, nil
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
