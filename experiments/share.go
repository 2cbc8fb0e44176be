package experiments

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/machsend/machsend/internal/wiretap"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/session"
)

// LabPeers is a lab with a rendezvous server running on the node with
// the rendezvous role, for runs of the real binaries.
type LabPeers struct {
	Lab    *natlab.Lab
	Bin    string
	Server netip.AddrPort
	// A, B and RV name the nodes with the peer and rendezvous roles.
	A, B, RV string
	// CPU, when it names a node, pins every machsend started there to
	// that CPU (taskset, before exec, so every thread inherits it): a
	// measurement of rates then does not vary with where the scheduler
	// happened to put the two peers.
	CPU map[string]int
}

// StartRendezvous starts the rendezvous binary on the rendezvous node (primary endpoint on
// port, secondary on port+1, relay on port+2; port 0 means 3478) and waits
// until it listens. extra flags are appended (e.g. --fault-flip-byte).
func StartRendezvous(ctx context.Context, lab *natlab.Lab, bin string, port uint16, extra ...string) (*LabPeers, error) {
	return startRendezvous(ctx, lab, bin, false, port, extra...)
}

// StartRendezvous6 is StartRendezvous on the rendezvous node's IPv6
// addresses (a dual-stack topology's, such as two-nat6): the peers then
// reach the server, and each other, over IPv6 only.
func StartRendezvous6(ctx context.Context, lab *natlab.Lab, bin string, port uint16, extra ...string) (*LabPeers, error) {
	return startRendezvous(ctx, lab, bin, true, port, extra...)
}

// StartRendezvousDual is StartRendezvous with the server dual-stack: its
// IPv4 primary endpoint (the one links name) and, with --dual-stack, the
// same port on the rendezvous node's first IPv6 address, so that the
// peers race IPv6 and IPv4 candidates.
func StartRendezvousDual(ctx context.Context, lab *natlab.Lab, bin string, port uint16, extra ...string) (*LabPeers, error) {
	rv, err := lab.NodeWithRole(natlab.RoleRendezvous)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		port = 3478
	}
	for _, i := range rv.Ifaces {
		for _, p := range i.Addrs6 {
			return startRendezvous(ctx, lab, bin, false, port, append([]string{"--dual-stack", netip.AddrPortFrom(p.Addr(), port).String()}, extra...)...)
		}
	}
	return nil, fmt.Errorf("the rendezvous node %s has no IPv6 address (use a dual-stack topology such as two-nat6)", rv.Name)
}

func startRendezvous(ctx context.Context, lab *natlab.Lab, bin string, v6 bool, port uint16, extra ...string) (*LabPeers, error) {
	rv, err := lab.NodeWithRole(natlab.RoleRendezvous)
	if err != nil {
		return nil, err
	}
	a, err := lab.Topology.MustRole(natlab.RolePeerA)
	if err != nil {
		return nil, err
	}
	b, err := lab.Topology.MustRole(natlab.RolePeerB)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		port = 3478
	}
	addrs := rv.Addrs()
	if v6 {
		addrs = nil
		for _, i := range rv.Ifaces {
			for _, p := range i.Addrs6 {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	if len(addrs) < 2 {
		return nil, fmt.Errorf("the rendezvous node %s needs two addresses (IPv6: %v), has %v", rv.Name, v6, addrs)
	}
	primary := netip.AddrPortFrom(addrs[0], port)
	args := append([]string{"--listen", primary.String(), "--secondary", netip.AddrPortFrom(addrs[1], port+1).String(),
		"--relay", netip.AddrPortFrom(addrs[0], port+2).String(), "--log-level", "error", "--conn-rate", "1000", "--forge"}, extra...)
	if _, err := lab.Start(rv.Name, exec.Command(filepath.Join(bin, "rendezvous"), args...)); err != nil {
		return nil, err
	}
	if err := waitListening(ctx, rv, primary); err != nil {
		return nil, err
	}
	return &LabPeers{Lab: lab, Bin: bin, Server: primary, A: a, B: b, RV: rv.Name}, nil
}

// Running is a machsend process whose JSON events are collected.
type Running struct {
	Proc   *natlab.Process
	lines  *lineReader
	stderr *wiretap.Recorder
}

// Stderr is what the process wrote to standard error so far (its final
// error message, for one).
func (r *Running) Stderr() string { return r.stderr.String() }

// Events returns the events printed so far (all of them once it exited).
func (r *Running) Events() []session.Event {
	select {
	case <-r.Proc.Done():
		return session.ParseEvents(r.lines.all())
	default:
	}
	return session.ParseEvents(r.lines.snapshot())
}

// Wait waits for the process and returns its exit error and events.
func (r *Running) Wait(timeout time.Duration) ([]session.Event, error) {
	select {
	case <-r.Proc.Done():
	case <-time.After(timeout):
		r.Proc.Kill()
		return r.Events(), errors.New("timed out")
	}
	return session.ParseEvents(r.lines.all()), r.Proc.Wait()
}

// Machsend starts `machsend ARGS --json` on a lab node; env adds variables.
func (p *LabPeers) Machsend(node string, env []string, args ...string) (*Running, error) {
	// --json goes right after the subcommand: flags stop at the first path.
	full := append([]string{args[0], "--json"}, args[1:]...)
	cmd := exec.Command(filepath.Join(p.Bin, "machsend"), full...)
	if cpu, ok := p.CPU[node]; ok {
		cmd = exec.Command("taskset", append([]string{"--cpu-list", strconv.Itoa(cpu), filepath.Join(p.Bin, "machsend")}, full...)...)
	}
	cmd.Env = append(append(os.Environ(), "MACHSEND_SECRET="+secret), env...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	stderr := &wiretap.Recorder{Limit: 1 << 20} // bounded: a runaway process cannot fill memory
	cmd.Stderr = stderr
	proc, err := p.Lab.Start(node, cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	lr := collect(r)
	go func() { <-lr.done; r.Close() }()
	return &Running{Proc: proc, lines: lr, stderr: stderr}, nil
}

// Send starts `machsend send` and waits for its link.
func (p *LabPeers) Send(node string, paths []string, flags ...string) (*Running, string, error) {
	args := append([]string{"send", "--server", p.Server.String()}, flags...)
	r, err := p.Machsend(node, nil, append(args, paths...)...)
	if err != nil {
		return nil, "", err
	}
	for i := 0; i < 600; i++ {
		for _, e := range r.Events() {
			if e.Kind == session.KindLink {
				return r, e.Link, nil
			}
		}
		select {
		case <-r.Proc.Done():
			return r, "", fmt.Errorf("machsend send exited before printing a link: %v", r.Proc.Wait())
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Proc.Kill()
	return r, "", errors.New("machsend send printed no link")
}

// Get starts `machsend get` with the link in the environment (not argv).
func (p *LabPeers) Get(node, link, dir string, flags ...string) (*Running, error) {
	return p.Machsend(node, []string{"MACHSEND_LINK=" + link}, append([]string{"get", "-o", dir}, flags...)...)
}

// WriteRandomFile writes n pseudo-random bytes (not compressible, cheap to make).
func WriteRandomFile(path string, n int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := min(int64(len(buf)), left)
		_, _ = r.Read(buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		left -= k
	}
	return f.Close()
}
