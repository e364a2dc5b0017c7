#!/usr/bin/env bash
# Muon vs AdamW on tinyshakespeare, d_model 256 / 6 layers (training issue).
# Same model, data, batch and schedule; only the optimizer differs. Writes
# out/muon_vs_adamw/<opt>_s<seed>/loss.csv; summarise with
# python3 bench/muon_vs_adamw_summary.py out/muon_vs_adamw
# usage: bench/muon_vs_adamw.sh "0 1 2 3" [steps] [parallel jobs]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3"}
STEPS=${2:-2000}
JOBS=${3:-2}
DATA=data/tinyshakespeare.txt
OUT=out/muon_vs_adamw
mkdir -p "$OUT"
run() {
  local opt=$1 seed=$2
  ./build/hydra train --data "$DATA" --out "$OUT/${opt}_s${seed}" --d-model 256 --n-layers 6 --n-heads 4 \
    --head-dim 64 --steps "$STEPS" --batch 8 --seq 64 --optimizer "$opt" --lr 3e-3 --muon-lr 0.02 \
    --warmup 100 --eval-every 100 --eval-batches 16 --ckpt-every "$STEPS" --sample-len 0 \
    --seed "$seed" --threads 1 --log-every 500 > "$OUT/${opt}_s${seed}.log" 2>&1
}
export -f run
export OUT DATA STEPS
for s in $SEEDS; do for o in adamw muon; do echo "$o $s"; done; done |
  xargs -P "$JOBS" -n 2 bash -c 'run "$0" "$1"'
