package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/natlab/check"
)

// The profiles section is computed from profiles.json: the IPv4 knobs
// that matched, each IPv6 reading, a mark where one differs from the
// profile, and the count of differing readings.
func TestReportProfiles(t *testing.T) {
	dir := t.TempDir()
	reps := []check.Report{
		{Profile: "port-restricted-cone", Results: []check.Result{
			{Knob: "mapping", Configured: "endpoint-independent", Observed: "endpoint-independent", OK: true},
			{Knob: "filtering", Configured: "address-and-port-dependent", Observed: "address-and-port-dependent", OK: true},
			{Knob: "filtering (IPv6)", Configured: "address-and-port-dependent", Observed: "address-and-port-dependent", OK: true},
			{Knob: "unsolicited-syn (IPv6)", Configured: "drop", Observed: "silent", OK: true},
			{Knob: "simultaneous-open (IPv6)", Configured: "accept", Observed: "drop", OK: false},
		}},
		{Profile: "none", Results: []check.Result{
			{Knob: "nat", Configured: "off", Observed: "off", OK: true},
			{Knob: "firewall (IPv6)", Configured: "off", Observed: "off", OK: true},
		}},
	}
	b, err := json.Marshal(reps)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	reportProfiles(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, dir)
	for _, want := range []string{
		"2 profiles, 7 knob readings, 1 of them differing",
		"| port-restricted-cone | 2 of 2 | address-and-port-dependent | silent | drop ✗ (profile: accept) |",
		"| none | 1 of 1 | none (off) | - | - |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("section lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	reportProfiles(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, t.TempDir())
	if out.Len() != 0 {
		t.Errorf("a run without profiles.json got a section:\n%s", out.String())
	}
}
