//go:build slurmtest

package slurm_test

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// The quick matrix submitted to a real one-machine Slurm cluster as an
// array of three shards and a dependent merge job: the merged run holds
// every trial once, its report is written, and every cell's outcome equals
// that of a single-process run of the same spec.
func TestSlurmShardsEqualOneRun(t *testing.T) {
	natlabtest.RequireRoot(t)
	for _, b := range []string{"sbatch", "slurmctld", "slurmd", "munged", "sinfo", "squeue"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (make test-slurm installs slurm-wlm and munge)", b)
			}
			t.Skipf("%s not installed: make test-slurm installs slurm-wlm and munge", b)
		}
	}
	bin := buildtest.Commands(t, "experiment", "machsend", "rendezvous")
	quick, err := filepath.Abs("../quick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	c := startCluster(t, 2)
	submit := c.cmd("./submit.sh", quick, filepath.Join(work, "sharded"), "3", bin)
	submit.Env = append(submit.Env, "MACHSEND_WORKERS=6")
	out, err := submit.CombinedOutput()
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	ids := strings.Fields(string(out))
	if len(ids) != 2 {
		t.Fatalf("submit printed %q, want the array and merge job ids", out)
	}
	c.waitDone(t, ids, 15*time.Minute, filepath.Join(work, "sharded"))
	merged := filepath.Join(work, "sharded", "merged")
	if _, err := os.Stat(filepath.Join(merged, "REPORT.md")); err != nil {
		t.Fatalf("the merge job wrote no report: %v\n%s", err, c.jobOutput(filepath.Join(work, "sharded")))
	}

	single := filepath.Join(work, "single")
	if out, err := exec.Command(filepath.Join(bin, "experiment"), "run", quick, "--out", single, "--bin", bin).CombinedOutput(); err != nil {
		t.Fatalf("single run: %v\n%s", err, tail(out))
	}
	compareOutcomes(t, merged, single)
	if out, err := exec.Command(filepath.Join(bin, "experiment"), "report", "--out", single).CombinedOutput(); err != nil {
		t.Fatalf("single run's report: %v\n%s", err, tail(out))
	}
	compareCellTables(t, merged, single)
}

// compareCellTables checks that the two runs' cells.csv agree byte for byte
// in every column computed from outcomes (all but the connect time, which
// differs between any two runs; the failure classes of a cell that
// failed in every trial, which name the mechanism seen first; and the
// method an always-successful auto cell won by, the first of its methods
// to authenticate).
func compareCellTables(t *testing.T, a, b string) {
	t.Helper()
	read := func(dir string) []string {
		f, err := os.Open(filepath.Join(dir, "cells.csv"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("%s/cells.csv: %d rows, %v", dir, len(rows), err)
		}
		skip := slices.Index(rows[0], "median_connect_ms")
		col := func(name string) int { return slices.Index(rows[0], name) }
		method, trials, succ, classes := col("method"), col("trials"), col("successes"), col("classes")
		var out []string
		for i, r := range rows {
			r = slices.Clone(r)
			switch {
			case i == 0 || min(method, trials, succ, classes) < 0:
			case r[succ] == "0":
				// A cell that failed in every trial: which failure shows
				// first in the packets can race when two are armed (NATBlaster's
				// injected SYN-ACK against the translated ICMP that aborts its
				// connect); the outcome is what must agree.
				r[classes] = "failed"
			case r[method] == "auto" && r[succ] == r[trials]:
				// auto runs its methods at once and keeps the first to
				// authenticate among equals: which one wins is a race by design.
				r[classes] = "success"
			}
			if skip >= 0 {
				r = slices.Delete(r, skip, skip+1)
			}
			out = append(out, strings.Join(r, ","))
		}
		return out
	}
	ra, rb := read(a), read(b)
	if !slices.Equal(ra, rb) {
		for i := 0; i < min(len(ra), len(rb)); i++ {
			if ra[i] != rb[i] {
				t.Fatalf("cells.csv differs at row %d:\n sharded %s\n single  %s", i, ra[i], rb[i])
			}
		}
		t.Fatalf("cells.csv: %d rows sharded, %d single", len(ra), len(rb))
	}
}

// waitDone waits until the jobs have left the queue; a job whose
// dependency failed (a shard failed) fails the test at once.
func (c *cluster) waitDone(t *testing.T, ids []string, limit time.Duration, dir string) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		out, err := c.cmd("squeue", "-h", "-j", strings.Join(ids, ","), "-o", "%i %T %r").Output()
		switch {
		case err == nil && strings.TrimSpace(string(out)) == "":
			return
		case strings.Contains(string(out), "DependencyNeverSatisfied"):
			t.Fatalf("a shard failed, so the merge job will never run:\n%s\n%s", out, c.jobOutput(dir))
		}
	}
	t.Fatalf("jobs %v still queued or running after %v", ids, limit)
}

// jobOutput gathers the jobs' output files, for a failure message.
func (c *cluster) jobOutput(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "slurm-*.out"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.WriteString("== " + filepath.Base(f) + "\n" + tail(data) + "\n")
	}
	return b.String()
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// compareOutcomes checks that two runs hold the same trials with the same
// outcome per cell.
func compareOutcomes(t *testing.T, a, b string) {
	t.Helper()
	load := func(dir string) map[string]bool {
		trials, err := spec.LoadTrials(filepath.Join(dir, spec.TrialsFile))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, tr := range trials {
			if tr.LabError != "" {
				t.Errorf("%s: %s: lab error %s", dir, tr.ID, tr.LabError)
			}
			out[tr.ID] = tr.Success
		}
		return out
	}
	ma, mb := load(a), load(b)
	if len(ma) != len(mb) || len(ma) == 0 {
		t.Fatalf("the sharded run has %d trials, the single run %d", len(ma), len(mb))
	}
	for id, ok := range ma {
		if got, found := mb[id]; !found || got != ok {
			t.Errorf("%s: sharded success %v, single run %v (present %v)", id, ok, got, found)
		}
	}
}
