// Package k8s holds the Kubernetes manifests that run an experiment spec
// as an Indexed Job of shards (shards.yaml: completion index I runs
// experiment run --shard I/N) and a merge Job (merge.yaml), with the
// Dockerfile of their image. No cluster was available where they were
// written: the test parses them and checks the fields that matter.
package k8s
