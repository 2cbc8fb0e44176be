package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/session"

	"github.com/machsend/machsend/natcheck"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/check"
	"github.com/machsend/machsend/traversal/model"
)

// NATCheckRow is natcheck run behind one configured NAT (or NAT pair): what
// was configured, what natcheck reported, and the round trip through the
// profile it wrote.
type NATCheckRow struct {
	Case     string            `json:"case"`
	Topology string            `json:"topology"`
	Profiles map[string]string `json:"profiles"`
	// Knobs compares each knob: configured (what natcheck should see),
	// detected, agree; unknown knobs are listed but not counted.
	Knobs    []KnobCompare    `json:"knobs"`
	Layered  string           `json:"layered"`
	Expected string           `json:"layered_expected"`
	Duration time.Duration    `json:"duration_ns"`
	Probes   int64            `json:"probe_connections"`
	LeftOpen int              `json:"sockets_left_open"`
	Result   *natcheck.Result `json:"result"`
	// Profile is the YAML natcheck wrote; RoundTrip checks it.
	Profile   string   `json:"profile_yaml"`
	CheckOK   bool     `json:"natlab_check_ok"`
	CheckErr  string   `json:"natlab_check_error,omitempty"`
	ModelSame int      `json:"model_cells_same"`
	ModelAll  int      `json:"model_cells"`
	ModelDiff []string `json:"model_differences,omitempty"`
	Err       string   `json:"error,omitempty"`
}

// KnobCompare is one knob of a row.
type KnobCompare struct {
	Knob       string `json:"knob"`
	Configured string `json:"configured"`
	Detected   string `json:"detected"`
	Agree      bool   `json:"agree"`
	Counted    bool   `json:"counted"`
}

// expectedKnobs is what natcheck should see behind a NAT: every knob it
// can observe, except that the lab realises connection-dependent mapping
// and filtering as address-and-port-dependent, and delayed-icmp as silence.
// single is false behind layered NATs, whose timers and port delta natcheck
// sees only through the composition.
func expectedKnobs(n *nat.Profile, single bool) map[string]string {
	if !n.NAT {
		return map[string]string{"nat": "off"}
	}
	out := map[string]string{}
	for _, k := range nat.Knobs {
		if !k.Observable {
			continue
		}
		switch v := k.Get(n); {
		case (k.Name == "port-delta" && n.PortAllocation != nat.Sequential) ||
			(!single && (k.Name == "port-delta" || strings.HasPrefix(k.Name, "timers."))):
		case v == string(nat.ConnectionDependent):
			out[k.Name] = string(nat.AddressPortDependent)
		case k.Name == "unsolicited-syn" && v == string(nat.SYNDelayedICMP):
			out[k.Name] = string(nat.SYNDrop)
		default:
			out[k.Name] = v
		}
	}
	return out
}

// natcheckCase is one lab to run natcheck in.
type natcheckCase struct {
	name     string
	topology string
	profiles map[string]string
	expect   *nat.Profile
	layered  bool
}

func natcheckCases() ([]natcheckCase, error) {
	builtin, err := nat.Builtin()
	if err != nil {
		return nil, err
	}
	single, err := sides("two-nat", 1)
	if err != nil {
		return nil, err
	}
	double, err := sides("double-nat", 2)
	if err != nil {
		return nil, err
	}
	const peerNAT = "port-restricted-cone" // in front of the other peer
	var out []natcheckCase
	for _, p := range builtin {
		out = append(out, natcheckCase{name: p.Name, topology: "two-nat",
			profiles: map[string]string{single[0]: p.Name, single[1]: peerNAT}, expect: p})
	}
	for _, pair := range [][2]string{{"port-restricted-cone", "port-restricted-cone"}, {"full-cone", "symmetric-sequential"},
		{"linux-default", "symmetric-random"}, {"port-restricted-cone", "rst-unsolicited"}, {"eim-sequential", "full-cone"},
		{"restricted-cone", "icmp-unsolicited"}} {
		home, _ := nat.Load(pair[0])
		cgn, _ := nat.Load(pair[1])
		out = append(out, natcheckCase{name: pair[0] + " behind " + pair[1], topology: "double-nat",
			profiles: map[string]string{double[0]: pair[0], double[1]: pair[1], double[2]: peerNAT},
			expect:   nat.Compose(home, cgn), layered: true})
	}
	return out, nil
}

// sides names a topology's NATs by role: the n NATs in front of peer A,
// nearest first, then the one in front of peer B.
func sides(topology string, n int) ([]string, error) {
	t, err := natlab.LoadTopology(topology)
	if err != nil {
		return nil, err
	}
	a, b := t.SideNATs()
	if len(a) != n || len(b) != 1 {
		return nil, fmt.Errorf("natcheck cases: topology %s has %d NATs in front of peer A and %d in front of B, want %d and 1", topology, len(a), len(b), n)
	}
	return append(a, b[0]), nil
}

// RunNATCheck runs machsend natcheck behind every built-in profile and
// behind layered pairs, compares each knob with the configuration, and
// round-trips each written profile through natlab check and the model.
func RunNATCheck(ctx context.Context, bin string, parallel int) ([]*NATCheckRow, error) {
	cases, err := natcheckCases()
	if err != nil {
		return nil, err
	}
	if parallel <= 0 {
		parallel = 4
	}
	rows := make([]*NATCheckRow, len(cases))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = runNATCheckCase(ctx, bin, i, c)
		}()
	}
	wg.Wait()
	return rows, ctx.Err()
}

func runNATCheckCase(ctx context.Context, bin string, i int, c natcheckCase) *NATCheckRow {
	row := &NATCheckRow{Case: c.name, Topology: c.topology, Profiles: c.profiles}
	fail := func(err error) *NATCheckRow { row.Err = err.Error(); return row }
	dir, err := os.MkdirTemp("", "natcheck")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	yamlPath := filepath.Join(dir, "measured.yaml")
	if row.Result, err = natcheckInLab(ctx, bin, i, c, yamlPath); err != nil {
		return fail(err)
	}
	compareKnobs(row, c)
	b, err := os.ReadFile(yamlPath)
	if err != nil {
		return fail(err)
	}
	row.Profile = string(b)
	measured, err := nat.Parse("measured.yaml", b)
	if err != nil {
		return fail(err)
	}
	roundTrip(ctx, row, c, measured)
	return row
}

// natcheckInLab runs `machsend natcheck` on host a of a lab built for the
// case and returns its result; the profile it writes goes to yamlPath.
func natcheckInLab(ctx context.Context, bin string, i int, c natcheckCase, yamlPath string) (*natcheck.Result, error) {
	topo, err := natlab.LoadTopology(c.topology)
	if err != nil {
		return nil, err
	}
	profiles := map[string]*nat.Profile{}
	for n, name := range c.profiles {
		if profiles[n], err = nat.Load(name); err != nil {
			return nil, err
		}
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Profiles: profiles}) // a random name: no collision with other processes' labs
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	peers, err := experiments.StartRendezvous(ctx, lab, bin, 3478, "--alternate", "192.0.2.2:3481")
	if err != nil {
		return nil, err
	}
	run, err := peers.Machsend(peers.A, nil, "natcheck", "--server", peers.Server.String(), "--json", "--profile", yamlPath, "--name", "measured")
	if err != nil {
		return nil, err
	}
	evs, err := run.Wait(60 * time.Second)
	if err != nil {
		return nil, err
	}
	var res *natcheck.Result
	for _, e := range evs {
		if e.Kind == session.KindNATCheck {
			res = e.NATCheck
		}
	}
	if res == nil {
		return nil, errors.New("natcheck printed no result")
	}
	return res, nil
}

// compareKnobs compares every knob natcheck reported with the configuration.
func compareKnobs(row *NATCheckRow, c natcheckCase) {
	r := row.Result
	row.Layered, row.Duration, row.Probes, row.LeftOpen = r.Layered, r.Duration, r.Probes, r.LeftOpen
	row.Expected = "no"
	if c.layered {
		row.Expected = "yes"
	}
	want := expectedKnobs(c.expect, !c.layered)
	for _, k := range r.Knobs {
		kc := KnobCompare{Knob: k.Name, Configured: want[k.Name], Detected: k.Value}
		if kc.Configured == "" {
			kc.Configured = "n/a" // a double NAT's timers are not one profile's
		}
		kc.Counted = k.Value != natcheck.Unknown && want[k.Name] != ""
		kc.Agree = !kc.Counted || k.Value == want[k.Name]
		row.Knobs = append(row.Knobs, kc)
	}
}

// roundTrip: the measured profile passes natlab check, and the model treats
// it as the original against every built-in profile.
func roundTrip(ctx context.Context, row *NATCheckRow, c natcheckCase, measured *nat.Profile) {
	rep, err := check.Profile(ctx, measured)
	switch {
	case err != nil:
		row.CheckErr = err.Error()
	case !rep.OK():
		row.CheckErr = rep.Err().Error()
	default:
		row.CheckOK = true
	}
	builtin, _ := nat.Builtin()
	for _, q := range builtin {
		for _, m := range spec.AllMethods {
			if m == "lan" {
				continue
			}
			for _, swap := range []bool{false, true} {
				a1, b1, a2, b2 := c.expect, q, measured, q
				if swap {
					a1, b1, a2, b2 = b1, a1, b2, a2
				}
				p1, p2 := model.Predict(model.Separate, a1, b1, m), model.Predict(model.Separate, a2, b2, m)
				row.ModelAll++
				if p1.Success == p2.Success {
					row.ModelSame++
				} else if len(row.ModelDiff) < 5 {
					row.ModelDiff = append(row.ModelDiff, fmt.Sprintf("%s vs %s (swap %v): original %v, measured %v", m, q.Name, swap, p1.Success, p2.Success))
				}
			}
		}
	}
}

// NATCheckSummary counts agreement over rows.
func NATCheckSummary(rows []*NATCheckRow) (agree, counted int) {
	for _, r := range rows {
		for _, k := range r.Knobs {
			if k.Counted {
				counted++
				if k.Agree {
					agree++
				}
			}
		}
	}
	return agree, counted
}

// WriteNATCheck writes natcheck.json and NATCHECK.md into out.
func WriteNATCheck(out string, rows []*NATCheckRow) error {
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "natcheck.json"), b, 0o644); err != nil {
		return err
	}
	var s strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&s, f+"\n", a...) }
	agree, counted := NATCheckSummary(rows)
	p("# natcheck: configured against detected")
	p("")
	p("Generated by `experiment natcheck` (part of `make experiment`): `machsend natcheck` run from host a behind every built-in profile (two-nat topology, NAT-A) and behind six home-NAT/carrier-NAT pairs (double-nat), against the real rendezvous server with its second address and alternate port. The configured column is what natcheck should see (the lab realises connection-dependent mapping and filtering as address-and-port-dependent and delayed-icmp as silence; a double NAT is the model's composition of the two).")
	p("")
	p("**%d of %d observed knobs agree (%.1f%%).** Knobs reported unknown are listed and not counted.", agree, counted, 100*float64(agree)/float64(max(counted, 1)))
	p("")
	var knobs []string
	seen := map[string]bool{}
	for _, r := range rows {
		for _, k := range r.Knobs {
			if !seen[k.Knob] {
				seen[k.Knob] = true
				knobs = append(knobs, k.Knob)
			}
		}
	}
	head := "| case |"
	sep := "|---|"
	for _, k := range knobs {
		head += " " + k + " |"
		sep += "---|"
	}
	p("%s layered | time | probes | open sockets |", head)
	p("%s---|---:|---:|---:|", sep)
	for _, r := range rows {
		line := "| " + r.Case + " |"
		if r.Err != "" {
			p("%s error: %s |", line, r.Err)
			continue
		}
		by := map[string]KnobCompare{}
		for _, k := range r.Knobs {
			by[k.Knob] = k
		}
		for _, k := range knobs {
			kc, ok := by[k]
			switch {
			case !ok:
				line += " |"
			case kc.Detected == natcheck.Unknown:
				line += fmt.Sprintf(" ? (%s) |", kc.Configured)
			case kc.Agree:
				line += " " + kc.Detected + " |"
			default:
				line += fmt.Sprintf(" **%s** (configured %s) |", kc.Detected, kc.Configured)
			}
		}
		p("%s %s | %.1f s | %d | %d |", line, firstWord(r.Layered), r.Duration.Seconds(), r.Probes, r.LeftOpen)
	}
	p("")
	p("`?` is unknown (the configured value in brackets). Layered: what natcheck says about NAT layering (`yes` only when a hop behind the first answers from RFC 6598 space).")
	p("")
	p("## Round trip")
	p("")
	p("Each profile natcheck wrote (`--profile`) was built again and checked with `natlab check`, and its traversal matrix under the NAT model (every built-in profile as the other peer, both roles, %d methods) compared with the configured NAT's.", len(spec.AllMethods)-1)
	p("")
	p("| case | natlab check | model cells equal | differences |")
	p("|---|---|---:|---|")
	for _, r := range rows {
		if r.Err != "" {
			continue
		}
		ck := "passes"
		if !r.CheckOK {
			ck = "FAILS: " + r.CheckErr
		}
		p("| %s | %s | %d / %d | %s |", r.Case, ck, r.ModelSame, r.ModelAll, strings.Join(r.ModelDiff, "; "))
	}
	p("")
	var durs []float64
	maxProbes, open := int64(0), 0
	for _, r := range rows {
		durs = append(durs, r.Duration.Seconds())
		maxProbes = max(maxProbes, r.Probes)
		open += r.LeftOpen
	}
	sort.Float64s(durs)
	if len(durs) > 0 {
		p("A full run took %.1f-%.1f s (median %.1f s), at most %d probe connections, and left %d sockets open in total.", durs[0], durs[len(durs)-1], durs[len(durs)/2], maxProbes, open)
	}
	return os.WriteFile(filepath.Join(out, "NATCHECK.md"), []byte(s.String()), 0o644)
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, ":("); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
