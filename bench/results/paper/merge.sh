#!/usr/bin/env bash
# RESULTS.md (the paper budget, seeds 0-3, session 11) from the runs in this folder, all built from
# commit d9897b7 (each JSON records it; --merge refuses a mix and re-decides every status):
#   vm_c1/c2/c5_seed*.json      claims 1, 2, 5 on the 2-vCPU VM, one thread each, two runs at a time
#   device_c7_seed*.json        claim 7 on the 16-core GPU host's CPUs, 2 threads, four seeds at once
#   device_c346_seed*.json      claims 3, 4, 6 there, 1 thread, beside them (GPU tests ran on the host too)
# Then the GPU budget's run (claims 1, 2, 5 at GPU sizes, one H200, session 13, commit 49cd336) is appended
# as it was written by `hydra claims --budget gpu --device cuda` (bench/results/gpu/s13_h200_claims_gpu_s0.md;
# session 10's H100 run, before claim 2's per-arm learning rates, stays in s10_h100_claims_gpu_s0.*).
#   bench/results/paper/merge.sh [HYDRA]   (run from the repository root)
set -euo pipefail
h=${1:-./build/hydra}
d=bench/results/paper
"$h" claims --merge "$(ls $d/*.json | paste -sd,)" --md RESULTS.md --json bench/results/claims-paper-seeds0-3.json ||
  [ $? -eq 1 ] # 1: the report was written and some claim failed
{
  printf '\n\n# GPU budget (`--budget gpu --device cuda`, one NVIDIA H200, seed 0, session 13)\n\n'
  printf 'Claims 1, 2 and 5 at sizes the CPU cannot reach (docs/claims.md, "--budget gpu"); a single seed, built from\n'
  printf 'commit 49cd336 (clean). Claim 2 trains each arm at three Muon rates and keeps its best (since session 13;\n'
  printf 'session 10 on an H100 with one rate: the attention baseline did not learn L 1,024 / 2,048, raw in\n'
  printf 'bench/results/gpu/s10_h100_claims_gpu_s0.*). Raw: bench/results/gpu/s13_h200_claims_gpu_s0.{json,md,log}.\n'
  printf 'The report as the CLI wrote it:\n\n'
  sed -e '1s/^# /## /' -e '2,$s/^## /### /' bench/results/gpu/s13_h200_claims_gpu_s0.md
} >> RESULTS.md
