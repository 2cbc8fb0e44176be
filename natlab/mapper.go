package natlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/machsend/machsend/nat"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"github.com/vishvananda/netns"
)

// mapper is the userspace helper for the knobs netfilter cannot express alone:
// endpoint-independent or address-dependent mapping with non-preserving
// allocation, endpoint-independent and address-dependent filtering, and
// hairpinning. The ruleset inserts each mapping into its nft maps in the
// packet path; the mapper follows the NAT's conntrack NEW/DESTROY events and
// removes an element when the last conntrack entry using that mapping dies,
// so a mapping lives exactly as long as a real NAT's would.
type mapper struct {
	p      *nat.Profile
	pub    netip.Addr
	lans   []netip.Prefix
	ct     *conntrack.Conn
	nft    *nftables.Conn
	table  *nftables.Table
	sets   map[string]*nftables.Set
	events chan conntrack.Event
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	refs map[elemKey]map[uint32]bool // element -> conntrack ids using it
	errs []error
}

type elemKey struct {
	set string
	key string // raw key bytes
	val string // raw value bytes
}

func startMapper(ns netns.NsHandle, p *nat.Profile, ifs natIfaces) (*mapper, error) {
	ct, err := conntrack.Dial(&netlink.Config{NetNS: int(ns)})
	if err != nil {
		return nil, fmt.Errorf("mapper: conntrack dial: %w", err)
	}
	nc, err := nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("mapper: nftables: %w", err)
	}
	m := &mapper{p: p, pub: ifs.Public, lans: ifs.LANNets, ct: ct, nft: nc,
		table:  &nftables.Table{Name: "natlab", Family: nftables.TableFamilyIPv4},
		sets:   map[string]*nftables.Set{},
		events: make(chan conntrack.Event, 1024), done: make(chan struct{}),
		refs: map[elemKey]map[uint32]bool{}}
	for _, name := range []string{"eim_map", "adm_map", "fwd_map", "adf_map"} {
		s, err := nc.GetSetByName(m.table, name)
		if err != nil {
			ct.Close()
			return nil, fmt.Errorf("mapper: find set %s: %w", name, err)
		}
		m.sets[name] = s
	}
	if err := ct.SetReadBuffer(1 << 20); err != nil {
		ct.Close()
		return nil, fmt.Errorf("mapper: %w", err)
	}
	errc, err := ct.Listen(m.events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy})
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("mapper: listen: %w", err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.done:
				return
			case err := <-errc:
				if err != nil {
					m.fail(fmt.Errorf("mapper: conntrack events: %w", err))
				}
				return
			case ev := <-m.events:
				m.handle(ev)
			}
		}
	}()
	return m, nil
}

func (m *mapper) fail(err error) {
	m.mu.Lock()
	m.errs = append(m.errs, err)
	m.mu.Unlock()
}

// Err returns the errors the helper met (nil if it kept up with every event).
func (m *mapper) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(m.errs...)
}

func (m *mapper) close() {
	close(m.done)
	m.ct.Close()
	m.wg.Wait()
	m.nft.CloseLasting()
}

func (m *mapper) inLAN(a netip.Addr) bool {
	for _, p := range m.lans {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func addrBytes(a netip.Addr) []byte { b := a.As4(); return b[:] }

// port2 is a port as a standalone nft key or value (2 bytes).
func port2(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// port4 is a port padded to the 4-byte register width nft uses in concatenations.
func port4(p uint16) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, p)
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// elements returns the map elements a conntrack flow implies.
func (m *mapper) elements(f conntrack.Flow) []elemKey {
	if f.TupleOrig.Proto.Protocol != 6 {
		return nil
	}
	o, r := f.TupleOrig, f.TupleReply
	var intIP, remote netip.Addr
	var intPort, pubPort uint16
	switch {
	case m.inLAN(o.IP.SourceAddress) && r.IP.DestinationAddress == m.pub:
		// Outbound connection translated by this NAT.
		intIP, intPort = o.IP.SourceAddress, o.Proto.SourcePort
		remote, pubPort = o.IP.DestinationAddress, r.Proto.DestinationPort
	case o.IP.DestinationAddress == m.pub && m.inLAN(r.IP.SourceAddress) && !m.inLAN(o.IP.SourceAddress):
		// Inbound connection admitted through a mapping (EIF/ADF DNAT).
		intIP, intPort = r.IP.SourceAddress, r.Proto.SourcePort
		remote, pubPort = o.IP.SourceAddress, o.Proto.DestinationPort
	default:
		return nil
	}
	intEP := cat(addrBytes(intIP), port4(intPort))
	var out []elemKey
	switch m.p.Mapping {
	case nat.EndpointIndependent:
		if m.p.PortAllocation != nat.Preserve {
			out = append(out, elemKey{"eim_map", string(intEP), string(port2(pubPort))})
		}
	case nat.AddressDependent:
		out = append(out, elemKey{"adm_map", string(cat(intEP, addrBytes(remote))), string(port2(pubPort))})
	}
	if m.p.Filtering == nat.EndpointIndependent || m.p.Hairpinning {
		out = append(out, elemKey{"fwd_map", string(port2(pubPort)), string(intEP)})
	}
	if m.p.Filtering == nat.AddressDependent {
		out = append(out, elemKey{"adf_map", string(cat(addrBytes(remote), port4(pubPort))), string(intEP)})
	}
	return out
}

func (m *mapper) handle(ev conntrack.Event) {
	if ev.Flow == nil {
		return
	}
	els := m.elements(*ev.Flow)
	if len(els) == 0 {
		return
	}
	id := ev.Flow.ID
	m.mu.Lock()
	defer m.mu.Unlock()
	// Elements are inserted by the ruleset itself (chain record), in the
	// packet path; the helper only tracks references and removes elements.
	var del []elemKey
	for _, e := range els {
		switch ev.Type {
		case conntrack.EventNew:
			if m.refs[e] == nil {
				m.refs[e] = map[uint32]bool{}
			}
			m.refs[e][id] = true
		case conntrack.EventDestroy:
			if r := m.refs[e]; r != nil {
				delete(r, id)
				if len(r) == 0 {
					delete(m.refs, e)
					del = append(del, e)
				}
			}
		}
	}
	for _, e := range del {
		if err := m.nft.SetDeleteElements(m.sets[e.set], []nftables.SetElement{{Key: []byte(e.key), Val: []byte(e.val)}}); err != nil {
			m.errs = append(m.errs, fmt.Errorf("mapper: delete %s: %w", e.set, err))
		}
	}
	if len(del) > 0 {
		if err := m.nft.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
			// ENOENT: the element's safety timeout removed it first.
			m.errs = append(m.errs, fmt.Errorf("mapper: flush: %w", err))
		}
	}
}
