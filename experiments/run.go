package experiments

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/machsend/machsend/natlab"
)

// TrialsFile is the JSON-lines file of trial records in a results directory.
const TrialsFile = "trials.jsonl"

// RunInfo describes a run: the exact inputs and environment, written next to
// the trials so every figure can be traced to what produced it.
type RunInfo struct {
	Spec        *Spec     `json:"spec"`
	CodeVersion string    `json:"code_version"`
	Kernel      string    `json:"kernel"`
	GoVersion   string    `json:"go_version"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Trials      int       `json:"trials"`
	Resumed     int       `json:"resumed"`
	Workers     int       `json:"workers"`
	CPUs        int       `json:"cpus"`
}

// codeVersion names the commit the binaries come from, "-dirty" when code
// differs from it. results/ itself is left out of the comparison: a run
// rewrites it, and that must not make the next run's resume fail.
func codeVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short=8", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	v := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results").Output()
	if err != nil || len(strings.TrimSpace(string(st))) > 0 {
		v += "-dirty"
	}
	return v
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// LoadTrials reads a trials file; a missing file is no trials.
func LoadTrials(path string) ([]*Trial, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*Trial
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var t Trial
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			continue // a line cut short by an interrupted run
		}
		out = append(out, &t)
	}
	return out, sc.Err()
}

// evidenceSet remembers which outcome classes already have their captures
// kept: one exemplar per topology, method, case and class.
type evidenceSet struct {
	mu   sync.Mutex
	kept map[string]bool
}

func evidenceKey(t *Trial) string {
	return strings.Join([]string{t.Cell.Topology, t.Cell.Method, t.Cell.Case, t.Class, fmt.Sprint(t.Success)}, "|")
}

// claim reports whether t is the first of its kind (and so keeps its pcaps).
func (e *evidenceSet) claim(t *Trial) bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := evidenceKey(t)
	if e.kept[k] {
		return false
	}
	e.kept[k] = true
	return true
}

// Run executes every trial of spec not already in opts.Out (so an
// interrupted run resumes), in parallel labs, appending to trials.jsonl.
func Run(ctx context.Context, spec *Spec, opts Options) (*RunInfo, error) {
	cells, err := spec.Cells()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(opts.Out, TrialsFile)
	// Resume only trials made by this very code and spec; anything else
	// starts afresh, so results/ always comes from one version.
	var prevInfo RunInfo
	if readJSON(filepath.Join(opts.Out, "run.json"), &prevInfo) &&
		(prevInfo.CodeVersion != codeVersion() || prevInfo.Spec == nil || prevInfo.Spec.Hash != spec.Hash) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "results in %s come from code %s; starting afresh with %s\n", opts.Out, prevInfo.CodeVersion, codeVersion())
		}
		os.Remove(path)
		os.RemoveAll(filepath.Join(opts.Out, "pcaps"))
	}
	done := map[string]bool{}
	opts.evidence = &evidenceSet{kept: map[string]bool{}}
	prev, err := LoadTrials(path)
	if err != nil {
		return nil, err
	}
	for _, t := range prev {
		done[t.ID] = true
		if len(t.Pcaps) > 0 {
			opts.evidence.kept[evidenceKey(t)] = true
		}
	}
	info := &RunInfo{Spec: spec, CodeVersion: codeVersion(), Kernel: kernel(), GoVersion: runtime.Version(),
		Started: time.Now().UTC(), Resumed: len(prev), CPUs: runtime.NumCPU()}
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(opts.Out, "run.json"), b, 0o644)
	}
	type job struct {
		cell Cell
		rep  int
	}
	var jobs []job
	maxReps := spec.Repetitions
	for _, c := range cells {
		maxReps = max(maxReps, c.Reps)
	}
	for rep := 0; rep < maxReps; rep++ {
		for _, c := range cells {
			reps := spec.Repetitions
			if c.Reps > 0 {
				reps = c.Reps
			}
			if rep < reps && !done[fmt.Sprintf("%s #%d", c.Key(), rep)] {
				jobs = append(jobs, job{c, rep})
			}
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	workers := spec.Workers
	if opts.Workers > 0 {
		workers = opts.Workers
	}
	info.Workers = workers
	// Impaired trials run after the rest, with fewer labs at once: every
	// packet of an impaired link is released by this process, and 40
	// busy labs on two CPUs add tens of milliseconds to a 30 ms path.
	var plain, impaired []job
	for _, j := range jobs {
		if j.cell.Case != "" {
			impaired = append(impaired, j)
		} else {
			plain = append(plain, j)
		}
	}
	var mu sync.Mutex
	total := len(jobs)
	finished := 0
	runJobs := func(jobs []job, workers int) {
		ch := make(chan job)
		var wg sync.WaitGroup
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := &worker{id: i, opt: &opts, labs: map[string]*natlab.Lab{}, cases: map[*natlab.Lab]string{}}
				defer w.close()
				for j := range ch {
					var t *Trial
					var err error
					for try := 0; try < 2; try++ {
						tctx, cancel := context.WithTimeout(ctx, spec.Deadline+20*time.Second)
						t, err = w.runTrial(tctx, spec, j.cell, j.rep)
						cancel()
						if err == nil || ctx.Err() != nil {
							break
						}
						// A lab problem, not an outcome: rebuild and try once more.
						if opts.Log != nil {
							fmt.Fprintf(opts.Log, "trial %s #%d: %v (rebuilding the lab)\n", j.cell.Key(), j.rep, err)
						}
						w.close()
						w.labs = map[string]*natlab.Lab{}
						w.cases = map[*natlab.Lab]string{}
					}
					mu.Lock()
					finished++
					if err != nil {
						if ctx.Err() != nil {
							mu.Unlock()
							continue
						}
						// Twice unable to run: recorded as a lab error, not an outcome.
						t = &Trial{ID: fmt.Sprintf("%s #%d", j.cell.Key(), j.rep), Cell: j.cell, Rep: j.rep, Start: time.Now().UTC(),
							LabError: err.Error(), Class: "lab-error", Agree: true}
						w.close()
						w.labs = map[string]*natlab.Lab{}
						w.cases = map[*natlab.Lab]string{}
					}
					b, _ := json.Marshal(t)
					_, _ = f.Write(append(b, '\n'))
					if opts.Log != nil {
						verdict := "FAIL"
						if t.Success {
							verdict = "ok  "
						}
						agree := ""
						if !t.Agree {
							agree = "  DISAGREES WITH MODEL"
						}
						fmt.Fprintf(opts.Log, "[%d/%d] %s %s %s (%s)%s\n", finished, total, verdict, t.ID, t.Class, t.Method, agree)
					}
					mu.Unlock()
				}
			}()
		}
		for _, j := range jobs {
			select {
			case ch <- j:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
		close(ch)
		wg.Wait()
	}
	runJobs(plain, workers)
	if ctx.Err() == nil {
		runJobs(impaired, min(workers, spec.ImpairedWorkers))
	}
	info.Finished = time.Now().UTC()
	all, _ := LoadTrials(path)
	info.Trials = len(all)
	b, _ := json.MarshalIndent(info, "", "  ")
	_ = os.WriteFile(filepath.Join(opts.Out, "run.json"), b, 0o644)
	if ctx.Err() != nil {
		return info, ctx.Err()
	}
	return info, nil
}
