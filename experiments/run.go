package experiments

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/natlab"
)

// CodeVersion names the commit the binaries come from (spec.CodeVersion).
func CodeVersion() string { return spec.CodeVersion() }

func Kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// evidenceSet remembers which outcome classes already have their captures
// kept: one exemplar per topology, method, case and class.
type evidenceSet struct {
	mu   sync.Mutex
	kept map[string]bool
}

func evidenceKey(t *spec.Trial) string {
	return strings.Join([]string{t.Cell.Topology, t.Cell.Method, t.Cell.Case, t.Class, fmt.Sprint(t.Success)}, "|")
}

// claim reports whether t is the first of its kind (and so keeps its pcaps).
func (e *evidenceSet) claim(t *spec.Trial) bool {
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
func Run(ctx context.Context, sp *spec.Spec, opts Options) (*spec.RunInfo, error) {
	// The model predicts for the attempts the trials make: one budget.
	if opts.AttemptTimeout > 0 {
		sp.AttemptTimeout = opts.AttemptTimeout
	}
	opts.AttemptTimeout = sp.AttemptTimeout
	cells, err := sp.Cells()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(opts.Out, spec.TrialsFile)
	version := CodeVersion()
	done, resumed, err := resume(sp, &opts, path, version)
	if err != nil {
		return nil, err
	}
	info := &spec.RunInfo{Spec: sp, CodeVersion: version, Kernel: Kernel(), GoVersion: runtime.Version(),
		Started: time.Now().UTC(), Resumed: resumed, CPUs: runtime.NumCPU(), Workers: sp.Workers,
		NoiseBoundMs: float64(opts.noiseBound().Microseconds()) / 1000, Shard: opts.Shard.String()}
	if opts.Workers > 0 {
		info.Workers = opts.Workers
	}
	writeRunInfo(opts.Out, info)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Impaired trials run after the rest, with fewer labs at once: every
	// packet of an impaired link is released by this process, and 40
	// busy labs on two CPUs add tens of milliseconds to a 30 ms path.
	plain, impaired := pendingJobs(sp, cells, done)
	kept := shardJobs(sp, cells, opts.Shard, plain, impaired)
	plain, impaired = kept[0], kept[1]
	r := &runner{ctx: ctx, spec: sp, opts: &opts, out: f, total: len(plain) + len(impaired)}
	r.runJobs(plain, info.Workers)
	if ctx.Err() == nil {
		r.runJobs(impaired, min(info.Workers, sp.ImpairedWorkers))
	}
	info.Finished = time.Now().UTC()
	info.Parallel = r.parallel
	all, _ := spec.LoadTrials(path)
	info.Trials = len(all)
	writeRunInfo(opts.Out, info)
	return info, ctx.Err()
}

func writeRunInfo(out string, info *spec.RunInfo) {
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(out, "run.json"), b, 0o644)
	}
}

// resume keeps only trials made by this very code and spec (anything else
// starts afresh, so results/ always comes from one version) and returns
// the IDs of the trials already done and how many there are.
func resume(sp *spec.Spec, opts *Options, path, version string) (map[string]bool, int, error) {
	var prevInfo spec.RunInfo
	if spec.ReadJSON(filepath.Join(opts.Out, "run.json"), &prevInfo) &&
		(prevInfo.CodeVersion != version || prevInfo.Spec == nil || prevInfo.Spec.Hash != sp.Hash || prevInfo.Shard != opts.Shard.String()) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "results in %s come from code %s (shard %q); starting afresh with %s (shard %q)\n", opts.Out, prevInfo.CodeVersion, prevInfo.Shard, version, opts.Shard)
		}
		os.Remove(path)
		os.RemoveAll(filepath.Join(opts.Out, "pcaps"))
	}
	done := map[string]bool{}
	opts.evidence = &evidenceSet{kept: map[string]bool{}}
	prev, err := spec.LoadTrials(path)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range prev {
		done[t.ID] = true
		if len(t.Pcaps) > 0 {
			opts.evidence.kept[evidenceKey(t)] = true
		}
	}
	return done, len(prev), nil
}

// job is one repetition of one cell.
type job struct {
	cell spec.Cell
	rep  int
}

// pendingJobs lists the trials not done yet, repetition by repetition (so
// an interrupted run has covered every cell evenly), unimpaired apart.
func pendingJobs(sp *spec.Spec, cells []spec.Cell, done map[string]bool) (plain, impaired []job) {
	maxReps := sp.Repetitions
	for _, c := range cells {
		maxReps = max(maxReps, c.Reps)
	}
	for rep := 0; rep < maxReps; rep++ {
		for _, c := range cells {
			reps := sp.Repetitions
			if c.Reps > 0 {
				reps = c.Reps
			}
			if rep >= reps || done[TrialID(c, rep)] {
				continue
			}
			if c.Case != "" {
				impaired = append(impaired, job{c, rep})
			} else {
				plain = append(plain, job{c, rep})
			}
		}
	}
	methodsInnermost(impaired)
	return plain, impaired
}

// methodsInnermost orders impaired jobs repetition by repetition, then by
// pair and case, then by method (each in the order first met): workers
// take consecutive jobs, so a trial runs beside the other methods of its
// own pair and case, whatever its method, and the methods compared in a
// case share its conditions and its load. In the order the cells are
// listed (method before case), a method's trials ran beside its own
// trials of the other cases: auto, nine attempts a trial, beside three
// more autos (median, at rtt-30ms) and p2pnat beside none, which made
// auto look a round trip slower than the single methods it runs.
func methodsInnermost(jobs []job) {
	rank := map[string]int{}
	pairCase := func(j job) string {
		c := j.cell
		c.Method = ""
		return c.Key()
	}
	for _, j := range jobs {
		if _, ok := rank[pairCase(j)]; !ok {
			rank[pairCase(j)] = len(rank)
		}
	}
	slices.SortStableFunc(jobs, func(a, b job) int {
		return cmp.Or(cmp.Compare(a.rep, b.rep), cmp.Compare(rank[pairCase(a)], rank[pairCase(b)]))
	})
}

// runner runs jobs on workers, each with its own labs, and appends every
// trial to the trials file as it ends.
type runner struct {
	ctx  context.Context
	spec *spec.Spec
	opts *Options

	limit *limiter // the current stage's (set before its workers start)

	mu       sync.Mutex // guards out, finished and parallel
	out      *os.File
	finished int
	total    int
	parallel []spec.Parallelism
}

func (r *runner) runJobs(jobs []job, workers int) {
	r.limit = newLimiter(workers)
	defer func() {
		r.mu.Lock()
		r.parallel = append(r.parallel, spec.Parallelism{Max: workers, Lowest: r.limit.lowest, Changes: r.limit.changes})
		r.mu.Unlock()
	}()
	ch := make(chan job)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{id: i, opt: r.opts, labs: map[string]*natlab.Lab{}, cases: map[*natlab.Lab]string{}}
			defer w.close()
			for j := range ch {
				r.limit.acquire()
				t := r.trial(w, j)
				r.limit.release(t != nil && t.Noisy)
				if t != nil {
					r.record(t)
				}
			}
		}()
	}
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-r.ctx.Done():
		}
		if r.ctx.Err() != nil {
			break
		}
	}
	close(ch)
	wg.Wait()
}

// trial runs one job, rebuilding the worker's labs and trying once more on
// a lab problem; twice unable to run, it is recorded as a lab error, not an
// outcome. It returns nil when the run was stopped.
func (r *runner) trial(w *worker, j job) *spec.Trial {
	var err error
	for try := 0; try < 2; try++ {
		tctx, cancel := context.WithTimeout(r.ctx, r.spec.Deadline+20*time.Second)
		t, terr := w.runTrial(tctx, r.spec, j.cell, j.rep)
		cancel()
		if terr == nil {
			return t
		}
		if err = terr; r.ctx.Err() != nil {
			return nil
		}
		if try == 0 && r.opts.Log != nil {
			fmt.Fprintf(r.opts.Log, "trial %s #%d: %v (rebuilding the lab)\n", j.cell.Key(), j.rep, err)
		}
		w.reset()
	}
	return &spec.Trial{ID: TrialID(j.cell, j.rep), Cell: j.cell, Rep: j.rep, Start: time.Now().UTC(),
		LabError: err.Error(), Class: "lab-error", Agree: true}
}

// record appends a trial to the trials file and logs it.
func (r *runner) record(t *spec.Trial) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished++
	b, _ := json.Marshal(t)
	_, _ = r.out.Write(append(b, '\n'))
	if r.opts.Log == nil {
		return
	}
	outcome := "failed   "
	if t.Success {
		outcome = "connected"
	}
	verdict := "as predicted"
	switch {
	case t.LabError != "":
		verdict = "lab error: " + t.LabError
	case !t.Modelled:
		verdict = "conditions outside the model"
	case !t.Agree:
		verdict = "AGAINST THE MODEL"
	}
	noisy := ""
	if t.Noisy {
		noisy = fmt.Sprintf(", noisy (%.1f ms)", t.NoiseMs)
	}
	fmt.Fprintf(r.opts.Log, "[%d/%d] %s %s: %s (%s)%s\n", r.finished, r.total, outcome, t.ID, t.Class, verdict, noisy)
}
