// Command experiment runs NAT-traversal experiment matrices in natlab labs
// with the real machsend and rendezvous binaries, and turns the trials into
// CSV summaries, plots and results/REPORT.md.
//
//	experiment run [SPEC] [--quick] [--out DIR] [--bin DIR] [--workers N] [--shard I/N]
//	experiment merge OUT SHARD_DIR...  join shards' results into one run
//	experiment report [--out DIR]
//	experiment check [--out DIR]    fail if any trial disagrees with the model
//	experiment throughput|load [--out DIR]
//	experiment loadgen ...           the load generator process experiment load starts
//	experiment calibrate [--out DIR] measure the impairment datapath (IMPAIRMENT.md)
//	experiment natcheck [--out DIR]  natcheck behind every profile (NATCHECK.md)
//	experiment browser [--out DIR]   the browser experience end to end (browser/README.md)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/experiments/bench"
	"github.com/machsend/machsend/experiments/browser"
	"github.com/machsend/machsend/experiments/classify"
	"github.com/machsend/machsend/experiments/report"
	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/experiments/stats"
	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/natlab"
)

// version is stamped by make dist (-ldflags -X main.version=...).
var version string

var program = &cli.Program{
	Name:    "experiment",
	Version: version,
	Summary: "NAT-traversal experiments in natlab labs with the real binaries, and their reports",
	Commands: []*cli.Command{
		{Name: "run", Args: "[SPEC]", Summary: "run a spec's matrix (default experiments/paper.yaml), resuming, then write the report", Setup: setupRun},
		{Name: "merge", Args: "OUT SHARD_DIR...", Summary: "join shards' results into one run", Setup: setupMerge},
		{Name: "report", Summary: "summaries, plots and REPORT.md from the data files", Setup: setupReport},
		{Name: "check", Summary: "fail if any trial disagrees with the model", Setup: setupCheck},
		{Name: "throughput", Summary: "throughput and first-byte figures against same-run baselines", Setup: setupThroughput},
		{Name: "load", Summary: "rendezvous server under load (results/rendezvous-load.json)", Setup: setupLoad},
		{Name: "calibrate", Summary: "measure the impairment datapath (IMPAIRMENT.md)", Setup: setupCalibrate},
		{Name: "natcheck", Summary: "natcheck behind every profile (NATCHECK.md)", Setup: setupNATCheck},
		{Name: "invariance", Summary: "the same cells at 1, 8 and the spec's labs at once (invariance.json)", Setup: setupInvariance},
		{Name: "browser", Summary: "the browser experience end to end in Chromium (browser/README.md)", Setup: setupBrowser},
		{Name: "loadgen", Summary: "the load generator process experiment load starts", Setup: setupLoadgen, Hidden: true},
	},
}

func main() {
	program.Main()
}

func binDir() string {
	self, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(self)
}

func setupRun(fs *flag.FlagSet) func([]string) error {
	quick := fs.Bool("quick", false, "run experiments/quick.yaml (every knob once) into --out")
	out := fs.String("out", "results", "results directory")
	bin := fs.String("bin", binDir(), "directory with the machsend and rendezvous binaries")
	workers := fs.Int("workers", 0, "parallel labs (default: the spec's)")
	attempt := fs.Duration("attempt-timeout", 0, "per punching attempt (default: the spec's attempt_timeout)")
	reps := fs.Int("repetitions", 0, "run every cell this many times (default: the spec's)")
	shardFlag := fs.String("shard", "", "run only shard I of N of the spec's trials (I/N, 0 <= I < N: Slurm's array task id and count)")
	fresh := fs.Bool("fresh", false, "discard earlier trials in --out instead of resuming")
	allowDirty := fs.Bool("allow-dirty", false, "write results/ although the code differs from the commit it names")
	return func(pos []string) error {
		if v := experiments.CodeVersion(); filepath.Base(filepath.Clean(*out)) == "results" && !*allowDirty &&
			(strings.HasSuffix(v, "-dirty") || v == "unknown") {
			return fmt.Errorf("the code is not a clean commit (%s): results/ must come from the code as committed; commit first, or pass --allow-dirty (or another --out) for a trial run", v)
		}
		var shard experiments.Shard
		if *shardFlag != "" {
			var err error
			if shard, err = experiments.ParseShard(*shardFlag); err != nil {
				return cli.UsageError{Err: err}
			}
		}
		specPath := "experiments/paper.yaml"
		if *quick {
			specPath = "experiments/quick.yaml"
		}
		if len(pos) > 1 {
			return cli.Usagef("one SPEC at a time (got %d)", len(pos))
		}
		if len(pos) > 0 {
			specPath = pos[0]
		}
		sp, err := spec.LoadSpec(specPath)
		if err != nil {
			return err
		}
		sp.SetRepetitions(*reps)
		ctx, stop, err := labContext()
		if err != nil {
			return err
		}
		defer stop()
		if *fresh {
			os.Remove(filepath.Join(*out, spec.TrialsFile))
			os.RemoveAll(filepath.Join(*out, "pcaps"))
		}
		start := time.Now()
		info, err := experiments.Run(ctx, sp, experiments.Options{Bin: *bin, Out: *out, Workers: *workers,
			AttemptTimeout: *attempt, Log: os.Stderr, Shard: shard})
		if info != nil {
			fmt.Fprintf(os.Stderr, "%d trials in %s (%d resumed) -> %s\n", info.Trials, time.Since(start).Round(time.Second), info.Resumed, *out)
		}
		if err != nil {
			return err
		}
		return outputs(*out)
	}
}

// outputs draws the ladders from the captures (classification), then
// writes the summaries, plots and report from the data files.
func outputs(out string) error {
	if _, err := classify.DrawLadders(out); err != nil {
		return err
	}
	return report.WriteOutputs(out)
}

func setupReport(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	return func(args []string) error {
		return outputs(*out)
	}
}

func setupCheck(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	return func(args []string) error {
		trials, err := spec.LoadTrials(filepath.Join(*out, spec.TrialsFile))
		if err != nil {
			return err
		}
		bad, unmodelled := 0, 0
		for _, t := range trials {
			if !t.Modelled || t.LabError != "" {
				// Loss, jitter, rate limits and cross traffic are outside the model.
				unmodelled++
				continue
			}
			if !t.Agree {
				bad++
				fmt.Fprintf(os.Stderr, "DISAGREE %s: measured success=%v (%s), model %v: %s\n", t.ID, t.Success, t.Class, t.Predicted, t.PredictedReason)
			}
		}
		if len(trials) == 0 {
			return errors.New("no trials")
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d trials disagree with the NAT model", bad, len(trials))
		}
		fmt.Fprintf(os.Stderr, "all %d trials the model accounts for agree with it (%d not checked: loss, jitter, rate limits and cross traffic are outside the model)\n", len(trials)-unmodelled, unmodelled)
		return nil
	}
}

func setupNATCheck(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	bin := fs.String("bin", binDir(), "directory with the machsend and rendezvous binaries")
	parallel := fs.Int("parallel", 4, "labs at a time")
	return func(args []string) error {
		ctx, stop, err := labContext()
		if err != nil {
			return err
		}
		defer stop()
		rows, err := bench.RunNATCheck(ctx, *bin, *parallel)
		if err != nil {
			return err
		}
		if err := bench.WriteNATCheck(*out, rows); err != nil {
			return err
		}
		agree, counted := bench.NATCheckSummary(rows)
		fmt.Fprintf(os.Stderr, "natcheck: %d of %d observed knobs agree with the configuration\n", agree, counted)
		return nil
	}
}

func setupCalibrate(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	return func(args []string) error {
		ctx, stop, err := labContext()
		if err != nil {
			return err
		}
		defer stop()
		c, err := bench.Calibrate(ctx, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "delay queue at %.0f ms RTT: %.0f pps (unimpaired %.0f), TCP %.0f Mbit/s (unimpaired %.0f)\n",
			c.Ceiling.RTTms, c.Ceiling.QueuedPPS, c.Ceiling.BaselinePPS, c.Ceiling.TCPQueuedMbps, c.Ceiling.TCPBaselineMbps)
		return nil
	}
}

// specFlags defines the flags a spec-driven benchmark takes (--out, --bin,
// --spec); load reads the spec they name.
type specFlags struct{ out, bin, spec *string }

func defineSpec(fs *flag.FlagSet, specDefault, specHelp string) specFlags {
	return specFlags{out: fs.String("out", "results", "results directory"),
		bin:  fs.String("bin", binDir(), "directory with the machsend and rendezvous binaries"),
		spec: fs.String("spec", specDefault, specHelp)}
}

func (f specFlags) load() (*spec.Spec, error) {
	return spec.LoadSpec(*f.spec)
}

func setupThroughput(fs *flag.FlagSet) func([]string) error {
	f := defineSpec(fs, "experiments/paper.yaml", "spec whose throughput section to run")
	return func([]string) error { return throughput(f) }
}

func throughput(f specFlags) error {
	out, bin := f.out, f.bin
	sp, err := f.load()
	if err != nil {
		return err
	}
	if sp.Throughput == nil {
		return errors.New("the spec has no throughput section")
	}
	ctx, stop, err := labContext()
	if err != nil {
		return err
	}
	defer stop()
	r, err := bench.MeasureThroughput(ctx, experiments.Options{Bin: *bin, Out: *out}, sp.Throughput)
	if err != nil {
		return err
	}
	for _, row := range r.Rows {
		fmt.Fprintf(os.Stderr, "%-20s %-20s %8.1f MB/s  × AES copy %.2f  × plain %.2f\n", row.Path, row.Copy,
			stats.Quantile(row.MBps, 0.5), stats.Quantile(row.RatioAES, 0.5), stats.Quantile(row.RatioPlain, 0.5))
	}
	fmt.Fprintln(os.Stderr, r.Notes)
	return report.WriteOutputs(*out)
}

func setupLoad(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	bin := fs.String("bin", binDir(), "directory with the rendezvous and experiment binaries")
	clients := fs.Int("clients", 10000, "registered clients per server with one server")
	clients2 := fs.Int("clients-two", 9000, "registered clients per server with two servers (one generator holds them all)")
	rates := fs.String("rates", "1000,2000,5000,6000,10000", "offered sessions per second, stepped")
	step := fs.Duration("step", 5*time.Second, "how long each rate is offered")
	two := fs.Bool("two", true, "also run two server processes at once")
	return func(args []string) error {
		rs, err := parseRates(*rates)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		res := &bench.LoadResult{FDLimit: bench.FDLimit(), CPUs: runtime.NumCPU()}
		for _, c := range []bench.LoadConfig{{Servers: 1, ClientsPerServer: *clients}, {Servers: 2, ClientsPerServer: *clients2}} {
			if !*two && c.Servers == 2 {
				continue
			}
			c.Rates, c.Step = rs, *step
			fmt.Fprintf(os.Stderr, "rendezvous load: %d server(s), %d clients each, rates %s\n", c.Servers, c.ClientsPerServer, *rates)
			run, err := bench.RunLoad(ctx, *bin, c)
			if err != nil {
				return fmt.Errorf("load with %d server(s): %w", c.Servers, err)
			}
			res.Runs = append(res.Runs, run)
		}
		res.Notes = bench.LoadNotes(res)
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(os.Stderr, "%s\n", b)
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*out, "rendezvous-load.json"), b, 0o644)
	}
}

func parseRates(s string) ([]float64, error) {
	var rs []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 || r > 1e6 {
			return nil, fmt.Errorf("--rates: %q is not a rate between 0 and 1,000,000 sessions per second", f)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// setupLoadgen is the load generator process that experiment load starts
// (not meant to be run by hand).
func setupLoadgen(fs *flag.FlagSet) func([]string) error {
	var servers []netip.AddrPort
	fs.Func("server", "rendezvous server IP:PORT (repeat for several)", func(v string) error {
		ap, err := netip.ParseAddrPort(v)
		servers = append(servers, ap)
		return err
	})
	clients := fs.Int("clients", 1000, "clients per server")
	rates := fs.String("rates", "1000", "offered sessions per second, stepped")
	step := fs.Duration("step", 5*time.Second, "how long each rate is offered")
	return func(args []string) error {
		rs, err := parseRates(*rates)
		if err != nil {
			return err
		}
		if len(servers) == 0 || *clients < 2 {
			return cli.Usagef("need --server and at least 2 --clients")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.RunLoadGen(ctx, bench.GenConfig{Servers: servers, Clients: *clients, Rates: rs, Step: *step}, os.Stdin, os.Stdout)
	}
}

// labContext checks that labs can be built here and returns a context that
// ends on SIGINT or SIGTERM, so a run cleans its labs up when stopped.
func labContext() (context.Context, context.CancelFunc, error) {
	if err := natlab.Preflight(); err != nil {
		return nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, stop, nil
}

// setupInvariance: invariance runs the invariance spec at 1, 8 and the spec's number of
// labs at once and writes invariance.json.
func setupInvariance(fs *flag.FlagSet) func([]string) error {
	f := defineSpec(fs, "experiments/invariance.yaml", "the cells to run at each level")
	return func([]string) error { return invariance(f) }
}

func invariance(f specFlags) error {
	out, bin := f.out, f.bin
	sp, err := f.load()
	if err != nil {
		return err
	}
	ctx, stop, err := labContext()
	if err != nil {
		return err
	}
	defer stop()
	r, err := bench.RunInvariance(ctx, experiments.Options{Bin: *bin, Out: *out}, sp, []int{1, 8, sp.Workers})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "invariance: worst Fisher p %.3f; median connect %v (ratios %v)\n", r.Worst, r.Median, r.Ratio)
	return os.WriteFile(filepath.Join(*out, "invariance.json"), b, 0o644)
}

// setupMerge joins the results directories of a spec's shards into one.
func setupMerge(fs *flag.FlagSet) func([]string) error {

	return func(pos []string) error {
		if len(pos) < 2 {
			return cli.Usagef("want OUT SHARD_DIR... (then experiment report --out OUT)")
		}
		info, err := experiments.Merge(pos[0], pos[1:])
		if err != nil {
			return err
		}
		fmt.Printf("merged %d trials of %d shards (%s) -> %s\n", info.Trials, len(info.Shards), strings.Join(info.Shards, ", "), pos[0])
		return nil
	}
}

// setupBrowser runs the browser cases and writes results/browser; it fails
// if any run fails its check.
func setupBrowser(fs *flag.FlagSet) func([]string) error {
	out := fs.String("out", "results", "results directory")
	bin := fs.String("bin", binDir(), "directory with the machsend and rendezvous binaries")
	return func(args []string) error {
		ctx, stop, err := labContext()
		if err != nil {
			return err
		}
		defer stop()
		dir := filepath.Join(*out, "browser")
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		var results []browser.Result
		var failed []error
		for _, c := range browser.Cases {
			res, err := browser.Run(ctx, c, *bin, dir)
			if err == nil {
				err = res.Check()
			}
			if err != nil {
				failed = append(failed, fmt.Errorf("%s: %w", c.Name, err))
			}
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "browser %s: sender %s, recipient %s, %d files identical=%v\n", c.Name, res.SenderPath, res.RecipientPath, res.Files, res.Identical)
		}
		if err := browser.WriteReport(dir, results); err != nil {
			return err
		}
		return errors.Join(failed...)
	}
}
