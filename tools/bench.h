/* bench.h — micro-benchmarks run by `hydra bench`. */
#ifndef HYDRA_TOOLS_BENCH_H
#define HYDRA_TOOLS_BENCH_H

#include <stdio.h>

#include "hydralm.h"

/* Delta-rule kernel table (fast vs ref, prefill 512 tokens and single-token
 * decode at dk=dv=64 x 12 heads and 128 x 16 heads). threads <= 0: leave the
 * OpenMP thread count as it is. */
void hydra_bench_delta_rule(FILE *out, int threads);

/* Streaming engine (bench_stream.c): streams `tokens` tokens through a small
 * model and, if default_config, the default one; tokens/s, state bytes, peak
 * RSS after warm-up vs at the end, per-token time at 4K vs at the end. */
void hydra_bench_stream(FILE *out, long long tokens, int default_config, const char *device);

/* Speculative decoding (bench_spec.c): plain vs speculative decode tokens/s
 * for k in {2,4,6} at temperature 0 and 0.7, measured alpha, cost ratio c and
 * predicted vs measured speedup; then adaptive rounds for each min_ps[i]. */
void hydra_bench_spec(FILE *out, const char *target_path, const char *draft_path, int n_tokens, const float *min_ps,
                      int n_min_ps, int adaptive_k, int reps);

/* FactBank (bench_factbank.c): vector-memory capacity curve (top-1 recall vs
 * facts written, d = 1024, linear/cubic features, 1 and 4 heads) as a table;
 * and, given a checkpoint, key-value recall (MQAR layout: keys in [1, V/2),
 * values in [V/2, V)) with the facts in context vs in a bank file. */
void hydra_bench_factbank(FILE *out);
int hydra_bench_factbank_model(FILE *out, const char *model_path, int n_pairs, int n_trials, unsigned long long seed);

/* Training step (bench_train.c): tokens/s, model GFLOP/s, MFU vs the sgemm peak
 * measured in the same run at the same thread count, matmul share, and the
 * PyTorch peer (python/train_peer.py, when peer is set) at d256x4L and
 * d512x8L, T = 256, one row per config and thread count. quick: fewer steps. */
void hydra_bench_train(FILE *out, int quick, const int *threads, int n_threads, int peer);

/* Model FLOPs of one training step of config c on B x T tokens (the
 * definition bench_train.c's comment gives: 6 x matmul params x tokens +
 * attention + delta-rule terms); *n_mm = the matmul parameters. */
double hydra_bench_train_flops(const hydra_config *c, int B, int T, double *n_mm);

/* GPU training step (bench_cuda_train.c, `hydra bench --train --device cuda`):
 * the default 768 x 12 model at B x T = 16 x 2048 and 8 x 4096 (bf16, AdamW
 * and Muon), tokens/s, model TFLOP/s and MFU against the bf16 cuBLAS GEMM
 * peak measured in the same run; step_only: the bf16 AdamW 16 x 2048 row
 * alone. Returns 0, or 1 after reporting. */
int hydra_bench_cuda_train(FILE *out, const char *device, int quick, int step_only);

/* Threads under contention (bench_threads.c): train, prefill and decode at
 * quiet 1 / 2 threads and with a CPU hog pinned to the second of `cpus`
 * ("A,B"; NULL = the first two this process may use); only: the workloads
 * whose name starts with it (NULL = all). Returns 0, 1 on a
 * failed run, 2 on bad --cpus. */
int hydra_bench_contention(FILE *out, const char *cpus, const char *only, int quick);

/* GPU (bench_cuda.c): the card's GEMM and copy ceilings, the delta-rule
 * kernels, the default model's prefill / decode / batched decode in bf16 and
 * f32 on `device` ("cuda" or "cuda:N"). Returns 0, or 1 after reporting. */
int hydra_bench_cuda(FILE *out, const char *device, int quick, const char *only);

/* Quantised decode (bench_quant.c): with `speed`, the default and small
 * models as f32, bf16, int8 and int4, interleaved: bytes/token, tokens/s,
 * ratio to f32; with model_path, loss (decode and prefill paths) and greedy
 * agreement vs f32 on the validation split of data_path. quick: fewer steps
 * and tokens. */
int hydra_bench_quant(FILE *out, int quick, int speed, const char *model_path, const char *data_path);

#endif /* HYDRA_TOOLS_BENCH_H */
