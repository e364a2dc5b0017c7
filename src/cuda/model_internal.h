/* model_internal.h — the CUDA backend's device model and state, shared by
 * the forward (model.c) and training (train.c). */
#ifndef HYDRA_CUDA_MODEL_INTERNAL_H
#define HYDRA_CUDA_MODEL_INTERNAL_H

#include "backend/backend.h"
#include "cuda/gemm.h"

enum { HK_GRAD16_DACT = 1, HK_GRAD16_DH = 2 }; /* hydra_dev_model.grad16 */

typedef struct {
    char kind;
    const float *norm1, *norm2, *A_log, *dt_bias, *conv, *o_norm; /* f32 */
    const void *in_proj, *o_proj, *gate_up, *down;              /* f32 or bf16 */
} dev_layer;

struct hydra_dev_model {
    int device, bf16;
    hydra_precision precision;
    cudaStream_t stream;
    hydra_gemm_ctx gemm;
    float *vec;        /* every non-matrix tensor, f32, in arena order */
    void *mat;         /* every matrix, f32 or bf16, in arena order (fused projections stay adjacent) */
    void *head16;      /* bf16 copy of a tied embedding for the head product (BF16 mode) */
    size_t weight_bytes;
    dev_layer *layers; /* [L] */
    const float *embed, *norm_f;
    const void *lm_head;
    double *inv_freq;  /* [d/2] RoPE frequencies */
    /* workspace for up to ws_rows rows and ws_b sequences (grown on demand) */
    size_t ws_rows, ws_b, ws_bytes;
    void *ws;
    float *x, *proj, *q, *k, *v, *o, *g, *beta, *last, *logits;
    void *gin;         /* GEMM input [rows, max(C, Hd, F)] in the GEMM dtype */
    void *dscratch;    /* the chunked delta rule's scratch (U, W, V_new, G, chunk states) */
    int32_t *tok;      /* [rows] */
    int64_t *pos;      /* [B] */
    float **ptrs;      /* [L][2][B] per-sequence state pointers */
    /* pinned host staging for the per-call uploads and the logits */
    int32_t *h_tok;
    int64_t *h_pos;
    float **h_ptrs;
    float *h_logits;
    size_t h_rows, h_b;
    /* decode graphs: one captured forward per (B, T, mode), replayed with the
     * staging buffers refilled (their addresses are baked into the graph) */
    int use_graphs;
    int chunk_min;     /* forwards of >= chunk_min tokens use the chunked delta rule (0: never) */
    int fused_decode;  /* a T = 1 forward's DeltaNet layers: one kernel after the input product (hk_gdn_decode) */
    int gu16;          /* training in BF16 mode keeps the MLP's gate|up pre-activation in bf16 */
    int grad16;        /* ... and rounds the product gradients a norm or SwiGLU backward reads to bf16:
                          HK_GRAD16_* bits (HYDRA_CUDA_GRAD16=dact|dh|1|0; dact by default) */
    struct {
        int B, T, mode;
        cudaGraphExec_t exec; /* NULL: seen once, runs eagerly (GEMM plans are made and timed then) */
    } graphs[8];
    int n_graphs;
    /* sampling on the device (hydra_dev_forward_sample): one block
     * [hk_sample_params | double u[B] | int32 tok[B]] on the device and
     * pinned on the host, so a decode graph uploads the settings and
     * uniforms and downloads only the tokens */
    int sample_on; /* HYDRA_CUDA_SAMPLE=0: generation samples on the host */
    void *samp, *h_samp;
    size_t samp_b;
    void **tensor;     /* [n_info] device address of each tensor's forward copy (vec or mat) */
    struct dev_train *train; /* training arenas and workspace (train.c), NULL until the first loss_grad */
};

struct hydra_dev_state {
    int device, n_layers;
    float *arena;     /* the host arena's layout, on the device */
    float **kc, **vc; /* [L] growing caches of full-attention layers (NULL for others) */
    size_t *cap;      /* [L] their capacity in positions */
};

struct dev_train;
void hydra_dev_train_free(hydra_dev_model *d); /* train.c */

#define K_CHECK(expr)                                                                                        \
    do {                                                                                                     \
        cudaError_t e__ = (expr);                                                                            \
        if (e__ != cudaSuccess)                                                                              \
            return hydra_set_error(HYDRA_ERR_DEVICE, "cuda kernel %s: %s", #expr, cudaGetErrorString(e__)); \
    } while (0)

#endif /* HYDRA_CUDA_MODEL_INTERNAL_H */
