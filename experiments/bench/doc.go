// Package bench holds the measurements that are not trials of the matrix:
// transfer throughput against plain TCP over the same lab path, the
// rendezvous server under load, calibration of natlab's impairment
// datapath, and natcheck's accuracy behind every built-in profile. Each
// writes its own figures into the results directory for the report.
package bench
