// Package session is machsend as a library: one side of a peer-to-peer
// session from the rendezvous server to the secured channel, and the two
// things people do with it, Share (offer files behind a link) and Fetch
// (download what a link offers).
//
// A Peer dials the rendezvous server, says hello, creates or joins a
// session, probes its own NAT (traversal.ProbeNAT) and connects to the
// other peer with traversal.Connect; Secure adds the authenticated,
// encrypted channel of package transfer. Addresses are netip.AddrPort from
// the caller to the socket; ResolveServer turns a "host:port" a user typed
// into one.
//
// Everything that happens is reported as an Event, one documented type: the
// machsend command prints events as JSON lines (--json), the experiments
// read them back with ParseEvents, and a browser helper can forward them
// as they are. See docs/DESIGN.md, "Sessions and events".
package session
