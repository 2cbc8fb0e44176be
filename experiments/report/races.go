package report

import (
	"fmt"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// raceCurve is one race cell's trials by SYN offset.
type raceCurve struct {
	cell    string
	race    string // the model's condition
	offsets []float64
	byOff   map[float64]*racePoint
}

type racePoint struct {
	n, ok, predicted int
}

// raceCurves groups the sweep trials by cell (without the case), offsets
// ascending.
func raceCurves(trials []*spec.Trial) []*raceCurve {
	by := map[string]*raceCurve{}
	for _, t := range trials {
		if !t.Sweep || t.LabError != "" {
			continue
		}
		c := t.Cell
		c.Case = ""
		k := c.Key()
		rc := by[k]
		if rc == nil {
			rc = &raceCurve{cell: k, race: t.PredictedRace, byOff: map[float64]*racePoint{}}
			by[k] = rc
		}
		pt := rc.byOff[t.OffsetMs]
		if pt == nil {
			pt = &racePoint{}
			rc.byOff[t.OffsetMs] = pt
			rc.offsets = append(rc.offsets, t.OffsetMs)
		}
		pt.n++
		if t.Success {
			pt.ok++
		}
		if t.Predicted {
			pt.predicted++
		}
	}
	var out []*raceCurve
	for _, rc := range by {
		sort.Float64s(rc.offsets)
		out = append(out, rc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cell < out[j].cell })
	return out
}

// reportRaces shows every race cell's success against the offset between
// the peers' SYNs next to the model's verdict for each offset.
func reportRaces(p printer, dir string, trials []*spec.Trial) error {
	curves := raceCurves(trials)
	if len(curves) == 0 {
		return nil
	}
	p("## Races: success against the offset between the SYNs")
	p("")
	p("Where the model says the outcome depends on which SYN reaches which NAT first, the cell was run again with peer A's SYN delayed (or, for negative offsets, B's) by each offset, over the main matrix's path. Each row is one offset; each cell of the table is successes/trials, then the model's verdict for that offset (✓ connects, ✗ fails); 95%% Wilson intervals in the figure.")
	p("")
	header := "| offset (ms) |"
	sep := "|---:|"
	for _, rc := range curves {
		header += " " + rc.cell + " |"
		sep += "---|"
	}
	p("%s", header)
	p("%s", sep)
	var all []float64
	for _, rc := range curves {
		all = append(all, rc.offsets...)
	}
	sort.Float64s(all)
	for i, off := range all {
		if i > 0 && off == all[i-1] {
			continue
		}
		row := fmt.Sprintf("| %g |", off)
		for _, rc := range curves {
			pt := rc.byOff[off]
			if pt == nil {
				row += " - |"
				continue
			}
			verdict := "✗"
			if pt.predicted == pt.n {
				verdict = "✓"
			}
			row += fmt.Sprintf(" %d/%d %s |", pt.ok, pt.n, verdict)
		}
		p("%s", row)
	}
	agree, total := raceAgreement(curves)
	p("")
	p("%d of %d sweep trials came out as the model predicted for their offset. The model's condition for each cell:", agree, total)
	p("")
	for _, rc := range curves {
		p("- %s: %s.", rc.cell, rc.race)
	}
	p("")
	p("![race curves](plots/race-curves.png)")
	p("")
	p("*Figure: success rate of each race cell against the SYN offset (positive: A's SYN later), with 95%% Wilson intervals; the table's marks are the model's verdict at each offset.*")
	p("")
	return plotRaces(dir, curves)
}

// plotRaces draws the race curves with their intervals.
func plotRaces(dir string, curves []*raceCurve) error {
	pl := plot.New()
	pl.Title.Text = "Race cells: success rate against SYN offset"
	pl.X.Label.Text = "offset of A's SYN after B's (ms)"
	pl.Y.Label.Text = "success rate (95% Wilson)"
	pl.Y.Min, pl.Y.Max = 0, 1.05
	pl.Legend.Top = true
	for i, rc := range curves {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, off := range rc.offsets {
			pt := rc.byOff[off]
			r := float64(pt.ok) / float64(pt.n)
			lo, hi := stats.Wilson(pt.ok, pt.n, 1.96)
			pts = append(pts, plotter.XY{X: off, Y: r})
			errs = append(errs, struct{ Low, High float64 }{r - lo, hi - r})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotColor(i)
		pl.Add(line, &plotter.YErrorBars{XYs: pts, YErrors: errs, LineStyle: line.LineStyle, CapWidth: vg.Points(4)})
		pl.Legend.Add(strings.TrimPrefix(rc.cell, "two-nat "), line)
	}
	return save(pl, dir, "race-curves", 8*vg.Inch, 4*vg.Inch)
}

// raceAgreement counts the sweep trials that came out as the model
// predicted for their offset, and all of them.
func raceAgreement(curves []*raceCurve) (agree, total int) {
	for _, rc := range curves {
		for _, pt := range rc.byOff {
			total += pt.n
			if pt.predicted == pt.n {
				agree += pt.ok
			} else {
				agree += pt.n - pt.ok
			}
		}
	}
	return agree, total
}
