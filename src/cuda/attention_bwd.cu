/* attention_bwd.cu — causal sliding-window attention backward, flash style:
 * the probabilities are recomputed tile by tile, never stored (T x W would
 * not fit), and tiles wholly outside the window are skipped, so the cost is
 * O(T * W). With s = scale q.k, P = exp(s - lse), dp = dO_t . v_j and
 * D_t = dO_t . o_t:  ds = P (dp - D_t) scale,  dq_t = sum_j ds k_j,
 * dk_j = sum_t ds q_t,  dv_j = sum_t P dO_t.
 *
 * Two kernels, both f32 on 64 x 64 tiles in shared memory, 256 threads:
 *  - dq_k, one block per query tile: a first sweep over its keys finds each
 *    query's log-sum-exp (online max / sum), D_t comes from dO and o; both
 *    go to scratch for the second kernel; a second sweep accumulates dq.
 *  - dkv_k, one block per key tile: sweeps the query tiles that see it
 *    (t in [j, j + W - 1]) and accumulates dk, dv.
 * Each gradient row is owned by one block and summed in a fixed order (no
 * atomics), so a run repeats bit for bit.
 *
 * Threads form a 16 x 16 grid (ty = tid / 16, tx = tid % 16). A thread owns
 * tile rows ty + 16a and score columns tx + 16b (interleaved), so the 16
 * lanes of a row sit in one half warp (row reductions are 4 shuffles). Inner
 * products read shared memory as float4 along the summed index (rows padded
 * so a warp's reads are conflict-free or broadcast): shared-memory bandwidth,
 * not the FMAs, bounds f32 SIMT tiles, and vector reads halve it or better. */
#include <math.h>

#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int NT = 256;      /* threads per block */
constexpr int BT = 64;       /* queries / keys per tile */
constexpr int R = BT / 16;   /* tile rows (and score columns) per thread */
/* Row strides of shared tiles, in floats: multiples of 4 for float4 reads,
 * and 4 more than a multiple of 32 so that 8 consecutive rows' float4s at
 * the same column land in 8 distinct bank groups. */
constexpr int LS = BT + 4;   /* a [BT, BT] score tile */
template <int D> constexpr int ld() { return D + 4; } /* a [BT, D] tile */
template <int D> constexpr size_t dq_smem() { return (4 * BT * ld<D>() + BT * LS) * sizeof(float); }
template <int D> constexpr size_t dkv_smem() { return (4 * BT * ld<D>() + 2 * BT * LS + 2 * BT) * sizeof(float); }

/* In [BT, D] results a thread owns D / 16 columns in runs of CW contiguous
 * ones (one vector read per run), runs 16 * CW apart: e -> col<D>(tx, e). */
template <int D> constexpr int cw() { return D >= 64 ? 4 : 2; }
template <int D> __device__ __forceinline__ int col(int tx, int e) {
    return cw<D>() * tx + 16 * cw<D>() * (e / cw<D>()) + e % cw<D>();
}

/* Query t (any tile row, maybe past T) sees key j (j <= t < T then). */
__device__ __forceinline__ bool visible(int t, int j, int T, int window) {
    return t < T && j <= t && (!window || j > t - window);
}

/* P and ds of a visible pair from its raw score s = q.k and dp = dO.v. */
__device__ __forceinline__ float2 prob_grad(float s, float dp, float lse, float delta, float scale) {
    const float p = expf(s * scale - lse);
    return make_float2(p, p * (dp - delta) * scale);
}

/* s[i][c] (stride ld) = row t0 + i of one head (base: token 0 of that head,
 * rows Hd apart); rows at or past T are zeros. */
template <int D>
__device__ __forceinline__ void load_tile(float *s, const float *base, size_t Hd, int t0, int T) {
    for (int idx = threadIdx.x; idx < BT * D; idx += NT) {
        const int i = idx / D, c = idx % D, t = t0 + i;
        s[i * ld<D>() + c] = t < T ? base[(size_t)t * Hd + c] : 0.0f;
    }
}

/* acc[a][b] = A[ty + 16a] . Bm[tx + 16b] over D (two [BT, D] tiles), summed
 * in column order. */
template <int D>
__device__ __forceinline__ void dot_tile(float (&acc)[R][R], const float *A, const float *Bm, int ty, int tx) {
#pragma unroll
    for (int a = 0; a < R; a++)
#pragma unroll
        for (int b = 0; b < R; b++) acc[a][b] = 0.0f;
#pragma unroll 1
    for (int c = 0; c < D; c += 4) {
        float4 x[R];
#pragma unroll
        for (int a = 0; a < R; a++) x[a] = *(const float4 *)&A[(ty + 16 * a) * ld<D>() + c];
#pragma unroll
        for (int b = 0; b < R; b++) {
            const float4 y = *(const float4 *)&Bm[(tx + 16 * b) * ld<D>() + c];
#pragma unroll
            for (int a = 0; a < R; a++) {
                float r = acc[a][b];
                r += x[a].x * y.x;
                r += x[a].y * y.y;
                r += x[a].z * y.z;
                r += x[a].w * y.w;
                acc[a][b] = r;
            }
        }
    }
}

/* acc[a][e] += sum_i P[ty + 16a][i] M[i][col(tx, e)]: a score tile [BT, BT]
 * (stride LS) times a [BT, D] tile, summed in i order. */
template <int D>
__device__ __forceinline__ void mul_tile(float (&acc)[R][D / 16], const float *P, const float *M, int ty, int tx) {
    constexpr int W = cw<D>(), G = D / 16 / W; /* run width, runs per thread */
#pragma unroll 2
    for (int i = 0; i < BT; i += 4) {
        float4 x[R];
#pragma unroll
        for (int a = 0; a < R; a++) x[a] = *(const float4 *)&P[(ty + 16 * a) * LS + i];
#pragma unroll
        for (int ii = 0; ii < 4; ii++) {
            float y[D / 16];
            const float *row = M + (i + ii) * ld<D>() + W * tx;
#pragma unroll
            for (int g = 0; g < G; g++) {
                if constexpr (W == 4) {
                    const float4 u = *(const float4 *)(row + 16 * W * g);
                    y[4 * g] = u.x, y[4 * g + 1] = u.y, y[4 * g + 2] = u.z, y[4 * g + 3] = u.w;
                } else {
                    const float2 u = *(const float2 *)(row + 16 * W * g);
                    y[2 * g] = u.x, y[2 * g + 1] = u.y;
                }
            }
#pragma unroll
            for (int a = 0; a < R; a++) {
                const float xa = ii == 0 ? x[a].x : ii == 1 ? x[a].y : ii == 2 ? x[a].z : x[a].w;
#pragma unroll
                for (int e = 0; e < D / 16; e++) acc[a][e] += xa * y[e];
            }
        }
    }
}

/* Reductions over the 16 lanes of a row (a half warp); every lane of the
 * warp must call them. */
__device__ __forceinline__ float row_sum(float x) {
#pragma unroll
    for (int off = 1; off < 16; off <<= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}
__device__ __forceinline__ float row_max(float x) {
#pragma unroll
    for (int off = 1; off < 16; off <<= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
    return x;
}

/* One block per (query tile, head, sequence): lse, D to scratch, dq. */
template <int D>
__global__ void __launch_bounds__(NT, D <= 64 ? 2 : 1)
    dq_k(int T, int H, int window, const float *__restrict__ q, const float *__restrict__ k,
         const float *__restrict__ v, const float *__restrict__ o, const float *__restrict__ dO,
         float *__restrict__ dq, float *__restrict__ lse_out, float *__restrict__ delta_out) {
    hk_pdl_entry();
    extern __shared__ __align__(16) float sm[];
    float *Qs = sm, *Gs = Qs + BT * ld<D>(), *Ks = Gs + BT * ld<D>(), *Vs = Ks + BT * ld<D>();
    float *Ss = Vs + BT * ld<D>();
    const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * BT;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const size_t Hd = (size_t)H * D, base = (size_t)b * T * Hd + (size_t)h * D;
    const size_t sbase = ((size_t)b * H + h) * T; /* this head's row in lse / delta */
    const float scale = rsqrtf((float)D);
    load_tile<D>(Qs, q + base, Hd, t0, T);
    load_tile<D>(Gs, dO + base, Hd, t0, T);
    __syncthreads();

    float delta[R];
#pragma unroll
    for (int a = 0; a < R; a++) {
        const int i = ty + 16 * a, t = t0 + i;
        float part = 0.0f;
        if (t < T) {
#pragma unroll
            for (int c = 0; c < D / 16; c++)
                part += Gs[i * ld<D>() + tx + 16 * c] * o[base + (size_t)t * Hd + tx + 16 * c];
        }
        delta[a] = row_sum(part);
    }

    /* keys any query of the tile may see: [first key tile, t_last] */
    const int t_last = min(T - 1, t0 + BT - 1);
    int lo = window ? t0 - window + 1 : 0;
    if (lo < 0) lo = 0;
    const int k_first = lo / BT * BT;

    /* sweep 1: per-query log-sum-exp of the scaled scores */
    float m[R], l[R];
#pragma unroll
    for (int a = 0; a < R; a++) m[a] = -INFINITY, l[a] = 0.0f;
    for (int k0 = k_first; k0 <= t_last; k0 += BT) {
        __syncthreads();
        load_tile<D>(Ks, k + base, Hd, k0, T);
        __syncthreads();
        float s[R][R];
        dot_tile<D>(s, Qs, Ks, ty, tx);
#pragma unroll
        for (int a = 0; a < R; a++) {
            const int t = t0 + ty + 16 * a;
            float mt = -INFINITY;
#pragma unroll
            for (int bb = 0; bb < R; bb++) {
                s[a][bb] = visible(t, k0 + tx + 16 * bb, T, window) ? s[a][bb] * scale : -INFINITY;
                mt = fmaxf(mt, s[a][bb]);
            }
            const float mn = fmaxf(m[a], row_max(mt));
            float ps = 0.0f; /* no branch on mn: the shuffles need the whole warp */
#pragma unroll
            for (int bb = 0; bb < R; bb++) ps += s[a][bb] == -INFINITY ? 0.0f : expf(s[a][bb] - mn);
            ps = row_sum(ps);
            const float corr = m[a] == -INFINITY ? 0.0f : expf(m[a] - mn);
            l[a] = l[a] * corr + ps;
            m[a] = mn;
        }
    }
    float lse[R];
#pragma unroll
    for (int a = 0; a < R; a++) {
        const int t = t0 + ty + 16 * a;
        lse[a] = m[a] + logf(l[a]); /* every live query sees itself: l >= 1 */
        if (t < T && tx == 0) lse_out[sbase + t] = lse[a], delta_out[sbase + t] = delta[a];
    }

    /* sweep 2: dq = sum_j ds_j k_j */
    float acc[R][D / 16];
#pragma unroll
    for (int a = 0; a < R; a++)
#pragma unroll
        for (int c = 0; c < D / 16; c++) acc[a][c] = 0.0f;
    for (int k0 = k_first; k0 <= t_last; k0 += BT) {
        __syncthreads();
        load_tile<D>(Ks, k + base, Hd, k0, T);
        load_tile<D>(Vs, v + base, Hd, k0, T);
        __syncthreads();
        float s[R][R], dp[R][R];
        dot_tile<D>(s, Qs, Ks, ty, tx);
        dot_tile<D>(dp, Gs, Vs, ty, tx);
#pragma unroll
        for (int a = 0; a < R; a++) {
            const int i = ty + 16 * a;
#pragma unroll
            for (int bb = 0; bb < R; bb++) {
                const int jj = tx + 16 * bb;
                Ss[i * LS + jj] = visible(t0 + i, k0 + jj, T, window)
                                      ? prob_grad(s[a][bb], dp[a][bb], lse[a], delta[a], scale).y
                                      : 0.0f;
            }
        }
        __syncthreads();
        mul_tile<D>(acc, Ss, Ks, ty, tx);
    }
#pragma unroll
    for (int a = 0; a < R; a++) {
        const int t = t0 + ty + 16 * a;
        if (t < T) {
#pragma unroll
            for (int e = 0; e < D / 16; e++) dq[base + (size_t)t * Hd + col<D>(tx, e)] = acc[a][e];
        }
    }
}

/* One block per (key tile, head, sequence): dk, dv from the query tiles
 * whose window reaches it. Scores are laid out key-major here (rows = keys). */
template <int D>
__global__ void __launch_bounds__(NT, D <= 64 ? 2 : 1)
    dkv_k(int T, int H, int window, const float *__restrict__ q, const float *__restrict__ k,
          const float *__restrict__ v, const float *__restrict__ dO, const float *__restrict__ lse_in,
          const float *__restrict__ delta_in, float *__restrict__ dk, float *__restrict__ dv) {
    hk_pdl_entry();
    extern __shared__ __align__(16) float sm[];
    float *Ks = sm, *Vs = Ks + BT * ld<D>(), *Qs = Vs + BT * ld<D>(), *Gs = Qs + BT * ld<D>();
    float *Ps = Gs + BT * ld<D>(), *Ss = Ps + BT * LS, *lse_s = Ss + BT * LS, *del_s = lse_s + BT;
    const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * BT;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const size_t Hd = (size_t)H * D, base = (size_t)b * T * Hd + (size_t)h * D;
    const size_t sbase = ((size_t)b * H + h) * T;
    const float scale = rsqrtf((float)D);
    load_tile<D>(Ks, k + base, Hd, k0, T);
    load_tile<D>(Vs, v + base, Hd, k0, T);

    /* queries that may see a key of the tile: k0 .. q_last (window < T here) */
    const int q_last = window ? min(T - 1, k0 + BT - 1 + window - 1) : T - 1;
    float dka[R][D / 16], dva[R][D / 16];
#pragma unroll
    for (int a = 0; a < R; a++)
#pragma unroll
        for (int c = 0; c < D / 16; c++) dka[a][c] = dva[a][c] = 0.0f;
    for (int q0 = k0; q0 <= q_last; q0 += BT) {
        __syncthreads();
        load_tile<D>(Qs, q + base, Hd, q0, T);
        load_tile<D>(Gs, dO + base, Hd, q0, T);
        for (int i = threadIdx.x; i < BT; i += NT) {
            const bool live = q0 + i < T;
            lse_s[i] = live ? lse_in[sbase + q0 + i] : 0.0f;
            del_s[i] = live ? delta_in[sbase + q0 + i] : 0.0f;
        }
        __syncthreads();
        float s[R][R], dp[R][R];
        dot_tile<D>(s, Ks, Qs, ty, tx);
        dot_tile<D>(dp, Vs, Gs, ty, tx);
#pragma unroll
        for (int a = 0; a < R; a++) {
            const int jj = ty + 16 * a;
#pragma unroll
            for (int bb = 0; bb < R; bb++) {
                const int i = tx + 16 * bb;
                const float2 pg = visible(q0 + i, k0 + jj, T, window)
                                      ? prob_grad(s[a][bb], dp[a][bb], lse_s[i], del_s[i], scale)
                                      : make_float2(0.0f, 0.0f);
                Ps[jj * LS + i] = pg.x;
                Ss[jj * LS + i] = pg.y;
            }
        }
        __syncthreads();
        mul_tile<D>(dva, Ps, Gs, ty, tx);
        mul_tile<D>(dka, Ss, Qs, ty, tx);
    }
#pragma unroll
    for (int a = 0; a < R; a++) {
        const int j = k0 + ty + 16 * a;
        if (j < T) {
#pragma unroll
            for (int e = 0; e < D / 16; e++) {
                const size_t idx = base + (size_t)j * Hd + col<D>(tx, e);
                dk[idx] = dka[a][e];
                dv[idx] = dva[a][e];
            }
        }
    }
}

template <int D>
cudaError_t launch(cudaStream_t s, int B, int T, int H, int window, const float *q, const float *k, const float *v,
                   const float *o, const float *dO, float *dq, float *dk, float *dv, float *scratch) {
    float *lse = scratch, *delta = scratch + (size_t)B * H * T;
    cudaError_t e = cudaFuncSetAttribute(dq_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_smem<D>());
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(dkv_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkv_smem<D>());
    if (e != cudaSuccess) return e;
    const dim3 grid((unsigned)((T + BT - 1) / BT), (unsigned)H, (unsigned)B);
    e = hk_launch(dq_k<D>, grid, NT, dq_smem<D>(), s, T, H, window, q, k, v, o, dO, dq, lse, delta);
    if (e != cudaSuccess) return e;
    return hk_launch(dkv_k<D>, grid, NT, dkv_smem<D>(), s, T, H, window, q, k, v, dO, (const float *)lse,
                     (const float *)delta, dk, dv);
}

} // namespace

/* lse and D per (sequence, head, query), f32. */
extern "C" size_t hk_attention_bwd_scratch(int B, int T, int H) {
    return B > 0 && T > 0 && H > 0 ? 2 * (size_t)B * H * T * sizeof(float) : 0;
}

extern "C" cudaError_t hk_attention_bwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q,
                                        const float *k, const float *v, const float *o, const float *dO, float *dq,
                                        float *dk, float *dv, void *scratch) {
    if (B <= 0 || T <= 0 || H <= 0 || window < 0 || !scratch) return cudaErrorInvalidValue;
    if (window >= T) window = 0; /* a window as long as the sequence is full causal attention */
    switch (d) {
    case 32: return launch<32>(s, B, T, H, window, q, k, v, o, dO, dq, dk, dv, (float *)scratch);
    case 64: return launch<64>(s, B, T, H, window, q, k, v, o, dO, dq, dk, dv, (float *)scratch);
    case 128: return launch<128>(s, B, T, H, window, q, k, v, o, dO, dq, dk, dv, (float *)scratch);
    default: return cudaErrorInvalidValue;
    }
}
