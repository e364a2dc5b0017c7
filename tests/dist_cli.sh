#!/usr/bin/env bash
# dist_cli.sh HYDRA MPIRUN — `mpirun hydra train` end to end (ctest dist_cli):
#  1. 2 ranks, sharded: rank 0 alone writes loss.csv / checkpoint; the
#     progress line shows memory per rank; 1 process resumes the checkpoint;
#  2. ranks started with different options: every rank prints the mismatch,
#     the job exits non-zero;
#  3. a rank that exits mid-run, one killed by SIGKILL, one that hangs (the other's
#     --comm-timeout watchdog): the job ends non-zero within a bound, with
#     a message;
#  4. --device cuda (GPU ranks) on a machine without GPUs: refused on every
#     rank with a message (skipped where a GPU is visible).
# Each mpirun runs under `timeout`, so a hang fails the test instead of
# stalling CI.
set -uo pipefail
HYDRA=$1
MPIRUN=("$2" --allow-run-as-root --oversubscribe)
export OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/hydra_dist_cli_XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cat "${HYDRA_SOURCE_DIR:-.}"/README.md "${HYDRA_SOURCE_DIR:-.}"/docs/*.md > "$W/data.txt"
MODEL=(--d-model 32 --n-layers 2 --n-heads 2 --head-dim 16 --pattern DS --window 16 --mlp-multiple 16)
ARGS=(--data "$W/data.txt" "${MODEL[@]}" --batch 8 --seq 32 --eval-every 5 --eval-batches 2 --sample-len 16
      --log-every 5 --optimizer muon)

# 1. launch + resume with another rank count
timeout 120 "${MPIRUN[@]}" -np 2 "$HYDRA" train "${ARGS[@]}" --steps 10 --out "$W/a" --shard-optimizer \
  > "$W/a.log" 2>&1 || { cat "$W/a.log"; fail "2-rank training failed"; }
grep -q "data-parallel: 2 ranks" "$W/a.log" || fail "no data-parallel line"
grep -q "KiB/rank" "$W/a.log" || fail "no memory per rank in the progress line"
[ "$(grep -c '^step 10/10' "$W/a.log")" = 1 ] || fail "progress not printed by rank 0 alone"
[ "$(grep -c '^10,' "$W/a/loss.csv")" = 1 ] || fail "loss.csv not written once"
timeout 120 "$HYDRA" train "${ARGS[@]}" --steps 15 --resume "$W/a" --out "$W/a" > "$W/b.log" 2>&1 \
  || { cat "$W/b.log"; fail "1 process could not resume the 2-rank checkpoint"; }
grep -q "resumed .* at step 10" "$W/b.log" || fail "no resume line"
echo "ok: 2 ranks wrote a checkpoint, 1 process resumed it"

# 2. mismatched ranks (MPMD: rank 1 gets another --lr)
timeout 60 "${MPIRUN[@]}" -np 1 "$HYDRA" train "${ARGS[@]}" --steps 5 --out "$W/c" : \
  -np 1 "$HYDRA" train "${ARGS[@]}" --steps 5 --out "$W/c" --lr 1e-2 > "$W/c.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$W/c.log"; fail "mismatched ranks: exit $rc"; }
# every rank's log line: log, message with RANK for the rank, what failed
each_rank() { for r in 0 1; do grep -q "${2//RANK/$r}" "$1" || { cat "$1"; fail "rank $r: $3"; }; done; }
each_rank "$W/c.log" "rank RANK of 2: the ranks disagree on the training options" "did not report the mismatch"
echo "ok: mismatched options refused on every rank"

# 3. a rank that dies / hangs: bounded end, a message
run_fault() { # name, env..., expected message
  local name=$1 msg=$2; shift 2
  local t0=$SECONDS
  env "$@" timeout 90 "${MPIRUN[@]}" -np 2 "$HYDRA" train "${ARGS[@]}" --steps 50 --out "$W/$name" \
    --comm-timeout 5 > "$W/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - t0))
  [ $rc -ne 0 ] || { cat "$W/$name.log"; fail "$name: the job succeeded"; }
  [ $rc -ne 124 ] || { cat "$W/$name.log"; fail "$name: the job hung until the test's 90 s timeout"; }
  grep -q "$msg" "$W/$name.log" || { cat "$W/$name.log"; fail "$name: no message '$msg'"; }
  echo "ok: $name ended the job in ${dt} s (exit $rc)"
}
run_fault exit "exiting on purpose" HYDRA_TEST_FAULT_RANK=1 HYDRA_TEST_EXIT_AT_STEP=3
grep -q "rank 0 of 2): stopped by the launcher" "$W/exit.log" || fail "exit: the surviving rank printed nothing"
run_fault kill "stopped by the launcher" HYDRA_TEST_FAULT_RANK=1 HYDRA_TEST_KILL_AT_STEP=3
run_fault hang "rank 0 of 2): MPI_Allreduce .* has waited more than 5 s" HYDRA_TEST_FAULT_RANK=1 HYDRA_TEST_HANG_AT_STEP=3
grep -q "rank 1 of 2): stopped by the launcher" "$W/hang.log" || fail "hang: the hung rank printed nothing"

# 4. GPU ranks where the GPUs are missing (CI, most VMs): every rank says so, the job ends at once
if "$HYDRA" info 2>&1 | grep -qE "^cuda .*(not in this build| 0 devices)"; then
  t0=$SECONDS
  timeout 60 "${MPIRUN[@]}" -np 2 "$HYDRA" train "${ARGS[@]}" --steps 5 --out "$W/g" --device cuda > "$W/g.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$W/g.log"; fail "GPU ranks without GPUs: exit $rc"; }
  each_rank "$W/g.log" "rank RANK of 2): GPU ranks: cuda:RANK is not there" "did not report its missing GPU"
  echo "ok: GPU ranks without GPUs refused on every rank in $((SECONDS - t0)) s"
else
  echo "skipped: GPU ranks without GPUs (this machine has a GPU)"
fi
echo "all passed"
