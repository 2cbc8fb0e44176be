package experiments

import (
	"testing"
)

// The paper matrix's impaired trials run the methods of one pair, case
// and repetition one after another, so that the methods compared in a
// case run beside each other and share its load: every (pair, case,
// repetition) is one contiguous run holding each of its methods once, and
// an auto trial has at most one other auto among the workers' worth of
// trials before it (the one of the previous case, when a case has fewer
// methods than there are workers), where the order of the cells put three.
func TestImpairedJobsMixMethods(t *testing.T) {
	sp, cells := paperSpec(t)
	_, impaired := pendingJobs(sp, cells, map[string]bool{})
	if len(impaired) == 0 {
		t.Fatal("no impaired jobs in the paper matrix")
	}
	type run struct {
		key string
		rep int
	}
	seen := map[run]bool{}
	methods := map[run]map[string]bool{}
	var prev run
	for i, j := range impaired {
		c := j.cell
		c.Method = ""
		r := run{c.Key(), j.rep}
		if i > 0 && r != prev && seen[r] {
			t.Fatalf("job %d: %s rep %d comes back after other cases", i, r.key, r.rep)
		}
		seen[r] = true
		if methods[r] == nil {
			methods[r] = map[string]bool{}
		}
		if methods[r][j.cell.Method] {
			t.Fatalf("job %d: %s twice in %s rep %d", i, j.cell.Method, r.key, r.rep)
		}
		methods[r][j.cell.Method] = true
		prev = r
	}
	window := min(sp.Workers, sp.ImpairedWorkers)
	for i, j := range impaired {
		if j.cell.Method != "auto" {
			continue
		}
		var beside []string
		for k := max(0, i-window+1); k < i; k++ {
			if impaired[k].cell.Method == "auto" {
				beside = append(beside, impaired[k].cell.Key())
			}
		}
		if len(beside) > 1 {
			t.Errorf("job %d (%s) runs beside %d other auto trials: %v", i, j.cell.Key(), len(beside), beside)
		}
	}
}
