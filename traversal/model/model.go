// Package model predicts, from two NATs' behaviours, whether each traversal
// method connects and why. Every rule is written from the knobs of the NAT
// model (RFC 4787/5382 mapping, allocation and filtering; Guha & Francis's
// TCP knobs) and from what Linux hosts and conntrack do with the packets each
// method sends; the experiments compare these predictions with measurements.
//
// The model is deliberately a pure function of its inputs: no namespaces, no
// netfilter, no timing. Where an outcome depends on a race the lab does not
// control, the rule says so.
package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/traversal/method"
)

// Prediction is the model's verdict for one method between two NATs.
type Prediction struct {
	Success bool   `json:"success"`
	Reason  string `json:"reason"`
	// Race, when set, says that the outcome depends on which SYN reaches
	// which NAT first, and the condition under which the method connects;
	// Success is the verdict for the Path the prediction was made for.
	Race string `json:"race,omitempty"`
}

// Path is what the model knows of the timing between the two NATs, for
// the methods whose outcome depends on which SYN arrives first (the SYNs
// of both peers leave at one agreed moment).
type Path struct {
	// DelayA is how long after peer A's SYN creates its entry in A's NAT
	// a packet from that NAT reaches the core (and, the other way, how
	// long the core's packets take to reach A's NAT); DelayB likewise.
	DelayA, DelayB time.Duration
	// Offset is how much later A's SYN leaves A's NAT than B's leaves B's
	// (negative: earlier).
	Offset time.Duration
	// Budget is how long one punching attempt may take, for the rules
	// that count on retries (0: AttemptBudget, traversal's default).
	Budget time.Duration
}

// Crossing reports whether each NAT has made its own SYN's entry before
// the peer's SYN reaches it: B's SYN reaches A's NAT DelayB+DelayA after
// the agreed moment, A's entry is made Offset+DelayA after it, and the
// other way round. At zero delay and offset nothing crosses for certain:
// scheduling decides, and the model predicts the worse outcome.
func (p Path) Crossing() bool { return -p.DelayA < p.Offset && p.Offset < p.DelayB }

func (p Path) window() string {
	return fmt.Sprintf("connects when A's SYN leaves its NAT less than %v after B's and less than %v before it (the SYNs cross, so each NAT has its own entry when the peer's SYN arrives); outside that window the early SYN is reset, and the retries connect only if the two sides' refusal-and-retry loops differ by no more than the window (%v), so that the retried SYNs drift into it within the attempt; equal loops stay in lockstep", p.DelayB, p.DelayA, p.DelayA+p.DelayB)
}

// early reports whether side a's (or else B's) SYN is the early one
// outside the crossing window: it reaches the far NAT before that NAT has
// its own entry.
func (p Path) early(a bool) bool {
	if a {
		return p.Offset <= -p.DelayA
	}
	return p.Offset >= p.DelayB
}

// Topology kinds the model distinguishes.
const (
	Separate = "separate" // A and B behind different NATs (two-nat, one-public, double-nat)
	SameNAT  = "same-nat" // A and B behind one NAT (same-lan, hairpin)
)

// predictable says whether a peer can tell the other which public endpoint
// its next connection will come from.
func predictable(n *nat.Profile) (bool, string) {
	switch {
	case !n.NAT:
		return true, "public host"
	case n.Mapping == nat.EndpointIndependent:
		return true, "endpoint-independent mapping: the observed mapping is reused"
	case n.PortAllocation == nat.Sequential:
		return true, "dependent mapping but sequential allocation: the next port is predicted"
	}
	return false, fmt.Sprintf("%s mapping with %s allocation: the port toward the peer cannot be known", n.Mapping, n.PortAllocation)
}

// reachable says whether a SYN from anywhere reaches a listening host
// behind n at its observed mapping.
func reachable(n *nat.Profile) bool { return !n.NAT || n.Filtering == nat.EndpointIndependent }

// rstsStraySYN says whether a SYN sent to a port with no listener behind n
// comes back as a RST (which moves the sender's NAT entry to CLOSE).
func rstsStraySYN(n *nat.Profile) (bool, string) {
	switch {
	case !n.NAT:
		return true, "the public host's stack answers with RST"
	case n.Filtering == nat.EndpointIndependent:
		return true, "endpoint-independent filtering forwards the SYN to the host, whose stack answers with RST"
	case n.UnsolicitedSYN == "rst":
		return true, "the NAT answers the unsolicited SYN with RST"
	}
	return false, ""
}

// Predict returns the model's verdict for method between peers A and B
// at zero delay and offset (PredictAt for a path).
func Predict(topology string, a, b *nat.Profile, m string) Prediction {
	return PredictAt(topology, a, b, m, Path{})
}

// PredictAt returns the model's verdict for method between peers A and B
// over path.
func PredictAt(topology string, a, b *nat.Profile, m string, path Path) Prediction {
	if topology == SameNAT {
		return predictSame(a, m)
	}
	if method.Method(m) == method.Auto {
		return predictAuto(Separate, a, b, path)
	}
	rule, ok := rules[method.Method(m)]
	if !ok {
		return Prediction{Success: false, Reason: "unknown method " + m}
	}
	return rule(a, b, path)
}

// rules predicts each method of method.Table between peers behind
// different NATs. TestEveryMethodHasARule fails when a row has none.
var rules = map[method.Method]func(a, b *nat.Profile, p Path) Prediction{
	method.LAN: func(a, b *nat.Profile, _ Path) Prediction {
		return Prediction{Success: false, Reason: "peers are behind different public addresses: no shared LAN"}
	},
	method.Direct: func(a, b *nat.Profile, _ Path) Prediction { return predictDirect(a, b) },
	method.Relay: func(a, b *nat.Profile, _ Path) Prediction {
		return Prediction{Success: true, Reason: "the relay carries any pair"}
	},
	method.Machsend:   func(a, b *nat.Profile, _ Path) Prediction { return predictRounds(a, b, "machsend") },
	method.Sequential: func(a, b *nat.Profile, _ Path) Prediction { return predictRounds(a, b, "sequential") },
	method.STUNT2:     func(a, b *nat.Profile, _ Path) Prediction { return predictRounds(a, b, "stunt2") },
	method.STUNT2Hold: func(a, b *nat.Profile, _ Path) Prediction { return predictRounds(a, b, "stunt2-hold") },
	method.P2PNAT:     predictP2P,
	method.STUNT1:     func(a, b *nat.Profile, _ Path) Prediction { return predictSTUNT1(a, b) },
	method.NATBlaster: func(a, b *nat.Profile, _ Path) Prediction { return predictNATBlaster(a, b) },
}

// predictAuto tries the methods in auto's order (method.Table) and names
// the first that connects; the relay connects any pair.
func predictAuto(topology string, a, b *nat.Profile, path Path) Prediction {
	var tried []string
	for _, s := range method.Table {
		if s.Method == method.Relay {
			continue
		}
		m := string(s.Method)
		var p Prediction
		if topology == SameNAT {
			p = predictSame(a, m)
		} else {
			p = PredictAt(topology, a, b, m, path)
		}
		if p.Success {
			return Prediction{Success: true, Race: p.Race, Reason: fmt.Sprintf("path %s: %s succeeds (%s)", s.Path, m, p.Reason)}
		}
		tried = append(tried, m)
	}
	return Prediction{Success: true, Reason: "path relay: no direct or punched method works (" + strings.Join(tried, ", ") + " fail)"}
}

func predictDirect(a, b *nat.Profile) Prediction {
	switch {
	case reachable(b):
		return Prediction{Success: true, Reason: fmt.Sprintf("B (%s) accepts unsolicited SYNs at its observed mapping", describe(b))}
	case reachable(a):
		return Prediction{Success: true, Reason: fmt.Sprintf("A (%s) accepts unsolicited SYNs at its observed mapping", describe(a))}
	}
	return Prediction{Success: false, Reason: fmt.Sprintf("neither NAT forwards an unsolicited SYN (A filtering %s, B filtering %s)", a.Filtering, b.Filtering)}
}

func describe(n *nat.Profile) string {
	if !n.NAT {
		return "public host"
	}
	return n.Name
}

// predictRounds covers the asymmetric methods, which run once with A as
// initiator and once with B (roles swapped once on failure).
func predictRounds(a, b *nat.Profile, method string) Prediction {
	r1 := round(a, b, method)
	if r1.Success {
		return Prediction{Success: true, Reason: "A initiates: " + r1.Reason}
	}
	r2 := round(b, a, method)
	if r2.Success {
		return Prediction{Success: true, Reason: "A's round fails (" + r1.Reason + "); B initiates: " + r2.Reason}
	}
	return Prediction{Success: false, Reason: "A initiates: " + r1.Reason + "; B initiates: " + r2.Reason}
}

// round predicts one round with initiator i and responder r.
func round(i, r *nat.Profile, method string) Prediction {
	listens := method != "stunt2-hold"
	if listens && !i.NAT {
		return Prediction{Success: true, Reason: "the initiator is public: the responder's SYN reaches its listener from whatever mapping"}
	}
	rPred, rWhy := predictable(r)
	if listens && !rPred && (i.Filtering == nat.EndpointIndependent || i.Filtering == nat.AddressDependent) {
		// The responder's SYN comes from a mapping the initiator's NAT has no
		// entry for, so it is new there; filtering that looks at the address
		// only (or at nothing) forwards it to the initiator's listener once
		// the initiator's own SYN went to the responder's address.
		return Prediction{Success: true, Reason: "the responder's SYN arrives from an unpredicted port; the initiator's " + string(i.Filtering) + " filtering forwards it to the listener"}
	}
	if !rPred {
		return Prediction{Success: false, Reason: "responder: " + rWhy}
	}
	if listens && i.Filtering == nat.EndpointIndependent {
		// A SYN arriving for a conntrack entry that a RST has closed makes
		// conntrack drop the entry and look the SYN up again as new (the
		// kernel reopens closed connections); endpoint-independent
		// filtering then forwards it to the listener. So for such an
		// initiator a RST from the responder's side does no harm.
		if ok, _ := predictable(i); ok {
			return Prediction{Success: true, Reason: "the initiator's endpoint-independent filtering forwards the responder's SYN to its listener (a closed entry is reopened as new)"}
		}
	}
	if ok, why := predictable(i); !ok {
		return Prediction{Success: false, Reason: "initiator: " + why}
	}
	switch method {
	case "stunt2-hold":
		// The held connect stays in SYN_SENT; the responder's SYN completes a
		// simultaneous open on the same ISN, so sequence tracking is no
		// obstacle. But the low-TTL SYN's ICMP time-exceeded, if it reaches
		// the host, aborts the pending connect (Linux tcp_v4_err).
		if !i.NAT {
			return Prediction{Success: false, Reason: "the initiator has no NAT to stop the ICMP time-exceeded, which aborts its held connect"}
		}
		if i.ICMPTimeExceeded != "drop" {
			return Prediction{Success: false, Reason: "initiator's NAT translates the ICMP time-exceeded back, which aborts the held connect"}
		}
		if i.SimultaneousOpen != "accept" {
			return Prediction{Success: false, Reason: "initiator's NAT does not accept an inbound SYN on an outbound SYN's tuple (simultaneous-open " + string(i.SimultaneousOpen) + ")"}
		}
		return Prediction{Success: true, Reason: "initiator's NAT drops the ICMP and admits the responder's SYN into the held connect (simultaneous open, same ISN)"}
	case "machsend", "sequential":
		if !i.NAT {
			return Prediction{Success: true, Reason: "the initiator is public: the responder's SYN reaches its listener"}
		}
		if rst, why := rstsStraySYN(r); rst {
			return Prediction{Success: false, Reason: "the initiator's SYN is answered with RST (" + why + "), so its NAT entry is CLOSE and the responder's SYN is invalid there"}
		}
	case "stunt2":
		if !i.NAT {
			return Prediction{Success: true, Reason: "the initiator is public: the responder's SYN reaches its listener"}
		}
		// The low-TTL SYN never reaches the responder's NAT: no RST can close the entry.
	}
	if i.SimultaneousOpen != "accept" {
		return Prediction{Success: false, Reason: "initiator's NAT rejects the responder's SYN on its outbound SYN's tuple (simultaneous-open " + string(i.SimultaneousOpen) + ")"}
	}
	if i.SequenceTracking != "liberal" {
		return Prediction{Success: false, Reason: "initiator's listener answers with a new ISN; strict sequence tracking drops that SYN-ACK"}
	}
	return Prediction{Success: true, Reason: "responder's SYN matches the initiator's NAT entry (SYN_SENT2) and the new-ISN SYN-ACK passes a liberal NAT"}
}

// predictP2P: both sides listen and connect to each other repeatedly from
// the same port. A SYN gets through if the far NAT forwards unsolicited SYNs
// to the listener, or once the far peer's own SYN has opened its NAT and
// that NAT accepts the inbound SYN on the outbound SYN's tuple (retries and
// SYN retransmissions guarantee such a moment within the attempt).
func predictP2P(a, b *nat.Profile, path Path) Prediction {
	p := predictP2PAt(a, b, path)
	if p2pRace(a, b) {
		p.Race = path.window()
		for _, x := range [][2]*nat.Profile{{a, b}, {b, a}} {
			if strictResets(x[0], x[1]) {
				p.Race += "; but " + x[0].Name + " (strict sequence tracking, RST) against " + x[1].Name + "'s ICMP fails outside the window unless the peer's SYN is the early one and " + x[0].Name + "'s side retries before the peer's first retry reaches its NAT"
			}
		}
	}
	return p
}

// p2pRace says whether p2pnat's outcome between a and b depends on which
// SYN arrives first: a NAT that answers an early SYN with RST spoils the
// attempt unless the SYNs cross.
func p2pRace(a, b *nat.Profile) bool {
	if reachable(a) || reachable(b) {
		return false
	}
	return (a.UnsolicitedSYN == "rst" && b.UnsolicitedSYN == "rst") || strictResets(a, b) || strictResets(b, a)
}

// strictResets says whether s tracks sequence numbers strictly and resets
// unsolicited SYNs while its peer o rejects them with ICMP.
func strictResets(s, o *nat.Profile) bool {
	icmp := o.UnsolicitedSYN == "icmp-port-unreachable" || o.UnsolicitedSYN == "icmp-admin-prohibited"
	return s.SequenceTracking == "strict" && s.UnsolicitedSYN == "rst" && icmp
}

// predictP2PAt is p2pnat's verdict over path (see predictP2P).
func predictP2PAt(a, b *nat.Profile, path Path) Prediction {
	if reachable(a) || reachable(b) {
		return Prediction{Success: true, Reason: "one side forwards unsolicited SYNs to its listener (the other side's SYN reaches it from any mapping)"}
	}
	aPred, _ := predictable(a)
	bPred, _ := predictable(b)
	if (a.Filtering == nat.AddressDependent && !bPred) || (b.Filtering == nat.AddressDependent && !aPred) {
		// Each side also aims at the other's observed public endpoint, so an
		// address-dependent NAT has sent to the peer's address and admits
		// the peer's SYN from whatever port it comes.
		return Prediction{Success: true, Reason: "an address-dependent filter admits the peer's SYN from its unpredicted port, once its own SYN went to the peer's address"}
	}
	for i, x := range [][2]*nat.Profile{{a, b}, {b, a}} {
		if p, ok := predictStrictRST(x[0], x[1], i == 0, path); ok {
			return p
		}
	}
	if ok, why := predictable(a); !ok {
		return Prediction{Success: false, Reason: "A: " + why}
	}
	if ok, why := predictable(b); !ok {
		return Prediction{Success: false, Reason: "B: " + why}
	}
	switch {
	case reachable(a) || reachable(b):
		return Prediction{Success: true, Reason: "one side forwards unsolicited SYNs to its listener"}
	case a.UnsolicitedSYN == "rst" && b.UnsolicitedSYN == "rst" && !path.Crossing():
		// Each peer's first SYN reaches the other NAT before that NAT has an
		// entry and is answered with RST, which moves the sender's entry to
		// CLOSE. The other peer's SYN then meets a CLOSE entry: conntrack
		// calls it invalid, it is delivered to the NAT itself and answered
		// with RST again. Each host retries a fixed time after its refusal,
		// reopening its CLOSE entry at once; whether the retries ever cross
		// depends on how the two refusal loops differ (Path.RetriesCross).
		ok, _ := path.RetriesCross()
		return Prediction{Success: ok, Reason: "both NATs answer an early SYN with RST, and each RST closes the other side's entry; " + path.retryWhy()}
	case a.UnsolicitedSYN == "rst" && b.UnsolicitedSYN == "rst" && (a.SimultaneousOpen == "accept" || b.SimultaneousOpen == "accept"):
		return Prediction{Success: true, Reason: fmt.Sprintf("the SYNs cross (offset %v inside the window): a NAT admits the peer's SYN on its own outbound SYN's tuple (simultaneous open, same ISN) before any RST", path.Offset)}
	case a.SimultaneousOpen == "accept" || b.SimultaneousOpen == "accept":
		return Prediction{Success: true, Reason: "a NAT admits the peer's SYN on its own outbound SYN's tuple (simultaneous open, same ISN)"}
	}
	return Prediction{Success: false, Reason: "neither NAT forwards unsolicited SYNs nor accepts a simultaneous open"}
}

// predictStrictRST covers a NAT s with strict sequence tracking that
// resets unsolicited SYNs, against a peer NAT o that rejects them with
// ICMP, when the SYNs do not cross (sIsA: s is A's NAT). o's ICMP aborts
// s's connect either way, and s's entry stays in SYN_SENT tracking the
// first ISN. If the peer's SYN reaches s's host before s retries, the host
// (its listener) answers with a new ISN, which s's NAT drops; every later
// SYN meets the same entry. That happens when s's SYN is the early one,
// and when the peer's first retry reaches s's NAT before s's own retry
// leaves (Path.retriesFirst). Otherwise s's retry, on a new and larger ISN
// in SYN_SENT, reinitialises the entry (conntrack's RFC 793 rule), and the
// peer's retried SYN meets it as a simultaneous open. ok is false when
// the rule does not apply.
func predictStrictRST(s, o *nat.Profile, sIsA bool, path Path) (Prediction, bool) {
	if !strictResets(s, o) || path.Crossing() {
		return Prediction{}, false
	}
	if path.early(sIsA) {
		return Prediction{Success: false, Reason: s.Name + "'s side sends the early SYN: " + o.Name + " rejects it with ICMP, which aborts the connect, the peer's SYN reaches the host before its retry, and the retry's new ISN fails " + s.Name + "'s strict sequence tracking"}, true
	}
	if !path.retriesFirst(sIsA) {
		return Prediction{Success: false, Reason: s.Name + " resets the peer's early SYN and " + o.Name + "'s ICMP aborts the connect of " + s.Name + "'s side, and the peer's retried SYN reaches that host before its own retry: the host answers with a new ISN, which " + s.Name + "'s strict sequence tracking drops"}, true
	}
	return Prediction{Success: true, Reason: s.Name + " resets the peer's early SYN and " + o.Name + "'s ICMP aborts the connect of " + s.Name + "'s side, which retries on a larger ISN before the peer's retried SYN arrives; the retry reinitialises " + s.Name + "'s strict entry and the peer's SYN meets it as a simultaneous open"}, true
}

// predictSame covers two hosts behind one NAT n.
func predictSame(n *nat.Profile, method string) Prediction {
	switch method {
	case "lan":
		return Prediction{Success: true, Reason: "same public address: private endpoints connect on the LAN"}
	case "relay":
		return Prediction{Success: true, Reason: "the relay carries any pair"}
	case "p2pnat":
		return Prediction{Success: true, Reason: "p2pnat also connects to private endpoints, which are on the same LAN"}
	case "auto":
		return Prediction{Success: true, Reason: "path lan: same public address"}
	case "direct", "machsend", "sequential", "stunt2":
		if !n.NAT {
			return Prediction{Success: true, Reason: "no NAT: public endpoints are the hosts' own"}
		}
		if n.Hairpinning {
			return Prediction{Success: true, Reason: "hairpinning sends the SYN to the peer's public endpoint back into the LAN"}
		}
		return Prediction{Success: false, Reason: "no hairpinning: a SYN to the NAT's own public address from inside is answered by the NAT itself"}
	case "stunt2-hold":
		return Prediction{Success: false, Reason: "the held connect is answered by the peer's host or the NAT (RST) before the peer's SYN arrives"}
	case "stunt1", "natblaster":
		return Prediction{Success: false, Reason: "a low-TTL SYN toward the NAT's own public address does not leave the NAT: it is answered inside (no hairpin punching with raw methods)"}
	}
	return Prediction{Success: false, Reason: "unknown method " + method}
}

// holdsLowTTL says whether a host behind n can keep a connect pending after
// its low-TTL SYN died beyond n: the SYN's ICMP time-exceeded must not
// reach the host, because Linux aborts a SYN_SENT socket on it
// (tcp_v4_err). STUNT #1 and NATBlaster both depend on this.
func holdsLowTTL(n *nat.Profile) (bool, string) {
	switch {
	case !n.NAT:
		return false, "no NAT stops the low-TTL SYN's ICMP time-exceeded, which aborts the host's pending connect"
	case n.ICMPTimeExceeded != "drop":
		return false, n.Name + " translates the low-TTL SYN's ICMP time-exceeded back, which aborts the pending connect"
	}
	return true, ""
}

// predictSTUNT1: both peers' low-TTL SYNs open their own NATs (and die
// before the other's); the server forges to each the SYN-ACK its entry
// expects, from the other peer's public endpoint, with the exact ISNs. So
// filtering, unsolicited-SYN handling, simultaneous open and sequence
// tracking do not matter; mapping prediction and ICMP handling do.
func predictSTUNT1(a, b *nat.Profile) Prediction {
	for _, x := range []struct {
		side string
		n    *nat.Profile
	}{{"A", a}, {"B", b}} {
		if ok, why := predictable(x.n); !ok {
			return Prediction{Success: false, Reason: x.side + ": " + why + " (STUNT #1 aims its SYN and forges at the predicted endpoint; it has no fallback)"}
		}
		if ok, why := holdsLowTTL(x.n); !ok {
			return Prediction{Success: false, Reason: x.side + ": " + why}
		}
	}
	return Prediction{Success: true, Reason: "both NATs keep their low-TTL SYN's entry and drop its ICMP; each passes the server's forged SYN-ACK as the reply its entry expects (exact ISN, so sequence tracking is no obstacle)"}
}

// predictNATBlaster: as STUNT #1, but each peer injects the SYN-ACK itself,
// so each NAT must also translate an outbound SYN-ACK on a tuple whose SYN
// went out (Linux conntrack calls that invalid). With exactly one
// unpredictable side it falls back to a birthday search (predictBirthday).
func predictNATBlaster(a, b *nat.Profile) Prediction {
	ap, aWhy := predictable(a)
	bp, bWhy := predictable(b)
	switch {
	case !ap && !bp:
		return Prediction{Success: false, Reason: "both sides unpredictable (A: " + aWhy + "; B: " + bWhy + "): no birthday search without one predictable side"}
	case !ap:
		return predictBirthday(b, a, "B", "A")
	case !bp:
		return predictBirthday(a, b, "A", "B")
	}
	for _, x := range []struct {
		side string
		n    *nat.Profile
	}{{"A", a}, {"B", b}} {
		if ok, why := holdsLowTTL(x.n); !ok {
			return Prediction{Success: false, Reason: x.side + ": " + why}
		}
		if x.n.OutboundSYNACK != "translate" {
			return Prediction{Success: false, Reason: "NAT-" + x.side + " drops the outbound SYN-ACK its host injects after its own SYN"}
		}
	}
	return Prediction{Success: true, Reason: "both NATs drop the low-TTL SYN's ICMP, translate the injected outbound SYN-ACK and pass the peer's as the reply their entry expects"}
}

// predictBirthday: the predictable side p keeps 600 low-TTL guesses pending
// from one port, toward random ports of the random side r, which then opens
// 600 fresh mappings toward p's endpoint. A guess equal to one of those
// mappings (probability about 99.6%) meets in one of two places. Either r's
// SYN reaches p's NAT and finds the guess's entry (p's NAT must accept a
// simultaneous open); or, when p's NAT silently drops it, the guess's
// retransmission (full TTL, 1 s later) reaches r's NAT and finds the
// fresh mapping's entry (r's NAT must accept a simultaneous open). ICMP
// time-exceeded handling matters little here: the router where the guesses
// die rate-limits its ICMP (measured in the lab: 122 time-exceeded for 603
// low-TTL SYNs), so about 480 guesses stay pending even behind a NAT that
// translates it, and the hit probability only drops to about 98.9%.
func predictBirthday(p, r *nat.Profile, pSide, rSide string) Prediction {
	const pre = "birthday fallback: "
	if p.NAT && p.Mapping != nat.EndpointIndependent {
		return Prediction{Success: false, Reason: pre + "the predictable side " + pSide + " has " + string(p.Mapping) + " mapping, so its guesses leave from different ports"}
	}
	if !p.NAT || p.SimultaneousOpen == "accept" {
		return Prediction{Success: true, Reason: pre + rSide + "'s colliding SYN meets one of " + pSide + "'s 600 pending guesses, which " + pSide + " admits as a simultaneous open (a collision is likely: 99.6% while all 600 guesses stay pending)"}
	}
	if p.SimultaneousOpen == "drop" && p.Filtering != nat.EndpointIndependent && (p.UnsolicitedSYN == "drop" || p.UnsolicitedSYN == "delayed-icmp") && r.SimultaneousOpen == "accept" {
		return Prediction{Success: true, Reason: pre + pSide + "'s NAT silently drops " + rSide + "'s SYNs, so they stay pending; a guess's retransmission meets one of " + rSide + "'s 600 fresh mappings, which " + rSide + "'s NAT admits as a simultaneous open (a collision is likely: 99.6% while all 600 guesses stay pending)"}
	}
	return Prediction{Success: false, Reason: pre + pSide + "'s NAT rejects the colliding SYN (simultaneous-open " + string(p.SimultaneousOpen) + ") and answers or forwards the others, so no pending pair survives to meet again"}
}
