// Package traversal turns a rendezvous session into one authenticated TCP
// connection between two peers, by the best path that exists.
//
// Connect is the one entry point: given a Signal (the rendezvous: observed
// mappings, candidate exchange, relay), the session, this peer's role and the
// session secret, it runs one method or races all of them (Auto) and returns
// the connection, a Report (the method that won, every attempt with its
// outcome, timings and endpoints) and, through Config.Events, a stream of
// timestamped events.
//
// The methods (methods.go) are those of the TCP NAT-traversal literature:
//
//   - lan: connect to the peer's private endpoints when both are behind the
//     same public address.
//   - direct: connect to the peer's observed public endpoint (a public host,
//     or a NAT with endpoint-independent filtering).
//   - machsend: the 2009 method: the initiator sends one SYN from its port to
//     the responder's mapping and closes the socket, then listens on that
//     port; the responder connects from the port the SYN was sent to. Roles
//     swap once on failure.
//   - stunt2: as machsend, but the SYN carries a low TTL (ProbeNAT derives it
//     from the hop count to the rendezvous server) so it dies before the
//     responder's NAT.
//   - stunt2-hold: the low-TTL connect is kept pending with its TTL restored,
//     so the responder's SYN completes a simultaneous open on the same ISN.
//   - p2pnat: Ford, Srisuresh & Kegel's parallel punching: both listen and
//     keep connecting from the same port to every endpoint of the peer.
//   - sequential: NatTrav's variant, ordered by signalling, not timing.
//   - stunt1 (raw.go): Guha & Francis's STUNT #1. Both peers send a low-TTL
//     SYN and capture its ISN (AF_PACKET); the rendezvous server forges to
//     each the SYN-ACK its NAT expects, spoofed from the other peer's public
//     endpoint, and each kernel completes its own pending connect.
//   - natblaster (raw.go): Biggadike et al.'s NATBlaster. As stunt1, but the
//     peers exchange their ISNs and each injects (IPPROTO_RAW) the SYN-ACK
//     the other side's NAT expects; with exactly one unpredictable side, a
//     bounded birthday search (600 guesses against 600 fresh mappings).
//   - relay: the rendezvous server splices the two connections.
//
// The raw methods need CAP_NET_RAW, and internal/rawtcp refuses to inject
// anywhere but inside a natlab namespace; a peer that cannot use them says
// so in the exchange and both record the attempt as not applicable. Auto
// tries them last, after every unprivileged punching method.
//
// Port prediction (NATInfo.Predict) offers the next mapping of a NAT that
// allocates sequentially; every punching method aims at it when present.
//
// Every connection is authenticated before it is handed out: both peers
// prove knowledge of the session secret (HMAC over fresh nonces and their
// role), so a stray connection is dropped and the race continues. Peer A then
// nominates the connection both keep (the best path, after a short grace for
// a nearer one still running: the LAN's, when it holds one across the
// Internet; a direct and a punched connection take the same route, so it
// never waits for one over the other) and peer B follows.
//
// traversal knows nothing about namespaces or NAT profiles; the NAT model
// that predicts each method's outcome from two profiles is in
// traversal/model.
package traversal
