package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/machsend/machsend/experiments/stats"
)

// LoadResult is the rendezvous load test: runs with one server and with
// two, each stepping the offered session rate.
type LoadResult struct {
	Runs []*LoadRun `json:"runs"`
	// FDLimit is the file-descriptor limit each process reads at start; it
	// bounds the clients a server holds (60% of it) and a generator opens.
	FDLimit int    `json:"fd_limit"`
	CPUs    int    `json:"cpus"`
	Notes   string `json:"notes"`
}

// LoadRun is one server configuration under every offered rate.
type LoadRun struct {
	Servers          int     `json:"servers"`
	ClientsPerServer int     `json:"clients_per_server"`
	ServerRSSIdleMiB float64 `json:"server_rss_idle_mib"`
	// ServerRSSLoadedMiB is after the clients registered and sat idle.
	ServerRSSLoadedMiB float64 `json:"server_rss_with_clients_mib"`
	BytesPerIdleClient float64 `json:"server_bytes_per_idle_client"`
	ServerPeakRSSMiB   float64 `json:"server_peak_rss_mib"`
	// RegisterSeconds is how long the clients took to connect and say hello.
	RegisterSeconds float64     `json:"register_seconds"`
	Steps           []*LoadStep `json:"steps"`
}

// LoadStep is one offered rate: every offered session is exactly one of
// completed, rejected (refused at once with "busy") or failed (an error
// or a timeout, after admission or before).
type LoadStep struct {
	Servers     int     `json:"servers"`
	TargetRate  float64 `json:"target_sessions_per_second"`
	OfferedRate float64 `json:"offered_sessions_per_second"`
	Offered     int     `json:"offered"`
	Admitted    int     `json:"admitted"`
	Completed   int     `json:"completed"`
	Rejected    int     `json:"rejected_busy"`
	Failed      int     `json:"failed"`
	// AchievedRate is completed sessions per second of the step.
	AchievedRate float64 `json:"achieved_sessions_per_second"`
	// Coordination latency: second punch.ready to both punch.go.
	CoordP50Ms float64 `json:"coordination_p50_ms"`
	CoordP99Ms float64 `json:"coordination_p99_ms"`
	CoordMaxMs float64 `json:"coordination_max_ms"`
	// Session latency: create to both punch.go (four round trips).
	SessionP50Ms float64 `json:"session_p50_ms"`
	SessionP99Ms float64 `json:"session_p99_ms"`
	Seconds      float64 `json:"seconds"`
	// CPU seconds used during the step by the generator and by the
	// server processes (user and system), and as a share of one CPU.
	GenCPUSeconds    float64  `json:"generator_cpu_seconds"`
	ServerCPUSeconds float64  `json:"server_cpu_seconds"`
	FirstErrors      []string `json:"first_errors,omitempty"`
}

// summarise fills the step's counts and latencies from its outcomes.
func (st *LoadStep) summarise(outcomes []sessionOutcome) {
	var coord, total []float64
	for _, o := range outcomes {
		switch {
		case o.rejected:
			st.Rejected++
			continue
		case o.err != nil:
			st.Failed++
			if len(st.FirstErrors) < 5 {
				st.FirstErrors = append(st.FirstErrors, o.err.Error())
			}
		default:
			st.Completed++
			coord = append(coord, float64(o.coord.Microseconds())/1000)
			total = append(total, float64(o.total.Microseconds())/1000)
		}
		if o.admitted {
			st.Admitted++
		}
	}
	st.AchievedRate = float64(st.Completed) / st.Seconds
	sort.Float64s(coord)
	sort.Float64s(total)
	st.CoordP50Ms, st.CoordP99Ms = stats.Quantile(coord, 0.5), stats.Quantile(coord, 0.99)
	if len(coord) > 0 {
		st.CoordMaxMs = coord[len(coord)-1]
	}
	st.SessionP50Ms, st.SessionP99Ms = stats.Quantile(total, 0.5), stats.Quantile(total, 0.99)
}

func rssMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// LoadConfig is one run of the load test.
type LoadConfig struct {
	Servers          int           // server processes (a link names its server: no shared state)
	ClientsPerServer int           // registered clients per server
	Rates            []float64     // offered sessions per second, stepped
	Step             time.Duration // per rate
}

// RunLoad starts cfg.Servers real rendezvous processes on loopback and the
// generator (bin/experiment loadgen) in a process of its own, which
// registers the clients; it measures the servers' memory with the clients
// idle, then each offered rate, with the CPU time of every process.
func RunLoad(ctx context.Context, bin string, cfg LoadConfig) (*LoadRun, error) {
	run := &LoadRun{Servers: cfg.Servers, ClientsPerServer: cfg.ClientsPerServer}
	var servers []*loadServer
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for range cfg.Servers {
		s, err := startLoadServer(bin, cfg.ClientsPerServer)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	time.Sleep(200 * time.Millisecond)
	for _, s := range servers {
		run.ServerRSSIdleMiB += rssMiB(s.pid, "VmRSS") / float64(len(servers))
	}
	gen, err := startGen(ctx, bin, servers, cfg)
	if err != nil {
		return nil, err
	}
	defer gen.stop()
	if err := run.drive(gen, servers); err != nil {
		return nil, err
	}
	for _, s := range servers {
		run.ServerPeakRSSMiB = max(run.ServerPeakRSSMiB, rssMiB(s.pid, "VmHWM"))
	}
	return run, nil
}

// drive follows the generator's events: memory once the clients are
// registered and idle, CPU time around each step.
func (run *LoadRun) drive(gen *loadGen, servers []*loadServer) error {
	t0 := time.Now()
	var cpu0 float64
	for {
		ev, err := gen.next()
		if err != nil {
			return err
		}
		switch ev.Event {
		case "registered":
			run.RegisterSeconds = time.Since(t0).Seconds()
			time.Sleep(2 * time.Second) // let the server's collector settle
			for _, s := range servers {
				run.ServerRSSLoadedMiB += rssMiB(s.pid, "VmRSS") / float64(len(servers))
			}
			run.BytesPerIdleClient = (run.ServerRSSLoadedMiB - run.ServerRSSIdleMiB) * (1 << 20) / float64(run.ClientsPerServer)
			if err := gen.proceed(); err != nil {
				return err
			}
		case "step-start":
			cpu0 = serversCPU(servers)
		case "step":
			ev.Step.ServerCPUSeconds = serversCPU(servers) - cpu0
			run.Steps = append(run.Steps, ev.Step)
		case "done":
			return nil
		}
	}
}

func serversCPU(servers []*loadServer) float64 {
	t := 0.0
	for _, s := range servers {
		t += procCPU(s.pid)
	}
	return t
}

// procCPU is a process's CPU time (user and system) from /proc, seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// loadServer is a rendezvous process the load test started.
type loadServer struct {
	ap  netip.AddrPort
	pid int
	cmd *exec.Cmd
}

// stop ends the server (the process we started, by its PID) with SIGTERM,
// so that a profile it was asked to write gets written.
func (s *loadServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = s.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// startLoadServer starts the rendezvous binary on a free loopback port,
// its caps raised for one address holding every client, and waits until
// it accepts. Extra arguments come from MACHSEND_LOAD_SERVER_ARGS (for
// profiling: --cpuprofile FILE --memprofile FILE).
func startLoadServer(bin string, clients int) (*loadServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	caps := strconv.Itoa(2*clients + 100)
	args := []string{"--listen", addr, "--log-level", "error", "--conn-rate", "1000000", "--max-clients", caps,
		"--max-per-addr", caps, "--max-sessions-per-addr", caps}
	args = append(args, strings.Fields(os.Getenv("MACHSEND_LOAD_SERVER_ARGS"))...)
	cmd := exec.Command(filepath.Join(bin, "rendezvous"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &loadServer{ap: netip.MustParseAddrPort(addr), pid: cmd.Process.Pid, cmd: cmd}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp4", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		if i > 100 {
			s.stop()
			return nil, fmt.Errorf("rendezvous did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadGen is the generator process.
type loadGen struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	errb *bytes.Buffer
}

// startGen starts bin/experiment loadgen against the servers.
func startGen(ctx context.Context, bin string, servers []*loadServer, cfg LoadConfig) (*loadGen, error) {
	args := []string{"loadgen", "--clients", strconv.Itoa(cfg.ClientsPerServer), "--step", cfg.Step.String()}
	for _, s := range servers {
		args = append(args, "--server", s.ap.String())
	}
	var rates []string
	for _, r := range cfg.Rates {
		rates = append(rates, strconv.FormatFloat(r, 'f', -1, 64))
	}
	args = append(args, "--rates", strings.Join(rates, ","))
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "experiment"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g := &loadGen{cmd: cmd, errb: &bytes.Buffer{}}
	cmd.Stderr = g.errb
	var err error
	if g.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	g.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load generator: %w", err)
	}
	return g, nil
}

// next is the generator's next event.
func (g *loadGen) next() (*GenEvent, error) {
	if !g.out.Scan() {
		err := g.cmd.Wait()
		return nil, fmt.Errorf("load generator ended early (%v): %s", err, strings.TrimSpace(g.errb.String()))
	}
	var ev GenEvent
	if err := json.Unmarshal(g.out.Bytes(), &ev); err != nil {
		return nil, fmt.Errorf("load generator said %q: %w", g.out.Text(), err)
	}
	return &ev, nil
}

func (g *loadGen) proceed() error {
	_, err := io.WriteString(g.in, "go\n")
	return err
}

// stop ends the generator (the process we started, by its PID).
func (g *loadGen) stop() {
	g.in.Close()
	if g.cmd.ProcessState == nil {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
	}
}

// FDLimit is this process's file-descriptor limit (Go raises the soft
// limit to the hard one at start; every process here gets the same).
func FDLimit() int {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	return int(min(r.Cur, 1<<30))
}

// LoadNotes says how the load test was run, from its own figures.
func LoadNotes(r *LoadResult) string {
	return fmt.Sprintf("the real rendezvous binary on loopback, the load generator in a process of its own (its CPU time is stated per step), both on this machine's %d CPUs; "+
		"each process may hold %d file descriptors, so a server holds at most %d clients (60%% of them, the rest for relay and probes) and one generator at most about %d; "+
		"each offered session is create, join, both punch.ready, both punch.go, then the creator leaves; sessions start on schedule (open loop) whether or not earlier ones finished; "+
		"a session refused at create with \"busy\" is rejected (never admitted); failed is any other error or a 5 s timeout; coordination latency is from the second punch.ready to both punch.go",
		r.CPUs, r.FDLimit, (r.FDLimit-128)*60/100, r.FDLimit-100)
}
