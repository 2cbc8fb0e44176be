package report

import (
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
)

// reportNoise states the scheduling noise the trials measured on their
// own path and how the runner adapted its parallelism to keep it bounded.
func reportNoise(p printer, info spec.RunInfo, trials []*spec.Trial) {
	var noise []float64
	noisy := 0
	for _, t := range trials {
		if len(t.PathRTTms) == 0 {
			continue
		}
		noise = append(noise, t.NoiseMs)
		if t.Noisy {
			noisy++
		}
	}
	if len(noise) == 0 {
		p("- scheduling noise: not measured by this run")
		return
	}
	p("- scheduling noise (the median of three TCP handshakes from peer A to the server before each trial, minus the configured round trip): median %.2f ms, p99 %.2f ms, max %.2f ms over %d trials; %d above the %.1f ms bound (their outcomes count, their timings are left out)",
		stats.Quantile(noise, 0.5), stats.Quantile(noise, 0.99), stats.Quantile(noise, 1), len(noise), noisy, info.NoiseBoundMs)
	for i, par := range info.Parallel {
		stage := []string{"main matrix", "impaired and sweep cells"}[min(i, 1)]
		p("- parallel labs, %s: at most %d, lowest %d after %d adjustments to the noise", stage, par.Max, par.Lowest, par.Changes)
	}
}
