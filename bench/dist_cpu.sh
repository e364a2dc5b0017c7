#!/usr/bin/env bash
# Data-parallel training on CPU ranks (issue 16): 1 process vs `mpirun -np 2`
# on the same cores, same global batch, same model, in one run (rounds
# alternate the variants so a noisy host hits them alike).
#   1p x 2t     one process, 2 OpenMP threads (the plain trainer)
#   1p x 1t     one process, 1 thread (per-core reference)
#   2r x 1t     mpirun -np 2, one thread per rank, replicated optimizer
#   2r x 1t Z1  the same with --shard-optimizer (ZeRO-1)
# tok/s: steady state from loss.csv (elapsed between step 5 and the last
# step; evals are off). comm: rank 0's time inside collectives over the run,
# including waiting for the slower rank. Prints a markdown table.
# usage: bench/dist_cpu.sh [rounds] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
STEPS=${2:-30}
HYDRA=./build/hydra
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
OUT=out/dist_cpu
mkdir -p "$OUT"
DATA=${DATA:-data/tinyshakespeare.txt}
if [ ! -f "$DATA" ]; then DATA=$OUT/data.txt; cat README.md docs/*.md > "$DATA"; fi

# name: model flags, batch, seq
declare -A MODEL=(
  [d256x4]="--d-model 256 --n-layers 4 --n-heads 4 --head-dim 64 --pattern DDSD --window 64"
  [d64x2]="--d-model 64 --n-layers 2 --n-heads 2 --head-dim 32 --pattern DS --window 32"
)
declare -A SHAPE=([d256x4]="16 128" [d64x2]="8 64")

run() { # model variant round -> "tok/s comm%"
  local model=$1 var=$2 r=$3 dir
  read -r B T <<< "${SHAPE[$model]}"
  dir=$OUT/${model}_${var// /_}_r$r
  rm -rf "$dir"
  local args=(train --data "$DATA" --out "$dir" ${MODEL[$model]} --batch "$B" --seq "$T" --steps "$STEPS"
              --eval-every 100000 --eval-batches 1 --ckpt-every 100000 --sample-len 0 --log-every 100000)
  case $var in
    "1p2t") $HYDRA "${args[@]}" --threads 2 > "$dir.log" 2>&1 ;;
    "1p1t") $HYDRA "${args[@]}" --threads 1 > "$dir.log" 2>&1 ;;
    "2r1t") "${MPIRUN[@]}" -np 2 $HYDRA "${args[@]}" --threads 1 > "$dir.log" 2>&1 ;;
    "2r1tZ") "${MPIRUN[@]}" -np 2 $HYDRA "${args[@]}" --threads 1 --shard-optimizer > "$dir.log" 2>&1 ;;
  esac
  local tps comm
  tps=$(awk -F, -v B="$B" -v T="$T" 'NR>1 { if ($1==5) t5=$7; last=$1; tl=$7 } END { printf "%.0f", (last-5)*B*T/(tl-t5) }' "$dir/loss.csv")
  comm=$(sed -n 's/.*communication: .* (\([0-9.]*\)%).*/\1/p' "$dir.log")
  mem=$(sed -n 's/.*; \([0-9.]* [KMG]iB\) per rank.*/\1/p' "$dir.log")
  echo "$tps ${comm:--} ${mem:--}"
}

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | B x T | variant | tok/s per round | median tok/s | x 1p x 2t | comm share (rank 0) | state per rank |"
echo "|---|---|---|---|---|---|---|---|"
for model in d256x4 d64x2; do
  declare -A TPS=() COMM=() MEM=()
  for r in $(seq 1 "$ROUNDS"); do
    for var in 1p2t 1p1t 2r1t 2r1tZ; do
      read -r t c m <<< "$(run "$model" "$var" "$r")"
      TPS[$var]="${TPS[$var]:-} $t"
      COMM[$var]="${COMM[$var]:-} $c"
      MEM[$var]=$m
    done
  done
  med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END { print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }
  base=$(echo "${TPS[1p2t]}" | med)
  read -r B T <<< "${SHAPE[$model]}"
  for var in 1p2t 1p1t 2r1t 2r1tZ; do
    m=$(echo "${TPS[$var]}" | med)
    comm=$(echo ${COMM[$var]} | tr ' ' '/')
    [ "${comm//[-\/]/}" = "" ] && comm="-" || comm="$comm %"
    printf "| %s | %s x %s | %s | %s | %s | %s | %s | %s |\n" "$model" "$B" "$T" "$var" "$(echo ${TPS[$var]} | tr ' ' '/')" \
      "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$comm" "${MEM[$var]}"
  done
  unset TPS COMM MEM
done
