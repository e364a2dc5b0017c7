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
 * 3: as 2 with q, k, v and o in bf16 (rounded on the device). */
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

#endif /* HYDRA_BACKEND_H */
