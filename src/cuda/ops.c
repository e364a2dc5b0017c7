/* ops.c — single CUDA ops on host arrays, for the tests that hold each
 * kernel against its CPU op (tests/test_cuda.c) and for kernel benchmarks.
 * Each call copies its inputs in, runs one kernel on the default stream,
 * and copies the outputs back: simple, not fast. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "cuda/ops_util.h"
#include "cuda/sample.h"

hydra_status hydra_dev_op_delta_rule(int chunked, int T, int H, int dk, int dv, const float *q, const float *k,
                                     const float *v, const float *g, const float *beta, float *S, float *o) {
    HYDRA_CHECK(need_device());
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    size_t nk = (size_t)T * H * dk * 4, nv = (size_t)T * H * dv * 4, ng = (size_t)T * H * 4, ns = (size_t)H * dv * dk * 4;
    void *dq, *dk_, *dv_, *dg, *db, *dS, *dO, *dp, *work = NULL;
    OP_TRY(dput(&b, &dq, q, nk));
    OP_TRY(dput(&b, &dk_, k, nk));
    OP_TRY(dput(&b, &dv_, v, nv));
    OP_TRY(dput(&b, &dg, g, ng));
    OP_TRY(dput(&b, &db, beta, ng));
    OP_TRY(dput(&b, &dS, S, ns));
    OP_TRY(dput(&b, &dO, NULL, nv));
    OP_TRY(dput(&b, &dp, &dS, sizeof(void *)));
    if (chunked == 3) { /* bf16 q, k, v in and o out: round on the device, widen o here */
        void *hq, *hk, *hv, *hO;
        if (dk != dv) {
            st = hydra_set_error(HYDRA_ERR_ARG, "delta rule (chunked-tc-bf16): needs dk == dv (got %d, %d)", dk, dv);
            goto done;
        }
        OP_TRY(dput(&b, &work, NULL, hk_delta_rule_chunked_scratch(1, T, H, dk)));
        OP_TRY(dput(&b, &hq, NULL, nk / 2));
        OP_TRY(dput(&b, &hk, NULL, nk / 2));
        OP_TRY(dput(&b, &hv, NULL, nv / 2));
        OP_TRY(dput(&b, &hO, NULL, nv / 2));
        OP_RUN(hk_f32_to_bf16(0, dq, hq, nk / 4));
        OP_RUN(hk_f32_to_bf16(0, dk_, hk, nk / 4));
        OP_RUN(hk_f32_to_bf16(0, dv_, hv, nv / 4));
        OP_RUN(hk_delta_rule_tc(0, 1, T, H, dk, hq, hk, hv, dg, db, dp, hO, work, 1));
        OP_TRY(dget(o, hO, nv / 2)); /* bf16 into the first half of o, widened from the back */
        const uint16_t *o16 = (const uint16_t *)o;
        for (size_t i = nv / 4; i-- > 0;) {
            uint32_t u = (uint32_t)o16[i] << 16;
            memcpy(&o[i], &u, 4);
        }
    } else if (chunked == 4) { /* training's forward: from S_0 = 0, the per-chunk work kept; S is left as given */
        if (dk != dv) {
            st = hydra_set_error(HYDRA_ERR_ARG, "delta rule (chunked-tc-keep): needs dk == dv (got %d, %d)", dk, dv);
            goto done;
        }
        OP_TRY(dput(&b, &work, NULL, hk_delta_rule_keep_bytes(1, T, H, dk)));
        OP_RUN(hk_delta_rule_tc_keep(0, 1, T, H, dk, dq, dk_, dv_, dg, db, dO, work));
    } else if (chunked) {
        OP_TRY(dput(&b, &work, NULL, hk_delta_rule_chunked_scratch(1, T, H, dk)));
        OP_RUN(hk_delta_rule_chunked(0, 1, T, H, dk, dv, dq, dk_, dv_, dg, db, dp, dO, work, chunked == 2));
    } else
        OP_RUN(hk_delta_rule_recurrent(0, 1, T, H, dk, dv, dq, dk_, dv_, dg, db, dp, dO));
    OP_TRY(dget(S, dS, ns));
    if (chunked != 3) OP_TRY(dget(o, dO, nv));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_attention(int T, int H, int d, int64_t pos0, int window, size_t cap, const float *q,
                                    const float *k, const float *v, const float *cache_k, const float *cache_v,
                                    float *o) {
    HYDRA_CHECK(need_device());
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    size_t n = (size_t)T * H * d * 4, nc = cap * H * d * 4;
    void *dq, *dk_, *dv_, *dkc, *dvc, *dO, *dpos, *dpk, *dpv;
    OP_TRY(dput(&b, &dq, q, n));
    OP_TRY(dput(&b, &dk_, k, n));
    OP_TRY(dput(&b, &dv_, v, n));
    OP_TRY(dput(&b, &dkc, cache_k, nc));
    OP_TRY(dput(&b, &dvc, cache_v, nc));
    OP_TRY(dput(&b, &dO, NULL, n));
    OP_TRY(dput(&b, &dpos, &pos0, 8));
    OP_TRY(dput(&b, &dpk, &dkc, sizeof(void *)));
    OP_TRY(dput(&b, &dpv, &dvc, sizeof(void *)));
    OP_RUN(hk_attention(0, 1, T, H, d, window, dpos, dq, dk_, dv_, dpk, dpv, dO, 0));
    OP_TRY(dget(o, dO, n));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_rmsnorm(int M, int C, const float *x, const float *w, float eps, float *y) {
    HYDRA_CHECK(need_device());
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    size_t n = (size_t)M * C * 4;
    void *dx, *dw, *dy;
    OP_TRY(dput(&b, &dx, x, n));
    OP_TRY(dput(&b, &dw, w, (size_t)C * 4));
    OP_TRY(dput(&b, &dy, NULL, n));
    OP_RUN(hk_rmsnorm(0, M, C, dx, dw, eps, dy, 0));
    OP_TRY(dget(y, dy, n));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_rope(int T, int H, int d, int64_t pos0, double base, float *x) {
    HYDRA_CHECK(need_device());
    if (d & 1 || d > 4096) return hydra_set_error(HYDRA_ERR_ARG, "rope: head dim %d must be even and <= 4096", d);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    size_t Hd = (size_t)H * d, n = (size_t)T * Hd;
    double f[2048];
    for (int i = 0; i < d / 2; i++) f[i] = pow(base, -2.0 * i / d);
    float *proj = calloc(3 * n + 1, 4); /* [T, 3Hd] = x | 0 | 0 */
    if (!proj) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    for (int t = 0; t < T; t++) memcpy(proj + (size_t)t * 3 * Hd, x + (size_t)t * Hd, Hd * 4);
    void *dp, *dq, *dk_, *dv_, *dpos, *df;
    OP_TRY(dput(&b, &dp, proj, 3 * n * 4));
    OP_TRY(dput(&b, &dq, NULL, n * 4));
    OP_TRY(dput(&b, &dk_, NULL, n * 4));
    OP_TRY(dput(&b, &dv_, NULL, n * 4));
    OP_TRY(dput(&b, &dpos, &pos0, 8));
    OP_TRY(dput(&b, &df, f, (size_t)(d / 2) * 8));
    OP_RUN(hk_rope_qkv(0, 1, T, H, d, dp, dpos, df, dq, dk_, dv_, 0, NULL, NULL));
    OP_TRY(dget(x, dq, n * 4));
done:
    free(proj);
    dbufs_free(&b);
    return st;
}

/* Device copies of an f32 operand and, for bf16, its rounded copy. */
static hydra_status operand_put(dbufs *b, const float *host, size_t n, int bf16, void **out) {
    void *f, *h;
    HYDRA_CHECK(dput(b, &f, host, n * 4));
    *out = f;
    if (!bf16) return HYDRA_OK;
    HYDRA_CHECK(dput(b, &h, NULL, n * 2));
    CU_CHECK(hk_f32_to_bf16(0, f, h, n));
    *out = h;
    return HYDRA_OK;
}

hydra_status hydra_dev_op_to_bf16_2d(int rows, int cols, const float *src, size_t lds, uint16_t *dst, size_t ldd) {
    HYDRA_CHECK(need_device());
    if (rows < 1 || cols < 1 || lds < (size_t)cols || ldd < (size_t)cols)
        return hydra_set_error(HYDRA_ERR_ARG, "to_bf16_2d: rows %d, cols %d, lds %zu, ldd %zu", rows, cols, lds, ldd);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    void *ds, *dd;
    const size_t ns = ((size_t)(rows - 1) * lds + (size_t)cols) * 4, nd = ((size_t)(rows - 1) * ldd + (size_t)cols) * 2;
    OP_TRY(dput(&b, &ds, src, ns));
    OP_TRY(dput(&b, &dd, dst, nd)); /* the gaps between rows must come back as they were */
    OP_RUN(hk_f32_to_bf16_2d(0, ds, lds, dd, ldd, rows, cols));
    OP_TRY(dget(dst, dd, nd));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_matmul_ex(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                    float *C, int ldc, int acc, int bf16) {
    return hydra_dev_op_matmul_choice(HYDRA_GEMM_FASTEST, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bf16, NULL);
}

hydra_status hydra_dev_op_matmul_choice(int choice, int ta, int tb, int M, int N, int K, const float *A, int lda,
                                        const float *B, int ldb, float *C, int ldc, int acc, int bf16, int info[3]) {
    HYDRA_CHECK(need_device());
    if (choice < HYDRA_GEMM_FASTEST || choice > HYDRA_GEMM_SAME_BITS)
        return hydra_set_error(HYDRA_ERR_ARG, "matmul_choice: unknown choice %d", choice);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    hydra_gemm_ctx g;
    int have_gemm = 0;
    void *da, *db, *dc;
    OP_TRY(operand_put(&b, A, na, bf16, &da));
    OP_TRY(operand_put(&b, B, nb, bf16, &db));
    OP_TRY(dput(&b, &dc, C, nc * 4));
    OP_TRY(hydra_gemm_init(&g));
    have_gemm = 1;
    g.choice = choice;
    OP_TRY(hydra_gemm_ex(&g, 0, ta, tb, M, N, K, da, lda, db, ldb, dc, ldc, bf16, acc));
    OP_RUN(cudaGetLastError());
    OP_TRY(dget(C, dc, nc * 4));
    if (info) hydra_gemm_plan_info(&g, info);
done:
    if (have_gemm) hydra_gemm_free(&g);
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_matmul(int M, int N, int K, const float *x, const float *W, float *y, int acc, int bf16) {
    return hydra_dev_op_matmul_ex(0, 1, M, N, K, x, K, W, K, y, N, acc, bf16);
}

hydra_status hydra_dev_op_sample(int B, int V, const float *logits, const hydra_sample_opts *o, const double *u,
                                 int32_t *tokens) {
    HYDRA_CHECK(need_device());
    HYDRA_CHECK(hydra_sample_opts_validate(o));
    if (B < 1 || V < 1) return hydra_set_error(HYDRA_ERR_ARG, "sample: B and V must be >= 1 (got %d, %d)", B, V);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    hk_sample_params par = {o->temperature, o->top_k, o->top_p, 0};
    void *dl, *dp, *du, *dt;
    OP_TRY(dput(&b, &dl, logits, (size_t)B * V * 4));
    OP_TRY(dput(&b, &dp, &par, sizeof par));
    OP_TRY(dput(&b, &du, u, (size_t)B * sizeof *u));
    OP_TRY(dput(&b, &dt, NULL, (size_t)B * sizeof *tokens));
    OP_RUN(hk_sample(0, B, V, dl, dp, du, dt));
    OP_TRY(dget(tokens, dt, (size_t)B * sizeof *tokens));
done:
    dbufs_free(&b);
    return st;
}
