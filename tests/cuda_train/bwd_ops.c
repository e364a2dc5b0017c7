/* bwd_ops.c — the backward kernels of the memory-bound ops (train_kernels.cu)
 * against the CPU on the same random inputs, f32, normalised error <= 1e-4:
 * RMSNorm, conv, RoPE and cross-entropy against their hydra_op_* backward;
 * SwiGLU, the embedding, the gated output norm and the DeltaNet input stage
 * against small scalar references written here from the formulas (in
 * double; the last two are first checked against finite differences of a
 * scalar forward). Parameter gradients start from random values and the
 * increment is compared (they are +=). Every op runs twice on the same input
 * and must repeat bit for bit (no float atomics). Odd shapes throughout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "groups.h"
#include "test_util.h"

#define TOL 1e-4

/* ------------------------------------------------------------- helpers */
/* Per-case allocations, freed together by tfree(). */
static void *g_keep[64];
static int g_nkeep;

static float *tnew(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    assert_true(g_nkeep < 64);
    g_keep[g_nkeep++] = p;
    return p;
}
static float *trandn(size_t n, float scale, uint64_t seed) {
    float *p = tnew(n);
    fill_normal(p, n, scale, seed);
    return p;
}
static float *tdup(const float *x, size_t n) {
    float *p = tnew(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}
static void tfree(void) {
    while (g_nkeep) free(g_keep[--g_nkeep]);
}

/* Normalised error of gpu vs ref over n; fails above TOL. */
static double err(const char *what, const float *gpu, const float *ref, size_t n) {
    double e = rel_err(gpu, ref, n);
    if (!(e <= TOL)) fail_msg("%s: rel err %.3g > %.1g", what, e, TOL);
    return e;
}
/* The same for accumulated outputs: compares gpu - base with ref - base. */
static double err_inc(const char *what, const float *gpu, const float *ref, const float *base, size_t n) {
    float *a = tdup(gpu, n), *b = tdup(ref, n);
    for (size_t i = 0; i < n; i++) a[i] -= base[i], b[i] -= base[i];
    return err(what, a, b, n);
}
static void same(const char *what, const void *a, const void *b, size_t bytes) {
    if (memcmp(a, b, bytes)) fail_msg("%s: two runs on the same input differ", what);
}

/* x rounded to bf16 and back (the values a bf16 operand carries). */
static float *tround16(const float *x, size_t n) {
    float *y = tnew(n);
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)hydra_f32_to_bf16(x[i]) << 16;
        memcpy(&y[i], &u, 4);
    }
    return y;
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static double dsilu(double x) { return sigm(x) * (1.0 + x * (1.0 - sigm(x))); }

/* ------------------------------------------------------------- RMSNorm */
static void rmsnorm_case(int M, int C, int acc, uint64_t seed) {
    const size_t n = (size_t)M * C;
    const float eps = 1e-5f;
    float *x = trandn(n, 1.0f, seed), *w = trandn(C, 0.5f, seed + 1), *dy = trandn(n, 1.0f, seed + 2);
    float *dx0 = trandn(n, 1.0f, seed + 3), *dw0 = trandn(C, 1.0f, seed + 4);
    for (int c = 0; c < C; c++) w[c] += 1.0f;
    float *dxc = tdup(dx0, n), *dwc = tdup(dw0, C), *dx1 = tdup(dx0, n), *dw1 = tdup(dw0, C), *dx2 = tdup(dx0, n),
          *dw2 = tdup(dw0, C);
    HY_OK(hydra_op_rmsnorm_backward(M, C, x, w, eps, dy, dxc, dwc, acc));
    HY_OK(hydra_dev_op_rmsnorm_backward(M, C, x, w, eps, dy, dx1, dw1, acc, 0));
    HY_OK(hydra_dev_op_rmsnorm_backward(M, C, x, w, eps, dy, dx2, dw2, acc, 0));
    double ex = acc ? err_inc("dx", dx1, dxc, dx0, n) : err("dx", dx1, dxc, n), ew = err_inc("dw", dw1, dwc, dw0, C);
    same("rmsnorm dx", dx1, dx2, n * 4);
    same("rmsnorm dw", dw1, dw2, (size_t)C * 4);
    /* dy in bf16 (the BF16 trainer's product gradient): the same bits as the f32 kernel on the rounded dy */
    float *dy16 = tround16(dy, n), *dx3 = tdup(dx0, n), *dw3 = tdup(dw0, C), *dx4 = tdup(dx0, n), *dw4 = tdup(dw0, C);
    HY_OK(hydra_dev_op_rmsnorm_backward(M, C, x, w, eps, dy, dx3, dw3, acc, 1));
    HY_OK(hydra_dev_op_rmsnorm_backward(M, C, x, w, eps, dy16, dx4, dw4, acc, 0));
    same("rmsnorm dx (bf16 dy)", dx3, dx4, n * 4);
    same("rmsnorm dw (bf16 dy)", dw3, dw4, (size_t)C * 4);
    printf("  rmsnorm M=%-4d C=%-5d acc=%d: dx %.2e  dw %.2e  (vs hydra_op_rmsnorm_backward; repeat identical)\n", M,
           C, acc, ex, ew);
    tfree();
}

static void test_rmsnorm(void **unused) {
    (void)unused;
    rmsnorm_case(1, 40, 0, 11);
    rmsnorm_case(7, 96, 1, 12);
    rmsnorm_case(65, 768, 0, 13);
    rmsnorm_case(300, 40, 1, 14);
    rmsnorm_case(300, 768, 1, 15);
    rmsnorm_case(33, 3000, 0, 16); /* 16 columns per thread */
    rmsnorm_case(5, 5000, 1, 17);  /* more than 256 threads */
    rmsnorm_case(3, 8192, 1, 18);  /* the widest: 512 threads of 16 columns */
}

/* ------------------------------------------------------------- conv */
static void conv_case(int B, int T, int C, int K, uint64_t seed) {
    const size_t n = (size_t)B * T * C, nw = (size_t)C * K, seq = (size_t)T * C;
    float *x = trandn(n, 1.0f, seed), *w = trandn(nw, 0.5f, seed + 1), *dy = trandn(n, 1.0f, seed + 2);
    float *dw0 = trandn(nw, 1.0f, seed + 3), *dxc = tnew(n), *dwc = tdup(dw0, nw), *dx1 = tnew(n), *dx2 = tnew(n),
          *dw1 = tdup(dw0, nw), *dw2 = tdup(dw0, nw);
    for (int b = 0; b < B; b++) /* the CPU op is one sequence; dw sums over them */
        HY_OK(hydra_op_conv_causal_backward(T, C, K, x + b * seq, w, dy + b * seq, dxc + b * seq, dwc));
    HY_OK(hydra_dev_op_conv_causal_backward(B, T, C, K, x, w, dy, dx1, dw1));
    HY_OK(hydra_dev_op_conv_causal_backward(B, T, C, K, x, w, dy, dx2, dw2));
    double ex = err("dx", dx1, dxc, n), ew = err_inc("dw", dw1, dwc, dw0, nw);
    same("conv dx", dx1, dx2, n * 4);
    same("conv dw", dw1, dw2, nw * 4);
    if (K <= 4 && C % 4 == 0) { /* the 4-channel walk (conv_bwd4_k) against the shared-memory kernel: the same bits */
        float *dx3 = tnew(n), *dw3 = tdup(dw0, nw);
        setenv("HYDRA_CUDA_CONV_BWD4", "0", 1);
        hydra_status st = hydra_dev_op_conv_causal_backward(B, T, C, K, x, w, dy, dx3, dw3);
        unsetenv("HYDRA_CUDA_CONV_BWD4");
        HY_OK(st);
        if (memcmp(dx1, dx3, n * 4) || memcmp(dw1, dw3, nw * 4))
            fail_msg("conv B=%d T=%d C=%d K=%d: conv_bwd4_k and conv_bwd_k differ", B, T, C, K);
    }
    printf("  conv B=%d T=%-4d C=%-4d K=%-2d: dx %.2e  dw %.2e  (vs hydra_op_conv_causal_backward per sequence; repeat "
           "identical)\n",
           B, T, C, K, ex, ew);
    tfree();
}

static void test_conv(void **unused) {
    (void)unused;
    conv_case(1, 1, 40, 4, 21);
    conv_case(2, 7, 96, 4, 22);
    conv_case(3, 65, 40, 4, 23);  /* row chunks of 64 span sequences */
    conv_case(1, 300, 96, 4, 24);
    conv_case(2, 5, 40, 7, 25);   /* K > T */
    conv_case(4, 130, 768, 4, 26);
    conv_case(1, 70, 33, 64, 27); /* the widest conv */
    conv_case(2, 200, 36, 3, 28); /* K 3 of the 4-channel walk; C 36: a part-full block */
}

/* ------------------------------------------------------------- RoPE */
static void rope_case(int B, int T, int H, int d, uint64_t seed) {
    const size_t n = (size_t)B * T * H * d, seq = (size_t)T * H * d;
    float *g = trandn(n, 1.0f, seed), *c = tdup(g, n), *g1 = tdup(g, n), *g2 = tdup(g, n);
    for (int b = 0; b < B; b++) HY_OK(hydra_op_rope_backward(T, H, d, 0, 10000.0, c + b * seq));
    HY_OK(hydra_dev_op_rope_backward(B, T, H, d, 10000.0, g1));
    HY_OK(hydra_dev_op_rope_backward(B, T, H, d, 10000.0, g2));
    double e = err("dx", g1, c, n);
    same("rope dx", g1, g2, n * 4);
    printf("  rope B=%d T=%-4d H=%-2d d=%-3d: dx %.2e  (vs hydra_op_rope_backward per sequence; repeat identical)\n", B,
           T, H, d, e);
    tfree();
}

static void test_rope(void **unused) {
    (void)unused;
    rope_case(1, 1, 3, 32, 31);
    rope_case(2, 7, 3, 32, 32);
    rope_case(3, 65, 12, 64, 33);
    rope_case(1, 300, 3, 64, 34);
    rope_case(2, 9, 2, 6, 35);
}

/* ------------------------------------------------------------- SwiGLU */
static void swiglu_case(int M, int F, uint64_t seed) {
    const size_t n = (size_t)M * F;
    float *gu = trandn(2 * n, 2.0f, seed), *da = trandn(n, 1.0f, seed + 1), *ref = tnew(2 * n), *g1 = tnew(2 * n),
          *g2 = tnew(2 * n);
    for (size_t r = 0; r < (size_t)M; r++) /* act = SiLU(g) u: dg = da u SiLU'(g), du = da SiLU(g) */
        for (int i = 0; i < F; i++) {
            double g = gu[r * 2 * F + i], u = gu[r * 2 * F + F + i], a = da[r * F + i];
            ref[r * 2 * F + i] = (float)(a * u * dsilu(g));
            ref[r * 2 * F + F + i] = (float)(a * g * sigm(g));
        }
    HY_OK(hydra_dev_op_swiglu_backward(M, F, gu, da, g1, 0));
    HY_OK(hydra_dev_op_swiglu_backward(M, F, gu, da, g2, 0));
    double e = err("dgu", g1, ref, 2 * n);
    same("swiglu dgu", g1, g2, 2 * n * 4);
    /* gate|up and dact in bf16 (the BF16 trainer's): the f32 kernel's bits on the rounded inputs */
    float *g3 = tnew(2 * n), *g4 = tnew(2 * n);
    HY_OK(hydra_dev_op_swiglu_backward(M, F, gu, da, g3, 1));
    HY_OK(hydra_dev_op_swiglu_backward(M, F, tround16(gu, 2 * n), tround16(da, n), g4, 0));
    same("swiglu dgu (bf16 inputs)", g3, g4, 2 * n * 4);
    printf("  swiglu M=%-4d F=%-5d: dgu %.2e  (vs scalar reference; repeat identical)\n", M, F, e);
    tfree();
}

static void test_swiglu(void **unused) {
    (void)unused;
    swiglu_case(1, 40, 41);
    swiglu_case(7, 96, 42);
    swiglu_case(65, 768, 43);
    swiglu_case(300, 2048, 44);
}

/* ------------------------------------------------------------- embedding */
static void embed_case(int BT, int V, int C, int skew, uint64_t seed) {
    const size_t n = (size_t)BT * C, nE = (size_t)V * C;
    int32_t *tok = random_tokens((size_t)BT, V, seed);
    if (skew) /* most rows on one token: the longest CSR list */
        for (int r = 0; r < BT; r++)
            if (r % 10) tok[r] = 3;
    float *dx = trandn(n, 1.0f, seed + 1), *E0 = trandn(nE, 1.0f, seed + 2), *ref = tdup(E0, nE), *g1 = tdup(E0, nE),
          *g2 = tdup(E0, nE);
    for (int r = 0; r < BT; r++) /* rows added at their tokens in row order (train.c's loop) */
        for (int c = 0; c < C; c++) ref[(size_t)tok[r] * C + c] += dx[(size_t)r * C + c];
    HY_OK(hydra_dev_op_embed_backward(BT, V, C, tok, dx, g1));
    HY_OK(hydra_dev_op_embed_backward(BT, V, C, tok, dx, g2));
    double e = err_inc("dE", g1, ref, E0, nE);
    same("embed dE", g1, g2, nE * 4);
    printf("  embed BT=%-4d V=%-3d C=%-3d%s: dE %.2e  (vs row-order sum; repeat identical)\n", BT, V, C,
           skew ? " skewed" : "", e);
    free(tok);
    tfree();
}

static void test_embed(void **unused) {
    (void)unused;
    embed_case(1, 50, 40, 0, 51);
    embed_case(7, 50, 96, 0, 52);
    embed_case(300, 50, 768, 0, 53);
    embed_case(300, 256, 40, 0, 54);
    embed_case(2000, 256, 96, 1, 55);
}

/* ------------------------------------------------------------- cross-entropy */
static void xent_case(int M, int V, int masked, uint64_t seed) {
    const size_t n = (size_t)M * V;
    float *lg = trandn(n, 3.0f, seed), *ref = tnew(n), *g1 = tnew(n), *g2 = tdup(lg, n);
    int32_t *tg = random_tokens((size_t)M, V, seed + 1);
    uint8_t *mask = malloc((size_t)M + 1);
    int scored = 0;
    for (int r = 0; r < M; r++) scored += (mask[r] = masked == 2 ? 0 : !masked || r % 4 != 1);
    const float scale = scored ? 1.0f / (float)scored : 1.0f;
    double lc, l1, l2;
    uint8_t *mk = masked ? mask : NULL;
    HY_OK(hydra_op_cross_entropy(M, V, lg, tg, mk, scale, &lc, ref));
    HY_OK(hydra_dev_op_cross_entropy(M, V, lg, tg, mk, scale, &l1, g1));
    HY_OK(hydra_dev_op_cross_entropy(M, V, g2, tg, mk, scale, &l2, g2)); /* in place, as the model calls it */
    double e = err("dlogits", g1, ref, n), el = fabs(l1 - lc) / (fabs(lc) > 1e-300 ? fabs(lc) : 1.0);
    if (!(el <= 1e-9)) fail_msg("loss sum %.17g vs CPU %.17g: rel err %.3g > 1e-9", l1, lc, el);
    same("xent dlogits", g1, g2, n * 4);
    same("xent loss", &l1, &l2, sizeof l1);
    printf("  xent M=%-4d V=%-3d mask=%s (%d scored): dlogits %.2e  loss %.2e  (vs hydra_op_cross_entropy; repeat "
           "identical)\n",
           M, V, masked == 2 ? "none set" : masked ? "some 0" : "NULL", scored, e, el);
    free(tg);
    free(mask);
    tfree();
}

static void test_cross_entropy(void **unused) {
    (void)unused;
    xent_case(1, 50, 0, 61);
    xent_case(7, 256, 1, 62);
    xent_case(65, 50, 1, 63);
    xent_case(300, 256, 1, 64);
    xent_case(300, 256, 0, 65);
    xent_case(7, 50, 2, 66);
}

/* ------------------------------------------------------------- gated output norm */
/* y = o rr w SiLU(z), rr = (mean(o^2) + eps)^-1/2 per (row, head):
 * dz = dy o rr w SiLU'(z); dw += dy o rr SiLU(z);
 * dO_j = rr dn_j - rr^3 o_j (dn . o) / d, dn = dy w SiLU(z). Double throughout. */
static void gnorm_ref(int BT, int H, int d, const float *o, const float *z, const float *w, float eps, const float *dy,
                      double *dz, double *dO, double *dw) {
    for (size_t it = 0; it < (size_t)BT * H; it++) {
        const float *oh = o + it * d, *zh = z + it * d, *gy = dy + it * d;
        double ms = 0, S = 0;
        for (int i = 0; i < d; i++) ms += (double)oh[i] * oh[i] / d;
        const double rr = 1.0 / sqrt(ms + eps);
        for (int i = 0; i < d; i++) S += gy[i] * (double)w[i] * zh[i] * sigm(zh[i]) * oh[i];
        for (int i = 0; i < d; i++) {
            const double sz = zh[i] * sigm(zh[i]);
            dz[it * d + i] = gy[i] * (double)oh[i] * rr * w[i] * dsilu(zh[i]);
            dw[i] += gy[i] * (double)oh[i] * rr * sz;
            dO[it * d + i] = rr * gy[i] * w[i] * sz - rr * rr * rr * oh[i] * S / d;
        }
    }
}

/* The scalar forward, L = sum dy . y, in double (for the finite differences). */
static double gnorm_loss(int BT, int H, int d, const double *o, const double *z, const double *w, double eps,
                         const float *dy) {
    double L = 0;
    for (size_t it = 0; it < (size_t)BT * H; it++) {
        double ms = 0;
        for (int i = 0; i < d; i++) ms += o[it * d + i] * o[it * d + i] / d;
        for (int i = 0; i < d; i++)
            L += dy[it * d + i] * o[it * d + i] / sqrt(ms + eps) * w[i] * z[it * d + i] * sigm(z[it * d + i]);
    }
    return L;
}

static double *f2d(const float *x, size_t n) {
    double *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* Central difference of loss at x[i] against g; returns max |fd - g| / (|g| + 1e-3). */
static double fd_check(double (*loss)(void *), void *ctx, double *x, size_t n, const double *g) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double h = 1e-5, x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        double e = fabs((lp - lm) / (2 * h) - g[i]) / (fabs(g[i]) + 1e-3);
        worst = e > worst ? e : worst;
    }
    return worst;
}

typedef struct {
    int BT, H, d;
    double *o, *z, *w;
    const float *dy;
} gnorm_ctx;
static double gnorm_ctx_loss(void *p) {
    gnorm_ctx *c = p;
    return gnorm_loss(c->BT, c->H, c->d, c->o, c->z, c->w, 1e-5, c->dy);
}

static void test_gnorm_reference(void **unused) { /* CPU only: the reference against finite differences */
    (void)unused;
    const int BT = 2, H = 2, d = 5;
    const size_t n = (size_t)BT * H * d;
    float *o = trandn(n, 1.0f, 71), *z = trandn(n, 1.0f, 72), *w = trandn(d, 1.0f, 73), *dy = trandn(n, 1.0f, 74);
    double dz[20], dO[20], dw[5] = {0};
    gnorm_ref(BT, H, d, o, z, w, 1e-5f, dy, dz, dO, dw);
    gnorm_ctx c = {BT, H, d, f2d(o, n), f2d(z, n), f2d(w, d), dy};
    double e = fd_check(gnorm_ctx_loss, &c, c.o, n, dO);
    e = fmax(e, fd_check(gnorm_ctx_loss, &c, c.z, n, dz));
    e = fmax(e, fd_check(gnorm_ctx_loss, &c, c.w, d, dw));
    free(c.o), free(c.z), free(c.w);
    tfree();
    printf("  gated-norm reference vs finite differences: worst %.2e\n", e);
    if (!(e <= 1e-6)) fail_msg("gated-norm reference disagrees with finite differences: %.3g", e);
}

static float *d2f(const double *x, size_t n) {
    float *y = tnew(n);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static void gnorm_case(int BT, int H, int d, uint64_t seed) {
    const size_t n = (size_t)BT * H * d;
    const float eps = 1e-5f;
    float *o = trandn(n, 1.0f, seed), *z = trandn(n, 1.5f, seed + 1), *w = trandn(d, 0.5f, seed + 2),
          *dy = trandn(n, 1.0f, seed + 3), *dw0 = trandn(d, 1.0f, seed + 4);
    double *rz = calloc(n, 8), *rO = calloc(n, 8), *rw = calloc(d, 8);
    gnorm_ref(BT, H, d, o, z, w, eps, dy, rz, rO, rw);
    float *dz1 = tnew(n), *dO1 = tnew(n), *dw1 = tdup(dw0, d), *dz2 = tnew(n), *dO2 = tnew(n), *dw2 = tdup(dw0, d);
    float *fz = d2f(rz, n), *fO = d2f(rO, n), *fw = tdup(dw0, d);
    for (int i = 0; i < d; i++) fw[i] += (float)rw[i];
    free(rz), free(rO), free(rw);
    HY_OK(hydra_dev_op_gated_onorm_backward(BT, H, d, o, z, w, eps, dy, dz1, dO1, dw1));
    HY_OK(hydra_dev_op_gated_onorm_backward(BT, H, d, o, z, w, eps, dy, dz2, dO2, dw2));
    double ez = err("dz", dz1, fz, n), eo = err("dO", dO1, fO, n), ew = err_inc("dw", dw1, fw, dw0, d);
    same("gnorm dz", dz1, dz2, n * 4);
    same("gnorm dO", dO1, dO2, n * 4);
    same("gnorm dw", dw1, dw2, (size_t)d * 4);
    printf("  gated-norm BT=%-4d H=%-2d d=%-3d: dz %.2e  dO %.2e  dw %.2e  (vs scalar reference; repeat identical)\n",
           BT, H, d, ez, eo, ew);
    tfree();
}

static void test_gated_onorm(void **unused) {
    (void)unused;
    gnorm_case(1, 3, 32, 81);
    gnorm_case(7, 3, 64, 82);
    gnorm_case(65, 12, 64, 83);
    gnorm_case(300, 3, 32, 84);
    gnorm_case(9, 2, 40, 85);
    gnorm_case(5, 2, 256, 86);
}

/* ------------------------------------------------------------- DeltaNet input stage */
/* Gradients of L = dq.q + dk.k + dv.v + dg.g + dbeta.beta through
 * q = SiLU(c_q) / |SiLU(c_q)|_eps * d^-1/2, k likewise (scale 1), v = SiLU(c_v),
 * g = -exp(A) softplus(a + dt), beta = sigmoid(b), given the conv outputs
 * c [BT, 3Hd] and the pre-activations ab [BT, 2H] (a | b): dc, dab written,
 * dA, ddt [H] += . With s = SiLU(c), rn = (|s|^2 + eps)^-1/2:
 * ds_i = scale (rn dy_i - rn^3 s_i (s . dy)); dc = ds SiLU'(c). */
typedef struct {
    int BT, H, d;
    double l2_eps;
    const float *dq, *dk, *dv, *dg, *db;
} prep_io;

static void prep_ref(const prep_io *p, const double *c, const double *ab, const double *A, const double *dt,
                     double *dc, double *dab, double *dA, double *ddt) {
    const int H = p->H, d = p->d;
    const size_t Hd = (size_t)H * d;
    for (size_t r = 0; r < (size_t)p->BT; r++) {
        for (int part = 0; part < 3; part++)
            for (int h = 0; h < H; h++) {
                const double *ch = c + r * 3 * Hd + part * Hd + (size_t)h * d;
                const float *gy = (part == 0 ? p->dq : part == 1 ? p->dk : p->dv) + r * Hd + (size_t)h * d;
                double *dch = dc + r * 3 * Hd + part * Hd + (size_t)h * d;
                double ss = 0, D = 0;
                for (int i = 0; i < d; i++) {
                    const double s = ch[i] * sigm(ch[i]);
                    ss += s * s;
                    D += s * gy[i];
                }
                const double rn = 1.0 / sqrt(ss + p->l2_eps), scale = part == 0 ? 1.0 / sqrt((double)d) : 1.0;
                for (int i = 0; i < d; i++) {
                    const double s = ch[i] * sigm(ch[i]);
                    const double ds = part == 2 ? gy[i] : scale * (rn * gy[i] - rn * rn * rn * s * D);
                    dch[i] = ds * dsilu(ch[i]);
                }
            }
        for (int h = 0; h < H; h++) {
            const double a = ab[r * 2 * H + h], b = ab[r * 2 * H + H + h], gdg = p->dg[r * H + h];
            const double sp = log1p(exp(a + dt[h])), da = gdg * -exp(A[h]) * sigm(a + dt[h]);
            dab[r * 2 * H + h] = da;
            dab[r * 2 * H + H + h] = p->db[r * H + h] * sigm(b) * (1.0 - sigm(b));
            dA[h] += gdg * -exp(A[h]) * sp;
            ddt[h] += da;
        }
    }
}

/* The scalar forward, L as above, in double (for the finite differences). */
typedef struct {
    const prep_io *p;
    double *c, *ab, *A, *dt;
} prep_ctx;
static double prep_loss(void *pc) {
    const prep_ctx *x = pc;
    const prep_io *p = x->p;
    const int H = p->H, d = p->d;
    const size_t Hd = (size_t)H * d;
    double L = 0;
    for (size_t r = 0; r < (size_t)p->BT; r++) {
        for (int part = 0; part < 3; part++)
            for (int h = 0; h < H; h++) {
                const double *ch = x->c + r * 3 * Hd + part * Hd + (size_t)h * d;
                const float *gy = (part == 0 ? p->dq : part == 1 ? p->dk : p->dv) + r * Hd + (size_t)h * d;
                double ss = 0;
                for (int i = 0; i < d; i++) ss += pow(ch[i] * sigm(ch[i]), 2);
                const double f = part == 2 ? 1.0 : (part == 0 ? 1.0 / sqrt((double)d) : 1.0) / sqrt(ss + p->l2_eps);
                for (int i = 0; i < d; i++) L += gy[i] * ch[i] * sigm(ch[i]) * f;
            }
        for (int h = 0; h < H; h++) {
            const double a = x->ab[r * 2 * H + h], b = x->ab[r * 2 * H + H + h];
            L += p->dg[r * H + h] * -exp(x->A[h]) * log1p(exp(a + x->dt[h])) + p->db[r * H + h] * sigm(b);
        }
    }
    return L;
}

static void test_prep_reference(void **unused) { /* CPU only: the reference against finite differences */
    (void)unused;
    const int BT = 3, H = 2, d = 3;
    const size_t nc = (size_t)BT * 3 * H * d, nq = (size_t)BT * H * d, nab = (size_t)BT * 2 * H;
    prep_io p = {BT, H, d, 1e-6, trandn(nq, 1, 91), trandn(nq, 1, 92), trandn(nq, 1, 93), trandn(BT * H, 1, 94),
                 trandn(BT * H, 1, 95)};
    double *c = f2d(trandn(nc, 1, 96), nc), *ab = f2d(trandn(nab, 1, 97), nab), A[2] = {0.3, 1.2}, dt[2] = {-2, 0.5};
    double *dc = calloc(nc, 8), *dab = calloc(nab, 8), dA[2] = {0}, ddt[2] = {0};
    prep_ref(&p, c, ab, A, dt, dc, dab, dA, ddt);
    prep_ctx x = {&p, c, ab, A, dt};
    double e = fd_check(prep_loss, &x, c, nc, dc);
    e = fmax(e, fd_check(prep_loss, &x, ab, nab, dab));
    e = fmax(e, fd_check(prep_loss, &x, A, 2, dA));
    e = fmax(e, fd_check(prep_loss, &x, dt, 2, ddt));
    free(c), free(ab), free(dc), free(dab);
    tfree();
    printf("  input-stage reference vs finite differences: worst %.2e\n", e);
    if (!(e <= 1e-6)) fail_msg("input-stage reference disagrees with finite differences: %.3g", e);
}

/* GPU hk_gdn_prep_bwd (through its host wrapper) against prep_ref on the
 * conv recomputed here (zero tails) from proj [BT, P], P = 4Hd + 2H. */
static void prep_case(int B, int T, int H, int d, int K, uint64_t seed) {
    const int BT = B * T;
    const size_t Hd = (size_t)H * d, P = 4 * Hd + 2 * (size_t)H, nq = BT * Hd, ng = (size_t)BT * H;
    const size_t nc = 3 * nq, nab = 2 * ng;
    const float l2eps = 1e-6f;
    float *proj = trandn(BT * P, 1.0f, seed), *cw = trandn(3 * Hd * K, 0.5f, seed + 1), *A = tnew(H), *dt = tnew(H);
    float *g = tnew(ng), *beta = tnew(ng), *dp0 = trandn(BT * P, 1.0f, seed + 2);
    float *dA0 = trandn(H, 1.0f, seed + 3), *ddt0 = trandn(H, 1.0f, seed + 4);
    prep_io p = {BT, H, d, l2eps, trandn(nq, 1, seed + 5), trandn(nq, 1, seed + 6), trandn(nq, 1, seed + 7),
                 trandn(ng, 1, seed + 8), trandn(ng, 1, seed + 9)};
    double *c = calloc(nc, 8), *ab = calloc(nab, 8), *dc = calloc(nc, 8), *dab = calloc(nab, 8);
    double *Ad = calloc(H, 8), *dtd = calloc(H, 8), *rA = calloc(H, 8), *rdt = calloc(H, 8);
    for (int h = 0; h < H; h++) {
        A[h] = logf(1.0f + 15.0f * (float)h / (float)H), dt[h] = -3.0f + 0.5f * (float)h;
        Ad[h] = A[h], dtd[h] = dt[h];
    }
    for (int r = 0; r < BT; r++) {
        const int t = r % T;
        for (size_t ch = 0; ch < 3 * Hd; ch++) /* c_t = sum_j w[j] x_{t-K+1+j}, zeros before t = 0 */
            for (int j = 0; j < K; j++)
                if (t - K + 1 + j >= 0) c[r * 3 * Hd + ch] += (double)cw[ch * K + j] * proj[(r - K + 1 + j) * P + ch];
        for (int h = 0; h < H; h++) {
            const float a = proj[r * P + 4 * Hd + h], b = proj[r * P + 4 * Hd + H + h];
            ab[r * 2 * H + h] = a, ab[r * 2 * H + H + h] = b;
            g[r * H + h] = (float)(-exp(A[h]) * log1p(exp((double)a + dt[h])));
            beta[r * H + h] = (float)sigm(b);
        }
    }
    prep_ref(&p, c, ab, Ad, dtd, dc, dab, rA, rdt);
    float *fc = d2f(dc, nc), *fab = d2f(dab, nab), *fA = tdup(dA0, H), *fdt = tdup(ddt0, H);
    for (int h = 0; h < H; h++) fA[h] += (float)rA[h], fdt[h] += (float)rdt[h];
    free(c), free(ab), free(dc), free(dab), free(Ad), free(dtd), free(rA), free(rdt);
    float *out[2][4], *gab[2];
    for (int k = 0; k < 2; k++) {
        float *dconv = tnew(nc), *dp = tdup(dp0, BT * P), *dA = tdup(dA0, H), *ddt = tdup(ddt0, H);
        HY_OK(hydra_dev_op_gdn_prep_backward(B, T, H, d, K, proj, cw, A, dt, g, beta, l2eps, p.dq, p.dk, p.dv, p.dg,
                                             p.db, dconv, dp, dA, ddt));
        out[k][0] = dconv, out[k][1] = dp, out[k][2] = dA, out[k][3] = ddt;
        gab[k] = tnew(nab); /* the a | b columns; the rest of dproj must be left as given */
        for (size_t r = 0; r < (size_t)BT; r++) {
            memcpy(gab[k] + r * 2 * H, dp + r * P + 4 * Hd, 2 * H * sizeof(float));
            if (memcmp(dp + r * P, dp0 + r * P, 4 * Hd * sizeof(float)))
                fail_msg("gdn_prep_backward wrote dproj columns other than a | b (row %zu)", r);
        }
    }
    double ec = err("dconv", out[0][0], fc, nc), eab = err("da|db", gab[0], fab, nab);
    double eA = err_inc("dA_log", out[0][2], fA, dA0, H), edt = err_inc("ddt_bias", out[0][3], fdt, ddt0, H);
    same("prep dconv", out[0][0], out[1][0], nc * 4);
    same("prep dproj", out[0][1], out[1][1], BT * P * 4);
    same("prep dA_log", out[0][2], out[1][2], (size_t)H * 4);
    same("prep ddt_bias", out[0][3], out[1][3], (size_t)H * 4);
    printf("  input-stage B=%d T=%-4d H=%-2d d=%-2d K=%d: dconv %.2e  da|db %.2e  dA_log %.2e  ddt_bias %.2e  (vs scalar "
           "reference; repeat identical)\n",
           B, T, H, d, K, ec, eab, eA, edt);
    tfree();
}

static void test_gdn_prep(void **unused) {
    (void)unused;
    prep_case(1, 1, 3, 32, 4, 101);
    prep_case(2, 7, 3, 32, 4, 102);
    prep_case(3, 65, 2, 64, 4, 103);
    prep_case(1, 300, 3, 64, 4, 104);
    prep_case(2, 5, 2, 40, 7, 105);
    prep_case(2, 70, 12, 64, 4, 106);
}

int cuda_train_bwd_ops_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gnorm_reference), cmocka_unit_test(test_prep_reference), cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_conv),            cmocka_unit_test(test_rope),           cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_embed),           cmocka_unit_test(test_cross_entropy),  cmocka_unit_test(test_gated_onorm),
        cmocka_unit_test(test_gdn_prep),
    };
    return cmocka_run_group_tests_name("bwd_ops", tests, NULL, NULL);
}
