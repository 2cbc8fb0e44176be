package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
)

// mechanism is one way the NAT model says a method fails, how its reasons
// name it, and the classifier's failure classes that show it in the
// packets. Classes nil: the classifier cannot see it (it happens inside a
// NAT, with nothing on the wires it captures to tell it apart).
type mechanism struct {
	name    string
	phrase  string
	classes []string
}

// mechanisms is every failure mechanism of the model (one row each). A
// reason's mechanism is the row whose phrase appears earliest in it: in a
// reason over two rounds ("A initiates: ...; B initiates: ..."), the first
// round's, which is the one the classifier's first failing exchange shows.
var mechanisms = []mechanism{
	{"no shared LAN", "no shared LAN", []string{"not-applicable"}},
	{"a translated ICMP time-exceeded aborts the pending connect", "ICMP time-exceeded", []string{"icmp-translated"}},
	{"no NAT forwards an unsolicited SYN", "forwards an unsolicited SYN", []string{"syn-dropped", "syn-rst", "syn-icmp"}},
	{"no NAT forwards an unsolicited SYN or accepts a simultaneous open", "forwards unsolicited SYNs nor", []string{"syn-dropped", "syn-rst", "syn-icmp", "synack-invalid"}},
	{"the birthday guesses leave from unpredicted ports", "guesses leave from different ports", []string{"prediction-miss", "syn-dropped", "syn-rst", "syn-icmp"}},
	{"an RST closes the initiator's NAT entry", "answered with RST", []string{"syn-rst"}},
	{"both NATs reset early SYNs", "both NATs answer an early SYN with RST", []string{"syn-rst"}},
	{"strict sequence tracking drops the listener's SYN-ACK", "strict sequence tracking", []string{"synack-invalid"}},
	{"the NAT refuses a simultaneous open", "outbound SYN's tuple", []string{"synack-invalid", "syn-dropped"}},
	{"the port toward the peer cannot be predicted", "cannot be known", []string{"prediction-miss", "syn-dropped", "syn-rst", "syn-icmp"}},
	{"the held connect is answered before the peer's SYN", "before the peer's SYN arrives", []string{"syn-rst", "syn-icmp"}},
	{"an RST and an ICMP reject the reply", "rejects the reply with ICMP", []string{"syn-rst", "syn-icmp"}},
	{"the NAT drops the SYN-ACK its host injects", "drops the outbound SYN-ACK", []string{"synack-invalid", "syn-dropped"}},
	{"no hairpinning (the NAT answers its own address)", "no hairpinning", nil},
	{"a low-TTL SYN to the NAT's own address is answered inside", "does not leave the NAT", nil},
}

// mechanismOf is the mechanism a failure reason names, or nil.
func mechanismOf(reason string) *mechanism {
	var best *mechanism
	at := len(reason) + 1
	for i := range mechanisms {
		if j := strings.Index(reason, mechanisms[i].phrase); j >= 0 && j < at {
			best, at = &mechanisms[i], j
		}
	}
	return best
}

// mechanismStats is agreement by mechanism: a trial agrees when the model
// predicted its outcome and, for a failure, the classifier's class shows
// the mechanism the model names.
type mechanismStats struct {
	modelled, outcome int // trials the model covers; of them, outcome as predicted
	success, shown    int // as-predicted successes; as-predicted failures by the named mechanism
	unseen            int // as-predicted failures of a mechanism the classifier cannot see
	other             map[[2]string]int
}

func mechanismAgreement(trials []*spec.Trial) mechanismStats {
	st := mechanismStats{other: map[[2]string]int{}}
	for _, t := range trials {
		if t.LabError != "" || !t.Modelled {
			continue
		}
		st.modelled++
		if t.Success != t.Predicted {
			continue
		}
		st.outcome++
		if t.Success {
			st.success++
			continue
		}
		m := mechanismOf(t.PredictedReason)
		switch {
		case m == nil:
			st.other[[2]string{"(no mechanism named)", t.Class}]++
		case m.classes == nil:
			st.unseen++
		case slices.Contains(m.classes, t.Class):
			st.shown++
		default:
			st.other[[2]string{m.name, t.Class}]++
		}
	}
	return st
}

// reportMechanisms writes agreement by mechanism beside agreement by
// outcome, and where the two part.
func reportMechanisms(p printer, trials []*spec.Trial) {
	st := mechanismAgreement(trials)
	if st.modelled == 0 {
		return
	}
	seen := st.modelled - st.unseen
	p("**By mechanism.** Counting a trial as agreeing only when, besides its outcome, a failure's packets show the mechanism the model names (the classifier's class is one of that mechanism's; the table is `mechanisms` in `experiments/report/mechanism.go`): %d of %d trials (%.1f%%), against %d of %d (%.1f%%) by outcome alone. %d failures are of mechanisms the classifier cannot see (they happen inside a NAT) and are left out of the first figure's denominator.",
		st.success+st.shown, seen, pct(st.success+st.shown, seen), st.outcome, st.modelled, pct(st.outcome, st.modelled), st.unseen)
	p("")
	if len(st.other) == 0 {
		return
	}
	type row struct {
		k [2]string
		n int
	}
	var rows []row
	for k, n := range st.other {
		rows = append(rows, row{k, n})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].n != rows[j].n {
			return rows[i].n > rows[j].n
		}
		return rows[i].k[0]+rows[i].k[1] < rows[j].k[0]+rows[j].k[1]
	})
	p("Failures predicted but by another mechanism than the model's (the model's mechanism, what the packets showed):")
	p("")
	p("| the model's mechanism | the classifier's class | trials |")
	p("|---|---|---:|")
	for _, r := range rows {
		p("| %s | %s | %d |", r.k[0], r.k[1], r.n)
	}
	p("")
}

func pct(a, b int) float64 { return 100 * float64(a) / float64(max(b, 1)) }

// String names a mechanism (for tests and messages).
func (m *mechanism) String() string { return fmt.Sprintf("%s (%q)", m.name, m.phrase) }
