// Package natcheck characterises the NAT a host is behind, from the outside,
// with only a rendezvous server's help: the counterpart of natlab/check,
// which probes a NAT it built. It is machsend's version of Guha & Francis's
// STUNT test suite and Ford et al.'s NAT Check, in the vocabulary of natlab
// profiles, so that a measured router can be rebuilt in the lab
// (Result.Profile writes a profile natlab accepts).
//
// Each knob has its probe, and every probe uses fresh local ports so that
// earlier probes cannot taint later ones:
//
//   - mapping: one local port to the server's primary, alternate (same
//     address, other port) and secondary (other address) endpoints;
//   - port allocation: four fresh ports in a row (preserved, sequential with
//     its delta, or random);
//   - filtering: connect-backs to a listening mapping from another port and
//     from another address;
//   - unsolicited SYN: a connect-back to an unmapped public port, told apart
//     by what came back (RST, ICMP port-unreachable or admin-prohibited, read
//     from the server's socket error queue, or nothing);
//   - simultaneous open: a SYN into a server sink (a port that swallows it),
//     then a SYN from the sink's port back to the mapping;
//   - sequence tracking: the same, after closing the SYN's socket and
//     listening instead, so the SYN-ACK carries a new sequence number;
//   - transitory timer: a ladder of such half-open mappings, dialled back
//     after 0.5, 1.5, 2.5 ... seconds, all at once;
//   - ICMP time-exceeded: a TTL sweep to the server (STUNT #2's low-TTL SYN),
//     which also shows layered NAT when a hop behind the first answers from
//     RFC 6598 shared address space;
//   - hairpinning: a connection to the host's own public mapping.
//
// A knob it cannot observe is reported unknown with the reason, never
// guessed: the established timer always (hours), the sequence tracking and
// transitory timer of a NAT that blocks simultaneous open (masked) or tracks
// sequence numbers strictly (the ladder needs close-then-listen), and
// timers beyond Options.MaxTransitory. Verdict runs the traversal model
// against typical peers to say which methods will work from behind it.
package natcheck
