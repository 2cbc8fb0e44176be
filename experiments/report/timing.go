package report

import (
	"path/filepath"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// phaseNames are the parts of a trial's wall time, in order (spec.Phases).
var phaseNames = []struct {
	name string
	of   func(*spec.Phases) float64
}{
	{"lab ready (reset, impairments, captures)", func(p *spec.Phases) float64 { return p.LabMs }},
	{"rendezvous server started", func(p *spec.Phases) float64 { return p.ServerMs }},
	{"path probed (scheduling noise)", func(p *spec.Phases) float64 { return p.ProbeMs }},
	{"peers run (start, NAT probe, coordination, attempts, round trips)", func(p *spec.Phases) float64 { return p.PeersMs }},
	{"evidence collected and classified", func(p *spec.Phases) float64 { return p.EvidenceMs }},
}

// reportTiming says where the run's time went: the run stage's wall time
// and throughput per core (run.json), and each phase of a trial (trials).
func reportTiming(p printer, out string, trials []*spec.Trial) {
	var info spec.RunInfo
	if !spec.ReadJSON(filepath.Join(out, "run.json"), &info) || info.Finished.IsZero() {
		return
	}
	per := make([][]float64, len(phaseNames))
	var total float64
	for _, t := range trials {
		if t.Phases == nil {
			continue
		}
		for i, ph := range phaseNames {
			v := ph.of(t.Phases)
			per[i] = append(per[i], v)
			total += v
		}
	}
	p("## Where the time goes")
	p("")
	wall := info.Finished.Sub(info.Started)
	cores := max(info.CPUs, 1)
	p("The run stage (`experiment run`) took %s for %d trials on %d CPUs: %.0f trials per hour per core. Every trial's wall time, by phase (labs run in parallel, so the phases of one trial overlap other trials'):", wall.Round(1e9), info.Trials, cores, float64(info.Trials)/wall.Hours()/float64(cores))
	p("")
	if len(per[0]) == 0 {
		p("(this run's trials carry no phase times)")
		p("")
		return
	}
	p("| phase | median ms | mean ms | share of all trials' time |")
	p("|---|---:|---:|---:|")
	for i, ph := range phaseNames {
		sum := 0.0
		for _, v := range per[i] {
			sum += v
		}
		p("| %s | %.0f | %.0f | %.0f%% |", ph.name, stats.Quantile(per[i], 0.5), stats.Mean(per[i]), 100*sum/total)
	}
	p("")
}
