package natlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab/impair"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NSPrefix starts the name of every namespace a lab creates.
const NSPrefix = "nl-"

// Sentinel errors callers test for.
var (
	ErrNotRoot     = errors.New("natlab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces")
	ErrMissingTool = errors.New("a required tool is missing (run `make deps`)")
	ErrLabExists   = errors.New("a lab with that name already exists")
	ErrNoLab       = errors.New("no such lab")
	ErrNoNode      = errors.New("no such node")
)

// Options describe a lab to bring up.
type Options struct {
	// Name is the lab id (lower-case letters and digits, at most 8); empty
	// picks a random one.
	Name     string
	Topology *Topology
	// Profiles gives a profile per NAT node; Default is used for the rest.
	Profiles map[string]*nat.Profile
	Default  *nat.Profile
}

// Lab is a running topology: namespaces, links, NAT rules and helpers, and
// the processes and captures started in it. Close removes all of it.
type Lab struct {
	Name     string                  `json:"lab"`
	Topology *Topology               `json:"-"`
	Profiles map[string]*nat.Profile `json:"-"`
	Nodes    map[string]*Node        `json:"nodes"`

	// Set when the lab is built or attached, then only read.
	switches []string // switch namespaces (bridges for networks of 3+ members)
	attached bool     // opened by Attach: Close does not tear down

	// state is what runs in the lab, guarded by its mutex.
	state struct {
		sync.Mutex
		procs    map[int]*Process
		mappers  map[string]*mapper
		captures map[*Capture]bool
		resolv   map[string]string // node -> resolv.conf (UseResolver)
		closed   bool
	}

	// impair is the link impairments and their engines, guarded by its
	// own mutex (an engine's queue bind waits on the engine, never on
	// state).
	impair struct {
		sync.Mutex
		byNode  map[string]map[string]impair.Impairment // node -> network -> impairment
		engines map[string]*impair.Engine               // node -> delay engine
	}
}

// newLab is a lab of topology t with nothing running yet.
func newLab(t *Topology) *Lab {
	l := &Lab{Topology: t, Profiles: map[string]*nat.Profile{}}
	l.state.procs = map[int]*Process{}
	l.state.mappers = map[string]*mapper{}
	l.state.captures = map[*Capture]bool{}
	return l
}

// Node is one namespace of a lab.
type Node struct {
	Name    string         `json:"name"`
	Kind    string         `json:"kind"`
	Role    string         `json:"role,omitempty"`
	NS      string         `json:"netns"`
	Profile string         `json:"profile,omitempty"`
	Ifaces  []Iface        `json:"interfaces"`
	Handle  netns.NsHandle `json:"-"`
	nl      *netlink.Handle
}

// Iface is one interface of a node.
type Iface struct {
	Name    string         `json:"name"`
	Network string         `json:"network"`
	Addrs   []netip.Prefix `json:"addrs"`
	// Addrs6 are its IPv6 addresses (a dual-stack network's, NetSpec.Subnet6).
	Addrs6 []netip.Prefix `json:"addrs6,omitempty"`
}

// Addr returns the node's primary address (first address of its first
// interface, or of the named network when given).
func (n *Node) Addr(network ...string) netip.Addr {
	for _, i := range n.Ifaces {
		if len(network) > 0 && i.Network != network[0] {
			continue
		}
		if len(i.Addrs) > 0 {
			return i.Addrs[0].Addr()
		}
	}
	return netip.Addr{}
}

// Addr6 returns the node's primary IPv6 address (first of its first
// dual-stack interface, or of the named network when given); invalid when
// it has none.
func (n *Node) Addr6(network ...string) netip.Addr {
	for _, i := range n.Ifaces {
		if len(network) > 0 && i.Network != network[0] {
			continue
		}
		if len(i.Addrs6) > 0 {
			return i.Addrs6[0].Addr()
		}
	}
	return netip.Addr{}
}

// Addrs returns every IPv4 address of the node.
func (n *Node) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, i := range n.Ifaces {
		for _, a := range i.Addrs {
			out = append(out, a.Addr())
		}
	}
	return out
}

// Node returns a node by name.
func (l *Lab) Node(name string) (*Node, error) {
	n, ok := l.Nodes[name]
	if !ok {
		var names []string
		for k := range l.Nodes {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q in lab %s (nodes: %s)", ErrNoNode, name, l.Name, strings.Join(names, ", "))
	}
	return n, nil
}

// Public returns the public (WAN) address of a NAT node.
func (l *Lab) Public(nat string) netip.Addr {
	n, err := l.Node(nat)
	if err != nil {
		return netip.Addr{}
	}
	spec := l.Topology.node(nat)
	if spec == nil || spec.WAN == "" {
		return n.Addr()
	}
	return n.Addr(spec.WAN)
}

// Preflight reports why a lab cannot be built here, or nil.
func Preflight() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("%w: nft (Debian package nftables)", ErrMissingTool)
	}
	return nil
}

func randomLabName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validLabName(s string) bool {
	if s == "" || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Up builds a lab. On any error everything built so far is removed again.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if o.Topology == nil {
		return nil, fmt.Errorf("%w: no topology given", ErrTopology)
	}
	if o.Name == "" {
		o.Name = randomLabName()
	}
	if !validLabName(o.Name) {
		return nil, fmt.Errorf("lab name %q: use 1-8 lower-case letters and digits", o.Name)
	}
	t := o.Topology
	l := newLab(t)
	l.Name, l.Nodes = o.Name, map[string]*Node{}
	for _, node := range t.NATs() {
		p := o.Profiles[node]
		if p == nil {
			p = o.Default
		}
		if p == nil {
			return nil, fmt.Errorf("%w: NAT node %q of topology %s has no profile", nat.ErrProfile, node, t.Name)
		}
		l.Profiles[node] = p
	}
	for nat := range o.Profiles {
		if n := t.node(nat); n == nil || n.Kind != KindNAT {
			return nil, fmt.Errorf("%w: %q is not a NAT node of topology %s (NATs: %s)", ErrNoNode, nat, t.Name, strings.Join(t.NATs(), ", "))
		}
	}
	var names []string
	for _, n := range t.Nodes {
		names = append(names, NSPrefix+l.Name+"-"+n.Name)
	}
	for _, nw := range t.Networks {
		if len(nw.Members) > 2 {
			sw := NSPrefix + l.Name + "-sw-" + nw.Name
			l.switches = append(l.switches, sw)
			names = append(names, sw)
		}
	}
	topoRef := t.Name
	if t.Source != "" {
		topoRef = t.Source
	}
	if err := claim(l.Name, topoRef, names); err != nil {
		return nil, err
	}
	if err := l.build(ctx); err != nil {
		// Nothing half-built stays: namespaces, helpers and record go.
		l.Close()
		return nil, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return l, nil
}

// trace, when set (tests), is told when each build phase ends.
var trace func(phase string)

func mark(phase string) {
	if trace != nil {
		trace(phase)
	}
}

func (l *Lab) build(ctx context.Context) error {
	t := l.Topology
	handles, err := l.makeNamespaces()
	defer func() {
		for _, sw := range l.switches {
			if h, ok := handles[sw]; ok {
				h.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	mark("namespaces")
	if err := l.prepareNamespaces(handles); err != nil {
		return err
	}
	mark("sysctls")
	for i := range t.Networks {
		if err := l.buildNetwork(&t.Networks[i], handles); err != nil {
			return fmt.Errorf("network %s: %w", t.Networks[i].Name, err)
		}
	}
	if err := l.pinNeighbours(); err != nil {
		return err
	}
	mark("networks")
	if err := l.addRoutes(); err != nil {
		return err
	}
	mark("routes")
	for _, nat := range t.NATs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.applyProfile(nat, false); err != nil {
			return err
		}
		mark("profile " + nat)
	}
	for _, li := range t.Impairments {
		if err := l.ImpairLink(li); err != nil {
			return fmt.Errorf("impairment on %s: %w", li.Network, err)
		}
	}
	return nil
}

// makeNamespaces creates a namespace per node (kept in l.Nodes, with a
// netlink handle) and per switch; handles holds them all by name.
func (l *Lab) makeNamespaces() (map[string]netns.NsHandle, error) {
	handles := map[string]netns.NsHandle{}
	for _, n := range l.Topology.Nodes {
		ns := NSPrefix + l.Name + "-" + n.Name
		h, err := newNamedNS(ns)
		if err != nil {
			return handles, err
		}
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			h.Close()
			return handles, fmt.Errorf("netlink handle in %s: %w", ns, err)
		}
		node := &Node{Name: n.Name, Kind: n.Kind, Role: n.Role, NS: ns, Handle: h, nl: nl}
		if p := l.Profiles[n.Name]; p != nil {
			node.Profile = p.Name
			if p.Source != "builtin" && p.Source != "" {
				node.Profile = p.Source
			}
		}
		l.Nodes[n.Name] = node
		handles[ns] = h
	}
	for _, sw := range l.switches {
		h, err := newNamedNS(sw)
		if err != nil {
			return handles, err
		}
		handles[sw] = h
	}
	return handles, nil
}

// prepareNamespaces sets every namespace up: no IPv6 unless the topology
// is dual-stack (keeps captures clean), loopback up, no ICMP rate limit (a lab artefact otherwise:
// time-exceeded and unreachable replies are rate-limited per destination),
// and forwarding on routers and NATs.
func (l *Lab) prepareNamespaces(handles map[string]netns.NsHandle) error {
	base := map[string]string{
		"net/ipv6/conf/all/disable_ipv6":     "1",
		"net/ipv6/conf/default/disable_ipv6": "1",
		"net/ipv4/icmp_ratelimit":            "0",
	}
	if l.Topology.HasIPv6() {
		// Static addresses only, usable at once: no duplicate address
		// detection (its tentative second would race the first packets),
		// no router advertisements or autoconfiguration, and no ICMPv6
		// rate limit (as for IPv4).
		base = map[string]string{
			"net/ipv6/conf/all/disable_ipv6":     "0",
			"net/ipv6/conf/default/disable_ipv6": "0",
			"net/ipv6/conf/all/accept_dad":       "0",
			"net/ipv6/conf/default/accept_dad":   "0",
			"net/ipv6/conf/all/accept_ra":        "0",
			"net/ipv6/conf/default/accept_ra":    "0",
			"net/ipv6/conf/all/autoconf":         "0",
			"net/ipv6/conf/default/autoconf":     "0",
			"net/ipv6/icmp/ratelimit":            "0",
			"net/ipv4/icmp_ratelimit":            "0",
		}
	}
	for _, h := range handles {
		if err := writeSysctl(h, base); err != nil {
			return err
		}
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			return fmt.Errorf("netlink handle: %w", err)
		}
		lo, err := nl.LinkByName("lo")
		if err == nil {
			err = nl.LinkSetUp(lo)
		}
		nl.Close()
		if err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
	}
	for _, n := range l.Topology.Nodes {
		if n.Kind == KindRouter || n.Kind == KindNAT {
			fwd := map[string]string{"net/ipv4/ip_forward": "1"}
			if l.Topology.HasIPv6() {
				fwd["net/ipv6/conf/all/forwarding"] = "1"
			}
			if err := writeSysctl(l.Nodes[n.Name].Handle, fwd); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRoutes installs every node's default routes (IPv4, and IPv6 where
// it shares a dual-stack network with its gateway) and the topology's
// routes (IPv4 or IPv6 by their destination).
func (l *Lab) addRoutes() error {
	t := l.Topology
	for _, n := range t.Nodes {
		if n.Gateway == "" {
			continue
		}
		nw, _ := t.commonNet(n.Name, n.Gateway)
		gws := []netip.Addr{nw.addr(n.Gateway, 0).Addr()}
		if nw.Subnet6 != "" {
			gws = append(gws, nw.addr6(n.Gateway, 0).Addr())
		}
		for _, gw := range gws {
			if err := l.Nodes[n.Name].nl.RouteAdd(&netlink.Route{Gw: ipOf(gw), Family: family(gw)}); err != nil {
				return fmt.Errorf("default route of %s via %s: %w", n.Name, gw, err)
			}
		}
	}
	for _, r := range t.Routes {
		nw, _ := t.commonNet(r.Node, r.Via)
		dst := netip.MustParsePrefix(r.To)
		gw := nw.addr(r.Via, 0).Addr()
		if dst.Addr().Is6() {
			if gw = nw.addr6(r.Via, 0).Addr(); !gw.IsValid() {
				return fmt.Errorf("route on %s to %s: %s is not dual-stack", r.Node, r.To, nw.Name)
			}
		}
		ipn := &net.IPNet{IP: ipOf(dst.Addr()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
		if err := l.Nodes[r.Node].nl.RouteAdd(&netlink.Route{Dst: ipn, Gw: ipOf(gw)}); err != nil {
			return fmt.Errorf("route on %s to %s via %s: %w", r.Node, r.To, gw, err)
		}
	}
	return nil
}

// ipOf is a as a net.IP of its own family's length.
func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// family is a's netlink address family.
func family(a netip.Addr) int {
	if a.Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func (l *Lab) buildNetwork(nw *NetSpec, handles map[string]netns.NsHandle) error {
	var members []string
	for m := range nw.Members {
		members = append(members, m)
	}
	sort.Strings(members)
	if len(members) == 2 {
		a, b := l.Nodes[members[0]], l.Nodes[members[1]]
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nw.Name}, PeerName: nw.Name,
			PeerNamespace: netlink.NsFd(int(b.Handle))}
		if err := a.nl.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s-%s: %w", a.Name, b.Name, err)
		}
	} else {
		swh := handles[NSPrefix+l.Name+"-sw-"+nw.Name]
		swnl, err := netlink.NewHandleAt(swh)
		if err != nil {
			return fmt.Errorf("netlink handle: %w", err)
		}
		defer swnl.Close()
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br"}}
		if err := swnl.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		for _, m := range members {
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nw.Name}, PeerName: m,
				PeerNamespace: netlink.NsFd(int(swh))}
			if err := l.Nodes[m].nl.LinkAdd(veth); err != nil {
				return fmt.Errorf("veth %s-switch: %w", m, err)
			}
			port, err := swnl.LinkByName(m)
			if err != nil {
				return fmt.Errorf("switch port %s: %w", m, err)
			}
			if err := swnl.LinkSetMaster(port, br); err != nil {
				return fmt.Errorf("switch port %s: %w", m, err)
			}
			if err := swnl.LinkSetUp(port); err != nil {
				return fmt.Errorf("switch port %s up: %w", m, err)
			}
		}
		if err := swnl.LinkSetUp(br); err != nil {
			return fmt.Errorf("bridge up: %w", err)
		}
	}
	for _, m := range members {
		n := l.Nodes[m]
		link, err := n.nl.LinkByName(nw.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		iface := Iface{Name: nw.Name, Network: nw.Name}
		for i := range nw.Members[m] {
			p := nw.addr(m, i)
			ipn := &net.IPNet{IP: net.IP(addrBytes(p.Addr())), Mask: net.CIDRMask(p.Bits(), 32)}
			if err := n.nl.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
				return fmt.Errorf("address %s on %s: %w", p, m, err)
			}
			iface.Addrs = append(iface.Addrs, p)
			if nw.Subnet6 == "" {
				continue
			}
			p6 := nw.addr6(m, i)
			ipn6 := &net.IPNet{IP: ipOf(p6.Addr()), Mask: net.CIDRMask(p6.Bits(), 128)}
			if err := n.nl.AddrAdd(link, &netlink.Addr{IPNet: ipn6, Flags: unix.IFA_F_NODAD}); err != nil {
				return fmt.Errorf("address %s on %s: %w", p6, m, err)
			}
			iface.Addrs6 = append(iface.Addrs6, p6)
		}
		if err := n.nl.LinkSetUp(link); err != nil {
			return fmt.Errorf("%s up: %w", m, err)
		}
		n.Ifaces = append(n.Ifaces, iface)
	}
	return nil
}

// pinNeighbours installs a permanent neighbour entry on every member of
// every network for every other member's addresses. The kernel's neighbour
// table is shared by all namespaces and capped by the root namespace's
// gc_thresh3 (1024 here, a sysctl natlab must not touch); dozens of labs in
// parallel overflow it ("neighbor table overflow"), and hosts then fail
// with "no route to host". Permanent entries are exempt from the cap.
func (l *Lab) pinNeighbours() error {
	for _, nw := range l.Topology.Networks {
		type end struct {
			n     *Node
			idx   int
			mac   net.HardwareAddr
			addrs []netip.Prefix
		}
		var ends []end
		for m := range nw.Members {
			n := l.Nodes[m]
			link, err := n.nl.LinkByName(nw.Name)
			if err != nil {
				return fmt.Errorf("neighbours on %s/%s: %w", m, nw.Name, err)
			}
			var addrs []netip.Prefix
			for i := range nw.Members[m] {
				addrs = append(addrs, nw.addr(m, i))
				if nw.Subnet6 != "" {
					addrs = append(addrs, nw.addr6(m, i))
				}
			}
			ends = append(ends, end{n, link.Attrs().Index, link.Attrs().HardwareAddr, addrs})
		}
		for _, e := range ends {
			for _, o := range ends {
				if o.n == e.n {
					continue
				}
				for _, a := range o.addrs {
					err := e.n.nl.NeighSet(&netlink.Neigh{LinkIndex: e.idx, Family: family(a.Addr()),
						State: netlink.NUD_PERMANENT, IP: ipOf(a.Addr()), HardwareAddr: o.mac})
					if err != nil {
						return fmt.Errorf("neighbour %s on %s/%s: %w", a.Addr(), e.n.Name, nw.Name, err)
					}
				}
			}
		}
	}
	return nil
}

// natIfacesOf describes a NAT node's inside and outside.
func (l *Lab) natIfacesOf(nat string) natIfaces {
	spec := l.Topology.node(nat)
	n := l.Nodes[nat]
	ifs := natIfaces{WAN: spec.WAN}
	for _, i := range n.Ifaces {
		if i.Network == spec.WAN {
			ifs.Public = i.Addrs[0].Addr()
			continue
		}
		ifs.LANs = append(ifs.LANs, i.Name)
		ifs.LANNets = append(ifs.LANNets, i.Addrs[0].Masked())
		ifs.V6 = ifs.V6 || len(i.Addrs6) > 0
	}
	return ifs
}

// Rules returns the nftables ruleset a NAT node runs.
func (l *Lab) Rules(nat string) (string, error) {
	p := l.Profiles[nat]
	if p == nil {
		return "", fmt.Errorf("%w %q: not a NAT node", ErrNoNode, nat)
	}
	return compile(p, l.natIfacesOf(nat)).Ruleset, nil
}

// applyProfile loads a NAT node's ruleset and sysctls and starts its helper.
// It also serves Reset: the table is replaced atomically.
func (l *Lab) applyProfile(nat string, replace bool) error {
	p := l.Profiles[nat]
	n := l.Nodes[nat]
	ifs := l.natIfacesOf(nat)
	if replace {
		var b [2]byte
		_, _ = rand.Read(b[:])
		ifs.SeqStart = int(b[0])<<8 | int(b[1])
	}
	plan := compile(p, ifs)
	if plan.Ruleset != "" || replace {
		script := plan.Ruleset
		if replace {
			// Replacing a table costs an RCU grace period; only Reset pays
			// it. A profile without rules ("none") still removes the old ones.
			script = "table ip natlab\ndelete table ip natlab\n" + script
			if ifs.V6 {
				script = "table ip6 " + table6 + "\ndelete table ip6 " + table6 + "\n" + script
			}
		}
		if err := runIn(n.Handle, strings.NewReader(script), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("nat %s profile %s: load rules: %w", nat, p.Name, err)
		}
	}
	mark("nft " + nat)
	if err := writeSysctl(n.Handle, plan.Sysctls); err != nil {
		return fmt.Errorf("nat %s profile %s: %w", nat, p.Name, err)
	}
	if plan.Mapper {
		m, err := startMapper(n.Handle, p, ifs)
		if err != nil {
			return fmt.Errorf("nat %s profile %s: %w", nat, p.Name, err)
		}
		l.state.Lock()
		l.state.mappers[nat] = m
		l.state.Unlock()
	}
	return nil
}

// runIn runs a command to completion inside a namespace.
func runIn(ns netns.NsHandle, stdin *strings.Reader, name string, args ...string) error {
	var out bytes.Buffer
	return Do(ns, func() error {
		cmd := exec.Command(name, args...)
		if stdin != nil {
			cmd.Stdin = stdin
		}
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
		}
		return nil
	})
}

// HelperErr returns errors the NAT helpers met since the lab came up or was
// reset; a non-nil result means a profile was not realised faithfully.
func (l *Lab) HelperErr() error {
	l.state.Lock()
	defer l.state.Unlock()
	var errs []error
	for nat, m := range l.state.mappers {
		if err := m.Err(); err != nil {
			errs = append(errs, fmt.Errorf("nat %s: %w", nat, err))
		}
	}
	return errors.Join(errs...)
}

// Reset returns the lab to the state Up left it in without rebuilding it:
// processes and captures stopped, conntrack flushed, NAT rules reloaded (which
// empties dynamic maps and restarts sequential counters) and helpers
// restarted. Hosts' own TCP state (TIME_WAIT) survives: use fresh ports.
func (l *Lab) Reset() error {
	l.stopRunning()
	l.state.Lock()
	mappers := l.state.mappers
	l.state.mappers = map[string]*mapper{}
	l.state.Unlock()
	for _, m := range mappers {
		m.close()
	}
	var errs []error
	for _, nat := range l.Topology.NATs() {
		if err := l.FlushConntrack(nat); err != nil {
			errs = append(errs, err)
		}
		if err := l.applyProfile(nat, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SetProfile swaps the profile of one NAT node in place (used by workers that
// reuse a lab across cells of an experiment matrix).
func (l *Lab) SetProfile(nat string, p *nat.Profile) error {
	if _, ok := l.Profiles[nat]; !ok {
		return fmt.Errorf("%w %q: not a NAT node", ErrNoNode, nat)
	}
	l.Profiles[nat] = p
	l.Nodes[nat].Profile = p.Name
	return nil
}

func (l *Lab) stopRunning() {
	l.state.Lock()
	procs := make([]*Process, 0, len(l.state.procs))
	for _, p := range l.state.procs {
		procs = append(procs, p)
	}
	caps := make([]*Capture, 0, len(l.state.captures))
	for c := range l.state.captures {
		caps = append(caps, c)
	}
	l.state.Unlock()
	for _, c := range caps {
		_ = c.Stop()
	}
	for _, p := range procs {
		p.Kill()
	}
}

// Close tears the lab down: processes, captures, helpers, namespaces and the
// ownership record. It is safe to call more than once.
func (l *Lab) Close() error {
	l.state.Lock()
	if l.state.closed {
		l.state.Unlock()
		return nil
	}
	l.state.closed = true
	l.state.Unlock()
	l.stopRunning()
	l.stopEngines()
	for _, m := range l.state.mappers {
		m.close()
	}
	if l.attached {
		for _, n := range l.Nodes {
			n.Handle.Close()
		}
		return nil
	}
	var errs []error
	var names []string
	for _, n := range l.Nodes {
		if n.nl != nil {
			n.nl.Close()
		}
		n.Handle.Close()
		names = append(names, n.NS)
	}
	names = append(names, l.switches...)
	if err := removeLab(l.Name, names); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Nft loads an nft script into a node's namespace. Checks use it to install
// probe fixtures on lab hosts; tests use it to break a NAT on purpose.
func (l *Lab) Nft(node, script string) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	return runIn(n.Handle, strings.NewReader(script), "nft", "-f", "-")
}

// Attach opens a running lab (made by another process, e.g. `natlab up`)
// from its record, to run programs, capture or read conntrack in it. Close on
// an attached lab releases handles and stops what this process started; it
// does not tear the lab down (Down does).
func Attach(name string) (*Lab, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	rec, err := ReadRecord(name)
	if err != nil {
		return nil, err
	}
	if len(rec.Description) == 0 {
		return nil, fmt.Errorf("%w: %s is still being built", ErrNoLab, name)
	}
	topo, err := LoadTopology(rec.Topology)
	if err != nil {
		return nil, err
	}
	l := newLab(topo)
	l.attached = true
	if err := json.Unmarshal(rec.Description, l); err != nil {
		return nil, fmt.Errorf("record of %s: %w", name, err)
	}
	for _, n := range l.Nodes {
		h, err := netns.GetFromName(n.NS)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("%w: %s: namespace %s: %v", ErrNoLab, name, n.NS, err)
		}
		n.Handle = h
		if n.Profile != "" {
			if p, err := nat.Load(n.Profile); err == nil {
				l.Profiles[n.Name] = p
			}
		}
	}
	return l, nil
}
