/* train.c — loss and gradients of the whole model (DESIGN §2 backward).
 *
 * hydra_model_loss_grad runs a training forward over [B, T] from empty states
 * that keeps the activations the backward needs in one activation arena
 * (size table computed up front, one allocation per call), then the backward
 * in reverse layer order. Every projection is a GEMM: forward y = x.W^T
 * (hydra_op_matmul), backward dX = dY.W and dW += dY^T.X (hydra_op_matmul_ex).
 *
 * Stored per layer (BT = B*T rows): the residual entering the layer x_in and
 * after the mixer x_mid [BT, C]; DeltaNet: the fused in_proj output
 * q|k|v|gate|a|b [BT, P], the conv output before SiLU [BT, 3Hd], the q, k, v
 * fed to the delta rule (normalised) and its output o [BT, Hd] each, g and
 * beta [BT, H]; attention: rotated q, k, v and the attention output [BT, Hd];
 * MLP: gate|up pre-activations [BT, 2F]. Recomputed in the backward (cheap,
 * O(BT*width)): the RMSNorm outputs, the gated output norm y, the SwiGLU
 * activation. The delta-rule backward recomputes its states from checkpoints
 * (hydra_op_delta_rule_backward), the attention backward its probabilities.
 *
 * Determinism: per-sequence ops run in parallel over b with separate outputs;
 * parameter-gradient reductions over rows are ordered (GEMMs over all rows,
 * conv weight grads summed in b order, norm gains by column blocks), so the
 * result does not depend on the thread count beyond BLAS rounding.
 */
#include <math.h>
#include <omp.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "hydralm_train.h"
#include "ops/simd.h"
#include "train/dist_internal.h"

typedef struct {
    float *x_in;      /* [BT, C] residual entering the layer */
    float *x_mid;     /* [BT, C] residual after the mixer */
    float *proj;      /* GDN: [BT, P] q|k|v|gate|a|b pre-activation */
    float *conv;      /* GDN: [BT, 3Hd] conv output (pre-SiLU) */
    float *q, *k, *v; /* [BT, Hd] each: delta-rule inputs (normalised) / rotated attention q, k and v */
    float *o;         /* [BT, Hd] delta-rule output (pre-norm) / attention output */
    float *gdec;      /* GDN: [BT, H] log decay g */
    float *beta;      /* GDN: [BT, H] */
    float *gu;        /* [BT, 2F] MLP gate|up pre-activation */
} layer_acts;

typedef struct {
    layer_acts *L;   /* [n_layers] */
    float *x_final;  /* [BT, C] residual after the last block */
    float *hf;       /* [BT, C] RMSNorm_f output */
    float *logits;   /* [BT, V] logits, then dlogits in place */
    /* scratch shared by all layers */
    float *h;        /* [BT, C] normed sublayer input (recomputed) */
    float *dh;       /* [BT, C] its gradient */
    float *dx;       /* [BT, C] residual-stream gradient */
    float *big;      /* [BT, Pmax] in_proj output (attention) / dproj / dgu */
    float *act;      /* [BT, F] SwiGLU activation */
    float *dact;     /* [BT, F] its gradient */
    float *y;        /* [BT, Hd] mixer output before o_proj */
    float *dy;       /* [BT, Hd] its gradient */
    float *t3;       /* [BT, 3Hd] dconv (backward) */
    float *dqkv;     /* [3, BT, Hd] gradients of the delta-rule / attention q, k, v */
    float *dgb;      /* [2, BT, H] gradients of g and beta */
    float *S;        /* [B, H, dv, dk] delta-rule states (forward) */
    float *block;    /* the one allocation everything above lives in */
} train_acts;

#define R16(n) (((n) + 15) & ~(size_t)15)

/* Size table: walks the buffers in a fixed order; with base == NULL only counts. */
static size_t acts_layout(const hydra_model *m, size_t B, size_t T, float *base, train_acts *a) {
    const hydra_config *c = &m->cfg;
    const size_t BT = B * T, C = (size_t)c->d_model, H = (size_t)c->n_heads, d = (size_t)m->dk;
    const size_t Hd = H * d, F = (size_t)m->F, V = (size_t)c->vocab_size, P = (size_t)hydra_gdn_in_width(m);
    size_t Pmax = P > 3 * Hd ? P : 3 * Hd;
    if (2 * F > Pmax) Pmax = 2 * F;
    size_t off = 0;
#define TAKE(ptr, n)                                   \
    do {                                               \
        if (base) (ptr) = base + off;                  \
        off += R16(n);                                 \
    } while (0)
    float *dummy;
    for (int li = 0; li < c->n_layers; li++) {
        layer_acts *la = base ? &a->L[li] : NULL;
        const int gdn = m->layers[li].kind == HYDRA_LAYER_DELTANET;
#define LT(field, n) TAKE(*(la ? &la->field : &dummy), n)
        LT(x_in, BT * C);
        LT(x_mid, BT * C);
        if (gdn) {
            LT(proj, BT * P);
            LT(conv, BT * 3 * Hd);
            LT(gdec, BT * H);
            LT(beta, BT * H);
        } else if (la) {
            la->proj = la->conv = la->gdec = la->beta = NULL;
        }
        LT(q, BT * Hd);
        LT(k, BT * Hd);
        LT(v, BT * Hd);
        LT(o, BT * Hd);
        LT(gu, BT * 2 * F);
#undef LT
    }
#define AT(field, n) TAKE(*(base ? &a->field : &dummy), n)
    AT(x_final, BT * C);
    AT(hf, BT * C);
    AT(logits, BT * V);
    AT(h, BT * C);
    AT(dh, BT * C);
    AT(dx, BT * C);
    AT(big, BT * Pmax);
    AT(act, BT * F);
    AT(dact, BT * F);
    AT(y, BT * Hd);
    AT(dy, BT * Hd);
    AT(t3, BT * 3 * Hd);
    AT(dqkv, 3 * BT * Hd);
    AT(dgb, 2 * BT * H);
    AT(S, B * H * d * d);
#undef AT
#undef TAKE
    return off;
}

/* The activation arena is cached per thread and reused by the next call: a
 * fresh block comes from mmap and costs a page fault per 4 KiB on every
 * step (measured ~10% of a training step). hydra_train_free_cache returns it. */
static _Thread_local float *t_cache;
static _Thread_local size_t t_cache_floats;

void hydra_train_free_cache(void) {
    hydra_aligned_free(t_cache);
    t_cache = NULL;
    t_cache_floats = 0;
}

static hydra_status acts_alloc(const hydra_model *m, int B, int T, train_acts *a) {
    memset(a, 0, sizeof *a);
    /* Overflow guard: the widest row times BT and the layer count must fit. */
    size_t wmax = (size_t)hydra_gdn_in_width(m) + 4 * (size_t)m->F + 16 * (size_t)m->cfg.d_model +
                  12 * (size_t)m->cfg.n_heads * m->dk + (size_t)m->cfg.vocab_size + 64, tot;
    if (!hydra_mul_ok(wmax, (size_t)B * (size_t)T, &tot) ||
        !hydra_mul_ok(tot, (size_t)m->cfg.n_layers + 2, &tot) || tot > ((size_t)1 << 40))
        return hydra_set_error(HYDRA_ERR_ARG, "loss_grad: B*T = %d*%d is too large", B, T);
    size_t n = acts_layout(m, (size_t)B, (size_t)T, NULL, a);
    a->L = calloc((size_t)m->cfg.n_layers, sizeof *a->L);
    if (t_cache_floats < n) {
        hydra_train_free_cache();
        t_cache = hydra_aligned_alloc(n * sizeof(float));
        t_cache_floats = t_cache ? n : 0;
    }
    a->block = t_cache;
    if (!a->L || !a->block) {
        free(a->L);
        return hydra_set_error(HYDRA_ERR_NOMEM, "loss_grad: out of memory for %zu activation floats", n);
    }
    acts_layout(m, (size_t)B, (size_t)T, a->block, a);
    return HYDRA_OK;
}

static void acts_free(train_acts *a) {
    free(a->L); /* the block stays cached for the next call */
}

/* ---- profile: wall time of loss_grad by phase (hydra_train_profile_*).
 * One clock switches between phases at their boundaries, so the phases sum
 * to the whole call; off, a switch costs one branch. */
enum { PH_MATMUL, PH_DELTA, PH_ATTN, PH_CONV, PH_NORM, PH_LOSS, PH_OTHER, PH_N };
static const char *const k_phase_names[PH_N] = {"matmul", "delta rule", "attention", "conv+gates+l2",
                                                "norms+act", "loss", "other"};
static int g_prof, g_ph_cur = PH_OTHER;
static double g_ph[PH_N], g_ph_t;

static int ph(int next) { /* switch the clock to `next`; returns the phase it left */
    const int prev = g_ph_cur;
    if (g_prof) {
        const double t = hydra_now_seconds();
        g_ph[prev] += t - g_ph_t;
        g_ph_t = t;
    }
    g_ph_cur = next;
    return prev;
}

void hydra_train_profile_enable(int on) {
    g_prof = on;
    g_ph_t = hydra_now_seconds();
}
void hydra_train_profile_reset(void) { memset(g_ph, 0, sizeof g_ph); }
int hydra_train_profile_get(double *seconds, const char **names, int cap) {
    for (int i = 0; i < PH_N && i < cap; i++) {
        if (seconds) seconds[i] = g_ph[i];
        if (names) names[i] = k_phase_names[i];
    }
    return PH_N;
}

/* C (+)= op(A) . op(B) (hydra_op_matmul_ex), timed as the matmul phase. */
static hydra_status mm_ex(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          float *C, int ldc, int acc) {
    const int prev = ph(PH_MATMUL);
    hydra_status st = hydra_op_matmul_ex(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc);
    ph(prev);
    return st;
}

/* y[M,N] (+)= x[M,K] . W[N,K]^T: hydra_op_matmul's product through
 * hydra_op_matmul_ex, which also takes the tiny shapes of test models
 * without a BLAS call. */
static hydra_status fwd_matmul(int M, int N, int K, const float *x, const float *W, float *y, int acc) {
    return mm_ex(0, 1, M, N, K, x, K, W, K, y, N, acc);
}

static inline float silu_grad(float x) { /* d/dx x sigmoid(x) */
    float s = hydra_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* act = SiLU(gate) * up from gu [BT, 2F]. */
static void swiglu_rows(size_t BT, int F, const float *gu, float *act) {
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *g = gu + r * 2 * F;
        hydra_vec_swiglu(act + r * F, g, g + F, (size_t)F);
    }
}

/* SwiGLU backward of one row: dg = da u SiLU'(g), du = da SiLU(g). */
HYDRA_CLONES
static void swiglu_bwd_row(int F, const float *g, const float *u, const float *da, float *dg, float *du) {
    int i = 0;
    for (; i + 16 <= F; i += 16) {
        const hydra_v16 x = *(const hydra_v16 *)(g + i), s = 1.0f / (1.0f + hydra_v16_exp(-x));
        const hydra_v16 a = *(const hydra_v16 *)(da + i);
        *(hydra_v16 *)(dg + i) = a * *(const hydra_v16 *)(u + i) * (s * (1.0f + x * (1.0f - s)));
        *(hydra_v16 *)(du + i) = a * x * s;
    }
    for (; i < F; i++) {
        dg[i] = da[i] * u[i] * silu_grad(g[i]);
        du[i] = da[i] * hydra_silu(g[i]);
    }
}

/* dc = dy * SiLU'(c) over n values (one sigmoid per element, 16 lanes at a time). */
HYDRA_CLONES
static void silu_bwd_vec(size_t n, const float *c, const float *dy, float *dc) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const hydra_v16 x = *(const hydra_v16 *)(c + i), s = 1.0f / (1.0f + hydra_v16_exp(-x));
        *(hydra_v16 *)(dc + i) = *(const hydra_v16 *)(dy + i) * (s * (1.0f + x * (1.0f - s)));
    }
    for (; i < n; i++) dc[i] = dy[i] * silu_grad(c[i]);
}

/* L2 norm (times scale) of SiLU(c) backward for one head [d]:
 * s = SiLU(c), r_n = 1/sqrt(|s|^2 + eps), n = s r_n:
 * dc = scale r_n (dy - s (n . dy) r_n) SiLU'(c). The vector path computes one
 * sigmoid per element (the scalar path three expf). */
HYDRA_CLONES
static void l2silu_bwd_head(int d, const float *c, const float *dy, float scale, float l2eps, float *dc) {
    if (d % 16 == 0) {
        hydra_v16 ss = {0}, dot = {0};
        for (int i = 0; i < d; i += 16) {
            const hydra_v16 x = *(const hydra_v16 *)(c + i), s = x / (1.0f + hydra_v16_exp(-x));
            ss += s * s;
            dot += s * *(const hydra_v16 *)(dy + i);
        }
        const float rn = 1.0f / sqrtf(hydra_v16_hsum(ss) + l2eps), nd = hydra_v16_hsum(dot) * rn * rn;
        for (int i = 0; i < d; i += 16) {
            const hydra_v16 x = *(const hydra_v16 *)(c + i), sg = 1.0f / (1.0f + hydra_v16_exp(-x)), s = x * sg;
            *(hydra_v16 *)(dc + i) =
                (scale * rn) * (*(const hydra_v16 *)(dy + i) - s * nd) * (sg * (1.0f + x * (1.0f - sg)));
        }
        return;
    }
    float ss = 0.0f, dot = 0.0f;
    for (int i = 0; i < d; i++) {
        const float s = hydra_silu(c[i]);
        ss += s * s;
        dot += s * dy[i];
    }
    const float rn = 1.0f / sqrtf(ss + l2eps), nd = dot * rn * rn; /* n . dy / r_n */
    for (int i = 0; i < d; i++) {
        const float s = hydra_silu(c[i]);
        dc[i] = scale * rn * (dy[i] - s * nd) * silu_grad(c[i]);
    }
}

/* Gated output norm backward of one (row, head) [d]: n = o r, s = SiLU(z),
 * y = n w s: dz = dy n w SiLU'(z); dn = dy w s; do = r (dn - n mean(dn n));
 * pw += dy n s (o_norm gain partials). 16 lanes, one sigmoid per element,
 * when d % 16 == 0; scalar otherwise. */
HYDRA_CLONES
static void gnorm_bwd_head(int d, const float *oh, const float *zh, const float *gy, const float *w, float eps,
                           float *dz, float *doh, float *pw) {
    if (d % 16 == 0) {
        hydra_v16 ss = {0}, dot = {0};
        for (int i = 0; i < d; i += 16) ss += *(const hydra_v16 *)(oh + i) * *(const hydra_v16 *)(oh + i);
        const float rr = 1.0f / sqrtf(hydra_v16_hsum(ss) / (float)d + eps);
        for (int i = 0; i < d; i += 16) {
            const hydra_v16 z = *(const hydra_v16 *)(zh + i), sg = 1.0f / (1.0f + hydra_v16_exp(-z)), s = z * sg;
            const hydra_v16 n = *(const hydra_v16 *)(oh + i) * rr, g = *(const hydra_v16 *)(gy + i);
            const hydra_v16 ww = *(const hydra_v16 *)(w + i), dn = g * ww * s;
            *(hydra_v16 *)(dz + i) = g * n * ww * (sg * (1.0f + z * (1.0f - sg)));
            *(hydra_v16 *)(pw + i) += g * n * s;
            *(hydra_v16 *)(doh + i) = dn; /* temporarily dn */
            dot += dn * n;
        }
        const float mean = hydra_v16_hsum(dot) / (float)d;
        for (int i = 0; i < d; i += 16)
            *(hydra_v16 *)(doh + i) = rr * (*(const hydra_v16 *)(doh + i) - *(const hydra_v16 *)(oh + i) * (rr * mean));
        return;
    }
    float ss = 0.0f;
    for (int i = 0; i < d; i++) ss += oh[i] * oh[i];
    const float rr = 1.0f / sqrtf(ss / (float)d + eps);
    float dot = 0.0f;
    for (int i = 0; i < d; i++) {
        const float n = oh[i] * rr, s = hydra_silu(zh[i]);
        dz[i] = gy[i] * n * w[i] * silu_grad(zh[i]);
        pw[i] += gy[i] * n * s;
        const float dn = gy[i] * w[i] * s;
        doh[i] = dn; /* temporarily dn */
        dot += dn * n;
    }
    const float mean = dot / (float)d;
    for (int i = 0; i < d; i++) doh[i] = rr * (doh[i] - oh[i] * rr * mean);
}

/* One (row, head) of the gated output norm: y = o / rms(o) * w * SiLU(z) [d]. */
HYDRA_CLONES
static void gnorm_head(int d, const float *oh, const float *zh, const float *w, float eps, float *yh) {
    float ss = 0.0f;
    for (int i = 0; i < d; i++) ss += oh[i] * oh[i];
    const float inv = 1.0f / sqrtf(ss / (float)d + eps);
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        const hydra_v16 z = *(const hydra_v16 *)(zh + i);
        *(hydra_v16 *)(yh + i) = *(const hydra_v16 *)(oh + i) * inv * *(const hydra_v16 *)(w + i) *
                                 (z / (1.0f + hydra_v16_exp(-z)));
    }
    for (; i < d; i++) yh[i] = oh[i] * inv * w[i] * hydra_silu(zh[i]);
}

/* y = RMSNorm_head(o) * w * SiLU(gate) per (row, head); gate = proj[:, 3Hd:4Hd]. */
static void gated_norm(const hydra_model *m, const hydra_layer_weights *lw, size_t BT, const float *o,
                       const float *proj, float *y) {
    const int H = m->cfg.n_heads, d = m->dk;
    const size_t Hd = (size_t)H * d, P = (size_t)hydra_gdn_in_width(m);
    const float eps = m->cfg.norm_eps;
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t rh = 0; rh < BT * (size_t)H; rh++) {
        size_t r = rh / (size_t)H, h = rh % (size_t)H;
        const float *oh = o + rh * d, *gh = proj + r * P + 3 * Hd + h * d;
        gnorm_head(d, oh, gh, lw->o_norm, eps, y + rh * d);
    }
}

/* ------------------------------------------------------------ forward */
/* dst = src over n floats, in 64K-float pieces across the threads (the
 * residual copies: 4 MB per layer at d512, B*T 2048). */
static void copy_par(float *dst, const float *src, size_t n) {
    const size_t P = 65536;
#pragma omp parallel for schedule(dynamic, 1) if (n >= 4 * P)
    for (size_t i = 0; i < n; i += P) memcpy(dst + i, src + i, (n - i < P ? n - i : P) * sizeof(float));
}

static hydra_status gdn_forward(const hydra_model *m, const hydra_layer_weights *lw, int B, int T,
                                train_acts *a, layer_acts *la) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, d = m->dk, K = c->conv_width;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d, P = (size_t)hydra_gdn_in_width(m);
    HYDRA_CHECK(fwd_matmul((int)BT, (int)P, C, a->h, lw->in_proj, la->proj, 0));
    ph(PH_CONV);
#pragma omp parallel for schedule(dynamic, 64) if (BT >= 256)
    for (size_t r = 0; r < BT; r++) {
        const float *ap = la->proj + r * P + 4 * Hd, *bp = ap + H;
        for (int h = 0; h < H; h++) {
            la->beta[r * H + h] = hydra_sigmoid(bp[h]);
            la->gdec[r * H + h] = -expf(lw->A_log[h]) * hydra_softplus(ap[h] + lw->dt_bias[h]);
        }
    }
    HYDRA_CHECK(hydra_conv_batch(B, T, (int)(3 * Hd), K, la->proj, P, lw->q_conv, la->conv));
    /* SiLU, split, L2-normalise q (and scale by d^-1/2) and k per head. */
    const float qscale = 1.0f / sqrtf((float)d), l2eps = c->l2_eps;
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *cr = la->conv + r * 3 * Hd;
        for (int part = 0; part < 3; part++) {
            float *dst = (part == 0 ? la->q : part == 1 ? la->k : la->v) + r * Hd;
            hydra_vec_silu(dst, cr + part * Hd, Hd);
            if (part == 2) continue;
            for (int h = 0; h < H; h++) {
                float *xh = dst + (size_t)h * d, ss = 0.0f;
                for (int i = 0; i < d; i++) ss += xh[i] * xh[i];
                float inv = (part == 0 ? qscale : 1.0f) / sqrtf(ss + l2eps);
                for (int i = 0; i < d; i++) xh[i] *= inv;
            }
        }
    }
    /* Delta rule per (sequence, head) from S = 0. */
    ph(PH_DELTA);
    memset(a->S, 0, (size_t)B * H * d * d * sizeof(float));
    HYDRA_CHECK(hydra_delta_rule_batch(B, T, H, d, d, la->q, la->k, la->v, la->gdec, la->beta, a->S, la->o));
    ph(PH_NORM);
    gated_norm(m, lw, BT, la->o, la->proj, a->y);
    return HYDRA_OK;
}

static hydra_status attn_forward(const hydra_model *m, const hydra_layer_weights *lw, int li, int B,
                                 int T, train_acts *a, layer_acts *la) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, d = m->dk;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d;
    const int window = hydra_config_layer_kind(c, li) == HYDRA_LAYER_ATTN ? 0 : c->window;
    HYDRA_CHECK(fwd_matmul((int)BT, (int)(3 * Hd), C, a->h, lw->in_proj, a->big, 0));
    ph(PH_ATTN);
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *pr = a->big + r * 3 * Hd;
        memcpy(la->q + r * Hd, pr, Hd * sizeof(float));
        memcpy(la->k + r * Hd, pr + Hd, Hd * sizeof(float));
        memcpy(la->v + r * Hd, pr + 2 * Hd, Hd * sizeof(float));
    }
    for (int b = 0; b < B; b++) {
        size_t o0 = (size_t)b * T * Hd;
        HYDRA_CHECK(hydra_op_rope(T, H, d, 0, c->rope_base, la->q + o0));
        HYDRA_CHECK(hydra_op_rope(T, H, d, 0, c->rope_base, la->k + o0));
        HYDRA_CHECK(hydra_op_attention(T, H, d, 0, window, la->q + o0, la->k + o0, la->v + o0, NULL, NULL,
                                       la->o + o0));
    }
    copy_par(a->y, la->o, BT * Hd);
    return HYDRA_OK;
}

/* Forward of all layers and the head: fills a, writes logits. */
static hydra_status train_forward(const hydra_model *m, const int32_t *inputs, int B, int T, train_acts *a) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, F = m->F, L = c->n_layers;
    const size_t BT = (size_t)B * T, Hd = (size_t)c->n_heads * m->dk;
    ph(PH_OTHER);
    for (size_t r = 0; r < BT; r++)
        memcpy(a->L[0].x_in + r * C, m->embed + (size_t)inputs[r] * C, C * sizeof(float));
    for (int li = 0; li < L; li++) {
        const hydra_layer_weights *lw = &m->layers[li];
        layer_acts *la = &a->L[li];
        float *x_out = li + 1 < L ? a->L[li + 1].x_in : a->x_final;
        ph(PH_NORM);
        HYDRA_CHECK(hydra_op_rmsnorm((int)BT, C, la->x_in, lw->norm1, c->norm_eps, a->h));
        if (lw->kind == HYDRA_LAYER_DELTANET) HYDRA_CHECK(gdn_forward(m, lw, B, T, a, la));
        else HYDRA_CHECK(attn_forward(m, lw, li, B, T, a, la));
        ph(PH_OTHER);
        copy_par(la->x_mid, la->x_in, BT * C);
        HYDRA_CHECK(fwd_matmul((int)BT, C, (int)Hd, a->y, lw->o_proj, la->x_mid, 1));
        ph(PH_NORM);
        HYDRA_CHECK(hydra_op_rmsnorm((int)BT, C, la->x_mid, lw->norm2, c->norm_eps, a->h));
        HYDRA_CHECK(fwd_matmul((int)BT, 2 * F, C, a->h, lw->gate_up, la->gu, 0));
        swiglu_rows(BT, F, la->gu, a->act);
        ph(PH_OTHER);
        copy_par(x_out, la->x_mid, BT * C);
        HYDRA_CHECK(fwd_matmul((int)BT, C, F, a->act, lw->down, x_out, 1));
    }
    ph(PH_NORM);
    HYDRA_CHECK(hydra_op_rmsnorm((int)BT, C, a->x_final, m->norm_f, c->norm_eps, a->hf));
    HYDRA_CHECK(fwd_matmul((int)BT, V, C, a->hf, m->lm_head, a->logits, 0));
    return HYDRA_OK;
}

/* ----------------------------------------------------------- backward */
#define GRAD(p) (grads + ((p) - m->params)) /* gradient slot of a parameter pointer */

/* GDN mixer backward: dy (grad of the gated output y) -> a->big = dproj [BT, P]
 * and the DeltaNet parameter grads except in_proj / o_proj. */
static hydra_status gdn_backward(const hydra_model *m, const hydra_layer_weights *lw, int B, int T,
                                 train_acts *a, const layer_acts *la, float *grads) {
    const hydra_config *c = &m->cfg;
    const int H = c->n_heads, d = m->dk, K = c->conv_width;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d, P = (size_t)hydra_gdn_in_width(m);
    const float eps = c->norm_eps;
    float *dproj = a->big, *dO = a->y; /* y is dead after the o_proj grads: reuse it for dO */
    /* 1. gated output norm: per (row, head) with n = o r, s = SiLU(z):
     *    dz = dy n w s'(z)/...;  dn = dy w s;  do = r (dn - n mean(dn n));  dw += dy n s.
     *    o_norm grads: partials per block of 256 (row, head) pairs, summed in block order. */
    const size_t NR = BT * (size_t)H, RB = 256, nblk = (NR + RB - 1) / RB;
    ph(PH_NORM);
    float *part = calloc(nblk * (size_t)d, sizeof(float)); /* [nblk, d] */
    if (!part) return hydra_set_error(HYDRA_ERR_NOMEM, "loss_grad: out of memory");
#pragma omp parallel for schedule(dynamic, 1) if (NR >= 64)
    for (size_t blk = 0; blk < nblk; blk++) {
        float *pw = part + blk * d;
        for (size_t rh = blk * RB; rh < NR && rh < (blk + 1) * RB; rh++) {
            size_t r = rh / (size_t)H, h = rh % (size_t)H;
            gnorm_bwd_head(d, la->o + rh * d, la->proj + r * P + 3 * Hd + h * d, a->dy + rh * d, lw->o_norm, eps,
                           dproj + r * P + 3 * Hd + h * d, dO + rh * d, pw);
        }
    }
    float *gon = GRAD(lw->o_norm);
    for (size_t blk = 0; blk < nblk; blk++)
        for (int i = 0; i < d; i++) gon[i] += part[blk * d + i];
    free(part);
    /* 2. delta rule backward per sequence (S_0 = 0, no final-state gradient). */
    float *dq = a->dqkv, *dk = dq + BT * Hd, *dv = dk + BT * Hd, *dg = a->dgb, *db = dg + BT * H;
    ph(PH_DELTA);
    HYDRA_CHECK(hydra_delta_rule_backward_batch(B, T, H, d, d, la->q, la->k, la->v, la->gdec, la->beta, dO, dq, dk,
                                                dv, dg, db));
    /* 3. gates: beta = sigmoid(b_pre); g = -exp(A_log) softplus(a_pre + dt_bias).
     *    dA_log += dg g;  da_pre = dg (-exp(A_log)) sigmoid(a_pre + dt_bias);  ddt_bias += da_pre. */
    ph(PH_CONV);
    float *gA = GRAD(lw->A_log), *gdt = GRAD(lw->dt_bias);
#pragma omp parallel for schedule(dynamic, 64) if (BT >= 256)
    for (size_t r = 0; r < BT; r++) {
        const float *ap = la->proj + r * P + 4 * Hd;
        float *dap = dproj + r * P + 4 * Hd;
        for (int h = 0; h < H; h++) {
            const float be = la->beta[r * H + h];
            dap[H + h] = db[r * H + h] * be * (1.0f - be);
            dap[h] = dg[r * H + h] * -expf(lw->A_log[h]) * hydra_sigmoid(ap[h] + lw->dt_bias[h]);
        }
    }
    for (size_t r = 0; r < BT; r++) /* ordered reduction over rows (BT*H terms: cheap) */
        for (int h = 0; h < H; h++) {
            gA[h] += dg[r * H + h] * la->gdec[r * H + h];
            gdt[h] += dproj[r * P + 4 * Hd + h];
        }
    /* 4. L2 norm (+ q scale) and SiLU backward -> dconv [BT, 3Hd] in a->t3:
     *    x = s r_n, r_n = 1/sqrt(|s|^2 + eps): ds = scale r_n (dy - n (n . dy)), n = s r_n. */
    const float qscale = 1.0f / sqrtf((float)d), l2eps = c->l2_eps;
    float *dconv = a->t3;
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *cr = la->conv + r * 3 * Hd;
        float *dc = dconv + r * 3 * Hd;
        for (int part3 = 0; part3 < 3; part3++) {
            const float *gsrc = (part3 == 0 ? dq : part3 == 1 ? dk : dv) + r * Hd;
            const float *cp = cr + part3 * Hd;
            float *dcp = dc + part3 * Hd;
            if (part3 == 2) {
                silu_bwd_vec(Hd, cp, gsrc, dcp);
                continue;
            }
            const float scale = part3 == 0 ? qscale : 1.0f;
            for (int h = 0; h < H; h++)
                l2silu_bwd_head(d, cp + (size_t)h * d, gsrc + (size_t)h * d, scale, l2eps, dcp + (size_t)h * d);
        }
    }
    /* 5. conv backward per (sequence, channel block), input read from and its
     *    gradient written into the fused projection rows; weight grads summed in b order. */
    return hydra_conv_backward_batch(B, T, (int)(3 * Hd), K, la->proj, P, lw->q_conv, dconv, dproj, P,
                                     GRAD(lw->q_conv));
}

/* Attention backward: a->dy (grad of the attention output) -> a->big = dproj [BT, 3Hd]. */
static hydra_status attn_backward(const hydra_model *m, int li, int B, int T, train_acts *a,
                                  const layer_acts *la) {
    const hydra_config *c = &m->cfg;
    const int H = c->n_heads, d = m->dk;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d;
    const int window = hydra_config_layer_kind(c, li) == HYDRA_LAYER_ATTN ? 0 : c->window;
    float *dq = a->dqkv, *dk = dq + BT * Hd, *dv = dk + BT * Hd;
    ph(PH_ATTN);
    HYDRA_CHECK(hydra_attention_backward_batch(B, T, H, d, window, la->q, la->k, la->v, la->o, a->dy, dq, dk, dv));
    int err = 0;
#pragma omp parallel for schedule(dynamic, 1) if (B > 1) reduction(| : err)
    for (int b = 0; b < 2 * B; b++) /* RoPE backward of dq and dk, one sequence each */
        err |= hydra_op_rope_backward(T, H, d, 0, c->rope_base, (b % 2 ? dk : dq) + (size_t)(b / 2) * T * Hd) != HYDRA_OK;
    if (err) return hydra_set_error(HYDRA_ERR_NOMEM, "loss_grad: RoPE backward failed");
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        float *pr = a->big + r * 3 * Hd;
        memcpy(pr, dq + r * Hd, Hd * sizeof(float));
        memcpy(pr + Hd, dk + r * Hd, Hd * sizeof(float));
        memcpy(pr + 2 * Hd, dv + r * Hd, Hd * sizeof(float));
    }
    return HYDRA_OK;
}

static hydra_status train_backward(const hydra_model *m, const int32_t *inputs, int B, int T, train_acts *a,
                                   float *grads) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, F = m->F, L = c->n_layers;
    const size_t BT = (size_t)B * T, Hd = (size_t)c->n_heads * m->dk;
    const float eps = c->norm_eps;
    /* head: logits = hf . head^T (tied: head == embed, same gradient slot) */
    HYDRA_CHECK(mm_ex(1, 0, V, C, (int)BT, a->logits, V, a->hf, C, GRAD(m->lm_head), C, 1));
    HYDRA_CHECK(mm_ex(0, 0, (int)BT, C, V, a->logits, V, m->lm_head, C, a->dh, C, 0));
    ph(PH_NORM);
    HYDRA_CHECK(hydra_op_rmsnorm_backward((int)BT, C, a->x_final, m->norm_f, eps, a->dh, a->dx, GRAD(m->norm_f), 0));
    for (int li = L - 1; li >= 0; li--) {
        const hydra_layer_weights *lw = &m->layers[li];
        const layer_acts *la = &a->L[li];
        /* MLP: x_out = x_mid + down(SiLU(gate) * up), gate|up = gate_up . RMSNorm2(x_mid) */
        ph(PH_NORM);
        HYDRA_CHECK(hydra_op_rmsnorm((int)BT, C, la->x_mid, lw->norm2, eps, a->h));
        swiglu_rows(BT, F, la->gu, a->act);
        HYDRA_CHECK(mm_ex(1, 0, C, F, (int)BT, a->dx, C, a->act, F, GRAD(lw->down), F, 1));
        HYDRA_CHECK(mm_ex(0, 0, (int)BT, F, C, a->dx, C, lw->down, F, a->dact, F, 0));
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
        for (size_t r = 0; r < BT; r++) {
            const float *g = la->gu + r * 2 * F, *u = g + F, *da = a->dact + r * F;
            float *dg = a->big + r * 2 * F;
            swiglu_bwd_row(F, g, u, da, dg, dg + F);
        }
        HYDRA_CHECK(mm_ex(1, 0, 2 * F, C, (int)BT, a->big, 2 * F, a->h, C, GRAD(lw->gate_up), C, 1));
        HYDRA_CHECK(mm_ex(0, 0, (int)BT, C, 2 * F, a->big, 2 * F, lw->gate_up, C, a->dh, C, 0));
        ph(PH_NORM);
    HYDRA_CHECK(hydra_op_rmsnorm_backward((int)BT, C, la->x_mid, lw->norm2, eps, a->dh, a->dx, GRAD(lw->norm2), 1));
        /* mixer: x_mid = x_in + o_proj . y(RMSNorm1(x_in)) */
        const int gdn = lw->kind == HYDRA_LAYER_DELTANET;
        const int P = gdn ? hydra_gdn_in_width(m) : (int)(3 * Hd);
        ph(PH_NORM);
        HYDRA_CHECK(hydra_op_rmsnorm((int)BT, C, la->x_in, lw->norm1, eps, a->h));
        if (gdn) gated_norm(m, lw, BT, la->o, la->proj, a->y);
        const float *y = gdn ? a->y : la->o;
        HYDRA_CHECK(mm_ex(1, 0, C, (int)Hd, (int)BT, a->dx, C, y, (int)Hd, GRAD(lw->o_proj), (int)Hd, 1));
        HYDRA_CHECK(mm_ex(0, 0, (int)BT, (int)Hd, C, a->dx, C, lw->o_proj, (int)Hd, a->dy, (int)Hd, 0));
        if (gdn) HYDRA_CHECK(gdn_backward(m, lw, B, T, a, la, grads));
        else HYDRA_CHECK(attn_backward(m, li, B, T, a, la));
        HYDRA_CHECK(mm_ex(1, 0, P, C, (int)BT, a->big, P, a->h, C, GRAD(lw->in_proj), C, 1));
        HYDRA_CHECK(mm_ex(0, 0, (int)BT, C, P, a->big, P, lw->in_proj, C, a->dh, C, 0));
        ph(PH_NORM);
    HYDRA_CHECK(hydra_op_rmsnorm_backward((int)BT, C, la->x_in, lw->norm1, eps, a->dh, a->dx, GRAD(lw->norm1), 1));
    }
    ph(PH_OTHER);
    /* embedding lookup: rows added in token order, column blocks in parallel */
    float *gE = GRAD(m->embed);
#pragma omp parallel for schedule(dynamic, 1) if (BT * C >= 65536)
    for (int c0 = 0; c0 < C; c0 += 16)
        for (size_t r = 0; r < BT; r++) {
            float *dst = gE + (size_t)inputs[r] * C;
            const float *src = a->dx + r * C;
            for (int i = c0; i < c0 + 16 && i < C; i++) dst[i] += src[i];
        }
    return HYDRA_OK;
}

/* ------------------------------------------------------------- public */
static hydra_status check_batch(const char *fn, const hydra_model *m, const int32_t *inputs,
                                const int32_t *targets, const uint8_t *mask, int B, int T, int64_t *n_scored) {
    if (!m || !inputs || !targets) return hydra_set_error(HYDRA_ERR_ARG, "%s: model, inputs or targets is NULL", fn);
    if (B < 1 || T < 1) return hydra_set_error(HYDRA_ERR_ARG, "%s: B and T must be >= 1 (got B=%d, T=%d)", fn, B, T);
    HYDRA_CHECK(hydra_require_f32(m, fn));
    const size_t n = (size_t)B * (size_t)T;
    const int V = m->cfg.vocab_size;
    int64_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (inputs[i] < 0 || inputs[i] >= V)
            return hydra_set_error(HYDRA_ERR_ARG, "%s: input id %d at index %zu is outside [0, %d)", fn, inputs[i], i, V);
        if (mask && !mask[i]) continue;
        if (targets[i] < 0 || targets[i] >= V)
            return hydra_set_error(HYDRA_ERR_ARG, "%s: target id %d at index %zu is outside [0, %d)", fn, targets[i], i, V);
        cnt++;
    }
    *n_scored = cnt;
    return HYDRA_OK;
}

static hydra_status loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                              const uint8_t *mask, int B, int T, float *grads, const hydra_dev_grad_opts *dp,
                              double *loss, int64_t *n_scored) {
    if (!grads && !(m && m->dev)) return hydra_set_error(HYDRA_ERR_ARG, "loss_grad: grads is NULL");
    int64_t ns;
    HYDRA_CHECK(check_batch("loss_grad", m, inputs, targets, mask, B, T, &ns));
    if (n_scored) *n_scored = ns;
    if (m->dev) return hydra_dev_loss_grad(m, inputs, targets, mask, B, T, grads, dp, loss);
    memset(grads, 0, m->n_params * sizeof(float));
    if (n_scored) *n_scored = ns;
    if (loss) *loss = 0.0;
    if (ns == 0) return HYDRA_OK;
    train_acts a;
    HYDRA_CHECK(acts_alloc(m, B, T, &a));
    hydra_status st = train_forward(m, inputs, B, T, &a);
    double lsum = 0.0;
    const size_t BT = (size_t)B * T;
    ph(PH_LOSS);
    if (!st)
        st = hydra_op_cross_entropy((int)BT, m->cfg.vocab_size, a.logits, targets, mask, (float)(1.0 / (double)ns),
                                    &lsum, a.logits);
    if (!st) st = train_backward(m, inputs, B, T, &a, grads);
    ph(PH_OTHER);
    acts_free(&a);
    if (st) return st;
    if (loss) *loss = lsum / (double)ns;
    return HYDRA_OK;
}

hydra_status hydra_model_loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                   const uint8_t *mask, int B, int T, float *grads, double *loss,
                                   int64_t *n_scored) {
    return loss_grad(m, inputs, targets, mask, B, T, grads, NULL, loss, n_scored);
}

hydra_status hydra_model_loss_grad_dp(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                      const uint8_t *mask, int B, int T, const hydra_dev_grad_opts *dp,
                                      double *loss, int64_t *n_scored) {
    if (!m || !m->dev) return hydra_set_error(HYDRA_ERR_ARG, "loss_grad: data-parallel options need a model on a GPU");
    return loss_grad(m, inputs, targets, mask, B, T, NULL, dp, loss, n_scored);
}

hydra_status hydra_model_loss(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                              const uint8_t *mask, int B, int T, double *loss, int64_t *n_scored) {
    int64_t ns;
    HYDRA_CHECK(check_batch("loss", m, inputs, targets, mask, B, T, &ns));
    if (n_scored) *n_scored = ns;
    if (loss) *loss = 0.0;
    if (ns == 0) return HYDRA_OK;
    /* Sequences in groups whose logits fit in ~16 MB (each starts from an empty state). */
    const size_t V = (size_t)m->cfg.vocab_size, rows_cap = ((size_t)1 << 22) / V;
    int gb = (int)(rows_cap / (size_t)T);
    if (gb < 1) gb = 1;
    if (gb > B) gb = B;
    float *logits = malloc((size_t)gb * T * V * sizeof(float));
    if (!logits) return hydra_set_error(HYDRA_ERR_NOMEM, "loss: out of memory for logits");
    double lsum = 0.0;
    hydra_status st = HYDRA_OK;
    for (int b0 = 0; b0 < B && !st; b0 += gb) {
        int nb = B - b0 < gb ? B - b0 : gb;
        size_t off = (size_t)b0 * T;
        st = hydra_forward(m, inputs + off, nb, T, NULL, HYDRA_LOGITS_ALL, logits);
        double part = 0.0;
        if (!st) st = hydra_op_cross_entropy(nb * T, (int)V, logits, targets + off, mask ? mask + off : NULL, 1.0f, &part, NULL);
        lsum += part;
    }
    free(logits);
    if (st) return st;
    if (loss) *loss = lsum / (double)ns;
    return HYDRA_OK;
}
