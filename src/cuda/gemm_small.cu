/* gemm_small.cu — y[M, N] (+)= x[M, K] . W[N, K]^T for M <= 8 rows (decode,
 * speculative verify, logits of the last positions).
 *
 * Why not cuBLASLt here: its tiles are 64-256 columns wide, so a product with
 * one row runs N/128 thread blocks — 6 for the MLP's down projection — and
 * reads the weights at a small fraction of the memory bandwidth. Here a warp
 * owns COLS output columns and streams their weight rows with 16-byte loads
 * (8 bf16 or 4 f32 per lane), so the whole card reads W once, which is the
 * floor at this size: decode is bandwidth-bound. x is tiny and shared by
 * every warp (served from L1). Products and sums in f32. */
#include <cuda_bf16.h>

#include "kernels.h"

namespace {

constexpr int WARPS = 8;
constexpr int COLS = 2; /* output columns per warp */

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
__device__ __forceinline__ float load1(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load1(const float *p) { return *p; }

/* K % 8 == 0 and 16-byte aligned rows: the vector path; the tail loop covers
 * any K otherwise. */
template <int M, typename T>
__global__ void __launch_bounds__(WARPS * 32) gemm_small_k(int N, int K, const T *__restrict__ x,
                                                          const T *__restrict__ W, float *__restrict__ y, int acc,
                                                          int vec) {
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * WARPS + (threadIdx.x >> 5)) * COLS;
    if (n0 >= N) return;
    float sum[M][COLS];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < COLS; c++) sum[m][c] = 0.0f;
    int k_tail = 0; /* where the scalar loop starts: 0, or past every whole 8-wide group */
    if (vec) {
        for (int k = lane * 8; k + 8 <= K; k += 32 * 8) {
            float w[COLS][8];
#pragma unroll
            for (int c = 0; c < COLS; c++)
                if (n0 + c < N) load8(W + (size_t)(n0 + c) * K + k, w[c]);
                else
#pragma unroll
                    for (int i = 0; i < 8; i++) w[c][i] = 0.0f;
#pragma unroll
            for (int m = 0; m < M; m++) {
                float xv[8];
                load8(x + (size_t)m * K + k, xv);
#pragma unroll
                for (int c = 0; c < COLS; c++)
#pragma unroll
                    for (int i = 0; i < 8; i++) sum[m][c] += w[c][i] * xv[i];
            }
        }
        k_tail = K - K % 8;
    }
    for (int kk = k_tail + lane; kk < K; kk += 32) {
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            float w = n0 + c < N ? load1(W + (size_t)(n0 + c) * K + kk) : 0.0f;
#pragma unroll
            for (int m = 0; m < M; m++) sum[m][c] += w * load1(x + (size_t)m * K + kk);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            float v = sum[m][c];
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0 && n0 + c < N) {
                float *out = y + (size_t)m * N + n0 + c;
                *out = acc ? *out + v : v;
            }
        }
}

template <typename T>
cudaError_t launch(cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y, int acc) {
    const T *xt = (const T *)x, *Wt = (const T *)W;
    int vec = ((uintptr_t)x % 16 == 0) && ((uintptr_t)W % 16 == 0) && (K * sizeof(T)) % 16 == 0;
    dim3 grid((unsigned)((N + WARPS * COLS - 1) / (WARPS * COLS)));
    switch (M) {
#define CASE(mm) \
    case mm: gemm_small_k<mm, T><<<grid, WARPS * 32, 0, s>>>(N, K, xt, Wt, y, acc, vec); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: return cudaErrorNotSupported;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t hk_gemm_small(cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y,
                                     int bf16, int acc) {
    if (M < 1 || M > HK_GEMM_SMALL_MAX_M || N < 1 || K < 1) return cudaErrorNotSupported;
    return bf16 ? launch<__nv_bfloat16>(s, M, N, K, x, W, y, acc) : launch<float>(s, M, N, K, x, W, y, acc);
}
