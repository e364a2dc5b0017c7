/* device_util.cuh — __device__ helpers shared by the forward kernels
 * (kernels.cu) and the backward kernels (train_kernels.cu): activations and
 * fixed-shape warp / block reductions. The reductions combine values in an
 * order fixed by the thread layout alone, so a result repeats bit for bit. */
#ifndef HYDRA_CUDA_DEVICE_UTIL_CUH
#define HYDRA_CUDA_DEVICE_UTIL_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include <type_traits>

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
__device__ __forceinline__ float4 load4(const float *x, size_t i) { return ((const float4 *)x)[i / 4]; }
/* Four bf16 from element i (a multiple of 4, 8-byte aligned) as f32: one 8-byte load. */
__device__ __forceinline__ float4 load4(const __nv_bfloat16 *x, size_t i) {
    const uint2 u = ((const uint2 *)x)[i / 4];
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ float load1(const float *x, size_t i) { return x[i]; }
__device__ __forceinline__ float load1(const __nv_bfloat16 *x, size_t i) { return __bfloat162float(x[i]); }

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
template <typename TP>
__device__ __forceinline__ float gdn_conv_at(const TP *proj, int P, const float *convw, int K, size_t r, int t,
                                             size_t ch, const float *tail, size_t Cc) {
    float acc = 0.0f;
#pragma unroll 4
    for (int j = 0; j < K; j++) { /* unrolled: the taps' loads go out together */
        const int src = t + j - (K - 1);
        if (src >= 0) acc += convw[ch * K + j] * load1(proj, (r - t + src) * P + ch);
        else if (tail) acc += convw[ch * K + j] * tail[(size_t)(K - 1 + src) * Cc + ch];
    }
    return acc;
}

/* The gates of head h from a row's a|b columns pr [2H]: beta = sigmoid(b),
 * g = -exp(A_log) * softplus(a + dt_bias). */
template <typename TP>
__device__ __forceinline__ void gdn_gate(const TP *pr, int H, int h, const float *A_log, const float *dt_bias,
                                         float *g, float *beta) {
    *beta = 1.0f / (1.0f + expf(-load1(pr, (size_t)(H + h))));
    *g = -expf(A_log[h]) * softplus(load1(pr, (size_t)h) + dt_bias[h]);
}

inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

/* Store v as f32 or bf16 (round to nearest even) at element i: the kernels
 * whose output feeds a GEMM write it in the GEMM's dtype. */
__device__ __forceinline__ void store(void *y, size_t i, float v, int bf16) {
    if (bf16) ((__nv_bfloat16 *)y)[i] = __float2bfloat16_rn(v);
    else ((float *)y)[i] = v;
}
/* The same for 4 consecutive elements from i (i a multiple of 4, y 16-byte
 * aligned): one 16-byte or 8-byte store. */
__device__ __forceinline__ void store4(void *y, size_t i, float4 v, int bf16) {
    if (bf16) {
        union {
            __nv_bfloat162 h[2];
            uint2 u;
        } p;
        p.h[0] = __floats2bfloat162_rn(v.x, v.y);
        p.h[1] = __floats2bfloat162_rn(v.z, v.w);
        ((uint2 *)y)[i / 4] = p.u;
    } else ((float4 *)y)[i / 4] = v;
}
__device__ __forceinline__ float at(const float4 &v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
__host__ __device__ __forceinline__ bool aligned16(const void *p) { return ((size_t)p & 15) == 0; }

/* Sum over groups of n lanes (n a power of two <= 32, groups aligned to n):
 * every lane of the group gets the group's sum, in a fixed order. */
__device__ __forceinline__ float group_sum(float v, int n) {
    for (int o = n >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The causal conv of 4 consecutive channels ch..ch+3 (K = KW taps) walked
 * down the rows of a tile: the K-1 earlier inputs stay in registers, so each
 * proj row is read once per tile instead of once per tap (gdn_prep_k reads
 * it K times). Taps are added in the order of gdn_conv_at (j = 0..K-1). */
template <int KW> struct ConvWalk {
    float w[4][KW];
    float4 win[KW > 1 ? KW - 1 : 1]; /* rows t-K+1 .. t-1 */
    __device__ void load_weights(const float *convw, size_t ch) {
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < KW; j++) w[i][j] = convw[(ch + i) * KW + j];
    }
    /* Window for row r at position t: earlier rows of the sequence from
     * proj, rows before its start from tail [K-1, Cc] or zeros (tail NULL). */
    template <typename TP>
    __device__ void fill(const TP *proj, int P, size_t r, int t, size_t ch, const float *tail, size_t Cc) {
#pragma unroll
        for (int j = 0; j < KW - 1; j++) {
            const int src = t + j - (KW - 1);
            if (src >= 0) win[j] = load4(proj, (r - t + src) * P + ch);
            else if (tail) {
                const float *tp = tail + (size_t)(KW - 1 + src) * Cc + ch;
                win[j] = make_float4(tp[0], tp[1], tp[2], tp[3]);
            } else win[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }
    /* Conv output at the row whose input is x; then x joins the window. */
    __device__ float4 step(float4 x) {
        float o[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float acc = 0.0f;
#pragma unroll
            for (int j = 0; j < KW - 1; j++) acc += w[i][j] * at(win[j], i);
            acc += w[i][KW - 1] * at(x, i);
            o[i] = acc;
        }
#pragma unroll
        for (int j = 0; j + 1 < KW - 1; j++) win[j] = win[j + 1];
        if constexpr (KW > 1) win[KW - 2] = x;
        return make_float4(o[0], o[1], o[2], o[3]);
    }
};

/* Whether the tiled input-stage kernels (ConvWalk) take this shape: d/4 a
 * power of two (a head's lanes are an aligned group of a warp), 16-byte
 * proj rows, K <= 4; T = 1 (a decode step) keeps the per-item kernel. */
inline bool prep_tiled_ok(int T, int d, int K, int P, const void *proj) {
    const int g = d / 4;
    return T > 1 && d % 4 == 0 && g >= 1 && g <= 32 && (g & (g - 1)) == 0 && K >= 1 && K <= 4 && P % 4 == 0 &&
           aligned16(proj);
}
/* Rows per thread of the tiled kernels (ConvWalk re-reads K-1 rows per tile). */
constexpr int kPrepRows = 32;
/* Rows a tiled kernel loads at once before computing them: several loads in
 * flight per thread instead of one row ahead (the kernels were ~2x their
 * memory floor at one). */
constexpr int kPrepAhead = 4;
/* A thread's place in a tiled kernel, grid (row tiles, channel blocks of
 * 128 threads): channels ch..ch+3 of the q|k|v columns (on: inside them),
 * part (0 q, 1 k, 2 v) and column hc within it, rows [r0, r1). */
struct PrepTile {
    int Hd, Cc, ch, part, hc, r0, r1;
    bool on;
};
/* false for a warp with no channel at all (it may return: its shuffles
 * would have no partner outside it). */
__device__ __forceinline__ bool prep_tile(int BT, int H, int d, PrepTile *p) {
    p->Hd = H * d, p->Cc = 3 * p->Hd;
    const int base = blockIdx.y * blockDim.x;
    if ((base + (int)(threadIdx.x & ~31u)) * 4 >= p->Cc) return false;
    p->ch = (base + (int)threadIdx.x) * 4;
    p->on = p->ch < p->Cc;
    p->part = p->on ? p->ch / p->Hd : 2, p->hc = p->ch - p->part * p->Hd;
    p->r0 = blockIdx.x * kPrepRows, p->r1 = min(BT, p->r0 + kPrepRows);
    return true;
}
inline dim3 prep_tiled_grid(size_t BT, int H, int d) {
    return dim3(blocks_for(BT, kPrepRows), blocks_for((size_t)3 * H * d / 4, 128));
}
/* f(std::integral_constant<int, K>()) for K in 1..4. */
template <class F> void with_k(int K, F f) {
    switch (K) {
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    default: f(std::integral_constant<int, 4>()); break;
    }
}

} // namespace

#endif /* HYDRA_CUDA_DEVICE_UTIL_CUH */
