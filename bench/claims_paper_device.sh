#!/usr/bin/env bash
# The paper-budget claims gate for several seeds on a many-core host, one
# process per (claim group, seed) so that it fits 10-minute device calls:
#   bench/claims_paper_device.sh PART OUTDIR SEEDS...
# PART a: claim 2 (the longest: both MQAR sizes, both arms; 4 threads) and claim 5 (its lr sweep; 2 threads) per seed.
# PART b: claims 1, 7 (2 threads each) and 3, 4, 6 (1 thread) per seed.
# Combine afterwards with: hydra claims --merge OUTDIR/*.json --md RESULTS.md
set -uo pipefail
part=$1 out=$2
shift 2
hydra=${HYDRA:-./build/hydra}
mkdir -p "$out"
run() { # NAME THREADS CLAIMS SEED
    OMP_WAIT_POLICY=PASSIVE timeout "${LIMIT:-560}" "$hydra" claims --budget paper --claim "$3" --seed "$4" \
        --threads "$2" --json "$out/$1_seed$4.json" > "$out/$1_seed$4.log" 2>&1 &
}
for s in "$@"; do
    case $part in
    a) run c2 4 claim_2 "$s"; run c5 2 claim_5 "$s" ;;
    b) run c1 2 claim_1 "$s"; run c7 2 claim_7 "$s"; run c346 1 claim_3,claim_4,claim_6 "$s" ;;
    *) echo "PART must be a or b" >&2; exit 2 ;;
    esac
done
wait
grep -h "^\[" "$out"/*.log || true
