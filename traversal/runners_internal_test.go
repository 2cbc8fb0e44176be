package traversal

import (
	"testing"

	"github.com/machsend/machsend/traversal/method"
)

// Every row of method.Table runs: the relay in do, every other method
// through runners; runners has nothing the table does not list.
func TestEveryMethodRuns(t *testing.T) {
	for _, s := range method.Table {
		run, ok := runners[s.Method]
		if !ok || (run == nil && s.Method != method.Relay) {
			t.Errorf("method %s has no run function", s.Method)
		}
	}
	for m := range runners {
		if _, ok := method.Lookup(m); !ok {
			t.Errorf("runner for %s, which method.Table does not list", m)
		}
	}
}

// Auto's schedule is the table: every method appears with its AutoRounds.
func TestScheduleFromTable(t *testing.T) {
	count := map[Method]int{}
	for _, phase := range schedule(method.Auto, 0, false) {
		for _, c := range phase {
			for _, a := range c.attempts {
				count[a.Method]++
			}
		}
	}
	for _, s := range method.Table {
		if count[s.Method] != s.AutoRounds {
			t.Errorf("%s: %d attempts in auto's schedule, table says %d", s.Method, count[s.Method], s.AutoRounds)
		}
	}
}
