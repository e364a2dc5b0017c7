#!/usr/bin/env bash
# A text demo: install dependencies, build, train a small model on
# tinyshakespeare for a couple of minutes, then stream text from it.
# (The main job — the claims gate — is scripts/run.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
mkdir -p out
DATA=data/tinyshakespeare.txt   # shipped in the repository (data/README.md)
./build/hydra train --data "$DATA" --out out/demo --d-model 128 --n-layers 4 --n-heads 2 --window 128 \
  --steps 400 --batch 16 --seq 128 --lr 3e-3 --eval-every 100 --sample-len 120 --seed 0
MODEL=out/demo/model.safetensors
./build/hydra info "$MODEL"
echo "--- generating 300 tokens (temperature 0.8, top-p 0.95) ---"
./build/hydra generate --model "$MODEL" --prompt "ROMEO: " -n 300 --temperature 0.8 --top-p 0.95 --seed 1 --stats
