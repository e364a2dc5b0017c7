#!/usr/bin/env bash
# The main job: install dependencies, build, and run the claims gate at the
# ci budget — every headline claim reproduced on this CPU in minutes (claim 7,
# the speculative-decoding speedup, needs --budget paper). Reports land in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
mkdir -p out
./build/hydra claims --all --budget ci --seed 0 --json out/claims-ci.json --md out/claims-ci.md
