// Command rendezvous runs machsend's rendezvous/STUNT server (see package
// rendezvous): it coordinates hole punching between peers, serves NAT
// probing on a second endpoint and, unless disabled, relays.
//
//	rendezvous --listen 192.0.2.2:3478 --secondary 192.0.2.3:3479 --relay 192.0.2.2:3480 [--alternate 192.0.2.2:3481] [--forge]
//
// It runs on Linux (an epoll event loop; SYN sniffing and forging need
// CAP_NET_RAW), macOS (kqueue; no SYN sniffing or forging) and Windows (a
// goroutine per connection; no sniffing, forging or round-trip readings).
package main

import (
	"context"
	"crypto/tls"
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

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/rendezvous"
)

// version is stamped by make dist (-ldflags -X main.version=...).
var version string

func main() {
	p := &cli.Program{Name: "rendezvous", Summary: "machsend's rendezvous/STUNT server", Version: version,
		Single: &cli.Command{Name: "rendezvous", Summary: "coordinate hole punching between machsend peers, serve NAT probing and, when given --relay, relay",
			Detail: "Serves the share links' landing pages on the --listen port too. SIGINT or SIGTERM stops it.", Setup: setup}}
	p.Main()
}

// setup defines the server's flags; it runs with no positional arguments.
func setup(fs *flag.FlagSet) func([]string) error {
	cfg, o := defineFlags(fs)
	return func(args []string) error {
		return run(*cfg, *o)
	}
}

// options are the flags that are not server configuration.
type options struct {
	listen, secondary, relay, alternate  string
	dualStack                            string
	level                                string
	jsonLogs, checkConfig                bool
	tlsKey, tlsCert                      string
	cpuProfile, memProfile, mutexProfile string
}

// defineFlags defines the flags that fill the server's configuration and
// the other options.
func defineFlags(flag *flag.FlagSet) (*rendezvous.Config, *options) {
	cfg := &rendezvous.Config{}
	o := &options{}
	flag.StringVar(&o.listen, "listen", "0.0.0.0:3478", "primary endpoint (JSON-RPC)")
	flag.StringVar(&o.dualStack, "dual-stack", "", "the primary endpoint in the other address family (e.g. [2001:db8::2]:3478 beside --listen 192.0.2.2:3478): both are served, clients learn both, and peers race IPv6 and IPv4 candidates (IPv6 first); both addresses must be specific")
	flag.StringVar(&o.secondary, "secondary", "", "second endpoint on another address and port, for mapping comparison and connect-back")
	flag.StringVar(&o.relay, "relay", "", "relay endpoint (empty: relay disabled)")
	flag.StringVar(&o.alternate, "alternate", "", "another port on the primary address, so natcheck can tell address- from address-and-port-dependent mapping")
	flag.Int64Var(&cfg.RelayMaxBytes, "relay-max-bytes", 8<<30, "bytes a relayed session may carry")
	flag.DurationVar(&cfg.RelayMaxDuration, "relay-max-duration", time.Hour, "how long a relayed session may last")
	flag.Float64Var(&cfg.RelayRate, "relay-rate", 1<<30, "relay bandwidth, all sessions together, bytes per second")
	flag.Float64Var(&cfg.RelaySessionRate, "relay-session-rate", 0, "relay bandwidth of one session, bytes per second (0: only --relay-rate)")
	flag.IntVar(&cfg.RelayBuffer, "relay-buffer", 256<<10, "socket receive and send buffer of each relayed connection, bytes: bounds the kernel memory a relayed pair holds and what a transfer leaves on the relay when it moves to a direct path")
	flag.IntVar(&cfg.MaxSessions, "max-sessions", 100000, "sessions held at once (when full, the oldest idle session of the address holding most goes)")
	flag.IntVar(&cfg.MaxSessionsPerAddr, "max-sessions-per-addr", 64, "sessions created from one address held at once")
	flag.IntVar(&cfg.MaxSessionsPerClient, "max-sessions-per-client", 16, "sessions one connection may hold, created by it")
	flag.IntVar(&cfg.MaxClients, "max-clients", 0, "connections held at once (default and ceiling: 60% of the file-descriptor limit)")
	flag.IntVar(&cfg.MaxClientsPerAddr, "max-per-addr", 256, "connections held at once from one address (rendezvous and relay ports each)")
	flag.DurationVar(&cfg.IdleTimeout, "idle", 5*time.Minute, "close connections silent this long")
	flag.Float64Var(&cfg.ConnRate, "conn-rate", 50, "new connections per second per source address")
	flag.DurationVar(&cfg.PunchDelay, "punch-delay", 0, "lead time before a coordinated punch (a peer times its start from the punch message's arrival, so a lead only delays both)")
	flag.BoolVar(&cfg.UnsyncedStarts, "unsynced-starts", false, "start both peers of a punch when the punch message reaches them, without the nearer one waiting for the farther (experiments that set the SYN offset themselves)")
	flag.DurationVar(&cfg.Budget, "budget", 10*time.Millisecond, "when requests may have waited this long, new sessions are refused with busy and a back-off hint")
	flag.BoolVar(&cfg.Forge, "forge", false, "forge STUNT #1 SYN-ACKs for peers that ask (needs CAP_NET_RAW; refused outside a natlab namespace)")
	flag.Int64Var(&cfg.FaultFlipByte, "fault-flip-byte", 0, "experiments only: the relay flips the byte at this offset (a faulty middlebox)")
	flag.StringVar(&o.level, "log-level", "info", "debug, info, warn or error")
	flag.BoolVar(&o.jsonLogs, "json", false, "log as JSON lines")
	flag.StringVar(&o.tlsKey, "tls-key", "", "also speak TLS on the rendezvous ports, with this key (PEM; made, mode 0600, if the file does not exist) and a self-signed certificate; the key's pin, printed at start, goes into every link")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "with --tls-key: serve this certificate (PEM, e.g. from ACME) instead of a self-signed one; links still pin its key")
	flag.BoolVar(&o.checkConfig, "check-config", false, "only check the flags (addresses, log level) and exit: 0 if the server would start with them")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until the server stops")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile to this file when the server stops")
	flag.StringVar(&o.mutexProfile, "mutexprofile", "", "write a lock-contention profile to this file when the server stops")
	return cfg, o
}

// checkListen checks, for --check-config, that every listening address
// parses, without listening.
func checkListen(o options) error {
	for _, a := range []struct{ name, v string }{{"listen", o.listen}, {"dual-stack", o.dualStack}, {"secondary", o.secondary}, {"relay", o.relay}, {"alternate", o.alternate}} {
		if a.v == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(a.v); err != nil {
			return cli.Usagef("--%s %q: want IP:PORT", a.name, a.v)
		}
	}
	fmt.Println("rendezvous: configuration ok")
	return nil
}

// endpoints sets the server's optional endpoints from the flags.
func endpoints(cfg *rendezvous.Config, o options) error {
	for _, e := range []struct {
		name, v string
		to      *netip.AddrPort
	}{{"secondary", o.secondary, &cfg.Secondary}, {"relay", o.relay, &cfg.RelayAddr}, {"alternate", o.alternate, &cfg.Alternate}} {
		if e.v == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(e.v)
		if err != nil {
			return cli.Usagef("--%s %q: want IP:PORT", e.name, e.v)
		}
		*e.to = ap
	}
	return dualStack(cfg, o)
}

// dualStack sets the server's endpoints in both families from --listen
// and --dual-stack: two specific addresses, one in each family.
func dualStack(cfg *rendezvous.Config, o options) error {
	if o.dualStack == "" {
		return nil
	}
	primary, err := netip.ParseAddrPort(o.listen)
	if err != nil {
		return cli.Usagef("--listen %q: want IP:PORT", o.listen)
	}
	other, err := netip.ParseAddrPort(o.dualStack)
	if err != nil {
		return cli.Usagef("--dual-stack %q: want IP:PORT", o.dualStack)
	}
	switch {
	case primary.Addr().IsUnspecified() || other.Addr().IsUnspecified():
		return cli.Usagef("--dual-stack: clients are told both endpoints, so --listen (%s) and --dual-stack (%s) must be specific addresses, not 0.0.0.0 or ::", primary, other)
	case sockopt.Is6(primary.Addr()) == sockopt.Is6(other.Addr()):
		return cli.Usagef("--dual-stack %s: give an address in the other family than --listen %s", other, primary)
	}
	cfg.Endpoints = []netip.AddrPort{primary, other}
	return nil
}

func run(cfg rendezvous.Config, o options) error {
	stopProfiles, err := startProfiles(o.cpuProfile, o.memProfile, o.mutexProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return cli.UsageError{Err: fmt.Errorf("--log-level: %w", err)}
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	if o.jsonLogs {
		h = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	}
	log := slog.New(h)
	cfg.Logger = log
	if err := endpoints(&cfg, o); err != nil {
		return err
	}
	if o.tlsKey != "" || o.tlsCert != "" {
		tlsCfg, pin, err := loadTLS(o.tlsKey, o.tlsCert)
		if err != nil {
			return err
		}
		cfg.TLS = tlsCfg
		fmt.Fprintf(os.Stderr, "rendezvous: TLS key pin %s (links made here carry it; give it to clients with --server-pin)\n", pin)
	}
	if o.checkConfig {
		return checkListen(o)
	}
	srv := rendezvous.NewServer(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 4)
	serve := func(addr string, relay bool) error {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return fmt.Errorf("listen %s: give an address and a port (0.0.0.0:3478, [2001:db8::1]:3478): %w", addr, err)
		}
		ln, err := net.Listen(sockopt.Network(ap), addr)
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
	for _, e := range []struct {
		addr  string
		relay bool
	}{{o.listen, false}, {o.dualStack, false}, {o.secondary, false}, {o.alternate, false}, {o.relay, true}} {
		if e.addr == "" {
			continue
		}
		if err := serve(e.addr, e.relay); err != nil {
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

// loadTLS makes the TLS configuration of --tls-key and --tls-cert, and
// its pin.
func loadTLS(keyFile, certFile string) (*tls.Config, string, error) {
	if keyFile == "" {
		return nil, "", cli.Usagef("--tls-cert needs --tls-key")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
		pin, err := rendezvous.PinOf(cfg)
		return cfg, pin, err
	}
	key, err := rendezvous.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("--tls-key: %w", err)
	}
	return rendezvous.SelfSignedTLS(key)
}
