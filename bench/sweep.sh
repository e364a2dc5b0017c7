#!/usr/bin/env bash
# Run many single-threaded hydra jobs in parallel, one per line of a job file:
#   NAME  hydra-subcommand args...
# Each job's stdout+stderr goes to OUTDIR/NAME.log. Used for learning-rate and
# shape sweeps on a many-core machine (bench/sweeps/*.txt hold the job lists).
#   bench/sweep.sh JOBFILE OUTDIR [PARALLEL]
set -euo pipefail
jobs=$1 out=$2 par=${3:-$(nproc)}
hydra=${HYDRA:-./build/hydra}
mkdir -p "$out"
grep -v '^\s*#' "$jobs" | grep -v '^\s*$' | while read -r name args; do
    echo "$name $args"
done | OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE xargs -P "$par" -L 1 bash -c \
    'name=$0; "'"$hydra"'" "$@" --threads 1 > "'"$out"'/$name.log" 2>&1 || echo "$name failed" >&2'
grep -H "accuracy\|final\|done" "$out"/*.log | sed "s|$out/||" || true
