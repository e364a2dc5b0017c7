#!/usr/bin/env bash
# self_contained.sh SRC — fails if any file of the source tree names the
# sibling "shared" checkout (dot-dot-slash shared) that exists only beside
# the developers' checkouts, or if the data the tests read is not tracked.
# Issue 19: a fresh clone must pass its own tests.
set -euo pipefail
src=${1:?usage: self_contained.sh SRC}
cd "$src"
# the pattern is spelled in two pieces so this file does not match itself
pat='\.\.'/shared
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  hits=$(git grep -nE "$pat" -- . || true)
  git ls-files --error-unmatch data/tinyshakespeare.txt >/dev/null ||
    { echo "data/tinyshakespeare.txt is not tracked by git"; exit 1; }
else
  hits=$(grep -rnE --exclude-dir='build*' --exclude-dir=out "$pat" . || true)
fi
if [ -n "$hits" ]; then
  echo "these files read the sibling shared checkout; ship the data in the repository instead:"
  echo "$hits"
  exit 1
fi
[ -s data/tinyshakespeare.txt ] || { echo "data/tinyshakespeare.txt missing or empty"; exit 1; }
echo "self-contained: no reference to the sibling shared checkout"
