/* test_quant.c — quantised weights (issue 20): quantise/dequantise error
 * bounds, every SIMD kernel against the plain reference, the kernel against
 * the f32 product; the model-level tests (load, save, refusals, state files,
 * quality) are in the second half. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "test_util.h"

static const hydra_quant FMTS[] = {HYDRA_QUANT_INT8, HYDRA_QUANT_INT4};
static const char *const SIMD[] = {"avx2", "vnni"};

typedef struct {
    uint8_t *q;
    uint16_t *d;
} qbuf;

static qbuf quantize(hydra_quant f, int N, int K, const float *W) {
    qbuf b = {malloc((size_t)N * hydra_quant_row_bytes(f, K) + 1),
              malloc((size_t)N * hydra_quant_row_blocks(K) * sizeof(uint16_t) + 2)};
    HY_OK(hydra_quantize_rows(f, N, K, W, b.q, b.d));
    return b;
}
static void qbuf_free(qbuf *b) {
    free(b->q);
    free(b->d);
}

/* Every element is within half a level of its block's scale (a full level
 * for the int4 value that lands on +8 and clips to 7), and the scale is at
 * most 2^-7 above max|w| / 127 (int8) or max|w| / 8 (int4). Covers K not a
 * multiple of 32, an all-zero block and large and tiny magnitudes. */
static void test_quantize_error_bound(void **st) {
    (void)st;
    const int N = 7, K = 100, nb = hydra_quant_row_blocks(K);
    float *W = malloc((size_t)N * K * sizeof *W), *R = malloc((size_t)N * K * sizeof *R);
    fill_normal(W, (size_t)N * K, 0.05f, 1);
    for (int k = 32; k < 64; k++) W[k] = 0.0f;         /* row 0, block 1: zeros */
    for (int k = 0; k < K; k++) W[K + k] *= 1e4f;      /* row 1: large */
    for (int k = 0; k < K; k++) W[2 * K + k] *= 1e-6f; /* row 2: tiny */
    for (size_t f = 0; f < 2; f++) {
        qbuf b = quantize(FMTS[f], N, K, W);
        HY_OK(hydra_dequantize_rows(FMTS[f], N, K, b.q, b.d, R));
        for (int n = 0; n < N; n++)
            for (int blk = 0; blk < nb; blk++) {
                float amax = 0, d;
                int k0 = blk * 32, k1 = k0 + 32 < K ? k0 + 32 : K;
                for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(W[(size_t)n * K + k]));
                uint32_t u = (uint32_t)b.d[n * nb + blk] << 16;
                memcpy(&d, &u, sizeof d);
                d = fabsf(d);
                float ideal = amax / (FMTS[f] == HYDRA_QUANT_INT8 ? 127.0f : 8.0f);
                assert_true(d >= ideal && d <= ideal * (1.0f + 1.0f / 128));
                for (int k = k0; k < k1; k++) {
                    float e = fabsf(R[(size_t)n * K + k] - W[(size_t)n * K + k]);
                    float bound = (FMTS[f] == HYDRA_QUANT_INT8 ? 0.5f : 1.0f) * d * (1 + 1e-6f);
                    if (e > bound) fail_msg("%s row %d k %d: error %g > %g", hydra_quant_name(FMTS[f]), n, k, e, bound);
                }
                if (amax == 0)
                    for (int k = k0; k < k1; k++) assert_true(R[(size_t)n * K + k] == 0.0f);
            }
        qbuf_free(&b);
    }
    /* int8 of Gaussian weights: rms error about 1% of the rms weight at most */
    qbuf b = quantize(HYDRA_QUANT_INT8, N, K, W);
    HY_OK(hydra_dequantize_rows(HYDRA_QUANT_INT8, N, K, b.q, b.d, R));
    assert_true(rel_err(R + 3 * K, W + 3 * K, (size_t)4 * K) < 0.01);
    qbuf_free(&b);
    free(W);
    free(R);
}

/* y from the kernel named `kernel` (NULL: whatever is selected). */
static void run_kernel(const char *kernel, hydra_quant f, int M, int N, int K, const float *x, const qbuf *b,
                       float *y, int acc) {
    if (kernel) HY_OK(hydra_quant_set_kernel(kernel));
    HY_OK(hydra_op_matmul_q(f, M, N, K, x, b->q, b->d, y, acc));
    HY_OK(hydra_quant_set_kernel("auto"));
}

/* Each SIMD kernel against the reference, over shapes that exercise the
 * 4-row tiles and their remainder, a partial last block, several inputs
 * (speculative verify) and accumulate; the integer block sums are exact in
 * both, so they differ only by the order of the f32 sums. */
static void test_simd_vs_reference(void **st) {
    (void)st;
    static const int shapes[][3] = {{1, 64, 768}, {1, 37, 100}, {3, 13, 33}, {6, 130, 256}, {15, 8, 2048}, {1, 5, 7}};
    int ran = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *W = malloc((size_t)N * K * sizeof *W), *x = malloc((size_t)M * K * sizeof *x);
        float *yr = malloc((size_t)M * N * sizeof *yr), *ys = malloc((size_t)M * N * sizeof *ys);
        fill_normal(W, (size_t)N * K, 0.02f, 10 + s);
        fill_normal(x, (size_t)M * K, 1.0f, 20 + s);
        for (size_t f = 0; f < 2; f++) {
            qbuf b = quantize(FMTS[f], N, K, W);
            for (int acc = 0; acc < 2; acc++) {
                fill_normal(yr, (size_t)M * N, 0.1f, 30);
                fill_normal(ys, (size_t)M * N, 0.1f, 30);
                run_kernel("ref", FMTS[f], M, N, K, x, &b, yr, acc);
                for (size_t k = 0; k < 2; k++) {
                    if (!hydra_quant_kernel_supported(SIMD[k])) {
                        assert_int_equal(hydra_quant_set_kernel(SIMD[k]), HYDRA_ERR_ARG);
                        continue;
                    }
                    fill_normal(ys, (size_t)M * N, 0.1f, 30);
                    run_kernel(SIMD[k], FMTS[f], M, N, K, x, &b, ys, acc);
                    for (int i = 0; i < M * N; i++)
                        if (fabsf(ys[i] - yr[i]) > 1e-5f * (1 + fabsf(yr[i])))
                            fail_msg("%s %s M%d N%d K%d acc%d: y[%d] %g vs ref %g", SIMD[k],
                                     hydra_quant_name(FMTS[f]), M, N, K, acc, i, ys[i], yr[i]);
                    ran++;
                }
            }
            qbuf_free(&b);
        }
        free(W), free(x), free(yr), free(ys);
    }
    printf("quant kernel %s (auto); SIMD comparisons run: %d\n", hydra_quant_kernel(), ran);
    assert_int_equal(hydra_quant_set_kernel("nope"), HYDRA_ERR_ARG);
}

/* Against the f32 product: the small-M path (int8 activations) and the
 * prefill path (dequantised weights, BLAS) both stay close to x . W^T, and the
 * prefill path equals the f32 product of the dequantised weights. */
static void test_matmul_q_vs_f32(void **st) {
    (void)st;
    const int N = 96, K = 320;
    for (int M = 1; M <= 32; M += 31) {
        float *W = malloc((size_t)N * K * sizeof *W), *R = malloc((size_t)N * K * sizeof *R);
        float *x = malloc((size_t)M * K * sizeof *x), *y = malloc((size_t)M * N * sizeof *y);
        float *yf = malloc((size_t)M * N * sizeof *yf), *yd = malloc((size_t)M * N * sizeof *yd);
        fill_normal(W, (size_t)N * K, 0.02f, 3);
        fill_normal(x, (size_t)M * K, 1.0f, 4);
        HY_OK(hydra_op_matmul(M, N, K, x, W, yf, 0));
        for (size_t f = 0; f < 2; f++) {
            qbuf b = quantize(FMTS[f], N, K, W);
            HY_OK(hydra_op_matmul_q(FMTS[f], M, N, K, x, b.q, b.d, y, 0));
            double tol = FMTS[f] == HYDRA_QUANT_INT8 ? 0.02 : 0.15;
            ASSERT_REL(y, yf, (size_t)M * N, tol);
            if (M >= 16) {
                HY_OK(hydra_dequantize_rows(FMTS[f], N, K, b.q, b.d, R));
                HY_OK(hydra_op_matmul(M, N, K, x, R, yd, 0));
                ASSERT_REL(y, yd, (size_t)M * N, 1e-5);
            }
            qbuf_free(&b);
        }
        free(W), free(R), free(x), free(y), free(yf), free(yd);
    }
    hydra_quant q;
    assert_int_equal(hydra_quant_parse("int3", &q), HYDRA_ERR_ARG);
    HY_OK(hydra_quant_parse("int4", &q));
    assert_int_equal(q, HYDRA_QUANT_INT4);
    float x1 = 1, y1;
    uint8_t q1[32] = {0};
    uint16_t d1 = 0;
    assert_int_equal(hydra_op_matmul_q((hydra_quant)7, 1, 1, 1, &x1, q1, &d1, &y1, 0), HYDRA_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_error_bound),
        cmocka_unit_test(test_simd_vs_reference),
        cmocka_unit_test(test_matmul_q_vs_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
