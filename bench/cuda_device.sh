#!/usr/bin/env bash
# Runs on the lent GPU machine (see docs/gpu.md, "Measuring on a lent GPU"):
# unpacks the runtime .debs carried in .debs/ (BLIS, jansson, cmocka, libgomp:
# that machine has no Debian packages), then runs what the arguments name
# from the binaries carried in .dev/ (copied there from build/ by
#   bench/cuda_device.sh stage
# on the development machine):
#   test            tests/test_cuda (every CUDA op and the model vs the CPU)
#   bench [ARGS]    hydra bench --device cuda ARGS
#   cmd ...         any command, with the environment set up
set -uo pipefail
if [ "${1:-}" = stage ]; then  # on the development machine
  mkdir -p .dev && cp build/hydra build/tests/test_cuda .dev/ && ls -la .dev
  exit 0
fi
for f in .debs/*.deb; do dpkg -x "$f" / 2>/dev/null; done
ldconfig
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blis-openmp:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export HYDRA_SOURCE_DIR=$PWD OMP_WAIT_POLICY=PASSIVE
what=${1:-test}; shift || true
case "$what" in
  test) nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; (cd /tmp && "$OLDPWD/.dev/test_cuda") ;;
  bench) .dev/hydra bench --device cuda "$@" ;;
  cmd) "$@" ;;
esac
