package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes of every machsend binary.
const (
	ExitOK    = 0 // done, or help was asked for
	ExitError = 1 // the command ran and failed
	ExitUsage = 2 // the command line is wrong: nothing was done
)

// Command is one subcommand: what help, completion and the man page show,
// and what it does.
type Command struct {
	Name    string
	Args    string // the positional arguments' synopsis, e.g. "PATH..."; "": none are accepted
	Summary string // one line
	Detail  string // more, for its help and the man page (optional)
	// Setup defines the command's flags on fs and returns what runs with
	// the positional arguments once they are parsed. Help, completion and
	// the man page call it only to list the flags.
	Setup func(fs *flag.FlagSet) func(args []string) error
	// Hidden commands (used by the binary itself) are not listed.
	Hidden bool
}

// Program is one binary's command line, the same for every machsend
// binary: help on stdout (-h, --help, help, help CMD, CMD -h), usage errors
// on stderr with exit 2, other errors on stderr with exit 1, --version,
// and shell completion and a man page generated from the same commands.
type Program struct {
	Name     string
	Summary  string
	Detail   string
	Version  string
	Commands []*Command
	// Single, if set, is the program's only job: it runs with all the
	// arguments (a server with flags and no subcommands).
	Single *Command

	Stdout, Stderr io.Writer // default os.Stdout, os.Stderr
}

// UsageError is an error in how the command was called (exit 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// Main runs the program with os.Args and exits with its code.
func (p *Program) Main() {
	os.Exit(p.Run(os.Args[1:]))
}

// Run runs the program with args (without the program's name) and returns
// the exit code.
func (p *Program) Run(args []string) int {
	if p.Stdout == nil {
		p.Stdout = os.Stdout
	}
	if p.Stderr == nil {
		p.Stderr = os.Stderr
	}
	if p.Single != nil {
		if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
			fmt.Fprintf(p.Stdout, "%s %s\n", p.Name, p.version())
			return ExitOK
		}
		if len(args) == 2 && args[0] == "completion" || len(args) == 1 && args[0] == "man" {
			return p.builtin(args)
		}
		return p.runCommand(p.Single, args)
	}
	if len(args) == 0 {
		p.usage(p.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		p.usage(p.Stdout)
		return ExitOK
	case "help":
		return p.help(args[1:])
	case "version", "--version", "-version":
		fmt.Fprintf(p.Stdout, "%s %s\n", p.Name, p.version())
		return ExitOK
	case "completion", "man":
		return p.builtin(args)
	}
	c := p.command(args[0])
	if c == nil {
		return p.usageError(nil, fmt.Errorf("unknown command %q", args[0]))
	}
	return p.runCommand(c, args[1:])
}

func (p *Program) version() string {
	if p.Version == "" {
		return "(devel)"
	}
	return p.Version
}

func (p *Program) command(name string) *Command {
	for _, c := range p.Commands {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// help answers help [CMD].
func (p *Program) help(args []string) int {
	switch {
	case len(args) == 0:
		p.usage(p.Stdout)
		return ExitOK
	case len(args) > 1:
		return p.usageError(nil, fmt.Errorf("help: one command at a time"))
	}
	c := p.command(args[0])
	if c == nil {
		return p.usageError(nil, fmt.Errorf("help: unknown command %q", args[0]))
	}
	p.commandHelp(p.Stdout, c)
	return ExitOK
}

// builtin runs completion SHELL and man.
func (p *Program) builtin(args []string) int {
	if args[0] == "man" {
		if len(args) != 1 {
			return p.usageError(nil, errors.New("man takes no arguments"))
		}
		fmt.Fprint(p.Stdout, p.ManPage())
		return ExitOK
	}
	if len(args) != 2 {
		return p.usageError(nil, errors.New("completion: name the shell (bash or zsh)"))
	}
	s, err := p.Completion(args[1])
	if err != nil {
		return p.usageError(nil, err)
	}
	fmt.Fprint(p.Stdout, s)
	return ExitOK
}

// runCommand parses c's flags and runs it.
func (p *Program) runCommand(c *Command, args []string) int {
	fs := p.flagSet(c)
	run := c.Setup(fs)
	pos, err := Parse(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		p.commandHelp(p.Stdout, c)
		return ExitOK
	case err != nil:
		return p.usageError(c, err)
	case c.Args == "" && len(pos) > 0:
		return p.usageError(c, fmt.Errorf("unexpected argument %q (this command takes flags only)", pos[0]))
	}
	err = run(pos)
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		return p.usageError(c, err)
	}
	var ec ExitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
	return ExitError
}

// ExitCode ends a command with that exit code and no message (a child's
// status passed on).
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (p *Program) flagSet(c *Command) *flag.FlagSet {
	fs := flag.NewFlagSet(p.fullName(c), flag.ContinueOnError)
	fs.SetOutput(io.Discard) // help and errors are printed here, once
	return fs
}

func (p *Program) fullName(c *Command) string {
	if c == p.Single {
		return p.Name
	}
	return p.Name + " " + c.Name
}

// usageError reports a usage error on stderr and where to read more.
func (p *Program) usageError(c *Command, err error) int {
	if c != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\nRun '%s' for usage.\n", p.fullName(c), err, p.helpFor(c))
	} else {
		fmt.Fprintf(p.Stderr, "%s: %v\nRun '%s help' for usage.\n", p.Name, err, p.Name)
	}
	return ExitUsage
}

func (p *Program) helpFor(c *Command) string {
	if c == p.Single {
		return p.Name + " --help"
	}
	return p.Name + " help " + c.Name
}

// usage prints the program's help: every command with its summary.
func (p *Program) usage(w io.Writer) {
	if p.Single != nil {
		p.commandHelp(w, p.Single)
		return
	}
	fmt.Fprintf(w, "%s: %s\n\nusage: %s COMMAND [flags] [arguments]\n\ncommands:\n", p.Name, p.Summary, p.Name)
	width := 0
	for _, c := range p.visible() {
		width = max(width, len(c.Name))
	}
	for _, c := range p.visible() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\n  %-*s  %s\n  %-*s  %s\n  %-*s  %s\n  %-*s  %s\n", width, "help", "help on a command: "+p.Name+" help COMMAND",
		width, "version", "the version", width, "completion", "shell completion script: "+p.Name+" completion bash|zsh",
		width, "man", "the manual page (roff): "+p.Name+" man | man -l -")
	if p.Detail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(p.Detail))
	}
	fmt.Fprintf(w, "\nExit status: 0 done, 1 failed, 2 wrong usage.\n")
}

func (p *Program) visible() []*Command {
	var out []*Command
	for _, c := range p.Commands {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// commandHelp prints a command's synopsis, text and flags.
func (p *Program) commandHelp(w io.Writer, c *Command) {
	fs := p.flagSet(c)
	c.Setup(fs)
	fmt.Fprintf(w, "usage: %s%s\n\n%s\n", p.fullName(c), synopsis(fs, c), c.Summary)
	if c.Detail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Detail))
	}
	if fl := flags(fs); len(fl) > 0 {
		fmt.Fprintf(w, "\nflags:\n")
		for _, f := range fl {
			fmt.Fprintf(w, "  %s\n    \t%s\n", f.spelling(), strings.ReplaceAll(f.usage, "\n", "\n    \t"))
		}
	}
}

func synopsis(fs *flag.FlagSet, c *Command) string {
	s := ""
	if len(flags(fs)) > 0 {
		s += " [flags]"
	}
	if c.Args != "" {
		s += " " + c.Args
	}
	return s
}

// flagDoc is one flag as help shows it.
type flagDoc struct {
	name, arg, usage, def string
}

func (f flagDoc) spelling() string {
	s := "--" + f.name
	if len(f.name) == 1 {
		s = "-" + f.name
	}
	if f.arg != "" {
		s += " " + f.arg
	}
	if f.def != "" {
		s += " (default " + f.def + ")"
	}
	return s
}

func flags(fs *flag.FlagSet) []flagDoc {
	var out []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		if def == "false" || def == "0" || def == "" || def == "[]" || def == "0s" {
			def = ""
		}
		if arg == "value" {
			arg = "VALUE"
		}
		out = append(out, flagDoc{name: f.Name, arg: arg, usage: usage, def: def})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
