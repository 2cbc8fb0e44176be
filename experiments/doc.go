// Package experiments runs the real rendezvous and machsend binaries inside
// natlab labs across matrices of NAT profiles and methods, and turns what
// happened into data: one JSON record per trial (inputs, outcome, the method
// that won, timings, the NAT model's prediction, a classification of the
// outcome from the trial's packets and conntrack state, and the evidence
// kept), CSV summaries, plots and a report.
//
// A Spec (YAML, see experiments/*.yaml) is groups of topology x profiles x
// methods x repetitions. Run executes it in parallel labs, each worker
// reusing its lab between trials (natlab.Lab.Reset), and resumes an
// interrupted run from trials.jsonl. Classify reads a trial's captures on
// both sides of every NAT and names what happened in the vocabulary of the
// NAT model ("peer's SYN dropped at nat-b", "nat-a answered the SYN with
// RST", "SYN-ACK invalid at nat-a: new ISN", "predicted port 20001, actual
// 20002").
package experiments
