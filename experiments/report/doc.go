// Package report turns a results directory into summaries (cells.csv,
// methods.csv), plots and REPORT.md. It reads only data files: the trials
// file, and the figures classification and the benchmarks wrote beside it
// (ladders/index.json, throughput.json, rendezvous-load.json); every number
// it prints is computed from them.
package report
