package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// InvarianceResult is the same cells run at several numbers of parallel
// labs: a result that depends on how the lab was run shows up as cells
// whose outcome distributions differ, or connect times that move.
type InvarianceResult struct {
	Spec   string               `json:"spec"`
	Levels []InvarianceLevel    `json:"levels"`
	Cells  []InvarianceCell     `json:"cells"`
	Worst  float64              `json:"worst_fisher_p"`
	Median map[int]float64      `json:"median_connect_ms"` // by labs at once
	Ratio  map[int]float64      `json:"median_ratio"`      // against one lab at a time
	Noisy  map[int]int          `json:"noisy_trials"`
	Info   map[int]spec.RunInfo `json:"runs"`
}

// InvarianceLevel is one run's parallelism.
type InvarianceLevel struct {
	Workers int `json:"workers"`
	Trials  int `json:"trials"`
}

// InvarianceCell is one cell's successes per level and Fisher's exact
// test of each level against one lab at a time.
type InvarianceCell struct {
	Cell      string          `json:"cell"`
	Successes map[int]int     `json:"successes"`
	Trials    map[int]int     `json:"trials"`
	FisherP   map[int]float64 `json:"fisher_p"`
}

// RunInvariance runs the spec once per number of labs at once (the first
// is the reference) into out/invariance-N and compares.
func RunInvariance(ctx context.Context, opts experiments.Options, sp *spec.Spec, levels []int) (*InvarianceResult, error) {
	res := &InvarianceResult{Spec: sp.Name, Median: map[int]float64{}, Ratio: map[int]float64{}, Noisy: map[int]int{},
		Info: map[int]spec.RunInfo{}, Worst: 1}
	byCell := map[string]*InvarianceCell{}
	var order []string
	for _, w := range levels {
		o := opts
		o.Workers, o.Out = w, filepath.Join(opts.Out, fmt.Sprintf("invariance-%d", w))
		if err := os.RemoveAll(o.Out); err != nil {
			return nil, err
		}
		info, err := experiments.Run(ctx, sp, o)
		if err != nil {
			return nil, fmt.Errorf("%d labs at once: %w", w, err)
		}
		res.Info[w] = *info
		trials, err := spec.LoadTrials(filepath.Join(o.Out, spec.TrialsFile))
		if err != nil {
			return nil, err
		}
		res.Levels = append(res.Levels, InvarianceLevel{Workers: w, Trials: len(trials)})
		var connect []float64
		for _, t := range trials {
			k := t.Cell.Key()
			c := byCell[k]
			if c == nil {
				c = &InvarianceCell{Cell: k, Successes: map[int]int{}, Trials: map[int]int{}, FisherP: map[int]float64{}}
				byCell[k] = c
				order = append(order, k)
			}
			c.Trials[w]++
			if t.Success {
				c.Successes[w]++
				if !t.Noisy { // as in the report: a noisy trial's timing is left out
					connect = append(connect, t.ConnectMs)
				}
			}
			if t.Noisy {
				res.Noisy[w]++
			}
		}
		res.Median[w] = stats.Quantile(connect, 0.5)
	}
	sort.Strings(order)
	ref := levels[0]
	for _, k := range order {
		c := byCell[k]
		for _, w := range levels[1:] {
			p := stats.FisherExact(c.Successes[ref], c.Trials[ref]-c.Successes[ref], c.Successes[w], c.Trials[w]-c.Successes[w])
			c.FisherP[w] = p
			res.Worst = min(res.Worst, p)
		}
		res.Cells = append(res.Cells, *c)
	}
	for _, w := range levels {
		res.Ratio[w] = res.Median[w] / res.Median[ref]
	}
	return res, nil
}
