#!/usr/bin/env bash
# Install dependencies, build, and run every test: the full suite on the
# Release build (with the CUDA backend where a CUDA toolkit exists; its GPU
# test reports "skipped" without a GPU), then the fast suite again under
# ASan + UBSan in a build without CUDA (which also checks that the library
# builds and behaves on a machine that lacks it), plus the MPI tests (label
# mpi: data-parallel training over mpirun -np 2).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
(cd build && ctest --output-on-failure -j1)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHYDRA_SANITIZE=ON -DHYDRA_CUDA=OFF > /dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L 'fast|mpi' -j1)
echo "all tests passed"
