#!/usr/bin/env bash
# Install dependencies, build, and run every test: the full suite on the
# Release build, then the fast suite again under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
(cd build && ctest --output-on-failure -j1)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHYDRA_SANITIZE=ON > /dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L fast -j1)
echo "all tests passed"
