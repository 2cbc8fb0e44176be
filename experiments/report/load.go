package report

import (
	"fmt"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/spec"
)

// reportLoad is the rendezvous load test, if measured: a table per run
// (one server, two servers) and plots of achieved rate and p99 latency
// against the offered rate.
func reportLoad(p printer, out string) error {
	var r bench.LoadResult
	if !spec.ReadJSON(filepath.Join(out, "rendezvous-load.json"), &r) || len(r.Runs) == 0 {
		return nil
	}
	p("## Rendezvous load")
	p("")
	p("Measured by `experiment load`: %s.", r.Notes)
	p("")
	for _, run := range r.Runs {
		reportLoadRun(p, run)
	}
	if err := plotLoad(filepath.Join(out, "plots"), r.Runs); err != nil {
		return err
	}
	p("![achieved rate against offered rate](plots/load-rate.png) ![p99 latency against offered rate](plots/load-p99.png)")
	p("")
	return nil
}

func reportLoadRun(p printer, run *bench.LoadRun) {
	p("### %d server process(es), %d registered clients each", run.Servers, run.ClientsPerServer)
	p("")
	p("Server memory (per process): %.1f MiB before the clients, %.1f MiB with them registered and idle, so %.0f bytes per idle registered client; peak %.1f MiB. The clients took %.1f s to connect and say hello.",
		run.ServerRSSIdleMiB, run.ServerRSSLoadedMiB, run.BytesPerIdleClient, run.ServerPeakRSSMiB, run.RegisterSeconds)
	p("")
	p("| offered/s (target) | offered | admitted | completed | rejected busy | failed | achieved/s | coordination p50 / p99 / max ms | session p50 / p99 ms | server CPU | generator CPU |")
	p("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, st := range run.Steps {
		p("| %.0f (%.0f) | %d | %d | %d | %d | %d | %.0f | %.2f / %.2f / %.1f | %.2f / %.2f | %.0f%% | %.0f%% |",
			st.OfferedRate, st.TargetRate, st.Offered, st.Admitted, st.Completed, st.Rejected, st.Failed, st.AchievedRate,
			st.CoordP50Ms, st.CoordP99Ms, st.CoordMaxMs, st.SessionP50Ms, st.SessionP99Ms,
			100*st.ServerCPUSeconds/st.Seconds, 100*st.GenCPUSeconds/st.Seconds)
	}
	p("")
	p("CPU is a share of one CPU over the step (this machine has two, shared by the servers and the generator).")
	for _, st := range run.Steps {
		if len(st.FirstErrors) > 0 {
			p("")
			p("First failures at %.0f/s: %s.", st.TargetRate, strings.Join(st.FirstErrors, "; "))
		}
	}
	p("")
}

// plotLoad draws achieved rate and coordination p99 against offered rate,
// one line per run.
func plotLoad(dir string, runs []*bench.LoadRun) error {
	rate, p99 := plot.New(), plot.New()
	rate.Title.Text = "Rendezvous: sessions completed per second"
	rate.X.Label.Text, rate.Y.Label.Text = "offered sessions/s", "completed sessions/s"
	p99.Title.Text = "Rendezvous: coordination latency p99"
	p99.X.Label.Text, p99.Y.Label.Text = "offered sessions/s", "p99 ms (second punch.ready to both punch.go)"
	for i, run := range runs {
		var a, l plotter.XYs
		for _, st := range run.Steps {
			a = append(a, plotter.XY{X: st.OfferedRate, Y: st.AchievedRate})
			l = append(l, plotter.XY{X: st.OfferedRate, Y: st.CoordP99Ms})
		}
		name := fmt.Sprintf("%d server(s)", run.Servers)
		for _, c := range []struct {
			p  *plot.Plot
			xy plotter.XYs
		}{{rate, a}, {p99, l}} {
			line, points, err := plotter.NewLinePoints(c.xy)
			if err != nil {
				return err
			}
			line.Color, points.Color = plotColor(i), plotColor(i)
			c.p.Add(line, points)
			c.p.Legend.Add(name, line, points)
		}
	}
	rate.Legend.Top, rate.Legend.Left = true, true
	p99.Legend.Top, p99.Legend.Left = true, true
	if err := save(rate, dir, "load-rate", 5*vg.Inch, 3.5*vg.Inch); err != nil {
		return err
	}
	return save(p99, dir, "load-p99", 5*vg.Inch, 3.5*vg.Inch)
}
