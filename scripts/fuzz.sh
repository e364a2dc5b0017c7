#!/usr/bin/env bash
# scripts/fuzz.sh FORMAT SECONDS [libFuzzer flags...] — one fuzzing campaign.
#   FORMAT: checkpoint | state | state_checksum | bank | config | text
# Builds the libFuzzer harness (build-fuzz/, clang with ASan+UBSan; Debian:
# clang-14 libclang-rt-14-dev, not needed by CI, which replays the corpus
# with the ordinary compiler), then fuzzes on ONE core for SECONDS seconds
# from the seed corpus (tests/fuzz/corpus/<format>) with the format's
# dictionary. New inputs go to build-fuzz/campaign/<target>/corpus, crashes to
# .../artifacts; the log ends with libFuzzer's totals. A crash worth keeping
# goes to tests/fuzz/crashes/<format>/ once fixed (CI replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 checkpoint|state|state_checksum|bank|config|text SECONDS [libFuzzer flags]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1
secs=$2
shift 2
case $target in checkpoint | state | state_checksum | bank | config | text) ;; *) usage ;; esac
[[ $secs =~ ^[0-9]+$ ]] || usage
format=${target%_checksum}
CC=${CC:-clang-14}
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYDRA_FUZZ=ON -DCMAKE_C_COMPILER="$CC" > /dev/null
cmake --build build-fuzz -j2 --target "fuzz_$target" > /dev/null
work=build-fuzz/campaign/$target
mkdir -p "$work/corpus" "$work/artifacts"
# -malloc_limit_mb: any single allocation over 256 MB is a finding (inputs are
# at most a few tens of KB, so only a loader trusting a size field gets there).
OMP_NUM_THREADS=1 "build-fuzz/tests/fuzz/fuzz_$target" "$work/corpus" "tests/fuzz/corpus/$format" \
    -dict="tests/fuzz/dict/$format.dict" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 "$@" 2>&1 |
    tee "$work/log.txt"
echo "campaign log: $work/log.txt; artifacts: $(ls "$work/artifacts" | wc -l) file(s) in $work/artifacts"
