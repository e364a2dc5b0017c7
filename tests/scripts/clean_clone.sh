#!/usr/bin/env bash
# clean_clone.sh SRC — clones SRC's committed HEAD into an empty temporary
# folder (no "shared" folder beside it), builds there, and runs the tests that
# read data files plus the Python binding's fast tests: what a new user gets
# from `git clone` + the README's test command (issue 19).
set -euo pipefail
src=${1:?usage: clean_clone.sh SRC}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$src" "$tmp/hydralm"
cd "$tmp/hydralm"
[ ! -e "$tmp/shared" ] || { echo "unexpected $tmp/shared"; exit 1; }
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target hydra hydralm test_train >/dev/null
# every test named here must exist (a missing one would silently shrink the run)
n=$(cd build && ctest -N -R "^(test_train|tree_self_contained|python_fast)$" | grep -c "Test *#")
[ "$n" -eq 3 ] || { echo "expected 3 tests in the clone, found $n"; exit 1; }
cd build
ctest --output-on-failure --no-tests=error -R '^(test_train|tree_self_contained|python_fast)$'
