/* optim.c — the optimizers on the device: hydra_optimizer_step's math
 * (src/train/optim.c, docs/optim.md) on device arenas in the host arena's
 * layout. One step:
 *   1. global grad norm: deterministic double sum (optim_kernels.cu), copied
 *      to the host (the only synchronisation of a step: the clip decision,
 *      the refusal of a non-finite gradient and *grad_norm need it);
 *   2. clip in place; 3. hydra_lr_schedule; 4. AdamW over the AdamW-routed
 *      part of the arena in one fused kernel, and Muon matrix by matrix:
 *      momentum (+ Nesterov), quintic Newton–Schulz with its products on
 *      cuBLASLt (f32, or bf16 inputs on tensor cores with f32 accumulation),
 *      decoupled decay and the update.
 * Routing and decay come from the CPU's public rules (hydra_optim_uses_muon,
 * hydra_optim_decays); the host scalars (bias corrections, step sizes,
 * decay factors) are computed in double exactly as the CPU computes them.
 *
 * Newton–Schulz without transposes: a wide matrix (rows <= cols) is the
 * iterate X [r, c] itself; a tall one is stored as Z = Xᵀ [rows, cols], and
 * A = X Xᵀ = Zᵀ Z, X ← a X + B X becomes Z ← a Z + Z B (A, B symmetric), so
 * the output is already in [rows, cols]. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "cuda/ops_util.h"
#include "cuda/optim_kernels.h"

#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f

typedef struct {
    size_t off, numel;
    int rows, cols, decay;
} muon_mat;

struct hydra_dev_optim {
    hydra_optim_opts o;
    int device, bf16;
    size_t lo, n_params;   /* the arena range [lo, lo + n_params) it updates (ZeRO-1 shard, or all) */
    int n_chunks;
    hk_adam_chunk *chunks; /* device: the AdamW-routed ranges */
    int n_muon;
    muon_mat *mu;          /* host: the Muon matrices, arena order */
    int n_buffers;
    const char *buf_name[3];
    float *buf[3];         /* device: adam_m, adam_v (, muon_momentum), n_params each */
    double *parts, *sums;  /* sumsq partials; sums[0] grad norm², sums[1] Frobenius² */
    float *Y, *A, *AA;     /* NS workspace: Y [max numel], A, AA [max r²] f32 */
    void *X, *Ah;          /* X [max numel], Ah [max r²]: f32 or bf16 */
    hydra_gemm_ctx gemm;
    int have_gemm;
};

void hydra_dev_optim_free(hydra_dev_optim *op) {
    if (!op) return;
    cudaSetDevice(op->device);
    cudaDeviceSynchronize();
    void *dev[] = {op->chunks, op->buf[0], op->buf[1], op->buf[2], op->parts, op->sums,
                   op->Y, op->A, op->AA, op->X, op->Ah};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    if (op->have_gemm) hydra_gemm_free(&op->gemm);
    free(op->mu);
    free(op);
}

/* The AdamW-routed tensors' parts inside [lo, hi) as chunks of <=
 * HK_ADAM_CHUNK floats, offsets from lo (host array, *n entries); NULL on
 * out of memory. */
static hk_adam_chunk *adam_chunks(const hydra_model *m, const hydra_optim_opts *o, size_t lo, size_t hi, int *n) {
    size_t cap = 0;
    for (int i = 0; i < m->n_info; i++)
        if (!hydra_optim_uses_muon(o, m->info[i].name, m->info[i].ndim))
            cap += (m->info[i].numel + HK_ADAM_CHUNK - 1) / HK_ADAM_CHUNK + 1;
    hk_adam_chunk *c = malloc((cap ? cap : 1) * sizeof *c);
    if (!c) return NULL;
    int k = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        if (hydra_optim_uses_muon(o, p->name, p->ndim)) continue;
        const size_t a0 = p->store > lo ? p->store : lo, b0 = p->store + p->numel < hi ? p->store + p->numel : hi;
        for (size_t a = a0; a < b0; a += HK_ADAM_CHUNK) {
            size_t len = b0 - a < HK_ADAM_CHUNK ? b0 - a : HK_ADAM_CHUNK;
            c[k++] = (hk_adam_chunk){a - lo, (uint32_t)len, (uint32_t)hydra_optim_decays(p->name, p->ndim)};
        }
    }
    *n = k;
    return c;
}

static hydra_status alloc_zero(void **p, size_t bytes, const char *what) {
    HYDRA_CHECK(hydra_cu_alloc(p, bytes, what));
    if (*p) CU_CHECK(cudaMemset(*p, 0, bytes));
    return HYDRA_OK;
}

/* Everything after the option checks; op is freed by the caller on error. */
static hydra_status optim_init(hydra_dev_optim *op, const hydra_model *m) {
    const hydra_optim_opts *o = &op->o;
    op->mu = calloc((size_t)(m->n_info > 0 ? m->n_info : 1), sizeof *op->mu);
    const size_t lo = op->lo, hi = op->lo + op->n_params;
    hk_adam_chunk *ch = adam_chunks(m, o, lo, hi, &op->n_chunks);
    if (!op->mu || !ch) {
        free(ch);
        return hydra_set_error(HYDRA_ERR_NOMEM, "dev_optim_create: out of memory");
    }
    size_t max_n = 0, max_rr = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        if (!hydra_optim_uses_muon(o, p->name, p->ndim) || p->store + p->numel <= lo || p->store >= hi) continue;
        if (p->store < lo || p->store + p->numel > hi) {
            free(ch);
            return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_create: the range [%zu, %zu) cuts the Muon matrix %s", lo,
                                   hi, p->name);
        }
        muon_mat *e = &op->mu[op->n_muon++];
        *e = (muon_mat){p->store - lo, p->numel, (int)p->shape[0], (int)p->shape[1],
                        hydra_optim_decays(p->name, p->ndim)};
        size_t r = (size_t)(e->rows < e->cols ? e->rows : e->cols);
        if (e->numel > max_n) max_n = e->numel;
        if (r * r > max_rr) max_rr = r * r;
    }
    const size_t chunk_bytes = (size_t)op->n_chunks * sizeof *ch;
    hydra_status st = alloc_zero((void **)&op->chunks, chunk_bytes, "the AdamW chunk table");
    if (!st && chunk_bytes && cudaMemcpy(op->chunks, ch, chunk_bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: uploading the AdamW chunk table failed");
    free(ch);
    HYDRA_CHECK(st);

    static const char *const names[3] = {"adam_m", "adam_v", "muon_momentum"};
    op->n_buffers = o->kind == HYDRA_OPT_MUON ? 3 : 2;
    for (int i = 0; i < op->n_buffers; i++) {
        op->buf_name[i] = names[i];
        HYDRA_CHECK(alloc_zero((void **)&op->buf[i], op->n_params * 4, "an optimizer moment buffer"));
    }
    HYDRA_CHECK(alloc_zero((void **)&op->parts, hk_sumsq_parts(op->n_params) * 8, "the grad-norm partial sums"));
    HYDRA_CHECK(alloc_zero((void **)&op->sums, 2 * 8, "the grad-norm sums"));
    if (op->n_muon) {
        const size_t xs = op->bf16 ? 2 : 4;
        HYDRA_CHECK(alloc_zero((void **)&op->Y, max_n * 4, "the Newton-Schulz workspace"));
        HYDRA_CHECK(alloc_zero(&op->X, max_n * xs, "the Newton-Schulz workspace"));
        HYDRA_CHECK(alloc_zero((void **)&op->A, max_rr * 4, "the Newton-Schulz workspace"));
        HYDRA_CHECK(alloc_zero((void **)&op->AA, max_rr * 4, "the Newton-Schulz workspace"));
        if (op->bf16) HYDRA_CHECK(alloc_zero(&op->Ah, max_rr * 2, "the Newton-Schulz workspace"));
        HYDRA_CHECK(hydra_gemm_init(&op->gemm));
        op->have_gemm = 1;
        hydra_gemm_train_choice(&op->gemm); /* the same bits in every process, or the updates would differ */
    }
    return HYDRA_OK;
}

hydra_status hydra_dev_optim_create(const hydra_model *m, const hydra_optim_opts *o, size_t lo, size_t hi,
                                    int device, int bf16_ns, hydra_dev_optim **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_create: out pointer is NULL");
    *out = NULL;
    if (!m) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_create: model is NULL");
    HYDRA_CHECK(hydra_require_f32(m, "dev_optim_create"));
    HYDRA_CHECK(hydra_optim_opts_validate(o));
    if (bf16_ns != 0 && bf16_ns != 1)
        return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_create: bf16_ns %d must be 0 or 1", bf16_ns);
    if (lo > hi || hi > m->n_params)
        return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_create: range [%zu, %zu) outside the %zu parameters", lo, hi,
                               m->n_params);
    if (device < 0 || device >= hydra_dev_count())
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda:%d: no such device (%d visible)", device, hydra_dev_count());
    CU_CHECK(cudaSetDevice(device));
    hydra_dev_optim *op = calloc(1, sizeof *op);
    if (!op) return hydra_set_error(HYDRA_ERR_NOMEM, "dev_optim_create: out of memory");
    op->o = *o;
    op->device = device;
    op->bf16 = bf16_ns;
    op->lo = lo;
    op->n_params = hi - lo;
    hydra_status st = optim_init(op, m);
    if (st) {
        hydra_dev_optim_free(op);
        return st;
    }
    *out = op;
    return HYDRA_OK;
}

/* Muon on one [rows, cols] matrix: p, g, buf point at its offset. */
static hydra_status muon_matrix(hydra_dev_optim *op, cudaStream_t s, const muon_mat *e, float *p, const float *g,
                                float *buf, float lr, float decay_mul) {
    const hydra_optim_opts *o = &op->o;
    const int bf = op->bf16, tall = e->rows > e->cols;
    const int r = tall ? e->cols : e->rows, c = tall ? e->rows : e->cols, ld = e->cols;
    const size_t n = e->numel, rr = (size_t)r * r;
    hydra_gemm_ctx *gm = &op->gemm;
    CU_CHECK(hk_muon_momentum(s, n, g, buf, o->muon_momentum, o->muon_nesterov, op->Y));
    CU_CHECK(hk_sumsq(s, op->Y, n, op->parts, op->sums + 1));
    CU_CHECK(hk_ns_normalize(s, n, op->Y, op->sums + 1, op->X, bf));
    void *Bm = bf ? op->Ah : (void *)op->A; /* B = b A + c A A, the last product's input */
    for (int k = 0; k < o->muon_ns_steps; k++) {
        /* A = X Xᵀ (wide) or Zᵀ Z (tall): [r, r] */
        HYDRA_CHECK(hydra_gemm_ex(gm, s, tall, !tall, r, r, c, op->X, ld, op->X, ld, op->A, r, bf, 0));
        if (bf) {
            CU_CHECK(hk_f32_to_bf16(s, op->A, (uint16_t *)op->Ah, rr));
            HYDRA_CHECK(hydra_gemm_ex(gm, s, 0, 0, r, r, r, op->Ah, r, op->Ah, r, op->AA, r, 1, 0));
        } else {
            HYDRA_CHECK(hydra_gemm_ex(gm, s, 0, 0, r, r, r, op->A, r, op->A, r, op->AA, r, 0, 0));
        }
        CU_CHECK(hk_ns_poly(s, rr, op->A, op->AA, NS_B, NS_C, Bm, bf));
        if (tall) /* Y = Z B [rows, r] */
            HYDRA_CHECK(hydra_gemm_ex(gm, s, 0, 0, c, r, r, op->X, ld, Bm, r, op->Y, ld, bf, 0));
        else /* Y = B X [r, cols] */
            HYDRA_CHECK(hydra_gemm_ex(gm, s, 0, 0, r, c, r, Bm, r, op->X, ld, op->Y, ld, bf, 0));
        CU_CHECK(hk_ns_combine(s, n, op->X, op->Y, NS_A, bf));
    }
    double rows = e->rows, cols = e->cols;
    double scale = o->muon_rms_match ? 0.2 * sqrt(rows > cols ? rows : cols) : sqrt(rows > cols ? rows / cols : 1.0);
    CU_CHECK(hk_muon_update(s, n, p, op->X, bf, decay_mul, (float)((double)lr * scale)));
    return HYDRA_OK;
}

hydra_status hydra_dev_optim_sumsq(hydra_dev_optim *op, void *stream, const float *grads, double *sumsq) {
    if (!op || !grads || !sumsq) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_sumsq: NULL argument");
    cudaStream_t s = (cudaStream_t)stream;
    CU_CHECK(cudaSetDevice(op->device));
    CU_CHECK(hk_sumsq(s, grads, op->n_params, op->parts, op->sums));
    CU_CHECK(cudaMemcpyAsync(sumsq, op->sums, sizeof *sumsq, cudaMemcpyDeviceToHost, s));
    CU_CHECK(cudaStreamSynchronize(s));
    return HYDRA_OK;
}

hydra_status hydra_dev_optim_step(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                  float *grad_norm, float *lr_used) {
    double sumsq = 0;
    HYDRA_CHECK(hydra_dev_optim_sumsq(op, stream, grads, &sumsq));
    return hydra_dev_optim_apply(op, stream, params, grads, step, sumsq, grad_norm, lr_used);
}

hydra_status hydra_dev_optim_apply(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                   double sumsq, float *grad_norm, float *lr_used) {
    if (!op || !params || !grads) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_step: NULL argument");
    if (step < 0) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_step: step %lld < 0", (long long)step);
    const hydra_optim_opts *o = &op->o;
    cudaStream_t s = (cudaStream_t)stream;
    CU_CHECK(cudaSetDevice(op->device));

    /* 1. global grad norm (sumsq: over every rank's range); nothing changes when it is not finite */
    const double norm = sqrt(sumsq);
    if (!isfinite(norm)) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_step: gradient is not finite");
    if (grad_norm) *grad_norm = (float)norm;

    /* 2. clip in place */
    if (o->grad_clip > 0.0f && norm > (double)o->grad_clip)
        CU_CHECK(hk_scale(s, grads, op->n_params, (float)((double)o->grad_clip / (norm + 1e-6))));

    /* 3. schedule (the CPU's scalars, in the CPU's precision) */
    const double mult = hydra_lr_schedule(o, step);
    const float lr = (float)((double)o->lr * mult);
    const float lr_muon = o->muon_rms_match ? lr : (float)((double)o->muon_lr * mult);
    if (lr_used) *lr_used = lr;
    const double t = (double)(step + 1);
    const double bc1 = 1.0 - pow((double)o->beta1, t), bc2 = 1.0 - pow((double)o->beta2, t);

    /* 4. AdamW in one kernel, then Muon matrix by matrix */
    CU_CHECK(hk_adamw(s, op->chunks, op->n_chunks, params, grads, op->buf[0], op->buf[1],
                      (float)(1.0 - (double)lr * o->weight_decay), o->beta1, 1.0f - o->beta1, o->beta2,
                      1.0f - o->beta2, (float)((double)lr / bc1), (float)sqrt(bc2), o->eps));
    const float muon_decay = (float)(1.0 - (double)lr_muon * o->weight_decay);
    for (int i = 0; i < op->n_muon; i++) {
        const muon_mat *e = &op->mu[i];
        HYDRA_CHECK(muon_matrix(op, s, e, params + e->off, grads + e->off, op->buf[2] + e->off, lr_muon,
                                e->decay ? muon_decay : 1.0f));
    }
    CU_CHECK(cudaGetLastError());
    return HYDRA_OK;
}

int hydra_dev_optim_n_buffers(const hydra_dev_optim *op) { return op ? op->n_buffers : 0; }

/* Device buffer i after the device finished its pending work on it. */
static hydra_status buffer_at(hydra_dev_optim *op, int i, float **dev) {
    if (!op) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_buffer: optimizer is NULL");
    if (i < 0 || i >= op->n_buffers)
        return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_buffer: index %d out of range 0..%d", i, op->n_buffers - 1);
    CU_CHECK(cudaSetDevice(op->device));
    CU_CHECK(cudaDeviceSynchronize()); /* the step may have run on another stream */
    *dev = op->buf[i];
    return HYDRA_OK;
}

hydra_status hydra_dev_optim_buffer_get(hydra_dev_optim *op, int i, float *host) {
    float *d = NULL;
    HYDRA_CHECK(buffer_at(op, i, &d));
    if (!host) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_buffer_get: host pointer is NULL");
    CU_CHECK(cudaMemcpy(host, d, op->n_params * 4, cudaMemcpyDeviceToHost));
    return HYDRA_OK;
}

hydra_status hydra_dev_optim_buffer_set(hydra_dev_optim *op, int i, const float *host) {
    float *d = NULL;
    HYDRA_CHECK(buffer_at(op, i, &d));
    if (!host) return hydra_set_error(HYDRA_ERR_ARG, "dev_optim_buffer_set: host pointer is NULL");
    CU_CHECK(cudaMemcpy(d, host, op->n_params * 4, cudaMemcpyHostToDevice));
    return HYDRA_OK;
}

/* ---- host-array wrappers for the tests and the benchmark */

hydra_status hydra_dev_op_optim_steps(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int n_steps,
                                      float *params, const float *grads, float *grad_norms, float *lrs,
                                      float *buffers_out) {
    HYDRA_CHECK(need_device());
    if (!m || !params || !grads || n_steps < 0)
        return hydra_set_error(HYDRA_ERR_ARG, "dev_op_optim_steps: bad argument");
    hydra_dev_optim *op;
    HYDRA_CHECK(hydra_dev_optim_create(m, o, 0, m->n_params, 0, bf16_ns, &op));
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = m->n_params, bytes = n * 4;
    void *dp, *dg;
    OP_TRY(dput(&b, &dp, params, bytes));
    OP_TRY(dput(&b, &dg, NULL, bytes));
    for (int k = 0; k < n_steps; k++) {
        OP_RUN(cudaMemcpy(dg, grads + (size_t)k * n, bytes, cudaMemcpyHostToDevice));
        OP_TRY(hydra_dev_optim_step(op, NULL, dp, dg, k, grad_norms ? &grad_norms[k] : NULL, lrs ? &lrs[k] : NULL));
    }
    OP_RUN(cudaDeviceSynchronize());
    OP_TRY(dget(params, dp, bytes));
    for (int i = 0; buffers_out && i < op->n_buffers; i++)
        OP_TRY(hydra_dev_optim_buffer_get(op, i, buffers_out + i * n));
done:
    dbufs_free(&b);
    hydra_dev_optim_free(op);
    return st;
}

hydra_status hydra_dev_op_optim_time(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int reps,
                                     double *ms) {
    HYDRA_CHECK(need_device());
    if (!m || !ms || reps < 1 || reps > 64) return hydra_set_error(HYDRA_ERR_ARG, "dev_op_optim_time: bad argument");
    hydra_dev_optim *op;
    HYDRA_CHECK(hydra_dev_optim_create(m, o, 0, m->n_params, 0, bf16_ns, &op));
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    cudaEvent_t ev[2] = {NULL, NULL};
    double t[64];
    void *dp, *dg;
    OP_TRY(dput(&b, &dp, m->params, m->n_params * 4));
    OP_TRY(dput(&b, &dg, NULL, m->n_params * 4));
    OP_RUN(cudaEventCreate(&ev[0]));
    OP_RUN(cudaEventCreate(&ev[1]));
    for (int k = 0; k <= reps; k++) { /* k = 0: warm-up (the GEMM plans are chosen then) */
        float x = 0;
        OP_RUN(hk_fill_uniform(0, dg, m->n_params, 100 + k, -1e-3f, 1e-3f));
        OP_RUN(cudaEventRecord(ev[0], 0));
        OP_TRY(hydra_dev_optim_step(op, NULL, dp, dg, k, NULL, NULL));
        OP_RUN(cudaEventRecord(ev[1], 0));
        OP_RUN(cudaEventSynchronize(ev[1]));
        OP_RUN(cudaEventElapsedTime(&x, ev[0], ev[1]));
        if (k) t[k - 1] = x;
    }
    *ms = hydra_median(t, reps);
done:
    for (int i = 0; i < 2; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
    dbufs_free(&b);
    hydra_dev_optim_free(op);
    return st;
}
