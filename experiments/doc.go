// Package experiments runs the real rendezvous and machsend binaries inside
// natlab labs across matrices of NAT profiles and methods: the runner of
// the experiment workflow. Its neighbours are the other stages:
//
//   - spec: what a run is asked (Spec, Cell, impairment cases) and what it
//     records (Trial, RunInfo, trials.jsonl), and the model's prediction
//     for a cell;
//   - classify: what happened in a trial, from its captures and conntrack
//     state, in the NAT model's words, and ladder diagrams of handshakes;
//   - report: summaries, statistics, plots and REPORT.md from the trials
//     file and the figures beside it (no lab, no capture);
//   - bench: throughput, rendezvous load, impairment calibration and
//     natcheck accuracy, each a measurement of its own.
//
// Run executes a spec in parallel labs, each worker reusing its lab between
// trials (natlab.Lab.Reset), classifies every trial as it finishes, and
// resumes an interrupted run from trials.jsonl. LabPeers starts the real
// binaries on the nodes a topology gives each role. See docs/DESIGN.md,
// "Experiments".
package experiments
