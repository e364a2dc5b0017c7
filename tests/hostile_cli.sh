#!/usr/bin/env bash
# hostile_cli.sh HYDRA SOURCE_DIR — runs the CLI on the hostile files of
# issue 21 (tests/fuzz/crashes and a FIFO / a directory) and checks each is
# refused with exit code 1 and a message naming the problem: no crash, no
# hang, no silent acceptance; and a few usage refusals (the claims gate's gpu
# budget without a GPU). ctest runs it in the fast label, so the
# ASan/UBSan build of scripts/test.sh runs it too.
set -u
HYDRA=$1
FZ=$2/tests/fuzz
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODEL=$FZ/corpus/checkpoint/ds.safetensors
failures=0

# expect WANT_RC FRAGMENT -- command...: exit code and a stderr fragment.
expect() {
    local want_rc=$1 frag=$2
    shift 3
    local err rc
    err=$(timeout 60 "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne "$want_rc" ] || ! grep -qF -- "$frag" <<<"$err"; then
        echo "FAIL: $* -> exit $rc (want $want_rc), stderr: $err (want \"$frag\")"
        failures=$((failures + 1))
    else
        echo "ok: ${*#"$HYDRA" } -> exit $rc: $(tail -n1 <<<"$err")"
    fi
}

# defect 1: positions near 2^63 (release builds used to SIGSEGV)
expect 1 "beyond the limit of 2^53" -- "$HYDRA" stream --model "$MODEL" --load-state "$FZ/crashes/state/DS-position-int64max.hst" --then abcdefgh --n 4 --quiet
expect 1 "beyond the limit of 2^53" -- "$HYDRA" factbank ask --model "$MODEL" --bank "$FZ/crashes/bank/DS-position-int64max.bnk" --prompt abcdefgh -n 4
expect 1 "beyond the limit of 2^53" -- "$HYDRA" factbank info "$FZ/crashes/bank/DS-position-int64max.bnk"
# defect 2: a small file describing 830 MB of weights
expect 1 "describes" -- "$HYDRA" info "$FZ/crashes/checkpoint/conv-heavy-830MB.safetensors"
expect 1 "describes" -- "$HYDRA" stream --bf16 --model "$FZ/crashes/checkpoint/conv-heavy-830MB.safetensors" --then a --n 1 --quiet
# defects 3-5: config values (a bad --config is a usage error: exit 2)
expect 2 "mlp_multiple must be in 1..65536" -- "$HYDRA" init --config "$FZ/crashes/config/mlp-multiple-int32max.json" --out "$TMP/m.safetensors"
expect 2 "must be a finite number" -- "$HYDRA" init --config "$FZ/crashes/config/rope-base-1e39.json" --out "$TMP/m.safetensors"
expect 2 "window must be in 0..65536" -- "$HYDRA" init --config "$FZ/crashes/config/window-4194304.json" --out "$TMP/m.safetensors"
expect 2 "head_dim 3 is odd" -- "$HYDRA" init --config "$FZ/crashes/config/odd-head-dim-with-attention.json" --out "$TMP/m.safetensors"
# defect 7: a FIFO (used to block forever) and a directory (was "out of memory")
mkfifo "$TMP/fifo"
mkdir "$TMP/dir"
expect 1 "not a regular file (a FIFO)" -- "$HYDRA" info "$TMP/fifo"
expect 1 "not a regular file (a FIFO)" -- "$HYDRA" stream --model "$MODEL" --load-state "$TMP/fifo" --quiet
expect 1 "not a regular file (a FIFO)" -- "$HYDRA" factbank info "$TMP/fifo"
expect 2 "not a regular file (a FIFO)" -- "$HYDRA" init --config "$TMP/fifo" --out "$TMP/m.safetensors"
expect 1 "not a regular file (a directory)" -- "$HYDRA" eval --model "$MODEL" --data "$TMP/dir"
expect 1 "not a regular file (a directory)" -- "$HYDRA" info "$TMP/dir"
# the seeds themselves are accepted (so the refusals above are not blanket ones)
expect 0 "" -- "$HYDRA" stream --model "$MODEL" --load-state "$FZ/corpus/state/DS-6tokens.hst" --then ab --n 2 --quiet
expect 0 "" -- "$HYDRA" factbank ask --model "$MODEL" --bank "$FZ/corpus/bank/DS-6tokens.bnk" --prompt ab -n 2
# quantised checkpoints (issue 20): the state file of the f32 model loads into an int4 session and
# back; wrong names and mixes are usage errors; a quantised file is refused by the f32-only paths
QMODEL=$FZ/corpus/checkpoint/ds-int4.safetensors
expect 0 "" -- "$HYDRA" stream --model "$QMODEL" --load-state "$FZ/corpus/state/DS-6tokens.hst" --then ab --n 2 --quiet
expect 0 "" -- "$HYDRA" stream --model "$MODEL" --quant int8 --load-state "$FZ/corpus/state/DS-6tokens.hst" --then ab --n 2 --quiet
expect 2 "--quant is int8 or int4" -- "$HYDRA" generate --model "$MODEL" --quant int3 --prompt a
expect 2 "pick one" -- "$HYDRA" stream --model "$MODEL" --quant int8 --bf16 --then a --n 1 --quiet
expect 1 "loads only as it is" -- "$HYDRA" generate --model "$QMODEL" --quant int8 --prompt a
expect 1 "loads only as it is" -- "$HYDRA" stream --model "$QMODEL" --bf16 --then a --n 1 --quiet
# the claims gate's gpu budget (issue 15): its sizes are meant for a GPU, refused without one named
expect 2 "give --device cuda" -- "$HYDRA" claims --all --budget gpu --quiet
expect 2 "give --device cuda" -- "$HYDRA" claims --claim claim_2 --budget gpu --device cpu --quiet
expect 2 "--device must be cpu, cuda or cuda:N" -- "$HYDRA" claims --all --budget gpu --device gpu0 --quiet
expect 2 "--budget must be ci, paper or gpu" -- "$HYDRA" claims --all --budget h100 --quiet

[ "$failures" -eq 0 ] && echo "all hostile-file CLI checks passed" && exit 0
echo "$failures hostile-file CLI check(s) failed"
exit 1
