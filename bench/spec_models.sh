#!/usr/bin/env bash
# Issue 5's benchmark: train a target (d_model 512, 8 layers) and a draft
# (d_model 128, 2 layers) on tinyshakespeare with `hydra train`, then measure
# plain vs speculative decoding (k = 2, 4, 6 at temperature 0 and 0.7) with
# `hydra bench --spec-target/--spec-draft`.
#   bench/spec_models.sh [OUTDIR] [TARGET_STEPS] [DRAFT_STEPS]
# Session 4's pair (docs/spec-decoding.md) is the default: 1,000 target steps
# (20 min on 10 CPU cores of the device machine; ~50 min on a 2-core laptop)
# and 4,000 draft steps; their training logs are in bench/results/spec_models_s4.
# Drafts distilled from the trained target: bench/spec_distill.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/spec} tsteps=${2:-1000} dsteps=${3:-4000}
data=data/tinyshakespeare.txt
mkdir -p "$out"
if [ ! -f "$out/target/model.safetensors" ]; then
  ./build/hydra train --data "$data" --out "$out/target" --d-model 512 --n-layers 8 --n-heads 8 --window 256 \
    --steps "$tsteps" --batch 8 --seq 256 --lr 1e-3 --eval-every 100 --sample-len 0 --seed 0 --log-every 20
fi
if [ ! -f "$out/draft/model.safetensors" ]; then
  ./build/hydra train --data "$data" --out "$out/draft" --d-model 128 --n-layers 2 --n-heads 2 --pattern DS --window 256 \
    --steps "$dsteps" --batch 16 --seq 128 --lr 3e-3 --eval-every 250 --sample-len 0 --seed 0 --log-every 100
fi
./build/hydra bench --spec-target "$out/target/model.safetensors" --spec-draft "$out/draft/model.safetensors" \
  --spec-adaptive 0.3,0.5 | tee "$out/bench.txt"
