#!/usr/bin/env bash
# RESULTS.md (the paper budget, seeds 0-3, session 11) from the runs in this folder, all built from
# commit d9897b7 (each JSON records it; --merge refuses a mix and re-decides every status):
#   vm_c1/c2/c5_seed*.json      claims 1, 2, 5 on the 2-vCPU VM, one thread each, two runs at a time
#   device_c7_seed*.json        claim 7 on the 16-core GPU host's CPUs, 2 threads, four seeds at once
#   device_c346_seed*.json      claims 3, 4, 6 there, 1 thread, beside them (GPU tests ran on the host too)
#   bench/results/paper/merge.sh [HYDRA]   (run from the repository root)
set -euo pipefail
h=${1:-./build/hydra}
d=bench/results/paper
"$h" claims --merge "$(ls $d/*.json | paste -sd,)" --md RESULTS.md --json bench/results/claims-paper-seeds0-3.json
