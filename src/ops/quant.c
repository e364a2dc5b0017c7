/* quant.c — int8 / int4 block-quantised weights for CPU decode (issue 20,
 * docs/quantization.md). Decode at batch 1 reads every weight once per token,
 * so it runs at memory speed: 1 byte (int8) or half a byte (int4) per weight
 * plus a bf16 scale per 32, instead of 4 (f32) or 2 (bf16).
 *
 * Small M (decode, speculative verify) quantises the activations too, per
 * row and block of 32 (dynamic int8, llama.cpp's Q8_0 layout), so that a
 * block's products are one integer instruction: AVX-512 VNNI vpdpbusd or
 * AVX2 vpmaddubsw, chosen at run time (quant_kernel.h), against a plain C
 * reference that the tests compare them with. Large M (prefill) dequantises
 * the weights a block of rows at a time and multiplies in f32 with BLAS,
 * where compute, not bandwidth, is the limit. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>

#include "core/internal.h"

/* A quantised activation matrix [M, nb blocks]: values, scales, block sums. */
typedef struct {
    int8_t *q;  /* [M, nb * 32] */
    float *d;   /* [M, nb] */
    int32_t *s; /* [M, nb]: sum of the block's values (removes the weight offset) */
} qk_act;

static inline float qk_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f32 -> bf16 with the magnitude rounded up (toward +-inf), so that
 * |x| / |bf16(d)| never exceeds |x| / |d|. */
static uint16_t bf16_round_away(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0xffffu) >> 16);
}

int hydra_quant_row_blocks(int K) { return (K + HYDRA_QUANT_BLOCK - 1) / HYDRA_QUANT_BLOCK; }

size_t hydra_quant_row_bytes(hydra_quant q, int K) {
    size_t nb = (size_t)hydra_quant_row_blocks(K);
    return q == HYDRA_QUANT_INT8 ? nb * 32 : q == HYDRA_QUANT_INT4 ? nb * 16 : 0;
}

const char *hydra_quant_name(hydra_quant q) {
    return q == HYDRA_QUANT_INT8 ? "int8" : q == HYDRA_QUANT_INT4 ? "int4" : q == HYDRA_QUANT_NONE ? "none" : "unknown";
}

hydra_status hydra_quant_parse(const char *name, hydra_quant *out) {
    if (!name || !out) return hydra_set_error(HYDRA_ERR_ARG, "quant_parse: NULL argument");
    for (int q = HYDRA_QUANT_NONE; q <= HYDRA_QUANT_INT4; q++)
        if (strcmp(name, hydra_quant_name((hydra_quant)q)) == 0) {
            *out = (hydra_quant)q;
            return HYDRA_OK;
        }
    return hydra_set_error(HYDRA_ERR_ARG, "unknown quantisation \"%.32s\" (use int8, int4 or none)", name);
}

static hydra_status check_fmt(const char *who, hydra_quant q, int N, int K) {
    if (q != HYDRA_QUANT_INT8 && q != HYDRA_QUANT_INT4)
        return hydra_set_error(HYDRA_ERR_ARG, "%s: unknown quantisation %d (HYDRA_QUANT_INT8 or _INT4)", who, (int)q);
    if (N < 0 || K < 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: negative dimension", who);
    return HYDRA_OK;
}

/* ------------------------------------------------------- (de)quantise */
/* One block of n <= 32 weights (the rest of the block is padding). int8:
 * d = max|w| / 127; int4 (Q4_0): d = -(the signed w of largest |w|) / 8, so
 * that value lands on -8 and the 16 levels are all used. */
static void quantize_block(hydra_quant fmt, const float *w, int n, uint8_t *dst, uint16_t *scale) {
    float amax = 0, mx = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(w[j]) > amax) amax = fabsf(w[j]), mx = w[j];
    float d = fmt == HYDRA_QUANT_INT8 ? amax / 127.0f : mx / -8.0f;
    *scale = bf16_round_away(d);
    float dr = qk_bf16(*scale), id = dr != 0.0f ? 1.0f / dr : 0.0f;
    int lo = fmt == HYDRA_QUANT_INT8 ? -127 : -8, hi = fmt == HYDRA_QUANT_INT8 ? 127 : 7;
    int8_t q[HYDRA_QUANT_BLOCK];
    for (int j = 0; j < HYDRA_QUANT_BLOCK; j++) {
        int v = j < n ? (int)lrintf(w[j] * id) : 0;
        q[j] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
    }
    if (fmt == HYDRA_QUANT_INT8) memcpy(dst, q, 32);
    else
        for (int j = 0; j < 16; j++) dst[j] = (uint8_t)((q[j] + 8) | (q[j + 16] + 8) << 4);
}

/* Value j (0..31) of a block. */
static inline int block_value(hydra_quant fmt, const uint8_t *blk, int j) {
    if (fmt == HYDRA_QUANT_INT8) return ((const int8_t *)blk)[j];
    return (j < 16 ? blk[j] & 15 : blk[j - 16] >> 4) - 8;
}

hydra_status hydra_quantize_rows(hydra_quant q, int N, int K, const float *W, void *qdata, uint16_t *scales) {
    HYDRA_CHECK(check_fmt("quantize_rows", q, N, K));
    if (!W || !qdata || !scales) return hydra_set_error(HYDRA_ERR_ARG, "quantize_rows: NULL pointer");
    const int nb = hydra_quant_row_blocks(K);
    const size_t rb = hydra_quant_row_bytes(q, K), bb = rb / (nb ? nb : 1);
#pragma omp parallel for schedule(static) if ((size_t)N * K > 262144)
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            int len = K - b * 32 < 32 ? K - b * 32 : 32;
            quantize_block(q, W + (size_t)n * K + (size_t)b * 32, len, (uint8_t *)qdata + n * rb + b * bb,
                           scales + (size_t)n * nb + b);
        }
    return HYDRA_OK;
}

/* One block back to f32: n <= 32 values (the padding is dropped). Written
 * per format with constant trip counts so that the compiler vectorises it
 * (prefill dequantises every matrix once per chunk). */
static void dequantize_block(hydra_quant fmt, const uint8_t *blk, float d, int n, float *dst) {
    float tmp[HYDRA_QUANT_BLOCK];
    if (fmt == HYDRA_QUANT_INT8) {
        for (int j = 0; j < 32; j++) tmp[j] = d * (float)((const int8_t *)blk)[j];
    } else {
        for (int j = 0; j < 16; j++) {
            tmp[j] = d * (float)((blk[j] & 15) - 8);
            tmp[j + 16] = d * (float)((blk[j] >> 4) - 8);
        }
    }
    memcpy(dst, tmp, (size_t)n * sizeof *dst);
}

hydra_status hydra_dequantize_rows(hydra_quant q, int N, int K, const void *qdata, const uint16_t *scales,
                                   float *W) {
    HYDRA_CHECK(check_fmt("dequantize_rows", q, N, K));
    if (!W || !qdata || !scales) return hydra_set_error(HYDRA_ERR_ARG, "dequantize_rows: NULL pointer");
    const int nb = hydra_quant_row_blocks(K);
    const size_t rb = hydra_quant_row_bytes(q, K), bb = rb / (nb ? nb : 1);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            int len = K - b * 32 < 32 ? K - b * 32 : 32;
            dequantize_block(q, (const uint8_t *)qdata + n * rb + b * bb, qk_bf16(scales[(size_t)n * nb + b]), len,
                             W + (size_t)n * K + (size_t)b * 32);
        }
    return HYDRA_OK;
}

/* Activations [M, K] -> int8 blocks: d = max|x| / 127 per block (f32). */
static void quantize_act(int M, int K, const float *x, qk_act *a) {
    const int nb = hydra_quant_row_blocks(K);
    for (int m = 0; m < M; m++)
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)m * K + (size_t)b * 32;
            int len = K - b * 32 < 32 ? K - b * 32 : 32;
            float amax = 0;
            for (int j = 0; j < len; j++) amax = fmaxf(amax, fabsf(xb[j]));
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            int8_t *q = a->q + ((size_t)m * nb + b) * 32;
            int32_t s = 0;
            for (int j = 0; j < 32; j++) {
                int v = j < len ? (int)lrintf(xb[j] * id) : 0;
                v = v < -127 ? -127 : v > 127 ? 127 : v;
                q[j] = (int8_t)v;
                s += v;
            }
            a->d[(size_t)m * nb + b] = d;
            a->s[(size_t)m * nb + b] = s;
        }
}

/* ------------------------------------------------------------ kernels */
/* The reference: integer block dot products, f32 sum of d_w d_x times them. */
static void ref_rows(int fmt, int M, int N, int K, const qk_act *a, const uint8_t *W, const uint16_t *D, float *y,
                     int n0, int n1, int accumulate) {
    const int nb = hydra_quant_row_blocks(K);
    const size_t rb = hydra_quant_row_bytes((hydra_quant)fmt, K), bb = rb / (nb ? nb : 1);
    for (int n = n0; n < n1; n++)
        for (int m = 0; m < M; m++) {
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = W + (size_t)n * rb + b * bb;
                const int8_t *xq = a->q + ((size_t)m * nb + b) * 32;
                int32_t s = 0;
                for (int j = 0; j < 32; j++) s += block_value((hydra_quant)fmt, blk, j) * xq[j];
                acc += (float)s * (qk_bf16(D[(size_t)n * nb + b]) * a->d[(size_t)m * nb + b]);
            }
            float *dst = y + (size_t)m * N + n;
            *dst = accumulate ? *dst + acc : acc;
        }
}

/* The SIMD copies: the same body under two targets. Functions in these
 * regions run only after the CPU check in kernel_init. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")
#endif
#define QK_VNNI 1
#define QK_SUFFIX _vnni
#include "ops/quant_kernel.h"
#undef QK_VNNI
#undef QK_SUFFIX
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define QK_VNNI 0
#define QK_SUFFIX _avx2
#include "ops/quant_kernel.h"
#undef QK_VNNI
#undef QK_SUFFIX
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

typedef void (*qk_rows_fn)(int, int, int, int, const qk_act *, const uint8_t *, const uint16_t *, float *, int, int,
                           int);
static const struct {
    const char *name;
    qk_rows_fn fn;
} g_kernels[] = {{"ref", ref_rows}, {"avx2", qk_rows_avx2}, {"vnni", qk_rows_vnni}};
enum { QK_REF, QK_AVX2, QK_VNNI_K, QK_N };

static pthread_once_t g_kernel_once = PTHREAD_ONCE_INIT;
static int g_best, g_kernel;

static int cpu_has(int k) {
    __builtin_cpu_init();
    if (k == QK_REF) return 1;
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == QK_AVX2) return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

static void kernel_init(void) {
    g_best = cpu_has(QK_VNNI_K) ? QK_VNNI_K : cpu_has(QK_AVX2) ? QK_AVX2 : QK_REF;
    const char *ref = getenv("HYDRA_QUANT_REF");
    g_kernel = ref && *ref && strcmp(ref, "0") != 0 ? QK_REF : g_best;
}

static int kernel_index(const char *name) {
    for (int k = 0; k < QK_N; k++)
        if (strcmp(name, g_kernels[k].name) == 0) return k;
    return -1;
}

int hydra_quant_kernel_supported(const char *name) {
    int k = name ? kernel_index(name) : -1;
    return k >= 0 && cpu_has(k);
}

hydra_status hydra_quant_set_kernel(const char *name) {
    pthread_once(&g_kernel_once, kernel_init);
    if (!name) return hydra_set_error(HYDRA_ERR_ARG, "quant_set_kernel: NULL name");
    if (strcmp(name, "auto") == 0) {
        g_kernel = g_best;
        return HYDRA_OK;
    }
    int k = kernel_index(name);
    if (k < 0) return hydra_set_error(HYDRA_ERR_ARG, "quant_set_kernel: unknown kernel \"%.32s\" (auto, vnni, avx2, ref)", name);
    if (!cpu_has(k)) return hydra_set_error(HYDRA_ERR_ARG, "quant_set_kernel: this CPU cannot run the %s kernel", name);
    g_kernel = k;
    return HYDRA_OK;
}

const char *hydra_quant_kernel(void) {
    pthread_once(&g_kernel_once, kernel_init);
    return g_kernels[g_kernel].name;
}

/* ------------------------------------------------------------- matmul */
#define QUANT_SMALL_M 16
#define DEQ_BLOCK_ROWS 64

hydra_status hydra_op_matmul_q(hydra_quant q, int M, int N, int K, const float *x, const void *W,
                               const uint16_t *scales, float *y, int accumulate) {
    HYDRA_CHECK(check_fmt("matmul_q", q, N, K));
    if (!x || !W || !scales || !y) return hydra_set_error(HYDRA_ERR_ARG, "matmul_q: NULL pointer");
    if (M < 0) return hydra_set_error(HYDRA_ERR_ARG, "matmul_q: negative dimension");
    if (M == 0 || N == 0) return HYDRA_OK;
    const int nb = hydra_quant_row_blocks(K);
    const size_t rb = hydra_quant_row_bytes(q, K);
    if (M >= QUANT_SMALL_M) { /* prefill: f32 rows for BLAS, a block at a time */
        int rows = N < DEQ_BLOCK_ROWS ? N : DEQ_BLOCK_ROWS;
        float *blk = hydra_aligned_alloc((size_t)rows * (K ? K : 1) * sizeof(float));
        if (!blk) return hydra_set_error(HYDRA_ERR_NOMEM, "matmul_q: out of memory");
        hydra_status st = HYDRA_OK;
        for (int n0 = 0; n0 < N && !st; n0 += rows) {
            int n = N - n0 < rows ? N - n0 : rows;
            hydra_dequantize_rows(q, n, K, (const uint8_t *)W + n0 * rb, scales + (size_t)n0 * nb, blk);
            st = hydra_op_matmul_ex(0, 1, M, n, K, x, K, blk, K, y + n0, N, accumulate);
        }
        hydra_aligned_free(blk);
        return st;
    }
    pthread_once(&g_kernel_once, kernel_init);
    /* activations: one allocation, int8 values first (32 bytes a block) */
    size_t nab = (size_t)M * nb;
    char *buf = malloc(nab * (32 + sizeof(float) + sizeof(int32_t)) + 1);
    if (!buf) return hydra_set_error(HYDRA_ERR_NOMEM, "matmul_q: out of memory");
    qk_act a = {(int8_t *)buf, (float *)(buf + nab * 32), (int32_t *)(buf + nab * 36)};
    quantize_act(M, K, x, &a);
    qk_rows_fn fn = g_kernels[g_kernel].fn;
    if ((size_t)M * N * K < 65536) {
        fn(q, M, N, K, &a, W, scales, y, 0, N, accumulate);
    } else {
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int n0 = (int)((long long)N * id / nt), n1 = (int)((long long)N * (id + 1) / nt);
            fn(q, M, N, K, &a, W, scales, y, n0, n1, accumulate);
        }
    }
    free(buf);
    return HYDRA_OK;
}
