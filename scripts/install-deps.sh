#!/usr/bin/env bash
# Installs every build/test dependency of HydraLM-C from Debian packages.
# Why each one is here: see docs/dependencies.md.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config   # compiler + build system
  libblis-openmp-dev                 # BLIS (OpenMP-threaded) for every GEMM; see DESIGN §7 trap
  libjansson-dev                     # JSON: config files and the safetensors header
  libcmocka-dev                      # unit-test framework
  libopenmpi-dev openmpi-bin         # MPI: mpirun -np N hydra train (data-parallel ranks)
  python3 python3-torch python3-numpy # PyTorch reference used by the tests (not by the product)
  python3-pytest                     # the Python binding's test suite (python/tests)
  python3-setuptools python3-pip python3-wheel python3-venv  # `pip install .` of the binding, offline
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
