// Package rendezvous is machsend's rendezvous ("STUNT") server and its
// client: JSON-RPC 2.0, one object per line over TCP, with server
// notifications on the same connection. The client uses
// github.com/sourcegraph/jsonrpc2 over a size-bounded line stream; the
// server serves its clients from one epoll (Linux) or kqueue (macOS) event
// loop per CPU (loop.go: no goroutine per connection or per request) and
// refuses new sessions with "busy" and a back-off hint when it is not
// keeping up. On Windows, and other systems without those loops, each
// client has a goroutine of its own (conn_other.go) behind the same
// handlers and limits.
//
// The server tells each connection the endpoint it observes (hello), so a
// client learns the NAT mapping of any local port by connecting from it
// (Observe). Sessions are keyed by 128-bit random ids: the sender creates one
// (peer A), the receiver joins it (peer B). For each punching attempt both
// peers send their candidates (private endpoints, observed mapping,
// predicted ports) with punch.ready; when both have, the server picks the
// roles (A initiates even rounds, B odd ones) and a start time and notifies
// both with punch.go. A session is a set of pairs, each one sender
// connection and the receiver it serves: the creator may attach further
// connections (session.attach, with the owner token only it was given), and
// a joiner takes the first pair without a receiver, so one share serves
// several receivers at once, each pair with its own attempts and relay
// tokens. It also serves NAT probing for natcheck (probe.go): a
// second listening endpoint and an alternate port for mapping comparison,
// probe.connectback and probe.dial to send one SYN to the caller's own
// address from another port, another address or a sink (a port that
// swallows SYNs, so the caller's mapping stays half-open), with what came
// back told apart through the socket's error queue (RST, ICMP type and
// code, silence), and, with CAP_NET_RAW, the source of SYNs reaching its
// sinks. A probe only ever targets the caller's own observed address. Unless
// disabled, a relay that splices the two peers' connections when no direct
// path works; the relay only ever carries the peers' ciphertext.
//
// Everything the server holds is bounded: message size, connections, sessions
// per connection and in total, pending attempts, idle time, connection rate
// per address and request rate per connection. A malformed message closes
// only the connection that sent it. Servers share no state: a link names
// its server, so several servers scale out behind one name for senders
// (docs/DESIGN.md, "Scaling out").
package rendezvous
