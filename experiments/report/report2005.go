package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// approaches2005 are the four TCP traversal approaches Guha & Francis
// compared in 2005, plus the Machsend 2009 method, in report order.
var approaches2005 = []string{"stunt1", "stunt2", "natblaster", "p2pnat", "machsend"}

// approachNeeds says, per approach, what the NAT model says it needs.
var approachNeeds = map[string]string{
	"stunt1":     "both mappings predictable, both NATs drop the ICMP time-exceeded of the low-TTL SYN (Linux aborts a pending connect on it), and a rendezvous server that can spoof (here: inside the lab). Filtering, RST/ICMP responses, simultaneous-open handling and sequence tracking do not matter: the forged SYN-ACKs carry the exact ISNs.",
	"stunt2":     "both mappings predictable (or a peer whose filtering admits the unpredicted port), the initiator's NAT accepting an inbound SYN on its outbound SYN's tuple and passing the listener's new-ISN SYN-ACK (liberal sequence tracking); the low TTL keeps the responder's NAT from answering with RST.",
	"natblaster": "what STUNT #1 needs, without a spoofing server, plus NATs that translate a SYN-ACK sent from inside after their own SYN (conntrack calls it invalid: strict NATs drop it); with exactly one random side, the birthday fallback (600 guesses against 600 fresh mappings) needs the other side endpoint-independent and one of the two NATs accepting the colliding SYN as a simultaneous open; how many guesses an ICMP time-exceeded aborts, and so the chance of a collision, is measured in every trial (see the birthday fallback's section).",
	"p2pnat":     "one side reachable (endpoint-independent filtering) or, with both mappings predictable, a NAT that accepts a simultaneous open; it loses when both NATs reset early SYNs (each RST closes the other side's entry).",
	"machsend":   "STUNT #2's conditions with a full-TTL SYN: the responder's side must also stay silent when the initiator's SYN arrives (no RST), unless the initiator filters endpoint-independently.",
}

// pairRates is one unordered two-NAT pair's success rate and connect
// times per approach, and which approaches are best.
type pairRates struct {
	a, b  string
	rate  map[string]float64
	lo    map[string]float64 // 95% Wilson interval of the rate
	hi    map[string]float64
	ms    map[string][]float64 // connect times, sorted
	n     map[string]int
	best  []string // the approaches that cannot be told apart from the best
	alone bool     // the best is the only approach that connected at all
}

// win is the pair's single best approach, or "" when none connected or
// several tie.
func (pr *pairRates) win() string {
	if len(pr.best) == 1 {
		return pr.best[0]
	}
	return ""
}

func approachPairs(cells []*CellStats) []*pairRates {
	by := map[string]*pairRates{}
	var keys []string
	for _, c := range cells {
		if c.Cell.Topology != "two-nat" || c.Cell.Case != "" || slices.Index(approaches2005, c.Cell.Method) < 0 {
			continue
		}
		a, b := c.Cell.SideProfiles()
		if a > b {
			a, b = b, a
		}
		k := a + " × " + b
		pr := by[k]
		if pr == nil {
			pr = &pairRates{a: a, b: b, rate: map[string]float64{}, lo: map[string]float64{}, hi: map[string]float64{},
				ms: map[string][]float64{}, n: map[string]int{}}
			by[k] = pr
			keys = append(keys, k)
		}
		m := c.Cell.Method
		pr.rate[m], pr.n[m] = c.Rate(), c.N
		pr.lo[m], pr.hi[m] = stats.Wilson(c.Successes, c.N, 1.96)
		pr.ms[m] = slices.Sorted(slices.Values(c.ConnectMs))
	}
	sort.Strings(keys)
	var out []*pairRates
	for _, k := range keys {
		pr := by[k]
		pr.best = bestApproaches(pr)
		connected := 0
		for _, m := range approaches2005 {
			if pr.rate[m] > 0 {
				connected++
			}
		}
		pr.alone = len(pr.best) == 1 && connected == 1
		out = append(out, pr)
	}
	return out
}

// minTimed is how many connect times an approach needs in a pair before
// its times can separate it from another's (three: a range that covers
// the median three times in four).
const minTimed = 3

// bestApproaches are the approaches a pair's trials cannot tell apart from
// the best: first by success rate (those whose 95% interval reaches the
// best one's lower bound), then, among those, by connect time (those whose
// range of connect times overlaps the fastest one's; the range of n trials
// covers the median with probability 1-2^(1-n), 94% for five), and only
// when every such approach has at least minTimed connect times: fewer do
// not separate anything. None when nothing connected.
func bestApproaches(pr *pairRates) []string {
	top := ""
	for _, m := range approaches2005 {
		if pr.n[m] > 0 && pr.rate[m] > 0 && (top == "" || pr.rate[m] > pr.rate[top]) {
			top = m
		}
	}
	if top == "" {
		return nil
	}
	var byRate []string
	for _, m := range approaches2005 {
		if pr.n[m] > 0 && pr.rate[m] > 0 && pr.hi[m] >= pr.lo[top] {
			byRate = append(byRate, m)
		}
	}
	for _, m := range byRate {
		if len(pr.ms[m]) < minTimed {
			return byRate
		}
	}
	fastest := byRate[0]
	for _, m := range byRate {
		if len(pr.ms[m]) > 0 && (len(pr.ms[fastest]) == 0 || pr.ms[m][len(pr.ms[m])-1] < pr.ms[fastest][len(pr.ms[fastest])-1]) {
			fastest = m
		}
	}
	var best []string
	for _, m := range byRate {
		if f := pr.ms[fastest]; len(f) == 0 || len(pr.ms[m]) == 0 || pr.ms[m][0] <= f[len(f)-1] {
			best = append(best, m)
		}
	}
	return best
}

// failureReasons counts, per method, the reasons its failed attempts gave
// (the text before the first colon, which names the cause).
func failureReasons(trials []*spec.Trial, methods []string) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, t := range trials {
		if t.LabError != "" || t.Success || t.Cell.Case != "" || slices.Index(methods, t.Cell.Method) < 0 {
			continue
		}
		for _, a := range t.Attempts {
			if string(a.Method) != t.Cell.Method {
				continue
			}
			r := a.Error
			if r == "" {
				r = a.Outcome
			}
			r = strings.TrimPrefix(r, "method not applicable to these candidates: ")
			peer := strings.HasPrefix(r, "peer: ")
			r = strings.TrimPrefix(r, "peer: ")
			if i := strings.Index(r, ": "); i > 0 {
				r = r[:i]
			}
			if strings.HasPrefix(r, "reset by ") {
				r = "reset before the handshake completed"
			}
			if peer {
				r = "the peer could not go on: " + r
			}
			if out[t.Cell.Method] == nil {
				out[t.Cell.Method] = map[string]int{}
			}
			out[t.Cell.Method][r]++
		}
	}
	return out
}

// writeApproaches writes the report's comparison of the 2005 approaches and
// the Machsend method over the whole two-NAT matrix.
func writeApproaches(p printer, trials []*spec.Trial, cells []*CellStats) {
	pairs := approachPairs(cells)
	if len(pairs) == 0 {
		return
	}
	p("## The four approaches of 2005 and Machsend, side by side")
	p("")
	p("Guha & Francis (IMC 2005) compared STUNT #1, STUNT #2, NATBlaster and P2PNAT; Machsend (2009) is STUNT #2 with a full-TTL SYN. STUNT #1 and NATBlaster need raw sockets: the peers capture their own SYN on an AF_PACKET socket, STUNT #1's server forges both SYN-ACKs (spoofed from each peer's public endpoint), NATBlaster's peers inject them themselves; injection is refused outside a natlab namespace. Every two-NAT profile pair of the main matrix, %s:", mainPath(trials))
	p("")
	approachSummary(p, trials, pairs)
	p("What each approach needs (the NAT model's rules, which the measurements test):")
	p("")
	for _, m := range approaches2005 {
		p("- **%s**: %s", m, approachNeeds[m])
	}
	p("")
	approachDifferences(p, pairs)
	approachFailures(p, trials)
}

// approachSummary: per approach, success, pairs always connected, best,
// alone, connect time and packets.
func approachSummary(p printer, trials []*spec.Trial, pairs []*pairRates) {
	ms := summariseMethods(trials, "two-nat")
	stat := map[string]*MethodStats{}
	for _, m := range ms {
		stat[m.Method] = m
	}
	wins, ties, alone, full := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, pr := range pairs {
		if w := pr.win(); w != "" {
			wins[w]++
		} else {
			for _, m := range pr.best {
				ties[m]++
			}
		}
		if pr.alone {
			alone[pr.win()]++
		}
		for _, m := range approaches2005 {
			if pr.n[m] > 0 && pr.rate[m] == 1 {
				full[m]++
			}
		}
	}
	packets := map[string][]float64{}
	for _, t := range trials {
		if t.Success && t.Cell.Topology == "two-nat" && t.Cell.Case == "" {
			for _, a := range t.Attempts {
				if string(a.Method) == t.Cell.Method && a.Outcome == "connected" && a.Packets > 0 {
					packets[t.Cell.Method] = append(packets[t.Cell.Method], float64(a.Packets))
				}
			}
		}
	}
	p("| approach | success over %d pairs | pairs always connected | pairs where it alone is best | pairs where it ties for best | pairs only it connects | median connect | crafted/sent packets (median, A's side) |", len(pairs))
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range approaches2005 {
		s := stat[m]
		if s == nil {
			continue
		}
		pk := "-"
		if v := stats.Quantile(packets[m], 0.5); !math.IsNaN(v) {
			pk = fmt.Sprintf("%.0f", v)
		}
		p("| %s | %.1f%% (%d/%d) | %d | %d | %d | %d | %s | %s |", m, 100*float64(s.Successes)/float64(max(s.N, 1)), s.Successes, s.N,
			full[m], wins[m], ties[m], alone[m], msOrDash(s.MedianMs), pk)
	}
	p("")
	p("Best means the trials can tell it apart from the rest: a success rate whose 95%% Wilson interval lies above the others', or, among approaches whose intervals overlap and that each connected at least %d times in the pair, connect times whose range lies below the others' (the range of n trials covers the median with probability 1-2^(1-n): %.0f%% for the %d trials per pair of this run). Otherwise the approaches tie.", minTimed, 100*(1-math.Pow(2, float64(1-trialsPerPair(pairs)))), trialsPerPair(pairs))
	p("")
}

// approachDifferences lists the pairs where the approaches differ.
func approachDifferences(p printer, pairs []*pairRates) {
	p("Pairs where the approaches differ (success rate per approach, with its 95%% interval when not 0 or 100%%; best as defined above, or the approaches that tie):")
	p("")
	p("| pair | %s | best |", strings.Join(approaches2005, " | "))
	p("|---|%s---|", strings.Repeat("---:|", len(approaches2005)))
	for _, pr := range pairs {
		same := true
		for _, m := range approaches2005[1:] {
			if pr.rate[m] != pr.rate[approaches2005[0]] {
				same = false
			}
		}
		if same {
			continue
		}
		row := []string{pr.a + " × " + pr.b}
		for _, m := range approaches2005 {
			if pr.n[m] == 0 {
				row = append(row, "-")
				continue
			}
			cell := fmt.Sprintf("%.0f%%", 100*pr.rate[m])
			if pr.rate[m] > 0 && pr.rate[m] < 1 {
				cell += fmt.Sprintf(" (%.0f-%.0f)", 100*pr.lo[m], 100*pr.hi[m])
			}
			row = append(row, cell)
		}
		w := "none connected"
		switch {
		case pr.alone:
			w = pr.win() + " (alone)"
		case pr.win() != "":
			w = pr.win()
		case len(pr.best) > 0:
			w = "tie: " + strings.Join(pr.best, ", ")
		}
		row = append(row, w)
		p("| %s |", strings.Join(row, " | "))
	}
	p("")
}

// approachFailures counts why the raw-socket approaches failed.
func approachFailures(p printer, trials []*spec.Trial) {
	reasons := failureReasons(trials, []string{"stunt1", "natblaster"})
	if len(reasons) == 0 {
		return
	}
	p("Why the raw-socket approaches failed (each failed attempt's own reason, all topologies, %s):", mainPath(trials))
	p("")
	p("| approach | reason | attempts |")
	p("|---|---|---:|")
	for _, m := range []string{"stunt1", "natblaster"} {
		var rs []string
		for r := range reasons[m] {
			rs = append(rs, r)
		}
		sort.Slice(rs, func(i, j int) bool { // most frequent first; ties by name, so reports are reproducible
			if reasons[m][rs[i]] != reasons[m][rs[j]] {
				return reasons[m][rs[i]] > reasons[m][rs[j]]
			}
			return rs[i] < rs[j]
		})
		for _, r := range rs {
			p("| %s | %s | %d |", m, r, reasons[m][r])
		}
	}
	p("")
}

// mainPath says what path the main matrix's trials ran over, from the
// trials themselves.
func mainPath(trials []*spec.Trial) string {
	for _, t := range trials {
		if t.Cell.Case == "" && t.Delay != "" {
			if rest, ok := strings.CutPrefix(t.Delay, "path: "); ok {
				return "over the main matrix's path (" + rest + ")"
			}
			return "under " + t.Delay
		}
	}
	return "with no emulated delay"
}

// trialsPerPair is the most trials any approach has in any pair.
func trialsPerPair(pairs []*pairRates) int {
	n := 0
	for _, pr := range pairs {
		for _, k := range pr.n {
			n = max(n, k)
		}
	}
	return n
}
