/* device_util.cuh — __device__ helpers shared by the forward kernels
 * (kernels.cu) and the backward kernels (train_kernels.cu): activations and
 * fixed-shape warp / block reductions. The reductions combine values in an
 * order fixed by the thread layout alone, so a result repeats bit for bit. */
#ifndef HYDRA_CUDA_DEVICE_UTIL_CUH
#define HYDRA_CUDA_DEVICE_UTIL_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

struct OpAdd {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct OpMax {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <typename T> __device__ __forceinline__ T warp_sum(T v) { return warp_reduce(v, OpAdd()); }

/* Reduce over the block (blockDim.x a multiple of 32, <= 1024; blockDim.y =
 * blockDim.z = 1); every thread gets the result. Safe to call back to back. */
template <typename T, typename Op> __device__ T block_reduce(T v, Op op, T identity) {
    __shared__ T part[32];
    __shared__ T total;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_reduce(v, op);
    if (lane == 0) part[w] = v;
    __syncthreads();
    if (w == 0) {
        T x = lane < (int)(blockDim.x >> 5) ? part[lane] : identity;
        x = warp_reduce(x, op);
        if (lane == 0) total = x;
    }
    __syncthreads();
    return total;
}
template <typename T> __device__ __forceinline__ T block_sum(T v) { return block_reduce(v, OpAdd(), (T)0); }

/* The DeltaNet input stage kernels (gdn_prep_k, gdn_prep_bwd_k) run one warp
 * per (row, head, part) item, part 0 = q, 1 = k, 2 = v; a lane holds the
 * channels lane + 32 i of the head (d <= 256: 8 per lane). */
struct GdnItem {
    size_t r;        /* row b*T + t */
    int t, part, h;  /* position in the sequence, part, head */
};
/* The calling warp's item; false past the end (whole warps only, so the
 * shuffles stay full-warp). */
__device__ __forceinline__ bool gdn_item(size_t items, int T, int H, GdnItem *it) {
    const size_t item = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (item >= items) return false;
    it->r = item / (3 * (size_t)H);
    const int hp = (int)(item % (3 * (size_t)H));
    it->part = hp / H, it->h = hp % H, it->t = (int)(it->r % T);
    return true;
}
/* Causal conv output of channel ch at row r (position t in its sequence):
 * tap j reads row t - K + 1 + j of the sequence in proj; rows before the
 * start come from tail [K-1, Cc] or, with tail NULL (training), are zeros. */
__device__ __forceinline__ float gdn_conv_at(const float *proj, int P, const float *convw, int K, size_t r, int t,
                                             size_t ch, const float *tail, size_t Cc) {
    float acc = 0.0f;
#pragma unroll 4
    for (int j = 0; j < K; j++) { /* unrolled: the taps' loads go out together */
        const int src = t + j - (K - 1);
        if (src >= 0) acc += convw[ch * K + j] * proj[(r - t + src) * P + ch];
        else if (tail) acc += convw[ch * K + j] * tail[(size_t)(K - 1 + src) * Cc + ch];
    }
    return acc;
}

inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

} // namespace

#endif /* HYDRA_CUDA_DEVICE_UTIL_CUH */
