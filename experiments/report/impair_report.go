package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// splitImpaired separates trials run under an impairment case from the
// main (unimpaired) matrix.
func splitImpaired(trials []*spec.Trial) (main, impaired []*spec.Trial) {
	for _, t := range trials {
		if t.Sweep {
			continue // the race curves have a section of their own
		}
		if t.Cell.Case != "" {
			impaired = append(impaired, t)
		} else {
			main = append(main, t)
		}
	}
	return main, impaired
}

// caseGroup is one topology's impairment axis: the cases run and the
// unimpaired trials of the same cells (the baseline).
type caseGroup struct {
	topology string
	cases    []string // "none" first, then in order of first appearance
	byCase   map[string][]*spec.Trial
	desc     map[string]string
	pairs    []string
	// noiseMs is the run's scheduling-noise bound (RunInfo.NoiseBoundMs):
	// a difference in connect time below it is not told apart from noise.
	noiseMs float64
}

func caseGroups(main, impaired []*spec.Trial) []*caseGroup {
	groups := map[string]*caseGroup{}
	var order []string
	base := map[string]bool{} // keys of unimpaired cells that have impaired variants
	for _, t := range impaired {
		if t.LabError != "" {
			continue
		}
		g := groups[t.Cell.Topology]
		if g == nil {
			g = &caseGroup{topology: t.Cell.Topology, cases: []string{"none"}, byCase: map[string][]*spec.Trial{},
				desc: map[string]string{"none": "no delay, no loss, no cross traffic"}}
			groups[t.Cell.Topology] = g
			order = append(order, t.Cell.Topology)
		}
		if _, ok := g.byCase[t.Cell.Case]; !ok {
			g.cases = append(g.cases, t.Cell.Case)
		}
		g.byCase[t.Cell.Case] = append(g.byCase[t.Cell.Case], t)
		g.desc[t.Cell.Case] = strings.TrimPrefix(t.Delay, t.Cell.Case+": ")
		c := t.Cell
		c.Case = ""
		base[c.Key()] = true
		pair := profilesString(c)
		if slices.Index(g.pairs, pair) < 0 {
			g.pairs = append(g.pairs, pair)
		}
	}
	for _, t := range main {
		if t.LabError == "" && base[t.Cell.Key()] {
			g := groups[t.Cell.Topology]
			g.byCase["none"] = append(g.byCase["none"], t)
		}
	}
	var out []*caseGroup
	for _, k := range order {
		out = append(out, groups[k])
	}
	return out
}

// caseStat is one method under one case.
type caseStat struct {
	n, ok    int
	medianMs float64
}

func statOf(trials []*spec.Trial, method string) caseStat {
	var s caseStat
	var ms []float64
	for _, t := range trials {
		if t.Cell.Method != method {
			continue
		}
		s.n++
		if t.Success {
			s.ok++
			ms = append(ms, t.ConnectMs)
		}
	}
	s.medianMs = stats.Quantile(ms, 0.5)
	return s
}

func (s caseStat) rate() float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return float64(s.ok) / float64(s.n)
}

// writeImpairmentSection renders the "Under impairments" part of REPORT.md
// and its plots (into dir).
func writeImpairmentSection(p printer, dir string, info spec.RunInfo, main, impaired []*spec.Trial) error {
	groups := caseGroups(main, impaired)
	if len(groups) == 0 {
		return nil
	}
	for _, g := range groups {
		g.noiseMs = info.NoiseBoundMs
	}
	p("## Under impairments")
	p("")
	p("The same profile pairs, run again with network conditions emulated on the core links by natlab's delay queue (NFQUEUE with held verdicts, since this kernel has no netem) and tbf: the round trip between the peers is spread over both directions of both WAN links, jitter and loss are per peer-to-peer trip, cross traffic is a third host behind NAT-A opening connections to the core. Impaired cells run after the main matrix with fewer labs at once (the spec's `impaired_workers`, default 8), because this process releases every delayed packet and a saturated CPU would add its own delay; the methods of one pair and case run one after another, so that they run beside each other and share the case's load. The `none` column is the unimpaired matrix's trials of the same cells; they ran among 40 busy labs, so their connect times are longer for that reason alone: compare success rates across all columns, connect times across the impaired ones. The NAT model assumes an idle, loss-free path, so impaired trials are not counted in its agreement figures. Calibration of the datapath: `IMPAIRMENT.md`.")
	p("")
	for _, g := range groups {
		if err := impairmentGroup(p, dir, g); err != nil {
			return err
		}
	}
	return nil
}

// impairmentGroup is one topology's cases: per-method success and connect
// time, the peers' RTT, what the queue did, per-pair outcomes and plots.
func impairmentGroup(p printer, dir string, g *caseGroup) error {
	p("### %s", g.topology)
	p("")
	p("Pairs (%d): %s.", len(g.pairs), strings.Join(g.pairs, "; "))
	p("")
	for _, cs := range g.cases {
		p("- `%s`: %s (%d trials)", cs, g.desc[cs], len(g.byCase[cs]))
	}
	p("")
	var methods []string
	for _, m := range spec.AllMethods {
		for _, t := range g.byCase[g.cases[len(g.cases)-1]] {
			if t.Cell.Method == m {
				methods = append(methods, m)
				break
			}
		}
	}
	stats := caseMethodTable(p, g, methods)
	caseRTTRow(p, g)
	caseQueueLine(p, g)
	casePairTable(p, g)
	caseRaceTable(p, g)
	name := "impairment-" + g.topology
	if err := plotCases(dir, name, g, methods, stats); err != nil {
		return err
	}
	p("![success under impairments](plots/%s-success.png)", name)
	p("")
	p("![connect time under impairments](plots/%s-connect.png)", name)
	p("")
	return nil
}

// caseMethodTable: success rate (trials) and median connect time per
// method and case.
func caseMethodTable(p printer, g *caseGroup, methods []string) map[string]map[string]caseStat {
	head := "| method |"
	sep := "|---|"
	for _, cs := range g.cases {
		head += " " + cs + " |"
		sep += "---:|"
	}
	p("Success rate (trials), then median connect time of the successes:")
	p("")
	p("%s", head)
	p("%s", sep)
	stats := map[string]map[string]caseStat{}
	for _, m := range methods {
		row := "| " + m + " |"
		stats[m] = map[string]caseStat{}
		for _, cs := range g.cases {
			s := statOf(g.byCase[cs], m)
			stats[m][cs] = s
			if s.n == 0 {
				row += " - |"
				continue
			}
			row += fmt.Sprintf(" %.0f%% (%d), %s |", 100*s.rate(), s.n, msOrDash(s.medianMs))
		}
		p("%s", row)
	}
	p("")
	return stats
}

// caseRTTRow: peer-to-peer RTT over the punched path, measured by machsend.
func caseRTTRow(p printer, g *caseGroup) {
	row := "| measured peer RTT (median over successful trials' pings) |"
	for _, cs := range g.cases {
		row += " " + msOrDash(caseRTT(g.byCase[cs])) + " |"
	}
	p("| |%s", strings.Repeat(" |", len(g.cases)))
	p("%s", strings.Repeat("|---", len(g.cases)+1)+"|")
	p("%s", row)
	p("")
}

// caseQueueLine: how many packets the delay queue handled and dropped.
func caseQueueLine(p printer, g *caseGroup) {
	var dropped, pkts uint64
	for _, cs := range g.cases {
		for _, t := range g.byCase[cs] {
			for _, im := range t.Impairments {
				dropped += im.Dropped
				pkts += im.Packets
			}
		}
	}
	if pkts > 0 {
		p("The delay queue handled %d packets in these trials and dropped %d (%.2f%%) as configured.", pkts, dropped, 100*float64(dropped)/float64(pkts))
		p("")
	}
}

// casePairTable: per pair and case, which pairs move.
func casePairTable(p printer, g *caseGroup) {
	p("Per pair and case, success of p2pnat / sequential / auto:")
	p("")
	p("%s", "| pair |"+strings.Join(g.cases, " |")+" |")
	p("%s", strings.Repeat("|---", len(g.cases)+1)+"|")
	for _, pair := range g.pairs {
		row := "| " + pair + " |"
		for _, cs := range g.cases {
			var sel []*spec.Trial
			for _, t := range g.byCase[cs] {
				if profilesString(t.Cell) == pair {
					sel = append(sel, t)
				}
			}
			var parts []string
			for _, m := range []string{"p2pnat", "sequential", "auto"} {
				if s := statOf(sel, m); s.n == 0 {
					parts = append(parts, "-")
				} else {
					parts = append(parts, fmt.Sprintf("%.0f%%", 100*s.rate()))
				}
			}
			row += " " + strings.Join(parts, " / ") + " |"
		}
		p("%s", row)
	}
	p("")
}

// caseRaceTable sets auto against the single methods, per pair and case:
// auto's success over a direct or punched path (not the relay) against
// the best single punching method's, and auto's median connect time
// against the fastest single method's, in round trips of the case (in
// milliseconds where the round trip is below the noise bound: a multiple
// of it would then measure the noise).
func caseRaceTable(p printer, g *caseGroup) {
	p("What auto's race costs, per pair and impaired case: auto's success without the relay against the best single method's (relay and auto left out), and auto's median connect time (successes without the relay) against the fastest single method's, in round trips measured in the case (in milliseconds where the round trip is shorter than the run's %.0f ms noise bound). The `none` column is left out: its trials ran once each among the main matrix's busy labs, the impaired ones %s times each with fewer labs at once.", g.noiseMs, repsOf(g))
	p("")
	p("| pair | case | best single (success) | auto without relay | fastest single (median) | auto (median) | auto − fastest |")
	p("|---|---|---|---:|---|---:|---:|")
	rows, asGood, within := 0, 0, 0
	for _, pair := range g.pairs {
		for _, cs := range g.cases {
			if cs == "none" {
				continue
			}
			var sel []*spec.Trial
			for _, t := range g.byCase[cs] {
				if profilesString(t.Cell) == pair {
					sel = append(sel, t)
				}
			}
			r, ok := raceCost(sel)
			if !ok {
				continue
			}
			rows++
			if r.auto.rate() >= r.best.rate() {
				asGood++
			}
			diff, rtt := "-", caseRTT(g.byCase[cs])
			if r.fastest.n > 0 && r.auto.ok > 0 && rtt > 0 {
				d := r.auto.medianMs - r.fastest.medianMs
				diff = fmt.Sprintf("%+.1f RTT", d/rtt)
				if rtt < g.noiseMs {
					diff = fmt.Sprintf("%+.0f ms", d)
				}
				if d <= max(rtt, g.noiseMs) {
					within++
				}
			}
			p("| %s | %s | %s %.0f%% | %.0f%% | %s %s | %s | %s |", pair, cs, r.bestName, 100*r.best.rate(), 100*r.auto.rate(),
				r.fastestName, msOrDash(r.fastest.medianMs), msOrDash(r.auto.medianMs), diff)
		}
	}
	p("")
	p("Auto without the relay succeeded at least as often as the best single method in %d of %d pair-cases, and its median connect time was within one round trip (or the noise bound, where that is longer) of the fastest single method's in %d.", asGood, rows, within)
	p("")
}

// raceCosts are one pair-case's figures for caseRaceTable.
type raceCosts struct {
	best, fastest, auto   caseStat
	bestName, fastestName string
}

// raceCost finds the best and the fastest single punching method of a
// pair-case's trials and auto's figures without the relay; ok is false
// when auto or the single methods were not run.
func raceCost(trials []*spec.Trial) (raceCosts, bool) {
	var r raceCosts
	var direct []*spec.Trial
	for _, t := range trials {
		if t.Cell.Method == "auto" {
			d := *t
			d.Success = t.Success && t.Path != "relay"
			direct = append(direct, &d)
		}
	}
	r.auto = statOf(direct, "auto")
	for _, m := range spec.AllMethods {
		if m == "auto" || m == "relay" {
			continue
		}
		s := statOf(trials, m)
		if s.n == 0 {
			continue
		}
		if r.bestName == "" || s.rate() > r.best.rate() {
			r.best, r.bestName = s, m
		}
		if s.ok > 0 && (r.fastestName == "" || s.medianMs < r.fastest.medianMs) {
			r.fastest, r.fastestName = s, m
		}
	}
	return r, r.auto.n > 0 && r.bestName != ""
}

// caseRTT is a case's measured peer round trip: the median of the
// successful direct trials' pings (NaN when none).
// repsOf says how many times the group's impaired cells ran: one number,
// or the range.
func repsOf(g *caseGroup) string {
	count := map[string]int{}
	for _, cs := range g.cases {
		if cs == "none" {
			continue
		}
		for _, t := range g.byCase[cs] {
			count[t.Cell.Key()]++
		}
	}
	lo, hi := 0, 0
	for _, n := range count {
		if lo == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

func caseRTT(trials []*spec.Trial) float64 {
	var rtts []float64
	for _, t := range trials {
		if t.Success && t.Method != "relay" {
			rtts = append(rtts, t.RTTms...)
		}
	}
	return stats.Quantile(rtts, 0.5)
}

// plotCases draws grouped bars per method: success rate and median connect
// time under each case.
func plotCases(dir, name string, g *caseGroup, methods []string, stats map[string]map[string]caseStat) error {
	for _, kind := range []string{"success", "connect"} {
		pl := plot.New()
		if kind == "success" {
			pl.Title.Text = fmt.Sprintf("Success rate per method under each impairment case (%s)", g.topology)
			pl.Y.Label.Text = "success rate"
			pl.Y.Min = 0
		} else {
			pl.Title.Text = fmt.Sprintf("Median connect time per method under each impairment case (%s)", g.topology)
			pl.Y.Label.Text = "median connect time of successes (s)"
			pl.Y.Min = 0
		}
		w := vg.Points(8)
		top := 0.0
		for ci, cs := range g.cases {
			var vals plotter.Values
			for _, m := range methods {
				s := stats[m][cs]
				v := s.rate()
				if kind == "connect" {
					v = s.medianMs / 1000
				}
				if math.IsNaN(v) {
					v = 0
				}
				vals = append(vals, v)
				top = max(top, v)
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return err
			}
			bars.Color = plotColor(ci)
			bars.LineStyle.Width = 0
			bars.Offset = vg.Length(float64(ci)-float64(len(g.cases)-1)/2) * w
			pl.Add(bars)
			pl.Legend.Add(cs, bars)
		}
		// Headroom above the tallest bar for the legend.
		pl.Y.Max = max(top, 0.1) * 1.6
		pl.Legend.Top = true
		pl.NominalX(methods...)
		if err := save(pl, dir, name+"-"+kind, 10*vg.Inch, 4.5*vg.Inch); err != nil {
			return err
		}
	}
	return nil
}
