#!/usr/bin/env bash
# CPU vs GPU convergence (issue 15): the same d512 x 8 model on the shipped
# tinyshakespeare text, seeds 0-2 on each device, then the GPU (bf16) validation
# curves against the CPU runs' seed-to-seed band (bench/convergence_summary.py).
#   bench/convergence.sh cpu OUTDIR [HYDRA]     the CPU runs (1 thread each)
#   bench/convergence.sh cuda OUTDIR [HYDRA]    the GPU runs (bf16)
#   python3 bench/convergence_summary.py OUTDIR
set -euo pipefail
dev=${1:?cpu or cuda}; out=${2:?output directory}; hydra=${3:-build/hydra}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
extra=(--threads 1)
[ "$dev" = cuda ] && extra=(--device cuda)
for s in 0 1 2; do
  "$hydra" train --data "$here/data/tinyshakespeare.txt" --out "$out/${dev}_s$s" --d-model 512 --n-layers 8 \
    --n-heads 8 --steps 200 --batch 8 --seq 256 --eval-every 25 --eval-batches 8 --sample-len 0 --ckpt-every 1000 \
    --seed "$s" --log-every 25 "${extra[@]}" > "$out/${dev}_s$s.log" 2>&1
done
