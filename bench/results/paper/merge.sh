#!/usr/bin/env bash
# RESULTS.md (the paper budget, seeds 0-3, session 11) from the runs in this folder, all built from
# commit d9897b7 (each JSON records it; --merge refuses a mix and re-decides every status):
#   vm_c1/c2/c5_seed*.json      claims 1, 2, 5 on the 2-vCPU VM, one thread each, two runs at a time
#   device_c7_seed*.json        claim 7 on the 16-core GPU host's CPUs, 2 threads, four seeds at once
#   device_c346_seed*.json      claims 3, 4, 6 there, 1 thread, beside them (GPU tests ran on the host too)
# Then the GPU budget's run (claims 1, 2, 5 at GPU sizes, one H100, session 10) is appended as it was
# written by `hydra claims --budget gpu --device cuda` (bench/results/gpu/s10_h100_claims_gpu_s0.md).
#   bench/results/paper/merge.sh [HYDRA]   (run from the repository root)
set -euo pipefail
h=${1:-./build/hydra}
d=bench/results/paper
"$h" claims --merge "$(ls $d/*.json | paste -sd,)" --md RESULTS.md --json bench/results/claims-paper-seeds0-3.json ||
  [ $? -eq 1 ] # 1: the report was written and some claim failed
{
  printf '\n\n# GPU budget (`--budget gpu --device cuda`, one NVIDIA H100 80GB HBM3, seed 0, session 10)\n\n'
  printf 'Claims 1, 2 and 5 at sizes the CPU cannot reach (docs/claims.md, "--budget gpu"); a single seed, from the\n'
  printf 'working tree of commit 2ef42b6 (recorded as -dirty: the tensor-core attention default, committed right after).\n'
  printf 'Raw: bench/results/gpu/s10_h100_claims_gpu_s0.{json,md,log}. The report as the CLI wrote it:\n\n'
  sed -e '1s/^# /## /' -e '2,$s/^## /### /' bench/results/gpu/s10_h100_claims_gpu_s0.md
} >> RESULTS.md
