package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/machsend/machsend/internal/rawtcp"
)

// ErrForgeOff is reported to peers asking for STUNT #1 forging from a
// server that was not started with Config.Forge.
var ErrForgeOff = errors.New("this server does not forge SYN-ACKs (start it with --forge, inside a lab)")

type forger struct {
	once sync.Once
	inj  *rawtcp.Injector
	err  error
}

// forge sends STUNT #1's two SYN-ACKs: to A, spoofed from the endpoint A's
// SYN went to (B's public endpoint), answering A's SYN with B's ISN and
// options; and the mirror image to B. Each peer's public endpoint for the
// connection is where the other peer aimed its SYN. Both must lie on the
// addresses the server observes for the two peers, so the server cannot be
// made to send packets anywhere else.
func (s *Server) forge(aAddr, bAddr netip.Addr, synA, synB rawtcp.SYN) (int, error) {
	if !s.cfg.Forge {
		return 0, ErrForgeOff
	}
	aPub, bPub := synB.To, synA.To
	if aPub.Addr() != aAddr || bPub.Addr() != bAddr {
		return 0, fmt.Errorf("forge: the SYNs' targets %s and %s are not the peers' observed addresses %s and %s", aPub, bPub, aAddr, bAddr)
	}
	s.forger.once.Do(func() { s.forger.inj, s.forger.err = rawtcp.NewInjector() })
	if s.forger.err != nil {
		return 0, s.forger.err
	}
	n := 0
	for _, f := range []struct {
		from, to netip.AddrPort
		own      rawtcp.SYN
		peerISN  uint32
	}{{bPub, aPub, synB, synA.ISN}, {aPub, bPub, synA, synB.ISN}} {
		pkt, err := rawtcp.SYNACK(f.from, f.to, f.own, f.peerISN, 0)
		if err != nil {
			return n, err
		}
		if err := s.forger.inj.Send(pkt, f.to.Addr()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
