/* kernels.h — C launchers of the CUDA kernels (kernels.cu, delta_rule.cu,
 * attention.cu). Everything here works on device pointers, runs on the given
 * stream and returns the launch's cudaError_t (0 = cudaSuccess).
 *
 * Shapes: B sequences of T tokens, rows r = b*T + t (BT rows in all); C
 * d_model; H heads of d dims (Hd = H*d); P the width of a fused projection
 * row; K conv width. Per-sequence state pieces live in separate allocations,
 * so kernels that touch state take device arrays of B device pointers
 * (`float *const *S` = S[b] points at that sequence's [H, dv, dk]).
 * "out_bf16" selects the dtype of an output that feeds a GEMM: f32, or bf16
 * (round to nearest even) in the tensor-core precision. */
#ifndef HYDRA_CUDA_KERNELS_H
#define HYDRA_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x[r, :] = E[tok[r], :] (E [V, C] f32). */
cudaError_t hk_embed(cudaStream_t s, const int32_t *tok, int rows, const float *E, int C, float *x);
/* y = x / sqrt(mean(x^2) + eps) * w over rows of C. */
cudaError_t hk_rmsnorm(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, void *y,
                       int out_bf16);
/* y[i] = bf16(x[i]). */
cudaError_t hk_f32_to_bf16(cudaStream_t s, const float *x, uint16_t *y, size_t n);
/* Copy the last row of each sequence: last[b, :] = x[b*T + T-1, :]. */
cudaError_t hk_gather_last(cudaStream_t s, int B, int T, int C, const float *x, float *last);

/* ---- Gated DeltaNet */
/* From proj [BT, P] (columns q|k|v|gate|a|b): causal depthwise conv of the
 * q|k|v columns (width K, weights convw [3Hd, K], the K-1 earlier inputs of
 * sequence b in tails[b] [K-1, 3Hd]), SiLU, then per head L2 norm of q
 * (times d^-1/2) and k: q, k, v [BT, Hd]. Also g = -exp(A_log) *
 * softplus(a + dt_bias), beta = sigmoid(b): [BT, H]. Tails are updated here
 * only when T = 1 (one fused kernel for a decode step); otherwise by
 * hk_conv_tail, which is a no-op for T = 1. */
cudaError_t hk_gdn_prep(cudaStream_t s, int B, int T, int H, int d, int K, const float *proj, int P,
                        const float *convw, float *const *tails, const float *A_log, const float *dt_bias,
                        float l2_eps, float *q, float *k, float *v, float *g, float *beta);
/* The same with proj in bf16 (the training step's stored projection), and
 * q, k, v written in bf16 with qkv16 (what the delta rule's tensor-core
 * kernels read: hk_delta_rule_tc_keep16). */
cudaError_t hk_gdn_prep16(cudaStream_t s, int B, int T, int H, int d, int K, const uint16_t *proj, int P,
                          const float *convw, float *const *tails, const float *A_log, const float *dt_bias,
                          float l2_eps, void *q, void *k, void *v, int qkv16, float *g, float *beta);
/* tails[b] <- the last K-1 rows of (tails[b] ++ proj[b*T.., 0:3Hd]); nothing
 * for T = 1 (hk_gdn_prep shifted them). */
cudaError_t hk_conv_tail(cudaStream_t s, int B, int T, int Cc, int K, const float *proj, int P,
                         float *const *tails);
/* The gated delta rule token by token with the state in registers (the
 * decode/verify kernel, also the f32 reference path for prefill):
 * q, k [BT, H, dk]; v [BT, H, dv]; g, beta [BT, H]; S[b] [H, dv, dk] in/out;
 * o [BT, H, dv]. dk in {32, 64, 128, 256}. */
cudaError_t hk_delta_rule_recurrent(cudaStream_t s, int B, int T, int H, int dk, int dv, const float *q,
                                    const float *k, const float *v, const float *g, const float *beta,
                                    float *const *S, float *o);
/* A decode step (T = 1) of a DeltaNet layer after its input product, for
 * dk = dv = d in {64, 128}: hk_gdn_prep + hk_delta_rule_recurrent +
 * hk_gated_onorm in one kernel per (head, sequence), the same values to the
 * bit (q, k, v, g, beta and o never leave the block). y [B, Hd] as
 * hk_gated_onorm writes it. cudaErrorNotSupported (nothing launched) unless
 * d is 64 or 128, P % 4 == 0 and proj, o_norm and y are 16-byte aligned.
 * From B x H >= HK_GDN_DECODE_WIDE blocks on, a state row is split over 4
 * lanes instead of 8 (half-size blocks, one wave at batch 64): equal to the
 * three kernels to rounding, not to the bit. */
#define HK_GDN_DECODE_WIDE 256
cudaError_t hk_gdn_decode(cudaStream_t s, int B, int H, int d, int K, const float *proj, int P, const float *convw,
                          float *const *S, float *const *tails, const float *A_log, const float *dt_bias,
                          float l2_eps, const float *o_norm, float eps, void *y, int out_bf16);
/* The same in chunks of 64 (WY form), for prefill, dk == dv in {64, 128}.
 * tc = 0: f32 SIMT throughout (delta_chunked.cu); tc = 1: every product on
 * bf16 tensor cores with f32 accumulation, the state kept in f32
 * (delta_tc.cu; the BF16 precision). scratch: a device buffer of
 * hk_delta_rule_chunked_scratch(B, T, H, d) bytes (enough for either). */
size_t hk_delta_rule_chunked_scratch(int B, int T, int H, int d);
cudaError_t hk_delta_rule_chunked(cudaStream_t s, int B, int T, int H, int dk, int dv, const float *q, const float *k,
                                  const float *v, const float *g, const float *beta, float *const *S, float *o,
                                  void *scratch, int tc);
size_t hk_delta_rule_tc_scratch(int B, int T, int H, int d);
/* The tensor-core path itself: q, k, v and o in f32 or, with io_bf16, in
 * bf16 (as fla-org's kernel takes them); scratch as above. */
cudaError_t hk_delta_rule_tc(cudaStream_t s, int B, int T, int H, int d, const void *q, const void *k,
                             const void *v, const float *g, const float *beta, float *const *S, void *o,
                             void *scratch, int io_bf16);
/* y = RMSNorm_head(o) * w * SiLU(gate), gate = proj[r, gate_off + h*d ..]. */
cudaError_t hk_gated_onorm(cudaStream_t s, int BT, int H, int d, const float *o, const float *proj, int P,
                           int gate_off, const float *w, float eps, void *y, int out_bf16);
cudaError_t hk_gated_onorm16(cudaStream_t s, int BT, int H, int d, const float *o, const uint16_t *proj, int P,
                             int gate_off, const float *w, float eps, void *y, int out_bf16);

/* ---- attention */
/* proj [BT, 3Hd] = q|k|v -> q, k rotated (RoPE, split half, angles in double
 * from the absolute positions pos[b] + t; inv_freq [d/2] double), v copied.
 * With T = 1 and caches given (kc, vc: per-sequence [cap, H, d], window W or
 * 0) the rotated k and v also go to the cache row: the slot written held a
 * position outside this query's window, so attention may run after it, and
 * hk_cache_write is then a no-op. */
cudaError_t hk_rope_qkv(cudaStream_t s, int B, int T, int H, int d, const float *proj, const int64_t *pos,
                        const double *inv_freq, float *q, float *k, float *v, int window, float *const *kc,
                        float *const *vc);
/* Causal attention of the chunk's queries over keys max(0, p-W+1)..p (window
 * W; 0 = unbounded): keys before pos[b] come from the cache kc[b]/vc[b]
 * ([cap, H, d], slot j % W, or j when unbounded), later ones from k, v.
 * o [BT, Hd]. The cache is not written. d in {32, 64, 128}. */
cudaError_t hk_attention(cudaStream_t s, int B, int T, int H, int d, int window, const int64_t *pos,
                         const float *q, const float *k, const float *v, float *const *kc, float *const *vc,
                         void *o, int out_bf16);
/* Write the chunk's keys and values into the caches (only the last W for a
 * window); nothing for T = 1 (hk_rope_qkv wrote the row). */
cudaError_t hk_cache_write(cudaStream_t s, int B, int T, int H, int d, int window, const int64_t *pos,
                           const float *k, const float *v, float *const *kc, float *const *vc);

/* ---- MLP */
/* act[r, i] = SiLU(gu[r, i]) * gu[r, F + i]. */
cudaError_t hk_swiglu(cudaStream_t s, int BT, int F, const float *gu, void *act, int out_bf16);
/* The same with gu in bf16 (a gate|up product that wrote bf16). */
cudaError_t hk_swiglu16(cudaStream_t s, int BT, int F, const uint16_t *gu, void *act, int out_bf16);

/* ---- small GEMMs (gemm_small.cu) */
#define HK_GEMM_SMALL_MAX_M 8
/* y[M, N] (+ y if acc) = x[M, K] W[N, K]^T for M <= 8, x and W both bf16
 * (bf16 = 1) or both f32; bandwidth-bound decode products (cuBLASLt's tiles
 * leave most of the card idle at M = 1). cudaErrorNotSupported for M > 8. */
cudaError_t hk_gemm_small(cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y, int bf16,
                          int acc);
/* The same with the input formed on the fly: HK_IN_PLAIN x as above;
 * HK_IN_RMSNORM x f32 [M, K], input = RMSNorm(x) * nw (eps); HK_IN_SWIGLU x f32
 * [M, 2K], input = SiLU(x[:, :K]) * x[:, K:]. Both round the input to the
 * weights' precision, as hk_rmsnorm / hk_swiglu with out_bf16 would. */
enum { HK_IN_PLAIN = 0, HK_IN_RMSNORM = 1, HK_IN_SWIGLU = 2 };
cudaError_t hk_gemm_small_in(cudaStream_t s, int M, int N, int K, int in, const void *x, const float *nw, float eps,
                             const void *W, float *y, int bf16, int acc);

/* ---- backward (training). Sequences start at position 0 from empty states
 * (zero conv tails, zero recurrent state). Parameter gradients (dw, dA_log,
 * ...) are accumulated (+=) in a fixed order, never with float atomics, so a
 * run repeats bit for bit on the same card. Kernels that reduce over rows
 * take a scratch buffer of hk_bwd_scratch_bytes(rows, width) bytes, with
 * (rows, width) = (M, C) for the RMSNorm, (BT*H, d) the gated norm, (BT, 2H)
 * the input stage, (BT, Cc*K) the conv, (M, 1) the cross-entropy; one buffer
 * of the largest of these sizes serves them all (they run one at a time). */
size_t hk_bwd_scratch_bytes(size_t rows, size_t width);
/* RMSNorm: dx (written, or added to with acc) and dw [C] += over rows
 * (NULL = skip); dx16 (NULL = none) gets a bf16 copy of the final dx, the
 * next products' operand in the BF16 precision. C <= 8192. */
cudaError_t hk_rmsnorm_bwd(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, const float *dy,
                           float *dx, void *dx16, int acc, float *dw, void *scratch);
/* The same with dy in bf16 (a product's input gradient, rounded there). */
cudaError_t hk_rmsnorm_bwd16(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, const uint16_t *dy,
                             float *dx, void *dx16, int acc, float *dw, void *scratch);
/* Gated output norm y = RMSNorm_head(o) * w * SiLU(z), z = proj[r, gate_off
 * + h*d ..]: dz written to dproj at the same columns (row stride P; f32,
 * or bf16 with dproj_bf16: dproj only feeds the in-projection's products),
 * dO [BT, Hd] written, dw [d] += (NULL = skip). d <= 256. */
cudaError_t hk_gated_onorm_bwd(cudaStream_t s, int BT, int H, int d, const float *o, const float *proj, int P,
                               int gate_off, const float *w, float eps, const float *dy, void *dproj, int dproj_bf16,
                               float *dO, float *dw, void *scratch);
/* The same with proj in bf16, and dO written in bf16 with dO16 (for
 * hk_delta_rule_bwd_kept16). */
cudaError_t hk_gated_onorm_bwd16(cudaStream_t s, int BT, int H, int d, const float *o, const uint16_t *proj, int P,
                                 int gate_off, const float *w, float eps, const float *dy, void *dproj, int dproj_bf16,
                                 void *dO, int dO16, float *dw, void *scratch);
/* The DeltaNet input stage backward (hk_gdn_prep's): recomputes the conv
 * output from proj and convw (zero tails), then from dq, dk, dv [BT, Hd] and
 * dg, dbeta [BT, H]: dconv [BT, 3Hd] (the gradient of the conv output, through
 * SiLU and the L2 norms, q scaled by d^-1/2); the gate pre-activations'
 * gradients into dproj columns 4Hd + h (a) and 4Hd + H + h (b) (f32, or
 * bf16 with dproj_bf16); dA_log, ddt_bias [H] += . g, beta are the
 * forward's [BT, H]. d <= 256. */
cudaError_t hk_gdn_prep_bwd(cudaStream_t s, int B, int T, int H, int d, int K, const float *proj, int P,
                            const float *convw, const float *A_log, const float *dt_bias, const float *g,
                            const float *beta, float l2_eps, const float *dq, const float *dk, const float *dv,
                            const float *dg, const float *dbeta, float *dconv, void *dproj, int dproj_bf16,
                            float *dA_log, float *ddt_bias, void *scratch);
/* The same with proj in bf16, and dconv written in bf16 with dconv16 (the
 * conv backward then reads it so: half the bytes of its round trip). */
cudaError_t hk_gdn_prep_bwd16(cudaStream_t s, int B, int T, int H, int d, int K, const uint16_t *proj, int P,
                              const float *convw, const float *A_log, const float *dt_bias, const float *g,
                              const float *beta, float l2_eps, const float *dq, const float *dk, const float *dv,
                              const float *dg, const float *dbeta, void *dconv, int dconv16, void *dproj,
                              int dproj_bf16, float *dA_log, float *ddt_bias, void *scratch);
/* Causal depthwise conv (width K, zero tails) backward: x [BT, Cc] at row
 * stride ldx, w [Cc, K], dy [BT, Cc] (stride Cc): dx written at row stride
 * lddx (may be the fused dproj; f32, or bf16 with dx_bf16), dw [Cc, K] +=
 * (NULL = skip). K <= 64. */
cudaError_t hk_conv_bwd(cudaStream_t s, int B, int T, int Cc, int K, const float *x, int ldx, const float *w,
                        const float *dy, void *dx, int lddx, int dx_bf16, float *dw, void *scratch);
/* The same with x in bf16, and dy in bf16 with dy16. */
cudaError_t hk_conv_bwd16(cudaStream_t s, int B, int T, int Cc, int K, const uint16_t *x, int ldx, const float *w,
                          const void *dy, int dy16, void *dx, int lddx, int dx_bf16, float *dw, void *scratch);
/* SwiGLU: gu [BT, 2F], dact [BT, F] -> dgu [BT, 2F] (f32, or bf16 with
 * out_bf16: dgu only feeds the gate/up products). */
cudaError_t hk_swiglu_bwd(cudaStream_t s, int BT, int F, const float *gu, const float *dact, void *dgu, int out_bf16);
/* The same with gu in bf16. */
cudaError_t hk_swiglu16_bwd(cudaStream_t s, int BT, int F, const uint16_t *gu, const float *dact, void *dgu,
                            int out_bf16);
/* The same with dact in bf16 too (the down product's gradient, rounded there). */
cudaError_t hk_swiglu16_bwd16(cudaStream_t s, int BT, int F, const uint16_t *gu, const uint16_t *dact, void *dgu,
                              int out_bf16);
/* RoPE backward in place on dx [B*T, H, d] at positions 0..T-1 (inv_freq [d/2]). */
cudaError_t hk_rope_bwd(cudaStream_t s, int B, int T, int H, int d, const double *inv_freq, float *dx);
/* dst [B*T, 3 H d] (bf16, row stride ldd) = dq | dk | dv with RoPE's
 * backward applied to dq and dk (dqkv: the three f32 [B*T, H d] one after
 * another): the bits of hk_rope_bwd on dq, dk, then rounding to bf16. */
cudaError_t hk_rope_bwd16(cudaStream_t s, int B, int T, int H, int d, const double *inv_freq, const float *dqkv,
                          uint16_t *dst, size_t ldd);
/* dE[V, C] += dx rows grouped by token: rows of token v are
 * rows[row_start[v] .. row_start[v+1]) in increasing order (CSR built on the
 * host from the token ids). */
cudaError_t hk_embed_bwd(cudaStream_t s, int V, int C, const int32_t *row_start, const int32_t *rows, const float *dx,
                         float *dE);
/* Masked cross-entropy: logits [M, V] are overwritten by dlogits =
 * (softmax - onehot) * scale on scored rows (mask NULL = all; 0 elsewhere),
 * or, with dlogits16, dlogits go there in bf16 (the head products' operand)
 * and logits are left as they were; *loss_sum (device double) = sum over
 * scored rows of -log p(target), summed in a fixed order. */
cudaError_t hk_cross_entropy(cudaStream_t s, int M, int V, float *logits, const int32_t *targets, const uint8_t *mask,
                             float scale, double *loss_sum, void *dlogits16, void *scratch);
/* dst[r, c] = bf16(src[r, c]) for r < rows, c < cols, row strides lds and
 * ldd (elements): a column block of a gradient rounded into the GEMM operand. */
cudaError_t hk_f32_to_bf16_2d(cudaStream_t s, const float *src, size_t lds, uint16_t *dst, size_t ldd, int rows,
                              int cols);
/* Attention backward (attention_bwd.cu), B sequences from position 0 without
 * a cache, window W (0 = full): q, k (rotated), v, o, dO [BT, H, d] -> dq, dk,
 * dv written; probabilities recomputed. scratch: hk_attention_bwd_scratch. */
size_t hk_attention_bwd_scratch(int B, int T, int H);
cudaError_t hk_attention_bwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q, const float *k,
                             const float *v, const float *o, const float *dO, float *dq, float *dk, float *dv,
                             void *scratch);
/* Attention for training on bf16 tensor cores (attention_tc.cu), B sequences
 * from position 0 without a cache, window W (0 = full), d 64 or 128 (else
 * cudaErrorNotSupported): q, k (rotated), v, o, dO, dq, dk, dv f32 [BT, H, d].
 * The forward writes o and leaves each query's log-sum-exp in scratch
 * (hk_attention_tc_scratch bytes); the backward reads it there (run it with
 * the same scratch and the o of that forward) and writes dq, dk, dv. */
size_t hk_attention_tc_scratch(int B, int T, int H);
cudaError_t hk_attention_tc_fwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q,
                                const float *k, const float *v, float *o, void *scratch);
cudaError_t hk_attention_tc_bwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q,
                                const float *k, const float *v, const float *o, const float *dO, float *dq, float *dk,
                                float *dv, void *scratch);
/* Gated delta rule backward (delta_bwd.cu), B sequences from S0 = 0, no
 * final-state gradient, dk = dv = d: q, k, v, dO [BT, H, d]; g, beta [BT, H]
 * -> dq, dk, dv [BT, H, d], dg, dbeta [BT, H] written. tc = 1: chunked (WY
 * form), products on bf16 tensor cores with f32 accumulation, d 64 and 128
 * only (delta_bwd_tc.cu; d 32: cudaErrorNotSupported); 0: f32, d 32, 64,
 * 128. scratch: hk_delta_rule_bwd_scratch bytes (enough for either). */
size_t hk_delta_rule_bwd_scratch(int B, int T, int H, int d);
cudaError_t hk_delta_rule_bwd(cudaStream_t s, int B, int T, int H, int d, const float *q, const float *k,
                              const float *v, const float *g, const float *beta, const float *dO, float *dq,
                              float *dk, float *dv, float *dg, float *dbeta, void *scratch, int tc);
/* Training, d 64 and 128 on tensor cores: the forward from S0 = 0 (f32 q, k,
 * v, o) keeping what the backward would recompute (the per-chunk states,
 * U, W, A, ...) in `keep` (hk_delta_rule_keep_bytes; 0 for other d), and
 * the backward reading it instead of running prep and scan again — the
 * same bits as hk_delta_rule_chunked (tc) and hk_delta_rule_bwd (tc = 1). */
size_t hk_delta_rule_keep_bytes(int B, int T, int H, int d);
cudaError_t hk_delta_rule_tc_keep(cudaStream_t s, int B, int T, int H, int d, const float *q, const float *k,
                                  const float *v, const float *g, const float *beta, float *o, void *keep);
cudaError_t hk_delta_rule_bwd_kept(cudaStream_t s, int B, int T, int H, int d, const float *q, const float *k,
                                   const float *v, const float *g, const float *beta, const float *dO, float *dq,
                                   float *dk, float *dv, float *dg, float *dbeta, void *scratch, void *keep);
/* The pair with q, k, v and the backward's dO in bf16 (the training step's:
 * hk_gdn_prep16 and hk_gated_onorm_bwd16 write them so): half the bytes of
 * those reads and writes, and no bf16 copy of dO in the backward's scratch.
 * The kernels round their inputs to bf16 as they stage them anyway, so only
 * the steps that read them in f32 (prep's beta e^G k, the backward's e^G q
 * copy) see a difference: the same bits as the f32 pair given f32 inputs
 * that hold the same values. */
cudaError_t hk_delta_rule_tc_keep16(cudaStream_t s, int B, int T, int H, int d, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const float *g, const float *beta, float *o, void *keep);
cudaError_t hk_delta_rule_bwd_kept16(cudaStream_t s, int B, int T, int H, int d, const uint16_t *q,
                                     const uint16_t *k, const uint16_t *v, const float *g, const float *beta,
                                     const uint16_t *dO, float *dq, float *dk, float *dv, float *dg, float *dbeta,
                                     void *scratch, void *keep);

/* ---- benchmarks */
/* x[i] = lo + (hi - lo) * u_i, u_i uniform in [0, 1) from a hash of (seed, i). */
cudaError_t hk_fill_uniform(cudaStream_t s, float *x, size_t n, uint64_t seed, float lo, float hi);
/* The same in bf16 (rounded to nearest even). */
cudaError_t hk_fill_uniform16(cudaStream_t s, uint16_t *x, size_t n, uint64_t seed, float lo, float hi);
/* *h = a 64-bit fingerprint of the n 16-bit words at x (the GEMM plans' "same bits" check). */
cudaError_t hk_hash16(cudaStream_t s, const uint16_t *x, size_t n, unsigned long long *h);

#ifdef __cplusplus
}
#endif
#endif /* HYDRA_CUDA_KERNELS_H */
