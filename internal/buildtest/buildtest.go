// Package buildtest builds the project's commands for tests that run the
// real binaries (in labs or on loopback).
package buildtest

import (
	"os/exec"
	"strings"
	"testing"
)

// Commands builds the named commands of cmd/ (machsend, rendezvous, ...)
// into a directory removed when the test ends, and returns it. A build
// failure fails the test.
func Commands(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir}
	for _, n := range names {
		args = append(args, "github.com/machsend/machsend/cmd/"+n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", strings.Join(names, ", "), err, out)
	}
	return dir
}
