#!/usr/bin/env bash
# Runs bench/stream_10m.sh segment after segment, from START up to END tokens,
# SEG tokens at a time, each resuming from the state file the last one saved:
#   bench/stream_10m_chain.sh DIR START END SEG [THREADS]
# Short segments bound what is lost when a machine is taken back mid-run: the
# newest DIR/state_N.hstate is always a complete, checksummed resume point.
# While DIR/PAUSE exists the chain waits between segments (so that another
# benchmark can have the machine without skewing a segment's tokens/s).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 pos=$2 end=$3 seg=$4 threads=${5:-0}
while [ "$pos" -lt "$end" ]; do
  while [ -f "$dir/PAUSE" ]; do sleep 5; done
  len=$seg
  [ $((pos + len)) -gt "$end" ] && len=$((end - pos))
  bench/stream_10m.sh "$dir" "$pos" "$len" "$threads"
  # keep only the newest two state files: each is 11 MiB
  [ "$pos" -gt 0 ] && ls "$dir"/state_*.hstate | sort -t_ -k2 -n | head -n -2 | xargs -r rm -f
  pos=$((pos + len))
done
