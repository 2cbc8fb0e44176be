package rendezvous

import (
	"bytes"
	"net"
	"net/netip"
)

// How a client's bytes become requests, the same whether an event loop
// (loop.go) or the client's own goroutine (conn_other.go) reads them.

// front takes over connections that turn out not to speak the
// rendezvous protocol: c is the connection (on a duplicate of the
// socket, where an event loop closes its own), first what was read of it.
type front interface {
	handOff(c net.Conn, remote, local netip.AddrPort, first []byte)
}

// handedOff looks at a client's first bytes: a browser, a TLS handshake
// or a relay half on the rendezvous port is handed to its front (and
// true returned); anything else is served as the rendezvous protocol.
func (l *loop) handedOff(c *client, first []byte) bool {
	if c.spoke {
		return false
	}
	c.spoke = true
	switch {
	case looksHTTP(first):
		l.handTo(l.srv.web, c, first)
	case looksTLS(first) && l.srv.tls.cfg != nil && c.tcp == nil:
		l.handTo(l.srv.tls, c, first)
	case l.srv.cfg.RelayAddr.IsValid() && c.tcp == nil && bytes.HasPrefix(first, []byte(relayPrefix)):
		l.handTo(l.srv.relay, c, first)
	default:
		return false
	}
	return true
}

// consume handles the complete lines of data (after what c left pending);
// an incomplete line, or what follows a pause, waits in c.in.
func (l *loop) consume(c *client, data []byte) {
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	rest := l.lines(c, data)
	if !c.paused && len(rest) > l.srv.cfg.MaxMessage {
		l.srv.Stats.Malformed.Add(1)
		l.closeClient(c) // a line over the limit: ErrTooLarge
		return
	}
	if len(rest) == 0 {
		c.in = nil
		return
	}
	c.in = append(make([]byte, 0, len(rest)), rest...)
}

// unpause ends c's pause and handles the lines that waited behind it
// (which may pause c again).
func (l *loop) unpause(c *client) {
	c.paused = false
	if pending := c.in; len(pending) > 0 {
		c.in = nil
		l.consume(c, pending)
	}
}

// lines handles complete lines of data until it runs out or c is paused,
// and returns what is left.
func (l *loop) lines(c *client, data []byte) []byte {
	for len(data) > 0 && !c.paused && !c.gone {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return data
		}
		start, line := data, bytes.TrimSpace(data[:i])
		data = data[i+1:]
		if i > l.srv.cfg.MaxMessage {
			l.srv.Stats.Malformed.Add(1)
			l.closeClient(c)
			return nil
		}
		if len(line) == 0 {
			continue
		}
		switch c.handleLine(line) {
		case lineClose:
			l.closeClient(c)
			return nil
		case lineAgain:
			return start
		}
	}
	if c.gone {
		return nil
	}
	return data
}
