/* attn_bwd.c — the GPU attention backward (hk_attention_bwd) against the CPU
 * backward (hydra_op_attention_backward, one call per sequence) on random
 * inputs, o from the CPU forward; and two GPU runs bit-identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "hydralm_ops.h"
#include "test_util.h"
#include "groups.h"

#define TOL 1e-4

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

static void check_case(int B, int T, int H, int d, int window, uint64_t seed) {
    attn_in x = make_inputs(B, T, H, d, window, seed);
    float *cpu = malloc(3 * x.n * 4), *gpu = malloc(3 * x.n * 4);
    assert_non_null(cpu), assert_non_null(gpu);
    const size_t seq = (size_t)T * H * d;
    for (int b = 0; b < B; b++) {
        const size_t o = b * seq;
        HY_OK(hydra_op_attention_backward(T, H, d, window, x.q + o, x.k + o, x.v + o, x.o + o, x.g + o, cpu + o,
                                          cpu + x.n + o, cpu + 2 * x.n + o));
    }
    HY_OK(hydra_dev_op_attention_backward(B, T, H, d, window, x.q, x.k, x.v, x.o, x.g, gpu, gpu + x.n,
                                          gpu + 2 * x.n));
    static const char *names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        double e = grad_err(gpu + i * x.n, cpu + i * x.n, x.n);
        if (!(e <= TOL))
            fail_msg("attention backward B=%d T=%d H=%d d=%d W=%d: %s err %.3g > %.0e", B, T, H, d, window, names[i],
                     e, TOL);
        if (e > worst[i]) worst[i] = e;
    }
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

int cuda_train_attn_bwd_tests(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vs_cpu), cmocka_unit_test(test_deterministic)};
    return cmocka_run_group_tests_name("attn_bwd", tests, NULL, NULL);
}
