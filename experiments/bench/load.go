package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/experiments/stats"
	"github.com/machsend/machsend/traversal/method"

	"github.com/machsend/machsend/rendezvous"
)

// LoadResult is the rendezvous load test's figures.
type LoadResult struct {
	Clients            int     `json:"clients_registered"`
	Sessions           int     `json:"sessions_coordinated"`
	TargetRate         float64 `json:"target_sessions_per_second"`
	AchievedRate       float64 `json:"achieved_sessions_per_second"`
	LatencyP50Ms       float64 `json:"coordination_latency_p50_ms"`
	LatencyP99Ms       float64 `json:"coordination_latency_p99_ms"`
	LatencyMaxMs       float64 `json:"coordination_latency_max_ms"`
	Failed             int     `json:"sessions_failed"`
	ServerRSSIdleMiB   float64 `json:"server_rss_idle_mib"`
	ServerRSSLoadedMiB float64 `json:"server_rss_with_clients_mib"`
	ServerRSSPeakMiB   float64 `json:"server_peak_rss_mib"`
	BytesPerClient     float64 `json:"server_bytes_per_client"`
	Notes              string  `json:"notes"`
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

func raiseFileLimit(n uint64) {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < n {
		r.Cur = min(n, r.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// RunLoad starts the real rendezvous binary on loopback, registers clients
// concurrently, then coordinates sessions at rate per second (create, join,
// both peers ready, both notified) and measures the latency from the second
// peer's punch.ready to the arrival of both punch.go notifications.
func RunLoad(ctx context.Context, bin string, clients, sessions int, rate float64) (*LoadResult, error) {
	raiseFileLimit(uint64(3*clients + 1000))
	ap, pid, stop, err := startLoadServer(bin, clients)
	if err != nil {
		return nil, err
	}
	defer stop()
	res := &LoadResult{TargetRate: rate, ServerRSSIdleMiB: rssMiB(pid, "VmRSS")}
	cs, err := registerClients(ctx, ap, clients)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("registering clients: %w", err)
	}
	res.Clients = clients
	time.Sleep(200 * time.Millisecond)
	res.ServerRSSLoadedMiB = rssMiB(pid, "VmRSS")
	res.BytesPerClient = (res.ServerRSSLoadedMiB - res.ServerRSSIdleMiB) * (1 << 20) / float64(clients)
	coordinateSessions(ctx, res, cs, sessions, rate)
	res.ServerRSSPeakMiB = rssMiB(pid, "VmHWM")
	res.Notes = fmt.Sprintf("the real rendezvous binary on loopback with %d concurrently connected clients (each said hello and stays connected); sessions paced at %.0f/s; latency is from the second peer's punch.ready call to both punch.go notifications arriving; clients and server share this machine's %d CPUs", clients, rate, numCPU())
	return res, nil
}

// startLoadServer starts the rendezvous binary on a free loopback port and
// waits until it accepts; stop kills it (the process we started, by PID).
func startLoadServer(bin string, clients int) (ap netip.AddrPort, pid int, stop func(), err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return ap, 0, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "rendezvous"), "--listen", addr, "--log-level", "error",
		"--conn-rate", "1000000", "--max-clients", strconv.Itoa(2*clients+100), "--max-per-addr", strconv.Itoa(2*clients+100),
		"--max-sessions-per-addr", strconv.Itoa(2*clients+100))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return ap, 0, nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp4", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			stop()
			return ap, 0, nil, fmt.Errorf("rendezvous did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return netip.MustParseAddrPort(addr), cmd.Process.Pid, stop, nil
}

// registerClients connects clients that each say hello, 64 at a time; the
// slice holds every client that registered, even when one failed.
func registerClients(ctx context.Context, ap netip.AddrPort, clients int) ([]*rendezvous.Client, error) {
	cs := make([]*rendezvous.Client, clients)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var regErr error
	for i := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := rendezvous.Dial(ctx, ap, rendezvous.DialOptions{})
			if err == nil {
				_, err = c.Hello(ctx, nil, false)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if c != nil {
					c.Close() // connected but refused: not kept, so close it here
				}
				if regErr == nil {
					regErr = err
				}
				return
			}
			cs[i] = c
		}()
	}
	wg.Wait()
	return cs, regErr
}

// coordinateSessions runs sessions at the target rate, pairing clients
// round robin, and records latency and failures in res.
func coordinateSessions(ctx context.Context, res *LoadResult, cs []*rendezvous.Client, sessions int, rate float64) {
	clients := len(cs)
	var mu sync.Mutex
	lat := make([]float64, 0, sessions)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var swg sync.WaitGroup
	failed := 0
	for s := 0; s < sessions; s++ {
		if d := time.Until(start.Add(time.Duration(s) * interval)); d > 0 {
			time.Sleep(d)
		}
		a, b := cs[(2*s)%clients], cs[(2*s+1)%clients]
		swg.Add(1)
		go func() {
			defer swg.Done()
			d, err := coordinate(ctx, a, b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			lat = append(lat, float64(d.Microseconds())/1000)
		}()
	}
	swg.Wait()
	elapsed := time.Since(start)
	res.Sessions = len(lat)
	res.Failed = failed
	res.AchievedRate = float64(sessions) / elapsed.Seconds()
	sort.Float64s(lat)
	res.LatencyP50Ms, res.LatencyP99Ms = stats.Quantile(lat, 0.5), stats.Quantile(lat, 0.99)
	if len(lat) > 0 {
		res.LatencyMaxMs = lat[len(lat)-1]
	}
}

// coordinate runs one session between a and b and returns the time from
// the second ready to both notifications.
func coordinate(ctx context.Context, a, b *rendezvous.Client) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cr, err := a.Create(ctx, "")
	if err != nil {
		return 0, err
	}
	if _, err := b.Join(ctx, cr.Session, ""); err != nil {
		return 0, err
	}
	// Each peer's public endpoint is where the server sees it (it checks).
	cand := func(c *rendezvous.Client) rendezvous.Candidates { return rendezvous.Candidates{Public: c.LocalAddr()} }
	attempt := rendezvous.AttemptID{Method: method.Machsend} // each session is fresh
	if err := a.Ready(ctx, rendezvous.ReadyParams{Session: cr.Session, Attempt: attempt, Candidates: cand(a)}); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := b.Ready(ctx, rendezvous.ReadyParams{Session: cr.Session, Attempt: attempt, Candidates: cand(b)}); err != nil {
		return 0, err
	}
	for _, c := range []*rendezvous.Client{a, b} {
		if err := waitPunch(ctx, c, cr.Session); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

func waitPunch(ctx context.Context, c *rendezvous.Client, session string) error {
	for {
		select {
		case n := <-c.Notifications():
			if n.Method != rendezvous.NotifyPunch {
				continue
			}
			var g rendezvous.PunchGo
			if json.Unmarshal(n.Params, &g) == nil && g.Session == session {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func numCPU() int { return runtime.NumCPU() }
