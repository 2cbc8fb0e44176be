package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/experiments/spec"
)

// The time section reads the run's wall time and CPUs from run.json and
// each phase from the trials: throughput per core and every phase's share.
func TestReportTiming(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := json.Marshal(&spec.RunInfo{Started: start, Finished: start.Add(30 * time.Minute), Trials: 1000, CPUs: 2})
	if err := os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	trials := []*spec.Trial{
		{Phases: &spec.Phases{LabMs: 100, ServerMs: 10, ProbeMs: 40, PeersMs: 800, EvidenceMs: 50}},
		{Phases: &spec.Phases{LabMs: 300, ServerMs: 30, ProbeMs: 60, PeersMs: 1200, EvidenceMs: 150}},
		{}, // an older trial without phases
	}
	var out strings.Builder
	reportTiming(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, dir, trials)
	for _, want := range []string{"took 30m0s for 1000 trials on 2 CPUs: 1000 trials per hour per core", "| 200 | 200 | 15% |", "| 1000 | 1000 | 73% |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}
