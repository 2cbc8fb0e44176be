package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal/method"
)

// common are the flags send and get share.
type common struct {
	asJSON     *bool
	methodName *string
	serverPin  *string
}

func commonFlags(fs *flag.FlagSet) common {
	return common{
		asJSON:     fs.Bool("json", false, "print machine-readable events (one JSON object per line) instead of a progress display"),
		methodName: fs.String("method", "auto", method.Help()),
		serverPin:  fs.String("server-pin", "", "speak TLS to the rendezvous server and accept only its key with this pin (rendezvous --tls-key prints it; default $MACHSEND_SERVER_PIN, or pin = in ~/.config/machsend/config); a link carries its own"),
	}
}

// options turns the common flags into session options that report to a
// new display, and a context that ends on SIGINT or SIGTERM.
func (c common) options() (session.Options, *display, context.Context, context.CancelFunc, error) {
	m, err := method.Parse(*c.methodName)
	if err != nil {
		return session.Options{}, nil, nil, nil, err
	}
	pin := configValue(*c.serverPin, "MACHSEND_SERVER_PIN", "pin")
	if pin != "" && !transfer.ValidPin(pin) {
		return session.Options{}, nil, nil, nil, cli.Usagef("--server-pin %q: want the 43 characters rendezvous printed", pin)
	}
	d := newDisplay(*c.asJSON)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return session.Options{Method: m, Events: d.show, ServerPin: pin}, d, ctx, stop, nil
}

// serverFlag is the --server flag, $MACHSEND_SERVER, or the server of
// the configuration file (config.go).
func serverFlag(flagValue string) string {
	return configValue(flagValue, "MACHSEND_SERVER", "server")
}

// serverFrom resolves the --server flag or $MACHSEND_SERVER.
func serverFrom(ctx context.Context, flagValue string) (netip.AddrPort, error) {
	v := serverFlag(flagValue)
	if v == "" {
		return netip.AddrPort{}, cli.Usagef("no rendezvous server: pass --server HOST:PORT, set MACHSEND_SERVER, or put server = HOST:PORT in %s", configPath())
	}
	return session.ResolveServer(ctx, v)
}

// setupSend shares files and folders: prints a link and serves the receiver.
func setupSend(fs *flag.FlagSet) func([]string) error {
	server := fs.String("server", "", "rendezvous server HOST:PORT (default $MACHSEND_SERVER)")
	keep := fs.Bool("keep", false, "keep serving further receivers after the first, several at once")
	atOnce := fs.Int("at-once", session.DefaultAtOnce, "with --keep, how many receivers to serve at the same time (each with its own connection)")
	linkFile := fs.String("link-file", "", "also write the link (or code) to this file (mode 0600)")
	code := fs.Bool("code", false, "give a short code (like 7-guitar-orbit) instead of a link: machsend get CODE on the other side, with the same server; one receiver, one guess")
	com := commonFlags(fs)
	return func(paths []string) error {
		if *code && *keep {
			return cli.Usagef("--code serves one receiver; share with a link (without --code) to use --keep")
		}
		if len(paths) == 0 {
			return cli.Usagef("name the files or folders to share")
		}
		if *atOnce < 1 || *atOnce > 64 {
			return cli.Usagef("--at-once %d: give a number from 1 to 64", *atOnce)
		}
		o, _, ctx, stop, err := com.options()
		if err != nil {
			return err
		}
		defer stop()
		srv, err := serverFrom(ctx, *server)
		if err != nil {
			return err
		}
		o.ServerName = session.ServerName(serverFlag(*server)) // a name stays a name in the link
		share := session.Share
		if *code {
			share = session.ShareCode
		}
		sh, err := share(ctx, srv, paths, o)
		if err != nil {
			return err
		}
		defer sh.Close()
		if *linkFile != "" {
			given := sh.Link.String()
			if *code {
				given = sh.Code
			}
			if err := os.WriteFile(*linkFile, []byte(given+"\n"), 0o600); err != nil {
				return fmt.Errorf("write the link file: %w", err)
			}
		}
		if *keep {
			return sh.ServeEach(ctx, *atOnce)
		}
		return sh.Serve(ctx)
	}
}

// readTarget takes the link or code from the argument, standard input
// ("-") or $MACHSEND_LINK, so it need not appear in the process list.
func readTarget(args []string) (string, error) {
	var raw string
	switch {
	case len(args) > 1:
		return "", cli.Usagef("one link at a time (got %d arguments)", len(args))
	case len(args) > 0 && args[0] == "-":
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the link from standard input: %w", err)
		}
		raw = line
	case len(args) > 0:
		raw = args[0]
	default:
		raw = os.Getenv("MACHSEND_LINK")
	}
	if strings.TrimSpace(raw) == "" {
		return "", cli.Usagef("give the link or code as an argument, on standard input (-) or in MACHSEND_LINK")
	}
	return strings.TrimSpace(raw), nil
}

// multi collects repeated flags.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// setupGet downloads what a link or a short code shares.
func setupGet(fs *flag.FlagSet) func([]string) error {
	out := fs.String("o", ".", "destination folder")
	server := fs.String("server", "", "with a code: the rendezvous server HOST:PORT it was made on (default $MACHSEND_SERVER, or server= in ~/.config/machsend/config); a link names its own")
	list := fs.Bool("list", false, "only list what is shared")
	overwrite := fs.Bool("overwrite", false, "replace existing files (one of the shared file's size and modification time counts as already here and is skipped)")
	checksum := fs.Bool("checksum", false, "also have both sides compute each file's SHA-256 and check it before the file is put in place, and print it (what sha256sum prints); costs a hash pass over every byte on each side, where the encrypted channel already authenticates every byte")
	var only multi
	fs.Var(&only, "only", "download only entries matching this pattern (path.Match, or a path prefix); repeatable")
	com := commonFlags(fs)
	return func(pos []string) error {
		target, err := readTarget(pos)
		if err != nil {
			return err
		}
		o, _, ctx, stop, err := com.options()
		if err != nil {
			return err
		}
		defer stop()
		ro := transfer.ReceiveOptions{Dir: *out, Overwrite: *overwrite, ListOnly: *list, Checksum: *checksum}
		if len(only) > 0 {
			ro.Select = transfer.MatchAny(only)
		}
		if !session.LooksLikeCode(target) {
			link, err := transfer.ParseLink(target)
			if err != nil {
				return err
			}
			return session.Fetch(ctx, link, ro, o)
		}
		code, err := session.ParseCode(target)
		if err != nil {
			return cli.UsageError{Err: err}
		}
		srv, err := serverFrom(ctx, *server)
		if err != nil {
			return err
		}
		return session.FetchCode(ctx, srv, code, ro, o)
	}
}
