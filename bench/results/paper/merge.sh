#!/usr/bin/env bash
# RESULTS.md (the paper budget, seeds 0-3) from the runs in this folder:
#   seed0_vm.json        `hydra claims --all --budget paper --seed 0` on the 2-vCPU VM (claims 1, 3-6 taken;
#                        its claim 2 predates the final L=512 curriculum, its claim 7 ran beside a compile)
#   device_c1/c346/c5_*  bench/claims_paper_device.sh on the device host's 16 CPUs, seeds 1-3
#   vm_c2_seed*.json     claim 2 (final recipe) on the VM, seeds 0-3
#   vm_c7_seed*.json     claim 7 (rollback journal) on the VM, seeds 0-3
#   bench/results/paper/merge.sh [HYDRA]   (run from the repository root)
set -euo pipefail
h=${1:-./build/hydra}
d=bench/results/paper
"$h" claims --merge "$d/seed0_vm.json:claim_1+claim_3+claim_4+claim_5+claim_6,$(
  ls $d/device_*.json $d/vm_c2_seed*.json $d/vm_c7_seed*.json | paste -sd,)" \
  --md RESULTS.md --json bench/results/claims-paper-seeds0-3.json
