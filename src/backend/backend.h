/* backend.h — the one seam between the CPU library and a device backend.
 *
 * The CPU files never test for CUDA: a model or state with a device mirror
 * (m->dev, s->dev non-NULL) hands its work to these functions, which
 * src/cuda/ implements when the build has CUDA and src/backend/no_cuda.c
 * answers with HYDRA_ERR_DEVICE otherwise. Dependencies point one way: the
 * backend may use core/ and ops/ (for shapes and the f32 host copy), never
 * the reverse beyond this header. */
#ifndef HYDRA_BACKEND_H
#define HYDRA_BACKEND_H

#include "core/internal.h"
#include "hydralm_train.h"

typedef struct hydra_dev_model hydra_dev_model; /* weights, workspace, stream, GEMM plans */
typedef struct hydra_dev_state hydra_dev_state; /* device copy of one state's arena and caches */

/* ---- devices */
int hydra_dev_compiled(void);
int hydra_dev_count(void);
hydra_status hydra_dev_name(int device, char *buf, size_t cap);

/* ---- models: upload m's host weights to `device` (precision F32 or BF16). */
hydra_status hydra_dev_model_create(const hydra_model *m, int device, hydra_precision precision,
                                    hydra_dev_model **out);
void hydra_dev_model_free(hydra_dev_model *d);
int hydra_dev_model_device(const hydra_dev_model *d);
hydra_precision hydra_dev_model_precision(const hydra_dev_model *d);
size_t hydra_dev_model_bytes(const hydra_dev_model *d);

/* ---- states: s->dev is its device mirror. Which copy is current is kept in
 * s->where (HYDRA_STATE_*); core/state.c moves data when a host reader or a
 * device forward needs the other copy. */
void hydra_dev_state_free(hydra_dev_state *d);
/* Device copy -> host arena and caches (s->pos positions of growing caches). */
hydra_status hydra_dev_state_download(hydra_state *s);
/* Host -> device copy, creating the mirror on `device` if s has none there. */
hydra_status hydra_dev_state_upload(hydra_state *s, int device);
/* dst <- src, both current on the same device. */
hydra_status hydra_dev_state_copy(hydra_state *dst, const hydra_state *src);
/* Zero the device copy. */
hydra_status hydra_dev_state_reset(hydra_state *s);
int hydra_dev_state_device(const hydra_dev_state *d);

/* ---- entry points: hydra_forward's contract on a device model; states are
 * already current on the model's device (core/state.c saw to it). */
hydra_status hydra_dev_forward(const hydra_model *m, const int32_t *tokens, int B, int T,
                               hydra_state *const *states, hydra_logits_mode mode, float *logits);

/* ---- single ops on host arrays (copy in, run the device kernel, copy out):
 * the tests compare each against its CPU op in src/ops/ on the same inputs.
 * Same shapes and contracts as the CPU ops (include/hydralm_ops.h). */
/* chunked = 0: the token-by-token kernel; 1: the chunked (WY) prefill kernel
 * in f32; 2: the same on bf16 tensor cores (f32 state, f32 q/k/v/o);
 * 3: as 2 with q, k, v and o in bf16 (rounded on the device); 4: as 2 from
 * S_0 = 0 keeping the per-chunk work for the backward (training's forward,
 * hk_delta_rule_tc_keep; S is not read or written). */
hydra_status hydra_dev_op_delta_rule(int chunked, int T, int H, int dk, int dv, const float *q, const float *k,
                                     const float *v, const float *g, const float *beta, float *S, float *o);
/* Causal (sliding-window) attention of T queries at positions pos0.. over the
 * chunk and a cache [cap, H, d]; out_bf16 rounds the output to bf16. */
hydra_status hydra_dev_op_attention(int T, int H, int d, int64_t pos0, int window, size_t cap, const float *q,
                                    const float *k, const float *v, const float *cache_k, const float *cache_v,
                                    float *o);
hydra_status hydra_dev_op_rmsnorm(int M, int C, const float *x, const float *w, float eps, float *y);
hydra_status hydra_dev_op_rope(int T, int H, int d, int64_t pos0, double base, float *x);
/* y[M,N] (+)= x W^T with f32 inputs, or both rounded to bf16 first (bf16 = 1). */
hydra_status hydra_dev_op_matmul(int M, int N, int K, const float *x, const float *W, float *y, int acc, int bf16);
/* dst[r * ldd + c] = bf16(src[r * lds + c]) for r < rows, c < cols (the
 * training step's strided rounding, hk_f32_to_bf16_2d); the rest of dst is
 * left as it was. */
hydra_status hydra_dev_op_to_bf16_2d(int rows, int cols, const float *src, size_t lds, uint16_t *dst, size_t ldd);
/* C (+)= op(A) op(B) through hydra_gemm_ex (any transposes, leading dims). */
hydra_status hydra_dev_op_matmul_ex(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                    float *C, int ldc, int acc, int bf16);
/* The same through a fresh GEMM context whose plans choose their algorithm
 * by `choice` (HYDRA_GEMM_* of cuda/gemm.h: 0 fastest, 1 first, 2 fastest
 * with the first's bits); info (may be NULL) gets the candidate taken, the
 * number of candidates, and how many computed other bits. */
hydra_status hydra_dev_op_matmul_choice(int choice, int ta, int tb, int M, int N, int K, const float *A, int lda,
                                        const float *B, int ldb, float *C, int ldc, int acc, int bf16, int info[3]);

/* ---- training on a device (src/cuda/train.c, src/cuda/optim.c; docs/gpu.md
 * "Training"). The device model keeps an f32 master copy of the parameters
 * in the host arena's layout (n_params floats, tensor i at m->info[i].store),
 * a gradient arena of the same layout, and refreshes the forward's weights
 * (bf16 matrices in BF16 mode) from the master copy after each update. */
/* A data-parallel rank's options for a device loss_grad (src/train/dist.c).
 * n_total > 0: the gradients are of the mean loss over n_total scored
 * positions (every rank's batch) instead of this batch's own, so summing the
 * ranks' gradients gives the global mean's. grad_ready (optional) is called
 * for each range [off, off + n) of the gradient arena as soon as the last
 * micro-batch's backward has queued that range's final values on the model's
 * stream: the layers from the last to the first, then everything outside the
 * layers (embedding, final norm, head); the ranges cover every tensor once.
 * A failed call ends the backward with its status. */
typedef struct {
    int64_t n_total;
    hydra_status (*grad_ready)(void *ctx, size_t off, size_t n);
    void *ctx;
} hydra_dev_grad_opts;
/* Loss and gradients of hydra_model_loss_grad on the device, into the device
 * gradient arena (overwritten); grads_host, if not NULL, receives a copy.
 * dp: NULL, or a data-parallel rank's options (above). */
hydra_status hydra_dev_loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                 const uint8_t *mask, int B, int T, float *grads_host, const hydra_dev_grad_opts *dp,
                                 double *loss);
/* The device master parameters and gradient arena (created on first use from
 * the host arena). */
hydra_status hydra_dev_train_arenas(const hydra_model *m, float **params, float **grads);
/* Host gradients (n_params floats) -> the device gradient arena. */
hydra_status hydra_dev_train_upload_grads(const hydra_model *m, const float *host);
/* After the master copy changed: refresh the forward's weights from it. */
hydra_status hydra_dev_train_sync(const hydra_model *m);
/* Master copy -> host arena (m->params), e.g. before a checkpoint. */
hydra_status hydra_dev_train_download(hydra_model *m);
/* The device's stream of m (a cudaStream_t). */
void *hydra_dev_stream(const hydra_model *m);

/* Optimizers on the device (src/cuda/optim.c): the math of src/train/optim.c
 * (hydra_optimizer_step) on device arenas. bf16_ns: Muon's Newton-Schulz
 * products in bf16 on tensor cores (else f32, for tests). */
typedef struct hydra_dev_optim hydra_dev_optim;
/* It updates the arena range [lo, hi) (0, n_params: all; else one rank's
 * ZeRO-1 shard, Muon matrices whole) and keeps moments for that range. */
hydra_status hydra_dev_optim_create(const hydra_model *m, const hydra_optim_opts *o, size_t lo, size_t hi,
                                    int device, int bf16_ns, hydra_dev_optim **out);
void hydra_dev_optim_free(hydra_dev_optim *op);
/* One update of params from grads (device pointers to the range's first
 * element, hi - lo floats; grads clipped in place) at 0-based step `step`, on
 * `stream` (a cudaStream_t, or NULL for the default stream). Optional outputs
 * as hydra_optimizer_step. = hydra_dev_optim_sumsq + hydra_dev_optim_apply. */
hydra_status hydra_dev_optim_step(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                  float *grad_norm, float *lr_used);
/* The range's sum of squared gradients (deterministic, double; waits for it). */
hydra_status hydra_dev_optim_sumsq(hydra_dev_optim *op, void *stream, const float *grads, double *sumsq);
/* The update given the squared global norm (the sum over every rank's range). */
hydra_status hydra_dev_optim_apply(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                   double sumsq, float *grad_norm, float *lr_used);
/* Moment buffers (same order and names as the CPU optimizer's), hi - lo
 * floats each, copied to / from the host. */
int hydra_dev_optim_n_buffers(const hydra_dev_optim *op);
hydra_status hydra_dev_optim_buffer_get(hydra_dev_optim *op, int i, float *host);
hydra_status hydra_dev_optim_buffer_set(hydra_dev_optim *op, int i, const float *host);
/* For the tests (tests/cuda_train/optim.c): n_steps device steps (0-based
 * steps 0..n_steps-1, default stream, device 0) on host arrays: params
 * [n_params] in/out, grads [n_steps, n_params] (copied in, one row a step);
 * grad_norms, lrs [n_steps] and buffers_out [n_buffers, n_params] may be
 * NULL. A fresh optimizer (zero moments) each call. */
hydra_status hydra_dev_op_optim_steps(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int n_steps,
                                      float *params, const float *grads, float *grad_norms, float *lrs,
                                      float *buffers_out);
/* Median milliseconds of one device step (CUDA events, `reps` steps after a
 * warm-up) on m's parameters with uniform random gradients; no checks. */
hydra_status hydra_dev_op_optim_time(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int reps,
                                     double *ms);

/* ---- single backward ops on host arrays (copy in, run, copy out), for the
 * tests against the CPU backward (tests/test_cuda_train.c). Sequences of T
 * tokens start at position 0 from empty states; rows r = b*T + t. */
/* hydra_op_rmsnorm_backward on the device (dw += ordered over rows); with
 * bf16_in, dy goes in rounded to bf16 (the BF16 trainer's hk_rmsnorm_bwd16). */
hydra_status hydra_dev_op_rmsnorm_backward(int M, int C, const float *x, const float *w, float eps, const float *dy,
                                           float *dx, float *dw, int accumulate, int bf16_in);
/* B sequences: x, dy [B*T, C], w [C, K]: dx written, dw += . */
hydra_status hydra_dev_op_conv_causal_backward(int B, int T, int C, int K, const float *x, const float *w,
                                               const float *dy, float *dx, float *dw);
/* dx [B*T, H, d] in place, positions 0..T-1 of each sequence. */
hydra_status hydra_dev_op_rope_backward(int B, int T, int H, int d, double base, float *dx);
/* act = SiLU(gate) * up backward: gu [M, 2F], dact [M, F] -> dgu [M, 2F];
 * with bf16_in, gu and dact go in rounded to bf16 (hk_swiglu16_bwd16). */
hydra_status hydra_dev_op_swiglu_backward(int M, int F, const float *gu, const float *dact, float *dgu, int bf16_in);
/* Gated output norm y = RMSNorm_head(o) * w * SiLU(z) backward: o, z, dy
 * [BT, H, d] -> dz, dO written; dw [d] += . */
hydra_status hydra_dev_op_gated_onorm_backward(int BT, int H, int d, const float *o, const float *z, const float *w,
                                               float eps, const float *dy, float *dz, float *dO, float *dw);
/* DeltaNet input stage backward (hk_gdn_prep_bwd), B sequences from zero
 * conv tails, P = 4Hd + 2H: proj [B*T, P], convw [3Hd, K], g, beta, dg, dbeta
 * [B*T, H], dq, dk, dv [B*T, Hd] -> dconv [B*T, 3Hd] written; dproj [B*T, P]
 * columns 4Hd.. (a) and 4Hd + H.. (b) written, the others left as given;
 * dA_log, ddt_bias [H] += . */
hydra_status hydra_dev_op_gdn_prep_backward(int B, int T, int H, int d, int K, const float *proj, const float *convw,
                                            const float *A_log, const float *dt_bias, const float *g, const float *beta,
                                            float l2_eps, const float *dq, const float *dk, const float *dv,
                                            const float *dg, const float *dbeta, float *dconv, float *dproj,
                                            float *dA_log, float *ddt_bias);
/* dE [V, C] += rows of dx [BT, C] at their tokens, in row order. */
hydra_status hydra_dev_op_embed_backward(int BT, int V, int C, const int32_t *tok, const float *dx, float *dE);
/* hydra_op_cross_entropy on the device (dlogits may alias logits). */
hydra_status hydra_dev_op_cross_entropy(int M, int V, const float *logits, const int32_t *targets,
                                        const uint8_t *mask, float scale, double *loss_sum, float *dlogits);
/* Attention backward, B sequences, window W (0 = full): q, k (rotated), v, o,
 * dO [B*T, H, d] -> dq, dk, dv written. */
hydra_status hydra_dev_op_attention_backward(int B, int T, int H, int d, int window, const float *q, const float *k,
                                             const float *v, const float *o, const float *dO, float *dq, float *dk,
                                             float *dv);
/* The bf16 tensor-core attention (hk_attention_tc_fwd / _bwd), B sequences,
 * window W (0 = full), d 64 or 128: q, k (rotated), v [B*T, H, d] -> o
 * written; with dO (else NULL) also the backward from that forward: dq, dk,
 * dv written. */
hydra_status hydra_dev_op_attention_tc(int B, int T, int H, int d, int window, const float *q, const float *k,
                                       const float *v, float *o, const float *dO, float *dq, float *dk, float *dv);
/* Delta rule backward, B sequences from S0 = 0, dk = dv = d, no final-state
 * gradient: tc = 0 f32, 1 bf16 tensor cores, 2 the same after the training
 * forward kept its per-chunk work (nothing recomputed), 3 that pair with q,
 * k, v, dO rounded to bf16 and read so (hk_delta_rule_*16). dq,
 * dk, dv [B*T, H, d], dg, dbeta [B*T, H] written. */
hydra_status hydra_dev_op_delta_rule_backward(int tc, int B, int T, int H, int d, const float *q, const float *k,
                                              const float *v, const float *g, const float *beta, const float *dO,
                                              float *dq, float *dk, float *dv, float *dg, float *dbeta);

/* ---- sampling on the device (src/cuda/sample.cu; docs/gpu.md "Sampling").
 * A forward like hydra_dev_forward whose last-position logits stay on the
 * device: each row b is sampled there as hydra_sample would (temperature,
 * top-k, top-p, greedy) with the uniform u[b] in place of the RNG's draw,
 * and only next[B] comes back. States advance as with hydra_dev_forward. */
hydra_status hydra_dev_forward_sample(const hydra_model *m, const int32_t *tokens, int B, int T,
                                      hydra_state *const *states, const hydra_sample_opts *o, const double *u,
                                      int32_t *next);
/* Whether generation on this device model samples on the device (1), or
 * copies the logits and samples on the host (0: HYDRA_CUDA_SAMPLE=0). */
int hydra_dev_sampling(const hydra_dev_model *d);
/* The sampler on host logits [B, V] (copy in, run, copy out), for the tests:
 * tokens[b] as above, -1 for a row holding a NaN. */
hydra_status hydra_dev_op_sample(int B, int V, const float *logits, const hydra_sample_opts *o, const double *u,
                                 int32_t *tokens);

#endif /* HYDRA_BACKEND_H */
