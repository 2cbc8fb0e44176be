// Package rawtcp crafts, injects and captures the TCP segments of the
// raw-socket traversal methods of the 2005 studies: STUNT #1 (Guha &
// Francis), where the rendezvous server forges each peer's SYN-ACK, and
// NATBlaster (Biggadike et al.), where each peer injects the SYN-ACK the
// other side's NAT expects.
//
// Three pieces:
//
//   - SYN describes a peer's own SYN as captured on the wire (initial
//     sequence number, window and options) and where it went; ParseSegment
//     reads any IPv4 TCP or ICMP packet into a Segment (gopacket, fuzzed).
//   - SYNACK builds the IPv4+TCP SYN-ACK that answers a SYN, with the
//     answering side's options, so both kernels agree on MSS, window
//     scaling and SACK; timestamps are left out on purpose (a crafted
//     SYN-ACK cannot echo the other kernel's clock).
//   - Capture reads a port's TCP segments and the ICMP errors that quote
//     them from an AF_PACKET socket in both directions; Injector sends
//     crafted IPv4 packets through an IPPROTO_RAW socket.
//
// Safety: crafted packets never leave the lab. NewInjector refuses with
// ErrNotLab unless the calling thread's network namespace is one of
// natlab's (a namespace mounted as /run/netns/nl-*) and not the root
// namespace. Both Capture and Injector need CAP_NET_RAW (ErrPrivilege).
package rawtcp
