package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/machsend/machsend/traversal/method"

	"github.com/mdp/qrterminal/v3"
	"golang.org/x/term"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal"
)

// display shows progress on a terminal, or as JSON lines with --json.
type display struct {
	json     *jsonOut
	tty      bool
	path     string
	start    time.Time
	mu       sync.Mutex
	last     time.Time
	lastKind string
}

func newDisplay(asJSON bool) *display {
	d := &display{tty: term.IsTerminal(int(os.Stdout.Fd())), start: time.Now()}
	if asJSON {
		d.json = newJSONOut(os.Stdout)
	}
	return d
}

// say prints a message (or a JSON event).
func (d *display) say(kind string, v any, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.json != nil {
		d.json.write(kind, v)
		return
	}
	if d.lastKind == "progress" && d.tty {
		fmt.Println()
	}
	d.lastKind = kind
	if text != "" {
		fmt.Println(text)
	}
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress renders one progress event: per file and total, speed and ETA
// (resumed bytes are not counted in the speed), and the path in use.
func (d *display) progress(p transfer.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Kind == "manifest" || (p.Kind == "file-start" && p.Sent == 0) {
		d.start = time.Now() // speed counts transfer time only
	}
	if p.Kind == "chunk" && time.Since(d.last) < 200*time.Millisecond {
		return
	}
	d.last = time.Now()
	if d.json != nil {
		d.json.write("progress", p)
		return
	}
	elapsed := time.Since(d.start).Seconds()
	speed := float64(p.Sent) / max(elapsed, 0.001)
	eta := "-"
	if p.Sent > 0 && p.Total > 0 {
		eta = (time.Duration(float64(p.Total-p.Sent-p.Resumed)/speed) * time.Second).Round(time.Second).String()
	}
	filePct := 100.0
	if p.FileSize > 0 {
		filePct = 100 * float64(p.FileBytes) / float64(p.FileSize)
	}
	line := fmt.Sprintf("[%s] %s %3.0f%% | total %s / %s | %s/s | ETA %s",
		d.path, p.File, filePct, human(p.Sent+p.Resumed), human(p.Total), human(int64(speed)), eta)
	if p.Resumed > 0 {
		line += fmt.Sprintf(" | resumed %s", human(p.Resumed))
	}
	if d.tty {
		fmt.Printf("\r\033[K%s", line)
		d.lastKind = "progress"
	} else if p.Kind != "chunk" {
		fmt.Println(line)
	}
}

func (d *display) setPath(rep *traversal.Report) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.path = rep.Path
	if rep.Path == "punched" {
		d.path = "punched by " + string(rep.Method)
	}
}

// connectPeer runs NAT probing and traversal for one peer of a session and
// returns the secured channel.
func connectPeer(ctx context.Context, s *session, method traversal.Method, secret []byte, d *display) (*transfer.SecureConn, *traversal.Report, error) {
	_, conn, rep, err := s.connect(ctx, method, secret, 0, func(e traversal.Event) {
		if d.json != nil {
			d.json.write("event", e)
			return
		}
		switch e.Kind {
		case "nat":
			d.say("nat", nil, "this side: "+e.Detail)
		case "expect":
			d.say("expect", nil, "expected path: "+e.Detail)
		}
	})
	if err != nil {
		if rep != nil && d.json != nil {
			d.json.write("report", rep)
		}
		return nil, rep, fmt.Errorf("no path to the peer: %w", err)
	}
	d.setPath(rep)
	d.say("connected", rep, fmt.Sprintf("connected (%s) in %s", d.path, rep.ConnectTime.Round(time.Millisecond)))
	sc, err := transfer.Secure(conn, secret, s.id, s.role == rendezvous.RoleB)
	if err != nil {
		conn.Close()
		return nil, rep, err
	}
	return sc, rep, nil
}

func serverFrom(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv("MACHSEND_SERVER"); v != "" {
		return v, nil
	}
	return "", errors.New("no rendezvous server: pass --server IP:PORT or set MACHSEND_SERVER")
}

// cmdSend shares files and folders: prints a link and serves the receiver.
func cmdSend(args []string) error {
	fs := flag.NewFlagSet("machsend send", flag.ContinueOnError)
	server := fs.String("server", "", "rendezvous server IP:PORT (default $MACHSEND_SERVER)")
	keep := fs.Bool("keep", false, "keep serving further receivers after the first")
	asJSON := fs.Bool("json", false, "print machine-readable events instead of a progress display")
	methodName := fs.String("method", "auto", method.Help())
	linkFile := fs.String("link-file", "", "also write the link to this file (mode 0600)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("send: name the files or folders to share")
	}
	srv, err := serverFrom(*server)
	if err != nil {
		return err
	}
	method, err := method.Parse(*methodName)
	if err != nil {
		return err
	}
	d := newDisplay(*asJSON)
	m, srcs, err := transfer.BuildManifest(fs.Args(), nil)
	if err != nil {
		return fmt.Errorf("cannot share: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := openSession(ctx, srv, "")
	if err != nil {
		return err
	}
	defer s.client.Close()
	secret := transfer.NewSecret()
	link := transfer.Link{Server: s.server, Session: s.id, Secret: secret}
	if *linkFile != "" {
		if err := os.WriteFile(*linkFile, []byte(link.String()+"\n"), 0o600); err != nil {
			return err
		}
	}
	d.say("link", map[string]any{"link": link.String(), "files": len(m.Files), "bytes": m.Total()},
		fmt.Sprintf("sharing %d entries, %s. Send this link to the recipient:\n\n  %s\n", len(m.Files), human(m.Total()), link))
	if d.tty && d.json == nil {
		qrterminal.GenerateHalfBlock(link.String(), qrterminal.L, os.Stdout)
	}
	for {
		sc, _, err := connectPeer(ctx, s, method, secret, d)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		err = transfer.Send(ctx, sc, m, srcs, d.progress)
		sc.Close()
		if err != nil {
			d.say("error", map[string]string{"error": err.Error()}, "transfer failed: "+err.Error())
			if !*keep {
				return err
			}
		} else {
			d.say("done", map[string]any{"bytes": m.Total(), "max_rss_kb": maxRSS()}, "transfer complete")
		}
		if !*keep {
			return nil
		}
		// Serve the next receiver on the same session.
		s.signal.Stop()
		s.signal = traversal.NewRendezvousSignal(s.client, s.server, s.signal.Secondary, s.id)
	}
}

// readLink takes the link from the argument, standard input ("-") or
// $MACHSEND_LINK, so it need not appear in the process list.
func readLink(args []string) (transfer.Link, error) {
	var raw string
	switch {
	case len(args) > 0 && args[0] == "-":
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return transfer.Link{}, err
		}
		raw = line
	case len(args) > 0:
		raw = args[0]
	default:
		raw = os.Getenv("MACHSEND_LINK")
	}
	if strings.TrimSpace(raw) == "" {
		return transfer.Link{}, errors.New("get: give the link as an argument, on standard input (-) or in MACHSEND_LINK")
	}
	return transfer.ParseLink(raw)
}

// multi collects repeated flags.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// cmdGet downloads what a link shares.
func cmdGet(args []string) error {
	fs := flag.NewFlagSet("machsend get", flag.ContinueOnError)
	out := fs.String("o", ".", "destination folder")
	list := fs.Bool("list", false, "only list what is shared")
	overwrite := fs.Bool("overwrite", false, "replace existing files that differ")
	asJSON := fs.Bool("json", false, "print machine-readable events instead of a progress display")
	methodName := fs.String("method", "auto", method.Help())
	var only multi
	fs.Var(&only, "only", "download only entries matching this pattern (path.Match, or a path prefix); repeatable")
	// Flags may follow the link.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	link, err := readLink(pos)
	if err != nil {
		return err
	}
	method, err := method.Parse(*methodName)
	if err != nil {
		return err
	}
	d := newDisplay(*asJSON)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := openSession(ctx, link.Server.String(), link.Session)
	if err != nil {
		if errors.Is(err, rendezvous.ErrNoSession) {
			return fmt.Errorf("this link has expired or is wrong (the sender is no longer sharing it): %w", err)
		}
		return err
	}
	defer s.client.Close()
	sc, _, err := connectPeer(ctx, s, method, link.Secret, d)
	if err != nil {
		if errors.Is(err, transfer.ErrWrongSecret) {
			return fmt.Errorf("the peer does not hold this link's secret: %w", err)
		}
		return err
	}
	defer sc.Close()
	opts := transfer.ReceiveOptions{Dir: *out, Overwrite: *overwrite, ListOnly: *list}
	if len(only) > 0 {
		opts.Select = func(e transfer.Entry) bool {
			for _, pat := range only {
				if ok, _ := path.Match(pat, e.Path); ok || e.Path == pat || strings.HasPrefix(e.Path, strings.TrimSuffix(pat, "/")+"/") ||
					strings.HasPrefix(pat, e.Path+"/") {
					return true
				}
			}
			return false
		}
	}
	opts.OnManifest = func(m *transfer.Manifest) {
		var lines []string
		for _, e := range m.Files {
			if e.Dir {
				lines = append(lines, fmt.Sprintf("  %s/", e.Path))
			} else {
				lines = append(lines, fmt.Sprintf("  %-60s %12s", e.Path, human(e.Size)))
			}
		}
		d.say("manifest", m, fmt.Sprintf("%d entries, %s in total:\n%s", len(m.Files), human(m.Total()), strings.Join(lines, "\n")))
	}
	_, err = transfer.Receive(ctx, sc, opts, d.progress)
	if err != nil {
		return err
	}
	if !*list {
		d.say("done", map[string]any{"dir": *out, "max_rss_kb": maxRSS()}, "received into "+*out)
	}
	return nil
}

// maxRSS is this process's peak resident set size in KiB.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss
}
