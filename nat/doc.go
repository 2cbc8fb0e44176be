// Package nat is the one vocabulary of NAT behaviour in machsend: the knobs
// of the NAT model (RFC 4787 / RFC 5382 mapping, port allocation and
// filtering; Guha & Francis's TCP knobs: unsolicited-SYN response,
// simultaneous open, sequence tracking, ICMP handling, NATBlaster's outbound
// SYN-ACK; timers; hairpinning), their typed values, and Profile, one NAT's
// value for every knob, with parsing, validation, the defaults used for a
// knob given as "unknown", and the composition of two NATs in series.
//
// Knobs is the single table of knobs. Everything else derives from it:
// natlab realises every knob in netfilter (natlab.Realisation), natlab check
// probes it, natcheck reports it with evidence (or the table marks it
// unobservable from outside), and the traversal model predicts from it.
// Tests in those packages fail when a row of the table is not covered; see
// docs/howto-add-nat-knob.md.
//
// The package is a leaf: it parses YAML and nothing else, so that machsend,
// natcheck and the model use the vocabulary without linking the lab.
// The built-in profiles are embedded here (profiles/*.yaml).
package nat
