#!/usr/bin/env bash
# The main job: install dependencies, build, then create a small seeded model
# and stream generated text from it. (Untrained weights give random bytes;
# the point is the pipeline: init -> save -> load -> prefill -> stream.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
mkdir -p out
./build/hydra init --d-model 256 --n-layers 4 --n-heads 4 --seed 0 --out out/demo.safetensors
./build/hydra info out/demo.safetensors
echo "--- generating 200 tokens (temperature 0.8, top-p 0.95) ---"
./build/hydra generate --model out/demo.safetensors --prompt "ROMEO: " -n 200 \
  --temperature 0.8 --top-p 0.95 --seed 1 --stats
