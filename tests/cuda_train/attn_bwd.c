/* attn_bwd.c — the GPU attention backward (hk_attention_bwd) against the CPU
 * backward (hydra_op_attention_backward, one call per sequence) on random
 * inputs, o from the CPU forward; and two GPU runs bit-identical.
 * The bf16 tensor-core attention (hk_attention_tc_fwd / _bwd) against the
 * CPU forward and backward on the same kind of inputs, within TC_FWD_TOL and
 * TC_BWD_TOL (see there), and two runs bit-identical.
 *
 * HYDRA_BENCH_ATTN=1 also times the f32 and the tensor-core kernels at the
 * training shape (CUDA events, median of 5 after a warm-up): a measurement
 * printed, never a pass/fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "hydralm_ops.h"
#include "test_util.h"
#include "groups.h"

#define TOL 1e-4
/* Tensor cores: q, k, v, P, dO and dS are rounded to bf16 (2^-9 relative
 * each) before their products, which sum in f32 over d (scores) or over up
 * to W keys / queries. A score's error is ~2^-9 |q||k| / sqrt(d) (about 3e-3
 * of the score's spread here), P inherits it, and the W-term sums of P v
 * average the independent roundings rather than add them, so o stays within
 * a few 2^-9: the forward gets the bound of the delta rule's tensor-core
 * forward, 1e-2 (tests/test_cuda.c). The backward chains one rounding more
 * (dS = P (dP - D) is rounded again for dQ and dK) and dP - D cancels, so
 * it gets the delta rule backward's 2e-2 (tests/cuda_train/delta_bwd.c). A
 * wrong index or mask gives O(1) errors. Measured on an H100 over these
 * shapes: o <= 3.8e-3, dq, dk <= 6.5e-3 (T = 7), dv <= 4.1e-3. */
#define TC_FWD_TOL 1e-2
#define TC_BWD_TOL 2e-2

/* rel_err, except where the reference is ~0 (T = 1: dq = dk = 0 up to
 * rounding, which rel_err would divide by): then normalised by an rms of 0.01,
 * far below the gradients' typical rms (~0.5) in every other case. */
static double grad_err(const float *a, const float *ref, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    if (sqrt(ss / (double)n) >= 1e-2) return rel_err(a, ref, n);
    double num = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    return isnan(num) ? INFINITY : sqrt(num / (double)n) / 1e-2;
}

typedef struct {
    float *q, *k, *v, *o, *g; /* inputs [B*T, H, d]; g = dO */
    size_t n;
} attn_in;

static attn_in make_inputs(int B, int T, int H, int d, int window, uint64_t seed) {
    attn_in x;
    x.n = (size_t)B * T * H * d;
    x.q = malloc(x.n * 4), x.k = malloc(x.n * 4), x.v = malloc(x.n * 4), x.o = malloc(x.n * 4), x.g = malloc(x.n * 4);
    assert_non_null(x.q), assert_non_null(x.k), assert_non_null(x.v), assert_non_null(x.o), assert_non_null(x.g);
    fill_normal(x.q, x.n, 1.5f, seed); /* a little sharper than uniform attention */
    fill_normal(x.k, x.n, 1.0f, seed + 1);
    fill_normal(x.v, x.n, 1.0f, seed + 2);
    fill_normal(x.g, x.n, 1.0f, seed + 3);
    const size_t seq = (size_t)T * H * d;
    for (int b = 0; b < B; b++)
        HY_OK(hydra_op_attention(T, H, d, 0, window, x.q + b * seq, x.k + b * seq, x.v + b * seq, NULL, NULL,
                                 x.o + b * seq));
    return x;
}

static void free_inputs(attn_in *x) { free(x->q), free(x->k), free(x->v), free(x->o), free(x->g); }

/* worst errors seen per T, printed once per T */
static double worst[3];

/* dq, dk, dv [3 n] of the CPU backward, one call per sequence */
static float *cpu_backward(const attn_in *x, int B, int T, int H, int d, int window) {
    float *cpu = malloc(3 * x->n * 4);
    assert_non_null(cpu);
    const size_t seq = (size_t)T * H * d;
    for (int b = 0; b < B; b++) {
        const size_t o = b * seq;
        HY_OK(hydra_op_attention_backward(T, H, d, window, x->q + o, x->k + o, x->v + o, x->o + o, x->g + o, cpu + o,
                                          cpu + x->n + o, cpu + 2 * x->n + o));
    }
    return cpu;
}

/* the three gradients' errors into worst_g[0..2]; fails above tol */
static void check_grads(const char *what, const float *gpu, const float *cpu, size_t n, double tol, double *worst_g,
                        int B, int T, int H, int d, int window) {
    static const char *names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        double e = grad_err(gpu + i * n, cpu + i * n, n);
        if (!(e <= tol))
            fail_msg("%s B=%d T=%d H=%d d=%d W=%d: %s err %.3g > %.0e", what, B, T, H, d, window, names[i], e, tol);
        if (e > worst_g[i]) worst_g[i] = e;
    }
}

static void check_case(int B, int T, int H, int d, int window, uint64_t seed) {
    attn_in x = make_inputs(B, T, H, d, window, seed);
    float *cpu = cpu_backward(&x, B, T, H, d, window), *gpu = malloc(3 * x.n * 4);
    assert_non_null(gpu);
    HY_OK(hydra_dev_op_attention_backward(B, T, H, d, window, x.q, x.k, x.v, x.o, x.g, gpu, gpu + x.n,
                                          gpu + 2 * x.n));
    check_grads("attention backward", gpu, cpu, x.n, TOL, worst, B, T, H, d, window);
    free(cpu), free(gpu);
    free_inputs(&x);
}

static void test_vs_cpu(void **unused) {
    const int Ts[] = {1, 7, 63, 64, 65, 300};
    uint64_t seed = 900;
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
        const int T = Ts[a];
        /* windows: full, shorter than most T, not a tile multiple, longer than T */
        const int windows[] = {0, 16, 50, T + 5};
        int cases = 0;
        worst[0] = worst[1] = worst[2] = 0;
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++)
            for (int H = 1; H <= 3; H += 2)
                for (int d = 32; d <= 64; d *= 2)
                    for (int B = 1; B <= 2; B++, cases++) check_case(B, T, H, d, windows[w], seed += 11);
        if (T == 300) /* d = 128 once per window */
            for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++, cases++)
                check_case(2, T, 2, 128, windows[w], seed += 11);
        printf("attn_bwd vs CPU: T=%3d, %2d cases: worst err dq %.2e dk %.2e dv %.2e (tol %.0e)\n", T, cases,
               worst[0], worst[1], worst[2], TOL);
    }
}

/* Two runs on the same inputs give the same bits (no atomics, fixed order). */
static void test_deterministic(void **unused) {
    const int B = 2, T = 300, H = 3, d = 64;
    const int windows[] = {50, 0};
    for (int w = 0; w < 2; w++) {
        attn_in x = make_inputs(B, T, H, d, windows[w], 77 + w);
        float *r1 = malloc(3 * x.n * 4), *r2 = malloc(3 * x.n * 4);
        assert_non_null(r1), assert_non_null(r2);
        HY_OK(hydra_dev_op_attention_backward(B, T, H, d, windows[w], x.q, x.k, x.v, x.o, x.g, r1, r1 + x.n,
                                              r1 + 2 * x.n));
        HY_OK(hydra_dev_op_attention_backward(B, T, H, d, windows[w], x.q, x.k, x.v, x.o, x.g, r2, r2 + x.n,
                                              r2 + 2 * x.n));
        if (memcmp(r1, r2, 3 * x.n * 4) != 0) fail_msg("attention backward W=%d: two runs differ", windows[w]);
        printf("attn_bwd determinism: B=%d T=%d H=%d d=%d W=%d: two runs bit-identical\n", B, T, H, d, windows[w]);
        free(r1), free(r2);
        free_inputs(&x);
    }
}

/* ---- the bf16 tensor-core attention */

/* worst errors per T: o, then dq, dk, dv */
static double worst_tc[4];

/* o [n] then dq, dk, dv [3 n] from one tensor-core forward + backward */
static float *run_tc(const attn_in *x, int B, int T, int H, int d, int window) {
    float *r = malloc(4 * x->n * 4);
    assert_non_null(r);
    HY_OK(hydra_dev_op_attention_tc(B, T, H, d, window, x->q, x->k, x->v, r, x->g, r + x->n, r + 2 * x->n,
                                    r + 3 * x->n));
    return r;
}

/* The backward runs on the tensor-core forward's o and log-sum-exp (as in
 * training), the CPU backward on the CPU forward's. */
static void check_tc_case(int B, int T, int H, int d, int window, uint64_t seed) {
    attn_in x = make_inputs(B, T, H, d, window, seed);
    float *cpu = cpu_backward(&x, B, T, H, d, window), *r = run_tc(&x, B, T, H, d, window);
    const double eo = rel_err(r, x.o, x.n);
    if (!(eo <= TC_FWD_TOL))
        fail_msg("attention tc forward B=%d T=%d H=%d d=%d W=%d: o err %.3g > %.0e", B, T, H, d, window, eo,
                 TC_FWD_TOL);
    if (eo > worst_tc[0]) worst_tc[0] = eo;
    check_grads("attention tc backward", r + x.n, cpu, x.n, TC_BWD_TOL, worst_tc + 1, B, T, H, d, window);
    free(cpu), free(r);
    free_inputs(&x);
}

static void test_tc_vs_cpu(void **unused) {
    const int Ts[] = {1, 7, 63, 64, 65, 300, 1000};
    uint64_t seed = 4000;
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
        const int T = Ts[a];
        /* full, shorter than a tile, not a tile multiple, the model's, longer than T */
        const int windows[] = {0, 16, 50, 512, T + 5};
        int cases = 0;
        worst_tc[0] = worst_tc[1] = worst_tc[2] = worst_tc[3] = 0;
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++)
            for (int H = 1; H <= 3; H += 2)
                for (int d = 64; d <= 128; d *= 2)
                    for (int B = 1; B <= 2; B++, cases++) check_tc_case(B, T, H, d, windows[w], seed += 11);
        printf("attn tc vs CPU: T=%4d, %2d cases: worst err o %.2e (tol %.0e), dq %.2e dk %.2e dv %.2e (tol %.0e)\n",
               T, cases, worst_tc[0], TC_FWD_TOL, worst_tc[1], worst_tc[2], worst_tc[3], TC_BWD_TOL);
    }
}

static void test_tc_deterministic(void **unused) {
    const int windows[] = {50, 0};
    for (int w = 0; w < 2; w++)
        for (int d = 64; d <= 128; d *= 2) {
            const int B = 2, T = 300, H = 3;
            attn_in x = make_inputs(B, T, H, d, windows[w], 177 + w);
            float *r1 = run_tc(&x, B, T, H, d, windows[w]), *r2 = run_tc(&x, B, T, H, d, windows[w]);
            if (memcmp(r1, r2, 4 * x.n * 4) != 0) fail_msg("attention tc d=%d W=%d: two runs differ", d, windows[w]);
            printf("attn tc determinism: B=%d T=%d H=%d d=%d W=%d: o, dq, dk, dv of two runs bit-identical\n", B, T,
                   H, d, windows[w]);
            free(r1), free(r2);
            free_inputs(&x);
        }
}

/* d other than 64 and 128 is refused, never run on another path */
static void test_tc_refuses_d32(void **unused) {
    float x[64] = {0};
    if (hydra_dev_op_attention_tc(1, 2, 1, 32, 0, x, x, x, x, NULL, NULL, NULL, NULL) == HYDRA_OK)
        fail_msg("attention tc d=32 ran");
}

#if __has_include(<cuda_runtime.h>)
#include "cuda/kernels.h"

typedef struct {
    int B, T, H, d, window;
    float *q, *k, *v, *o, *g, *dq, *dk, *dv;
    int64_t *pos; /* zeros: sequences from position 0 */
    void *scr_f32, *scr_tc;
} bench_buf;

/* which: 0 f32 forward, 1 f32 backward, 2 tc forward, 3 tc backward */
static cudaError_t bench_call(const bench_buf *a, int which) {
    switch (which) {
    case 0:
        return hk_attention(0, a->B, a->T, a->H, a->d, a->window, a->pos, a->q, a->k, a->v, NULL, NULL, a->o, 0);
    case 1:
        return hk_attention_bwd(0, a->B, a->T, a->H, a->d, a->window, a->q, a->k, a->v, a->o, a->g, a->dq, a->dk,
                                a->dv, a->scr_f32);
    case 2: return hk_attention_tc_fwd(0, a->B, a->T, a->H, a->d, a->window, a->q, a->k, a->v, a->o, a->scr_tc);
    default:
        return hk_attention_tc_bwd(0, a->B, a->T, a->H, a->d, a->window, a->q, a->k, a->v, a->o, a->g, a->dq, a->dk,
                                   a->dv, a->scr_tc);
    }
}

static int cmp_ms(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* median of 5 timed calls after one warm-up; -1 on an error */
static float median_ms(const bench_buf *a, int which) {
    cudaEvent_t e0, e1;
    float ms[5];
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaError_t err = cudaSuccess;
    for (int r = -1; r < 5 && err == cudaSuccess; r++) {
        cudaEventRecord(e0, 0);
        err = bench_call(a, which);
        cudaEventRecord(e1, 0);
        if (err == cudaSuccess) err = cudaEventSynchronize(e1);
        if (r >= 0) cudaEventElapsedTime(&ms[r], e0, e1);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (err != cudaSuccess) return -1.0f;
    qsort(ms, 5, sizeof ms[0], cmp_ms);
    return ms[2];
}

static void bench_attn(int B, int T, int H, int d) {
    const size_t n = (size_t)B * T * H * d;
    bench_buf a = {.B = B, .T = T, .H = H, .d = d};
    float **bufs[8] = {&a.q, &a.k, &a.v, &a.o, &a.g, &a.dq, &a.dk, &a.dv};
    int ok = cudaMalloc((void **)&a.pos, B * sizeof(int64_t)) == cudaSuccess &&
             cudaMemset(a.pos, 0, B * sizeof(int64_t)) == cudaSuccess &&
             cudaMalloc(&a.scr_f32, hk_attention_bwd_scratch(B, T, H)) == cudaSuccess &&
             cudaMalloc(&a.scr_tc, hk_attention_tc_scratch(B, T, H)) == cudaSuccess;
    for (int i = 0; i < 8 && ok; i++) { /* all ~ U(-1, 1); o is rewritten by the forwards */
        ok = cudaMalloc((void **)bufs[i], n * 4) == cudaSuccess;
        if (ok) ok = hk_fill_uniform(0, *bufs[i], n, 4321 + i, -1.0f, 1.0f) == cudaSuccess;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    const int windows[] = {512, 0};
    for (int w = 0; w < 2 && ok; w++) {
        a.window = windows[w];
        float t[4];
        for (int i = 0; i < 4; i++) t[i] = median_ms(&a, i);
        printf("    bench %s B=%d T=%d H=%d d=%d W=%d: f32 fwd %.3f ms bwd %.3f ms | tc fwd %.3f ms bwd %.3f ms | "
               "f32/tc fwd %.1fx bwd %.1fx total %.1fx\n",
               prop.name, B, T, H, d, a.window, t[0], t[1], t[2], t[3], t[0] / t[2], t[1] / t[3],
               (t[0] + t[1]) / (t[2] + t[3]));
    }
    if (!ok) printf("    bench attention B=%d T=%d H=%d d=%d: allocation failed\n", B, T, H, d);
    for (int i = 0; i < 8; i++) cudaFree(*bufs[i]);
    cudaFree(a.pos), cudaFree(a.scr_f32), cudaFree(a.scr_tc);
}
static void bench(void) { bench_attn(16, 2048, 12, 64); }
#else
static void bench(void) {}
#endif

int cuda_train_attn_bwd_tests(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vs_cpu), cmocka_unit_test(test_deterministic),
                                       cmocka_unit_test(test_tc_vs_cpu), cmocka_unit_test(test_tc_deterministic),
                                       cmocka_unit_test(test_tc_refuses_d32)};
    int failed = cmocka_run_group_tests_name("attn_bwd", tests, NULL, NULL);
    const char *b = getenv("HYDRA_BENCH_ATTN");
    if (b && *b && *b != '0') bench();
    return failed;
}
