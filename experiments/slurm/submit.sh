#!/bin/bash
# Submit a spec as a Slurm job array of N shards and a merge job that runs
# when all of them succeeded:
#
#   experiments/slurm/submit.sh SPEC OUT N [BIN] [-- extra sbatch options]
#
# OUT must be on storage every node sees; the merged results and REPORT.md
# land in OUT/merged. BIN defaults to ./bin (make build); MACHSEND_WORKERS,
# when set, bounds the labs each task runs at once. Extra sbatch options
# (partition, time limit, ...) go after "--" (not --export: the jobs'
# environment is set here). Prints the array job id and the merge job id.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
spec=$(realpath "$1"); out=$(realpath -m "$2"); n=$3; shift 3
bin=$(realpath "${1:-bin}"); [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case $n in ''|*[!0-9]*) echo "N must be a number of shards, got '$n'" >&2; exit 2;; esac
for b in experiment machsend rendezvous; do
  [ -x "$bin/$b" ] || { echo "$bin/$b missing: run make build, or pass the binaries' directory" >&2; exit 2; }
done
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"
env=ALL,MACHSEND_SPEC=$spec,MACHSEND_OUT=$out,MACHSEND_BIN=$bin
if [ -n "${MACHSEND_WORKERS:-}" ]; then
  env=$env,MACHSEND_WORKERS=$MACHSEND_WORKERS
fi
array=$(sbatch --parsable --array=0-$((n - 1)) --chdir="$out" --export="$env" "$@" "$here/shard.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$array" --chdir="$out" --export="$env" "$@" "$here/merge.sbatch")
echo "$array ${merge%%;*}"
