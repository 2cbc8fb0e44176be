// Package slurm holds the Slurm batch scripts that run an experiment spec
// as a job array of shards (experiment run --shard I/N) followed by a merge
// job (experiment merge, then experiment report): shard.sbatch, merge.sbatch
// and submit.sh, documented in the README ("Running on a cluster"). Its test
// starts a one-machine Slurm cluster (munged, slurmctld and slurmd with a
// generated configuration in a temporary directory), submits the quick
// matrix as three shards, and compares the merged outcomes with a
// single-process run of the same spec. The test is built with the tag
// slurmtest (make test-slurm), so make test does not need Slurm.
package slurm
