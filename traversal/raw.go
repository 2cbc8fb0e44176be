package traversal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/rawtcp"
	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/rendezvous"
)

// Parameters of the raw-socket methods.
const (
	// synCaptureWait bounds how long a peer waits to see its own SYN.
	synCaptureWait = 300 * time.Millisecond
	// synackResend is NATBlaster's interval between copies of its crafted
	// SYN-ACK; synackCopies how many it sends at most.
	synackResend = 200 * time.Millisecond
	synackCopies = 3
	// birthdayPorts is how many ports each side of NATBlaster's birthday
	// fallback uses: the predictable side sends this many low-TTL SYNs to
	// guessed ports of the random side, which then opens this many fresh
	// mappings toward the predictable side's endpoint. With a NAT choosing
	// among 64,512 ports, some guess hits with probability
	// 1-(1-600/64512)^600 = 99.6%, for at most 1,200 SYNs (each retransmitted
	// at most once).
	birthdayPorts = 600
	// BirthdayRange is how many ports a random NAT picks among (Linux's
	// fully random masquerade: 1024-65535).
	BirthdayRange = 65536 - 1024
)

// BirthdayChance is the chance that some of pending guessed ports equals
// one of the mappings a NAT picking uniformly among n ports opens.
func BirthdayChance(pending, mappings, n int) float64 {
	if n <= 0 || pending <= 0 || mappings <= 0 {
		return 0
	}
	return 1 - math.Pow(1-float64(min(pending, n))/float64(n), float64(mappings))
}

// unpredictable says whether candidates come from a NAT whose port toward a
// new destination cannot be known (dependent mapping, no prediction).
func unpredictable(c rendezvous.Candidates) bool {
	return c.Mapping == nat.SeenDependent && len(c.Predicted) == 0
}

// halfOpen is one peer's low-TTL SYN: the connecting socket left in SYN_SENT
// (TTL restored for what follows), what the capture saw of the SYN, and the
// capture that keeps watching the port for diagnosis.
type halfOpen struct {
	s     *sockopt.RawSocket
	cap   *rawtcp.Capture
	syn   rawtcp.SYN
	local netip.AddrPort // the SYN's private source
}

func (h *halfOpen) close() {
	if h.s != nil {
		h.s.Close()
	}
	if h.cap != nil {
		h.cap.Close()
	}
}

// errRawIPv4Only: STUNT #1 and NATBlaster capture their own SYN and forge
// packets with IPv4 headers (internal/rawtcp); over IPv6 they do not apply.
var errRawIPv4Only = errors.New("the captured and forged packets of STUNT #1 and NATBlaster are IPv4 only")

// sendLowTTL connects from the attempt's port to t with a low TTL, captures
// the SYN the kernel sent, and restores the TTL.
func (a *attempt) sendLowTTL(t netip.AddrPort) (*halfOpen, error) {
	h := &halfOpen{}
	if t.Addr().Is6() && !t.Addr().Is4In6() {
		return h, errRawIPv4Only
	}
	var err error
	if h.cap, err = rawtcp.NewCapture(a.port); err != nil {
		return h, err
	}
	if h.s, err = sockopt.NewRawSocket(a.anyAddr(a.port), a.lowTTL()); err != nil {
		return h, err
	}
	if err := h.s.Connect(t); err != nil {
		return h, err
	}
	a.rec.Packets++
	a.emit("syn-sent", fmt.Sprintf("ttl %d", a.lowTTL()), t)
	if err := h.s.SetTTL(64); err != nil {
		return h, err
	}
	deadline := time.After(synCaptureWait)
	for {
		select {
		case c := <-h.cap.C:
			if c.Outgoing && c.SYN && !c.ACK && c.Dst == t {
				h.syn, h.local = c.Options, c.Src
				h.syn.To = t
				a.emit("syn-captured", fmt.Sprintf("isn %d mss %d wscale %d sack %v", h.syn.ISN, h.syn.MSS, h.syn.WScale, h.syn.SACK), t)
				return h, nil
			}
		case <-deadline:
			return h, fmt.Errorf("own SYN to %s not seen on the wire within %v", t, synCaptureWait)
		}
	}
}

// rawExchange trades SYN descriptions with the peer through the rendezvous
// (and, for STUNT #1, asks the server to forge). A peer that could not make
// its SYN still takes part, saying why, so neither side waits in vain.
func (a *attempt) rawExchange(ctx context.Context, syn rawtcp.SYN, forge bool) (rendezvous.PunchGo, error) {
	c := a.self
	c.SYN, c.Forge = &syn, forge
	g, err := a.r.cfg.Signal.Ready(ctx, a.rec.ID.WithStep("syn"), c)
	if err != nil {
		return g, err
	}
	if g.Peer.SYN == nil {
		return g, errors.New("the peer sent no SYN description")
	}
	if g.Peer.SYN.Aborted != "" {
		return g, fmt.Errorf("peer: %s", g.Peer.SYN.Aborted)
	}
	return g, nil
}

// rawAbort tells the peer this side cannot go on, then returns err.
func (a *attempt) rawAbort(ctx context.Context, err error, forge bool) error {
	xctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _ = a.rawExchange(xctx, rawtcp.SYN{Aborted: err.Error()}, forge)
	if errors.Is(err, rawtcp.ErrPrivilege) || errors.Is(err, rawtcp.ErrNotLab) || errors.Is(err, errRawIPv4Only) {
		return fmt.Errorf("%w: %v", ErrNotApplicable, err)
	}
	return err
}

// stunt1 is Guha & Francis's STUNT #1: both peers send a low-TTL SYN to the
// other's (predicted) public endpoint, capture their own ISN and hand it to
// the rendezvous server, which forges for each peer the SYN-ACK its NAT
// expects, spoofed from the other peer's public endpoint. Each kernel, in
// SYN_SENT, takes the forged SYN-ACK and completes the handshake with an
// ACK that the other NAT now expects.
func (a *attempt) stunt1(ctx context.Context) error {
	return a.rawMethod(ctx, true)
}

// natblaster is Biggadike et al.'s NATBlaster: both peers send a low-TTL
// SYN, exchange their captured ISNs through the rendezvous server, and each
// injects (raw socket) the SYN-ACK the other side's NAT expects: from its
// own endpoint to the peer's public endpoint, carrying its own ISN and
// acknowledging the peer's. The server spoofs nothing. When exactly one
// side's NAT allocates ports unpredictably, it falls back to a bounded
// birthday search (natblasterBirthday).
func (a *attempt) natblaster(ctx context.Context) error {
	switch su, pu := unpredictable(a.self), unpredictable(a.peer); {
	case su && pu:
		return a.rawAbort(ctx, errors.New("both NATs allocate ports unpredictably: NATBlaster needs at least one predictable side"), false)
	case su || pu:
		return a.natblasterBirthday(ctx, su)
	}
	return a.rawMethod(ctx, false)
}

func (a *attempt) rawMethod(ctx context.Context, forge bool) error {
	t, predicted := a.target()
	a.rec.Target, a.rec.Predicted = t, predicted
	if forge && unpredictable(a.peer) {
		return a.rawAbort(ctx, fmt.Errorf("the peer's NAT allocates ports unpredictably: STUNT #1 cannot aim its SYN"), forge)
	}
	if a.ln != nil {
		a.ln.Close() // the kernel's pending connect completes; nobody listens
		a.ln = nil
	}
	var inj *rawtcp.Injector
	if !forge {
		var err error
		if inj, err = rawtcp.NewInjector(); err != nil {
			return a.rawAbort(ctx, err, forge)
		}
		defer inj.Close()
	}
	h, err := a.sendLowTTL(t)
	defer h.close()
	if err != nil {
		return a.rawAbort(ctx, err, forge)
	}
	if err := h.s.Err(); err != nil {
		return a.rawAbort(ctx, a.diagnose(h, err, forge), forge)
	}
	g, err := a.rawExchange(ctx, h.syn, forge)
	if err != nil {
		return err
	}
	peer := *g.Peer.SYN
	if forge {
		if g.Forged == 0 {
			why := g.ForgeError
			if why == "" {
				why = "the server does not know how to forge (an older rendezvous)"
			}
			return fmt.Errorf("%w: server forged no SYN-ACKs: %s", ErrNotApplicable, why)
		}
		a.emit("forged", fmt.Sprintf("server forged %d SYN-ACKs", g.Forged), t)
	} else {
		pkt, err := rawtcp.SYNACK(h.local, t, h.syn, peer.ISN, 0)
		if err != nil {
			return err
		}
		ictx, icancel := context.WithCancel(ctx)
		injDone := make(chan struct{})
		defer func() { <-injDone }()
		defer icancel()
		go func() {
			defer close(injDone)
			ctx := ictx
			for i := 0; i < synackCopies; i++ {
				// Our own kernel may already be connected (the peer's SYN-ACK
				// came first, and the socket may be handed over); the peer's
				// still needs ours, so every copy goes until the attempt ends.
				if ctx.Err() != nil {
					return
				}
				if err := inj.Send(pkt, t.Addr()); err != nil {
					a.emit("inject-failed", err.Error(), t)
					return
				}
				a.mu.Lock()
				a.rec.Packets++
				a.mu.Unlock()
				a.emit("synack-injected", fmt.Sprintf("seq %d ack %d", h.syn.ISN, peer.ISN+1), t)
				select {
				case <-time.After(synackResend):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if err := h.s.Wait(ctx); err != nil {
		return a.diagnose(h, err, forge)
	}
	c, err := h.s.Conn()
	if err != nil {
		return err
	}
	if !a.offer(c) {
		return ErrAuth
	}
	return nil
}

// diagnose turns a failed raw method into a specific reason from what the
// capture saw on this side.
func (a *attempt) diagnose(h *halfOpen, err error, forge bool) error {
	var synack, rst *rawtcp.Captured
	icmp := false
	for _, c := range h.cap.Seen() {
		switch {
		case c.Outgoing:
		case c.TimeExceeded() && c.Src == h.local:
			icmp = true
		case c.SYN && c.ACK && synack == nil:
			synack = &c
		case c.RST && rst == nil:
			rst = &c
		}
	}
	who := "the peer's NAT dropped the peer's injected outbound SYN-ACK (or our mapping was not where the peer aimed)"
	if forge {
		who = "our NAT did not pass the server's forged SYN-ACK (our mapping was not where the server sent it)"
	}
	switch {
	case icmp && (errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)):
		return fmt.Errorf("our NAT translated the ICMP time-exceeded of the low-TTL SYN back to us and the kernel aborted the pending connect: %w", err)
	case synack != nil && synack.Ack != h.syn.ISN+1:
		return fmt.Errorf("a SYN-ACK from %s acknowledged %d, not our ISN+1 = %d: a NAT rewrote the sequence number: %w", synack.Src, synack.Ack, h.syn.ISN+1, err)
	case rst != nil:
		return fmt.Errorf("reset by %s before the handshake completed: %w", rst.Src, err)
	case synack == nil:
		return fmt.Errorf("no SYN-ACK arrived: %s: %w", who, err)
	}
	return err
}

// natblasterBirthday is the fallback when one NAT (the random side)
// allocates unpredictably. The predictable side sends birthdayPorts low-TTL
// SYNs from its port to guessed ports of the random side's address, which
// opens that many entries in its NAT; then, told through the rendezvous,
// the random side opens birthdayPorts fresh connections to the predictable
// side's public endpoint. Where a fresh mapping equals a guess, the two
// meet as a simultaneous open: the random side's SYN finds the guess's
// entry in the predictable side's NAT, or (if that NAT dropped it) the
// guess's retransmission, at full TTL a second later, finds the fresh
// mapping's entry in the random side's NAT. Behind a NAT that translates
// ICMP time-exceeded, the guesses that draw one are aborted, but routers
// rate-limit it (measured: 122 for 603 guesses), so most stay. Bounded: at most
// 2 x birthdayPorts SYNs, each retransmitted at most once, within the
// attempt's timeout.
func (a *attempt) natblasterBirthday(ctx context.Context, selfRandom bool) error {
	t, _ := a.target()
	a.rec.Target = t
	if a.ln != nil {
		a.ln.Close()
		a.ln = nil
	}
	var socks []*sockopt.RawSocket
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	open := func(local netip.AddrPort, ttl int, to netip.AddrPort) error {
		s, err := sockopt.NewRawSocket(local, ttl)
		if err != nil {
			return err
		}
		socks = append(socks, s)
		_ = s.SetSynCount(1)
		if err := s.Connect(to); err != nil {
			return err
		}
		a.rec.Packets++
		return nil
	}
	if !selfRandom {
		a.emit("birthday", fmt.Sprintf("guessing %d ports of %s", birthdayPorts, t.Addr()), t)
		for _, p := range rand.Perm(BirthdayRange)[:birthdayPorts] {
			if err := open(a.anyAddr(a.port), a.lowTTL(), netip.AddrPortFrom(t.Addr(), uint16(1024+p))); err != nil {
				return err
			}
		}
		for _, s := range socks {
			_ = s.SetTTL(64)
		}
	}
	if _, err := a.r.cfg.Signal.Ready(ctx, a.rec.ID.WithStep("guessed"), a.self); err != nil {
		return err
	}
	if !selfRandom {
		a.countPending(socks, t)
	} else {
		a.emit("birthday", fmt.Sprintf("opening %d mappings toward %s", birthdayPorts, t), t)
		for i := 0; i < birthdayPorts; i++ {
			if err := open(a.anyAddr(0), 0, t); err != nil {
				return err
			}
		}
		a.rec.Birthday = &Birthday{Mappings: len(socks)}
	}
	return a.birthdayHits(ctx, socks, t)
}

// countPending records how many guesses the random side's mappings can
// still meet: an ICMP error aborts a guess's connect.
func (a *attempt) countPending(guesses []*sockopt.RawSocket, t netip.AddrPort) {
	b := &Birthday{Guesses: len(guesses)}
	for _, s := range guesses {
		if s.Pending() {
			b.Pending++
		}
	}
	a.rec.Birthday = b
	a.emit("birthday", fmt.Sprintf("%d of %d guesses still pending (collision probability %.1f%% against %d mappings)", b.Pending, b.Guesses, 100*BirthdayChance(b.Pending, birthdayPorts, BirthdayRange), birthdayPorts), t)
}

// birthdayHits waits for the birthday search's connections. Several
// guesses may hit, and each side only sees its own end: it offers every
// connection that completes (as acceptLoop does), so both sides
// authenticate the same ones; A's nomination picks one.
func (a *attempt) birthdayHits(ctx context.Context, socks []*sockopt.RawSocket, t netip.AddrPort) error {
	live := append([]*sockopt.RawSocket(nil), socks...)
	wctx, found := context.WithCancel(ctx)
	defer found()
	var lastErr error
	for len(live) > 0 {
		i, err := sockopt.WaitAny(wctx, live)
		if err != nil {
			lastErr = err
			break
		}
		s := live[i]
		live = append(live[:i], live[i+1:]...)
		a.emit("birthday-hit", fmt.Sprintf("%s after %d SYNs", s.Local(), a.rec.Packets), t)
		c, err := s.Conn()
		if err != nil {
			lastErr = err
			continue
		}
		go func() {
			if a.offer(c) {
				found()
			}
		}()
	}
	a.mu.Lock()
	ok := a.found
	a.mu.Unlock()
	if ok {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("birthday search: no guess matched one of the random side's %d mappings within the attempt: %w", birthdayPorts, ctx.Err())
	}
	return fmt.Errorf("birthday search: every connection failed: %w", lastErr)
}
