package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/bench"
)

// The load section is computed from rendezvous-load.json: its table shows
// the file's figures and both plots are drawn.
func TestReportLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := bench.LoadResult{CPUs: 2, FDLimit: 20000, Notes: "n", Runs: []*bench.LoadRun{
		{Servers: 1, ClientsPerServer: 10000, BytesPerIdleClient: 1234, Steps: []*bench.LoadStep{
			{TargetRate: 1000, OfferedRate: 1000, Offered: 5000, Admitted: 4993, Completed: 4990, Rejected: 7, Failed: 3, AchievedRate: 998, CoordP99Ms: 1.5, Seconds: 5},
			{TargetRate: 5000, OfferedRate: 4990, Offered: 25000, Completed: 25000, AchievedRate: 4987, CoordP99Ms: 3.25, Seconds: 5},
		}},
	}}
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, "rendezvous-load.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }
	if err := reportLoad(p, dir); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1234 bytes per idle registered client", "| 1000 (1000) | 5000 | 4993 | 4990 | 7 | 3 | 998 |", "/ 3.25 /", "load-rate.png"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"load-rate.png", "load-p99.svg"} {
		if _, err := os.Stat(filepath.Join(dir, "plots", f)); err != nil {
			t.Error(err)
		}
	}
}
