#!/usr/bin/env bash
# bench/forkjoin/run.sh [A,B] — how much of a core shared with a busy loop a
# fork-join program gets, under libgomp's wait policies, threads pinned or
# not (issue 20 part 1; bench/LOG.md "Session 17"). Builds forkjoin.c with
# gcc -fopenmp into a temporary directory; takes about 2 minutes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cpus=${1:-$(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' | while IFS=- read -r a b; do seq "$a" "${b:-$a}"; done |
    head -2 | paste -sd,)}
case $cpus in *,*) ;; *) echo "run.sh needs two CPUs (got '$cpus')" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -fopenmp -o "$tmp/forkjoin" "$here/forkjoin.c"
fj() { "$tmp/forkjoin" "$@"; }
"$tmp/forkjoin" slices "${cpus#*,}"
echo "CPUs A,B = $cpus; regions of 1.5 ms of work in 16 items; ratio = quiet 1 thread's seconds / the row's"
q1=$(fj 1 none 0 1.5 16 "$cpus" | awk '{print $1}')
printf '%-54s %8s %7s  %s\n' "configuration" "seconds" "ratio" "items"
row() { # label, env, args
    local label=$1 envs=$2; shift 2
    local out; out=$(env $envs "$tmp/forkjoin" "$@" "$cpus")
    printf '%-54s %8s %6.2fx  %s\n' "$label" "${out%% s,*}" "$(echo "$q1 ${out%% s,*}" | awk '{print $1/$2}')" "${out#*s, }"
}
row "quiet, 1 thread" "X=1" 1 none 0 1.5 16
row "quiet, 2 threads, passive" "OMP_WAIT_POLICY=passive" 2 none 0 1.5 16
for hog in B A; do
  row "busy loop on $hog, 1 thread" "X=1" 1 $hog 0 1.5 16
  for pol in "GOMP_SPINCOUNT=2000" "OMP_WAIT_POLICY=passive" "OMP_WAIT_POLICY=active"; do
    for pin in 0 1; do
      row "busy loop on $hog, 2 threads, ${pol#*=}$([ $pin = 1 ] && echo ', pinned')" "$pol" 2 $hog $pin 1.5 16
    done
  done
done
