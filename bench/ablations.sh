#!/usr/bin/env bash
# Ablations on MQAR with the claim-2 recipe (L=64, 4 pairs, V=64, window 16,
# d_model 64, Muon 0.02 + AdamW 1e-2, init std 0.05, 400 steps, B=64):
#   1. mixer: DeltaNet-only (DD) vs hybrid (DS) vs attention-only (AA), 2 layers
#   2. SWA placement: swa_every 2 / 4 / 8 in an 8-layer model
# Prints one line per run (final accuracy, beyond-window accuracy, seconds);
# curves go to OUTDIR/*.csv.   bench/ablations.sh [OUTDIR] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/ablations} seed=${2:-0}
mkdir -p "$out"
recipe=(--optimizer muon --lr 1e-2 --init-std 0.05 --steps 400 --eval-every 50 --seed "$seed" --quiet)
for p in DD DS AA; do
  w=16; [ "$p" = AA ] && w=0
  ./build/hydra mqar --pattern "$p" --window "$w" "${recipe[@]}" --csv "$out/mixer_$p.csv"
done
for e in 2 4 8; do
  ./build/hydra mqar --n-layers 8 --swa-every "$e" --pattern "" "${recipe[@]}" --csv "$out/swa_every_$e.csv"
done
