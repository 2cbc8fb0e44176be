package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/machsend/machsend/internal/cli"
	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/web"
)

// setupWeb runs the browser helper: a page on 127.0.0.1 to share files and
// to open links (package web).
func setupWeb(fs *flag.FlagSet) func([]string) error {
	server := fs.String("server", "", "rendezvous server HOST:PORT for shares (default $MACHSEND_SERVER, or the server of the LINK given)")
	out := fs.String("o", "", "folder downloads go into (default ~/Downloads if it exists, else the current folder)")
	noOpen := fs.Bool("no-open", false, "only print the page's address; do not open a browser")
	install := fs.Bool("install-handler", false, "register machsend web as the handler of machsend:// links on this Linux desktop, and exit")
	urlFile := fs.String("url-file", "", "also write the page's address (with its token) to this file (mode 0600)")
	atOnce := fs.Int("at-once", session.DefaultAtOnce, "how many recipients a share serves at the same time")
	com := commonFlags(fs)
	return func(pos []string) error {
		if *install {
			return installHandler()
		}
		if len(pos) > 1 {
			return cli.Usagef("at most one link (got %d arguments)", len(pos))
		}
		if *atOnce < 1 || *atOnce > 64 {
			return cli.Usagef("--at-once %d: give a number from 1 to 64", *atOnce)
		}
		var link *transfer.Link
		if len(pos) == 1 {
			l, err := transfer.ParseLink(pos[0])
			if err != nil {
				return err
			}
			link = &l
		}
		o, d, ctx, stop, err := com.options()
		if err != nil {
			return err
		}
		defer stop()
		srv, name, err := webServer(ctx, *server, link)
		if err != nil {
			return err
		}
		o.ServerName = name
		dir, err := downloadDir(*out)
		if err != nil {
			return err
		}
		cfg := web.Config{Server: srv, DownloadDir: dir, AtOnce: *atOnce, Session: o}
		if d.json != nil {
			cfg.Events = d.show
		}
		return runHelper(ctx, cfg, link, *noOpen, *urlFile)
	}
}

// runHelper serves the helper until ctx ends.
func runHelper(ctx context.Context, cfg web.Config, link *transfer.Link, noOpen bool, urlFile string) error {
	h, err := web.New(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Listen(); err != nil {
		return err
	}
	if link != nil {
		if err := h.Open(link.String()); err != nil {
			return err
		}
	}
	if urlFile != "" {
		if err := os.WriteFile(urlFile, []byte(h.URL()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the address file: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "machsend web: the page is at\n\n  %s\n\n(only this computer can open it; the address works once per browser). Downloads go into %s. Ctrl-C stops.\n", h.URL(), cfg.DownloadDir)
	if !noOpen {
		openBrowser(h.URL())
	}
	<-ctx.Done()
	return nil
}

// webServer is the rendezvous server for shares, and the name to show in
// links: the flag, the environment, or the server of the link being opened.
func webServer(ctx context.Context, flagValue string, link *transfer.Link) (netip.AddrPort, string, error) {
	if serverFlag(flagValue) == "" {
		switch {
		case link == nil:
			return netip.AddrPort{}, "", nil // receiving only; sharing says what is missing
		case link.Server.IsValid():
			return link.Server, link.Host, nil
		}
		ap, err := session.ResolveServer(ctx, link.Host)
		return ap, link.Host, err
	}
	ap, err := serverFrom(ctx, flagValue)
	return ap, session.ServerName(serverFlag(flagValue)), err
}

// downloadDir is the -o folder, ~/Downloads if it exists, or the
// current folder.
func downloadDir(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if home, err := os.UserHomeDir(); err == nil {
		if fi, err := os.Stat(filepath.Join(home, "Downloads")); err == nil && fi.IsDir() {
			return filepath.Join(home, "Downloads"), nil
		}
	}
	return os.Getwd()
}

// openBrowser asks the desktop to open url; without one, the printed
// address is enough.
func openBrowser(url string) {
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		fmt.Fprintln(os.Stderr, "machsend web: no xdg-open here; open the address above in a browser")
		return
	}
	cmd := exec.Command(path, url)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "machsend web: cannot open a browser (%v); open the address above\n", err)
		return
	}
	go cmd.Wait()
}

func installHandler() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program's path: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("cannot find this program's path: %w", err)
	}
	entry, list, err := web.InstallHandler(exe)
	if err != nil {
		return err
	}
	fmt.Printf("machsend:// links now open %s web (desktop entry %s, default set in %s)\n", exe, entry, list)
	return nil
}
