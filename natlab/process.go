package natlab

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a command running on a lab host.
type Process struct {
	Cmd  *exec.Cmd
	Node string
	lab  *Lab

	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start starts cmd inside a node's network namespace. The caller sets the
// command's arguments, environment, stdout and stderr; the process lives until
// it exits, Kill is called, or the lab is reset or closed.
func (l *Lab) Start(node string, cmd *exec.Cmd) (*Process, error) {
	n, err := l.Node(node)
	if err != nil {
		return nil, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group, so Kill reaches the command's children too.
	cmd.SysProcAttr.Setpgid = true
	l.state.Lock()
	conf := l.state.resolv[node]
	l.state.Unlock()
	if conf != "" {
		if err := withResolver(cmd, conf); err != nil {
			return nil, fmt.Errorf("start %s on %s: %w", cmd.Path, node, err)
		}
	}
	// The child inherits the network namespace of the thread that forks it.
	if err := Do(n.Handle, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", cmd.Path, node, err)
	}
	p := &Process{Cmd: cmd, Node: node, lab: l, done: make(chan struct{})}
	l.state.Lock()
	l.state.procs[cmd.Process.Pid] = p
	l.state.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
		l.state.Lock()
		delete(l.state.procs, cmd.Process.Pid)
		l.state.Unlock()
	}()
	return p, nil
}

// Run runs cmd on a node to completion.
func (l *Lab) Run(node string, cmd *exec.Cmd) error {
	p, err := l.Start(node, cmd)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends a signal to the process group (by the recorded PID).
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Stop asks the process to exit (SIGTERM), waits up to grace, then kills it.
func (p *Process) Stop(grace time.Duration) error {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	return p.waitErr
}

// Kill kills the process group and waits for the process to be reaped.
func (p *Process) Kill() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Signal(syscall.SIGKILL)
	})
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}
