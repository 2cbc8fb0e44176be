package rendezvous

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
)

// maxProbed bounds the probe addresses remembered per client: a
// dual-stack peer probes from one address in each family; a few more
// cover a host whose addresses change during a session.
const maxProbed = 4

// hello registers c's hello and returns the key its probe connections
// present (HelloResult.ProbeKey). A dual-stack peer observes its mapping
// in the other address family on a probe connection to the server's
// endpoint in that family; its candidates there are on an address its
// control connection does not come from. The server accepts them
// (Candidates.check) only on an address a probe connection bearing the
// client's key came from: a TCP handshake from it, which no peer can
// fake for a third party's address. The key is random, given only to the
// client's own connection, and forgotten with it. A probe connection's
// hello (p.Probe) with a key records its address with that client and
// gets no key of its own; an unknown key is ignored (the client left).
func (c *client) hello(p HelloParams) string {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Probe {
		if owner := s.probeKeys[p.ProbeKey]; p.ProbeKey != "" && owner != nil {
			owner.probedLocked(c.remote.Addr())
		}
		return ""
	}
	if c.probeKey == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b) // crypto/rand.Read never fails
		c.probeKey = hex.EncodeToString(b)
		s.probeKeys[c.probeKey] = c
	}
	return c.probeKey
}

// probedLocked remembers addr as one of c's probe addresses (the newest
// maxProbed). s.mu is held.
func (c *client) probedLocked(addr netip.Addr) {
	if slices.Contains(c.probed, addr) {
		return
	}
	if len(c.probed) == maxProbed {
		c.probed = c.probed[1:]
	}
	c.probed = append(c.probed, addr)
}
