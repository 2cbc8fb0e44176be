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

// The throughput section is computed from throughput.json: medians over
// the repetitions, the range, the paired ratios, and peak memory for both
// file sizes.
func TestReportThroughput(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := bench.ThroughputResult{Bytes: 1 << 30, Repetitions: 3, Notes: "n", Rows: []bench.ThroughputRow{
		{Path: "punched", Copy: bench.CopyAES, MBps: []float64{800, 700, 900}, RatioAES: []float64{1, 1, 1}, RatioPlain: []float64{0.5, 0.4, 0.6}},
		{Path: "punched", Copy: bench.CopyMachsend, MBps: []float64{760, 600, 855}, RatioAES: []float64{0.95, 0.86, 0.95}, RatioPlain: []float64{0.4, 0.3, 0.5},
			CPUPerGB: []float64{2.5, 2.1, 2.3}, CPURatioAES: []float64{1.1, 1.05, 1.2}, RSSSendKiB: 30 << 10, RSSReceiveKiB: 31 << 10},
	}, SmallFile: bench.ThroughputRow{Path: "punched", Copy: bench.CopyMachsend, MBps: []float64{700}, RSSSendKiB: 29 << 10, RSSReceiveKiB: 30 << 10},
		Link: bench.LinkTime{Bytes: 10 << 30, Seconds: 0.12, OneByteSeconds: 0.1},
		FirstByte: []bench.FirstByteRow{{RTTms: 30, Method: "auto", Trials: []bench.FirstByteTrial{
			{FirstByteMs: 90, FirstPath: "relay", Moved: true, DirectMs: 200, MoveAfterMs: 3, CoordinationMs: 70, TotalMs: 900},
			{FirstByteMs: 60, FirstPath: "relay", Moved: true, DirectMs: 100, MoveAfterMs: 1, CoordinationMs: 50, TotalMs: 700},
			{FirstByteMs: 120, FirstPath: "relay", TotalMs: 1500},
		}}, {RTTms: 30, Method: "p2pnat", Trials: []bench.FirstByteTrial{
			{FirstByteMs: 150, FirstPath: "punched", DirectMs: 130, CoordinationMs: 60, TotalMs: 800},
		}}, {RTTms: 30, Method: "stunt2", Trials: []bench.FirstByteTrial{
			{FirstByteMs: 170, FirstPath: "punched", DirectMs: 140, CoordinationMs: 90, TotalMs: 800},
		}}, {RTTms: 30, Method: "relay", Trials: []bench.FirstByteTrial{
			{FirstByteMs: 80, FirstPath: "relay", TotalMs: 1000},
		}}}}
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, "throughput.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	reportThroughput(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, dir)
	for _, want := range []string{
		"| punched | AES-256-GCM copy | 800 (700–900) | 1.00 | 0.50 | - | - | - |",
		"| punched | machsend | 760 (600–855) | 0.95 | 0.40 | 2.30 | 1.10 | 30 / 31 MiB |",
		"moving 256 MiB (punched) peaked at 29 MiB sender / 30 MiB receiver; the rows above are 1024 MiB",
		"up to 3 repetitions",
		"| 30 ms | auto | 90 (60–120) | 3.0 | relay | 2/3 | 150 | 2 | 60 | 2.0 | 900 |",
		"| 30 ms | stunt2 | 170 (170–170) | 5.7 | punched | 0/1 | 140 | - | 90 | 3.0 | 800 |",
		"| 30 ms | relay | 80 (80–80) | 2.7 | relay | 0/1 | - | - | - | - | 1000 |",
		"at 30 ms, auto's direct path 150 ms against 130 ms for the fastest single method (p2pnat): +20 ms, +0.7 RTT",
		"0.120 s for a 10 GiB file, 0.100 s for a 1-byte file (×1.20)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := writeThroughputPlot(filepath.Join(dir, "plots")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "plots", "throughput.png")); err != nil {
		t.Error(err)
	}
}
