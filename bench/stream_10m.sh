#!/usr/bin/env bash
# Issue 4's 10M-token run through the default config (768 x 12), in resumable
# segments, so that it fits sessions and 10-minute device calls:
#   bench/stream_10m.sh DIR START LEN [THREADS]
# DIR holds default.safetensors (hydra init --seed 0; the same file on every
# machine) and input10x.txt (tinyshakespeare x 10: bytes = tokens). A segment
# feeds bytes [START, START+LEN) with `hydra stream`; START > 0 resumes from
# DIR/state_START.hstate, and the final state goes to DIR/state_END.hstate, so
# the segments chain into one stream (the state file carries the position and
# the model fingerprint, and a wrong or damaged file is refused). Each
# segment's summary line (tokens, tokens/s, state bytes, RSS) goes to
# DIR/segment_START.log.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 start=$2 len=$3 threads=${4:-0}
end=$((start + len))
[ -f "$dir/default.safetensors" ] || ./build/hydra init --seed 0 --out "$dir/default.safetensors"
if [ ! -f "$dir/input10x.txt" ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do cat data/tinyshakespeare.txt; done > "$dir/input10x.txt"
fi
load=()
[ "$start" -gt 0 ] && load=(--load-state "$dir/state_$start.hstate")
# dd reads exactly [start, start+len): no reader exits early, so no SIGPIPE
# for pipefail to turn into a failed segment
dd if="$dir/input10x.txt" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$len" status=none |
  ./build/hydra stream --model "$dir/default.safetensors" --input - --threads "$threads" "${load[@]}" \
    --save-state "$dir/state_$end.hstate" 2>&1 | tr '\r' '\n' | tee "$dir/segment_$start.log" | tail -3
