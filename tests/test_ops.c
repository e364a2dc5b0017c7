/* test_ops.c — each op on raw arrays against a naive definition. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/internal.h"
#include "test_util.h"

static float *randv(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    fill_normal(x, n, 1.0f, seed);
    return x;
}

/* want = x . W^T (+ y if acc), in double. */
static void matmul_ref(int M, int N, int K, const float *x, const float *W, const float *y, int acc, float *want) {
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double s = acc ? y[(size_t)i * N + n] : 0.0;
            for (int k = 0; k < K; k++) s += (double)x[(size_t)i * K + k] * W[(size_t)n * K + k];
            want[(size_t)i * N + n] = (float)s;
        }
}

/* Small-M (GEMV kernel) and large-M (BLAS) paths against a triple loop. */
static void test_matmul(void **st) {
    (void)st;
    int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 40}, N = 37, K = 45; /* every small-M tile and pass split */
    for (size_t t = 0; t < sizeof Ms / sizeof Ms[0]; t++) {
        int M = Ms[t];
        float *x = randv((size_t)M * K, 1), *W = randv((size_t)N * K, 2), *y = randv((size_t)M * N, 3);
        float *want = malloc((size_t)M * N * sizeof(float));
        for (int acc = 0; acc < 2; acc++) {
            matmul_ref(M, N, K, x, W, y, acc, want);
            HY_OK(hydra_op_matmul(M, N, K, x, W, y, acc));
            ASSERT_REL(y, want, (size_t)M * N, 1e-6);
        }
        free(x), free(W), free(y), free(want);
    }
    float a = 0;
    assert_int_equal(hydra_op_matmul(1, 1, 1, NULL, &a, &a, 0), HYDRA_ERR_ARG);
    assert_int_equal(hydra_op_matmul(-1, 1, 1, &a, &a, &a, 0), HYDRA_ERR_ARG);
}

/* Threads split large products into tiles of C (1-thread BLIS each) and
 * decode GEMVs into row blocks: the result is bit-identical for 1, 2 and 3
 * threads, for every transpose combination and ragged edges, and correct. */
static void test_matmul_threads(void **st) {
    (void)st;
    const int M = 333, N = 517, K = 48; /* 8.3M multiply-adds: the tiled path */
    float *A = randv((size_t)M * K, 4), *Bm = randv((size_t)N * K, 5), *C0 = randv((size_t)M * N, 6);
    float *ref = malloc((size_t)M * N * sizeof(float)), *got = malloc((size_t)M * N * sizeof(float));
    float *want = malloc((size_t)M * N * sizeof(float));
    const int nt0 = hydra_get_num_threads();
    for (int tr = 0; tr < 4; tr++) {
        const int ta = tr & 1, tb = tr >> 1;
        /* A is [M,K] (or [K,M] read transposed), B is [K,N] (or [N,K] transposed): the same buffers */
        const int lda = ta ? M : K, ldb = tb ? K : N;
        for (int nt = 1; nt <= 3; nt++) {
            hydra_set_num_threads(nt);
            memcpy(got, C0, (size_t)M * N * sizeof(float));
            HY_OK(hydra_op_matmul_ex(ta, tb, M, N, K, A, lda, Bm, ldb, got, N, 1));
            if (nt == 1) memcpy(ref, got, (size_t)M * N * sizeof(float));
            else assert_memory_equal(got, ref, (size_t)M * N * sizeof(float));
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = C0[(size_t)i * N + j];
                for (int l = 0; l < K; l++)
                    s += (double)(ta ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l]) *
                         (tb ? Bm[(size_t)j * ldb + l] : Bm[(size_t)l * ldb + j]);
                want[(size_t)i * N + j] = (float)s;
            }
        ASSERT_REL(ref, want, (size_t)M * N, 1e-5);
    }
    /* hydra_op_matmul: BLAS tiles (M = 333), and GEMV row blocks (M = 3 with
     * K = 400: 620K multiply-adds, above the one-thread cutoff at 2 and 3 threads) */
    float *xg = randv((size_t)3 * 400, 7), *Wg = randv((size_t)N * 400, 8);
    for (int mi = 0; mi < 2; mi++)
        for (int nt = 1; nt <= 3; nt++) {
            hydra_set_num_threads(nt);
            if (mi == 0) HY_OK(hydra_op_matmul(M, N, K, A, Bm, got, 0));
            else HY_OK(hydra_op_matmul(3, N, 400, xg, Wg, got, 0));
            const size_t n = (size_t)(mi == 0 ? M : 3) * N * sizeof(float);
            if (nt == 1) memcpy(ref, got, n);
            else assert_memory_equal(got, ref, n);
        }
    hydra_set_num_threads(nt0);
    free(A), free(Bm), free(C0), free(ref), free(got), free(want), free(xg), free(Wg);
}

/* The contention back-off: a region whose leader waited > 0.5 ms after its
 * own share (and longer than it) is a stall; the third among the last 64
 * switches the library to one thread for 0.5 s, counted by
 * hydra_backoff_stats; an even region is not a stall; hydra_set_num_threads
 * ends the back-off. */
static void test_backoff_stats(void **st) {
    (void)st;
    const int nt0 = hydra_get_num_threads();
    hydra_set_num_threads(2); /* also forgets earlier regions and back-offs */
    uint64_t n0, n;
    double s0, s;
    hydra_backoff_stats(&n0, &s0);
    /* 16 even regions of 1.2 ms that one thread would have taken 2 ms for */
    for (int i = 0; i < 16; i++) hydra_par_report(1.2e-3, 2e-3);
    /* one region held 4 ms by a late partner: the threads still paid over the window */
    hydra_par_report(5e-3, 2e-3);
    hydra_backoff_stats(&n, NULL);
    assert_true(n == n0);
    /* partner gone: 0.1 ms of work held 3.1 ms by a partner that never came, three times: the
     * window's wall 33.5 ms against 34.3 on one thread, not yet ... */
    for (int i = 0; i < 3; i++) hydra_par_report(3.1e-3, 1e-4);
    hydra_backoff_stats(&n, NULL);
    assert_true(n == n0);
    assert_int_equal(omp_get_max_threads(), 2);
    hydra_par_report(3.1e-3, 1e-4); /* ... the fourth: 36.6 ms against 34.4 + a 1-ms margin: back off */
    hydra_backoff_stats(&n, &s);
    assert_true(n == n0 + 1);
    assert_true(fabs((s - s0) - 0.5) < 1e-9);
    assert_int_equal(omp_get_max_threads(), 1);
    hydra_par_enter(); /* still inside the 0.5 s */
    assert_int_equal(omp_get_max_threads(), 1);
    /* 16 threads on a VM: a vCPU woken 0.6 ms late every 8th region of 0.02 ms (0.16 ms on one
     * thread). Each late one is far slower than one thread, the window is not: no back-off. */
    hydra_set_num_threads(16);
    hydra_backoff_stats(&n0, NULL);
    for (int i = 0; i < 256; i++) hydra_par_report(i % 8 == 7 ? 0.62e-3 : 0.02e-3, 0.16e-3);
    hydra_backoff_stats(&n, NULL);
    assert_true(n == n0);
    hydra_set_num_threads(nt0);
    hydra_par_enter();
    assert_int_equal(omp_get_max_threads(), nt0);
    hydra_backoff_stats(NULL, NULL);
}

/* bf16 weights: the same products with W rounded to bf16 (every small-M tile
 * shape, tail rows and columns, the blocked large-M path); the rounding. */
static void test_matmul_bf16(void **st) {
    (void)st;
    int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 16, 70}, N = 133, K = 45; /* N > 2 blocks of 64 rows, odd */
    for (size_t t = 0; t < sizeof Ms / sizeof Ms[0]; t++) {
        int M = Ms[t];
        float *x = randv((size_t)M * K, 1), *W = randv((size_t)N * K, 2), *y = randv((size_t)M * N, 3);
        float *want = malloc((size_t)M * N * sizeof(float));
        uint16_t *Wh = malloc((size_t)N * K * sizeof *Wh);
        for (size_t i = 0; i < (size_t)N * K; i++) {
            Wh[i] = hydra_f32_to_bf16(W[i]);
            uint32_t u = (uint32_t)Wh[i] << 16;
            memcpy(&W[i], &u, sizeof u); /* W <- its bf16 value */
        }
        for (int acc = 0; acc < 2; acc++) {
            matmul_ref(M, N, K, x, W, y, acc, want);
            HY_OK(hydra_op_matmul_bf16(M, N, K, x, Wh, y, acc));
            ASSERT_REL(y, want, (size_t)M * N, 1e-6);
        }
        free(x), free(W), free(y), free(want), free(Wh);
    }
    assert_int_equal(hydra_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(hydra_f32_to_bf16(-2.0f), 0xc000);
    /* 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1) */
    assert_int_equal(hydra_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    assert_int_equal(hydra_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82); /* tie, rounds up to even */
    assert_int_equal(hydra_f32_to_bf16(1.0f + 1.5f / 256), 0x3f81);  /* above half: up */
    uint16_t nan = hydra_f32_to_bf16(NAN);
    assert_true((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
    float a = 0;
    uint16_t h = 0;
    assert_int_equal(hydra_op_matmul_bf16(1, 1, 1, NULL, &h, &a, 0), HYDRA_ERR_ARG);
    assert_int_equal(hydra_op_matmul_bf16(1, -1, 1, &a, &h, &a, 0), HYDRA_ERR_ARG);
}

static void test_rmsnorm(void **st) {
    (void)st;
    int M = 5, C = 19;
    float *x = randv((size_t)M * C, 4), *w = randv((size_t)C, 5), *y = malloc((size_t)M * C * sizeof(float));
    HY_OK(hydra_op_rmsnorm(M, C, x, w, 1e-5f, y));
    for (int i = 0; i < M; i++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[i * C + c] * x[i * C + c];
        double r = 1.0 / sqrt(ss / C + 1e-5);
        for (int c = 0; c < C; c++) assert_float_equal(y[i * C + c], x[i * C + c] * r * w[c], 1e-5);
    }
    assert_int_equal(hydra_op_rmsnorm(M, 0, x, w, 1e-5f, y), HYDRA_ERR_ARG);
    free(x), free(w), free(y);
}

/* Conv in chunks with the carried tail == conv of the whole sequence. */
static void test_conv_chunks(void **st) {
    (void)st;
    int T = 23, C = 6, K = 4;
    float *x = randv((size_t)T * C, 6), *w = randv((size_t)C * K, 7);
    float *whole = malloc((size_t)T * C * sizeof(float)), *part = malloc((size_t)T * C * sizeof(float));
    HY_OK(hydra_op_conv_causal(T, C, K, x, w, NULL, whole));
    /* naive check of one entry: t = 5, c = 2 */
    float e = 0;
    for (int j = 0; j < K; j++) e += w[2 * K + j] * x[(5 - K + 1 + j) * C + 2];
    assert_float_equal(whole[5 * C + 2], e, 1e-5);
    int chunks[] = {1, 2, 5};
    for (int ci = 0; ci < 3; ci++) {
        float tail[3 * 6] = {0};
        for (int t0 = 0; t0 < T; t0 += chunks[ci]) {
            int n = T - t0 < chunks[ci] ? T - t0 : chunks[ci];
            HY_OK(hydra_op_conv_causal(n, C, K, x + t0 * C, w, tail, part + t0 * C));
        }
        ASSERT_REL(part, whole, (size_t)T * C, 1e-6);
    }
    free(x), free(w), free(whole), free(part);
}

/* RoPE preserves norms, is relative (q.k depends on the offset only) and is
 * exact at large positions thanks to double angles. */
static void test_rope(void **st) {
    (void)st;
    int d = 16;
    float *q = randv((size_t)d, 8), *k = randv((size_t)d, 9);
    float qa[16], ka[16], qb[16], kb[16];
    memcpy(qa, q, sizeof qa), memcpy(ka, k, sizeof ka), memcpy(qb, q, sizeof qb), memcpy(kb, k, sizeof kb);
    HY_OK(hydra_op_rope(1, 1, d, 10, 10000.0, qa));
    HY_OK(hydra_op_rope(1, 1, d, 7, 10000.0, ka));
    HY_OK(hydra_op_rope(1, 1, d, 1000003, 10000.0, qb));
    HY_OK(hydra_op_rope(1, 1, d, 1000000, 10000.0, kb));
    float da = 0, db = 0, n0 = 0, n1 = 0;
    for (int i = 0; i < d; i++) da += qa[i] * ka[i], db += qb[i] * kb[i], n0 += q[i] * q[i], n1 += qb[i] * qb[i];
    assert_float_equal(da, db, 1e-4);
    assert_float_equal(n0, n1, 1e-4);
    /* position 0 is the identity */
    memcpy(qa, q, sizeof qa);
    HY_OK(hydra_op_rope(1, 1, d, 0, 10000.0, qa));
    assert_memory_equal(qa, q, sizeof qa);
    assert_int_equal(hydra_op_rope(1, 1, 5, 0, 10000.0, qa), HYDRA_ERR_ARG);
    free(q), free(k);
}

/* Chunk + ring cache == one pass; and against a naive softmax. */
static void test_attention(void **st) {
    (void)st;
    int T = 20, H = 2, d = 4, W = 6;
    size_t Hd = (size_t)H * d;
    float *q = randv(T * Hd, 10), *k = randv(T * Hd, 11), *v = randv(T * Hd, 12);
    float *whole = malloc(T * Hd * sizeof(float)), *part = malloc(T * Hd * sizeof(float));
    HY_OK(hydra_op_attention(T, H, d, 0, W, q, k, v, NULL, NULL, whole));
    /* naive: query 13, head 1 */
    int t = 13, h = 1;
    double sc[6], mx = -1e30, sum = 0;
    for (int j = t - W + 1; j <= t; j++) {
        double s = 0;
        for (int i = 0; i < d; i++) s += q[t * Hd + h * d + i] * k[j * Hd + h * d + i];
        sc[j - (t - W + 1)] = s / 2.0;
        if (sc[j - (t - W + 1)] > mx) mx = sc[j - (t - W + 1)];
    }
    for (int j = 0; j < W; j++) sum += (sc[j] = exp(sc[j] - mx));
    for (int i = 0; i < d; i++) {
        double o = 0;
        for (int j = 0; j < W; j++) o += sc[j] / sum * v[(t - W + 1 + j) * Hd + h * d + i];
        assert_float_equal(whole[t * Hd + h * d + i], o, 1e-5);
    }
    /* chunks of 3 with a ring of W slots */
    float *ck = calloc((size_t)W * Hd, sizeof(float)), *cv = calloc((size_t)W * Hd, sizeof(float));
    for (int t0 = 0; t0 < T; t0 += 3) {
        int n = T - t0 < 3 ? T - t0 : 3;
        HY_OK(hydra_op_attention(n, H, d, t0, W, q + t0 * Hd, k + t0 * Hd, v + t0 * Hd, ck, cv, part + t0 * Hd));
        for (int j = t0; j < t0 + n; j++) {
            memcpy(ck + (j % W) * Hd, k + j * Hd, Hd * sizeof(float));
            memcpy(cv + (j % W) * Hd, v + j * Hd, Hd * sizeof(float));
        }
    }
    ASSERT_REL(part, whole, T * Hd, 1e-6);
    assert_int_equal(hydra_op_attention(T, H, d, 5, W, q, k, v, NULL, NULL, whole), HYDRA_ERR_ARG);
    free(q), free(k), free(v), free(whole), free(part), free(ck), free(cv);
}

static void test_activations(void **st) {
    (void)st;
    assert_float_equal(hydra_silu(0.0f), 0.0f, 1e-7);
    assert_float_equal(hydra_silu(2.0f), 2.0f / (1.0f + expf(-2.0f)), 1e-6);
    assert_float_equal(hydra_sigmoid(0.0f), 0.5f, 1e-7);
    assert_float_equal(hydra_softplus(0.0f), logf(2.0f), 1e-6);
    assert_float_equal(hydra_softplus(100.0f), 100.0f, 1e-6);
    assert_true(isfinite(hydra_softplus(-100.0f)));
}

/* The vectorised SiLU / SwiGLU (polynomial exp) against the libm versions. */
static void test_vec_activations(void **st) {
    (void)st;
    enum { N = 4003 }; /* not a multiple of 16: exercises the scalar tail */
    static float x[N], u[N], y[N], z[N];
    for (int i = 0; i < N; i++) {
        x[i] = -120.0f + 240.0f * (float)i / (N - 1);
        u[i] = 0.5f + (float)(i % 7);
    }
    hydra_vec_silu(y, x, N);
    hydra_vec_swiglu(z, x, u, N);
    for (int i = 0; i < N; i++) {
        float want = hydra_silu(x[i]);
        assert_true(fabsf(y[i] - want) <= 1e-6f * fabsf(want) + 1e-30f);
        assert_true(fabsf(z[i] - want * u[i]) <= 1e-6f * fabsf(want * u[i]) + 1e-30f);
    }
    float edge[16] = {0, -0.0f, 1e-30f, -1e-30f, 88.5f, -88.5f, 1e30f, -1e30f, 3, -3, 10, -10, 20, -20, 0.5f, -0.5f};
    float out[16];
    hydra_vec_silu(out, edge, 16);
    for (int i = 0; i < 16; i++) {
        assert_true(isfinite(out[i]));
        assert_true(fabsf(out[i] - hydra_silu(edge[i])) <= 1e-6f * fabsf(hydra_silu(edge[i])) + 1e-30f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul), cmocka_unit_test(test_matmul_threads), cmocka_unit_test(test_backoff_stats), cmocka_unit_test(test_matmul_bf16),    cmocka_unit_test(test_rmsnorm),   cmocka_unit_test(test_conv_chunks),
        cmocka_unit_test(test_rope),      cmocka_unit_test(test_attention), cmocka_unit_test(test_activations), cmocka_unit_test(test_vec_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
