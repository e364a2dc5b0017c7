#!/usr/bin/env bash
# Drives bench/stream_10m_chain.sh on the lent device machine, whose calls are
# capped at 10 minutes while the machine stays warm between calls:
#   bench/stream_10m_device.sh start START END SECONDS   (first call)
#   bench/stream_10m_device.sh collect SECONDS           (later calls)
# `start` unpacks the carried .debs, builds the run folder /tmp/run (binary,
# scripts, the model from `hydra init --seed 0`, tinyshakespeare x 10 and the
# carried out/stream10m/state_START.hstate) and starts the chain detached, so
# it outlives the call. Both phases then wait up to SECONDS (or until the
# chain ends) and copy the segment logs, the chain log and the newest state
# file to $OUT, so a machine taken back loses at most one segment.
set -uo pipefail
run=/tmp/run d=/tmp/run/d
if [ "$1" = start ]; then
  start=$2 end=$3 secs=$4
  for f in .debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  mkdir -p "$run/bench" "$run/build" "$d"
  cp bench/stream_10m.sh bench/stream_10m_chain.sh "$run/bench/"
  cp build/hydra "$run/build/"
  [ "$start" -gt 0 ] && cp "out/stream10m/state_$start.hstate" "$d/"
  for i in 1 2 3 4 5 6 7 8 9 10; do cat .data/tinyshakespeare.txt; done > "$d/input10x.txt"
  export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blis-openmp
  (cd "$run" && ./build/hydra init --seed 0 --out d/default.safetensors) | tail -1
  sha256sum "$d/default.safetensors" "$d"/state_*.hstate
  nproc
  # close every inherited descriptor above 2 first: one of them is the call's
  # output pipe, and a chain holding it would keep the call from returning
  (cd "$run" && for fd in $(ls /proc/$BASHPID/fd); do
     [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
   setsid nohup bench/stream_10m_chain.sh d "$start" "$end" 262144 "${THREADS:-16}" \
     > d/chain.log 2>&1 < /dev/null &)
else
  secs=$2
fi
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$secs" ] && pgrep -f stream_10m_chain.sh > /dev/null; do sleep 5; done
cp "$d"/segment_*.log "$d/chain.log" "$OUT/" 2>/dev/null
newest=$(ls "$d"/state_*.hstate 2>/dev/null | sort -t_ -k2 -n | tail -1)
[ -n "$newest" ] && cp "$newest" "$OUT/" && sha256sum "$newest"
pgrep -f stream_10m_chain.sh > /dev/null && echo "chain: running" || echo "chain: finished"
grep -h 'done:' "$d"/segment_*.log | tail -20
