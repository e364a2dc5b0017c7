/*
 * hydralm_ops.h — low-level ops of libhydralm on raw float32 arrays.
 *
 * These are the kernels the model is assembled from, exposed so users can
 * build on them directly. Each op has a fast version (threaded, vectorised)
 * and, where the fast one is non-trivial, a plain `_ref` version that is the
 * readable definition the fast one is tested against.
 *
 * Shapes: T tokens, H heads, dk key dim, dv value dim, C channels.
 * All ops validate their arguments and return HYDRA_ERR_ARG on bad input.
 */
#ifndef HYDRALM_OPS_H
#define HYDRALM_OPS_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Gated delta rule, per head h and token t (state S [dv, dk] per head):
 *   S' = exp(g_t) S;  p = S' k_t;  u = beta_t (v_t - p);  S = S' + u k_t^T;  o_t = S q_t
 * q, k: [T, H, dk]; v: [T, H, dv]; g (log decay, <= 0), beta: [T, H];
 * S: [H, dv, dk], in: S_0 (state before token 0), out: S_T. o: [T, H, dv].
 * q and k are used as given (the model L2-normalises and scales them first). */
hydra_status hydra_op_delta_rule(int T, int H, int dk, int dv, const float *q, const float *k,
                                 const float *v, const float *g, const float *beta, float *S,
                                 float *o);
hydra_status hydra_op_delta_rule_ref(int T, int H, int dk, int dv, const float *q, const float *k,
                                     const float *v, const float *g, const float *beta, float *S,
                                     float *o);

/* y[M, N] = x[M, K] . W[N, K]^T (+ y if accumulate). W is row-major [out, in]
 * like PyTorch. BLAS for large M, a threaded GEMV-style kernel for small M. */
hydra_status hydra_op_matmul(int M, int N, int K, const float *x, const float *W, float *y,
                             int accumulate);
/* The same with bf16 weights W[N, K] (the upper halves of f32s): half the
 * bytes read per decode step; products and sums in f32. */
hydra_status hydra_op_matmul_bf16(int M, int N, int K, const float *x, const uint16_t *W, float *y,
                                  int accumulate);
/* f32 -> bf16, round to nearest even (NaN stays NaN). */
uint16_t hydra_f32_to_bf16(float f);

/* Quantised weights (src/ops/quant.c, docs/quantization.md). A row of K
 * weights is ceil(K / 32) blocks of 32 (the last one zero-padded), each with
 * one bf16 scale d: int8 holds q in [-127, 127] (w = d q, 32 bytes a block),
 * int4 holds q in [-8, 7] as q + 8 in nibbles (w = d q, 16 bytes a block:
 * byte j = element j | element j + 16 << 4). Bytes of one row / blocks: */
size_t hydra_quant_row_bytes(hydra_quant q, int K);
int hydra_quant_row_blocks(int K);
/* W [N, K] f32 -> qdata [N, row_bytes] + scales [N, blocks] (nearest level,
 * each scale rounded up to bf16 so no value clips in int8), and back. */
hydra_status hydra_quantize_rows(hydra_quant q, int N, int K, const float *W, void *qdata, uint16_t *scales);
hydra_status hydra_dequantize_rows(hydra_quant q, int N, int K, const void *qdata, const uint16_t *scales,
                                   float *W);
/* y[M, N] (+)= x[M, K] . W^T with W quantised. M < 16 (decode, speculative
 * verify): x is quantised per row and block of 32 to int8 (dynamic, one f32
 * scale per block) and the block dot products are integer (AVX-512 VNNI or
 * AVX2 kernels chosen at run time, or the plain reference); larger M:
 * the rows are dequantised to f32 a block at a time for BLAS. */
hydra_status hydra_op_matmul_q(hydra_quant q, int M, int N, int K, const float *x, const void *W,
                               const uint16_t *scales, float *y, int accumulate);
/* The small-M kernel: "auto" (the best this CPU runs; "ref" when the
 * environment has HYDRA_QUANT_REF=1), "vnni", "avx2" or "ref". Setting one the
 * CPU lacks fails with HYDRA_ERR_ARG. Process-wide; for tests and benchmarks. */
hydra_status hydra_quant_set_kernel(const char *name);
const char *hydra_quant_kernel(void);
/* 1 if this CPU can run the named kernel. */
int hydra_quant_kernel_supported(const char *name);

/* RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * w. x, y: [M, C]; w: [C]. */
hydra_status hydra_op_rmsnorm(int M, int C, const float *x, const float *w, float eps, float *y);

/* Causal depthwise conv over time: y_t[c] = sum_j w[c,j] x_{t-K+1+j}[c].
 * x, y: [T, C]; w: [C, K]; tail: [K-1, C] = the K-1 inputs before x_0
 * (zeros at the start of a sequence), updated in place to the last K-1 inputs.
 * tail may be NULL (zeros, not updated). */
hydra_status hydra_op_conv_causal(int T, int C, int K, const float *x, const float *w,
                                  float *tail, float *y);

/* RoPE (split-half rotation over the whole head dim, angles in double from
 * absolute positions pos0 + t) in place on x [T, H, d]. */
hydra_status hydra_op_rope(int T, int H, int d, int64_t pos0, double base, float *x);

/* Causal (sliding-window) attention for a chunk of T queries at absolute
 * positions pos0..pos0+T-1. q, k_new, v_new: [T, H, d] (already rotated).
 * Earlier keys/values live in cache_k/cache_v [cap, H, d]: the key of absolute
 * position j < pos0 is at slot (window ? j % window : j). window = 0 is
 * unbounded (full attention; cap must be >= pos0). Query t sees positions
 * max(0, p-W+1) .. p. The cache is NOT updated here. o: [T, H, d]. */
hydra_status hydra_op_attention(int T, int H, int d, int64_t pos0, int window, const float *q,
                                const float *k_new, const float *v_new, const float *cache_k,
                                const float *cache_v, float *o);

/* Elementwise helpers (in place allowed). */
float hydra_silu(float x);
float hydra_softplus(float x);
float hydra_sigmoid(float x);
/* Vectorised: y = SiLU(x) and y = SiLU(g) * u over n floats (polynomial exp,
 * relative error < 1e-6 vs the scalar functions). */
void hydra_vec_silu(float *y, const float *x, size_t n);
void hydra_vec_swiglu(float *y, const float *g, const float *u, size_t n);

/* ------------------------------------------------------------- backward
 * Gradients of the ops above for training (sequences start at position 0
 * from empty states). "Written" outputs are overwritten; parameter gradients
 * (dw) are accumulated (+=) so callers can sum over sequences in order.
 * None of them depends on the thread count beyond float rounding. */

/* General GEMM: C[M,N] (+)= op(A)[M,K] . op(B)[K,N]; op = transpose when
 * trans* != 0. Row-major with leading dims lda, ldb, ldc (allows column
 * slices of fused projections). Counted in hydra_matmul_stats. */
hydra_status hydra_op_matmul_ex(int transA, int transB, int M, int N, int K, const float *A,
                                int lda, const float *B, int ldb, float *C, int ldc,
                                int accumulate);

/* RMSNorm backward. x, dy: [M, C]; w: [C]. dx [M, C]: written (accumulate = 0)
 * or added to (accumulate = 1); dw [C] += sum over rows (NULL = skip). */
hydra_status hydra_op_rmsnorm_backward(int M, int C, const float *x, const float *w, float eps,
                                       const float *dy, float *dx, float *dw, int accumulate);

/* Causal depthwise conv backward from a zero tail. x, dy: [T, C]; w: [C, K].
 * dx [T, C] written; dw [C, K] += (NULL = skip). */
hydra_status hydra_op_conv_causal_backward(int T, int C, int K, const float *x, const float *w,
                                           const float *dy, float *dx, float *dw);

/* RoPE backward (the transposed rotation), in place on dx [T, H, d]. */
hydra_status hydra_op_rope_backward(int T, int H, int d, int64_t pos0, double base, float *dx);

/* Causal (sliding-window, window 0 = full) attention backward at positions
 * 0..T-1 without a cache. q, k (rotated), v, o (forward output), dO: [T, H, d].
 * dq, dk, dv: [T, H, d] written. Probabilities are recomputed per query. */
hydra_status hydra_op_attention_backward(int T, int H, int d, int window, const float *q,
                                         const float *k, const float *v, const float *o,
                                         const float *dO, float *dq, float *dk, float *dv);

/* Gated delta rule backward (DESIGN §2 recurrent backward). Inputs as in
 * hydra_op_delta_rule; S0 [H, dv, dk] the state before token 0 (NULL = 0);
 * dO [T, H, dv]; dST [H, dv, dk] gradient w.r.t. the final state (NULL = 0).
 * Outputs, written: dq, dk_ [T, H, dk]; dv_ [T, H, dv]; dg, dbeta [T, H];
 * dS0 [H, dv, dk] (NULL = not wanted). The fast version stores S every
 * HYDRA_DR_CKPT tokens and recomputes each chunk's states; _ref stores all. */
#define HYDRA_DR_CKPT 64
hydra_status hydra_op_delta_rule_backward(int T, int H, int dk, int dv, const float *q,
                                          const float *k, const float *v, const float *g,
                                          const float *beta, const float *S0, const float *dO,
                                          const float *dST, float *dq, float *dk_, float *dv_,
                                          float *dg, float *dbeta, float *dS0);
hydra_status hydra_op_delta_rule_backward_ref(int T, int H, int dk, int dv, const float *q,
                                              const float *k, const float *v, const float *g,
                                              const float *beta, const float *S0, const float *dO,
                                              const float *dST, float *dq, float *dk_, float *dv_,
                                              float *dg, float *dbeta, float *dS0);

/* Masked cross-entropy. logits [M, V]; targets [M]; mask [M] (1 = scored,
 * NULL = all). *loss_sum = sum over scored rows of -log softmax(logits)[target]
 * (double). dlogits [M, V] (NULL = skip; may alias logits) is written:
 * (softmax - onehot) * scale on scored rows, 0 elsewhere. */
hydra_status hydra_op_cross_entropy(int M, int V, const float *logits, const int32_t *targets,
                                    const uint8_t *mask, float scale, double *loss_sum,
                                    float *dlogits);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_OPS_H */
