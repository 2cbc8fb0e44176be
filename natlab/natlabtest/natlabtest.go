// Package natlabtest holds helpers for tests that build NAT labs: the root
// requirement (skip locally, fail under CI), a lab that removes itself when
// the test ends, and a snapshot of the root namespace to prove nothing leaked.
package natlabtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab"
)

// RequireRoot skips a test that needs root, network namespaces and the lab's
// tools when they are missing, saying why. Under CI (CI=true) a privileged
// test must run, so it fails instead of skipping.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if err := natlab.Preflight(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("privileged test cannot run under CI=true: %v", err)
		}
		tb.Skipf("skipping privileged test: %v", err)
	}
}

// New brings up a lab of the named topology with one profile for every NAT
// (or per-NAT profiles as "node=profile") and closes it when the test ends.
func New(tb testing.TB, topology string, profiles ...string) *natlab.Lab {
	tb.Helper()
	RequireRoot(tb)
	topo, err := natlab.LoadTopology(topology)
	if err != nil {
		tb.Fatal(err)
	}
	o := natlab.Options{Topology: topo, Profiles: map[string]*nat.Profile{}}
	for _, s := range profiles {
		node, name, per := strings.Cut(s, "=")
		if !per {
			name = node
		}
		p, err := nat.Load(name)
		if err != nil {
			tb.Fatal(err)
		}
		if per {
			o.Profiles[node] = p
		} else {
			o.Default = p
		}
	}
	l, err := natlab.Up(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("close lab %s: %v", l.Name, err)
		}
	})
	return l
}

// RootSnapshot describes the root network namespace (netfilter ruleset,
// links, addresses, routes, rules) and, with labs, every lab namespace that
// exists. Two snapshots around a test run must be byte-identical.
func RootSnapshot(labs bool) (string, error) {
	var b strings.Builder
	for _, c := range [][]string{
		{"nft", "list", "ruleset"},
		{"ip", "-d", "link", "show"},
		{"ip", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"ip", "rule", "show"},
	} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, out)
		}
		fmt.Fprintf(&b, "## %s\n%s\n", strings.Join(c, " "), out)
	}
	if !labs {
		return b.String(), nil
	}
	ents, _ := os.ReadDir("/run/netns")
	b.WriteString("## lab namespaces\n")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), natlab.NSPrefix) {
			fmt.Fprintln(&b, e.Name())
		}
	}
	return b.String(), nil
}

// LeakCheck runs a package's tests (m.Run) between two snapshots of the root
// namespace and fails the run if they differ or if a lab this process made
// is still recorded. (Other packages' tests run in parallel and make labs of
// their own, so the whole set of lab namespaces is compared only by
// internal/leakcheck around the whole suite.) Use it from TestMain.
func LeakCheck(run func() int) int {
	if natlab.Preflight() != nil {
		return run()
	}
	before, err := RootSnapshot(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leak check:", err)
		return 1
	}
	code := run()
	after, err := RootSnapshot(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leak check:", err)
		return 1
	}
	recs, _ := natlab.Records()
	for _, r := range recs {
		if r.OwnerPID == os.Getpid() {
			fmt.Fprintf(os.Stderr, "LEAK: lab %s (namespaces %v) was not closed\n", r.Lab, r.Namespaces)
			return 1
		}
	}
	if before != after {
		fmt.Fprintf(os.Stderr, "LEAK: the root namespace or lab namespaces changed during the tests\n--- before\n%s\n--- after\n%s\n", before, after)
		return 1
	}
	return code
}
