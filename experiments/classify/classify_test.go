package classify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/spec"
)

// The classifier names each failure class (and successes) correctly from
// recorded pcaps: one recorded trial per class in testdata/classify/<class>.
func TestClassifyRecordedPcaps(t *testing.T) {
	dirs, err := filepath.Glob("testdata/classify/*")
	if err != nil || len(dirs) < 6 {
		t.Fatalf("testdata missing: %v %v", dirs, err)
	}
	for _, dir := range dirs {
		want := strings.Replace(filepath.Base(dir), "success-", "success/", 1)
		t.Run(want, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, "trial.json"))
			if err != nil {
				t.Fatal(err)
			}
			var tr spec.Trial
			if err := json.Unmarshal(b, &tr); err != nil {
				t.Fatal(err)
			}
			got, notes, err := ClassifyDir(&tr, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("classified %s, want %s: %v", got, want, notes)
			}
			if !strings.HasPrefix(want, "success") && len(notes) == 0 {
				t.Error("a failure without an explanation")
			}
			for _, n := range notes {
				if !strings.Contains(n, "t+") && !strings.Contains(n, "predicted port") && !strings.Contains(n, "authentication") {
					t.Errorf("note without a time: %q", n)
				}
			}
		})
	}
}
