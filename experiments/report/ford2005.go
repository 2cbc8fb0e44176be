package report

import (
	"maps"
	"slices"
	"strings"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/nat"
)

// The figures Ford, Srisuresh & Kegel published ("Peer-to-Peer
// Communication Across Network Address Translators", USENIX 2005): the
// share of the NATs their NAT Check tool measured that support hole
// punching.
const (
	fordTCP = 64 // percent, TCP
	fordUDP = 82 // percent, UDP
)

// hostClasses are the classifier's failure classes caused by the peers'
// own kernel rather than by a NAT: Linux's tcp_v4_err aborts a connect in
// SYN_SENT when a translated ICMP error for it arrives.
var hostClasses = []string{"icmp-translated"}

// fordCriterion is what the paper names as a NAT's requirements for TCP
// hole punching: a consistent public endpoint for a private one
// (endpoint-independent mapping), and no active rejection (RST or ICMP) of
// unsolicited inbound SYNs. A host without a NAT meets it.
func fordCriterion(p *nat.Profile) bool {
	if !p.NAT {
		return true
	}
	rejects := []nat.SYNResponse{nat.SYNRST, nat.SYNICMPPort, nat.SYNICMPAdmin}
	return p.Mapping == nat.EndpointIndependent && !slices.Contains(rejects, p.UnsolicitedSYN)
}

// writeFord2005 sets the matrix beside the 2005 papers' published figures:
// the criterion behind Ford et al.'s 64% tested against p2pnat between two
// NATs of the same profile, and the approaches' failures split into those
// of the hosts' kernel and those of the NATs.
func writeFord2005(p printer, trials []*spec.Trial, cells []*CellStats) {
	self := map[string]*CellStats{}
	for _, c := range cells {
		a, b := c.Cell.Profiles["nat-a"], c.Cell.Profiles["nat-b"]
		if c.Cell.Topology == "two-nat" && c.Cell.Case == "" && c.Cell.Method == "p2pnat" && a == b && a != "" {
			self[a] = c
		}
	}
	if len(self) == 0 {
		return
	}
	p("## Against the 2005 papers' published figures")
	p("")
	p("Ford, Srisuresh & Kegel (USENIX 2005) found about %d%% of the NATs their NAT Check tool measured to support TCP hole punching (%d%% for UDP), and name what a NAT needs for it: a consistent public endpoint for a private one (endpoint-independent mapping) and no active rejection (RST or ICMP) of unsolicited SYNs. The lab's profiles are design points, not a census, so it cannot restate the percentage; it tests the criterion behind it. p2pnat (their method) between two NATs of the same profile:", fordTCP, fordUDP)
	p("")
	p("| profile | mapping | unsolicited SYN | meets the criterion | p2pnat, same profile both sides | model's reason |")
	p("|---|---|---|---|---:|---|")
	var met, metAll, failed, failedAny int
	var metButFailed, failedButConnected []string
	names := slices.Sorted(maps.Keys(self))
	for _, name := range names {
		prof, err := nat.Load(name)
		if err != nil {
			continue
		}
		c := self[name]
		ok := fordCriterion(prof)
		all := c.N > 0 && c.Successes == c.N
		switch {
		case ok:
			met++
			if all {
				metAll++
			} else {
				metButFailed = append(metButFailed, name)
			}
		default:
			failed++
			if c.Successes > 0 {
				failedAny++
				failedButConnected = append(failedButConnected, name)
			}
		}
		p("| %s | %s | %s | %s | %d/%d | %s |", name, prof.Mapping, prof.UnsolicitedSYN, yesNo(ok), c.Successes, c.N, c.PredictedReason)
	}
	p("")
	p("The criterion holds for %d profiles; p2pnat connected every trial between two of them for %d (not for: %s). It fails for %d; %d of those connected in some trial nevertheless (%s). The model's reason in each row says why; the criterion looks at neither a NAT's simultaneous-open handling nor its forwarding of unsolicited SYNs, nor at whether the two SYNs cross.", met, metAll, listOrNone(metButFailed), failed, failedAny, listOrNone(failedButConnected))
	p("")
	writeHostVsNAT(p, trials)
}

// writeHostVsNAT splits the 2005 approaches' failed two-NAT trials into
// failures of the hosts' kernel and failures of the NATs.
func writeHostVsNAT(p printer, trials []*spec.Trial) {
	host, natSide := map[string]int{}, map[string]int{}
	for _, t := range trials {
		if t.Success || t.Cell.Topology != "two-nat" || t.Cell.Case != "" || !slices.Contains(approaches2005, t.Cell.Method) {
			continue
		}
		if slices.Contains(hostClasses, t.Class) {
			host[t.Cell.Method]++
		} else {
			natSide[t.Cell.Method]++
		}
	}
	p("Which failures come from the hosts rather than the NATs: a failed trial whose classifier class is %s failed because the peer's own Linux kernel aborted its pending connect on a translated ICMP error (`tcp_v4_err`); a host that ignores such errors in SYN_SENT would not have failed there. The rest failed at a NAT (its filtering, mapping, RST or sequence tracking) or for want of evidence.", strings.Join(hostClasses, ", "))
	p("")
	p("| approach | failed trials | of which the host's kernel | of which a NAT or unknown |")
	p("|---|---:|---:|---:|")
	for _, m := range approaches2005 {
		p("| %s | %d | %d | %d |", m, host[m]+natSide[m], host[m], natSide[m])
	}
	p("")
	p("Guha & Francis (IMC 2005) published per-approach success rates over the NATs they tested; those figures are not in this repository, and the lab's profiles are not their NAT population, so the report compares mechanisms with their paper (the approach table above), not percentages.")
	p("")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
