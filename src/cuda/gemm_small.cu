/* gemm_small.cu — y[M, N] (+)= x[M, K] . W[N, K]^T for M <= 8 rows (decode,
 * speculative verify, logits of the last positions).
 *
 * Why not cuBLASLt here: its tiles are 64-256 columns wide, so a product with
 * one row runs N/128 thread blocks — 6 for the MLP's down projection — and
 * reads the weights at a small fraction of the memory bandwidth. Here a warp
 * owns COLS output columns and streams their weight rows with 16-byte loads
 * (8 bf16 or 4 f32 per lane), so the whole card reads W once, which is the
 * floor at this size: decode is bandwidth-bound. x is tiny and shared by
 * every warp (served from L1). Products and sums in f32. The decode step's
 * pre-norms and SwiGLU are folded into the input read (hk_gemm_small_in):
 * two kernels fewer per layer, and the rows they would have written never
 * leave the registers. */
#include <cuda_bf16.h>

#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int WARPS = 8;
constexpr int COLS = 2; /* output columns per warp (4 measured slower on H100: half the warps) */

__device__ __forceinline__ void load8(const __nv_bfloat16 *p, float *f) {
    uint4 u = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __bfloat1622float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}
__device__ __forceinline__ void load8(const float *p, float *f) {
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
/* Eight weights as loaded, converted later (registers kept small). */
template <typename T> struct Raw8;
template <> struct Raw8<__nv_bfloat16> {
    uint4 u;
    __device__ __forceinline__ void zero() { u = make_uint4(0u, 0u, 0u, 0u); }
    __device__ __forceinline__ void load(const __nv_bfloat16 *p) { u = *(const uint4 *)p; }
    __device__ __forceinline__ void get(float *f) const { /* bf16 -> f32 is a shift: the low half is element 0 */
        const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) f[2 * i] = __uint_as_float(w[i] << 16), f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
};
template <> struct Raw8<float> {
    float4 a, b;
    __device__ __forceinline__ void zero() { a = b = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
    __device__ __forceinline__ void load(const float *p) { a = *(const float4 *)p, b = *(const float4 *)(p + 4); }
    __device__ __forceinline__ void get(float *f) const {
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    }
};
constexpr int PRE = 4; /* weight loads per column issued before the PDL wait (a K of 1,024 at one slice) */
__device__ __forceinline__ float load1(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load1(const float *p) { return *p; }

/* The input row m, elements k..k+7, formed as IN says (kernels.h):
 * HK_IN_PLAIN reads x in the weights' dtype; HK_IN_RMSNORM and
 * HK_IN_SWIGLU read f32 rows and round the result to the weights' precision,
 * exactly as rmsnorm_k / swiglu_k would have written it for the unfused GEMM. */
__device__ __forceinline__ float like(float v, const __nv_bfloat16 *) { return __bfloat162float(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float like(float v, const float *) { return v; }
__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

template <int IN, typename T>
__device__ __forceinline__ void input8(const void *x, const float *nw, float inv, int K, int m, int k, float *xv) {
    if (IN == HK_IN_PLAIN) {
        load8((const T *)x + (size_t)m * K + k, xv);
    } else if (IN == HK_IN_RMSNORM) {
        float nv[8];
        load8((const float *)x + (size_t)m * K + k, xv);
        load8(nw + k, nv);
#pragma unroll
        for (int i = 0; i < 8; i++) xv[i] = like(xv[i] * inv * nv[i], (const T *)nullptr);
    } else {
        float uv[8];
        const float *row = (const float *)x + (size_t)m * 2 * K;
        load8(row + k, xv);
        load8(row + K + k, uv);
#pragma unroll
        for (int i = 0; i < 8; i++) xv[i] = like(silu(xv[i]) * uv[i], (const T *)nullptr);
    }
}
template <int IN, typename T>
__device__ __forceinline__ float input1(const void *x, const float *nw, float inv, int K, int m, int k) {
    if (IN == HK_IN_PLAIN) return load1((const T *)x + (size_t)m * K + k);
    const float *row = (const float *)x + (size_t)m * (IN == HK_IN_SWIGLU ? 2 : 1) * K;
    if (IN == HK_IN_RMSNORM) return like(row[k] * inv * nw[k], (const T *)nullptr);
    return like(silu(row[k]) * row[K + k], (const T *)nullptr);
}

/* K % 8 == 0 and 16-byte aligned rows: the vector path; the tail loop covers
 * any K otherwise. split = 0: each warp owns COLS columns over all of K;
 * split = 1 (narrow products, fewer blocks than SMs otherwise): the block's
 * 8 warps share COLS columns, each over an eighth of K, and the partial sums
 * meet in shared memory in a fixed order (deterministic). */
template <int M, typename T, int IN>
__global__ void __launch_bounds__(WARPS * 32) gemm_small_k(int N, int K, const void *__restrict__ x,
                                                          const float *__restrict__ nw, float eps,
                                                          const T *__restrict__ W, float *__restrict__ y, int acc,
                                                          int vec, int split) {
    __shared__ float part[WARPS][M][COLS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n0 = split ? blockIdx.x * COLS : (blockIdx.x * WARPS + warp) * COLS;
    const int KS = split ? (K / WARPS + 7) / 8 * 8 : K; /* this warp's slice of K */
    const int k_lo = split ? min(K, warp * KS) : 0, k_hi = split ? min(K, k_lo + KS) : K;
    /* The first PRE weight loads of each column are issued before the wait for
     * the previous kernel (hk_pdl_entry): no kernel of a forward writes the
     * weights, so they may be read while that kernel is still running, and
     * the chain of decode products overlaps their weight streams with the
     * work before them instead of starting each from HBM latency. */
    Raw8<T> pre[PRE][COLS];
#pragma unroll
    for (int j = 0; j < PRE; j++)
#pragma unroll
        for (int c = 0; c < COLS; c++) pre[j][c].zero();
    if (vec && n0 < N) {
#pragma unroll
        for (int j = 0; j < PRE; j++) {
            const int k = k_lo + lane * 8 + j * 32 * 8;
#pragma unroll
            for (int c = 0; c < COLS; c++)
                if (k + 8 <= k_hi && n0 + c < N) pre[j][c].load(W + (size_t)(n0 + c) * K + k);
        }
    }
    hk_pdl_entry();
    if (n0 >= N) return; /* whole blocks when split */
    float inv[M]; /* RMSNorm: 1 / rms of each row, summed by this warp (rows are short) */
#pragma unroll
    for (int m = 0; m < M; m++) {
        inv[m] = 1.0f;
        if (IN == HK_IN_RMSNORM) {
            const float *row = (const float *)x + (size_t)m * K;
            float ss = 0.0f;
            for (int k = lane; k < K; k += 32) ss += row[k] * row[k];
            for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
            inv[m] = 1.0f / sqrtf(ss / (float)K + eps);
        }
    }
    float sum[M][COLS];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < COLS; c++) sum[m][c] = 0.0f;
    int k_tail = k_lo; /* where the scalar loop starts: the slice's start, or past every whole 8-wide group */
    if (vec) {
        /* one 8-wide group of K per lane and step: w [COLS][8] times every row's inputs */
        auto group = [&](int k, float (&w)[COLS][8]) {
#pragma unroll
            for (int m = 0; m < M; m++) {
                float xv[8];
                input8<IN, T>(x, nw, inv[m], K, m, k, xv);
#pragma unroll
                for (int c = 0; c < COLS; c++)
#pragma unroll
                    for (int i = 0; i < 8; i++) sum[m][c] += w[c][i] * xv[i];
            }
        };
        int k = k_lo + lane * 8;
#pragma unroll
        for (int j = 0; j < PRE; j++, k += 32 * 8) { /* the groups loaded before the wait */
            if (k + 8 > k_hi) break;
            float w[COLS][8];
#pragma unroll
            for (int c = 0; c < COLS; c++) pre[j][c].get(w[c]); /* zeros past N (never loaded) */
            group(k, w);
        }
        for (; k + 8 <= k_hi; k += 32 * 8) {
            float w[COLS][8];
#pragma unroll
            for (int c = 0; c < COLS; c++)
                if (n0 + c < N) load8(W + (size_t)(n0 + c) * K + k, w[c]);
                else
#pragma unroll
                    for (int i = 0; i < 8; i++) w[c][i] = 0.0f;
            group(k, w);
        }
        k_tail = k_hi; /* vec: K % 8 == 0, so every slice is whole 8-wide groups */
    }
    for (int kk = k_tail + lane; kk < k_hi; kk += 32) {
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            float w = n0 + c < N ? load1(W + (size_t)(n0 + c) * K + kk) : 0.0f;
#pragma unroll
            for (int m = 0; m < M; m++) sum[m][c] += w * input1<IN, T>(x, nw, inv[m], K, m, kk);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            float v = sum[m][c];
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            sum[m][c] = v;
            if (!split && lane == 0 && n0 + c < N) {
                float *out = y + (size_t)m * N + n0 + c;
                *out = acc ? *out + v : v;
            }
        }
    if (!split) return;
    if (lane == 0)
#pragma unroll
        for (int m = 0; m < M; m++)
#pragma unroll
            for (int c = 0; c < COLS; c++) part[warp][m][c] = sum[m][c];
    __syncthreads();
    if (threadIdx.x < M * COLS) {
        const int m = threadIdx.x / COLS, c = threadIdx.x % COLS;
        float v = 0.0f;
        for (int w = 0; w < WARPS; w++) v += part[w][m][c];
        if (n0 + c < N) {
            float *out = y + (size_t)m * N + n0 + c;
            *out = acc ? *out + v : v;
        }
    }
}

/* The current device's multiprocessor count, looked up once per device
 * (this runs on the decode path). */
int multiprocessors() {
    static int cached[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 132;
    if (!cached[dev] && cudaDeviceGetAttribute(&cached[dev], cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        cached[dev] = 132;
    return cached[dev];
}

template <typename T, int IN>
cudaError_t launch(cudaStream_t s, int M, int N, int K, const void *x, const float *nw, float eps, const void *W,
                   float *y, int acc) {
    const T *Wt = (const T *)W;
    const size_t xe = IN == HK_IN_PLAIN ? sizeof(T) : sizeof(float); /* x's element size */
    int vec = ((uintptr_t)x % 16 == 0) && ((uintptr_t)W % 16 == 0) && (K * sizeof(T)) % 16 == 0 && (K * xe) % 16 == 0 &&
              (!nw || (uintptr_t)nw % 16 == 0);
    const int sms = multiprocessors();
    const int blocks = (N + WARPS * COLS - 1) / (WARPS * COLS);
    const int split = blocks < sms && K >= WARPS * 64; /* too few blocks to draw the bandwidth: split K */
    dim3 grid((unsigned)(split ? (N + COLS - 1) / COLS : blocks));
    switch (M) {
#define CASE(mm) \
    case mm: return hk_launch(gemm_small_k<mm, T, IN>, grid, WARPS * 32, 0, s, N, K, x, nw, eps, Wt, y, acc, vec, split);
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: return cudaErrorNotSupported;
    }
}

template <typename T>
cudaError_t launch_in(cudaStream_t s, int M, int N, int K, int in, const void *x, const float *nw, float eps,
                      const void *W, float *y, int acc) {
    switch (in) {
    case HK_IN_PLAIN: return launch<T, HK_IN_PLAIN>(s, M, N, K, x, nw, eps, W, y, acc);
    case HK_IN_RMSNORM: return launch<T, HK_IN_RMSNORM>(s, M, N, K, x, nw, eps, W, y, acc);
    case HK_IN_SWIGLU: return launch<T, HK_IN_SWIGLU>(s, M, N, K, x, nw, eps, W, y, acc);
    default: return cudaErrorInvalidValue;
    }
}

} // namespace

extern "C" cudaError_t hk_gemm_small(cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y,
                                     int bf16, int acc) {
    return hk_gemm_small_in(s, M, N, K, HK_IN_PLAIN, x, NULL, 0.0f, W, y, bf16, acc);
}

extern "C" cudaError_t hk_gemm_small_in(cudaStream_t s, int M, int N, int K, int in, const void *x, const float *nw,
                                        float eps, const void *W, float *y, int bf16, int acc) {
    if (M < 1 || M > HK_GEMM_SMALL_MAX_M || N < 1 || K < 1) return cudaErrorNotSupported;
    if (in == HK_IN_RMSNORM && !nw) return cudaErrorInvalidValue;
    return bf16 ? launch_in<__nv_bfloat16>(s, M, N, K, in, x, nw, eps, W, y, acc)
                : launch_in<float>(s, M, N, K, in, x, nw, eps, W, y, acc);
}
