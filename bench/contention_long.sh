#!/usr/bin/env bash
# bench/contention_long.sh [ROUNDS] [STEPS] — issue 20 part 1 over a long run
# rather than `hydra bench --contention`'s short cells: `hydra train` d128x4
# B16 T128 (the demo) on CPUs 0,1, quiet with 1 thread, then 2 and 1 threads
# with a busy loop pinned to CPU 1 for the whole run, interleaved; median
# tokens/s of the step lines and the ratio to quiet 1 thread. Extra
# environment for the loaded 2-thread run: LOADED_ENV="VAR=value ...".
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
hydra=${HYDRA:-$root/build/hydra}
rounds=${1:-2} steps=${2:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # threads, busy(0|1), env...; the busy loop ends with the run, or by itself after 10 minutes
    local thr=$1 busy=$2 hog=0; shift 2
    if [ "$busy" = 1 ]; then timeout 600 taskset -c 1 bash -c 'while :; do :; done' & hog=$!; fi
    env "$@" taskset -c 0,1 "$hydra" train --data "$root/data/tinyshakespeare.txt" --out "$tmp/o" --d-model 128 \
        --n-layers 4 --n-heads 4 --batch 16 --seq 128 --steps "$steps" --threads "$thr" 2>&1 |
        grep -o '[0-9]* tok/s |' | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
    if [ "$busy" = 1 ]; then kill "$hog"; wait "$hog" 2>/dev/null || true; fi
}
printf '%-6s %10s %10s %10s %8s %8s\n' round "quiet 1T" "loaded 2T" "loaded 1T" "l2/q1" "l1/q1"
for r in $(seq "$rounds"); do
    q1=$(run 1 0 X=1); l2=$(run 2 1 ${LOADED_ENV:-X=1}); l1=$(run 1 1 X=1)
    printf '%-6s %10s %10s %10s %7.2fx %7.2fx\n' "$r" "$q1" "$l2" "$l1" "$(echo "$l2 $q1" | awk '{print $1/$2}')" \
        "$(echo "$l1 $q1" | awk '{print $1/$2}')"
done
