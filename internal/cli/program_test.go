package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// testProgram has a command that succeeds, one that fails, one that
// reports a usage error and a hidden one.
func testProgram(out, errOut *bytes.Buffer) *Program {
	ok := func(fs *flag.FlagSet) func([]string) error {
		n := fs.Int("n", 1, "how many")
		fs.String("name", "", "a `NAME` to use")
		return func(args []string) error {
			out.WriteString(strings.Repeat("ok ", *n))
			return nil
		}
	}
	fails := func(fs *flag.FlagSet) func([]string) error {
		return func([]string) error { return errors.New("it broke") }
	}
	usage := func(fs *flag.FlagSet) func([]string) error {
		return func(args []string) error { return Usagef("want FILE, got %d arguments", len(args)) }
	}
	code := func(fs *flag.FlagSet) func([]string) error {
		return func([]string) error { return ExitCode(3) }
	}
	return &Program{Name: "prog", Summary: "a test program", Version: "v1.2.3", Stdout: out, Stderr: errOut,
		Commands: []*Command{
			{Name: "ok", Args: "[X]", Summary: "succeeds", Setup: ok},
			{Name: "fails", Summary: "fails", Setup: fails},
			{Name: "usage", Args: "FILE", Summary: "wants a file", Setup: usage},
			{Name: "code", Summary: "exits 3", Setup: code},
			{Name: "secret", Summary: "internal", Setup: fails, Hidden: true},
		}}
}

func TestProgram(t *testing.T) {
	tests := []struct {
		args           string
		code           int
		stdout, stderr string // substrings ("" : must be empty)
	}{
		{"", ExitUsage, "", "usage: prog COMMAND"},
		{"-h", ExitOK, "usage: prog COMMAND", ""},
		{"--help", ExitOK, "ok     succeeds", ""},
		{"help", ExitOK, "usage  wants a file", ""},
		{"help ok", ExitOK, "usage: prog ok [flags] [X]", ""},
		{"help nope", ExitUsage, "", `unknown command "nope"`},
		{"help ok fails", ExitUsage, "", "one command at a time"},
		{"ok -h", ExitOK, "--name NAME", ""},
		{"ok --help", ExitOK, "-n int (default 1)", ""},
		{"ok", ExitOK, "ok ", ""},
		{"ok --n 2", ExitOK, "ok ok ", ""},
		{"ok --bogus", ExitUsage, "", "prog ok: flag provided but not defined: -bogus\nRun 'prog help ok' for usage."},
		{"ok --n x", ExitUsage, "", "invalid value"},
		{"fails", ExitError, "", "prog: it broke"},
		{"usage", ExitUsage, "", "prog usage: want FILE, got 0 arguments\nRun 'prog help usage'"},
		{"code", 3, "", ""},
		{"nope", ExitUsage, "", `prog: unknown command "nope"`},
		{"version", ExitOK, "prog v1.2.3", ""},
		{"--version", ExitOK, "prog v1.2.3", ""},
		{"completion bash", ExitOK, "complete -o filenames -F _prog prog", ""},
		{"completion zsh", ExitOK, "bashcompinit", ""},
		{"completion fish", ExitUsage, "", "unknown shell"},
		{"man", ExitOK, ".TH PROG 1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			var out, errOut bytes.Buffer
			p := testProgram(&out, &errOut)
			code := p.Run(strings.Fields(tc.args))
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errOut.String())
			}
			for _, c := range []struct {
				name, got, want string
			}{{"stdout", out.String(), tc.stdout}, {"stderr", errOut.String(), tc.stderr}} {
				if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
					t.Errorf("%s = %q, want it to contain %q", c.name, c.got, c.want)
				}
			}
			if strings.Contains(out.String(), "secret") || strings.Contains(errOut.String(), "secret") {
				t.Error("a hidden command was listed")
			}
		})
	}
}

// TestGeneratedFromTheCommands: help, completion and the man page list
// every visible command and every flag.
func TestGeneratedFromTheCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	p := testProgram(&out, &errOut)
	comp, _ := p.Completion("bash")
	man := p.ManPage()
	p.usage(&out)
	for _, c := range p.visible() {
		for name, doc := range map[string]string{"help": out.String(), "completion": comp, "man": man} {
			if !strings.Contains(doc, c.Name) {
				t.Errorf("%s lacks command %s", name, c.Name)
			}
		}
	}
	for _, f := range []string{"--n", "--name"} {
		if !strings.Contains(comp, f) || !strings.Contains(man, strings.ReplaceAll(f, "-", `\-`)) {
			t.Errorf("flag %s missing from completion or man page", f)
		}
	}
}

func TestRoff(t *testing.T) {
	for in, want := range map[string]string{".start": `\&.start`, "a-b": `a\-b`, `back\slash`: `back\eslash`, "'quote": `\&'quote`} {
		if got := roff(in); got != want {
			t.Errorf("roff(%q) = %q, want %q", in, got, want)
		}
	}
}
