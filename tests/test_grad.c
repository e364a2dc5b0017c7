/* test_grad.c — backward of every op and of the whole model.
 *
 * Op level: each backward against central finite differences of its forward,
 * as directional derivatives: for a fixed random r, L(x) = sum r . y(x) (in
 * double), and for a random direction d per input tensor
 *     (L(x + eps d) - L(x - eps d)) / (2 eps)   vs   <dL/dx, d>.
 * Tolerance: the forward runs in float32 (relative rounding ~6e-8 per op,
 * amplified by 1/eps = 1e2..1e3 in the difference) and the central difference
 * has O(eps^2) truncation; together a few 1e-4 relative at most for these sizes,
 * so 2e-3 leaves margin while still catching any wrong term (those are O(1)).
 * eps = 1e-2 for unit-scale inputs; 2e-3 for the delta rule, whose unit-norm
 * keys make a 1e-2 step along an N(0,1) direction a ~4% change of k (the
 * measured truncation error there was 1.7e-2 at eps 1e-2, 3.7e-4 at 2e-3).
 * The fast delta-rule backward is also compared with the reference backward
 * (1e-5) at lengths around the checkpoint interval.
 *
 * Model level: directional finite differences of hydra_model_loss for every
 * parameter tensor of tiny models (see the comment at test_model_fd), the
 * mask semantics and thread-count independence of the gradients.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hydralm_train.h"
#include "test_util.h"

#define OP_TOL 2e-3

static double g_max_op_err = 0.0;

static float *randv(size_t n, float scale, uint64_t seed) {
    float *x = malloc(n * sizeof(float) + 64);
    assert_non_null(x);
    fill_normal(x, n, scale, seed);
    return x;
}
static float *zerov(size_t n) {
    float *x = calloc(n + 16, sizeof(float));
    assert_non_null(x);
    return x;
}
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Directional central difference of f along a random d on x[n] vs <grad, d>. */
static double check_dir(const char *name, float *x, const float *grad, size_t n, loss_fn f, void *ctx,
                        float eps, double tol, uint64_t seed) {
    float *d = randv(n, 1.0f, seed), *x0 = malloc(n * sizeof(float));
    memcpy(x0, x, n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + eps * d[i];
    double lp = f(ctx);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] - eps * d[i];
    double lm = f(ctx);
    memcpy(x, x0, n * sizeof(float));
    double fd = (lp - lm) / (2.0 * eps), an = dotd(grad, d, n);
    double err = fabs(fd - an) / fmax(fmax(fabs(an), fabs(fd)), 1e-6);
    if (err > g_max_op_err) g_max_op_err = err;
    if (!(err <= tol)) fail_msg("%s: finite difference %.8g vs analytic %.8g (rel err %.3g > %.3g)", name, fd, an, err, tol);
    free(d), free(x0);
    return err;
}

/* ------------------------------------------------------------- matmul_ex */
static void test_matmul_ex(void **st) {
    (void)st;
    const int M = 37, N = 29, K = 41, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++) {
                int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                float *A = randv((size_t)(ta ? K : M) * lda, 1, 1), *B = randv((size_t)(tb ? N : K) * ldb, 1, 2);
                float *C = randv((size_t)M * ldc, 1, 3), *want = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = acc ? C[(size_t)i * ldc + j] : 0;
                        for (int l = 0; l < K; l++)
                            s += (double)(ta ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l]) *
                                 (tb ? B[(size_t)j * ldb + l] : B[(size_t)l * ldb + j]);
                        want[i * N + j] = (float)s;
                    }
                HY_OK(hydra_op_matmul_ex(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc));
                for (int i = 0; i < M; i++) memcpy(got + i * N, C + (size_t)i * ldc, N * sizeof(float));
                ASSERT_REL(got, want, (size_t)M * N, 1e-6);
                free(A), free(B), free(C), free(want), free(got);
            }
    float a = 0;
    assert_int_equal(hydra_op_matmul_ex(0, 0, 2, 2, 2, &a, 1, &a, 2, &a, 2, 0), HYDRA_ERR_ARG);
}

/* --------------------------------------------------------------- rmsnorm */
typedef struct { int M, C; float *x, *w, *r, *y; } rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    HY_OK(hydra_op_rmsnorm(c->M, c->C, c->x, c->w, 1e-5f, c->y));
    return dotd(c->r, c->y, (size_t)c->M * c->C);
}
static void test_rmsnorm_backward(void **st) {
    (void)st;
    rms_ctx c = {7, 33, NULL, NULL, NULL, NULL};
    size_t n = (size_t)c.M * c.C;
    c.x = randv(n, 1, 10), c.w = randv((size_t)c.C, 1, 11), c.r = randv(n, 1, 12), c.y = zerov(n);
    float *dx = zerov(n), *dw = randv((size_t)c.C, 1, 13), *dw0 = malloc(c.C * sizeof(float));
    memcpy(dw0, dw, c.C * sizeof(float));
    HY_OK(hydra_op_rmsnorm_backward(c.M, c.C, c.x, c.w, 1e-5f, c.r, dx, dw, 0));
    for (int i = 0; i < c.C; i++) dw[i] -= dw0[i]; /* dw is accumulated */
    check_dir("rmsnorm dx", c.x, dx, n, rms_loss, &c, 1e-2f, OP_TOL, 14);
    check_dir("rmsnorm dw", c.w, dw, (size_t)c.C, rms_loss, &c, 1e-2f, OP_TOL, 15);
    /* accumulate = 1 adds */
    float *dx2 = randv(n, 1, 16), *dx2c = malloc(n * sizeof(float));
    memcpy(dx2c, dx2, n * sizeof(float));
    HY_OK(hydra_op_rmsnorm_backward(c.M, c.C, c.x, c.w, 1e-5f, c.r, dx2, NULL, 1));
    for (size_t i = 0; i < n; i++) dx2c[i] += dx[i];
    ASSERT_REL(dx2, dx2c, n, 1e-6);
    free(c.x), free(c.w), free(c.r), free(c.y), free(dx), free(dw), free(dw0), free(dx2), free(dx2c);
}

/* ------------------------------------------------------------------ conv */
typedef struct { int T, C, K; float *x, *w, *r, *y; } conv_ctx;
static double conv_loss(void *p) {
    conv_ctx *c = p;
    HY_OK(hydra_op_conv_causal(c->T, c->C, c->K, c->x, c->w, NULL, c->y));
    return dotd(c->r, c->y, (size_t)c->T * c->C);
}
static void test_conv_backward(void **st) {
    (void)st;
    int Ks[] = {4, 3, 1};
    for (int s = 0; s < 3; s++) {
        conv_ctx c = {11, 70, Ks[s], NULL, NULL, NULL, NULL}; /* 70: two channel blocks */
        size_t n = (size_t)c.T * c.C;
        c.x = randv(n, 1, 20), c.w = randv((size_t)c.C * c.K, 1, 21), c.r = randv(n, 1, 22), c.y = zerov(n);
        float *dx = zerov(n), *dw = zerov((size_t)c.C * c.K);
        HY_OK(hydra_op_conv_causal_backward(c.T, c.C, c.K, c.x, c.w, c.r, dx, dw));
        check_dir("conv dx", c.x, dx, n, conv_loss, &c, 1e-2f, OP_TOL, 23);
        check_dir("conv dw", c.w, dw, (size_t)c.C * c.K, conv_loss, &c, 1e-2f, OP_TOL, 24);
        free(c.x), free(c.w), free(c.r), free(c.y), free(dx), free(dw);
    }
}

/* ------------------------------------------------------------------ rope */
typedef struct { int T, H, d; float *x, *r, *y; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->T * c->H * c->d;
    memcpy(c->y, c->x, n * sizeof(float));
    HY_OK(hydra_op_rope(c->T, c->H, c->d, 0, 10000.0, c->y));
    return dotd(c->r, c->y, n);
}
static void test_rope_backward(void **st) {
    (void)st;
    rope_ctx c = {9, 2, 8, NULL, NULL, NULL};
    size_t n = (size_t)c.T * c.H * c.d;
    c.x = randv(n, 1, 30), c.r = randv(n, 1, 31), c.y = zerov(n);
    float *dx = malloc(n * sizeof(float));
    memcpy(dx, c.r, n * sizeof(float));
    HY_OK(hydra_op_rope_backward(c.T, c.H, c.d, 0, 10000.0, dx));
    check_dir("rope dx", c.x, dx, n, rope_loss, &c, 1e-2f, OP_TOL, 32);
    free(c.x), free(c.r), free(c.y), free(dx);
}

/* ------------------------------------------------------------- attention */
typedef struct { int T, H, d, W; float *q, *k, *v, *r, *o; } attn_ctx;
static double attn_loss(void *p) {
    attn_ctx *c = p;
    HY_OK(hydra_op_attention(c->T, c->H, c->d, 0, c->W, c->q, c->k, c->v, NULL, NULL, c->o));
    return dotd(c->r, c->o, (size_t)c->T * c->H * c->d);
}
static void test_attention_backward(void **st) {
    (void)st;
    int Ws[] = {4, 0};
    for (int s = 0; s < 2; s++) {
        attn_ctx c = {13, 3, 8, Ws[s], NULL, NULL, NULL, NULL, NULL};
        size_t n = (size_t)c.T * c.H * c.d;
        c.q = randv(n, 1, 40), c.k = randv(n, 1, 41), c.v = randv(n, 1, 42), c.r = randv(n, 1, 43), c.o = zerov(n);
        float *dq = zerov(n), *dk = zerov(n), *dv = zerov(n);
        attn_loss(&c);
        HY_OK(hydra_op_attention_backward(c.T, c.H, c.d, c.W, c.q, c.k, c.v, c.o, c.r, dq, dk, dv));
        check_dir("attention dq", c.q, dq, n, attn_loss, &c, 1e-2f, OP_TOL, 44);
        check_dir("attention dk", c.k, dk, n, attn_loss, &c, 1e-2f, OP_TOL, 45);
        check_dir("attention dv", c.v, dv, n, attn_loss, &c, 1e-2f, OP_TOL, 46);
        free(c.q), free(c.k), free(c.v), free(c.r), free(c.o), free(dq), free(dk), free(dv);
    }
}

/* --------------------------------------------------------- cross-entropy */
typedef struct { int M, V; float *x; int32_t *tg; uint8_t *mask; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    double l;
    HY_OK(hydra_op_cross_entropy(c->M, c->V, c->x, c->tg, c->mask, 1.0f, &l, NULL));
    return l / 3.0;
}
static void test_cross_entropy(void **st) {
    (void)st;
    ce_ctx c = {6, 11, NULL, NULL, NULL};
    size_t n = (size_t)c.M * c.V;
    c.x = randv(n, 2, 50);
    int32_t tg[6] = {0, 3, 10, 5, 5, 7};
    uint8_t mask[6] = {1, 0, 1, 1, 0, 0};
    c.tg = tg, c.mask = mask;
    float *dx = zerov(n);
    double l;
    HY_OK(hydra_op_cross_entropy(c.M, c.V, c.x, tg, mask, 1.0f / 3.0f, &l, dx));
    check_dir("cross-entropy dlogits", c.x, dx, n, ce_loss, &c, 1e-2f, OP_TOL, 51);
    /* masked rows: zero gradient; the loss equals a direct computation */
    double want = 0;
    for (int r = 0; r < c.M; r++) {
        if (!mask[r]) {
            for (int i = 0; i < c.V; i++) assert_true(dx[r * c.V + i] == 0.0f);
            continue;
        }
        double s = 0;
        for (int i = 0; i < c.V; i++) s += exp((double)c.x[r * c.V + i]);
        want += log(s) - c.x[r * c.V + tg[r]];
    }
    assert_true(fabs(l - want) <= 1e-9 * fabs(want));
    /* in place (dlogits == logits) gives the same */
    float *y = malloc(n * sizeof(float));
    memcpy(y, c.x, n * sizeof(float));
    HY_OK(hydra_op_cross_entropy(c.M, c.V, y, tg, mask, 1.0f / 3.0f, &l, y));
    ASSERT_REL(y, dx, n, 0);
    tg[0] = 11;
    assert_int_equal(hydra_op_cross_entropy(c.M, c.V, c.x, tg, mask, 1.0f, &l, NULL), HYDRA_ERR_ARG);
    free(c.x), free(dx), free(y);
}

/* ------------------------------------------------------------ delta rule */
typedef struct { int T, H, dk, dv; float *q, *k, *v, *g, *beta, *S0, *rO, *rS, *S, *o; } dr_ctx;
static double dr_loss(void *p) {
    dr_ctx *c = p;
    size_t SN = (size_t)c->H * c->dv * c->dk;
    memcpy(c->S, c->S0, SN * sizeof(float));
    HY_OK(hydra_op_delta_rule_ref(c->T, c->H, c->dk, c->dv, c->q, c->k, c->v, c->g, c->beta, c->S, c->o));
    return dotd(c->rO, c->o, (size_t)c->T * c->H * c->dv) + dotd(c->rS, c->S, SN);
}
static void dr_make(dr_ctx *c, int T, int H, int dk, int dv, uint64_t seed) {
    c->T = T, c->H = H, c->dk = dk, c->dv = dv;
    size_t nk = (size_t)T * H * dk, nv = (size_t)T * H * dv, SN = (size_t)H * dv * dk;
    c->q = randv(nk, 1, seed), c->k = randv(nk, 1, seed + 1), c->v = randv(nv, 1, seed + 2);
    /* unit-norm keys (as in the model; keeps the recurrence contractive), q scaled */
    for (size_t r = 0; r < (size_t)T * H; r++) {
        double a = 0, b = 0;
        for (int j = 0; j < dk; j++) a += c->k[r * dk + j] * c->k[r * dk + j], b += c->q[r * dk + j] * c->q[r * dk + j];
        for (int j = 0; j < dk; j++) c->k[r * dk + j] /= (float)sqrt(a), c->q[r * dk + j] /= (float)sqrt(b);
    }
    c->g = randv((size_t)T * H, 1, seed + 3), c->beta = randv((size_t)T * H, 1, seed + 4);
    for (size_t i = 0; i < (size_t)T * H; i++) {
        c->g[i] = -0.3f * fabsf(c->g[i]) - 0.01f;
        c->beta[i] = 1.0f / (1.0f + expf(-c->beta[i]));
    }
    c->S0 = randv(SN, 0.5f, seed + 5), c->rO = randv(nv, 1, seed + 6), c->rS = randv(SN, 1, seed + 7);
    c->S = zerov(SN), c->o = zerov(nv);
}
static void dr_free(dr_ctx *c) {
    free(c->q), free(c->k), free(c->v), free(c->g), free(c->beta), free(c->S0), free(c->rO), free(c->rS),
        free(c->S), free(c->o);
}

typedef hydra_status (*drb_fn)(int, int, int, int, const float *, const float *, const float *, const float *,
                               const float *, const float *, const float *, const float *, float *, float *,
                               float *, float *, float *, float *);

static void test_delta_rule_fd(void **st) {
    (void)st;
    drb_fn fns[2] = {hydra_op_delta_rule_backward_ref, hydra_op_delta_rule_backward};
    const char *names[2] = {"ref", "fast"};
    for (int f = 0; f < 2; f++) {
        dr_ctx c;
        dr_make(&c, 9, 2, 16, 12, 60 + f);
        size_t nk = (size_t)c.T * c.H * c.dk, nv = (size_t)c.T * c.H * c.dv, SN = (size_t)c.H * c.dv * c.dk, nt = (size_t)c.T * c.H;
        float *dq = zerov(nk), *dk = zerov(nk), *dv = zerov(nv), *dg = zerov(nt), *db = zerov(nt), *dS0 = zerov(SN);
        HY_OK(fns[f](c.T, c.H, c.dk, c.dv, c.q, c.k, c.v, c.g, c.beta, c.S0, c.rO, c.rS, dq, dk, dv, dg, db, dS0));
        char nm[64];
#define CHK(x, gx, n, s)                                          \
    snprintf(nm, sizeof nm, "delta rule (%s) " #gx, names[f]); \
    check_dir(nm, c.x, gx, n, dr_loss, &c, 2e-3f, OP_TOL, s)
        CHK(q, dq, nk, 70);
        CHK(k, dk, nk, 71);
        CHK(v, dv, nv, 72);
        CHK(g, dg, nt, 73);
        CHK(beta, db, nt, 74);
        CHK(S0, dS0, SN, 75);
#undef CHK
        free(dq), free(dk), free(dv), free(dg), free(db), free(dS0);
        dr_free(&c);
    }
}

/* Fast (checkpointed, fused) vs reference backward at lengths around the
 * checkpoint interval, vector and scalar-tail head dims, with/without S0, dS_T. */
static void test_delta_rule_fast_vs_ref(void **st) {
    (void)st;
    struct { int T, H, dk, dv, s0; } cs[] = {{1, 2, 16, 16, 1}, {63, 3, 32, 32, 0}, {64, 2, 64, 64, 1},
                                              {150, 2, 64, 64, 1}, {130, 3, 20, 24, 1}, {200, 4, 16, 16, 0}};
    double worst = 0;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        dr_ctx c;
        dr_make(&c, cs[i].T, cs[i].H, cs[i].dk, cs[i].dv, 80 + i);
        size_t nk = (size_t)c.T * c.H * c.dk, nv = (size_t)c.T * c.H * c.dv, SN = (size_t)c.H * c.dv * c.dk, nt = (size_t)c.T * c.H;
        float *a[6], *b[6];
        size_t ns[6] = {nk, nk, nv, nt, nt, SN};
        for (int j = 0; j < 6; j++) a[j] = zerov(ns[j]), b[j] = zerov(ns[j]);
        const float *S0 = cs[i].s0 ? c.S0 : NULL, *dST = cs[i].s0 ? c.rS : NULL;
        HY_OK(hydra_op_delta_rule_backward_ref(c.T, c.H, c.dk, c.dv, c.q, c.k, c.v, c.g, c.beta, S0, c.rO, dST,
                                               a[0], a[1], a[2], a[3], a[4], a[5]));
        HY_OK(hydra_op_delta_rule_backward(c.T, c.H, c.dk, c.dv, c.q, c.k, c.v, c.g, c.beta, S0, c.rO, dST,
                                           b[0], b[1], b[2], b[3], b[4], b[5]));
        for (int j = 0; j < 6; j++) {
            double e = rel_err(b[j], a[j], ns[j]);
            if (e > worst) worst = e;
            if (!(e <= 1e-5)) fail_msg("delta rule fast vs ref: case %zu output %d rel err %.3g", i, j, e);
            free(a[j]), free(b[j]);
        }
        dr_free(&c);
    }
    print_message("delta rule backward fast vs ref: max rel err %.2e\n", worst);
}


/* ------------------------------------------------------------ model level */
static hydra_config fd_config(const char *pattern, int tied) {
    hydra_config c = hydra_config_default();
    c.d_model = 16;
    c.n_layers = (int)strlen(pattern);
    c.n_heads = 2;
    c.head_dim = 8;
    c.vocab_size = 16;
    c.window = 4;
    c.conv_width = 4;
    c.mlp_multiple = 8;
    c.init_std = 0.2f;
    c.tie_embeddings = tied;
    snprintf(c.pattern, sizeof c.pattern, "%s", pattern);
    return c;
}

static void make_batch(int32_t *in, int32_t *tg, uint8_t *mask, int n, int V, uint64_t seed) {
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        in[i] = (int32_t)(hydra_rng_next(&r) % (uint64_t)V);
        tg[i] = (int32_t)(hydra_rng_next(&r) % (uint64_t)V);
        if (mask) mask[i] = (uint8_t)(hydra_rng_next(&r) % 3 != 0);
    }
}

/* Model-level finite differences, in float32 through the independent inference
 * forward (hydra_model_loss -> hydra_forward). For each parameter tensor a
 * random direction d (entries N(0,1) times the tensor's RMS, floor 0.05) and
 * the central difference (L(p + eps d) - L(p - eps d)) / 2eps vs <grad, d>.
 * Error budget: truncation O(eps^2) — measured 1e-2 relative at eps = 1e-2,
 * 1e-3 at eps = 3e-3 (the eps^2 scaling itself confirms the gradients); and
 * rounding: the loss (~log V ~ 2.8) comes from float32 logits, noise
 * dL ~ 1e-7, which the difference amplifies to dL/eps ~ 3e-5 absolute at
 * eps = 3e-3. Hence: |fd - an| <= 5e-3 |an| + 3e-5 (a wrong term is O(1)
 * relative). Tiny directional derivatives (the a_proj gates, ~2e-4) are thus
 * only loosely checked here; the float64 PyTorch comparison (test_grad_torch)
 * checks every tensor to 1e-4. Plus one direction restricted to the embedding
 * rows of the inputs (the lookup gradient alone when the head is untied). */
#define FD_EPS 3e-3f
#define FD_TOL 5e-3
#define FD_ABS 3e-5
static double g_max_fd_err = 0.0;

static void model_fd(const char *pattern, int tied, uint64_t seed) {
    hydra_config c = fd_config(pattern, tied);
    hydra_model *m;
    HY_OK(hydra_model_create(&c, seed, &m));
    const int B = 2, T = 12, n = B * T;
    int32_t in[24], tg[24];
    uint8_t mask[24];
    make_batch(in, tg, mask, n, c.vocab_size, seed + 100);
    const size_t np = hydra_model_n_params(m);
    float *grads = malloc(np * sizeof(float));
    double loss, loss2;
    int64_t ns;
    HY_OK(hydra_model_loss_grad(m, in, tg, mask, B, T, grads, &loss, &ns));
    HY_OK(hydra_model_loss(m, in, tg, mask, B, T, &loss2, NULL));
    if (!(fabs(loss - loss2) <= 1e-5 * fabs(loss2))) fail_msg("%s: loss_grad %.9g vs loss %.9g", pattern, loss, loss2);
    double worst = 0;
    for (int ti = 0; ti <= hydra_model_n_tensors(m); ti++) {
        hydra_tensor t;
        int rows_only = ti == hydra_model_n_tensors(m);
        HY_OK(hydra_model_tensor(m, rows_only ? 0 : ti, &t));
        const float *g;
        hydra_tensor t0;
        HY_OK(hydra_model_tensor(m, 0, &t0));
        g = grads + (t.data - t0.data);
        double ss = 0;
        for (size_t i = 0; i < t.numel; i++) ss += (double)t.data[i] * t.data[i];
        float scale = fmaxf((float)sqrt(ss / (double)t.numel), 0.05f);
        float *d = randv(t.numel, scale, seed * 1000 + (uint64_t)ti);
        if (rows_only) { /* embedding rows of the input tokens only */
            int used[4096] = {0};
            for (int i = 0; i < n; i++) used[in[i]] = 1;
            for (int r = 0; r < c.vocab_size; r++)
                if (!used[r]) memset(d + (size_t)r * c.d_model, 0, (size_t)c.d_model * sizeof(float));
        }
        float *x0 = malloc(t.numel * sizeof(float));
        memcpy(x0, t.data, t.numel * sizeof(float));
        const float eps = getenv("HYDRA_FD_EPS") ? (float)atof(getenv("HYDRA_FD_EPS")) : FD_EPS;
        double lp, lm;
        for (size_t i = 0; i < t.numel; i++) t.data[i] = x0[i] + eps * d[i];
        HY_OK(hydra_model_loss(m, in, tg, mask, B, T, &lp, NULL));
        for (size_t i = 0; i < t.numel; i++) t.data[i] = x0[i] - eps * d[i];
        HY_OK(hydra_model_loss(m, in, tg, mask, B, T, &lm, NULL));
        memcpy(t.data, x0, t.numel * sizeof(float));
        double fd = (lp - lm) / (2.0 * eps), an = dotd(g, d, t.numel);
        double err = fabs(fd - an) / fmax(fabs(an), fabs(fd));
        int ok = fabs(fd - an) <= FD_TOL * fabs(an) + FD_ABS;
        if (err > worst) worst = err;
        if (getenv("HYDRA_FD_VERBOSE")) print_message("  %-32s fd %.8g an %.8g err %.2e\n", t.name, fd, an, err);
        if (!ok) fail_msg("%s%s: tensor %s%s: finite difference %.8g vs analytic %.8g (rel err %.3g)", pattern,
                          tied ? "" : " untied", t.name, rows_only ? " (input rows)" : "", fd, an, err);
        free(d), free(x0);
    }
    if (worst > g_max_fd_err) g_max_fd_err = worst;
    print_message("model FD %-5s %s: %d tensors + input rows, loss %.4f, max rel err %.2e\n", pattern,
                  tied ? "tied  " : "untied", hydra_model_n_tensors(m), loss, worst);
    free(grads);
    hydra_model_free(m);
}

static void test_model_fd(void **st) {
    (void)st;
    model_fd("DSA", 1, 1);
    model_fd("DS", 0, 2);
    model_fd("ADD", 1, 3);
    print_message("model FD: max rel err %.2e (tol %.0e)\n", g_max_fd_err, FD_TOL);
}

/* Masked positions contribute nothing: changing their targets changes neither
 * the loss nor any gradient (bit for bit); all-masked gives 0 and zeros. */
static void test_model_mask(void **st) {
    (void)st;
    hydra_config c = fd_config("DS", 1);
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 5, &m));
    const int B = 2, T = 10, n = B * T;
    int32_t in[20], tg[20], tg2[20];
    uint8_t mask[20];
    make_batch(in, tg, mask, n, c.vocab_size, 55);
    int64_t want_ns = 0;
    for (int i = 0; i < n; i++) {
        tg2[i] = mask[i] ? tg[i] : (tg[i] + 5) % c.vocab_size;
        want_ns += mask[i];
    }
    tg2[1] = mask[1] ? tg2[1] : -7; /* masked targets are not even validated */
    const size_t np = hydra_model_n_params(m);
    float *g1 = malloc(np * sizeof(float)), *g2 = malloc(np * sizeof(float));
    double l1, l2;
    int64_t ns;
    HY_OK(hydra_model_loss_grad(m, in, tg, mask, B, T, g1, &l1, &ns));
    assert_int_equal(ns, want_ns);
    HY_OK(hydra_model_loss_grad(m, in, tg2, mask, B, T, g2, &l2, NULL));
    assert_true(l1 == l2);
    assert_memory_equal(g1, g2, np * sizeof(float));
    /* mask NULL == all ones */
    uint8_t ones[20];
    memset(ones, 1, sizeof ones);
    HY_OK(hydra_model_loss_grad(m, in, tg, NULL, B, T, g1, &l1, &ns));
    assert_int_equal(ns, n);
    HY_OK(hydra_model_loss_grad(m, in, tg, ones, B, T, g2, &l2, NULL));
    assert_true(l1 == l2);
    assert_memory_equal(g1, g2, np * sizeof(float));
    /* nothing scored */
    memset(ones, 0, sizeof ones);
    HY_OK(hydra_model_loss_grad(m, in, tg, ones, B, T, g1, &l1, &ns));
    assert_true(l1 == 0.0 && ns == 0);
    for (size_t i = 0; i < np; i++) assert_true(g1[i] == 0.0f);
    /* bad ids */
    in[3] = c.vocab_size;
    assert_int_equal(hydra_model_loss_grad(m, in, tg, NULL, B, T, g1, &l1, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_model_loss(m, in, tg, NULL, B, T, &l1, NULL), HYDRA_ERR_ARG);
    free(g1), free(g2);
    hydra_model_free(m);
}

/* Gradients with 1, 2 and 3 threads are bit-identical: every parallel piece
 * (GEMM tiles of 1-thread BLIS, delta-rule / attention backward per (sequence,
 * head), conv per (sequence, channel block), norms by rows, ordered
 * parameter-gradient sums) does the same arithmetic whatever the thread count.
 * Two sizes: a tiny one (T crosses the delta-rule checkpoint interval) and one
 * whose products are large enough for the tiled multi-threaded GEMM path. */
static void check_threads(const char *pattern, int C, int H, int V, int B, int T) {
    hydra_config c = fd_config(pattern, 1);
    c.d_model = C;
    c.n_heads = H;
    c.head_dim = C / H;
    c.vocab_size = V;
    c.window = 16;
    c.init_std = 0.1f;
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 6, &m));
    const int n = B * T;
    int32_t *in = malloc(n * sizeof(int32_t)), *tg = malloc(n * sizeof(int32_t));
    uint8_t *mask = malloc((size_t)n);
    make_batch(in, tg, mask, n, c.vocab_size, 66);
    const size_t np = hydra_model_n_params(m);
    float *g1 = malloc(np * sizeof(float)), *g2 = malloc(np * sizeof(float));
    double l1, l2;
    int nt0 = hydra_get_num_threads();
    hydra_set_num_threads(1);
    HY_OK(hydra_model_loss_grad(m, in, tg, mask, B, T, g1, &l1, NULL));
    for (int nt = 2; nt <= 3; nt++) {
        hydra_set_num_threads(nt);
        HY_OK(hydra_model_loss_grad(m, in, tg, mask, B, T, g2, &l2, NULL));
        assert_true(l1 == l2);
        for (int ti = 0; ti < hydra_model_n_tensors(m); ti++) {
            hydra_tensor t, t0;
            HY_OK(hydra_model_tensor(m, ti, &t));
            HY_OK(hydra_model_tensor(m, 0, &t0));
            size_t off = (size_t)(t.data - t0.data);
            if (memcmp(g1 + off, g2 + off, t.numel * sizeof(float)))
                fail_msg("%s C=%d: tensor %s differs between 1 and %d threads (rel err %.3g)", pattern, C, t.name, nt,
                         rel_err(g2 + off, g1 + off, t.numel));
        }
    }
    hydra_set_num_threads(nt0);
    free(in), free(tg), free(mask), free(g1), free(g2);
    hydra_model_free(m);
}

static void test_model_threads(void **st) {
    (void)st;
    check_threads("DSA", 64, 2, 64, 3, 70);
    check_threads("DDS", 128, 4, 256, 5, 70); /* logits 350x256x128: tiled GEMM */
    print_message("gradients 1 vs 2 vs 3 threads: bit-identical\n");
}

static void test_op_summary(void **st) {
    (void)st;
    print_message("op finite-difference checks: max rel err %.2e (tol %.0e)\n", g_max_op_err, OP_TOL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_ex),
        cmocka_unit_test(test_rmsnorm_backward),
        cmocka_unit_test(test_conv_backward),
        cmocka_unit_test(test_rope_backward),
        cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_delta_rule_fd),
        cmocka_unit_test(test_delta_rule_fast_vs_ref),
        cmocka_unit_test(test_op_summary),
        cmocka_unit_test(test_model_fd),
        cmocka_unit_test(test_model_mask),
        cmocka_unit_test(test_model_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
