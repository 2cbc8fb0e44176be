package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/transfer"
)

// Sharing is a set of files offered behind a link: Serve hands them to
// whoever holds the link.
type Sharing struct {
	Link     transfer.Link
	Code     string // the short code of a ShareCode ("" for a link)
	Manifest *transfer.Manifest

	peer *Peer
	srcs []transfer.Source
	opts Options
	code *Code // ShareCode's
}

// Share reads the files and folders at paths, creates a session on the
// server and returns the link that fetches them (also emitted as a
// KindLink event). Nothing is sent until Serve.
func Share(ctx context.Context, server netip.AddrPort, paths []string, o Options) (*Sharing, error) {
	m, srcs, err := manifestOf(paths)
	if err != nil {
		return nil, err
	}
	secret := transfer.NewSecret()
	p, err := Create(ctx, server, secret, o)
	if err != nil {
		return nil, err
	}
	s := &Sharing{Manifest: m, peer: p, srcs: srcs, opts: o,
		Link: transfer.Link{Server: server, Host: o.ServerName, Session: p.ID, Secret: secret, Pin: o.ServerPin}}
	o.emit(Event{Kind: KindLink, Link: s.Link.String(), Files: len(m.Files), Bytes: m.Total(), Skipped: m.Skipped})
	return s, nil
}

// manifestOf reads what Share and ShareCode offer.
func manifestOf(paths []string) (*transfer.Manifest, []transfer.Source, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("share: name the files or folders to share")
	}
	m, srcs, err := transfer.BuildManifest(paths)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot share: %w", err)
	}
	return m, srcs, nil
}

// Serve waits for one receiver, connects to it and sends what it asks
// for. A receiver that only lists the files (get --list) does not count:
// Serve then waits for the next. Call it again to serve the next receiver
// on the same link, or use ServeEach to serve several at once.
func (s *Sharing) Serve(ctx context.Context) error {
	if s.code != nil {
		return s.serveCode(ctx)
	}
	for {
		err := s.serveNext(ctx)
		if !errors.Is(err, transfer.ErrListedOnly) {
			return err
		}
	}
}

func (s *Sharing) serveNext(ctx context.Context) error {
	defer s.peer.Next()
	st, err := s.peer.ConnectStream(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return sendTo(ctx, st, s, s.opts)
}

// sendTo sends the share over st, reporting to o. A receiver that only
// listed the files is reported as KindListed, and ErrListedOnly returned.
func sendTo(ctx context.Context, st Stream, s *Sharing, o Options) error {
	progress := func(p transfer.Progress) { o.emit(Event{Kind: KindProgress, Progress: &p}) }
	err := transfer.Send(ctx, st, s.Manifest, s.srcs, progress)
	switch {
	case errors.Is(err, transfer.ErrListedOnly):
		o.emit(Event{Kind: KindListed})
		return err
	case err != nil:
		o.emit(Event{Kind: KindError, Error: err.Error()})
		return fmt.Errorf("transfer failed: %w", err)
	}
	o.emit(Event{Kind: KindDone, Bytes: s.Manifest.Total(), MaxRSSKB: MaxRSS()})
	return nil
}

// Close stops sharing: the link stops working.
func (s *Sharing) Close() error { return s.peer.Close() }

// Fetch downloads what link shares, as ro says (destination, selection,
// list only); the manifest arrives as a KindManifest event before any
// file does.
func Fetch(ctx context.Context, link transfer.Link, ro transfer.ReceiveOptions, o Options) error {
	return fetchFrom(ctx, ro, o, "running the same command again resumes", func() (*Peer, error) { return joinLink(ctx, link, o) })
}

// fetchFrom checks the destination, joins the sender with join and
// receives from it; resume says how an interrupted download goes on.
func fetchFrom(ctx context.Context, ro transfer.ReceiveOptions, o Options, resume string, join func() (*Peer, error)) error {
	if !ro.ListOnly {
		if err := writable(ro.Dir); err != nil {
			return err
		}
	}
	err := func() error {
		p, err := join()
		if err != nil {
			return err
		}
		defer p.Close()
		return fetchOn(ctx, p, ro, o)
	}()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted; what arrived is kept, and %s: %w", resume, err)
	}
	return err
}

// writable checks, before anything is asked of the network, that files
// can be created in dir (making it if needed).
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot use %s as the destination: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".machsend-write-test-*")
	if err != nil {
		return fmt.Errorf("cannot write into %s (choose another -o): %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// joinLink joins the session of a link, resolving its server's name and
// using its TLS pin.
func joinLink(ctx context.Context, link transfer.Link, o Options) (*Peer, error) {
	if !link.Server.IsValid() {
		ap, err := ResolveServer(ctx, link.Host)
		if err != nil {
			return nil, fmt.Errorf("cannot find the link's server: %w", err)
		}
		link.Server = ap
	}
	if link.Pin != "" {
		o.ServerPin = link.Pin
	}
	p, err := Join(ctx, link.Server, link.Session, link.Secret, o)
	switch {
	case errors.Is(err, rendezvous.ErrNoSession):
		return nil, fmt.Errorf("this link has expired or is wrong (the sender is no longer sharing it): %w", err)
	case errors.Is(err, rendezvous.ErrWrongKey):
		return nil, fmt.Errorf("the secret in this link is wrong (check the part after '#'): %w", err)
	}
	return p, err
}

// fetchOn receives from the peer p joined: connects, then receives as ro
// says.
func fetchOn(ctx context.Context, p *Peer, ro transfer.ReceiveOptions, o Options) error {
	st, err := p.ConnectStream(ctx)
	if err != nil {
		if errors.Is(err, transfer.ErrWrongSecret) {
			return fmt.Errorf("the peer does not hold this link's secret: %w", err)
		}
		return err
	}
	defer st.Close()
	onManifest := ro.OnManifest
	ro.OnManifest = func(m *transfer.Manifest) {
		o.emit(Event{Kind: KindManifest, Manifest: m})
		if onManifest != nil {
			onManifest(m)
		}
	}
	if _, err := transfer.Receive(ctx, st, ro, func(pr transfer.Progress) { o.emit(Event{Kind: KindProgress, Progress: &pr}) }); err != nil {
		return err
	}
	if !ro.ListOnly {
		o.emit(Event{Kind: KindDone, Dir: ro.Dir, MaxRSSKB: MaxRSS()})
	}
	return nil
}
