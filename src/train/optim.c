/* optim.c — optimizers of libhydralm: AdamW (PyTorch semantics, decoupled
 * weight decay), Muon for 2-D hidden matrices (momentum + Nesterov, quintic
 * Newton–Schulz, decoupled weight decay) with AdamW for everything else,
 * the learning-rate schedule and global grad-norm clipping. docs/optim.md
 * has the formulas, the routing table and when to use which option.
 *
 * Arenas (one per role, each n_params floats, same layout as the parameter
 * arena, so checkpoints are flat copies):
 *   adam_m, adam_v    first/second moments; only AdamW-routed ranges used
 *   muon_momentum     Muon momentum; only Muon-routed ranges used (MUON only)
 * plus one Newton–Schulz workspace sized for the largest Muon matrix.
 *
 * Determinism: every update is elementwise (independent of the thread
 * count); the only reductions (grad norm, Frobenius norm) sum fixed-size
 * blocks serially in double and combine the block sums serially. */
#include <math.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "hydralm_train.h"
#include "train/optim_internal.h"

#define HYDRA_NS_MAX_STEPS 100
#define PAR_MIN 32768 /* elementwise loops shorter than this stay serial */

/* ====================================================== Newton–Schulz */
/* Quintic Newton–Schulz (Keller Jordan's formulation, fp32 instead of bf16):
 *
 *   X = G / (||G||_F + 1e-7);  if rows > cols: X = Xᵀ        X: [r, c], r <= c
 *   repeat steps times:  A = X Xᵀ  [r, r];  B = b A + c A A;  X = a X + B X
 *   if transposed: X = Xᵀ                                    out: [rows, cols]
 *
 * with (a, b, c) = (3.4445, -4.7750, 2.0315). Every product goes through
 * hydra_op_matmul (y[M,N] = x[M,K] · W[N,K]ᵀ). A and B are symmetric, so
 * A·A = matmul(A, A) and B·X = matmul(B, Xᵀ) with Xᵀ materialised [c, r]. */
#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f
#define NS_EPS 1e-7

/* Fixed-size blocks summed serially in double, block sums combined serially:
 * the result does not depend on the number of threads. */
#define SUMSQ_BLOCK 16384
static double sumsq_det(const float *x, size_t n) {
    size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    if (nb <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
    double *part = malloc(nb * sizeof *part);
    if (!part) { /* serial fallback: same block order, same result */
        double tot = 0;
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
            double s = 0;
            for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
            tot += s;
        }
        return tot;
    }
#pragma omp parallel for schedule(dynamic, 1) if (nb > 4)
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double tot = 0;
    for (size_t b = 0; b < nb; b++) tot += part[b];
    free(part);
    return tot;
}

/* dst[c, r] = src[r, c]ᵀ (blocked for cache). */
static void transpose(const float *src, int r, int c, float *dst) {
    const int BS = 32;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)r * c > 65536)
    for (int i0 = 0; i0 < r; i0 += BS)
        for (int j0 = 0; j0 < c; j0 += BS) {
            int i1 = i0 + BS < r ? i0 + BS : r, j1 = j0 + BS < c ? j0 + BS : c;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) dst[(size_t)j * r + i] = src[(size_t)i * c + j];
        }
}

static size_t ns_work_floats(int rows, int cols) {
    size_t r = (size_t)(rows < cols ? rows : cols), c = (size_t)(rows < cols ? cols : rows);
    return 3 * r * c + 2 * r * r; /* X, Y, Xt [r,c] each; A, AA [r,r] */
}

static hydra_status ns_with_work(const float *G, int rows, int cols, int steps, float *out,
                                 float *work) {
    const int tall = rows > cols;
    const int r = tall ? cols : rows, c = tall ? rows : cols;
    const size_t rc = (size_t)r * c, rr = (size_t)r * r;
    float *X = work;        /* [r, c] */
    float *Y = X + rc;      /* [r, c] */
    float *Xt = Y + rc;     /* [c, r] */
    float *A = Xt + rc;     /* [r, r] */
    float *AA = A + rr;     /* [r, r] */

    if (tall) transpose(G, rows, cols, X);
    else memcpy(X, G, rc * sizeof *X);
    float inv = (float)(1.0 / (sqrt(sumsq_det(X, rc)) + NS_EPS));
#pragma omp parallel for schedule(dynamic, 8192) if (rc > 65536)
    for (size_t i = 0; i < rc; i++) X[i] *= inv;

    for (int s = 0; s < steps; s++) {
        HYDRA_CHECK(hydra_op_matmul(r, r, c, X, X, A, 0));   /* A = X Xᵀ */
        HYDRA_CHECK(hydra_op_matmul(r, r, r, A, A, AA, 0));  /* AA = A A (A symmetric) */
#pragma omp parallel for schedule(dynamic, 8192) if (rr > 65536)
        for (size_t i = 0; i < rr; i++) A[i] = NS_B * A[i] + NS_C * AA[i]; /* B */
        transpose(X, r, c, Xt);
#pragma omp parallel for schedule(dynamic, 8192) if (rc > 65536)
        for (size_t i = 0; i < rc; i++) Y[i] = NS_A * X[i];
        HYDRA_CHECK(hydra_op_matmul(r, c, r, A, Xt, Y, 1));  /* Y += B X */
        float *t = X;
        X = Y;
        Y = t;
    }
    if (tall) transpose(X, r, c, out);
    else memcpy(out, X, rc * sizeof *X);
    return HYDRA_OK;
}

hydra_status hydra_newton_schulz(const float *G, int rows, int cols, int steps, float *out) {
    if (!G || !out) return hydra_set_error(HYDRA_ERR_ARG, "newton_schulz: NULL pointer");
    if (rows < 1 || cols < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "newton_schulz: shape %d x %d must be positive", rows, cols);
    if (steps < 0 || steps > HYDRA_NS_MAX_STEPS)
        return hydra_set_error(HYDRA_ERR_ARG, "newton_schulz: steps %d outside 0..%d", steps,
                               HYDRA_NS_MAX_STEPS);
    size_t rc;
    if (!hydra_mul_ok((size_t)rows, (size_t)cols, &rc) || rc > ((size_t)1 << 34))
        return hydra_set_error(HYDRA_ERR_ARG, "newton_schulz: shape %d x %d too large", rows, cols);
    size_t nw = ns_work_floats(rows, cols);
    float *work = hydra_aligned_alloc(nw * sizeof(float));
    if (!work) return hydra_set_error(HYDRA_ERR_NOMEM, "newton_schulz: out of memory (%zu floats)", nw);
    hydra_status st = ns_with_work(G, rows, cols, steps, out, work);
    hydra_aligned_free(work);
    return st;
}

/* ============================================================ options */
hydra_optim_opts hydra_optim_opts_default(hydra_optimizer_kind kind) {
    hydra_optim_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind == HYDRA_OPT_MUON ? HYDRA_OPT_MUON : HYDRA_OPT_ADAMW;
    o.lr = 3e-3f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.1f;
    o.muon_lr = 0.02f;
    o.muon_momentum = 0.95f;
    o.muon_nesterov = 1;
    o.muon_ns_steps = 5;
    o.muon_rms_match = 0;
    o.warmup_steps = 0;
    o.total_steps = 0; /* 0: no decay phase (constant peak after warmup) */
    o.decay = HYDRA_DECAY_COSINE;
    o.min_lr_ratio = 0.1f;
    o.grad_clip = 1.0f;
    return o;
}

static int finite_pos(float x) { return isfinite(x) && x > 0.0f; }

hydra_status hydra_optim_opts_validate(const hydra_optim_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "optim opts: NULL pointer");
    if (o->kind != HYDRA_OPT_ADAMW && o->kind != HYDRA_OPT_MUON)
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: kind %d is neither ADAMW (0) nor MUON (1)", (int)o->kind);
    if (!finite_pos(o->lr)) return hydra_set_error(HYDRA_ERR_ARG, "optim opts: lr %g must be finite and > 0", (double)o->lr);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: beta1 %g must be in [0, 1)", (double)o->beta1);
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: beta2 %g must be in [0, 1)", (double)o->beta2);
    if (!finite_pos(o->eps)) return hydra_set_error(HYDRA_ERR_ARG, "optim opts: eps %g must be finite and > 0", (double)o->eps);
    if (!(isfinite(o->weight_decay) && o->weight_decay >= 0.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: weight_decay %g must be finite and >= 0", (double)o->weight_decay);
    if (o->kind == HYDRA_OPT_MUON) {
        if (!o->muon_rms_match && !finite_pos(o->muon_lr))
            return hydra_set_error(HYDRA_ERR_ARG, "optim opts: muon_lr %g must be finite and > 0", (double)o->muon_lr);
        if (!(o->muon_momentum >= 0.0f && o->muon_momentum < 1.0f))
            return hydra_set_error(HYDRA_ERR_ARG, "optim opts: muon_momentum %g must be in [0, 1)", (double)o->muon_momentum);
        if (o->muon_nesterov != 0 && o->muon_nesterov != 1)
            return hydra_set_error(HYDRA_ERR_ARG, "optim opts: muon_nesterov %d must be 0 or 1", o->muon_nesterov);
        if (o->muon_rms_match != 0 && o->muon_rms_match != 1)
            return hydra_set_error(HYDRA_ERR_ARG, "optim opts: muon_rms_match %d must be 0 or 1", o->muon_rms_match);
        if (o->muon_ns_steps < 1 || o->muon_ns_steps > HYDRA_NS_MAX_STEPS)
            return hydra_set_error(HYDRA_ERR_ARG, "optim opts: muon_ns_steps %d outside 1..%d", o->muon_ns_steps,
                                   HYDRA_NS_MAX_STEPS);
    }
    if (o->warmup_steps < 0) return hydra_set_error(HYDRA_ERR_ARG, "optim opts: warmup_steps %d < 0", o->warmup_steps);
    if (o->total_steps < 0) return hydra_set_error(HYDRA_ERR_ARG, "optim opts: total_steps %d < 0", o->total_steps);
    if (o->total_steps > 0 && o->total_steps < o->warmup_steps)
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: total_steps %d < warmup_steps %d", o->total_steps,
                               o->warmup_steps);
    if (o->decay != HYDRA_DECAY_COSINE && o->decay != HYDRA_DECAY_LINEAR && o->decay != HYDRA_DECAY_CONSTANT)
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: decay %d is not COSINE/LINEAR/CONSTANT", (int)o->decay);
    if (!(o->min_lr_ratio >= 0.0f && o->min_lr_ratio <= 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: min_lr_ratio %g must be in [0, 1]", (double)o->min_lr_ratio);
    if (!(isfinite(o->grad_clip) && o->grad_clip >= 0.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "optim opts: grad_clip %g must be finite and >= 0 (0 = off)", (double)o->grad_clip);
    return HYDRA_OK;
}

/* ============================================================ schedule */
/* s < warmup: (s+1)/warmup; then progress = (s-warmup)/max(1, total-warmup)
 * in [0,1]; cosine: min + (1-min)·½(1+cos(π·progress)); linear:
 * min + (1-min)(1-progress); constant (or total_steps == 0): 1.
 * NULL opts -> 0. Negative steps count as step 0. */
float hydra_lr_schedule(const hydra_optim_opts *o, int64_t step) {
    if (!o) return 0.0f;
    if (step < 0) step = 0;
    if (o->warmup_steps > 0 && step < o->warmup_steps) return (float)((double)(step + 1) / (double)o->warmup_steps);
    if (o->decay == HYDRA_DECAY_CONSTANT || o->total_steps <= 0) return 1.0f;
    int64_t span = (int64_t)o->total_steps - o->warmup_steps;
    double progress = (double)(step - o->warmup_steps) / (double)(span > 1 ? span : 1);
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    double mn = o->min_lr_ratio, f;
    if (o->decay == HYDRA_DECAY_LINEAR) f = mn + (1.0 - mn) * (1.0 - progress);
    else f = mn + (1.0 - mn) * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return (float)f;
}

/* ============================================================ routing */
/* Splits "a.b.parent.module.weight" into parent and module; 0 if the name
 * does not end in ".weight" or has fewer than two components before it. */
static int split_name(const char *name, char *parent, char *module, size_t cap) {
    size_t n = strlen(name);
    const char *suf = ".weight";
    size_t k = strlen(suf);
    if (n <= k || strcmp(name + n - k, suf) != 0) return 0;
    size_t end = n - k; /* name[0..end) = "...parent.module" */
    size_t ms = end;
    while (ms > 0 && name[ms - 1] != '.') ms--;
    if (ms == 0 || end - ms >= cap) return 0;
    memcpy(module, name + ms, end - ms);
    module[end - ms] = 0;
    size_t pe = ms - 1, ps = pe;
    while (ps > 0 && name[ps - 1] != '.') ps--;
    if (pe - ps >= cap) return 0;
    memcpy(parent, name + ps, pe - ps);
    parent[pe - ps] = 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int hydra_optim_uses_muon(const hydra_optim_opts *o, const char *tensor_name, int ndim) {
    if (!o || !tensor_name || o->kind != HYDRA_OPT_MUON || ndim != 2) return 0;
    char parent[64], module[64];
    if (!split_name(tensor_name, parent, module, sizeof module)) return 0;
    if (strcmp(parent, "gdn") == 0 || strcmp(parent, "attn") == 0) {
        static const char *const mix[] = {"q_proj", "k_proj", "v_proj", "g_proj", "o_proj"};
        for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++)
            if (strcmp(module, mix[i]) == 0) return 1;
        return 0; /* a_proj, b_proj (gates), *_conv, o_norm: AdamW */
    }
    if (strcmp(parent, "mlp") == 0) return ends_with(module, "_proj");
    return 0; /* embed, lm_head, norms */
}

int hydra_optim_decays(const char *tensor_name, int ndim) {
    if (!tensor_name || ndim != 2) return 0;
    return !ends_with(tensor_name, "_conv.weight");
}

/* ============================================================ optimizer */
typedef struct {
    size_t offset, numel;
    int rows, cols; /* PyTorch [out, in]; cols = 1 for 1-D */
    int ndim;
    int muon, decay;
} opt_entry;

#define MAX_BUFFERS 3

/* The optimizer updates the arena range [lo, hi): all of it (lo = 0,
 * hi = n_params) in one process, one rank's shard under ZeRO-1 (dist.c).
 * Its moment buffers cover only that range: element i of the arena is at
 * index i - lo. A Muon matrix is never split between ranges. */
struct hydra_optimizer {
    hydra_optim_opts o;
    int64_t steps;
    size_t n_params;
    size_t lo, hi;
    int n_entries;
    opt_entry *e;        /* [n_entries], arena order */
    float *adam_m;       /* [hi - lo] */
    float *adam_v;       /* [hi - lo] */
    float *muon_buf;     /* [hi - lo], MUON only */
    size_t ns_floats;    /* dir + ns_work, for the memory report */
    float *dir;          /* [max Muon numel]: Nesterov direction / NS output */
    float *ns_work;      /* Newton–Schulz workspace */
    int n_buffers;
    const char *buf_name[MAX_BUFFERS];
    float *buf_data[MAX_BUFFERS];
    /* A model on a GPU is updated there (src/cuda/optim.c): `dev` holds the
     * moments on that device, made at the first step that finds the model
     * there (from the host buffers, so a resumed run carries on). dev_newer:
     * the device moments are ahead of the host buffers. */
    hydra_dev_optim *dev;
    int dev_newer;
};

void hydra_optimizer_free(hydra_optimizer *opt) {
    if (!opt) return;
    hydra_dev_optim_free(opt->dev);
    hydra_aligned_free(opt->adam_m);
    hydra_aligned_free(opt->adam_v);
    hydra_aligned_free(opt->muon_buf);
    hydra_aligned_free(opt->dir);
    hydra_aligned_free(opt->ns_work);
    free(opt->e);
    free(opt);
}

hydra_status hydra_optimizer_create(const hydra_model *m, const hydra_optim_opts *o, hydra_optimizer **out) {
    return hydra_optimizer_create_range(m, o, 0, m ? m->n_params : 0, out);
}

/* 1 if the entry overlaps [lo, hi); *a, *b = the overlap in arena offsets. */
static int overlap(const opt_entry *e, size_t lo, size_t hi, size_t *a, size_t *b) {
    *a = e->offset > lo ? e->offset : lo;
    *b = e->offset + e->numel < hi ? e->offset + e->numel : hi;
    return *a < *b;
}

hydra_status hydra_optimizer_create_range(const hydra_model *m, const hydra_optim_opts *o, size_t lo,
                                          size_t hi, hydra_optimizer **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_create: out pointer is NULL");
    *out = NULL;
    if (!m) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_create: model is NULL");
    HYDRA_CHECK(hydra_require_f32(m, "optimizer_create"));
    HYDRA_CHECK(hydra_optim_opts_validate(o));
    if (lo > hi || hi > m->n_params)
        return hydra_set_error(HYDRA_ERR_ARG, "optimizer_create: range [%zu, %zu) outside the %zu parameters", lo, hi,
                               m->n_params);
    hydra_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) return hydra_set_error(HYDRA_ERR_NOMEM, "optimizer_create: out of memory");
    opt->o = *o;
    opt->n_params = m->n_params;
    opt->lo = lo;
    opt->hi = hi;
    opt->n_entries = m->n_info;
    opt->e = calloc((size_t)(m->n_info > 0 ? m->n_info : 1), sizeof *opt->e);
    if (!opt->e) goto nomem;
    size_t max_mn = 0, max_work = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        opt_entry *e = &opt->e[i];
        e->offset = p->offset;
        e->numel = p->numel;
        e->ndim = p->ndim;
        e->rows = (int)p->shape[0];
        e->cols = p->ndim == 2 ? (int)p->shape[1] : 1;
        e->muon = hydra_optim_uses_muon(o, p->name, p->ndim);
        e->decay = hydra_optim_decays(p->name, p->ndim);
        size_t a, b;
        if (e->muon && overlap(e, lo, hi, &a, &b) && (a != e->offset || b != e->offset + e->numel)) {
            hydra_optimizer_free(opt);
            return hydra_set_error(HYDRA_ERR_ARG, "optimizer_create: range [%zu, %zu) splits the Muon matrix %s",
                                   lo, hi, p->name);
        }
        if (e->muon && overlap(e, lo, hi, &a, &b)) {
            if (e->numel > max_mn) max_mn = e->numel;
            size_t w = ns_work_floats(e->rows, e->cols);
            if (w > max_work) max_work = w;
        }
    }
    size_t bytes = (hi - lo) * sizeof(float) + 64;
    opt->adam_m = hydra_aligned_calloc(bytes);
    opt->adam_v = hydra_aligned_calloc(bytes);
    if (!opt->adam_m || !opt->adam_v) goto nomem;
    opt->buf_name[0] = "adam_m";
    opt->buf_data[0] = opt->adam_m;
    opt->buf_name[1] = "adam_v";
    opt->buf_data[1] = opt->adam_v;
    opt->n_buffers = 2;
    if (o->kind == HYDRA_OPT_MUON) {
        opt->muon_buf = hydra_aligned_calloc(bytes);
        opt->dir = hydra_aligned_alloc((max_mn + 16) * sizeof(float));
        opt->ns_work = hydra_aligned_alloc((max_work + 16) * sizeof(float));
        opt->ns_floats = max_mn + max_work + 32;
        if (!opt->muon_buf || !opt->dir || !opt->ns_work) goto nomem;
        opt->buf_name[2] = "muon_momentum";
        opt->buf_data[2] = opt->muon_buf;
        opt->n_buffers = 3;
    }
    *out = opt;
    return HYDRA_OK;
nomem:
    hydra_optimizer_free(opt);
    return hydra_set_error(HYDRA_ERR_NOMEM, "optimizer_create: out of memory for %zu parameters", m->n_params);
}

int64_t hydra_optimizer_steps(const hydra_optimizer *opt) { return opt ? opt->steps : 0; }
const hydra_optim_opts *hydra_optimizer_opts(const hydra_optimizer *opt) { return opt ? &opt->o : NULL; }
int hydra_optimizer_n_buffers(const hydra_optimizer *opt) { return opt ? opt->n_buffers : 0; }

hydra_status hydra_optimizer_buffer(hydra_optimizer *opt, int i, const char **name, float **data, size_t *numel) {
    if (!opt) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_buffer: optimizer is NULL");
    if (i < 0 || i >= opt->n_buffers)
        return hydra_set_error(HYDRA_ERR_ARG, "optimizer_buffer: index %d out of range 0..%d", i, opt->n_buffers - 1);
    if (opt->dev && opt->dev_newer) { /* the host buffers catch up first */
        for (int j = 0; j < opt->n_buffers; j++) HYDRA_CHECK(hydra_dev_optim_buffer_get(opt->dev, j, opt->buf_data[j]));
        opt->dev_newer = 0;
    }
    if (name) *name = opt->buf_name[i];
    if (data) *data = opt->buf_data[i];
    if (numel) *numel = opt->hi - opt->lo;
    return HYDRA_OK;
}

hydra_status hydra_optimizer_set_steps(hydra_optimizer *opt, int64_t steps) {
    if (!opt) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_set_steps: optimizer is NULL");
    if (steps < 0) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_set_steps: steps %lld < 0", (long long)steps);
    opt->steps = steps;
    if (opt->dev) /* the caller may have rewritten the host buffers (a resume): the device takes them */
        for (int j = 0; j < opt->n_buffers; j++) HYDRA_CHECK(hydra_dev_optim_buffer_set(opt->dev, j, opt->buf_data[j]));
    opt->dev_newer = 0;
    return HYDRA_OK;
}

/* AdamW on one tensor, PyTorch's single-tensor formula:
 *   p *= 1 - lr·wd (decay tensors only); m = β1 m + (1-β1) g;
 *   v = β2 v + (1-β2) g²; p -= (lr/bc1) · m / (√v/√bc2 + eps) */
static void adamw_tensor(float *restrict p, const float *restrict g, float *restrict mm, float *restrict vv,
                         size_t n, float decay_mul, float b1, float b2, float step_size, float bc2_sqrt,
                         float eps) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
#pragma omp parallel for schedule(dynamic, 8192) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * mm[i] + c1 * gi;
        float vi = b2 * vv[i] + c2 * gi * gi;
        mm[i] = mi;
        vv[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] * decay_mul - step_size * (mi / denom);
    }
}

/* Muon on one [rows, cols] matrix (cols = in features). */
static hydra_status muon_tensor(hydra_optimizer *opt, const opt_entry *e, float *restrict p,
                                const float *restrict g, float *restrict buf, float lr, float decay_mul) {
    const hydra_optim_opts *o = &opt->o;
    const size_t n = e->numel;
    const float mu = o->muon_momentum;
    float *restrict d = opt->dir; /* [rows, cols] */
    const int nest = o->muon_nesterov;
#pragma omp parallel for schedule(dynamic, 8192) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float b = mu * buf[i] + g[i];
        buf[i] = b;
        d[i] = nest ? g[i] + mu * b : b;
    }
    HYDRA_CHECK(ns_with_work(d, e->rows, e->cols, o->muon_ns_steps, d, opt->ns_work));
    double rows = e->rows, cols = e->cols;
    double scale = o->muon_rms_match ? 0.2 * sqrt(rows > cols ? rows : cols)
                                     : sqrt(rows > cols ? rows / cols : 1.0);
    const float step = (float)((double)lr * scale);
#pragma omp parallel for schedule(dynamic, 8192) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) p[i] = p[i] * decay_mul - step * d[i];
    return HYDRA_OK;
}

static int model_matches(const hydra_optimizer *opt, const hydra_model *m) {
    if (m->n_params != opt->n_params || m->n_info != opt->n_entries) return 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        const opt_entry *e = &opt->e[i];
        if (p->offset != e->offset || p->numel != e->numel || p->ndim != e->ndim || p->shape[0] != e->rows)
            return 0;
    }
    return 1;
}

void hydra_optimizer_range(const hydra_optimizer *opt, size_t *lo, size_t *hi) {
    *lo = opt ? opt->lo : 0;
    *hi = opt ? opt->hi : 0;
}

size_t hydra_optimizer_state_bytes(const hydra_optimizer *opt) {
    if (!opt) return 0;
    return ((size_t)opt->n_buffers * (opt->hi - opt->lo) + opt->ns_floats) * sizeof(float);
}

double hydra_optimizer_grad_sumsq(const hydra_optimizer *opt, const float *grads) {
    return sumsq_det(grads + opt->lo, opt->hi - opt->lo);
}

/* The step of a model on a GPU: its master weights and gradients live there
 * (grads NULL: the ones hydra_model_loss_grad left on the device; else
 * uploaded from the host). The forward's weights are refreshed after. */
/* The device optimizer of a model on a GPU (made from the host buffers at
 * the first step there) and the device arenas. */
static hydra_status on_device(hydra_optimizer *opt, const hydra_model *m, float **P, float **G) {
    if (!model_matches(opt, m)) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: the model does not match the optimizer");
    if (!opt->dev) {
        HYDRA_CHECK(hydra_dev_optim_create(m, &opt->o, opt->lo, opt->hi, hydra_dev_model_device(m->dev),
                                           hydra_dev_model_precision(m->dev) == HYDRA_PRECISION_BF16, &opt->dev));
        for (int j = 0; j < opt->n_buffers; j++) HYDRA_CHECK(hydra_dev_optim_buffer_set(opt->dev, j, opt->buf_data[j]));
    }
    return hydra_dev_train_arenas(m, P, G);
}

hydra_status hydra_optimizer_grad_sumsq_device(hydra_optimizer *opt, const hydra_model *m, double *sumsq) {
    float *P, *G;
    HYDRA_CHECK(on_device(opt, m, &P, &G));
    return hydra_dev_optim_sumsq(opt->dev, hydra_dev_stream(m), G + opt->lo, sumsq);
}

hydra_status hydra_optimizer_apply_device(hydra_optimizer *opt, hydra_model *m, double grad_sumsq, float *grad_norm,
                                          float *lr_used) {
    float *P, *G;
    HYDRA_CHECK(on_device(opt, m, &P, &G));
    HYDRA_CHECK(hydra_dev_optim_apply(opt->dev, hydra_dev_stream(m), P + opt->lo, G + opt->lo, opt->steps, grad_sumsq,
                                      grad_norm, lr_used));
    opt->dev_newer = 1;
    opt->steps++;
    return HYDRA_OK;
}

static hydra_status step_on_device(hydra_optimizer *opt, hydra_model *m, const float *grads, float *grad_norm,
                                   float *lr_used) {
    float *P, *G;
    HYDRA_CHECK(on_device(opt, m, &P, &G));
    if (grads) HYDRA_CHECK(hydra_dev_train_upload_grads(m, grads));
    HYDRA_CHECK(hydra_dev_optim_step(opt->dev, hydra_dev_stream(m), P, G, opt->steps, grad_norm, lr_used));
    HYDRA_CHECK(hydra_dev_train_sync(m));
    opt->dev_newer = 1;
    opt->steps++;
    return HYDRA_OK;
}

hydra_status hydra_optimizer_step(hydra_optimizer *opt, hydra_model *m, float *grads, float *grad_norm,
                                  float *lr_used) {
    if (!opt || !m) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: NULL argument");
    if (m->dev) {
        if (opt->lo != 0 || opt->hi != opt->n_params)
            return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: a sharded optimizer needs the global gradient norm "
                                                  "(the data-parallel trainer applies it)");
        return step_on_device(opt, m, grads, grad_norm, lr_used);
    }
    if (!grads) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: NULL gradients (only a model on a GPU keeps them there)");
    if (opt->dev) { /* the model came back from the GPU: its moments come too */
        for (int j = 0; j < opt->n_buffers; j++)
            if (opt->dev_newer) HYDRA_CHECK(hydra_dev_optim_buffer_get(opt->dev, j, opt->buf_data[j]));
        hydra_dev_optim_free(opt->dev);
        opt->dev = NULL, opt->dev_newer = 0;
    }
    if (opt->lo != 0 || opt->hi != opt->n_params)
        return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: a sharded optimizer needs the global gradient norm "
                                              "(the data-parallel trainer applies it)");
    return hydra_optimizer_apply(opt, m, grads, hydra_optimizer_grad_sumsq(opt, grads), grad_norm, lr_used);
}

hydra_status hydra_optimizer_apply(hydra_optimizer *opt, hydra_model *m, float *grads, double grad_sumsq,
                                   float *grad_norm, float *lr_used) {
    if (!opt || !m || !grads) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: NULL argument");
    HYDRA_CHECK(hydra_require_f32(m, "optimizer_step"));
    HYDRA_CHECK(hydra_require_cpu(m, "optimizer_step"));
    if (!model_matches(opt, m))
        return hydra_set_error(HYDRA_ERR_MISMATCH,
                               "optimizer_step: model has a different parameter table than the optimizer "
                               "was created for (%zu vs %zu parameters)", m->n_params, opt->n_params);
    const hydra_optim_opts *o = &opt->o;
    const size_t lo = opt->lo, hi = opt->hi;

    /* 1. global grad norm (double, deterministic), refuse non-finite */
    double norm = sqrt(grad_sumsq);
    if (!isfinite(norm)) return hydra_set_error(HYDRA_ERR_ARG, "optimizer_step: gradient is not finite");
    if (grad_norm) *grad_norm = (float)norm;

    /* 2. clip in place (this optimizer's range only) */
    if (o->grad_clip > 0.0f && norm > (double)o->grad_clip) {
        const float s = (float)((double)o->grad_clip / (norm + 1e-6));
#pragma omp parallel for schedule(dynamic, 8192) if (hi - lo > PAR_MIN)
        for (size_t i = lo; i < hi; i++) grads[i] *= s;
    }

    /* 3. schedule */
    const double mult = hydra_lr_schedule(o, opt->steps);
    const float lr = (float)((double)o->lr * mult);
    const float lr_muon = o->muon_rms_match ? lr : (float)((double)o->muon_lr * mult);
    if (lr_used) *lr_used = lr;

    /* 4. updates of the tensors (or parts of AdamW tensors) inside [lo, hi) */
    const double t = (double)(opt->steps + 1);
    const double bc1 = 1.0 - pow((double)o->beta1, t), bc2 = 1.0 - pow((double)o->beta2, t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float adam_decay = (float)(1.0 - (double)lr * o->weight_decay);
    const float muon_decay = (float)(1.0 - (double)lr_muon * o->weight_decay);
    float *P = m->params;
    for (int i = 0; i < opt->n_entries; i++) {
        const opt_entry *e = &opt->e[i];
        size_t a, b;
        if (!overlap(e, lo, hi, &a, &b)) continue;
        if (e->muon) {
            HYDRA_CHECK(muon_tensor(opt, e, P + a, grads + a, opt->muon_buf + (a - lo), lr_muon,
                                    e->decay ? muon_decay : 1.0f));
        } else {
            adamw_tensor(P + a, grads + a, opt->adam_m + (a - lo), opt->adam_v + (a - lo), b - a,
                         e->decay ? adam_decay : 1.0f, o->beta1, o->beta2, step_size, bc2_sqrt, o->eps);
        }
    }
    opt->steps++;
    return HYDRA_OK;
}

hydra_status hydra_optim_partition(const hydra_model *m, const hydra_optim_opts *o, int n, size_t *bounds) {
    if (!m || !o || !bounds || n < 1) return hydra_set_error(HYDRA_ERR_ARG, "optim_partition: bad argument");
    const size_t N = m->n_params;
    bounds[0] = 0;
    for (int r = 1; r < n; r++) {
        size_t b = (size_t)((double)N * r / n);
        for (int i = 0; i < m->n_info; i++) {
            const hydra_param_info *p = &m->info[i];
            if (b > p->offset && b < p->offset + p->numel && hydra_optim_uses_muon(o, p->name, p->ndim)) {
                b = (b - p->offset) * 2 < p->numel ? p->offset : p->offset + p->numel;
                break;
            }
        }
        bounds[r] = b < bounds[r - 1] ? bounds[r - 1] : b;
    }
    bounds[n] = N;
    return HYDRA_OK;
}
