// Package impair is natlab's impairment engine: the syntax of an
// impairment (delay, jitter and its distribution, loss with bursts,
// reordering, rate: Parse, Impairment.String), the per-node engine that
// decides each packet's fate and releases it when due (Engine), and the
// NFQUEUE datapath it runs on (this kernel has no netem).
//
// natlab places impairments on links (Lab.Impair, Lab.ImpairLink) and
// realises rates with tbf; this package knows nothing about labs: an
// Engine is given a node's name and a way to run a function inside the
// node's network namespace, and Rules renders the iptables-nft mangle table
// that sends the impaired directions to its queues. See docs/DESIGN.md,
// "Known facts about the Linux datapath", for why it is built this way.
package impair
