// Package cli holds what the project's commands share about their command
// lines.
package cli

import "flag"

// Parse parses fs from args where flags may come before or after the
// positional arguments ("run SPEC --out DIR" as well as "run --out DIR
// SPEC"), and returns the positional arguments in order. Everything after
// a "--" is positional, verbatim, even if it looks like a flag.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag.Parse swallows a "--" that ends the flags: what follows it
		// is positional as it stands.
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
