package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/machsend/machsend/internal/sockopt"
	"github.com/machsend/machsend/natlab"
)

// listen opens a listener inside a node's namespace.
func listen(n *natlab.Node, ap netip.AddrPort) (net.Listener, error) {
	var ln net.Listener
	err := natlab.Do(n.Handle, func() error {
		lc := net.ListenConfig{Control: sockopt.Control(0)}
		var err error
		ln, err = lc.Listen(context.Background(), sockopt.Network(ap), ap.String())
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
		d := net.Dialer{Timeout: timeout, Control: sockopt.Control(ttl)}
		if laddr.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
		}
		c, err := d.Dial(sockopt.Network(raddr), raddr.String())
		res.Conn, res.Err = c, err
		return nil
	})
	res.Outcome = sockopt.Outcome(res.Err)
	return res
}

// synThenClose sends one SYN from laddr to raddr and closes the socket while
// it is still in SYN_SENT (which sends nothing more): Machsend's "open a
// socket, immediately close it".
func synThenClose(n *natlab.Node, laddr, raddr netip.AddrPort) error {
	return natlab.Do(n.Handle, func() error {
		s, err := sockopt.NewRawSocket(laddr, 0)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Connect(raddr); err != nil {
			return err
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
