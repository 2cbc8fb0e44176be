package experiments

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/spec"
)

func paperSpec(t *testing.T) (*spec.Spec, []spec.Cell) {
	t.Helper()
	sp, err := spec.LoadSpec("paper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cells, err := sp.Cells()
	if err != nil {
		t.Fatal(err)
	}
	return sp, cells
}

// Every trial of the paper matrix goes to exactly one shard, the same one
// every time, and the shards' expected costs differ by at most one trial's.
func TestShardsCoverOnceAndBalance(t *testing.T) {
	sp, cells := paperSpec(t)
	jobs := allJobs(sp, cells)
	for _, n := range []int{1, 3, 7} {
		seen := map[string]int{}
		load := make([]int, n)
		maxCost := 0
		for i := 0; i < n; i++ {
			for _, j := range shardJobs(sp, cells, Shard{i, n}, jobs)[0] {
				seen[TrialID(j.cell, j.rep)]++
				c := cost(sp, j)
				load[i] += c
				maxCost = max(maxCost, c)
			}
		}
		if len(seen) != len(jobs) {
			t.Errorf("%d shards hold %d distinct trials, the spec has %d", n, len(seen), len(jobs))
		}
		for id, k := range seen {
			if k != 1 {
				t.Errorf("%d shards: %s in %d shards", n, id, k)
			}
		}
		lo, hi := load[0], load[0]
		for _, l := range load {
			lo, hi = min(lo, l), max(hi, l)
		}
		if hi-lo > maxCost {
			t.Errorf("%d shards: loads %v differ by more than one trial (%d)", n, load, maxCost)
		}
	}
	a, b := assign(sp, cells, 5), assign(sp, cells, 5)
	for id, s := range a {
		if b[id] != s {
			t.Fatalf("%s: shard %d, then %d", id, s, b[id])
		}
	}
}

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"0/3", true}, {"2/3", true}, {"3/3", false}, {"-1/3", false}, {"1/0", false}, {"1", false}, {"a/b", false}} {
		if _, err := ParseShard(c.in); (err == nil) != c.ok {
			t.Errorf("ParseShard(%q): %v", c.in, err)
		}
	}
}

// Merging shards' directories gives the spec's trials in order; a missing
// trial, a duplicated one and a shard of another spec are each refused
// with words that name them.
func TestMerge(t *testing.T) {
	sp, cells := paperSpec(t)
	jobs := allJobs(sp, cells)
	write := func(shard Shard, keep func(i int) bool, hash string) string {
		dir := t.TempDir()
		var b strings.Builder
		for i, j := range shardJobs(sp, cells, shard, jobs)[0] {
			if keep(i) {
				line, _ := json.Marshal(&spec.Trial{ID: TrialID(j.cell, j.rep), Cell: j.cell, Rep: j.rep})
				b.Write(append(line, '\n'))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, spec.TrialsFile), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		s := *sp
		s.Hash = hash
		writeRunInfo(dir, &spec.RunInfo{Spec: &s, CodeVersion: "abc", Shard: shard.String()})
		return dir
	}
	all := func(int) bool { return true }
	good := []string{write(Shard{0, 2}, all, sp.Hash), write(Shard{1, 2}, all, sp.Hash)}
	out := t.TempDir()
	info, err := Merge(out, good)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil || len(merged) != len(jobs) || info.Trials != len(jobs) || len(info.Shards) != 2 {
		t.Fatalf("merged %d trials (%v), info %+v; want %d", len(merged), err, info.Shards, len(jobs))
	}
	for i, j := range jobs {
		if merged[i].ID != TrialID(j.cell, j.rep) {
			t.Fatalf("trial %d is %s, want %s (the spec's order)", i, merged[i].ID, TrialID(j.cell, j.rep))
		}
	}
	cases := []struct {
		name string
		dirs []string
		want string
	}{
		{"missing", []string{good[0], write(Shard{1, 2}, func(i int) bool { return i > 0 }, sp.Hash)}, "1 missing"},
		{"duplicated", []string{good[0], good[1], good[1]}, "duplicated"},
		{"another spec", []string{good[0], write(Shard{1, 2}, all, "other")}, "one spec and one commit"},
	}
	for _, c := range cases {
		if _, err := Merge(t.TempDir(), c.dirs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want it to say %q", c.name, err, c.want)
		}
	}
}
