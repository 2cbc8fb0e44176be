package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/natlab"
	"golang.org/x/sys/unix"
)

// reuse sets SO_REUSEADDR and SO_REUSEPORT (and IP_TTL), as hole punching does.
func reuse(ttl int) func(network, address string, c syscall.RawConn) error {
	return sockopt.Control(ttl)
}

// listen opens a listener inside a node's namespace.
func listen(n *natlab.Node, ap netip.AddrPort) (net.Listener, error) {
	var ln net.Listener
	err := natlab.Do(n.Handle, func() error {
		lc := net.ListenConfig{Control: reuse(0)}
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", ap.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", n.Name, ap, err)
	}
	return ln, nil
}

// dialResult is what an outbound connection attempt came to.
type dialResult struct {
	Conn    net.Conn
	Outcome string // "connected", "refused", "unreachable", "timeout", or the error
	Err     error
}

// dial connects from a node, optionally from a fixed local endpoint and with
// a TTL on its SYN.
func dial(n *natlab.Node, laddr, raddr netip.AddrPort, timeout time.Duration, ttl int) dialResult {
	var res dialResult
	_ = natlab.Do(n.Handle, func() error {
		d := net.Dialer{Timeout: timeout, Control: reuse(ttl)}
		if laddr.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
		}
		c, err := d.Dial("tcp4", raddr.String())
		res.Conn, res.Err = c, err
		return nil
	})
	res.Outcome = classify(res.Err)
	return res
}

func classify(err error) string { return sockopt.Outcome(err) }

// synThenClose sends one SYN from laddr to raddr and closes the socket while
// it is still in SYN_SENT (which sends nothing more): Machsend's "open a
// socket, immediately close it".
func synThenClose(n *natlab.Node, laddr, raddr netip.AddrPort) error {
	return natlab.Do(n.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
				return fmt.Errorf("setsockopt: %w", err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(laddr.Port()), Addr: laddr.Addr().As4()}); err != nil {
			return fmt.Errorf("bind %s: %w", laddr, err)
		}
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(raddr.Port()), Addr: raddr.Addr().As4()})
		if err != nil && !errors.Is(err, unix.EINPROGRESS) {
			return fmt.Errorf("connect %s: %w", raddr, err)
		}
		time.Sleep(20 * time.Millisecond)
		return nil
	})
}

// acceptor accepts connections on a listener and reports each peer address.
type acceptor struct {
	ln    net.Listener
	conns chan net.Conn
}

func newAcceptor(ln net.Listener) *acceptor {
	a := &acceptor{ln: ln, conns: make(chan net.Conn, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(a.conns)
				return
			}
			a.conns <- c
		}
	}()
	return a
}

// next waits for the next accepted connection.
func (a *acceptor) next(timeout time.Duration) (net.Conn, bool) {
	select {
	case c, ok := <-a.conns:
		return c, ok
	case <-time.After(timeout):
		return nil, false
	}
}

func remoteOf(c net.Conn) netip.AddrPort {
	return c.RemoteAddr().(*net.TCPAddr).AddrPort()
}
