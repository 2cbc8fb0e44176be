package natlab

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machsend/machsend/natlab/impair"
)

// Impair sets the impairment of packets node sends on network (one direction
// of a link), replacing what was there; the zero impair.Impairment removes it.
// Impairments survive Reset and end with Close. Loss draws come from a
// generator seeded from the lab, node and network names, so a rebuilt lab
// repeats them.
func (l *Lab) Impair(node, network string, im impair.Impairment) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	found := false
	for _, i := range n.Ifaces {
		found = found || i.Network == network
	}
	if !found {
		return fmt.Errorf("%w: %s is not on network %q", ErrNoNode, node, network)
	}
	l.impair.Lock()
	defer l.impair.Unlock()
	if l.impair.byNode == nil {
		l.impair.byNode = map[string]map[string]impair.Impairment{}
		l.impair.engines = map[string]*impair.Engine{}
	}
	old := l.impair.byNode[node][network]
	if old.Rate != im.Rate {
		if err := l.Shape(node, network, im.Rate); err != nil {
			return err
		}
	}
	e := l.impair.engines[node]
	if im.Queued() {
		if e == nil {
			if e, err = impair.Start(node, func(f func() error) error { return Do(n.Handle, f) }); err != nil {
				return err
			}
			l.impair.engines[node] = e
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s/%s", l.Name, node, network)
		if err := e.Set(network, im, h.Sum64()); err != nil {
			return err
		}
	}
	if l.impair.byNode[node] == nil {
		l.impair.byNode[node] = map[string]impair.Impairment{}
	}
	l.impair.byNode[node][network] = im
	if im.Zero() {
		delete(l.impair.byNode[node], network)
	}
	if im.Queued() != old.Queued() {
		// The node's NFQUEUE rules (one per direction that needs the queue)
		// change only when a direction starts or stops needing it.
		dirs := map[string]uint16{}
		for nw, q := range e.Queues() {
			if l.impair.byNode[node][nw].Queued() {
				dirs[nw] = q
			}
		}
		if err := runIn(n.Handle, strings.NewReader(impair.Rules(dirs)), "iptables-nft-restore"); err != nil {
			return fmt.Errorf("impair %s/%s: queue rules: %w", node, network, err)
		}
		// A dual-stack lab's IPv6 packets take the same queues (a queue
		// is the same for every family), so both families see one path;
		// the node's own answers skip them in both (impair.Rules6).
		if l.Topology.HasIPv6() {
			if err := runIn(n.Handle, strings.NewReader(impair.Rules6(dirs)), "ip6tables-nft-restore"); err != nil {
				return fmt.Errorf("impair %s/%s: IPv6 queue rules: %w", node, network, err)
			}
		}
	}
	return nil
}

// ImpairLink applies a LinkImpairment (every member's egress when From is
// empty).
func (l *Lab) ImpairLink(li LinkImpairment) error {
	im, err := impair.Parse(li.Spec)
	if err != nil {
		return err
	}
	var from []string
	if li.From != "" {
		from = []string{li.From}
	} else {
		for i := range l.Topology.Networks {
			if nw := &l.Topology.Networks[i]; nw.Name == li.Network {
				for m := range nw.Members {
					from = append(from, m)
				}
			}
		}
		sort.Strings(from)
	}
	if len(from) == 0 {
		return fmt.Errorf("%w: no network %q in lab %s", impair.ErrInvalid, li.Network, l.Name)
	}
	for _, f := range from {
		if err := l.Impair(f, li.Network, im); err != nil {
			return err
		}
	}
	return nil
}

// Impairments returns the impairment in force on every impaired direction,
// with the queue's counters.
func (l *Lab) Impairments() []impair.Stats {
	l.impair.Lock()
	defer l.impair.Unlock()
	var out []impair.Stats
	for node, m := range l.impair.byNode {
		var st map[string]impair.Stats
		if e := l.impair.engines[node]; e != nil {
			st = map[string]impair.Stats{}
			for _, s := range e.Stats() {
				st[s.Network] = s
			}
		}
		for nw, im := range m {
			s, ok := st[nw]
			if !ok || !im.Queued() {
				s = impair.Stats{Node: node, Network: nw}
			}
			s.Spec = im.String()
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Network < out[j].Network
	})
	return out
}

// ImpairErr reports an impairment engine that stopped (its directions then
// pass packets unimpaired), or nil.
func (l *Lab) ImpairErr() error {
	l.impair.Lock()
	defer l.impair.Unlock()
	var errs []error
	for node, e := range l.impair.engines {
		if err := e.Err(); err != nil {
			errs = append(errs, fmt.Errorf("impairments of %s: %w", node, err))
		}
	}
	return errors.Join(errs...)
}

// ClearImpairments removes every impairment of the lab.
func (l *Lab) ClearImpairments() error {
	l.impair.Lock()
	type dir struct{ node, nw string }
	var dirs []dir
	for node, m := range l.impair.byNode {
		for nw := range m {
			dirs = append(dirs, dir{node, nw})
		}
	}
	l.impair.Unlock()
	var errs []error
	for _, d := range dirs {
		errs = append(errs, l.Impair(d.node, d.nw, impair.Impairment{}))
	}
	return errors.Join(errs...)
}

func (l *Lab) stopEngines() {
	l.impair.Lock()
	engines := l.impair.engines
	l.impair.engines = nil
	l.impair.byNode = nil
	l.impair.Unlock()
	for _, e := range engines {
		e.Stop()
	}
}

// CrossStats counts a cross-traffic generator's connections.
type CrossStats struct {
	Attempted uint64 `json:"attempted"`
	Connected uint64 `json:"connected"`
}

// Cross is a running cross-traffic generator; Stop ends it.
type Cross struct {
	stop  context.CancelFunc
	wg    sync.WaitGroup
	ln    net.Listener
	att   atomic.Uint64
	conns atomic.Uint64
}

// Stop ends the generator and closes its listener; it returns the counts.
func (c *Cross) Stop() CrossStats {
	c.stop()
	c.ln.Close()
	c.wg.Wait()
	return CrossStats{Attempted: c.att.Load(), Connected: c.conns.Load()}
}

// CrossTraffic makes host from open perSec TCP connections a second (each
// from a fresh port, closed at once) to a listener it starts on host to at
// target, until Stop. Behind a NAT every connection takes a mapping, which
// is what steals a port another host predicted.
func (l *Lab) CrossTraffic(from, to string, target netip.AddrPort, perSec float64) (*Cross, error) {
	fn, err := l.Node(from)
	if err != nil {
		return nil, err
	}
	tn, err := l.Node(to)
	if err != nil {
		return nil, err
	}
	if perSec <= 0 || perSec > 10000 {
		return nil, fmt.Errorf("cross traffic: rate %g/s outside (0, 10000]", perSec)
	}
	c := &Cross{}
	if err := Do(tn.Handle, func() error {
		var err error
		c.ln, err = net.Listen("tcp4", target.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("cross traffic: listen on %s at %s: %w", to, target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := c.ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / perSec))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c.att.Add(1)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				_ = Do(fn.Handle, func() error {
					d := net.Dialer{Timeout: 2 * time.Second}
					conn, err := d.DialContext(ctx, "tcp4", target.String())
					if err == nil {
						c.conns.Add(1)
						conn.Close()
					}
					return nil
				})
			}()
		}
	}()
	return c, nil
}
