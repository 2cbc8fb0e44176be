package experiments

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
)

// shardRun is one shard's results directory, read back.
type shardRun struct {
	dir    string
	info   spec.RunInfo
	trials []*spec.Trial
}

func readShard(dir string) (*shardRun, error) {
	s := &shardRun{dir: dir}
	if !spec.ReadJSON(filepath.Join(dir, "run.json"), &s.info) || s.info.Spec == nil {
		return nil, fmt.Errorf("%s: no run.json with a spec (is it the --out of experiment run?)", dir)
	}
	t, err := spec.LoadTrials(filepath.Join(dir, spec.TrialsFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	s.trials = t
	return s, nil
}

// Merge joins shards' results directories into out: they must come from
// one spec (its hash) and one code version, and hold every trial of the
// spec exactly once between them (it says which are missing or
// duplicated). It writes out's trials.jsonl in the spec's trial order, a
// run.json naming the shards, and the shards' captures, so that
// experiment report reads out like a single run.
func Merge(out string, dirs []string) (*spec.RunInfo, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: name the shards' results directories")
	}
	var runs []*shardRun
	for _, d := range dirs {
		r, err := readShard(d)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if first := runs; len(first) > 0 {
			a, b := first[0].info, r.info
			if a.Spec.Hash != b.Spec.Hash || a.CodeVersion != b.CodeVersion {
				return nil, fmt.Errorf("merge: %s ran spec %.12s at code %s, but %s ran spec %.12s at code %s: shards must come from one spec and one commit",
					first[0].dir, a.Spec.Hash, a.CodeVersion, d, b.Spec.Hash, b.CodeVersion)
			}
		}
		runs = append(runs, r)
	}
	ordered, err := coverage(runs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := writeTrials(filepath.Join(out, spec.TrialsFile), ordered); err != nil {
		return nil, err
	}
	for _, r := range runs {
		if err := copyTree(filepath.Join(r.dir, "pcaps"), filepath.Join(out, "pcaps")); err != nil {
			return nil, fmt.Errorf("merge: captures of %s: %w", r.dir, err)
		}
	}
	info := mergedInfo(runs, len(ordered))
	writeRunInfo(out, info)
	return info, nil
}

// coverage checks that the shards hold every trial of their spec exactly
// once and returns them in the spec's order.
func coverage(runs []*shardRun) ([]*spec.Trial, error) {
	sp := runs[0].info.Spec
	cells, err := sp.Cells()
	if err != nil {
		return nil, fmt.Errorf("merge: the shards' spec: %w", err)
	}
	byID := map[string]*spec.Trial{}
	where := map[string]string{}
	var dups []string
	for _, r := range runs {
		for _, t := range r.trials {
			if prev, ok := where[t.ID]; ok {
				dups = append(dups, fmt.Sprintf("%s (in %s and %s)", t.ID, prev, r.dir))
				continue
			}
			byID[t.ID], where[t.ID] = t, r.dir
		}
	}
	var ordered []*spec.Trial
	var missing []string
	for _, j := range allJobs(sp, cells) {
		id := TrialID(j.cell, j.rep)
		if t := byID[id]; t != nil {
			ordered = append(ordered, t)
			delete(byID, id)
		} else {
			missing = append(missing, id)
		}
	}
	var extra []string
	for id := range byID {
		extra = append(extra, id)
	}
	if len(missing)+len(dups)+len(extra) > 0 {
		return nil, fmt.Errorf("merge: the shards do not cover the spec exactly once: %d missing%s, %d duplicated%s, %d not in the spec%s",
			len(missing), some(missing), len(dups), some(dups), len(extra), some(extra))
	}
	return ordered, nil
}

// some lists up to five items after a colon.
func some(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	if len(xs) > 5 {
		xs = append(xs[:5:5], "...")
	}
	return " (" + strings.Join(xs, "; ") + ")"
}

func writeTrials(path string, trials []*spec.Trial) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, t := range trials {
		if err := enc.Encode(t); err != nil {
			f.Close()
			return fmt.Errorf("merge: write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("merge: write %s: %w", path, err)
	}
	return nil
}

// mergedInfo describes the merged run: the shards' spec and code, the
// earliest start and latest finish, and every shard's parallelism.
func mergedInfo(runs []*shardRun, trials int) *spec.RunInfo {
	info := runs[0].info
	info.Shard, info.Shards, info.Parallel, info.Resumed, info.CPUs, info.Workers = "", nil, nil, 0, 0, 0
	for _, r := range runs {
		i := r.info
		if i.Started.Before(info.Started) {
			info.Started = i.Started
		}
		if i.Finished.After(info.Finished) {
			info.Finished = i.Finished
		}
		info.Shards = append(info.Shards, i.Shard)
		info.Parallel = append(info.Parallel, i.Parallel...)
		info.Resumed += i.Resumed
		info.CPUs += i.CPUs
		info.Workers += i.Workers
	}
	info.Trials = trials
	return &info
}

// copyTree copies the files under src into dst, keeping the first copy of
// a file that two shards both have (one exemplar per outcome class).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && p == src {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if _, err := os.Stat(target); err == nil {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
