package classify

import (
	"encoding/json"
	"fmt"
	"html"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/natlab"
)

// Ladder is a handshake drawn as a sequence diagram from a trial's pcaps.
type Ladder struct {
	Title string `json:"title"`
	Trial string `json:"trial"`
	File  string `json:"file"` // relative to the results directory
}

type arrow struct {
	t        time.Time
	from, to int
	label    string
}

// ladderLanes are the columns of a two-NAT ladder.
var ladderLanes = []string{"A", "NAT-A", "Internet", "NAT-B", "B"}

// drawLadder renders the TCP handshake packets of a two-nat trial.
func drawLadder(out string, t *spec.Trial, path string) error {
	arrows := ladderArrows(out, t)
	if len(arrows) == 0 {
		return fmt.Errorf("no handshake packets")
	}
	sort.SliceStable(arrows, func(i, j int) bool { return arrows[i].t.Before(arrows[j].t) })
	if len(arrows) > 60 {
		arrows = arrows[:60]
	}
	return os.WriteFile(path, []byte(ladderSVG(t, arrows)), 0o644)
}

// lane is a NAT's column in the ladder and its host's, beside it.
type lane struct{ side, host int }

// ladderView is what orients arrows: each peer's nearest NAT (by topology
// role) with its lanes, and the public address the peer's probe saw.
type ladderView struct {
	lanes map[string]lane
	pub   map[string]netip.Addr
}

// newLadderView finds peer A's and peer B's NATs; ok is false for a
// topology without a NAT in front of each peer.
func newLadderView(t *spec.Trial, topo *natlab.Topology) (ladderView, bool) {
	sa, sb := topo.SideNATs()
	if len(sa) == 0 || len(sb) == 0 || sa[0] == sb[0] {
		return ladderView{}, false
	}
	v := ladderView{lanes: map[string]lane{sa[0]: {1, 0}, sb[0]: {3, 4}}, pub: map[string]netip.Addr{}}
	if t.NATA != nil {
		v.pub[sa[0]] = t.NATA.Public
	}
	if t.NATB != nil {
		v.pub[sb[0]] = t.NATB.Public
	}
	return v, true
}

// isPeerNAT reports whether a is either peer's NAT's public address.
func (v ladderView) isPeerNAT(a netip.Addr) bool {
	for _, p := range v.pub {
		if p == a {
			return true
		}
	}
	return false
}

// ladderArrows reads the trial's captures and turns every handshake packet
// (SYN, RST, FIN or ICMP, not the rendezvous server's traffic) into an
// arrow between lanes.
func ladderArrows(out string, t *spec.Trial) []arrow {
	topo, err := spec.Topology(t.Cell.Topology)
	if err != nil {
		return nil
	}
	view, ok := newLadderView(t, topo)
	if !ok {
		return nil
	}
	rv := map[netip.Addr]bool{}
	for _, ps := range topo.Addresses(topo.WithRole(natlab.RoleRendezvous)) {
		for _, p := range ps {
			rv[p.Addr()] = true
		}
	}
	var arrows []arrow
	for _, rel := range t.Pcaps {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(rel), ".gz"), ".pcap")
		node, _, lan := strings.Cut(base, "-lan")
		if !lan {
			node, _, _ = strings.Cut(base, "-wan")
		}
		if _, known := view.lanes[node]; !known {
			continue
		}
		pkts, err := ReadPcap(filepath.Join(out, rel))
		if err != nil {
			continue
		}
		for _, p := range pkts {
			s, ok := decode(p)
			if !ok || rv[s.src.Addr()] || rv[s.dst.Addr()] || towardRV(s.inner, rv) {
				continue
			}
			if s.icmp == "" && !strings.ContainsAny(s.flags, "SRF") {
				continue
			}
			if a, ok := view.arrow(s, node, lan); ok {
				arrows = append(arrows, a)
			}
		}
	}
	return arrows
}

// arrow orients one packet captured on node's LAN or WAN side; ok is false
// for a packet drawn at the other NAT (its egress arriving here).
func (v ladderView) arrow(s seg, node string, lan bool) (arrow, bool) {
	side, host := v.lanes[node].side, v.lanes[node].host
	label := s.flags
	if s.icmp != "" {
		label = "ICMP " + s.icmp
	}
	label = fmt.Sprintf("%s %s→%s", label, s.src, s.dst)
	a := arrow{t: s.t, label: label}
	if lan {
		if s.src.Addr() == v.pub[node] || !isPrivateLab(s.src.Addr()) {
			a.from, a.to = side, host
		} else {
			a.from, a.to = host, side
		}
		return a, true
	}
	switch {
	case s.src.Addr() == v.pub[node]:
		// Egress: toward the other NAT (or the Internet).
		a.from = side
		a.to = 4 - side
		if !v.isPeerNAT(s.dst.Addr()) {
			a.to = 2
		}
	case s.dst.Addr() == v.pub[node] && !v.isPeerNAT(s.src.Addr()):
		a.from, a.to = 2, side // from a router (e.g. ICMP time-exceeded)
	default:
		return a, false // arrival of the other NAT's egress: drawn there
	}
	return a, true
}

// ladderSVG draws the arrows as a ladder diagram, one row each.
func ladderSVG(t *spec.Trial, arrows []arrow) string {
	t0 := arrows[0].t
	const colW, top, rowH = 170, 60, 26
	width := colW*len(ladderLanes) + 80
	height := top + rowH*len(arrows) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="10">`+"\n", width, height)
	fmt.Fprintf(&b, `<defs><marker id="h" markerWidth="8" markerHeight="6" refX="8" refY="3" orient="auto"><path d="M0,0 L8,3 L0,6 z"/></marker></defs>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="12">%s</text>`+"\n", html.EscapeString(t.ID+" — "+t.Class))
	x := func(lane int) int { return 80 + colW*lane + colW/2 }
	for i, l := range ladderLanes {
		fmt.Fprintf(&b, `<text x="%d" y="44" text-anchor="middle" font-size="12">%s</text>`, x(i), l)
		fmt.Fprintf(&b, `<line x1="%d" y1="50" x2="%d" y2="%d" stroke="#999"/>`+"\n", x(i), x(i), height-20)
	}
	for i, a := range arrows {
		y := top + rowH*i
		color := "#1f4e99"
		if flags, _, _ := strings.Cut(a.label, " "); strings.Contains(flags, "R") {
			color = "#b22"
		} else if strings.HasPrefix(a.label, "ICMP") {
			color = "#b70"
		}
		fmt.Fprintf(&b, `<text x="4" y="%d">+%.1fms</text>`, y+4, float64(a.t.Sub(t0).Microseconds())/1000)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" marker-end="url(#h)"/>`, x(a.from), y, x(a.to), y+8, color)
		lx := (x(a.from) + x(a.to)) / 2
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", lx, y-2, color, html.EscapeString(a.label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// isPrivateLab says whether an address is a lab LAN address (198.18.0.0/15
// or 100.64.0.0/10): used only to orient arrows on a NAT's inside interface.
func isPrivateLab(a netip.Addr) bool {
	return netip.MustParsePrefix("198.18.0.0/15").Contains(a) || netip.MustParsePrefix("100.64.0.0/10").Contains(a)
}

// LadderIndex lists the ladders drawn, relative to the results directory:
// the report reads it instead of the captures.
const LadderIndex = "ladders/index.json"

// DrawLadders draws the ladders of the trials in a results directory.
func DrawLadders(out string) ([]Ladder, error) {
	trials, err := spec.LoadTrials(filepath.Join(out, spec.TrialsFile))
	if err != nil {
		return nil, err
	}
	return WriteLadders(out, trials)
}

// LoadLadders reads the index DrawLadders wrote (none if there is none).
func LoadLadders(out string) []Ladder {
	var ls []Ladder
	spec.ReadJSON(filepath.Join(out, LadderIndex), &ls)
	return ls
}

// WriteLadders draws one ladder per distinct failure class and one per
// method's success, from unimpaired trials that kept their captures
// (two-nat).
func WriteLadders(out string, trials []*spec.Trial) ([]Ladder, error) {
	dir := filepath.Join(out, "ladders")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ls []Ladder
	for _, t := range trials {
		if t.Cell.Topology != "two-nat" || t.Cell.Case != "" || len(t.Pcaps) == 0 {
			continue
		}
		var key string
		if t.Success {
			key = "success/" + t.Cell.Method
		} else {
			key = "failure/" + t.Class
		}
		if seen[key] {
			continue
		}
		name := spec.FileName(strings.ReplaceAll(key, "/", "-")) + ".svg"
		if err := drawLadder(out, t, filepath.Join(dir, name)); err != nil {
			continue
		}
		seen[key] = true
		ls = append(ls, Ladder{Title: key, Trial: t.ID, File: filepath.Join("ladders", name)})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Title < ls[j].Title })
	b, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("ladder index: %w", err)
	}
	return ls, os.WriteFile(filepath.Join(out, LadderIndex), append(b, '\n'), 0o644)
}
