// Command natlab builds, inspects, probes and removes NAT laboratories made of
// Linux network namespaces and netfilter (see package natlab).
//
//	natlab profiles [--json]                 built-in NAT profiles
//	natlab topologies [--json]               built-in topologies
//	natlab up [TOPOLOGY] [--name N] [--profile P] [--nat NODE=P ...] [--nat-a P] [--nat-b P] [--foreground]
//	natlab ls                                running labs
//	natlab exec LAB NODE -- CMD [ARG...]     run a command on a lab node
//	natlab capture LAB NODE IFACE -w FILE [--duration D]
//	natlab conntrack LAB NODE [--json]       conntrack snapshot of a node
//	natlab rules LAB NODE                    the nftables ruleset of a NAT node
//	natlab impair LAB [NODE NETWORK SPEC]    set (or list) a link direction's impairment
//	natlab check PROFILE... | --all [--json] verify realised profiles by probing
//	natlab down LAB                          remove a lab
//	natlab clean                             remove leftovers of crashed runs
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/nat"

	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/natlab/check"
)

// version is stamped by make dist (-ldflags -X main.version=...).
var version string

// noFlags is the Setup of a command without flags.
func noFlags(run func([]string) error) func(*flag.FlagSet) func([]string) error {
	return func(*flag.FlagSet) func([]string) error { return run }
}

// withOut passes stdout to a command's setup.
func withOut(setup func(*flag.FlagSet, io.Writer) func([]string) error) func(*flag.FlagSet) func([]string) error {
	return func(fs *flag.FlagSet) func([]string) error { return setup(fs, os.Stdout) }
}

var program = &cli.Program{
	Name:    "natlab",
	Version: version,
	Summary: "NAT laboratories from network namespaces and netfilter",
	Detail: `PROFILE and TOPOLOGY are built-in names or paths to YAML files.
SPEC is an impairment of the packets NODE sends on NETWORK, for example
"delay=20ms jitter=2ms dist=normal loss=0.5% burst=3 reorder=1% rate=50mbit",
or "none" to remove it.`,
	Commands: []*cli.Command{
		{Name: "profiles", Summary: "the built-in NAT profiles, one column per knob", Setup: withOut(setupProfiles)},
		{Name: "topologies", Summary: "the built-in topologies", Setup: withOut(setupTopologies)},
		{Name: "up", Args: "[TOPOLOGY]", Summary: "bring a lab up (held by a background process until natlab down) and print it as JSON", Setup: withOut(setupUp)},
		{Name: holdCmd, Args: "[TOPOLOGY]", Summary: "the lab holder natlab up starts", Setup: setupHold, Hidden: true},
		{Name: "ls", Summary: "the labs on this machine", Setup: withOut(setupLs)},
		{Name: "exec", Args: "LAB NODE -- CMD [ARG...]", Summary: "run a command on a lab node", Setup: noFlags(runExec)},
		{Name: "capture", Args: "LAB NODE IFACE", Summary: "capture a node's interface into a pcap file", Setup: withOut(setupCapture)},
		{Name: "conntrack", Args: "LAB NODE", Summary: "a node's connection tracking table", Setup: withOut(setupConntrack)},
		{Name: "rules", Args: "LAB NODE", Summary: "the nftables ruleset of a NAT node", Setup: noFlags(func(a []string) error { return runRules(a, os.Stdout) })},
		{Name: "impair", Args: "LAB [NODE NETWORK SPEC]", Summary: "set (or list) a link direction's impairment", Setup: withOut(setupImpair)},
		{Name: "check", Args: "PROFILE... | --all", Summary: "verify realised profiles knob by knob by probing them", Setup: withOut(setupCheck)},
		{Name: "down", Args: "LAB", Summary: "remove a lab", Setup: noFlags(runDown)},
		{Name: "clean", Summary: "remove what crashed runs left", Setup: noFlags(func(a []string) error { return runClean(a, os.Stdout) })},
	},
}

func main() {
	program.Main()
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func setupProfiles(fs *flag.FlagSet, out io.Writer) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON, with each knob's realisation")
	return func(args []string) error {
		ps, err := nat.Builtin()
		if err != nil {
			return err
		}
		if *asJSON {
			type withReal struct {
				*nat.Profile
				Realisation []natlab.KnobRealisation `json:"realisation"`
			}
			var v []withReal
			for _, p := range ps {
				v = append(v, withReal{p, natlab.Realisation(p)})
			}
			return printJSON(out, v)
		}
		// One column per knob of the NAT model (nat.Knobs), in its order.
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		head := []string{"NAME"}
		for _, k := range nat.Knobs[1:] { // [0] is "nat": a row says "(no NAT)" instead
			head = append(head, strings.ToUpper(strings.TrimPrefix(k.Name, "timers.")))
		}
		fmt.Fprintln(tw, strings.Join(append(head, "APPROX. KNOBS"), "\t"))
		short := strings.NewReplacer("endpoint-independent", "EI", "address-and-port-dependent", "APD",
			"address-dependent", "AD", "connection-dependent", "CD").Replace
		for _, p := range ps {
			row := []string{p.Name}
			if !p.NAT {
				fmt.Fprintf(tw, "%s\t(no NAT)\n", p.Name)
				continue
			}
			for _, k := range nat.Knobs[1:] {
				v := short(k.Get(p))
				if k.Name == "port-delta" && p.PortAllocation != nat.Sequential {
					v = "-"
				}
				row = append(row, v)
			}
			var approx []string
			for _, k := range natlab.Realisation(p) {
				if !k.Exact {
					approx = append(approx, k.Knob)
				}
			}
			fmt.Fprintln(tw, strings.Join(append(row, strings.Join(approx, ",")), "\t"))
		}
		return tw.Flush()
	}
}

func setupTopologies(fs *flag.FlagSet, out io.Writer) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		ts, err := natlab.BuiltinTopologies()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, ts)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tNATS\tDESCRIPTION")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, strings.Join(t.NATs(), ","), t.Description)
		}
		return tw.Flush()
	}
}

// multiFlag collects repeated --nat NODE=PROFILE flags.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// upFlags are up's flags (hold, the lab's holder process, takes the same).
type upFlags struct {
	name, profile, natA, natB *string
	fg                        *bool
	nats, impairs             multiFlag
}

func defineUp(fs *flag.FlagSet) *upFlags {
	u := &upFlags{}
	u.name = fs.String("name", "", "lab name (1-8 lower-case letters/digits; default random)")
	u.profile = fs.String("profile", "linux-default", "profile for every NAT not named by --nat")
	u.fg = fs.Bool("foreground", false, "hold the lab in this process until interrupted")
	fs.Var(&u.nats, "nat", "NODE=PROFILE for one NAT node (repeatable)")
	u.natA = fs.String("nat-a", "", "profile for NAT node nat-a (same as --nat nat-a=PROFILE)")
	u.natB = fs.String("nat-b", "", "profile for NAT node nat-b (same as --nat nat-b=PROFILE)")
	fs.Var(&u.impairs, "impair", "NETWORK[:FROM]=SPEC: impair a link, one direction with :FROM (repeatable)")
	return u
}

// args are the flags as given (for the holder process).
func (u *upFlags) args() []string {
	a := []string{"--name=" + *u.name, "--profile=" + *u.profile, "--nat-a=" + *u.natA, "--nat-b=" + *u.natB}
	for _, n := range u.nats {
		a = append(a, "--nat="+n)
	}
	for _, i := range u.impairs {
		a = append(a, "--impair="+i)
	}
	return a
}

// options turns up's flags and TOPOLOGY into lab options.
func (u *upFlags) options(pos []string) (natlab.Options, error) {
	if len(pos) > 1 {
		return natlab.Options{}, cli.Usagef("want at most one TOPOLOGY (see natlab topologies; default two-nat)")
	}
	if len(pos) == 0 {
		pos = []string{"two-nat"}
	}
	nats := append(multiFlag(nil), u.nats...)
	if *u.natA != "" {
		nats = append(nats, "nat-a="+*u.natA)
	}
	if *u.natB != "" {
		nats = append(nats, "nat-b="+*u.natB)
	}
	topo, err := natlab.LoadTopology(pos[0])
	if err != nil {
		return natlab.Options{}, err
	}
	def, err := nat.Load(*u.profile)
	if err != nil {
		return natlab.Options{}, err
	}
	o := natlab.Options{Name: *u.name, Topology: topo, Default: def, Profiles: map[string]*nat.Profile{}}
	for _, n := range nats {
		node, pname, ok := strings.Cut(n, "=")
		if !ok {
			return o, cli.Usagef("--nat %q: want NODE=PROFILE", n)
		}
		p, err := nat.Load(pname)
		if err != nil {
			return o, err
		}
		o.Profiles[node] = p
	}
	for _, s := range u.impairs {
		link, spec, ok := strings.Cut(s, "=")
		if !ok {
			return o, cli.Usagef("--impair %q: want NETWORK[:FROM]=SPEC", s)
		}
		nw, from, _ := strings.Cut(link, ":")
		t := *o.Topology
		t.Impairments = append(append([]natlab.LinkImpairment(nil), t.Impairments...), natlab.LinkImpairment{Network: nw, From: from, Spec: spec})
		if err := t.Validate(); err != nil {
			return o, fmt.Errorf("--impair %q: %w", s, err)
		}
		o.Topology = &t
	}
	return o, nil
}

const holdCmd = "__hold"

// setupUp: up starts a holder process that builds the lab, keeps its
// helpers running and tears it down on SIGTERM (natlab down) or SIGINT;
// it prints the lab description once the lab is up.
func setupUp(fs *flag.FlagSet, out io.Writer) func([]string) error {
	u := defineUp(fs)
	return func(pos []string) error {
		o, err := u.options(pos)
		if err != nil {
			return err
		}
		if err := natlab.Preflight(); err != nil {
			return err
		}
		if *u.fg {
			return hold(o, out)
		}
		return startHolder(append(u.args(), pos...), out)
	}
}

// startHolder starts `natlab __hold ARGS` in a session of its own and
// passes on the lab description it prints.
func startHolder(args []string, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{holdCmd}, args...)...)
	cmd.Stdout = pw
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start lab holder: %w", err)
	}
	pw.Close()
	desc, _ := io.ReadAll(pr)
	if len(desc) == 0 {
		if err := cmd.Wait(); err != nil {
			return cli.ExitCode(1)
		}
		return fmt.Errorf("lab holder exited without bringing the lab up")
	}
	_ = cmd.Process.Release()
	_, err = out.Write(desc)
	return err
}

func setupHold(fs *flag.FlagSet) func([]string) error {
	u := defineUp(fs)
	return func(pos []string) error {
		o, err := u.options(pos)
		if err != nil {
			return err
		}
		return hold(o, os.Stdout)
	}
}

// hold builds the lab, prints it, closes out (if a pipe) and waits for a signal.
func hold(o natlab.Options, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	lab, err := natlab.Up(ctx, o)
	if err != nil {
		return err
	}
	defer lab.Close()
	desc, err := json.MarshalIndent(lab, "", "  ")
	if err != nil {
		return err
	}
	if err := lab.UpdateRecord(desc); err != nil {
		return err
	}
	stopControl, err := lab.ServeControl()
	if err != nil {
		return err
	}
	defer stopControl()
	fmt.Fprintf(out, "%s\n", desc)
	if f, ok := out.(*os.File); ok && f == os.Stdout {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
			f.Close()
			os.Stdout = nil
		}
	}
	<-ctx.Done()
	return nil
}

// setupImpair changes (or lists) impairments of a lab held by natlab up.
func setupImpair(fs *flag.FlagSet, out io.Writer) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(pos []string) error {
		req := natlab.ControlRequest{Op: "list"}
		switch len(pos) {
		case 1:
		case 4:
			req = natlab.ControlRequest{Op: "impair", Node: pos[1], Network: pos[2], Spec: pos[3]}
		default:
			return cli.Usagef("want LAB [NODE NETWORK SPEC]")
		}
		rep, err := natlab.Control(pos[0], req)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, rep.Impairments)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tNETWORK\tIMPAIRMENT\tPACKETS\tDROPPED\tREORDERED\tHELD")
		for _, s := range rep.Impairments {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", s.Node, s.Network, s.Spec, s.Packets, s.Dropped, s.Reordered, s.Held)
		}
		return tw.Flush()
	}
}

func setupLs(fs *flag.FlagSet, out io.Writer) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		recs, err := natlab.Records()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, recs)
		}
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "LAB\tTOPOLOGY\tOWNER\tSTATE\tCREATED")
		for _, r := range recs {
			state := "up"
			if !r.Alive() {
				state = "orphaned (natlab clean)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Lab, r.Topology, r.OwnerPID, state, r.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	}
}

// runExec runs CMD on a lab node (pos: LAB NODE CMD [ARG...]), passing
// signals on and ending with its exit status.
func runExec(args []string) error {
	if len(args) < 3 {
		return cli.Usagef("want LAB NODE -- CMD [ARG...]")
	}
	args = append(args[:2:2], append([]string{"--"}, args[2:]...)...)
	lab, err := natlab.Attach(args[0])
	if err != nil {
		return err
	}
	defer lab.Close()
	cmd := exec.Command(args[3], args[4:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	p, err := lab.Start(args[1], cmd)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = p.Signal(s.(syscall.Signal))
		}
	}()
	err = p.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return cli.ExitCode(ee.ExitCode())
	}
	return err
}

func setupCapture(fs *flag.FlagSet, out io.Writer) func([]string) error {
	file := fs.String("w", "", "pcap file to write (required)")
	dur := fs.Duration("duration", 0, "stop after this long (default: until interrupted)")
	return func(pos []string) error {
		if len(pos) != 3 || *file == "" {
			return cli.Usagef("want LAB NODE IFACE -w FILE")
		}
		lab, err := natlab.Attach(pos[0])
		if err != nil {
			return err
		}
		defer lab.Close()
		c, err := lab.Capture(pos[1], pos[2], *file)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if *dur > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *dur)
			defer cancel()
		}
		fmt.Fprintf(os.Stderr, "capturing on %s/%s into %s\n", pos[1], pos[2], *file)
		<-ctx.Done()
		if err := c.Stop(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d packets written to %s\n", len(c.Packets()), *file)
		return nil
	}
}

func setupConntrack(fs *flag.FlagSet, out io.Writer) func([]string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(pos []string) error {
		if len(pos) != 2 {
			return cli.Usagef("want LAB NODE")
		}
		lab, err := natlab.Attach(pos[0])
		if err != nil {
			return err
		}
		defer lab.Close()
		ents, err := lab.Conntrack(pos[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, ents)
		}
		for _, e := range ents {
			fmt.Fprintln(out, e)
		}
		return nil
	}
}

func runRules(args []string, out io.Writer) error {
	if len(args) != 2 {
		return cli.Usagef("want LAB NODE")
	}
	lab, err := natlab.Attach(args[0])
	if err != nil {
		return err
	}
	defer lab.Close()
	s, err := lab.Rules(args[1])
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, s)
	return err
}

func setupCheck(fs *flag.FlagSet, out io.Writer) func([]string) error {
	all := fs.Bool("all", false, "check every built-in profile")
	asJSON := fs.Bool("json", false, "print JSON reports")
	par := fs.Int("parallel", 2*runtime.NumCPU()+4, "labs probed at once")
	return func(pos []string) error {
		if err := natlab.Preflight(); err != nil {
			return err
		}
		var ps []*nat.Profile
		var err error
		if *all {
			if ps, err = nat.Builtin(); err != nil {
				return err
			}
		}
		for _, name := range pos {
			p, err := nat.Load(name)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		if len(ps) == 0 {
			return cli.Usagef("name profiles or pass --all")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		start := time.Now()
		reps, err := check.All(ctx, ps, *par)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(out, reps); err != nil {
				return err
			}
		} else {
			tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "PROFILE\tKNOB\tCONFIGURED\tOBSERVED\tOK\tEVIDENCE")
			for _, r := range reps {
				for _, x := range r.Results {
					ok := "ok"
					if !x.OK {
						ok = "MISMATCH"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Profile, x.Knob, x.Configured, x.Observed, ok, x.Evidence)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		var bad []string
		for _, r := range reps {
			if !r.OK() {
				bad = append(bad, r.Profile)
			}
		}
		sort.Strings(bad)
		fmt.Fprintf(os.Stderr, "checked %d profiles in %.1fs: %d mismatched %s\n", len(reps), time.Since(start).Seconds(), len(bad), strings.Join(bad, " "))
		if len(bad) > 0 {
			return cli.ExitCode(1)
		}
		return nil
	}
}

func runDown(args []string) error {
	if len(args) != 1 {
		return cli.Usagef("want LAB")
	}
	if err := natlab.Preflight(); err != nil {
		return err
	}
	return natlab.Down(args[0])
}

func runClean(args []string, out io.Writer) error {
	if len(args) != 0 {
		return cli.Usagef("clean takes no arguments")
	}
	if err := natlab.Preflight(); err != nil {
		return err
	}
	rep, err := natlab.Clean()
	fmt.Fprintf(out, "removed labs: %s\nremoved namespaces: %s\nkept (owner alive): %s\n",
		orNone(rep.Labs), orNone(rep.Namespaces), orNone(rep.Kept))
	return err
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
