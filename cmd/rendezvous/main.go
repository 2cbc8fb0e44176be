// Command rendezvous runs machsend's rendezvous/STUNT server (see package
// rendezvous): it coordinates hole punching between peers, serves NAT
// probing on a second endpoint and, unless disabled, relays.
//
//	rendezvous --listen 192.0.2.2:3478 --secondary 192.0.2.3:3479 --relay 192.0.2.2:3480 [--alternate 192.0.2.2:3481] [--forge]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/machsend/machsend/rendezvous"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "rendezvous: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "0.0.0.0:3478", "primary endpoint (JSON-RPC)")
	secondary := flag.String("secondary", "", "second endpoint on another address and port, for mapping comparison and connect-back")
	relayAddr := flag.String("relay", "", "relay endpoint (empty: relay disabled)")
	alternate := flag.String("alternate", "", "another port on the primary address, so natcheck can tell address- from address-and-port-dependent mapping")
	relayBytes := flag.Int64("relay-max-bytes", 8<<30, "bytes a relayed session may carry")
	relayTime := flag.Duration("relay-max-duration", time.Hour, "how long a relayed session may last")
	relayRate := flag.Float64("relay-rate", 1<<30, "relay bandwidth, all sessions together, bytes per second")
	relaySessionRate := flag.Float64("relay-session-rate", 0, "relay bandwidth of one session, bytes per second (0: only --relay-rate)")
	maxSessions := flag.Int("max-sessions", 100000, "sessions held at once (when full, the oldest idle session of the address holding most goes)")
	maxSessionsPerAddr := flag.Int("max-sessions-per-addr", 64, "sessions created from one address held at once")
	maxClients := flag.Int("max-clients", 0, "connections held at once (default and ceiling: 60% of the file-descriptor limit)")
	maxPerAddr := flag.Int("max-per-addr", 256, "connections held at once from one address (rendezvous and relay ports each)")
	idle := flag.Duration("idle", 5*time.Minute, "close connections silent this long")
	connRate := flag.Float64("conn-rate", 50, "new connections per second per source address")
	punchDelay := flag.Duration("punch-delay", 150*time.Millisecond, "lead time before a coordinated punch")
	forge := flag.Bool("forge", false, "forge STUNT #1 SYN-ACKs for peers that ask (needs CAP_NET_RAW; refused outside a natlab namespace)")
	flip := flag.Int64("fault-flip-byte", 0, "experiments only: the relay flips the byte at this offset (a faulty middlebox)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	jsonLogs := flag.Bool("json", false, "log as JSON lines")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until the server stops")
	memProfile := flag.String("memprofile", "", "write a heap profile to this file when the server stops")
	mutexProfile := flag.String("mutexprofile", "", "write a lock-contention profile to this file when the server stops")
	budget := flag.Duration("budget", 10*time.Millisecond, "when requests may have waited this long, new sessions are refused with busy and a back-off hint")
	maxPerClient := flag.Int("max-sessions-per-client", 16, "sessions one connection may hold, created by it")
	flag.Parse()
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile, *mutexProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	if *jsonLogs {
		h = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	}
	log := slog.New(h)
	cfg := rendezvous.Config{MaxSessions: *maxSessions, MaxSessionsPerClient: *maxPerClient, Budget: *budget, MaxSessionsPerAddr: *maxSessionsPerAddr, MaxClients: *maxClients, MaxClientsPerAddr: *maxPerAddr, IdleTimeout: *idle,
		ConnRate: *connRate, PunchDelay: *punchDelay, RelayMaxBytes: *relayBytes, RelayMaxDuration: *relayTime, RelayRate: *relayRate, RelaySessionRate: *relaySessionRate, Logger: log, FaultFlipByte: *flip, Forge: *forge}
	parse := func(flagName, v string) (netip.AddrPort, error) {
		ap, err := netip.ParseAddrPort(v)
		if err != nil {
			return ap, fmt.Errorf("--%s %q: want IP:PORT", flagName, v)
		}
		return ap, nil
	}
	if *secondary != "" {
		if cfg.Secondary, err = parse("secondary", *secondary); err != nil {
			return err
		}
	}
	if *relayAddr != "" {
		if cfg.RelayAddr, err = parse("relay", *relayAddr); err != nil {
			return err
		}
	}
	if *alternate != "" {
		if cfg.Alternate, err = parse("alternate", *alternate); err != nil {
			return err
		}
	}
	srv := rendezvous.NewServer(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 4)
	serve := func(addr string, relay bool) error {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		go func() {
			if relay {
				errc <- srv.ServeRelay(ln)
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		log.Info("listening", "addr", ln.Addr().String(), "relay", relay)
		return nil
	}
	if err := serve(*listen, false); err != nil {
		return err
	}
	if *secondary != "" {
		if err := serve(*secondary, false); err != nil {
			return err
		}
	}
	if *alternate != "" {
		if err := serve(*alternate, false); err != nil {
			return err
		}
	}
	if *relayAddr != "" {
		if err := serve(*relayAddr, true); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	return srv.Close()
}

// startProfiles starts a CPU profile and arranges heap and lock-contention
// profiles, written by the returned stop (the server stops on SIGINT or
// SIGTERM).
func startProfiles(cpu, mem, mutex string) (stop func(), err error) {
	var cpuFile *os.File
	if cpu != "" {
		if cpuFile, err = os.Create(cpu); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			cpuFile.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(1)
	}
	return func() {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			cpuFile.Close()
		}
		if mem != "" {
			runtime.GC()
			writeProfile("heap", mem)
		}
		if mutex != "" {
			writeProfile("mutex", mutex)
		}
	}, nil
}

func writeProfile(name, path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rendezvous: %s profile: %v\n", name, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "rendezvous: %s profile: %v\n", name, err)
	}
}
