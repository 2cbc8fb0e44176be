package experiments

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
)

// Shard names one of N parts of a spec's trials: Index in [0, Count).
// The zero value (Count 0) is the whole spec.
type Shard struct {
	Index, Count int
}

// ParseShard reads "I/N" (0 <= I < N), as Slurm's array task id and count
// give it.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || b < 1 || a < 0 || a >= b {
		return Shard{}, fmt.Errorf("shard %q: want I/N with 0 <= I < N, for example 0/3", s)
	}
	return Shard{a, b}, nil
}

func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// TrialID is the id of repetition rep of cell c, as trials.jsonl holds it.
func TrialID(c spec.Cell, rep int) string { return fmt.Sprintf("%s #%d", c.Key(), rep) }

// allJobs lists every trial of the spec, repetition by repetition.
func allJobs(sp *spec.Spec, cells []spec.Cell) []job {
	plain, impaired := pendingJobs(sp, cells, nil)
	return append(plain, impaired...)
}

// cost is a job's expected run time in units, from what it is, not from
// the machine: an impaired case or a sweep offset runs on a slowed path,
// and a trial the model expects to fail waits out its attempts.
func cost(sp *spec.Spec, j job) int {
	c := 2
	if j.cell.Case != "" {
		c += 2
	}
	if p, err := sp.Predict(j.cell); err == nil && !p.Success {
		c += 3
	}
	return c
}

// assign maps every trial id of the spec to its shard out of n: jobs in
// decreasing expected cost (ties broken by a hash of the id) each go to
// the least loaded shard so far. The result depends only on the spec.
func assign(sp *spec.Spec, cells []spec.Cell, n int) map[string]int {
	type costed struct {
		id   string
		cost int
		tie  uint64
	}
	var js []costed
	for _, j := range allJobs(sp, cells) {
		id := TrialID(j.cell, j.rep)
		h := sha256.Sum256([]byte(id))
		js = append(js, costed{id, cost(sp, j), binary.BigEndian.Uint64(h[:8])})
	}
	slices.SortFunc(js, func(a, b costed) int {
		return cmp.Or(cmp.Compare(b.cost, a.cost), cmp.Compare(a.tie, b.tie), strings.Compare(a.id, b.id))
	})
	load := make([]int, n)
	out := make(map[string]int, len(js))
	for _, j := range js {
		best := 0
		for i := range load {
			if load[i] < load[best] {
				best = i
			}
		}
		out[j.id] = best
		load[best] += j.cost
	}
	return out
}

// shardJobs keeps, of each list of jobs, those of shard s (all of them
// for the zero shard); the assignment is computed once for all lists.
func shardJobs(sp *spec.Spec, cells []spec.Cell, s Shard, lists ...[]job) [][]job {
	if s.Count == 0 {
		return lists
	}
	owner := assign(sp, cells, s.Count)
	out := make([][]job, len(lists))
	for i, jobs := range lists {
		for _, j := range jobs {
			if owner[TrialID(j.cell, j.rep)] == s.Index {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}
