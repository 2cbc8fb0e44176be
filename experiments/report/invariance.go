package report

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/spec"
)

// reportInvariance shows the same cells run at several numbers of labs at
// once: outcomes per level, Fisher's exact test against one lab at a time,
// and the median connect time.
func reportInvariance(p printer, out string) {
	var r bench.InvarianceResult
	if !spec.ReadJSON(filepath.Join(out, "invariance.json"), &r) || len(r.Levels) == 0 {
		return
	}
	p("## Load invariance")
	p("")
	p("The cells of `experiments/invariance.yaml` (both-RST and race cells among them), %d repetitions each, run once with one lab at a time and again with more labs at once. Each entry is successes/trials; p is Fisher's exact test against one lab at a time.", r.Levels[0].Trials/max(len(r.Cells), 1))
	p("")
	head, sep := "| cell |", "|---|"
	var levels []int
	for _, l := range r.Levels {
		levels = append(levels, l.Workers)
		head += fmt.Sprintf(" %d at once |", l.Workers)
		sep += "---|"
	}
	p("%s", head)
	p("%s", sep)
	for _, c := range r.Cells {
		row := "| " + c.Cell + " |"
		for i, w := range levels {
			row += fmt.Sprintf(" %d/%d", c.Successes[w], c.Trials[w])
			if i > 0 {
				row += fmt.Sprintf(" (p %.2f)", c.FisherP[w])
			}
			row += " |"
		}
		p("%s", row)
	}
	row := "| median connect (ms), noisy trials |"
	for _, w := range levels {
		row += fmt.Sprintf(" %.1f (×%.2f), %d |", r.Median[w], r.Ratio[w], r.Noisy[w])
	}
	p("%s", row)
	p("")
	sort.Ints(levels)
	p("Smallest p over all cells and levels: %.3f (a difference would show as p < 0.05). Median connect times at the most labs at once are ×%.2f of one lab at a time.", r.Worst, r.Ratio[levels[len(levels)-1]])
	p("")
}
