package classify

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/machsend/machsend/experiments/spec"
	"github.com/machsend/machsend/natlab"
)

// Capture is the packets seen on one interface of a NAT during a trial.
type Capture struct {
	Node    string
	Iface   string
	Packets []natlab.CapturedPacket
}

// WritePcap writes packets to a pcap file (Ethernet link type); a path
// ending in .gz is gzip-compressed (Wireshark reads it as is; for tcpdump,
// zcat FILE | tcpdump -r -).
func WritePcap(path string, pkts []natlab.CapturedPacket) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var out io.Writer = f
	var gz *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		gz = gzip.NewWriter(f)
		out = gz
	}
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(natlab.SnapLen, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return err
	}
	for _, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}
		if err := w.WritePacket(ci, p.Data); err != nil {
			f.Close()
			return err
		}
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// ReadPcap reads a pcap file written by WritePcap (or tcpdump), gzipped or not.
func ReadPcap(path string) ([]natlab.CapturedPacket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("pcap %s: %w", path, err)
		}
		defer gz.Close()
		in = gz
	}
	r, err := pcapgo.NewReader(in)
	if err != nil {
		return nil, fmt.Errorf("pcap %s: %w", path, err)
	}
	var out []natlab.CapturedPacket
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, natlab.CapturedPacket{Time: ci.Timestamp, Data: data})
	}
	return out, nil
}

// seg is a decoded TCP segment or ICMP message as seen on one interface.
type seg struct {
	t        time.Time
	src, dst netip.AddrPort
	flags    string // "S", "SA", "R", "RA", "A", "F"...
	seq, ack uint32
	icmp     string // "" for TCP
	inner    quoted // for ICMP errors: the quoted packet's endpoints
}

// quoted is the packet an ICMP error quotes.
type quoted struct{ src, dst netip.AddrPort }

func (q quoted) String() string { return fmt.Sprintf("%s -> %s", q.src, q.dst) }

func decode(p natlab.CapturedPacket) (seg, bool) {
	pk := p.Decode()
	if ip6, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		return decode6(p, pk, ip6)
	}
	ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		return seg{}, false
	}
	s := seg{t: p.Time}
	src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
	if decodeTCP(pk, &s, src, dst) {
		return s, true
	}
	if ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		s.src, s.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		s.icmp = ic.TypeCode.String()
		if len(ic.Payload) >= 24 {
			q := ic.Payload
			qs, _ := netip.AddrFromSlice(q[12:16])
			qd, _ := netip.AddrFromSlice(q[16:20])
			ihl := int(q[0]&0x0f) * 4
			if len(q) >= ihl+4 {
				sp := uint16(q[ihl])<<8 | uint16(q[ihl+1])
				dp := uint16(q[ihl+2])<<8 | uint16(q[ihl+3])
				s.inner = quoted{netip.AddrPortFrom(qs, sp), netip.AddrPortFrom(qd, dp)}
			}
		}
		return s, true
	}
	return seg{}, false
}

// decodeTCP fills s from pk's TCP segment, if it has one.
func decodeTCP(pk gopacket.Packet, s *seg, src, dst netip.Addr) bool {
	tcp, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return false
	}
	s.src, s.dst = netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))
	for _, f := range []struct {
		on bool
		c  string
	}{{tcp.SYN, "S"}, {tcp.ACK, "A"}, {tcp.RST, "R"}, {tcp.FIN, "F"}} {
		if f.on {
			s.flags += f.c
		}
	}
	s.seq, s.ack = tcp.Seq, tcp.Ack
	return true
}

// decode6 is decode for an IPv6 packet: a TCP segment, or an ICMPv6
// error with the endpoints of the packet it quotes (after the message's
// four unused bytes, a 40-byte IPv6 header and the TCP ports).
func decode6(p natlab.CapturedPacket, pk gopacket.Packet, ip *layers.IPv6) (seg, bool) {
	s := seg{t: p.Time}
	src, _ := netip.AddrFromSlice(ip.SrcIP.To16())
	dst, _ := netip.AddrFromSlice(ip.DstIP.To16())
	if decodeTCP(pk, &s, src, dst) {
		return s, true
	}
	ic, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if !ok {
		return seg{}, false
	}
	s.src, s.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	s.icmp = ic.TypeCode.String()
	if q := ic.Payload; len(q) >= 4+40+4 {
		qs, _ := netip.AddrFromSlice(q[4+8 : 4+24])
		qd, _ := netip.AddrFromSlice(q[4+24 : 4+40])
		sp := uint16(q[44])<<8 | uint16(q[45])
		dp := uint16(q[46])<<8 | uint16(q[47])
		s.inner = quoted{netip.AddrPortFrom(qs, sp), netip.AddrPortFrom(qd, dp)}
	}
	return s, true
}

// natView holds one NAT's two sides.
type natView struct {
	name     string
	public   netip.Addr
	inside   []netip.Prefix
	wan, lan []seg
}

// facing says whether a packet to a, on v's WAN, is one for v to admit
// or not: to its public address (IPv4, translated) or to an inside
// host's own address (IPv6, routed untranslated through its firewall).
func (v *natView) facing(a netip.Addr) bool { return a == v.public || v.isInside(a) }

func (v *natView) isInside(a netip.Addr) bool {
	for _, p := range v.inside {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Classify names what happened in a trial in the NAT model's vocabulary,
// from the packets on both sides of each NAT and the conntrack snapshots:
// which packet, where, and when (relative to the first packet). It needs
// only the topology (addresses), so it runs on recorded pcaps as well as on
// a live trial's captures.
func Classify(t *spec.Trial, topo *natlab.Topology, caps []Capture) (string, []string) {
	views, t0 := natViews(topo, caps)
	c := &classifier{t0: t0, counts: map[string]int{}, rv: map[netip.Addr]bool{}}
	for _, ps := range topo.Addresses(topo.WithRole(natlab.RoleRendezvous)) {
		for _, p := range ps {
			c.rv[p.Addr()] = true
		}
	}
	for _, v := range views {
		for _, s := range v.wan {
			if s.icmp != "" {
				c.inboundICMP(v, s)
			} else {
				c.inboundSYN(v, s)
			}
		}
		c.outboundSYNACKs(v)
	}
	c.attempts(t)
	return c.verdict(t), c.notes
}

// natViews sorts the captured packets by NAT and side (WAN or inside) and
// returns the time of the first packet.
func natViews(topo *natlab.Topology, caps []Capture) ([]*natView, time.Time) {
	var views []*natView
	var t0 time.Time
	for _, nat := range topo.NATs() {
		spec := topo.Node(nat)
		addrs := topo.Addresses(nat)
		v := &natView{name: nat}
		if ps := addrs[spec.WAN]; len(ps) > 0 {
			v.public = ps[0].Addr()
		}
		for nw, ps := range addrs {
			if nw != spec.WAN {
				for _, p := range ps {
					v.inside = append(v.inside, p.Masked())
				}
			}
		}
		for _, c := range caps {
			if c.Node != nat {
				continue
			}
			for _, p := range c.Packets {
				s, ok := decode(p)
				if !ok {
					continue
				}
				if t0.IsZero() || s.t.Before(t0) {
					t0 = s.t
				}
				if c.Iface == spec.WAN {
					v.wan = append(v.wan, s)
				} else {
					v.lan = append(v.lan, s)
				}
			}
		}
		views = append(views, v)
	}
	return views, t0
}

// classifier collects a trial's classes, at most three notes per class.
type classifier struct {
	t0     time.Time
	rv     map[netip.Addr]bool // the rendezvous server's addresses
	notes  []string
	counts map[string]int
}

func (c *classifier) at(s seg) string {
	return fmt.Sprintf("t+%.0fms", float64(s.t.Sub(c.t0).Microseconds())/1000)
}

func (c *classifier) note(class, format string, args ...any) {
	c.counts[class]++
	if c.counts[class] <= 3 {
		c.notes = append(c.notes, class+": "+fmt.Sprintf(format, args...))
	}
}

// inboundICMP: a time-exceeded for a low-TTL SYN toward a peer arrived at
// v's WAN; was it translated to the host? The translated copy quotes the
// same destination (the host's own endpoint as source) and follows within
// a second, by the kernel's timestamps; the window only keeps apart two
// attempts' errors that quote the same destination.
func (c *classifier) inboundICMP(v *natView, s seg) {
	if !strings.HasPrefix(s.icmp, "TimeExceeded") || !v.facing(s.dst.Addr()) || towardRV(s.inner, c.rv) {
		return
	}
	for _, l := range v.lan {
		if strings.HasPrefix(l.icmp, "TimeExceeded") && l.inner.dst == s.inner.dst &&
			!l.t.Before(s.t) && l.t.Sub(s.t) < time.Second {
			c.note("icmp-translated", "ICMP time-exceeded for %s reached %s at %s and was translated to the host (a held connect is aborted)", s.inner, v.name, c.at(s))
			return
		}
	}
	c.note("icmp-dropped", "ICMP time-exceeded for %s dropped at %s at %s", s.inner, v.name, c.at(s))
}

// inboundSYN: a peer's SYN (not the rendezvous server's traffic) reached
// v's public address; if it was not forwarded inside, how did v answer?
func (c *classifier) inboundSYN(v *natView, s seg) {
	if s.flags != "S" || !v.facing(s.dst.Addr()) || c.rv[s.src.Addr()] {
		return
	}
	for _, l := range v.lan {
		if l.flags == "S" && l.src == s.src && l.seq == s.seq {
			return // forwarded
		}
	}
	for _, r := range v.wan {
		if r.t.Before(s.t) || r.t.Sub(s.t) > 200*time.Millisecond {
			continue
		}
		if strings.Contains(r.flags, "R") && r.src == s.dst && r.dst == s.src {
			c.note("syn-rst", "%s answered the SYN %s -> %s with %s at %s", v.name, s.src, s.dst, "RST", c.at(s))
			return
		}
		if r.icmp != "" && strings.HasPrefix(r.icmp, "DestinationUnreachable") && r.dst.Addr() == s.src.Addr() {
			c.note("syn-icmp", "%s answered the SYN %s -> %s with %s at %s", v.name, s.src, s.dst, "ICMP "+r.icmp, c.at(s))
			return
		}
	}
	c.note("syn-dropped", "peer's SYN %s -> %s dropped at %s (no mapping admits it) at %s", s.src, s.dst, v.name, c.at(s))
}

// outboundSYNACKs: SYN-ACKs a host behind v sent to a peer that never left
// v (strict sequence tracking dropped the new ISN).
func (c *classifier) outboundSYNACKs(v *natView) {
	for _, l := range v.lan {
		if l.flags != "SA" || !v.isInside(l.src.Addr()) || c.rv[l.dst.Addr()] || v.isInside(l.dst.Addr()) {
			continue
		}
		out := false
		for _, s := range v.wan {
			if s.flags == "SA" && s.seq == l.seq && s.dst == l.dst {
				out = true
				break
			}
		}
		if !out {
			c.note("synack-invalid", "SYN-ACK %s -> %s (ISN %d) invalid at %s: new ISN, dropped (sequence tracking) at %s", l.src, l.dst, l.seq, v.name, c.at(l))
		}
	}
}

// attempts classifies from the peers' own records: port predictions the
// NAT did not follow (compared with the conntrack mapping), and
// connections that failed authentication.
func (c *classifier) attempts(t *spec.Trial) {
	for _, a := range t.Attempts {
		if !a.Predicted || a.Outcome == "connected" {
			continue
		}
		actual := mappingTo(t.Conntrack, a.Target.Addr(), a.Public.Addr())
		if actual != 0 && actual != a.Target.Port() {
			c.note("prediction-miss", "%s: predicted port %d, actual %d", a.Attempt, a.Target.Port(), actual)
		}
	}
	for _, a := range t.Attempts {
		if a.Outcome == "auth-failed" {
			c.note("auth-failed", "%s: a connection failed authentication", a.Attempt)
		}
	}
}

// classOrder ranks failure classes: the first present names the trial.
var classOrder = []string{"synack-invalid", "icmp-translated", "prediction-miss", "syn-rst", "syn-icmp", "syn-dropped", "auth-failed", "icmp-dropped"}

// FailureClasses are the classes a failed trial can get: the ranked
// failure classes, then "not-applicable" and "no-evidence".
func FailureClasses() []string {
	return append(append([]string(nil), classOrder...), "not-applicable", "no-evidence")
}

// verdict is the trial's class: success by method, not applicable, or the
// highest-ranked failure class seen.
func (c *classifier) verdict(t *spec.Trial) string {
	if t.Success {
		return "success/" + t.Method
	}
	applicable := len(t.Attempts) == 0
	for _, a := range t.Attempts {
		if a.Outcome != "not-applicable" {
			applicable = true
		}
	}
	if !applicable {
		return "not-applicable"
	}
	for _, k := range classOrder {
		if c.counts[k] > 0 {
			return k
		}
	}
	var keys []string
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		return keys[0]
	}
	return "no-evidence"
}

// towardRV says whether an ICMP error quotes a packet sent to the
// rendezvous server (NAT probing, not a punching attempt).
func towardRV(inner quoted, rv map[netip.Addr]bool) bool { return rv[inner.dst.Addr()] }

// ClassifyDir classifies a trial from the pcaps recorded in dir (files
// named NODE-IFACE.pcap, as the runner keeps them).
func ClassifyDir(t *spec.Trial, dir string) (string, []string, error) {
	topo, err := natlab.LoadTopology(t.Cell.Topology)
	if err != nil {
		return "", nil, err
	}
	var caps []Capture
	for _, nat := range topo.NATs() {
		for nw := range topo.Addresses(nat) {
			base := filepath.Join(dir, nat+"-"+nw+".pcap")
			pk, err := ReadPcap(base + ".gz")
			if err != nil {
				if pk, err = ReadPcap(base); err != nil {
					continue
				}
			}
			caps = append(caps, Capture{Node: nat, Iface: nw, Packets: pk})
		}
	}
	if len(caps) == 0 {
		return "", nil, fmt.Errorf("no pcaps in %s", dir)
	}
	if ct, err := ReadConntrack(filepath.Join(dir, ConntrackFile)); err == nil {
		t.Conntrack = ct
	}
	class, notes := Classify(t, topo, caps)
	return class, notes, nil
}

// mappingTo finds, in any NAT's conntrack, the public port chosen for a
// connection toward peer (an entry whose original destination is that peer
// and whose reply destination is on public).
func mappingTo(ct map[string][]natlab.ConntrackEntry, public, peer netip.Addr) uint16 {
	for _, ents := range ct {
		for _, e := range ents {
			if e.ReplyDst.Addr() == public && e.OrigDst.Addr() == peer {
				return e.ReplyDst.Port()
			}
		}
	}
	return 0
}

// ConntrackFile holds a trial's conntrack snapshots next to its captures.
const ConntrackFile = "conntrack.json.gz"

func WriteConntrack(path string, ct map[string][]natlab.ConntrackEntry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	enc := json.NewEncoder(gz)
	enc.SetIndent("", " ")
	if err := enc.Encode(ct); err != nil {
		f.Close()
		return err
	}
	if err := gz.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readConntrack reads a conntrack snapshot written by writeConntrack.
func ReadConntrack(path string) (map[string][]natlab.ConntrackEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	defer gz.Close()
	var ct map[string][]natlab.ConntrackEntry
	return ct, json.NewDecoder(gz).Decode(&ct)
}
