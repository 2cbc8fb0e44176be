// Package natlab builds NAT laboratories from the Linux kernel's own
// networking: each lab node is a network namespace named nl-<lab>-<node>,
// nodes are joined by veth pairs (or a bridge in a switch namespace for
// networks of three or more), and each NAT node's behaviour comes from a
// nat.Profile compiled to one nftables ruleset, per-namespace conntrack sysctls
// and, where netfilter cannot express a knob alone, a small userspace helper
// (the mapper) that follows conntrack events.
//
// The vocabulary is package nat's (docs/DESIGN.md): mapping, port allocation, filtering,
// unsolicited-SYN response, simultaneous open, sequence tracking, ICMP
// time-exceeded handling, timers and hairpinning (RFC 4787 / RFC 5382, Guha
// & Francis 2005). Realisation says for each knob whether the kernel
// realises it exactly or approximately, and how; natlab/check verifies a
// realised profile by probing it.
//
// Topologies are data (YAML, embedded from topologies/); profiles too
// (profiles/). A Lab is built by Up and removed by Close; before anything is
// built an ownership record is written under RecordDir, so Clean can remove
// what a killed run left behind (and only that). Programs run on lab hosts
// with Start, captures with Capture, conntrack snapshots with Conntrack, and
// Reset returns a lab to its fresh state between trials.
//
// Impairments (impair.go) make links behave like real networks: delay,
// jitter, loss (random or in bursts), reordering and rate on one direction
// of a link. netem is not built into this kernel, so everything but rate is
// done in userspace: an NFQUEUE rule per impaired direction and one engine
// per node (impair_engine.go, speaking nfnetlink_queue directly in
// nfqueue.go) that holds each packet's verdict until it is due. A lab made
// by `natlab up` serves a control socket (control.go) so its impairments
// can be changed while it runs; CrossTraffic makes a host open connections
// through its NAT during a trial.
//
// Namespace work follows containernetworking/plugins: Do runs a function on a
// fresh OS thread locked into the namespace; netlink configuration uses
// per-namespace handles (netlink.NewHandleAt) and never switches threads.
package natlab
