package natlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a name server inside a lab: it answers A queries for the names
// it was given (lab addresses) on UDP port 53 of one lab node, and "no
// such name" for every other name, so a lab host whose resolver it is
// (Lab.UseResolver) reaches lab servers by name and nothing outside.
type DNS struct {
	Addr    netip.AddrPort
	records map[string][]netip.Addr // lower-case, fully qualified (trailing dot)
	pc      net.PacketConn
	done    chan struct{}
	once    sync.Once
}

// ServeDNS starts a name server on node's first address, port 53, that
// maps each name of records to its addresses: A records for its IPv4 ones,
// AAAA for its IPv6 ones (names are matched without regard to case; only
// lab addresses are served: a lab's Internet and LAN ranges, 2001:db8::/32
// and unique-local IPv6).
func (l *Lab) ServeDNS(node string, records map[string][]netip.Addr) (*DNS, error) {
	n, err := l.Node(node)
	if err != nil {
		return nil, err
	}
	d := &DNS{Addr: netip.AddrPortFrom(n.Addr(), 53), records: map[string][]netip.Addr{}, done: make(chan struct{})}
	for name, as := range records {
		for _, a := range as {
			if !a.IsValid() || !labSafe(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())) {
				return nil, fmt.Errorf("dns: %s: %s is not a lab address", name, a)
			}
		}
		d.records[fqdn(name)] = slices.Clone(as)
	}
	// A socket keeps the namespace it was made in: the server goroutine
	// runs on any thread.
	if err := Do(n.Handle, func() error {
		d.pc, err = net.ListenPacket("udp4", d.Addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("dns on %s: %w", node, err)
	}
	go d.serve()
	return d, nil
}

func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func (d *DNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, ok := d.answer(buf[:n]); ok {
			_, _ = d.pc.WriteTo(resp, from)
		}
	}
}

// answer is the response to one query; ok is false for what is not a
// well-formed query with one question (dropped, as a resolver would
// treat a lost packet).
func (d *DNS) answer(req []byte) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response || h.OpCode != 0 {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	q := qs[0]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	addrs, known := d.records[strings.ToLower(q.Name.String())]
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	for _, a := range addrs {
		if q.Class != dnsmessage.ClassINET {
			break
		}
		rr := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// Close stops the server.
func (d *DNS) Close() error {
	d.once.Do(func() { close(d.done) })
	return d.pc.Close()
}

// UseResolver makes server the name server of the processes Start runs on
// node from now on: each runs in a mount namespace of its own in which
// /etc/resolv.conf is a file of the lab's naming only server (the root
// namespace's mounts and files are not touched).
func (l *Lab) UseResolver(node string, server netip.Addr) error {
	if _, err := l.Node(node); err != nil {
		return err
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("a lab resolver needs unshare (util-linux): %w", err)
	}
	dir := resolvDir(l.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, node+".conf")
	if err := os.WriteFile(conf, []byte("nameserver "+server.String()+"\noptions timeout:1 attempts:2\n"), 0o644); err != nil {
		return err
	}
	l.state.Lock()
	defer l.state.Unlock()
	if l.state.resolv == nil {
		l.state.resolv = map[string]string{}
	}
	l.state.resolv[node] = conf
	return nil
}

// resolvDir holds a lab's resolver files (removed with the lab).
func resolvDir(lab string) string { return filepath.Join(RecordDir, lab+".resolv") }

// withResolver rewrites cmd to run in a private mount namespace with conf
// bound over /etc/resolv.conf (util-linux unshare, then exec: the PID and
// process group stay the command's).
func withResolver(cmd *exec.Cmd, conf string) error {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return err
	}
	args := []string{"unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, conf, cmd.Path}
	cmd.Args = append(args, cmd.Args[1:]...)
	cmd.Path = unshare
	return nil
}
