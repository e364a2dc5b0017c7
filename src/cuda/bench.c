/* bench.c — timed building blocks for `hydra bench --device cuda`
 * (include/hydralm_cuda.h): the GEMM and copy ceilings of the card and the
 * delta-rule kernels, each on random data with CUDA events, median of reps
 * after a warm-up. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "hydralm_cuda.h"

/* Median milliseconds of `reps` runs of fn(ctx) on stream s (after one warm-up). */
typedef hydra_status (*timed_fn)(void *ctx, cudaStream_t s);
static hydra_status time_median(timed_fn fn, void *ctx, cudaStream_t s, int reps, double *ms) {
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    cudaEvent_t a, b;
    CU_CHECK(cudaEventCreate(&a));
    CU_CHECK(cudaEventCreate(&b));
    double t[64];
    hydra_status st = fn(ctx, s);
    for (int r = 0; r < reps && !st; r++) {
        float x = 0;
        cudaEventRecord(a, s);
        st = fn(ctx, s);
        cudaEventRecord(b, s);
        if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&x, a, b) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: timing failed");
        t[r] = x;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    if (!st) *ms = hydra_median(t, reps);
    return st;
}

static hydra_status use_device(int device) {
    if (device < 0 || device >= hydra_dev_count())
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda:%d: no such device (%d visible)", device, hydra_dev_count());
    CU_CHECK(cudaSetDevice(device));
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ GEMM */
typedef struct {
    hydra_gemm_ctx g;
    int M, N, K, bf16;
    void *x, *W;
    float *y;
} gemm_ctx;

static hydra_status run_gemm(void *p, cudaStream_t s) {
    gemm_ctx *c = p;
    return hydra_gemm(&c->g, s, c->M, c->N, c->K, c->x, c->W, c->y, c->bf16, 0);
}

/* A random device array of n elements, f32 or bf16. */
static hydra_status rand_array(void **p, size_t n, int bf16, uint64_t seed) {
    float *f = NULL;
    HYDRA_CHECK(hydra_cu_alloc((void **)&f, n * 4, "benchmark data"));
    cudaError_t e = hk_fill_uniform(0, f, n, seed, -1.0f, 1.0f);
    if (e == cudaSuccess && bf16) {
        void *h = NULL;
        hydra_status st = hydra_cu_alloc(&h, n * 2, "benchmark data");
        if (st) {
            cudaFree(f);
            return st;
        }
        e = hk_f32_to_bf16(0, f, h, n);
        cudaDeviceSynchronize();
        cudaFree(f);
        *p = h;
    } else *p = f;
    if (e != cudaSuccess) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: filling benchmark data failed");
    return HYDRA_OK;
}

hydra_status hydra_cuda_bench_gemm(int device, int M, int N, int K, int bf16, int reps, double *tflops) {
    if (!tflops || M <= 0 || N <= 0 || K <= 0) return hydra_set_error(HYDRA_ERR_ARG, "bench_gemm: bad arguments");
    HYDRA_CHECK(use_device(device));
    gemm_ctx c = {.M = M, .N = N, .K = K, .bf16 = bf16};
    HYDRA_CHECK(hydra_gemm_init(&c.g));
    hydra_status st = rand_array(&c.x, (size_t)M * K, bf16, 1);
    if (!st) st = rand_array(&c.W, (size_t)N * K, bf16, 2);
    if (!st) st = hydra_cu_alloc((void **)&c.y, (size_t)M * N * 4, "benchmark output");
    double ms = 0;
    if (!st) st = time_median(run_gemm, &c, 0, reps, &ms);
    if (!st) *tflops = 2.0 * M * N * (double)K / (ms * 1e-3) / 1e12;
    cudaFree(c.x), cudaFree(c.W), cudaFree(c.y);
    hydra_gemm_free(&c.g);
    return st;
}

/* ------------------------------------------------------------------ copy */
typedef struct {
    void *a, *b;
    size_t bytes;
} copy_ctx;

static hydra_status run_copy(void *p, cudaStream_t s) {
    copy_ctx *c = p;
    CU_CHECK(cudaMemcpyAsync(c->b, c->a, c->bytes, cudaMemcpyDeviceToDevice, s));
    return HYDRA_OK;
}

hydra_status hydra_cuda_bench_copy(int device, size_t bytes, int reps, double *gbs) {
    if (!gbs || bytes < 4) return hydra_set_error(HYDRA_ERR_ARG, "bench_copy: bad arguments");
    HYDRA_CHECK(use_device(device));
    copy_ctx c = {.bytes = bytes & ~(size_t)3};
    hydra_status st = rand_array(&c.a, c.bytes / 4, 0, 3);
    if (!st) st = hydra_cu_alloc(&c.b, c.bytes, "benchmark output");
    double ms = 0;
    if (!st) st = time_median(run_copy, &c, 0, reps, &ms);
    if (!st) *gbs = 2.0 * (double)c.bytes / (ms * 1e-3) / 1e9;
    cudaFree(c.a), cudaFree(c.b);
    return st;
}

/* ------------------------------------------------------------ delta rule */
typedef struct {
    int B, T, H, d, chunked;
    float *q, *k, *v, *g, *beta, *S, *o;
    float **Sp; /* [B] device pointers into S */
    void *work; /* the chunked kernel's scratch */
    uint16_t *q16, *k16, *v16, *o16; /* bf16 copies for chunked-tc-bf16 */
    int bwd;                         /* 1: the backward (tc = bwd_tc); dO = o's buffer, grads below */
    int bwd_tc;
    void *keep; /* backward-kept: the forward's kept work (filled once before timing) */
    float *dq, *dk, *dv, *dg, *db;
} delta_ctx;

static hydra_status run_delta(void *p, cudaStream_t s) {
    delta_ctx *c = p;
    cudaError_t e = c->bwd && c->keep
                        ? hk_delta_rule_bwd_kept(s, c->B, c->T, c->H, c->d, c->q, c->k, c->v, c->g, c->beta, c->o, c->dq,
                                                 c->dk, c->dv, c->dg, c->db, c->work, c->keep)
                    : c->bwd ? hk_delta_rule_bwd(s, c->B, c->T, c->H, c->d, c->q, c->k, c->v, c->g, c->beta, c->o, c->dq,
                                                 c->dk, c->dv, c->dg, c->db, c->work, c->bwd_tc)
                    : c->chunked == 4
                        ? hk_delta_rule_tc_keep(s, c->B, c->T, c->H, c->d, c->q, c->k, c->v, c->g, c->beta, c->o, c->work)
                    : c->chunked == 3
                        ? hk_delta_rule_tc(s, c->B, c->T, c->H, c->d, c->q16, c->k16, c->v16, c->g, c->beta, c->Sp, c->o16, c->work, 1)
                    : c->chunked
                        ? hk_delta_rule_chunked(s, c->B, c->T, c->H, c->d, c->d, c->q, c->k, c->v, c->g, c->beta, c->Sp, c->o, c->work,
                                                c->chunked == 2)
                        : hk_delta_rule_recurrent(s, c->B, c->T, c->H, c->d, c->d, c->q, c->k, c->v, c->g, c->beta, c->Sp, c->o);
    if (e != cudaSuccess) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda delta rule: %s", cudaGetErrorString(e));
    return HYDRA_OK;
}

hydra_status hydra_cuda_bench_delta_rule(int device, const char *kernel, int B, int T, int H, int d, int reps,
                                         double *ms) {
    if (!ms || !kernel || B <= 0 || T <= 0 || H <= 0 || d <= 0)
        return hydra_set_error(HYDRA_ERR_ARG, "bench_delta_rule: bad arguments");
    int chunked = !strcmp(kernel, "chunked") ? 1 : !strcmp(kernel, "chunked-tc") ? 2 : !strcmp(kernel, "chunked-tc-bf16") ? 3
                : !strcmp(kernel, "chunked-tc-keep") ? 4 : 0;
    const int kept = !strcmp(kernel, "backward-kept");
    const int bwd = !strcmp(kernel, "backward") || !strcmp(kernel, "backward-tc") || kept;
    if (!chunked && !bwd && strcmp(kernel, "recurrent"))
        return hydra_set_error(HYDRA_ERR_ARG,
                               "bench_delta_rule: kernel is recurrent, chunked, chunked-tc, chunked-tc-bf16, chunked-tc-keep "
                               "(training's forward), backward, backward-tc or backward-kept (after chunked-tc-keep), not \"%s\"",
                               kernel);
    if ((chunked == 4 || kept) && d != 64 && d != 128)
        return hydra_set_error(HYDRA_ERR_ARG, "bench_delta_rule: %s needs d 64 or 128", kernel);
    HYDRA_CHECK(use_device(device));
    delta_ctx c = {.B = B, .T = T, .H = H, .d = d, .chunked = chunked, .bwd = bwd, .bwd_tc = !strcmp(kernel, "backward-tc")};
    size_t n = (size_t)B * T * H * d, nh = (size_t)B * T * H;
    /* q, k in [-1/sqrt(d), 1/sqrt(d)] per coordinate (norms ~ 0.6), g in [-0.1, 0],
     * beta in [0, 1]: the model's ranges, so the state stays bounded */
    float r = 1.0f / sqrtf((float)d);
    hydra_status st = HYDRA_OK;
    float **bufs[] = {&c.q, &c.k, &c.v, &c.g, &c.beta, &c.S, &c.o};
    size_t sizes[] = {n, n, n, nh, nh, (size_t)B * H * d * d, n};
    float lo[] = {-r, -r, -1, -0.1f, 0, 0, 0}, hi[] = {r, r, 1, 0, 1, 0, 0};
    for (int i = 0; i < 7 && !st; i++) {
        st = hydra_cu_alloc((void **)bufs[i], sizes[i] * 4, "benchmark data");
        if (!st && hk_fill_uniform(0, *bufs[i], sizes[i], 10 + i, lo[i], hi[i]) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: filling benchmark data failed");
    }
    float *hp[1024];
    if (!st && B > 1024) st = hydra_set_error(HYDRA_ERR_ARG, "bench_delta_rule: B <= 1024");
    for (int b = 0; b < B && !st; b++) hp[b] = c.S + (size_t)b * H * d * d;
    if (!st) st = hydra_cu_alloc((void **)&c.Sp, (size_t)B * sizeof(float *), "benchmark pointers");
    if (!st && chunked)
        st = hydra_cu_alloc(&c.work, chunked == 4 ? hk_delta_rule_keep_bytes(B, T, H, d) : hk_delta_rule_chunked_scratch(B, T, H, d),
                            "the chunked kernel's scratch");
    if (!st && bwd) { /* dO = the (random) o buffer; gradients; the backward's scratch */
        st = hk_fill_uniform(0, c.o, n, 17, -1, 1) != cudaSuccess ? hydra_set_error(HYDRA_ERR_DEVICE, "cuda: fill failed")
                                                                  : hydra_cu_alloc(&c.work, hk_delta_rule_bwd_scratch(B, T, H, d), "the backward's scratch");
        float **gb[] = {&c.dq, &c.dk, &c.dv, &c.dg, &c.db};
        for (int i = 0; i < 5 && !st; i++) st = hydra_cu_alloc((void **)gb[i], (i < 3 ? n : nh) * 4, "benchmark gradients");
    }
    uint16_t **h16[] = {&c.q16, &c.k16, &c.v16, &c.o16};
    const float *f32[] = {c.q, c.k, c.v, NULL};
    for (int i = 0; i < 4 && !st && chunked == 3; i++) {
        st = hydra_cu_alloc((void **)h16[i], n * 2, "benchmark data");
        if (!st && f32[i] && hk_f32_to_bf16(0, f32[i], *h16[i], n) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: rounding benchmark data failed");
    }
    if (!st && cudaMemcpy(c.Sp, hp, (size_t)B * sizeof(float *), cudaMemcpyHostToDevice) != cudaSuccess)
        st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: copy failed");
    if (!st && kept) { /* the forward that keeps the work, once (its o into dq, overwritten by the backward) */
        st = hydra_cu_alloc(&c.keep, hk_delta_rule_keep_bytes(B, T, H, d), "the kept forward work");
        if (!st && hk_delta_rule_tc_keep(0, B, T, H, d, c.q, c.k, c.v, c.g, c.beta, c.dq, c.keep) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: the kept forward failed");
    }
    if (!st) st = time_median(run_delta, &c, 0, reps, ms);
    for (int i = 0; i < 7; i++) cudaFree(*bufs[i]);
    cudaFree(c.Sp);
    if (c.work) cudaFree(c.work);
    if (c.keep) cudaFree(c.keep);
    for (int i = 0; i < 4; i++) cudaFree(*h16[i]);
    float *gb[] = {c.dq, c.dk, c.dv, c.dg, c.db};
    for (int i = 0; i < 5; i++)
        if (gb[i]) cudaFree(gb[i]);
    return st;
}
