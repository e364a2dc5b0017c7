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

inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

} // namespace

#endif /* HYDRA_CUDA_DEVICE_UTIL_CUH */
