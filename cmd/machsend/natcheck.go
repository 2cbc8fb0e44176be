package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/internal/names"
	"github.com/machsend/machsend/session"

	"github.com/machsend/machsend/natcheck"
)

// setupNATCheck characterises the NAT this host is behind (package natcheck)
// and prints it as a table with a verdict, as JSON, or as a natlab profile.
func setupNATCheck(fs *flag.FlagSet) func([]string) error {
	server := fs.String("server", "", "rendezvous server HOST:PORT (default $MACHSEND_SERVER)")
	asJSON := fs.Bool("json", false, "print the result as one JSON event")
	profile := fs.String("profile", "", "also write the result as a natlab profile (YAML) to this file")
	name := fs.String("name", "my-router", "name of the written profile")
	maxTrans := fs.Duration("max-transitory", 10*time.Second, "longest transitory timer to measure (the probe takes this long)")
	timeout := fs.Duration("probe-timeout", 1500*time.Millisecond, "how long one probe waits for an answer")
	quick := fs.Bool("quick", false, "only mapping and port allocation")
	return func(pos []string) error {
		if *maxTrans < time.Second || *maxTrans > 5*time.Minute {
			return cli.Usagef("--max-transitory %v outside 1s..5m", *maxTrans)
		}
		if *timeout < 100*time.Millisecond || *timeout > 5*time.Second {
			return cli.Usagef("--probe-timeout %v outside 100ms..5s", *timeout)
		}
		if *profile != "" && !names.Valid(*name) {
			return cli.Usagef("--name %q: use lower-case letters, digits and '-' (at most 40)", *name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *maxTrans+40*time.Second)
		defer cancel()
		ap, err := serverFrom(ctx, *server)
		if err != nil {
			return err
		}
		r, err := natcheck.Run(ctx, natcheck.Options{Server: ap, MaxTransitory: *maxTrans, ProbeTimeout: *timeout, Quick: *quick})
		if err != nil {
			return err
		}
		if *profile != "" {
			if err := os.WriteFile(*profile, []byte(r.Profile(*name)), 0o644); err != nil {
				return fmt.Errorf("natcheck: write profile: %w", err)
			}
		}
		if *asJSON {
			return session.NewJSONWriter(os.Stdout).Write(session.Event{Kind: session.KindNATCheck, NATCheck: r, Verdicts: r.Verdicts()})
		}
		if err := r.WriteTable(os.Stdout); err != nil {
			return err
		}
		if !*quick {
			r.WriteVerdict(os.Stdout)
		}
		if *profile != "" {
			fmt.Printf("\nProfile written to %s: natlab up two-nat --nat nat-a=%s\n", *profile, *profile)
		}
		return nil
	}
}
