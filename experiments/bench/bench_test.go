package bench_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func TestMain(m *testing.M) { os.Exit(natlabtest.LeakCheck(m.Run)) }

// A small run of the rendezvous load test with one server and with two
// (the full one is part of make experiment): every offered session is
// accounted for exactly once, none fails (overload is refused as busy),
// and the servers' memory and CPU are read.
func TestRendezvousLoadSmall(t *testing.T) {
	bin := buildtest.Commands(t, "experiment", "rendezvous")
	for _, servers := range []int{1, 2} {
		run, err := bench.RunLoad(context.Background(), bin, bench.LoadConfig{Servers: servers, ClientsPerServer: 300,
			Rates: []float64{200, 400}, Step: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(run.Steps) != 2 || run.ServerRSSLoadedMiB <= 0 {
			t.Fatalf("load with %d servers: %+v", servers, run)
		}
		for _, st := range run.Steps {
			if st.Completed+st.Rejected+st.Failed != st.Offered || st.Offered != int(st.TargetRate/2) {
				t.Errorf("%d servers at %.0f/s: %d offered, %d completed + %d rejected + %d failed", servers, st.TargetRate, st.Offered, st.Completed, st.Rejected, st.Failed)
			}
			if st.Failed != 0 || st.Completed == 0 || st.GenCPUSeconds <= 0 {
				t.Errorf("%d servers at %.0f/s: %+v", servers, st.TargetRate, st)
			}
		}
	}
}

// natcheck behind every built-in profile and behind layered NATs: every
// knob it reports agrees with the configuration, every measured profile
// passes natlab check and has the original's traversal matrix, and a run
// is quick and leaves no socket open.
func TestNATCheck(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: natcheck behind every profile takes about a minute")
	}
	rows, err := bench.RunNATCheck(context.Background(), buildtest.Commands(t, "machsend", "rendezvous"), 4)
	if err != nil {
		t.Fatal(err)
	}
	agree, counted := bench.NATCheckSummary(rows)
	t.Logf("%d of %d observed knobs agree", agree, counted)
	for _, r := range rows {
		t.Run(r.Case, func(t *testing.T) {
			if r.Err != "" {
				t.Fatal(r.Err)
			}
			reported := map[string]bool{}
			for _, k := range r.Knobs {
				reported[k.Knob] = true
				// In a lab natcheck may craft packets: the knob that
				// needs them is measured, not left unknown.
				if k.Knob == "outbound-synack" && !k.Counted {
					t.Errorf("outbound-synack not measured in the lab: %s", k.Detected)
				}
				if !k.Agree {
					t.Errorf("%s: detected %s, configured %s", k.Knob, k.Detected, k.Configured)
				}
			}
			// natcheck reports every knob of the NAT model behind a NAT:
			// measured, or unknown with the table's reason.
			for _, k := range nat.Knobs {
				if r.Case != "none" && k.Name != "port-delta" && !reported[k.Name] { // the delta only behind sequential allocation
					t.Errorf("natcheck did not report knob %s", k.Name)
				}
			}
			if !r.CheckOK {
				t.Errorf("natlab check of the measured profile: %s\n%s", r.CheckErr, r.Profile)
			}
			if r.ModelSame != r.ModelAll {
				t.Errorf("model matrix: %d of %d cells as the original: %v", r.ModelSame, r.ModelAll, r.ModelDiff)
			}
			if r.Duration > 30*time.Second || r.LeftOpen != 0 || r.Probes > 100 {
				t.Errorf("took %v with %d probe connections, %d sockets left open", r.Duration, r.Probes, r.LeftOpen)
			}
			layered := strings.HasPrefix(r.Layered, "yes")
			switch {
			case r.Topology == "double-nat" && !layered && !strings.HasPrefix(r.Layered, "cannot tell"):
				t.Errorf("double NAT reported as %q", r.Layered)
			case r.Topology != "double-nat" && layered:
				t.Errorf("single NAT reported as layered: %q", r.Layered)
			}
		})
	}
}

// The same cells, both-RST and race cells among them, run with one lab at
// a time and with eight at once give the same outcomes (Fisher's exact
// test) and connect times (medians within 10%): over the path, scheduling
// no longer decides.
func TestLoadInvariance(t *testing.T) {
	natlabtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: two runs of 42 trials take about a minute and a half")
	}
	sp, err := spec.LoadSpec("../invariance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sp.Repetitions = 6
	r, err := bench.RunInvariance(context.Background(), experiments.Options{Bin: buildtest.Commands(t, "machsend", "rendezvous"),
		Out: t.TempDir(), AttemptTimeout: 2 * time.Second}, sp, []int{1, 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Cells {
		t.Logf("%s: %d/%d alone, %d/%d at 8 (p %.3f)", c.Cell, c.Successes[1], c.Trials[1], c.Successes[8], c.Trials[8], c.FisherP[8])
		if c.FisherP[8] < 0.01 {
			t.Errorf("%s: %d/%d alone but %d/%d with 8 labs at once (Fisher p %.4f)", c.Cell, c.Successes[1], c.Trials[1], c.Successes[8], c.Trials[8], c.FisherP[8])
		}
	}
	t.Logf("median connect %v ms, ratio %.3f, noisy %v", r.Median, r.Ratio[8], r.Noisy)
	if r.Ratio[8] < 0.9 || r.Ratio[8] > 1.1 {
		t.Errorf("median connect time %.1f ms with 8 labs at once against %.1f ms alone (×%.2f; want within 10%%)", r.Median[8], r.Median[1], r.Ratio[8])
	}
}
