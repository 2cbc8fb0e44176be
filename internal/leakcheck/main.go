// Command leakcheck runs a command (the whole test suite) between two
// snapshots of the root network namespace and of the lab namespaces, and
// fails if anything changed: the proof that no test leaked a namespace, a
// netfilter rule, a link or a route.
//
//	go run ./internal/leakcheck -- go test ./...
package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/natlabtest"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: leakcheck -- CMD [ARG...]")
		os.Exit(2)
	}
	privileged := natlab.Preflight() == nil
	var before string
	if privileged {
		var err error
		if before, err = natlabtest.RootSnapshot(true); err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck:", err)
			os.Exit(1)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	if privileged {
		after, err := natlabtest.RootSnapshot(true)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck:", err)
			os.Exit(1)
		}
		if after != before {
			fmt.Fprintf(os.Stderr, "leakcheck: LEAK: the root namespace or the set of lab namespaces changed\n--- before\n%s\n--- after\n%s\n", before, after)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "leakcheck: root namespace (ruleset, links, addresses, routes, rules) and lab namespaces identical before and after")
	} else {
		fmt.Fprintln(os.Stderr, "leakcheck: not root, nothing to compare")
	}
	if runErr != nil {
		if ee, ok := runErr.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "leakcheck:", runErr)
		os.Exit(1)
	}
}
