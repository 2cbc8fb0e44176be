package report

import (
	"slices"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
	"github.com/machsend/machsend/traversal"
)

// birthdayCell is one natblaster cell whose trials ran the birthday search.
type birthdayCell struct {
	key      string
	n, ok    int
	pending  []float64 // guesses still pending, per trial
	guesses  []float64
	chance   []float64 // collision chance from the trial's own counts
	mappings []float64
}

// birthdayCells gathers the unimpaired natblaster trials whose peers both
// reported their part of the birthday search, by cell, where the model
// says the search can meet (its reason is the birthday fallback's); it
// also counts the cells left out because the model rules the search out
// for a reason the counts do not show (a predictable side whose NAT maps
// each guess to another port).
func birthdayCells(trials []*spec.Trial) (cells []*birthdayCell, ruledOut int) {
	by := map[string]*birthdayCell{}
	out := map[string]bool{}
	for _, t := range trials {
		b := t.Birthday
		if t.Cell.Method != "natblaster" || t.Cell.Case != "" || t.LabError != "" || b == nil || b.Guesses == 0 || b.Mappings == 0 {
			continue
		}
		if !t.Predicted || !strings.HasPrefix(t.PredictedReason, birthdayReason) {
			out[t.Cell.Key()] = true
			continue
		}
		k := t.Cell.Key()
		c := by[k]
		if c == nil {
			c = &birthdayCell{key: k}
			by[k] = c
		}
		c.n++
		if t.Success {
			c.ok++
		}
		c.pending = append(c.pending, float64(b.Pending))
		c.guesses = append(c.guesses, float64(b.Guesses))
		c.mappings = append(c.mappings, float64(b.Mappings))
		c.chance = append(c.chance, traversal.BirthdayChance(b.Pending, b.Mappings, traversal.BirthdayRange))
	}
	for _, c := range by {
		cells = append(cells, c)
	}
	slices.SortFunc(cells, func(a, b *birthdayCell) int { return strings.Compare(a.key, b.key) })
	return cells, len(out)
}

// birthdayReason begins the model's reasons for cells that connect by the
// birthday fallback (traversal/model predictBirthday).
const birthdayReason = "birthday fallback: "

// reportBirthday sets the birthday fallback's measured success beside the
// chance computed from what each trial measured: how many of the
// predictable side's guesses were still pending (not aborted by an ICMP
// error) when the random side opened its mappings, and how many it opened,
// against a NAT choosing among traversal.BirthdayRange ports.
func reportBirthday(p printer, trials []*spec.Trial) {
	cells, ruledOut := birthdayCells(trials)
	if len(cells) == 0 {
		return
	}
	p("## The birthday fallback, predicted from what each trial measured")
	p("")
	p("NATBlaster against a randomly allocating NAT: the predictable side keeps low-TTL guesses pending toward random ports, the random side opens fresh mappings, and a guess equal to a mapping meets it as a simultaneous open. Each trial records how many guesses were still pending (in SYN_SENT: an ICMP time-exceeded translated back aborts a guess) when the mappings were opened, and how many mappings; the chance of a collision follows, 1-(1-pending/%d)^mappings, for a NAT choosing uniformly among %d ports (Linux's fully random masquerade). The prediction agrees when the mean chance lies inside the 95%% Wilson interval of the measured success.", traversal.BirthdayRange, traversal.BirthdayRange)
	p("")
	p("| cell | trials | connected | 95%% interval | guesses pending (median, of sent) | mappings (median) | predicted chance (mean) | agrees |")
	p("|---|---:|---:|---|---:|---:|---:|---|")
	var n, ok int
	var all []float64
	agree := 0
	for _, c := range cells {
		lo, hi := stats.Wilson(c.ok, c.n, 1.96)
		mean := stats.Mean(c.chance)
		in := mean >= lo && mean <= hi
		if in {
			agree++
		}
		p("| %s | %d | %d | %.1f–%.1f%% | %.0f of %.0f | %.0f | %.1f%% | %s |", c.key, c.n, c.ok, 100*lo, 100*hi,
			stats.Quantile(c.pending, 0.5), stats.Quantile(c.guesses, 0.5), stats.Quantile(c.mappings, 0.5), 100*mean, yesNo(in))
		n, ok = n+c.n, ok+c.ok
		all = append(all, c.chance...)
	}
	lo, hi := stats.Wilson(ok, n, 1.96)
	p("")
	p("Over all %d cells: %d of %d trials connected (95%% Wilson %.1f–%.1f%%) against a mean predicted chance of %.1f%%; %d of %d cells agree. %d more cells ran the search where the model rules it out for a reason the counts do not show (the predictable side's NAT maps each guess to another port); they are in the prediction table above.", len(cells), ok, n, 100*lo, 100*hi, 100*stats.Mean(all), agree, len(cells), ruledOut)
	p("")
}
