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
//   - relay: the rendezvous server splices the two connections.
//
// Port prediction (NATInfo.Predict) offers the next mapping of a NAT that
// allocates sequentially; every punching method aims at it when present.
//
// Every connection is authenticated before it is handed out: both peers
// prove knowledge of the session secret (HMAC over fresh nonces and their
// role), so a stray connection is dropped and the race continues. Peer A then
// nominates the connection both keep (the best path, after a short grace for
// better ones still running) and peer B follows.
//
// traversal knows nothing about namespaces or NAT profiles; the NAT model
// that predicts each method's outcome from two profiles is in
// traversal/model.
package traversal
