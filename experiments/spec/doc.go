// Package spec is the vocabulary of an experiment run: a Spec (YAML, see
// experiments/*.yaml) is groups of topology x NAT profiles x methods x
// impairment cases x repetitions, expanded into Cells; each trial of a
// cell is recorded as a Trial, one JSON line of trials.jsonl, next to the
// RunInfo that names the code, kernel and spec that produced it. Predict
// gives the NAT model's expectation for a cell.
//
// Everything downstream (classification, report, benchmarks) reads these
// types and files; only the runner writes them.
package spec
