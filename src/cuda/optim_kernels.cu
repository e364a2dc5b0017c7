/* optim_kernels.cu — the elementwise and reduction kernels of the device
 * optimizer (optim.c): grad-norm / Frobenius-norm sums, clipping, AdamW,
 * Muon's momentum, the Newton–Schulz combinations and its update. The
 * Newton–Schulz products themselves go through cuBLASLt (gemm.c).
 * Formulas use __f*_rn so they are rounded exactly as the C expressions of
 * src/train/optim.c (no FMA contraction); see optim_kernels.h. */
#include <cuda_bf16.h>

#include "device_util.cuh"
#include "launch.cuh"
#include "optim_kernels.h"

namespace {

constexpr int THREADS = 256;
constexpr unsigned MAX_BLOCKS = 4096;

unsigned grid_for(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 1 ? 1 : b > MAX_BLOCKS ? MAX_BLOCKS : b);
}

__device__ __forceinline__ float load(const void *x, size_t i, int bf16) {
    return bf16 ? __bfloat162float(((const __nv_bfloat16 *)x)[i]) : ((const float *)x)[i];
}

/* Sum of v over the block in a fixed tree order (the same bits every run). */
__device__ double block_sum_fixed(double v) {
    __shared__ double sh[THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    return sh[0];
}

/* parts[b] = sum of squares of block b (HK_SUMSQ_BLOCK floats). */
__global__ void sumsq_parts_k(const float *x, size_t n, double *parts) {
    hk_pdl_entry();
    size_t lo = (size_t)blockIdx.x * HK_SUMSQ_BLOCK, hi = lo + HK_SUMSQ_BLOCK < n ? lo + HK_SUMSQ_BLOCK : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += THREADS) s += (double)x[i] * x[i];
    s = block_sum_fixed(s);
    if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

__global__ void sumsq_final_k(const double *parts, size_t nb, double *out) {
    hk_pdl_entry();
    double s = 0;
    for (size_t i = threadIdx.x; i < nb; i += THREADS) s += parts[i];
    s = block_sum_fixed(s);
    if (threadIdx.x == 0) out[0] = s;
}

__global__ void scale_k(float *x, size_t n, float a) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        x[i] = __fmul_rn(x[i], a);
}

/* One element of AdamW (the rounded operations of optim.c's adamw_tensor). */
__device__ __forceinline__ void adam1(float &p, float gi, float &m, float &v, float dm, float b1, float c1, float b2,
                                      float c2, float step_size, float bc2_sqrt, float eps) {
    const float mi = __fadd_rn(__fmul_rn(b1, m), __fmul_rn(c1, gi));
    const float vi = __fadd_rn(__fmul_rn(b2, v), __fmul_rn(__fmul_rn(c2, gi), gi));
    m = mi, v = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    p = __fsub_rn(__fmul_rn(p, dm), __fmul_rn(step_size, __fdiv_rn(mi, denom)));
}

/* A block per chunk. With vec (the four arrays 16-byte aligned) the chunk's
 * 4-aligned middle goes as float4 and its ends one float a thread; the same
 * bits either way. */
__global__ void adamw_k(const hk_adam_chunk *chunks, float *p, const float *g, float *m, float *v, float decay_mul,
                        float b1, float c1, float b2, float c2, float step_size, float bc2_sqrt, float eps, int vec) {
    hk_pdl_entry();
    const hk_adam_chunk ch = chunks[blockIdx.x];
    const float dm = ch.decay ? decay_mul : 1.0f;
    const size_t e = ch.start + ch.len;
    if (!vec) {
        for (size_t i = ch.start + threadIdx.x; i < e; i += THREADS)
            adam1(p[i], g[i], m[i], v[i], dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
        return;
    }
    size_t a = (ch.start + 3) & ~(size_t)3;
    if (a > e) a = e;
    const size_t b = a + ((e - a) & ~(size_t)3);
    for (size_t i = a + 4 * threadIdx.x; i < b; i += 4 * THREADS) {
        float4 P = *(float4 *)(p + i), M = *(float4 *)(m + i), V = *(float4 *)(v + i);
        const float4 G = *(const float4 *)(g + i);
        adam1(P.x, G.x, M.x, V.x, dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
        adam1(P.y, G.y, M.y, V.y, dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
        adam1(P.z, G.z, M.z, V.z, dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
        adam1(P.w, G.w, M.w, V.w, dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
        *(float4 *)(p + i) = P, *(float4 *)(m + i) = M, *(float4 *)(v + i) = V;
    }
    const size_t t = threadIdx.x; /* the ends: [start, a) and [b, e), up to 3 floats each */
    if (t < a - ch.start) adam1(p[ch.start + t], g[ch.start + t], m[ch.start + t], v[ch.start + t], dm, b1, c1, b2, c2,
                                step_size, bc2_sqrt, eps);
    if (t < e - b) adam1(p[b + t], g[b + t], m[b + t], v[b + t], dm, b1, c1, b2, c2, step_size, bc2_sqrt, eps);
}

/* A block per chunk: dst = src, rounded to bf16 where the chunk says so. */
__global__ void copy_chunks_k(const hk_copy_chunk *chunks) {
    hk_pdl_entry();
    const hk_copy_chunk ch = chunks[blockIdx.x];
    const int vec = !((size_t)ch.src & 15) && !((size_t)ch.dst & (ch.bf16 ? 7 : 15));
    const size_t n4 = vec ? ch.len / 4 : 0;
    for (size_t i = threadIdx.x; i < n4; i += THREADS) store4(ch.dst, 4 * i, load4(ch.src, 4 * i), (int)ch.bf16);
    for (size_t i = 4 * n4 + threadIdx.x; i < ch.len; i += THREADS) store(ch.dst, i, ch.src[i], (int)ch.bf16);
}

__global__ void muon_momentum_k(size_t n, const float *g, float *buf, float mu, int nesterov, float *d) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS) {
        float b = __fadd_rn(__fmul_rn(mu, buf[i]), g[i]);
        buf[i] = b;
        d[i] = nesterov ? __fadd_rn(g[i], __fmul_rn(mu, b)) : b;
    }
}

__global__ void ns_normalize_k(size_t n, const float *d, const double *sumsq, void *X, int bf16) {
    hk_pdl_entry();
    const float inv = (float)(1.0 / (sqrt(*sumsq) + 1e-7));
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        store(X, i, __fmul_rn(d[i], inv), bf16);
}

__global__ void ns_poly_k(size_t n, const float *A, const float *AA, float b, float c, void *B, int bf16) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        store(B, i, __fadd_rn(__fmul_rn(b, A[i]), __fmul_rn(c, AA[i])), bf16);
}

__global__ void ns_combine_k(size_t n, void *X, const float *Y, float a, int bf16) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        store(X, i, __fadd_rn(__fmul_rn(a, load(X, i, bf16)), Y[i]), bf16);
}

__global__ void muon_update_k(size_t n, float *p, const void *O, int bf16, float decay_mul, float step) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * THREADS)
        p[i] = __fsub_rn(__fmul_rn(p[i], decay_mul), __fmul_rn(step, load(O, i, bf16)));
}

} // namespace

extern "C" {

size_t hk_sumsq_parts(size_t n) { return n ? (n + HK_SUMSQ_BLOCK - 1) / HK_SUMSQ_BLOCK : 1; }

cudaError_t hk_sumsq(cudaStream_t s, const float *x, size_t n, double *parts, double *out) {
    size_t nb = hk_sumsq_parts(n);
    cudaError_t e = hk_launch(sumsq_parts_k, dim3((unsigned)nb), dim3(THREADS), 0, s, x, n, parts);
    if (e == cudaSuccess) e = hk_launch(sumsq_final_k, dim3(1), dim3(THREADS), 0, s, (const double *)parts, nb, out);
    return e != cudaSuccess ? e : cudaGetLastError();
}

cudaError_t hk_scale(cudaStream_t s, float *x, size_t n, float a) {
    if (!n) return cudaSuccess;
    return hk_launch(scale_k, grid_for(n), THREADS, 0, s, x, n, a);
}

cudaError_t hk_adamw(cudaStream_t s, const hk_adam_chunk *chunks, int n_chunks, float *p, const float *g, float *m,
                     float *v, float decay_mul, float b1, float c1, float b2, float c2, float step_size,
                     float bc2_sqrt, float eps) {
    if (n_chunks <= 0) return cudaSuccess;
    const int vec = !(((size_t)p | (size_t)g | (size_t)m | (size_t)v) & 15);
    return hk_launch(adamw_k, dim3((unsigned)n_chunks), dim3(THREADS), 0, s, chunks, p, g, m, v, decay_mul, b1, c1, b2,
                     c2, step_size, bc2_sqrt, eps, vec);
}

cudaError_t hk_copy_chunks(cudaStream_t s, const hk_copy_chunk *chunks, int n_chunks) {
    if (n_chunks <= 0) return cudaSuccess;
    return hk_launch(copy_chunks_k, dim3((unsigned)n_chunks), dim3(THREADS), 0, s, chunks);
}

cudaError_t hk_muon_momentum(cudaStream_t s, size_t n, const float *g, float *buf, float mu, int nesterov, float *d) {
    return hk_launch(muon_momentum_k, grid_for(n), THREADS, 0, s, n, g, buf, mu, nesterov, d);
}

cudaError_t hk_ns_normalize(cudaStream_t s, size_t n, const float *d, const double *sumsq, void *X, int bf16) {
    return hk_launch(ns_normalize_k, grid_for(n), THREADS, 0, s, n, d, sumsq, X, bf16);
}

cudaError_t hk_ns_poly(cudaStream_t s, size_t n, const float *A, const float *AA, float b, float c, void *B, int bf16) {
    return hk_launch(ns_poly_k, grid_for(n), THREADS, 0, s, n, A, AA, b, c, B, bf16);
}

cudaError_t hk_ns_combine(cudaStream_t s, size_t n, void *X, const float *Y, float a, int bf16) {
    return hk_launch(ns_combine_k, grid_for(n), THREADS, 0, s, n, X, Y, a, bf16);
}

cudaError_t hk_muon_update(cudaStream_t s, size_t n, float *p, const void *O, int bf16, float decay_mul, float step) {
    return hk_launch(muon_update_k, grid_for(n), THREADS, 0, s, n, p, O, bf16, decay_mul, step);
}

} // extern "C"
