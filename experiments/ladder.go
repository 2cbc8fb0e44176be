package experiments

import (
	"fmt"
	"html"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/machsend/machsend/natlab"
)

// Ladder is a handshake drawn as a sequence diagram from a trial's pcaps.
type Ladder struct {
	Title string
	Trial string
	File  string // relative to the results directory
}

type arrow struct {
	t        time.Time
	from, to int
	label    string
}

// ladderLanes are the columns of a two-NAT ladder.
var ladderLanes = []string{"A", "NAT-A", "Internet", "NAT-B", "B"}

// drawLadder renders the TCP handshake packets of a two-nat trial.
func drawLadder(out string, t *Trial, path string) error {
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

// ladderArrows reads the trial's captures and turns every handshake packet
// (SYN, RST, FIN or ICMP, not the rendezvous server's traffic) into an
// arrow between lanes.
func ladderArrows(out string, t *Trial) []arrow {
	pub := map[string]netip.Addr{}
	if t.NATA != nil {
		pub["nat-a"] = t.NATA.Public
	}
	if t.NATB != nil {
		pub["nat-b"] = t.NATB.Public
	}
	rv := map[netip.Addr]bool{}
	if topo, err := natlab.LoadTopology(t.Cell.Topology); err == nil {
		for _, ps := range topo.Addresses("rv") {
			for _, p := range ps {
				rv[p.Addr()] = true
			}
		}
	}
	var arrows []arrow
	for _, rel := range t.Pcaps {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(rel), ".gz"), ".pcap")
		node, _, lan := strings.Cut(base, "-lan")
		if !lan {
			node, _, _ = strings.Cut(base, "-wan")
		}
		if _, known := ladderSide[node]; !known {
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
			if a, ok := ladderArrow(s, node, lan, pub); ok {
				arrows = append(arrows, a)
			}
		}
	}
	return arrows
}

// ladderSide is the lane of each NAT; its host is the outer lane beside it.
var ladderSide = map[string]struct{ side, host int }{"nat-a": {1, 0}, "nat-b": {3, 4}}

// ladderArrow orients one packet captured on node's LAN or WAN side; ok is
// false for a packet drawn at the other NAT (its egress arriving here).
func ladderArrow(s seg, node string, lan bool, pub map[string]netip.Addr) (arrow, bool) {
	side, host := ladderSide[node].side, ladderSide[node].host
	label := s.flags
	if s.icmp != "" {
		label = "ICMP " + s.icmp
	}
	label = fmt.Sprintf("%s %s→%s", label, s.src, s.dst)
	a := arrow{t: s.t, label: label}
	if lan {
		if s.src.Addr() == pub[node] || !isPrivateLab(s.src.Addr()) {
			a.from, a.to = side, host
		} else {
			a.from, a.to = host, side
		}
	} else {
		switch {
		case s.src.Addr() == pub[node]:
			// Egress: toward the other NAT (or the Internet).
			a.from = side
			a.to = 4 - side
			if s.dst.Addr() != pub["nat-a"] && s.dst.Addr() != pub["nat-b"] {
				a.to = 2
			}
		case s.dst.Addr() == pub[node] && s.src.Addr() != pub["nat-a"] && s.src.Addr() != pub["nat-b"]:
			a.from, a.to = 2, side // from a router (e.g. ICMP time-exceeded)
		default:
			return a, false // arrival of the other NAT's egress: drawn there
		}
	}
	return a, true
}

// ladderSVG draws the arrows as a ladder diagram, one row each.
func ladderSVG(t *Trial, arrows []arrow) string {
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

// writeLadders draws one ladder per distinct failure class and one per
// method's success, from trials that kept their captures (two-nat).
func writeLadders(out string, trials []*Trial) ([]Ladder, error) {
	dir := filepath.Join(out, "ladders")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ls []Ladder
	for _, t := range trials {
		if t.Cell.Topology != "two-nat" || len(t.Pcaps) == 0 {
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
		name := sanitize(strings.ReplaceAll(key, "/", "-")) + ".svg"
		if err := drawLadder(out, t, filepath.Join(dir, name)); err != nil {
			continue
		}
		seen[key] = true
		ls = append(ls, Ladder{Title: key, Trial: t.ID, File: filepath.Join("ladders", name)})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Title < ls[j].Title })
	return ls, nil
}
