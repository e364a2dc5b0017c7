#!/usr/bin/env bash
# Sequence-level distillation of speculative drafts from a trained target:
# `hydra sample` writes corpora sampled from the target (batched), and drafts
# of the usual shape (d128 x 2, DS) are trained on a corpus followed by
# tinyshakespeare, then benchmarked against the target.
#   bench/spec_distill.sh TARGET.safetensors OUTDIR [SEQS]
# Corpora: SEQS (default 2,560) sequences of a 32-byte prompt from the
# training split + 224 sampled bytes, at temperature 0 (the target's greedy
# continuations: what greedy speculative decoding must predict) and at 1
# (its distribution). Drafts: draft_greedy (temperature-0 corpus) and
# draft_both (both corpora). Session 5's figures: docs/spec-decoding.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 out=$2 seqs=${3:-2560}
data=data/tinyshakespeare.txt
mkdir -p "$out"
sample() { # temperature seed
  [ -f "$out/corpus_t$1.txt" ] && return
  ./build/hydra sample --model "$target" --data "$data" --out "$out/corpus_t$1.txt" --seqs "$seqs" --batch 128 -n 224 \
    --temperature "$1" --seed "$2" 2>&1 | tr '\r' '\n' | tail -1
}
train() { # name corpus...
  local name=$1
  shift
  [ -f "$out/$name/model.safetensors" ] && return
  cat "$@" "$data" > "$out/$name.data.txt"
  ./build/hydra train --data "$out/$name.data.txt" --out "$out/$name" --d-model 128 --n-layers 2 --n-heads 2 \
    --pattern DS --window 256 --steps 4000 --batch 16 --seq 128 --lr 3e-3 --eval-every 250 --sample-len 0 --seed 0 \
    --log-every 100 2>&1 | tail -1
}
sample 0 2
sample 1 1
train draft_greedy "$out/corpus_t0.txt"
train draft_both "$out/corpus_t0.txt" "$out/corpus_t1.txt"
for d in draft_greedy draft_both; do
  ./build/hydra bench --spec-target "$target" --spec-draft "$out/$d/model.safetensors" | tee "$out/bench_$d.txt"
done
