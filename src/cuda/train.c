/* train.c — loss and gradients of the whole model on the device: the CUDA
 * twin of src/model/train.c (same stored activations, same recomputations,
 * same order of products), plus the master weights the optimizers update.
 *
 * Precision (docs/gpu.md "Training"). F32 mode: everything f32, tensor cores
 * off — the GPU-vs-CPU gradient tests run here. BF16 mode: every GEMM takes
 * bf16 operands (weights from the forward's bf16 copies; activations and
 * gradients written in bf16 into two staging buffers by the kernels that make
 * them) with f32 accumulation and f32 outputs; stored activations, the
 * residual stream, the gradients the elementwise backward reads and the
 * master weights stay f32.
 *
 * Memory: per layer the rows' residual in and mid, the mixer's inputs and
 * output, and the MLP pre-activation are kept (as on the CPU); the conv
 * output, norms, the gated output norm and SwiGLU are recomputed in the
 * backward. A batch larger than the card holds runs as micro-batches whose
 * gradients accumulate in the gradient arena (same total, different
 * rounding), so `hydra train` takes any batch the host can sample.
 *
 * Determinism: no float atomics anywhere on this path (the kernels reduce in
 * a fixed order), so a run repeats bit for bit on the same card. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/optim_kernels.h"
#include "cuda/model_internal.h"
#include "hydralm_cuda.h"

typedef struct {
    float *x_in, *x_mid;   /* [rows, C] */
    void *proj;            /* GDN: [rows, P], the in-projection's output: f32, bf16 in BF16 mode (its product writes
                              it rounded; the input stage, the gated norm and their backwards read it) */
    float *q, *k, *v, *o;  /* [rows, Hd]; a DeltaNet layer's q, k, v hold bf16 when qkv16 */
    int qkv16;             /* set by the forward: q, k, v of this DeltaNet layer are bf16 (the tensor-core pair's inputs) */
    void *att;             /* attention on tensor cores: its forward's log-sum-exp for the backward */
    float *g, *beta;       /* GDN: [rows, H] */
    void *gu;              /* [rows, 2F] gate|up: bf16 in BF16 mode (only SwiGLU and its backward read it) */
    /* The products' inputs in the GEMM dtype, kept for the weight gradients instead of being recomputed
     * in the backward: RMSNorm1(x_in) and RMSNorm2(x_mid) [rows, C], the mixer output fed to o_proj
     * [rows, Hd] (the gated norm's; attention's o rounded, BF16 mode), SiLU(gate) * up [rows, F]. */
    void *n1, *n2, *mo, *act;
    void *keep; /* GDN on tensor cores: the delta rule forward's per-chunk work, read by its backward
                   (hk_delta_rule_tc_keep) instead of being recomputed; null otherwise */
} tlayer;

struct dev_train {
    float *params, *grads; /* master weights and gradients, n_params each (host arena layout) */
    hydra_gemm_ctx gemm;   /* the training products: HYDRA_GEMM_SAME_BITS, since a resumed run (another
                              process) must repeat the same bits */
    size_t n_params;
    /* activations and workspace for B sequences of T tokens (a smaller last micro-batch reuses them) */
    size_t B, T, bytes;
    void *block;
    tlayer *L;
    float *x_final, *hf, *logits, *dh, *dx, *big, *dact, *dy, *dconv, *dqkv, *dgb;
    void *sx, *sy;         /* GEMM operands in the GEMM dtype: the head's input X, and gradients dY (rounded there) */
    float *dO;             /* the delta rule's output gradient */
    void *scratch;         /* the kernels' scratch (reductions, attention, delta rule) */
    size_t scratch_bytes;
    float *S, *tails;      /* zero initial states for the forward delta rule / conv */
    float **ptrs;          /* [2B]: S[b], tails[b] */
    int64_t *pos;          /* [B] zeros */
    int32_t *tok, *tgt, *csr;  /* [rows], [rows], [V + 1 + rows] */
    uint8_t *mask;         /* [rows] */
    double *loss;          /* one double */
    int32_t *h_csr;        /* host staging for the embedding CSR */
    const hydra_dev_grad_opts *ready; /* data parallel: grad_ready during the last micro-batch's backward, else NULL */
    /* where the last step's device time went (hydra_cuda_train_phases): events at the step's start, each
       micro-batch's forward start / forward end / loss end / backward end, and after the optimizer's refresh */
    cudaEvent_t ev[6];
    double phase_ms[3];    /* forward, loss, backward, summed over micro-batches */
    int opt_recorded;      /* EV_OPT_END follows the last gradients (an optimizer step ran after them) */
    hk_copy_chunk *sync;   /* device list: the forward's weights from the master copy (hydra_dev_train_sync) */
    int n_sync;
};
enum { EV_STEP, EV_FWD, EV_LOSS_START, EV_BWD_START, EV_BWD_END, EV_OPT_END };

#define GRAD(t, m, p) ((t)->grads + ((p) - (m)->params))
#define MASTER(t, m, p) ((t)->params + ((p) - (m)->params))

static size_t r256(size_t n) { return (n + 255) & ~(size_t)255; }

static void acts_release(struct dev_train *t) {
    if (t->block) cudaFree(t->block);
    free(t->L);
    free(t->h_csr);
    t->block = NULL, t->L = NULL, t->h_csr = NULL;
    t->B = t->T = t->bytes = 0;
}

void hydra_dev_train_free(hydra_dev_model *d) {
    struct dev_train *t = d ? d->train : NULL;
    if (!t) return;
    acts_release(t);
    hydra_gemm_free(&t->gemm);
    if (t->params) cudaFree(t->params);
    if (t->grads) cudaFree(t->grads);
    if (t->sync) cudaFree(t->sync);
    for (int i = 0; i < 6; i++)
        if (t->ev[i]) cudaEventDestroy(t->ev[i]);
    free(t);
    d->train = NULL;
}

/* Widths the workspace must hold. */
typedef struct {
    size_t C, H, d, Hd, F, V, P, L, K, wmax;
} dims;

static dims dims_of(const hydra_model *m) {
    dims z;
    const hydra_config *c = &m->cfg;
    z.C = (size_t)c->d_model, z.H = (size_t)c->n_heads, z.d = (size_t)m->dk, z.Hd = z.H * z.d;
    z.F = (size_t)m->F, z.V = (size_t)c->vocab_size, z.P = (size_t)hydra_gdn_in_width(m), z.L = (size_t)c->n_layers;
    z.K = (size_t)c->conv_width;
    size_t w = z.P > 3 * z.Hd ? z.P : 3 * z.Hd;
    if (2 * z.F > w) w = 2 * z.F;
    if (z.V > w) w = z.V;
    if (z.C > w) w = z.C;
    z.wmax = w;
    return z;
}

/* Walks the activation layout for B sequences of T tokens; with base NULL
 * only counts bytes. Returns the total. */
static size_t acts_layout(const hydra_model *m, size_t B, size_t T, char *base, struct dev_train *t) {
    const dims z = dims_of(m);
    const size_t R = B * T;
    size_t off = 0;
#define TAKE(slot, bytes)                                \
    do {                                                 \
        if (base) *(void **)(slot) = base + off;         \
        off += r256(bytes);                              \
    } while (0)
    for (size_t li = 0; li < z.L; li++) {
        tlayer *la = base ? &t->L[li] : NULL;
        const int gdn = m->layers[li].kind == HYDRA_LAYER_DELTANET;
#define LT(f, n) TAKE(la ? (void *)&la->f : NULL, (n) * 4)
        LT(x_in, R * z.C);
        LT(x_mid, R * z.C);
        if (gdn) {
            TAKE(la ? (void *)&la->proj : NULL, R * z.P * (m->dev && m->dev->bf16 ? 2 : 4));
            LT(g, R * z.H);
            LT(beta, R * z.H);
            const size_t kb = m->dev && m->dev->bf16 ? hk_delta_rule_keep_bytes((int)B, (int)T, (int)z.H, (int)z.d) : 0;
            if (kb) TAKE(la ? (void *)&la->keep : NULL, kb);
            else if (la) la->keep = NULL;
        } else TAKE(la ? (void *)&la->att : NULL, hk_attention_tc_scratch((int)B, (int)T, (int)z.H));
        LT(q, R * z.Hd);
        LT(k, R * z.Hd);
        LT(v, R * z.Hd);
        LT(o, R * z.Hd);
        const size_t es = m->dev && m->dev->bf16 ? 2 : 4; /* the GEMM dtype's size */
        TAKE(la ? (void *)&la->gu : NULL, R * 2 * z.F * (m->dev && m->dev->gu16 ? 2 : 4));
        TAKE(la ? (void *)&la->n1 : NULL, R * z.C * es);
        TAKE(la ? (void *)&la->n2 : NULL, R * z.C * es);
        TAKE(la ? (void *)&la->mo : NULL, R * z.Hd * es);
        TAKE(la ? (void *)&la->act : NULL, R * z.F * es);
#undef LT
    }
#define AT(f, n) TAKE(base ? (void *)&t->f : NULL, (n) * 4)
    AT(x_final, R * z.C);
    AT(hf, R * z.C);
    AT(logits, R * z.V);
    AT(dh, R * z.C);
    AT(dx, R * z.C);
    AT(big, R * z.wmax);
    AT(dact, R * z.F);
    AT(dy, R * z.Hd);
    AT(dO, R * z.Hd);
    AT(dconv, R * 3 * z.Hd);
    AT(dqkv, R * 3 * z.Hd);
    AT(dgb, R * 2 * z.H);
    AT(sx, R * z.C); /* the head's input in the GEMM dtype (the layers' inputs have their own slots) */
    AT(sy, R * z.wmax);
    AT(S, B * z.H * z.d * z.d);
    AT(tails, B * (z.K - 1) * 3 * z.Hd);
    TAKE(base ? (void *)&t->ptrs : NULL, 2 * B * sizeof(float *));
    TAKE(base ? (void *)&t->pos : NULL, B * 8);
    TAKE(base ? (void *)&t->tok : NULL, R * 4);
    TAKE(base ? (void *)&t->tgt : NULL, R * 4);
    TAKE(base ? (void *)&t->csr : NULL, (z.V + 1 + R) * 4);
    TAKE(base ? (void *)&t->mask : NULL, R);
    TAKE(base ? (void *)&t->loss : NULL, 8);
    /* kernel scratch: the largest of the reductions', attention's and the delta rule's */
    /* the (rows, width) each reduction asks for (kernels.h): norms (R, C), the gated norm (R H, d), the
     * input stage (R, 2H), the conv (R, 3Hd K), the loss (R, 1) */
    const size_t red[][2] = {{R, z.C}, {R * z.H, z.d}, {R, 2 * z.H}, {R, 3 * z.Hd * z.K}, {R, 1}};
    size_t sc = 0;
    for (size_t i = 0; i < sizeof red / sizeof red[0]; i++)
        if (hk_bwd_scratch_bytes(red[i][0], red[i][1]) > sc) sc = hk_bwd_scratch_bytes(red[i][0], red[i][1]);
    size_t a = hk_attention_bwd_scratch((int)B, (int)T, (int)z.H),
           dr = hk_delta_rule_bwd_scratch((int)B, (int)T, (int)z.H, (int)z.d),
           df = hk_delta_rule_chunked_scratch((int)B, (int)T, (int)z.H, (int)z.d);
    if (a > sc) sc = a;
    if (dr > sc) sc = dr;
    if (df > sc) sc = df;
    if (base) t->scratch_bytes = sc;
    TAKE(base ? (void *)&t->scratch : NULL, sc);
#undef AT
#undef TAKE
    return off;
}

/* Master weights and gradients on the device, from the host arena. */
static hydra_status train_init(const hydra_model *m, hydra_dev_model *d) {
    if (d->train) return HYDRA_OK;
    HYDRA_CHECK(hydra_require_f32(m, "training on the GPU"));
    struct dev_train *t = calloc(1, sizeof *t);
    if (!t) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    t->n_params = m->n_params;
    d->train = t;
    hydra_status st = hydra_gemm_init(&t->gemm);
    hydra_gemm_train_choice(&t->gemm); /* timed among the algorithms that compute the same bits */
    t->gemm.small_m = 0;
    if (!st) st = hydra_cu_alloc((void **)&t->params, m->n_params * 4, "the master weights");
    if (!st) st = hydra_cu_alloc((void **)&t->grads, m->n_params * 4, "the gradients");
    if (!st && cudaMemcpy(t->params, m->params, m->n_params * 4, cudaMemcpyHostToDevice) != cudaSuccess)
        st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: uploading the master weights failed");
    if (!st && cudaMemset(t->grads, 0, m->n_params * 4) != cudaSuccess)
        st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: clearing the gradients failed");
    for (int i = 0; !st && i < 6; i++)
        if (cudaEventCreate(&t->ev[i]) != cudaSuccess) st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: creating an event failed");
    if (st) hydra_dev_train_free(d);
    return st;
}

/* Activation arena for B sequences of T tokens; a clear error with the
 * bytes it needs when the card cannot hold it. */
static hydra_status acts_reserve(const hydra_model *m, hydra_dev_model *d, size_t B, size_t T) {
    struct dev_train *t = d->train;
    if (t->block && t->B >= B && t->T == T) return HYDRA_OK; /* a last, smaller micro-batch fits */
    CU_CHECK(cudaStreamSynchronize(d->stream));
    acts_release(t);
    size_t need = acts_layout(m, B, T, NULL, t);
    t->L = calloc((size_t)m->cfg.n_layers, sizeof *t->L);
    t->h_csr = malloc((dims_of(m).V + 1 + B * T) * 4);
    if (!t->L || !t->h_csr) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    if (cudaMalloc(&t->block, need) != cudaSuccess) {
        cudaGetLastError();
        t->block = NULL;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return hydra_set_error(HYDRA_ERR_DEVICE,
                               "cuda: training %zu x %zu tokens needs %.2f GiB of activations and workspace, but "
                               "cuda:%d has %.2f GiB free of %.2f GiB (use a smaller --micro-batch or --seq)",
                               B, T, need / 1073741824.0, d->device, fr / 1073741824.0, tot / 1073741824.0);
    }
    acts_layout(m, B, T, t->block, t);
    t->B = B, t->T = T, t->bytes = need;
    /* per-sequence zero states: pointer table S[b], tails[b] */
    const dims z = dims_of(m);
    float *hp[512];
    float **h = B * 2 <= 512 ? hp : malloc(2 * B * sizeof *h);
    if (!h) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    for (size_t b = 0; b < B; b++) {
        h[b] = t->S + b * z.H * z.d * z.d;
        h[B + b] = t->tails + b * (z.K - 1) * 3 * z.Hd;
    }
    cudaError_t e = cudaMemcpy(t->ptrs, h, 2 * B * sizeof *h, cudaMemcpyHostToDevice);
    if (h != hp) free(h);
    CU_CHECK(e);
    CU_CHECK(cudaMemset(t->pos, 0, B * 8));
    CU_CHECK(cudaMemset(t->tails, 0, B * (z.K - 1) * 3 * z.Hd * 4));
    return HYDRA_OK;
}

/* Bytes one micro-batch of B sequences of T tokens needs. */
static size_t acts_bytes(const hydra_model *m, size_t B, size_t T) {
    struct dev_train tmp = {0};
    return acts_layout(m, B, T, NULL, &tmp);
}

/* ------------------------------------------------------------------ GEMMs */
/* GEMM operands. In F32 mode every operand is f32; in BF16 mode bf16. The
 * kernels that make a product's input (norms, SwiGLU, the gated output norm)
 * write it straight into the layer's slot in the GEMM dtype (tlayer n1, n2,
 * mo, act), where the backward's weight gradients read it again; those that
 * make a gradient dY write it into sy in the GEMM dtype (dgu, dproj, dlogits:
 * only products read them) or, for the residual gradient dx the norms'
 * backward also reads in f32, a bf16 copy beside the f32 one. dY feeds both
 * of its products. The few operands left (the attention output, the final
 * norm's output) are rounded by to_gemm. */
static hydra_status to_gemm(hydra_dev_model *d, const float *src, size_t n, void *stage, const void **out) {
    if (!d->bf16) {
        *out = src;
        return HYDRA_OK;
    }
    K_CHECK(hk_f32_to_bf16(d->stream, src, stage, n));
    *out = stage;
    return HYDRA_OK;
}

/* y[R, N] (+)= X[R, K] W[N, K]^T, X in the GEMM dtype. */
static hydra_status fwd(hydra_dev_model *d, int R, int N, int K, const void *X, const void *W, float *y, int acc) {
    return hydra_gemm_ex(&d->train->gemm, d->stream, 0, 1, R, N, K, X, K, W, K, y, N, d->bf16, acc);
}
/* y = X W^T + res: a residual connection in the product's epilogue (no copy of res into y first). */
static hydra_status fwd_res(hydra_dev_model *d, int R, int N, int K, const void *X, const void *W, const float *res,
                            float *y) {
    return hydra_gemm_ex_add(&d->train->gemm, d->stream, 0, 1, R, N, K, X, K, W, K, res, y, N, d->bf16);
}

/* Where a gradient that only feeds products is written: f32 (F32 mode) or
 * the bf16 staging buffer sy. gy(d, t->dx) is dx's bf16 copy there (dx16). */
static void *gy(hydra_dev_model *d, float *f32) { return d->bf16 ? d->train->sy : (void *)f32; }
/* The bf16 copy of the residual gradient for the next products (NULL in F32
 * mode, which reads dx itself). */
static void *dx16(hydra_dev_model *d) { return d->bf16 ? d->train->sy : NULL; }

/* The two products of a projection's backward, y = X W^T: dW[N, K] += dY^T X
 * and dX[R, K] = dY W (dX NULL: not wanted). dY [R, N] and X in the GEMM
 * dtype (gy, dx16); W the forward's copy. */
static hydra_status grads(hydra_dev_model *d, int R, int N, int K, const void *g, const void *X, const void *W,
                          float *dW, float *dX) {
    HYDRA_CHECK(hydra_gemm_ex(&d->train->gemm, d->stream, 1, 0, N, K, R, g, N, X, K, dW, K, d->bf16, 1));
    if (!dX) return HYDRA_OK;
    return hydra_gemm_ex(&d->train->gemm, d->stream, 0, 0, R, K, N, g, N, W, K, dX, K, d->bf16, 0);
}

/* grads() with dX [R, K] rounded to bf16 by its product (dX16): half the
 * bytes for a kernel that reads it in bf16. */
static hydra_status grads16(hydra_dev_model *d, int R, int N, int K, const void *g, const void *X, const void *W,
                            float *dW, void *dX16) {
    HYDRA_CHECK(grads(d, R, N, K, g, X, W, dW, NULL));
    return hydra_gemm_ex16(&d->train->gemm, d->stream, 0, 0, R, K, N, g, N, W, K, dX16, K);
}

/* A product whose input was RMSNorm(x) (weights nw, gradient dnw), backward
 * through both: grads(), then the norm's backward adding to the residual
 * gradient t->dx (acc) and writing its bf16 copy to dx16 (NULL: none). With
 * grad16 the product's input gradient is rounded to bf16 there (t->dh as
 * bf16): half the bytes to write and read. */
static hydra_status grads_norm(const hydra_model *m, hydra_dev_model *d, int R, int N, int K, const void *g,
                               const void *X, const void *W, float *dW, const float *x, const float *nw, float *dnw,
                               int acc, void *dx16p) {
    struct dev_train *t = d->train;
    const float eps = m->cfg.norm_eps;
    if (!(d->grad16 & HK_GRAD16_DH)) {
        HYDRA_CHECK(grads(d, R, N, K, g, X, W, dW, t->dh));
        K_CHECK(hk_rmsnorm_bwd(d->stream, R, K, x, nw, eps, t->dh, t->dx, dx16p, acc, dnw, t->scratch));
        return HYDRA_OK;
    }
    HYDRA_CHECK(grads16(d, R, N, K, g, X, W, dW, t->dh));
    K_CHECK(hk_rmsnorm_bwd16(d->stream, R, K, x, nw, eps, (const uint16_t *)t->dh, t->dx, dx16p, acc, dnw, t->scratch));
    return HYDRA_OK;
}

/* A switch of the bf16 path: "0" off, any other value on, unset: dflt. */
static int env_switch(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? strcmp(e, "0") != 0 : dflt;
}
static int env_on(const char *name) { return env_switch(name, 1); }
/* The narrower bf16 intermediates (HYDRA_CUDA_QKV16, _DCONV16, _ROPE16): on
 * unless switched off (=0). Measured on an H100 (session 17): 63.0-63.9 ms a
 * 16 x 2048 step against 65.4-66.6 off; the gradient stays as accurate against
 * f32 (test_bf16_switches); see docs/gpu.md "Precision". */
#define NARROW_DEFAULT 1

/* Attention on tensor cores (attention_tc.cu: BF16 mode, d 64 / 128), its
 * forward keeping the log-sum-exp per layer for the backward; otherwise (F32
 * mode, other head sizes, or HYDRA_CUDA_ATTN_TC=0 for comparisons) the f32
 * kernels, the backward recomputing it. */
static int attn_tc(const hydra_dev_model *d, int dd) {
    return env_on("HYDRA_CUDA_ATTN_TC") && d->bf16 && (dd == 64 || dd == 128);
}

/* ---------------------------------------------------------------- forward */
static hydra_status train_forward(const hydra_model *m, hydra_dev_model *d, int B, int T) {
    struct dev_train *t = d->train;
    const hydra_config *c = &m->cfg;
    const dims z = dims_of(m);
    const int R = B * T, C = (int)z.C, H = (int)z.H, dd = (int)z.d, Hd = (int)z.Hd, F = (int)z.F, P = (int)z.P;
    const float eps = c->norm_eps;
    const int bf = d->bf16;
    cudaStream_t s = d->stream;
    void *sx = t->sx;
    const void *op = NULL;
    float *const *S = t->ptrs, *const *tails = t->ptrs + t->B; /* the table was built for t->B >= B sequences */
    K_CHECK(hk_embed(s, t->tok, R, d->embed, C, t->L[0].x_in));
    for (int li = 0; li < c->n_layers; li++) {
        const dev_layer *l = &d->layers[li];
        tlayer *la = &t->L[li];
        float *x_out = li + 1 < c->n_layers ? t->L[li + 1].x_in : t->x_final;
        K_CHECK(hk_rmsnorm(s, R, C, la->x_in, l->norm1, eps, la->n1, bf));
        if (l->kind == HYDRA_LAYER_DELTANET) {
            /* q, k, v in bf16 where the tensor-core pair reads them (HYDRA_CUDA_QKV16) */
            la->qkv16 = bf && la->keep && env_switch("HYDRA_CUDA_QKV16", NARROW_DEFAULT);
            if (bf) {
                HYDRA_CHECK(hydra_gemm_ex16(&t->gemm, s, 0, 1, R, P, C, la->n1, C, l->in_proj, C, la->proj, P));
                K_CHECK(hk_gdn_prep16(s, B, T, H, dd, (int)z.K, (const uint16_t *)la->proj, P, l->conv, tails, l->A_log,
                                      l->dt_bias, c->l2_eps, la->q, la->k, la->v, la->qkv16, la->g, la->beta));
            } else {
                HYDRA_CHECK(fwd(d, R, P, C, la->n1, l->in_proj, (float *)la->proj, 0));
                K_CHECK(hk_gdn_prep(s, B, T, H, dd, (int)z.K, (const float *)la->proj, P, l->conv, tails, l->A_log,
                                    l->dt_bias, c->l2_eps, la->q, la->k, la->v, la->g, la->beta));
            }
            CU_CHECK(cudaMemsetAsync(t->S, 0, (size_t)B * H * dd * dd * 4, s));
            if (T == 1) CU_CHECK(cudaMemsetAsync(t->tails, 0, (size_t)B * (z.K - 1) * 3 * z.Hd * 4, s)); /* prep shifted them */
            if (la->qkv16)
                K_CHECK(hk_delta_rule_tc_keep16(s, B, T, H, dd, (const uint16_t *)la->q, (const uint16_t *)la->k,
                                                (const uint16_t *)la->v, la->g, la->beta, la->o, la->keep));
            else if (la->keep) /* tensor cores: what the backward would recompute is kept */
                K_CHECK(hk_delta_rule_tc_keep(s, B, T, H, dd, la->q, la->k, la->v, la->g, la->beta, la->o, la->keep));
            else if (dd == 64 || dd == 128)
                K_CHECK(hk_delta_rule_chunked(s, B, T, H, dd, dd, la->q, la->k, la->v, la->g, la->beta, S, la->o,
                                              t->scratch, bf));
            else K_CHECK(hk_delta_rule_recurrent(s, B, T, H, dd, dd, la->q, la->k, la->v, la->g, la->beta, S, la->o));
            if (bf) K_CHECK(hk_gated_onorm16(s, R, H, dd, la->o, (const uint16_t *)la->proj, P, 3 * Hd, l->o_norm, eps, la->mo, bf));
            else K_CHECK(hk_gated_onorm(s, R, H, dd, la->o, (const float *)la->proj, P, 3 * Hd, l->o_norm, eps, la->mo, bf));
            op = la->mo;
        } else {
            const int window = l->kind == HYDRA_LAYER_ATTN ? 0 : c->window;
            HYDRA_CHECK(fwd(d, R, 3 * Hd, C, la->n1, l->in_proj, t->big, 0));
            K_CHECK(hk_rope_qkv(s, B, T, H, dd, t->big, t->pos, d->inv_freq, la->q, la->k, la->v, 0, NULL, NULL));
            if (attn_tc(d, dd)) K_CHECK(hk_attention_tc_fwd(s, B, T, H, dd, window, la->q, la->k, la->v, la->o, la->att));
            else K_CHECK(hk_attention(s, B, T, H, dd, window, t->pos, la->q, la->k, la->v, NULL, NULL, la->o, 0));
            HYDRA_CHECK(to_gemm(d, la->o, (size_t)R * Hd, la->mo, &op));
        }
        HYDRA_CHECK(fwd_res(d, R, C, Hd, op, l->o_proj, la->x_in, la->x_mid));
        K_CHECK(hk_rmsnorm(s, R, C, la->x_mid, l->norm2, eps, la->n2, bf));
        if (d->gu16) { /* gate|up rounded to bf16 by the product: half the bytes to write and to read twice */
            HYDRA_CHECK(hydra_gemm_ex16(&t->gemm, s, 0, 1, R, 2 * F, C, la->n2, C, l->gate_up, C, la->gu, 2 * F));
            K_CHECK(hk_swiglu16(s, R, F, la->gu, la->act, 1));
        } else {
            HYDRA_CHECK(fwd(d, R, 2 * F, C, la->n2, l->gate_up, la->gu, 0));
            K_CHECK(hk_swiglu(s, R, F, la->gu, la->act, bf));
        }
        HYDRA_CHECK(fwd_res(d, R, C, F, la->act, l->down, la->x_mid, x_out));
    }
    K_CHECK(hk_rmsnorm(s, R, C, t->x_final, d->norm_f, eps, t->hf, 0)); /* f32: the head's input, kept for its backward */
    HYDRA_CHECK(to_gemm(d, t->hf, (size_t)R * C, sx, &op));
    return fwd(d, R, (int)z.V, C, op, d->lm_head, t->logits, 0);
}

/* --------------------------------------------------------------- backward */
static hydra_status gdn_backward(const hydra_model *m, hydra_dev_model *d, int li, int B, int T) {
    struct dev_train *t = d->train;
    const hydra_config *c = &m->cfg;
    const dims z = dims_of(m);
    const dev_layer *l = &d->layers[li];
    const hydra_layer_weights *lw = &m->layers[li];
    const tlayer *la = &t->L[li];
    const int R = B * T, H = (int)z.H, dd = (int)z.d, Hd = (int)z.Hd, P = (int)z.P;
    cudaStream_t s = d->stream;
    void *dproj = gy(d, t->big);
    float *dO = t->dO;
    const int bf = d->bf16;
    float *dq = t->dqkv, *dk = dq + (size_t)R * Hd, *dv = dk + (size_t)R * Hd, *dg = t->dgb, *db = dg + (size_t)R * H;
    if (bf)
        K_CHECK(hk_gated_onorm_bwd16(s, R, H, dd, la->o, (const uint16_t *)la->proj, P, 3 * Hd, l->o_norm, c->norm_eps,
                                     t->dy, dproj, bf, dO, la->qkv16, GRAD(t, m, lw->o_norm), t->scratch));
    else
        K_CHECK(hk_gated_onorm_bwd(s, R, H, dd, la->o, (const float *)la->proj, P, 3 * Hd, l->o_norm, c->norm_eps, t->dy,
                                   dproj, bf, dO, GRAD(t, m, lw->o_norm), t->scratch));
    /* BF16 mode: the chunked backward on tensor cores (d 64, 128); otherwise the f32 kernel */
    const int tc = d->bf16 && (dd == 64 || dd == 128);
    if (la->qkv16)
        K_CHECK(hk_delta_rule_bwd_kept16(s, B, T, H, dd, (const uint16_t *)la->q, (const uint16_t *)la->k,
                                         (const uint16_t *)la->v, la->g, la->beta, (const uint16_t *)dO, dq, dk, dv, dg,
                                         db, t->scratch, la->keep));
    else if (la->keep)
        K_CHECK(hk_delta_rule_bwd_kept(s, B, T, H, dd, la->q, la->k, la->v, la->g, la->beta, dO, dq, dk, dv, dg, db,
                                       t->scratch, la->keep));
    else K_CHECK(hk_delta_rule_bwd(s, B, T, H, dd, la->q, la->k, la->v, la->g, la->beta, dO, dq, dk, dv, dg, db,
                                   t->scratch, tc));
    if (bf) {
        /* the conv output's gradient in bf16 (HYDRA_CUDA_DCONV16): it only feeds the conv backward, whose
           products with the bf16 inputs accumulate in f32, and dproj, rounded to bf16 anyway */
        const uint16_t *pj = (const uint16_t *)la->proj;
        const int dc16 = env_switch("HYDRA_CUDA_DCONV16", NARROW_DEFAULT);
        K_CHECK(hk_gdn_prep_bwd16(s, B, T, H, dd, (int)z.K, pj, P, l->conv, l->A_log, l->dt_bias, la->g, la->beta,
                                  c->l2_eps, dq, dk, dv, dg, db, t->dconv, dc16, dproj, bf, GRAD(t, m, lw->A_log),
                                  GRAD(t, m, lw->dt_bias), t->scratch));
        K_CHECK(hk_conv_bwd16(s, B, T, 3 * Hd, (int)z.K, pj, P, l->conv, t->dconv, dc16, dproj, P, bf,
                              GRAD(t, m, lw->q_conv), t->scratch));
    } else {
        const float *pj = (const float *)la->proj;
        K_CHECK(hk_gdn_prep_bwd(s, B, T, H, dd, (int)z.K, pj, P, l->conv, l->A_log, l->dt_bias, la->g, la->beta,
                                c->l2_eps, dq, dk, dv, dg, db, t->dconv, dproj, bf, GRAD(t, m, lw->A_log),
                                GRAD(t, m, lw->dt_bias), t->scratch));
        K_CHECK(hk_conv_bwd(s, B, T, 3 * Hd, (int)z.K, pj, P, l->conv, t->dconv, dproj, P, bf, GRAD(t, m, lw->q_conv),
                            t->scratch));
    }
    return HYDRA_OK;
}

static hydra_status attn_backward(const hydra_model *m, hydra_dev_model *d, int li, int B, int T) {
    struct dev_train *t = d->train;
    const dims z = dims_of(m);
    const dev_layer *l = &d->layers[li];
    const tlayer *la = &t->L[li];
    const int R = B * T, H = (int)z.H, dd = (int)z.d, Hd = (int)z.Hd;
    const int window = l->kind == HYDRA_LAYER_ATTN ? 0 : m->cfg.window;
    cudaStream_t s = d->stream;
    float *dq = t->dqkv, *dk = dq + (size_t)R * Hd, *dv = dk + (size_t)R * Hd;
    if (attn_tc(d, dd))
        K_CHECK(hk_attention_tc_bwd(s, B, T, H, dd, window, la->q, la->k, la->v, la->o, t->dy, dq, dk, dv, la->att));
    else K_CHECK(hk_attention_bwd(s, B, T, H, dd, window, la->q, la->k, la->v, la->o, t->dy, dq, dk, dv, t->scratch));
    if (d->bf16 && env_switch("HYDRA_CUDA_ROPE16", NARROW_DEFAULT)) { /* dproj = dq | dk | dv in bf16, RoPE's backward on the way */
        K_CHECK(hk_rope_bwd16(s, B, T, H, dd, d->inv_freq, t->dqkv, (uint16_t *)t->sy, (size_t)3 * Hd));
        return HYDRA_OK;
    }
    K_CHECK(hk_rope_bwd(s, B, T, H, dd, d->inv_freq, dq));
    K_CHECK(hk_rope_bwd(s, B, T, H, dd, d->inv_freq, dk));
    /* dproj [R, 3Hd] = dq | dk | dv, in BF16 mode rounded on the way into sy */
    for (int part = 0; part < 3; part++) {
        const float *src = t->dqkv + (size_t)part * R * Hd;
        if (d->bf16)
            K_CHECK(hk_f32_to_bf16_2d(s, src, (size_t)Hd, (uint16_t *)t->sy + (size_t)part * Hd, (size_t)3 * Hd, R, Hd));
        else
            CU_CHECK(cudaMemcpy2DAsync(t->big + (size_t)part * Hd, (size_t)3 * Hd * 4, src, (size_t)Hd * 4,
                                       (size_t)Hd * 4, (size_t)R, cudaMemcpyDeviceToDevice, s));
    }
    return HYDRA_OK;
}

/* The layer a tensor belongs to ("blocks.<li>.*"), or -1 (embedding, final
 * norm, head). */
static int tensor_layer(const char *name) {
    int li = -1, n = 0;
    return sscanf(name, "blocks.%d.%n", &li, &n) == 1 && n > 0 ? li : -1;
}

/* Data parallel: hands the gradient ranges of layer li (-1: the tensors
 * outside the layers) to grad_ready, as maximal runs of consecutive tensors
 * of that layer in the arena (padding between them included: zeros on every
 * rank). Their final values are queued on the stream by now. */
static hydra_status grads_ready(const hydra_model *m, const hydra_dev_grad_opts *g, int li) {
    size_t lo = 0, hi = 0;
    int open = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        const int mine = tensor_layer(p->name) == li;
        if (open && (!mine || p->store < hi)) { /* the run ends (or the arena order turns back) */
            HYDRA_CHECK(g->grad_ready(g->ctx, lo, hi - lo));
            open = 0;
        }
        if (!mine) continue;
        if (!open) lo = p->store, open = 1;
        hi = p->store + p->numel;
    }
    if (open) HYDRA_CHECK(g->grad_ready(g->ctx, lo, hi - lo));
    return HYDRA_OK;
}

static hydra_status train_backward(const hydra_model *m, hydra_dev_model *d, int B, int T) {
    struct dev_train *t = d->train;
    const hydra_config *c = &m->cfg;
    const dims z = dims_of(m);
    const int R = B * T, C = (int)z.C, V = (int)z.V, F = (int)z.F, Hd = (int)z.Hd;
    const int bf = d->bf16;
    cudaStream_t s = d->stream;
    void *sx = t->sx;
    const void *op = NULL;
    /* head (tied: lm_head is the embedding, same gradient slot) */
    HYDRA_CHECK(to_gemm(d, t->hf, (size_t)R * C, sx, &op));
    HYDRA_CHECK(grads_norm(m, d, R, V, C, gy(d, t->logits), op, d->lm_head, GRAD(t, m, m->lm_head), t->x_final,
                           d->norm_f, GRAD(t, m, m->norm_f), 0, dx16(d)));
    for (int li = c->n_layers - 1; li >= 0; li--) {
        const dev_layer *l = &d->layers[li];
        const hydra_layer_weights *lw = &m->layers[li];
        const tlayer *la = &t->L[li];
        /* MLP: x_out = x_mid + down(SiLU(gate) * up), gate|up = gate_up . RMSNorm2(x_mid) */
        if (d->grad16 & HK_GRAD16_DACT) { /* the down product's input gradient rounded to bf16 there, as gate|up: half the bytes */
            HYDRA_CHECK(grads16(d, R, C, F, gy(d, t->dx), la->act, l->down, GRAD(t, m, lw->down), t->dact));
            K_CHECK(hk_swiglu16_bwd16(s, R, F, la->gu, (const uint16_t *)t->dact, gy(d, t->big), 1));
        } else {
            HYDRA_CHECK(grads(d, R, C, F, gy(d, t->dx), la->act, l->down, GRAD(t, m, lw->down), t->dact));
            if (d->gu16) K_CHECK(hk_swiglu16_bwd(s, R, F, la->gu, t->dact, gy(d, t->big), 1));
            else K_CHECK(hk_swiglu_bwd(s, R, F, la->gu, t->dact, gy(d, t->big), bf));
        }
        HYDRA_CHECK(grads_norm(m, d, R, 2 * F, C, gy(d, t->big), la->n2, l->gate_up, GRAD(t, m, lw->gate_up), la->x_mid,
                               l->norm2, GRAD(t, m, lw->norm2), 1, dx16(d)));
        /* mixer: x_mid = x_in + o_proj . y(RMSNorm1(x_in)) */
        const int gdn = l->kind == HYDRA_LAYER_DELTANET;
        const int P = gdn ? (int)z.P : 3 * Hd;
        op = gdn || bf ? la->mo : (const void *)la->o; /* the forward's o_proj input (F32 attention: o itself) */
        HYDRA_CHECK(grads(d, R, C, Hd, gy(d, t->dx), op, l->o_proj, GRAD(t, m, lw->o_proj), t->dy));
        if (gdn) HYDRA_CHECK(gdn_backward(m, d, li, B, T));
        else HYDRA_CHECK(attn_backward(m, d, li, B, T));
        /* the bf16 copy feeds the next layer's down products; the embedding's backward reads f32 */
        HYDRA_CHECK(grads_norm(m, d, R, P, C, gy(d, t->big), la->n1, l->in_proj, GRAD(t, m, lw->in_proj), la->x_in,
                               l->norm1, GRAD(t, m, lw->norm1), 1, li > 0 ? dx16(d) : NULL));
        if (t->ready) HYDRA_CHECK(grads_ready(m, t->ready, li)); /* this layer's gradients are final */
    }
    K_CHECK(hk_embed_bwd(s, V, C, t->csr, t->csr + V + 1, t->dx, GRAD(t, m, m->embed)));
    if (t->ready) HYDRA_CHECK(grads_ready(m, t->ready, -1));
    return HYDRA_OK;
}

/* ----------------------------------------------------------------- public */
/* Sequences per micro-batch: HYDRA_CUDA_MICRO_BATCH if set, else as many as
 * the free device memory holds (at most B). 0 when not even one fits. */
static int micro_batch(const hydra_model *m, hydra_dev_model *d, int B, int T) {
    const char *e = getenv("HYDRA_CUDA_MICRO_BATCH");
    if (e && atoi(e) > 0) return atoi(e) < B ? atoi(e) : B;
    struct dev_train *t = d->train;
    if (t->block && t->T == (size_t)T && t->B >= (size_t)B) return B;
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) return B;
    fr += t->bytes; /* the arena in place is given back before a new one is made */
    const size_t keep = (size_t)1 << 30; /* headroom: cuBLASLt, the optimizer's moments made later */
    size_t avail = fr > keep ? fr - keep : 0;
    int mb = B;
    while (mb > 1 && acts_bytes(m, (size_t)mb, (size_t)T) > avail) mb = (mb + 1) / 2;
    return mb;
}

hydra_status hydra_dev_train_arenas(const hydra_model *m, float **params, float **grads) {
    hydra_dev_model *d = m->dev;
    CU_CHECK(cudaSetDevice(d->device));
    HYDRA_CHECK(train_init(m, d));
    if (params) *params = d->train->params;
    if (grads) *grads = d->train->grads;
    return HYDRA_OK;
}

void *hydra_dev_stream(const hydra_model *m) { return m->dev ? (void *)m->dev->stream : NULL; }

/* The chunk list of hydra_dev_train_sync, made on its first call: every
 * tensor the forward reads (bf16 matrices, f32 otherwise; with a tied head
 * its bf16 copy too) cut in HK_COPY_CHUNK pieces, so a refresh is one launch
 * instead of one a tensor. */
static hydra_status sync_list(const hydra_model *m, hydra_dev_model *d, struct dev_train *t) {
    int n = 0, cap = 0;
    hk_copy_chunk *h = NULL;
    hydra_status st = HYDRA_OK;
    for (int i = 0; i <= m->n_info && !st; i++) {
        const float *src;
        void *dst;
        size_t numel;
        int bf16;
        if (i < m->n_info) {
            const hydra_param_info *p = &m->info[i];
            src = t->params + p->store, dst = d->tensor[i], numel = p->numel;
            bf16 = hydra_param_is_matrix(p->name) && d->bf16;
        } else if (d->head16) { /* the bf16 copy of a tied embedding the head product reads */
            src = MASTER(t, m, m->embed), dst = d->head16, numel = (size_t)m->cfg.vocab_size * m->cfg.d_model, bf16 = 1;
        } else break;
        for (size_t o = 0; o < numel; o += HK_COPY_CHUNK) {
            if (n == cap) {
                hk_copy_chunk *g = realloc(h, (size_t)(cap = cap ? 2 * cap : 1024) * sizeof *h);
                if (!g) {
                    st = hydra_set_error(HYDRA_ERR_NOMEM, "train: out of host memory for the weight refresh list");
                    break;
                }
                h = g;
            }
            const size_t len = numel - o < HK_COPY_CHUNK ? numel - o : HK_COPY_CHUNK;
            h[n++] = (hk_copy_chunk){src + o, (char *)dst + o * (bf16 ? 2 : 4), (uint32_t)len, (uint32_t)bf16};
        }
    }
    if (!st && n) {
        if (cudaMalloc((void **)&t->sync, (size_t)n * sizeof *h) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_NOMEM, "cuda: out of device memory for the weight refresh list");
        else if (cudaMemcpy(t->sync, h, (size_t)n * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: copying the weight refresh list failed");
        if (st && t->sync) cudaFree(t->sync), t->sync = NULL;
    }
    free(h);
    if (!st) t->n_sync = n;
    return st;
}

hydra_status hydra_dev_train_sync(const hydra_model *m) {
    hydra_dev_model *d = m->dev;
    struct dev_train *t = d->train;
    if (!t) return HYDRA_OK;
    if (!t->sync) HYDRA_CHECK(sync_list(m, d, t));
    K_CHECK(hk_copy_chunks(d->stream, t->sync, t->n_sync));
    CU_CHECK(cudaEventRecord(t->ev[EV_OPT_END], d->stream));
    t->opt_recorded = 1;
    return HYDRA_OK;
}

hydra_status hydra_cuda_train_gemm_report(const hydra_model *m, char *buf, size_t cap) {
    if (!m || (!buf && cap)) return hydra_set_error(HYDRA_ERR_ARG, "train_gemm_report: NULL argument");
    if (!m->dev || !m->dev->train) return hydra_set_error(HYDRA_ERR_ARG, "train_gemm_report: no training on a GPU yet");
    hydra_gemm_report(&m->dev->train->gemm, buf, cap);
    return HYDRA_OK;
}

hydra_status hydra_cuda_train_phases(const hydra_model *m, double ms[5]) {
    if (!m || !ms) return hydra_set_error(HYDRA_ERR_ARG, "train_phases: NULL argument");
    struct dev_train *t = m->dev ? m->dev->train : NULL;
    if (!t || !t->opt_recorded)
        return hydra_set_error(HYDRA_ERR_ARG, "train_phases: no optimizer step on the GPU after the last gradients");
    CU_CHECK(cudaSetDevice(m->dev->device));
    CU_CHECK(cudaEventSynchronize(t->ev[EV_OPT_END]));
    float opt = 0, all = 0;
    CU_CHECK(cudaEventElapsedTime(&opt, t->ev[EV_BWD_END], t->ev[EV_OPT_END]));
    CU_CHECK(cudaEventElapsedTime(&all, t->ev[EV_STEP], t->ev[EV_OPT_END]));
    for (int i = 0; i < 3; i++) ms[i] = t->phase_ms[i];
    ms[3] = opt, ms[4] = all;
    return HYDRA_OK;
}

hydra_status hydra_dev_train_upload_grads(const hydra_model *m, const float *host) {
    hydra_dev_model *d = m->dev;
    CU_CHECK(cudaSetDevice(d->device));
    HYDRA_CHECK(train_init(m, d));
    CU_CHECK(cudaMemcpyAsync(d->train->grads, host, m->n_params * 4, cudaMemcpyHostToDevice, d->stream));
    CU_CHECK(cudaStreamSynchronize(d->stream));
    return HYDRA_OK;
}

hydra_status hydra_dev_train_download(hydra_model *m) {
    hydra_dev_model *d = m->dev;
    if (!d || !d->train) return HYDRA_OK;
    CU_CHECK(cudaSetDevice(d->device));
    CU_CHECK(cudaStreamSynchronize(d->stream));
    CU_CHECK(cudaMemcpy(m->params, d->train->params, m->n_params * 4, cudaMemcpyDeviceToHost));
    return HYDRA_OK;
}

/* One micro-batch: forward, loss (scale 1/n_total), backward accumulating
 * into the gradient arena; *lsum += its loss sum. */
static hydra_status micro_step(const hydra_model *m, hydra_dev_model *d, const int32_t *inputs, const int32_t *targets,
                               const uint8_t *mask, int B, int T, float scale, double *lsum) {
    struct dev_train *t = d->train;
    const size_t R = (size_t)B * T;
    const int V = m->cfg.vocab_size;
    cudaStream_t s = d->stream;
    /* the embedding gradient's CSR: rows of each token in increasing order */
    int32_t *start = t->h_csr, *rows = t->h_csr + V + 1;
    memset(start, 0, (size_t)(V + 1) * 4);
    for (size_t r = 0; r < R; r++) start[inputs[r] + 1]++;
    for (int v = 0; v < V; v++) start[v + 1] += start[v];
    for (size_t r = 0; r < R; r++) rows[start[inputs[r]]++] = (int32_t)r;
    for (int v = V; v > 0; v--) start[v] = start[v - 1];
    start[0] = 0;
    CU_CHECK(cudaMemcpyAsync(t->tok, inputs, R * 4, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemcpyAsync(t->tgt, targets, R * 4, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemcpyAsync(t->csr, t->h_csr, ((size_t)V + 1 + R) * 4, cudaMemcpyHostToDevice, s));
    if (mask) CU_CHECK(cudaMemcpyAsync(t->mask, mask, R, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaEventRecord(t->ev[EV_FWD], s));
    HYDRA_CHECK(train_forward(m, d, B, T));
    /* BF16 mode: dlogits go straight into sy in bf16, the head products' operand */
    CU_CHECK(cudaEventRecord(t->ev[EV_LOSS_START], s));
    K_CHECK(hk_cross_entropy(s, (int)R, V, t->logits, t->tgt, mask ? t->mask : NULL, scale, t->loss,
                             d->bf16 ? t->sy : NULL, t->scratch));
    CU_CHECK(cudaEventRecord(t->ev[EV_BWD_START], s));
    HYDRA_CHECK(train_backward(m, d, B, T));
    CU_CHECK(cudaEventRecord(t->ev[EV_BWD_END], s));
    double part = 0; /* read after the backward is queued: a copy to pageable memory waits for the device */
    CU_CHECK(cudaMemcpyAsync(&part, t->loss, 8, cudaMemcpyDeviceToHost, s));
    CU_CHECK(cudaStreamSynchronize(s)); /* also: the host CSR and inputs may be reused after this */
    *lsum += part;
    float ms[3];
    CU_CHECK(cudaEventElapsedTime(&ms[0], t->ev[EV_FWD], t->ev[EV_LOSS_START]));
    CU_CHECK(cudaEventElapsedTime(&ms[1], t->ev[EV_LOSS_START], t->ev[EV_BWD_START]));
    CU_CHECK(cudaEventElapsedTime(&ms[2], t->ev[EV_BWD_START], t->ev[EV_BWD_END]));
    for (int i = 0; i < 3; i++) t->phase_ms[i] += ms[i];
    return HYDRA_OK;
}

static hydra_status loss_grad(const hydra_model *m, hydra_dev_model *d, const int32_t *inputs,
                              const int32_t *targets, const uint8_t *mask, int B, int T,
                              const hydra_dev_grad_opts *dp, double *lsum, int64_t *ns_out) {
    struct dev_train *t = d->train;
    const size_t n = (size_t)B * T;
    int64_t ns = 0;
    for (size_t i = 0; i < n; i++) ns += !mask || mask[i];
    *ns_out = ns;
    t->phase_ms[0] = t->phase_ms[1] = t->phase_ms[2] = 0, t->opt_recorded = 0;
    CU_CHECK(cudaEventRecord(t->ev[EV_STEP], d->stream));
    CU_CHECK(cudaMemsetAsync(t->grads, 0, m->n_params * 4, d->stream));
    const int ready = dp && dp->grad_ready;
    const double n_mean = dp && dp->n_total > 0 ? (double)dp->n_total : (double)ns;
    if (ns == 0) { /* zero gradients; a data-parallel rank still hands them on (the others wait for them) */
        for (int li = m->cfg.n_layers - 1; ready && li >= -1; li--) HYDRA_CHECK(grads_ready(m, dp, li));
        return HYDRA_OK;
    }
    const int mb = micro_batch(m, d, B, T);
    for (int b0 = 0; b0 < B; b0 += mb) {
        const int nb = B - b0 < mb ? B - b0 : mb;
        HYDRA_CHECK(acts_reserve(m, d, (size_t)nb, (size_t)T));
        const size_t off = (size_t)b0 * T;
        t->ready = ready && b0 + nb >= B ? dp : NULL; /* the last micro-batch's backward finishes each range */
        HYDRA_CHECK(micro_step(m, d, inputs + off, targets + off, mask ? mask + off : NULL, nb, T,
                               (float)(1.0 / n_mean), lsum));
    }
    return HYDRA_OK;
}

hydra_status hydra_dev_loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                 const uint8_t *mask, int B, int T, float *grads_host, const hydra_dev_grad_opts *dp,
                                 double *loss) {
    hydra_dev_model *d = m->dev;
    CU_CHECK(cudaSetDevice(d->device));
    HYDRA_CHECK(train_init(m, d));
    struct dev_train *t = d->train;
    double lsum = 0;
    int64_t ns = 0;
    hydra_status st = loss_grad(m, d, inputs, targets, mask, B, T, dp, &lsum, &ns);
    t->ready = NULL;
    HYDRA_CHECK(st);
    if (grads_host) {
        CU_CHECK(cudaStreamSynchronize(d->stream));
        CU_CHECK(cudaMemcpy(grads_host, t->grads, m->n_params * 4, cudaMemcpyDeviceToHost));
    }
    if (loss) *loss = ns ? lsum / (double)ns : 0.0;
    return HYDRA_OK;
}
