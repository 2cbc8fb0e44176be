package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal"
)

// ShareCode is Share with a short code instead of a link: the receiver
// types the code (FetchCode) and the two sides agree on the session's
// secret with a PAKE (pake.go). A code serves one receiver, and one
// guess: a wrong code ends the share with ErrWrongCode.
func ShareCode(ctx context.Context, server netip.AddrPort, paths []string, o Options) (*Sharing, error) {
	m, srcs, err := manifestOf(paths)
	if err != nil {
		return nil, err
	}
	p, np, err := openCode(ctx, server, 0, o)
	if err != nil {
		return nil, err
	}
	code := newCode(np)
	s := &Sharing{Manifest: m, peer: p, srcs: srcs, opts: o, code: &code, Code: code.String()}
	o.emit(Event{Kind: KindLink, Code: code.String(), Files: len(m.Files), Bytes: m.Total(), Skipped: m.Skipped})
	return s, nil
}

// serveCode waits for the receiver, agrees on the secret with it and
// sends it the share.
func (s *Sharing) serveCode(ctx context.Context) error {
	select {
	case <-s.peer.Joined():
	case <-s.peer.Done():
		return errors.New("the connection to the rendezvous server is lost; the code no longer works")
	case <-ctx.Done():
		return ctx.Err()
	}
	secret, err := s.peer.agreeSender(ctx, *s.code)
	if err != nil {
		s.opts.emit(Event{Kind: KindError, Error: err.Error()})
		return err
	}
	s.peer.secret = secret
	st, err := s.peer.ConnectStream(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return sendTo(ctx, st, s, s.opts)
}

// FetchCode downloads what a short code shares from the server it was
// made on, as Fetch does for a link.
func FetchCode(ctx context.Context, server netip.AddrPort, code Code, ro transfer.ReceiveOptions, o Options) error {
	return fetchFrom(ctx, ro, o, "a new code from the sender resumes it", func() (*Peer, error) {
		p, _, err := openCode(ctx, server, code.Nameplate, o)
		if err != nil {
			return nil, err
		}
		if p.secret, err = p.agreeReceiver(ctx, code); err != nil {
			p.Close()
			return nil, err
		}
		return p, nil
	})
}

// openCode connects to the server and creates a code session (nameplate
// 0; it returns the nameplate given) or joins the one of nameplate.
func openCode(ctx context.Context, server netip.AddrPort, nameplate int, o Options) (*Peer, int, error) {
	p, _, err := dialPeer(ctx, server, nil, o, nil)
	if err != nil {
		return nil, 0, err
	}
	if nameplate == 0 {
		r, err := p.client.CreateCode(ctx)
		if err != nil {
			p.client.Close()
			return nil, 0, fmt.Errorf("create a code: %w", err)
		}
		p.ID, p.Role, nameplate = r.Session, rendezvous.RoleA, r.Nameplate
	} else {
		r, err := p.client.JoinCode(ctx, nameplate)
		if err != nil {
			p.client.Close()
			return nil, 0, fmt.Errorf("join with the code: %w", err)
		}
		p.ID, p.Role = r.Session, rendezvous.RoleB
	}
	p.signal = traversal.NewRendezvousSignal(p.client, server, p.secondary, p.ID)
	o.emit(Event{Kind: KindSession, Session: p.ID, Role: p.Role})
	return p, nameplate, nil
}
