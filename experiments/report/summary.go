package report

import (
	"path/filepath"
	"slices"

	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/spec"
)

// reportSummary is the findings at the top of the report, each computed
// from the data the sections below show in full.
func reportSummary(p printer, out string, trials, all []*spec.Trial, cells []*CellStats) {
	p("## Summary of findings")
	p("")
	agree, n := modelAgreement(cells)
	p("- The NAT model predicted %d of %d main-matrix trials (%.1f%%).", agree, n, 100*float64(agree)/float64(max(n, 1)))
	if st := mechanismAgreement(trials); st.modelled > 0 {
		seen := st.modelled - st.unseen
		p("- By mechanism (a failure agrees only when its packets show the mechanism the model names): %d of %d trials (%.1f%%).", st.success+st.shown, seen, pct(st.success+st.shown, seen))
	}
	ms := summariseMethods(trials, "two-nat")
	slices.SortFunc(ms, func(a, b *MethodStats) int {
		ra, rb := float64(a.Successes)/float64(max(a.N, 1)), float64(b.Successes)/float64(max(b.N, 1))
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return 0
	})
	for _, m := range ms[:min(4, len(ms))] {
		p("- %s connected %d of %d two-NAT trials (%.1f%%, 95%% Wilson %.1f–%.1f%%).", m.Method, m.Successes, m.N,
			100*float64(m.Successes)/float64(max(m.N, 1)), 100*m.Lo, 100*m.Hi)
	}
	if curves := raceCurves(all); len(curves) > 0 {
		ok, tot := raceAgreement(curves)
		p("- Race cells swept over the SYN offset: %d of %d trials as the model predicted for their offset.", ok, tot)
	}
	var r bench.InvarianceResult
	if spec.ReadJSON(filepath.Join(out, "invariance.json"), &r) && len(r.Levels) > 1 {
		last := r.Levels[len(r.Levels)-1].Workers
		p("- Load invariance: the same cells at 1 to %d labs at once; smallest Fisher p %.3f, median connect time ×%.2f.", last, r.Worst, r.Ratio[last])
	}
	p("")
}

// reportLimitations says what the lab is not.
func reportLimitations(p printer) {
	p("## Limitations")
	p("")
	p("- Every NAT is Linux netfilter (conntrack, nftables, iptables-nft) configured to a profile; real NAT products implement the same behaviours with their own code, timers and bugs. `natlab profiles --json` states for each knob whether its realisation is exact or approximate.")
	p("- Everything is validated in the lab only: hosts are Linux, so host-side effects (for example `tcp_v4_err` aborting a SYN_SENT connect when a translated ICMP time-exceeded arrives) are Linux's.")
	p("- Delay, jitter and loss come from natlab's userspace delay queue (this kernel has no netem); its accuracy is in `IMPAIRMENT.md`. A NAT's own RSTs and ICMP errors leave without the delay of its egress (the kernel drops such packets when queued).")
	p("- The model assumes no loss, jitter, rate limit or cross traffic; trials under those conditions are reported but not counted in its agreement.")
	p("- Profiles are synthetic points of the NAT model's space, not a census; the population weights in `experiments/population.yaml` are assumptions, stated there.")
	p("")
}

// modelAgreement counts the trials of cells that came out as the model
// predicted, and all of them.
func modelAgreement(cells []*CellStats) (agree, n int) {
	for _, c := range cells {
		n += c.N
		agree += c.N - c.Disagree
	}
	return agree, n
}
