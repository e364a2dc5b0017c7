/* gemm.c — every matrix product of the device forward, through cuBLASLt:
 * y[M, N] (+)= x[M, K] . W[N, K]^T with y in f32 and x, W both f32 (all-f32
 * mode: CUBLAS_COMPUTE_32F, no TF32, tensor cores off) or both bf16 (tensor
 * cores, f32 accumulation). Row-major y = x W^T is column-major
 * y^T = W x^T, so W is cuBLAS's "A" (transposed) and x its "B";
 * hydra_gemm_ex takes any transposes and leading dimensions (the training
 * backward's dX = dY W and dW += dY^T X).
 * The layouts and the chosen algorithm are cached per (M, N, K, dtype,
 * accumulate, transposes, leading dims): the first product of a shape times cuBLASLt's top heuristic
 * candidates on scratch buffers and keeps the fastest (the heuristic's first
 * choice leaves most of the card idle for narrow products, e.g. 64 rows);
 * training keeps the fastest of those that compute the first choice's bits
 * (most differ only in tiling, not in the order of the sums over K, so
 * their results are identical: timed, yet reproducible across processes);
 * later products reuse it. Products of <= 8 rows go to gemm_small.cu. */
#include "cuda/gemm.h"

#include "cuda/kernels.h"

#include <stdlib.h>
#include <string.h>

struct plan {
    int M, N, K, bf16, acc, ta, tb, lda, ldb, ldc;
    int out16;              /* C in bf16 (bf16 inputs only), else f32 */
    size_t na, nb;          /* elements the two operands span (cuBLAS's A = our B, and B = our A) */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int n_cand, pick;       /* the heuristic's candidates and the one taken */
    int n_differ;           /* HYDRA_GEMM_SAME_BITS: candidates left out for computing other bits */
    float ms_first, ms_pick; /* timed choices: the first candidate's time and the pick's (ms), else 0 */
    struct plan *next;
};

static void plan_free(struct plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    free(p);
}

hydra_status hydra_gemm_init(hydra_gemm_ctx *g) {
    memset(g, 0, sizeof *g);
    if (cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS)
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: cublasLtCreate failed");
    g->ws_bytes = (size_t)32 << 20;
    const char *e = getenv("HYDRA_CUDA_SMALL_GEMM"); /* "0": cuBLASLt for every shape (for comparisons) */
    g->small_m = e && strcmp(e, "0") == 0 ? 0 : HK_GEMM_SMALL_MAX_M;
    if (cudaMalloc(&g->ws, g->ws_bytes) != cudaSuccess) {
        cublasLtDestroy(g->lt);
        g->lt = NULL;
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: out of device memory for the 32 MiB GEMM workspace");
    }
    return HYDRA_OK;
}

void hydra_gemm_free(hydra_gemm_ctx *g) {
    while (g->plans) {
        struct plan *n = g->plans->next;
        plan_free(g->plans);
        g->plans = n;
    }
    if (g->ws) cudaFree(g->ws);
    if (g->lt) cublasLtDestroy(g->lt);
    memset(g, 0, sizeof *g);
}

void hydra_gemm_train_choice(hydra_gemm_ctx *g) {
    const char *e = getenv("HYDRA_CUDA_TRAIN_TIMED_GEMM");
    g->choice = e && strcmp(e, "0") == 0     ? HYDRA_GEMM_FIRST
                : e && strcmp(e, "any") == 0 ? HYDRA_GEMM_FASTEST
                                             : HYDRA_GEMM_SAME_BITS;
}

/* Random operands (and, when the product accumulates, a random C) for
 * plan p's scratch buffers: the same values for every candidate. */
static cudaError_t fill_operands(cudaStream_t s, const struct plan *p, void *x, void *W, void *y) {
    cudaError_t e;
    if (p->bf16) {
        if ((e = hk_fill_uniform16(s, x, p->nb, 1, -1.0f, 1.0f)) != cudaSuccess) return e;
        if ((e = hk_fill_uniform16(s, W, p->na, 2, -1.0f, 1.0f)) != cudaSuccess) return e;
    } else {
        if ((e = hk_fill_uniform(s, x, p->nb, 1, -1.0f, 1.0f)) != cudaSuccess) return e;
        if ((e = hk_fill_uniform(s, W, p->na, 2, -1.0f, 1.0f)) != cudaSuccess) return e;
    }
    const size_t ny = (size_t)p->M * p->ldc;
    return p->out16 ? hk_fill_uniform16(s, y, ny, 3, -1.0f, 1.0f) : hk_fill_uniform(s, y, ny, 3, -1.0f, 1.0f);
}

/* Index of the fastest of the n candidate algorithms for plan p, timed on
 * scratch buffers (3 runs each, the best kept); with HYDRA_GEMM_SAME_BITS
 * only among those whose output on random operands has the bits of
 * candidate 0's. 0 when timing is impossible (the stream is being
 * captured, or no memory for the scratch buffers). */
static int pick_fastest(hydra_gemm_ctx *g, cudaStream_t s, struct plan *p, const cublasLtMatmulHeuristicResult_t *res,
                        int n) {
    if (n <= 1) return 0;
    const int same = g->choice == HYDRA_GEMM_SAME_BITS;
    /* a bf16 output rounds away most differences in the f32 sums: too few elements could hide one */
    if (same && p->out16 && (size_t)p->M * p->N < ((size_t)1 << 20)) return 0;
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(s, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone) return 0;
    if (cudaStreamSynchronize(s) != cudaSuccess) return 0; /* the workspace may be in use by earlier work */
    size_t esz = p->bf16 ? 2 : 4;
    const size_t ny16 = (size_t)p->M * p->ldc * (p->out16 ? 1 : 2); /* the output in 16-bit words */
    void *x = NULL, *W = NULL, *y = NULL;
    unsigned long long *h = NULL, ref = 0;
    cudaEvent_t a = NULL, b = NULL;
    int best = 0;
    float best_ms = 1e30f;
    if (cudaMalloc(&x, p->nb * esz) != cudaSuccess || cudaMalloc(&W, p->na * esz) != cudaSuccess ||
        cudaMalloc(&y, ny16 * 2) != cudaSuccess || cudaMalloc((void **)&h, sizeof *h) != cudaSuccess ||
        cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess ||
        fill_operands(s, p, x, W, y) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess)
        goto done;
    const float one = 1.0f, beta = p->acc ? 1.0f : 0.0f;
    for (int i = 0; i < n; i++) {
        if (same) { /* the candidate's bits from the same operands as candidate 0's */
            unsigned long long hv = 0;
            if ((i > 0 && fill_operands(s, p, x, W, y) != cudaSuccess) ||
                cublasLtMatmul(g->lt, p->op, &one, W, p->a, x, p->b, &beta, y, p->c, y, p->c, &res[i].algo, g->ws,
                               g->ws_bytes, s) != CUBLAS_STATUS_SUCCESS ||
                hk_hash16(s, y, ny16, h) != cudaSuccess ||
                cudaMemcpyAsync(&hv, h, sizeof hv, cudaMemcpyDeviceToHost, s) != cudaSuccess ||
                cudaStreamSynchronize(s) != cudaSuccess) {
                if (i == 0) goto done; /* no reference: keep the first choice */
                continue;
            }
            if (i == 0) ref = hv;
            else if (hv != ref) {
                p->n_differ++;
                continue;
            }
        }
        float t_best = 1e30f;
        for (int r = 0; r < 3; r++) {
            float ms = 0;
            cudaEventRecord(a, s);
            cublasStatus_t st = cublasLtMatmul(g->lt, p->op, &one, W, p->a, x, p->b, &beta, y, p->c, y, p->c,
                                               &res[i].algo, g->ws, g->ws_bytes, s);
            cudaEventRecord(b, s);
            if (st != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(b) != cudaSuccess ||
                cudaEventElapsedTime(&ms, a, b) != cudaSuccess) {
                t_best = 1e30f;
                break;
            }
            if (ms < t_best) t_best = ms;
        }
        if (i == 0) p->ms_first = t_best < 1e29f ? t_best : 0;
        if (t_best < best_ms) best_ms = t_best, best = i;
    }
    p->ms_pick = best_ms < 1e29f ? best_ms : 0;
done:
    cudaGetLastError();
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    cudaFree(x), cudaFree(W), cudaFree(y), cudaFree(h);
    return best;
}

/* Row-major C[M, N] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
 * cuBLAS's first operand is our B (stored [K, N] when tb = 0: column-major
 * N x K, no transpose; stored [N, K] when tb = 1: column-major K x N,
 * transposed), its second our A likewise. */
static hydra_status make_plan(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, int lda, int ldb,
                              int ldc, int bf16, int acc, int out16, struct plan **out) {
    struct plan *p = calloc(1, sizeof *p);
    if (!p) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    p->M = M, p->N = N, p->K = K, p->bf16 = bf16, p->acc = acc, p->out16 = out16;
    p->ta = ta, p->tb = tb, p->lda = lda, p->ldb = ldb, p->ldc = ldc;
    cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int ar = tb ? K : N, ac = tb ? N : K, br = ta ? M : K, bc = ta ? K : M;
    p->na = (size_t)ldb * ac, p->nb = (size_t)lda * bc;
    int ok = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->a, in, ar, ac, ldb) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->b, in, br, bc, lda) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->c, out16 ? CUDA_R_16BF : CUDA_R_32F, N, M, ldc) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res[32]; /* small M: the fitting tiles are often far down the list */
    int found = 0;
    if (ok && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes,
                                             sizeof g->ws_bytes) == CUBLAS_STATUS_SUCCESS)
        ok = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref, M <= 256 ? 32 : 8, res, &found) ==
                 CUBLAS_STATUS_SUCCESS && found > 0;
    else ok = 0;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!ok) {
        plan_free(p);
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: cuBLASLt has no algorithm for a %s GEMM %dx%dx%d",
                               bf16 ? "bf16" : "f32", M, N, K);
    }
    p->n_cand = found;
    p->pick = g->choice == HYDRA_GEMM_FIRST ? 0 : pick_fastest(g, s, p, res, found);
    p->algo = res[p->pick].algo;
    p->next = g->plans;
    g->plans = p;
    *out = p;
    return HYDRA_OK;
}

hydra_status hydra_gemm_ex(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A, int lda,
                           const void *B, int ldb, float *C, int ldc, int bf16, int acc) {
    return hydra_gemm_ex_add(g, s, ta, tb, M, N, K, A, lda, B, ldb, acc ? C : NULL, C, ldc, bf16);
}

/* C = op(A) op(B) (+ Cin), C and Cin f32 or (out16) bf16. */
static hydra_status gemm_run(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A,
                             int lda, const void *B, int ldb, const void *Cin, void *C, int ldc, int bf16, int out16) {
    const int acc = Cin != NULL;
    if (M <= 0 || N <= 0 || K <= 0) {
        if (acc && Cin != C && M > 0 && N > 0) { /* nothing to add: D = Cin */
            const size_t e = out16 ? 2 : 4;
            cudaError_t r = cudaMemcpy2DAsync(C, (size_t)ldc * e, Cin, (size_t)ldc * e, (size_t)N * e, (size_t)M,
                                              cudaMemcpyDeviceToDevice, s);
            if (r != cudaSuccess) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: copy: %s", cudaGetErrorString(r));
        }
        return HYDRA_OK;
    }
    struct plan *p = g->plans;
    while (p && !(p->M == M && p->N == N && p->K == K && p->bf16 == bf16 && p->acc == acc && p->ta == ta &&
                  p->tb == tb && p->lda == lda && p->ldb == ldb && p->ldc == ldc && p->out16 == out16))
        p = p->next;
    if (!p) HYDRA_CHECK(make_plan(g, s, ta, tb, M, N, K, lda, ldb, ldc, bf16, acc, out16, &p));
    const float one = 1.0f, beta = acc ? 1.0f : 0.0f;
    cublasStatus_t st = cublasLtMatmul(g->lt, p->op, &one, B, p->a, A, p->b, &beta, acc ? Cin : C, p->c, C, p->c,
                                       &p->algo, g->ws, g->ws_bytes, s);
    if (st != CUBLAS_STATUS_SUCCESS)
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: cublasLtMatmul %dx%dx%d (trans %d%d) failed (status %d)", M, N,
                               K, ta, tb, (int)st);
    return HYDRA_OK;
}

hydra_status hydra_gemm_ex_add(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A,
                               int lda, const void *B, int ldb, const float *Cin, float *C, int ldc, int bf16) {
    return gemm_run(g, s, ta, tb, M, N, K, A, lda, B, ldb, Cin, C, ldc, bf16, 0);
}

hydra_status hydra_gemm_ex16(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A,
                             int lda, const void *B, int ldb, void *C, int ldc) {
    return gemm_run(g, s, ta, tb, M, N, K, A, lda, B, ldb, NULL, C, ldc, 1, 1);
}

hydra_status hydra_gemm(hydra_gemm_ctx *g, cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y,
                        int bf16, int acc) {
    if (M <= 0 || N <= 0 || K <= 0) return HYDRA_OK;
    if (M <= g->small_m) {
        cudaError_t e = hk_gemm_small(s, M, N, K, x, W, y, bf16, acc);
        if (e != cudaSuccess) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: small GEMM %dx%dx%d: %s", M, N, K, cudaGetErrorString(e));
        return HYDRA_OK;
    }
    return hydra_gemm_ex(g, s, 0, 1, M, N, K, x, K, W, K, y, N, bf16, acc);
}

hydra_status hydra_gemm_in(hydra_gemm_ctx *g, cudaStream_t s, int M, int N, int K, int in, const float *x,
                           const float *nw, float eps, void *tmp, const void *W, float *y, int bf16, int acc) {
    if (M <= 0 || N <= 0 || K <= 0) return HYDRA_OK;
    if (in == HK_IN_PLAIN) return hydra_gemm(g, s, M, N, K, x, W, y, bf16, acc);
    if (M <= g->small_m) {
        cudaError_t e = hk_gemm_small_in(s, M, N, K, in, x, nw, eps, W, y, bf16, acc);
        if (e != cudaSuccess)
            return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: small GEMM %dx%dx%d (fused input): %s", M, N, K, cudaGetErrorString(e));
        return HYDRA_OK;
    }
    cudaError_t e = in == HK_IN_RMSNORM ? hk_rmsnorm(s, M, K, x, nw, eps, tmp, bf16) : hk_swiglu(s, M, K, x, tmp, bf16);
    if (e != cudaSuccess) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: GEMM input kernel: %s", cudaGetErrorString(e));
    return hydra_gemm(g, s, M, N, K, tmp, W, y, bf16, acc);
}

size_t hydra_gemm_report(const hydra_gemm_ctx *g, char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (const struct plan *p = g->plans; p; p = p->next) {
        int w = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0,
                         "  %6d x %6d x %6d  t%d%d %s%s  candidate %d of %d (%d other bits)  first %.3f ms, taken %.3f ms\n",
                         p->M, p->N, p->K, p->ta, p->tb, p->bf16 ? "bf16" : "f32",
                         p->out16 ? "->bf16" : p->acc ? " acc" : "", p->pick, p->n_cand, p->n_differ, p->ms_first,
                         p->ms_pick);
        if (w > 0) n += (size_t)w;
    }
    return n;
}

void hydra_gemm_plan_info(const hydra_gemm_ctx *g, int info[3]) {
    const struct plan *p = g->plans;
    info[0] = p ? p->pick : 0, info[1] = p ? p->n_cand : 0, info[2] = p ? p->n_differ : 0;
}
