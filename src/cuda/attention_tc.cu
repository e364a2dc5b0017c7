/* attention_tc.cu — causal sliding-window attention for training (B
 * sequences from position 0, no cache) on bf16 tensor cores, forward and
 * backward: the flash-attention algorithm with raw m16n8k16 MMAs (mma.cuh),
 * f32 accumulation, f32 softmax statistics. Same semantics as hk_attention /
 * hk_attention_bwd (attention.cu, attention_bwd.cu, f32 SIMT): query t sees
 * keys max(0, t - W + 1) .. t (W = 0: all of 0 .. t), scale d^-1/2; tiles
 * wholly outside the window are skipped, so the cost is O(T * W).
 *
 * Tiles are 64 queries x 64 keys; a block is 4 warps, a warp owns 16 rows of
 * its tile. Inputs stay f32 in memory (the model's activations); each tile is
 * rounded to bf16 as it is copied into shared memory, so there is no
 * conversion pass and the scratch holds only two floats per (query, head).
 *
 *  fwd_k  one block per query tile: S = Q K^T in registers, online softmax
 *         (running max m and sum l per row, in the log2 domain: exp2 of
 *         scores pre-multiplied by scale * log2 e), O += P V with P rounded
 *         to bf16 straight from the accumulators (no shared-memory trip);
 *         o = O / l and lse2 = m + log2 l (per query, to scratch) at the end.
 *  delta_k  D_t = dO_t . o_t, with dO rounded to bf16 as the products see it:
 *         then sum_j P_tj dP_tj and D_t agree up to the f32 sums (at T = 1
 *         exactly), so dS = P (dP - D) does not pick up a rounding offset.
 *  dkv_k  one block per key tile, over the query tiles that see it: P^T =
 *         exp2(K Q^T c - lse2) recomputed, dP^T = V dO^T, dS^T = P^T (dP^T
 *         - D); dV += P^T dO, dK += dS^T Q (scale applied once at the end).
 *  dq_k   one block per query tile, over its key tiles: P, dP, dS as above
 *         (row-major), dQ += dS K.
 * Every gradient row is owned by one warp and summed in a fixed order: no
 * atomics, a run repeats bit for bit. Masks are evaluated only on tiles that
 * cross the diagonal, the window's edge or the end of the sequence.
 *
 * Measured (H100 80GB HBM3, tests/cuda_train/attn_bwd.c with
 * HYDRA_BENCH_ATTN=1, B 16 x T 2048 x H 12 x d 64, medians of 5), against
 * the f32 kernels in the same run:
 *   W 512: forward 0.340 ms (f32 4.300), backward 1.114 ms (f32 7.775)
 *   W 0:   forward 0.660 ms (f32 8.782), backward 2.025 ms (f32 16.052)
 * Variants measured slower (same card, one run, all passing the tests):
 * 128 rows per block (8 warps) with a per-warp skip of fully masked 16-row
 * slices: backward 1.50 ms at W 512 (dkv_k at 162 registers x 256 threads
 * fits one block per SM); 128 rows for fwd_k / dq_k only, 64 for dkv_k:
 * forward 0.353, backward 1.239 ms; dkv_k's scores 32 queries at a time
 * (222 -> 162 registers, 2 -> 3 blocks per SM): backward 1.229 ms. Not
 * tried: a bf16 copy of q, k, v, dO in scratch loaded by cp.async (halves
 * the L2 traffic of the re-read tiles: each K / V tile is read by ~9 query
 * tiles at W 512), larger key tiles in dkv_k with fewer registers. */
#include <math.h>

#include "kernels.h"
#include "launch.cuh"
#include "mma.cuh"

namespace {

constexpr int NT = 128;         /* 4 warps, 16 tile rows each */
constexpr int BR = 64;          /* queries / keys per tile */
constexpr int NJ = BR / 8;      /* accumulator tiles across a row of scores */
constexpr int KBR = BR / 16;    /* k-blocks over a tile's rows */
constexpr int DELTA_ROWS = 8;   /* (token, head) rows per delta_k block, a warp each */
constexpr float LOG2E = 1.4426950408889634f;
/* bf16 row stride: 16 bytes more than a multiple of 128, so the 8 rows of an
 * ldmatrix 8x8 hit 8 distinct 16-byte bank groups */
template <int D> constexpr int ld() { return D + 8; }
template <int D> constexpr size_t tile_bytes() { return (size_t)BR * ld<D>() * sizeof(bf); }
template <int D> constexpr size_t fwd_smem() { return 3 * tile_bytes<D>(); }
template <int D> constexpr size_t dq_smem() { return 4 * tile_bytes<D>(); }
template <int D> constexpr size_t dkv_smem() { return 4 * tile_bytes<D>() + 2 * BR * sizeof(float); }

/* Query t sees key j (the window already normalised: W >= T is 0). */
__device__ __forceinline__ bool visible(int t, int j, int T, int window) {
    return t < T && j <= t && (!window || j > t - window);
}
/* Whether some pair of query tile q0 and key tile k0 is not visible: the
 * diagonal, the window's lower edge, or query rows past T. */
__device__ __forceinline__ bool tile_partial(int q0, int k0, int T, int window) {
    return q0 + BR > T || k0 + BR - 1 > q0 || (window && q0 + BR - 1 - k0 >= window);
}
/* The first key tile query tile q0 sees. */
__device__ __forceinline__ int first_key_tile(int q0, int window) {
    const int lo = window ? q0 - window + 1 : 0;
    return lo > 0 ? lo / BR * BR : 0;
}

/* NS tiles of rows t0 .. t0 + BR - 1 of one head (src[s]: token 0 of the
 * head, rows Hd floats apart) to bf16 shared memory dst[s] (stride ld<D>),
 * zeros past T. The tiles' loads go out together, U per thread per tile. */
template <int D, int NS>
__device__ __forceinline__ void load_tiles(bf *const *dst, const float *const *src, size_t Hd, int t0, int T) {
    constexpr int C4 = D / 4, N4 = BR * C4, U = 4;
    static_assert(N4 % (NT * U) == 0, "tile not a multiple of the load round");
#pragma unroll 1
    for (int i0 = threadIdx.x; i0 < N4; i0 += NT * U) {
        float4 x[NS][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NT, r = i / C4, c = i % C4 * 4;
#pragma unroll
            for (int s = 0; s < NS; s++) x[s][u] = load4(src[s] + (size_t)(t0 + r) * Hd + c, t0 + r < T);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NT, r = i / C4, c = i % C4 * 4;
#pragma unroll
            for (int s = 0; s < NS; s++) store4(dst[s] + r * ld<D>() + c, x[s][u], 1.0f);
        }
    }
}
template <int D>
__device__ __forceinline__ void load_tile(bf *dst, const float *src, size_t Hd, int t0, int T) {
    load_tiles<D, 1>(&dst, &src, Hd, t0, T);
}
template <int D>
__device__ __forceinline__ void load_pair(bf *d0, const float *s0, bf *d1, const float *s1, size_t Hd, int t0, int T) {
    bf *const dst[2] = {d0, d1};
    const float *const src[2] = {s0, s1};
    load_tiles<D, 2>(dst, src, Hd, t0, T);
}

__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Rows r, r + 8 (hh = 0, 1) of a warp's NJT accumulator tiles of 8
 * columns to row-major f32 memory (dst at row r, column 0; rows ld apart),
 * times s, rows at or past `rows` left out. */
template <int NJT>
__device__ __forceinline__ void store_rows(float *dst, size_t ld, const float (*acc)[4], float s0, float s1,
                                           int rows) {
    const int lane = threadIdx.x & 31, tq = lane & 3;
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        if (8 * hh >= rows) break;
        const float s = hh ? s1 : s0;
#pragma unroll
        for (int j = 0; j < NJT; j++)
            put2(dst + 8 * hh * ld + 8 * j + 2 * tq, acc[j][2 * hh] * s, acc[j][2 * hh + 1] * s);
    }
}

/* ---------------------------------------------------------------- forward */
template <int D>
__global__ void __launch_bounds__(NT) fwd_k(int T, int H, int window, const float *__restrict__ q,
                                           const float *__restrict__ k, const float *__restrict__ v,
                                           float *__restrict__ o, float *__restrict__ lse2) {
    hk_pdl_entry();
    constexpr int L = ld<D>();
    extern __shared__ __align__(16) unsigned char smraw[];
    bf *Qs = (bf *)smraw, *Ks = Qs + BR * L, *Vs = Ks + BR * L;
    const int b = blockIdx.z, h = blockIdx.y, q0 = (gridDim.x - 1 - blockIdx.x) * BR; /* longest rows first */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const size_t Hd = (size_t)H * D, base = (size_t)b * T * Hd + (size_t)h * D;
    const int row = q0 + 16 * warp + g; /* this thread's rows: row, row + 8 */
    load_tile<D>(Qs, q + base, Hd, q0, T);
    __syncthreads();
    unsigned qa[D / 16][4];
    load_a<D / 16>(qa, Qs, L, 16 * warp);
    float O[D / 8][4];
    zero_acc<D / 8>(O);
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; /* l: this lane's columns only */
    const float c = rsqrtf((float)D) * LOG2E;
    const int q_hi = min(T - 1, q0 + BR - 1);
    for (int k0 = first_key_tile(q0, window); k0 <= q_hi; k0 += BR) {
        __syncthreads(); /* the previous tile's K, V are consumed */
        load_pair<D>(Ks, k + base, Vs, v + base, Hd, k0, T);
        __syncthreads();
        float S[NJ][4];
        zero_acc<NJ>(S);
        mma_rowsT<D / 16, NJ>(S, qa, Ks, L, 0, NJ);
        const bool part = tile_partial(q0, k0, T, window);
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float s = S[j][2 * hh + e] * c;
                    if (part && !visible(row + 8 * hh, k0 + 8 * j + 2 * tq + e, T, window)) s = -INFINITY;
                    S[j][2 * hh + e] = s;
                    mx = fmaxf(mx, s);
                }
            const float mn = fmaxf(m[hh], quad_max(mx));
            const float ref = mn == -INFINITY ? 0.0f : mn; /* a row that has seen nothing yet */
            const float corr = exp2f(m[hh] - ref);
            float ps = 0.0f;
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float p = exp2f(S[j][2 * hh + e] - ref);
                    S[j][2 * hh + e] = p;
                    ps += p;
                }
            l[hh] = l[hh] * corr + ps;
            m[hh] = mn;
#pragma unroll
            for (int j = 0; j < D / 8; j++) O[j][2 * hh] *= corr, O[j][2 * hh + 1] *= corr;
        }
        mma_acc<KBR, D / 8, true>(O, S, Vs, L, 0, KBR);
    }
    float inv[2];
    const size_t sb = ((size_t)b * H + h) * T;
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const float lt = quad_sum(l[hh]); /* >= 1 on a live row: it sees itself */
        inv[hh] = 1.0f / lt;
        const int t = row + 8 * hh;
        if (t < T && tq == 0) lse2[sb + t] = m[hh] + log2f(lt);
    }
    if (row < T) store_rows<D / 8>(o + base + (size_t)row * Hd, Hd, O, inv[0], inv[1], T - row);
}

/* --------------------------------------------------------------- backward */
/* One warp per (token row, head): delta = bf16(dO) . o in f32. */
template <int D>
__global__ void __launch_bounds__(32 * DELTA_ROWS) delta_k(int T, int H, size_t n, const float *__restrict__ o,
                                                          const float *__restrict__ dO, float *__restrict__ delta) {
    hk_pdl_entry();
    const size_t w = (size_t)blockIdx.x * DELTA_ROWS + threadIdx.x / 32; /* = (b T + t) H + h */
    const int lane = threadIdx.x & 31;
    if (w >= n) return; /* whole warps */
    float s = 0.0f;
#pragma unroll
    for (int c = lane; c < D; c += 32) s += __bfloat162float(__float2bfloat16_rn(dO[w * D + c])) * o[w * D + c];
#pragma unroll
    for (int off = 16; off; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
        const size_t r = w / H, bb = r / T;
        delta[(bb * H + w % H) * T + r % T] = s;
    }
}

/* P and dS (unscaled) of one score tile in place, for a warp's 16 rows:
 * KEYROWS = false: rows are queries (row, row + 8), columns keys from c0;
 * true: rows are keys, columns queries. lse / del: per row (rl, dl) or per
 * column (cl, cd: shared-memory arrays over the tile's columns). */
template <bool KEYROWS>
__device__ __forceinline__ void probs_grads(float (*S)[4], float (*dP)[4], int row, int c0, bool part, int T,
                                            int window, float c, const float *rl, const float *dl, const float *cl,
                                            const float *cd) {
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int hh = 0; hh < 2; hh++)
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int r = row + 8 * hh, col = 8 * j + 2 * tq + e;
                const float lse = KEYROWS ? cl[col] : rl[hh], del = KEYROWS ? cd[col] : dl[hh];
                const bool vis = !part || (KEYROWS ? visible(c0 + col, r, T, window) : visible(r, c0 + col, T, window));
                const float p = vis ? exp2f(S[j][2 * hh + e] * c - lse) : 0.0f;
                S[j][2 * hh + e] = p;
                dP[j][2 * hh + e] = p * (dP[j][2 * hh + e] - del);
            }
}

/* One block per (query tile, head, sequence): dq. */
template <int D>
__global__ void __launch_bounds__(NT) dq_k(int T, int H, int window, const float *__restrict__ q,
                                          const float *__restrict__ k, const float *__restrict__ v,
                                          const float *__restrict__ dO, const float *__restrict__ lse2,
                                          const float *__restrict__ delta, float *__restrict__ dq) {
    hk_pdl_entry();
    constexpr int L = ld<D>();
    extern __shared__ __align__(16) unsigned char smraw[];
    bf *Qs = (bf *)smraw, *Gs = Qs + BR * L, *Ks = Gs + BR * L, *Vs = Ks + BR * L;
    const int b = blockIdx.z, h = blockIdx.y, q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2;
    const size_t Hd = (size_t)H * D, base = (size_t)b * T * Hd + (size_t)h * D, sb = ((size_t)b * H + h) * T;
    const int row = q0 + 16 * warp + g;
    load_pair<D>(Qs, q + base, Gs, dO + base, Hd, q0, T);
    float rl[2], dl[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const int t = row + 8 * hh;
        rl[hh] = t < T ? lse2[sb + t] : 0.0f;
        dl[hh] = t < T ? delta[sb + t] : 0.0f;
    }
    float dQ[D / 8][4];
    zero_acc<D / 8>(dQ);
    const float c = rsqrtf((float)D) * LOG2E;
    const int q_hi = min(T - 1, q0 + BR - 1);
    for (int k0 = first_key_tile(q0, window); k0 <= q_hi; k0 += BR) {
        __syncthreads();
        load_pair<D>(Ks, k + base, Vs, v + base, Hd, k0, T);
        __syncthreads();
        float S[NJ][4], dP[NJ][4];
        zero_acc<NJ>(S);
        zero_acc<NJ>(dP);
        mma_tile<D / 16, NJ, false, false>(S, Qs + 16 * warp * L, L, Ks, L);
        mma_tile<D / 16, NJ, false, false>(dP, Gs + 16 * warp * L, L, Vs, L);
        probs_grads<false>(S, dP, row, k0, tile_partial(q0, k0, T, window), T, window, c, rl, dl, nullptr,
                           nullptr);
        mma_acc<KBR, D / 8, true>(dQ, dP, Ks, L, 0, KBR);
    }
    const float scale = rsqrtf((float)D);
    if (row < T) store_rows<D / 8>(dq + base + (size_t)row * Hd, Hd, dQ, scale, scale, T - row);
}

/* One block per (key tile, head, sequence): dk, dv from the query tiles
 * whose window reaches it (key tile 0 has the most under W = 0: it goes
 * first). Scores are key-major here. */
template <int D>
__global__ void __launch_bounds__(NT) dkv_k(int T, int H, int window, const float *__restrict__ q,
                                           const float *__restrict__ k, const float *__restrict__ v,
                                           const float *__restrict__ dO, const float *__restrict__ lse2,
                                           const float *__restrict__ delta, float *__restrict__ dk,
                                           float *__restrict__ dv) {
    hk_pdl_entry();
    constexpr int L = ld<D>();
    extern __shared__ __align__(16) unsigned char smraw[];
    bf *Ks = (bf *)smraw, *Vs = Ks + BR * L, *Qs = Vs + BR * L, *Gs = Qs + BR * L;
    float *ls = (float *)(Gs + BR * L), *ds = ls + BR;
    const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * BR;
    const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2;
    const size_t Hd = (size_t)H * D, base = (size_t)b * T * Hd + (size_t)h * D, sb = ((size_t)b * H + h) * T;
    const int row = k0 + 16 * warp + g; /* this thread's keys: row, row + 8 */
    load_pair<D>(Ks, k + base, Vs, v + base, Hd, k0, T);
    float dK[D / 8][4], dV[D / 8][4];
    zero_acc<D / 8>(dK);
    zero_acc<D / 8>(dV);
    const float c = rsqrtf((float)D) * LOG2E;
    /* queries that see a key of the tile: k0 .. q_last (window < T here) */
    const int q_last = window ? min(T - 1, k0 + BR - 1 + window - 1) : T - 1;
    for (int q0 = k0; q0 <= q_last; q0 += BR) {
        __syncthreads();
        load_pair<D>(Qs, q + base, Gs, dO + base, Hd, q0, T);
        if (threadIdx.x < BR) {
            const int t = q0 + threadIdx.x;
            ls[threadIdx.x] = t < T ? lse2[sb + t] : 0.0f;
            ds[threadIdx.x] = t < T ? delta[sb + t] : 0.0f;
        }
        __syncthreads();
        float S[NJ][4], dP[NJ][4];
        zero_acc<NJ>(S);
        zero_acc<NJ>(dP);
        mma_tile<D / 16, NJ, false, false>(S, Ks + 16 * warp * L, L, Qs, L);
        mma_tile<D / 16, NJ, false, false>(dP, Vs + 16 * warp * L, L, Gs, L);
        probs_grads<true>(S, dP, row, q0, tile_partial(q0, k0, T, window), T, window, c, nullptr, nullptr, ls, ds);
        mma_acc<KBR, D / 8, true>(dV, S, Gs, L, 0, KBR);
        mma_acc<KBR, D / 8, true>(dK, dP, Qs, L, 0, KBR);
    }
    if (row < T) {
        const float scale = rsqrtf((float)D);
        store_rows<D / 8>(dk + base + (size_t)row * Hd, Hd, dK, scale, scale, T - row);
        store_rows<D / 8>(dv + base + (size_t)row * Hd, Hd, dV, 1.0f, 1.0f, T - row);
    }
}

template <typename K>
cudaError_t big_smem(K kernel, size_t bytes) {
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int D>
cudaError_t fwd(cudaStream_t s, int B, int T, int H, int window, const float *q, const float *k, const float *v,
                float *o, float *lse2) {
    cudaError_t e = big_smem(fwd_k<D>, fwd_smem<D>());
    if (e != cudaSuccess) return e;
    const dim3 grid((unsigned)((T + BR - 1) / BR), (unsigned)H, (unsigned)B);
    return hk_launch(fwd_k<D>, grid, NT, fwd_smem<D>(), s, T, H, window, q, k, v, o, lse2);
}

template <int D>
cudaError_t bwd(cudaStream_t s, int B, int T, int H, int window, const float *q, const float *k, const float *v,
                const float *o, const float *dO, float *dq, float *dk, float *dv, const float *lse2, float *delta) {
    cudaError_t e = big_smem(dq_k<D>, dq_smem<D>());
    if (e == cudaSuccess) e = big_smem(dkv_k<D>, dkv_smem<D>());
    if (e != cudaSuccess) return e;
    const size_t n = (size_t)B * T * H;
    e = hk_launch(delta_k<D>, dim3((unsigned)((n + DELTA_ROWS - 1) / DELTA_ROWS)), 32 * DELTA_ROWS, 0, s, T, H, n, o,
                  dO, delta);
    if (e != cudaSuccess) return e;
    const dim3 grid((unsigned)((T + BR - 1) / BR), (unsigned)H, (unsigned)B);
    e = hk_launch(dkv_k<D>, grid, NT, dkv_smem<D>(), s, T, H, window, q, k, v, dO, lse2, (const float *)delta, dk,
                  dv);
    if (e != cudaSuccess) return e;
    return hk_launch(dq_k<D>, grid, NT, dq_smem<D>(), s, T, H, window, q, k, v, dO, lse2, (const float *)delta, dq);
}

cudaError_t check(int B, int T, int H, int d, int window, const void *scratch) {
    if (B <= 0 || T <= 0 || H <= 0 || B > 65535 || H > 65535 || window < 0 || !scratch) return cudaErrorInvalidValue;
    return d == 64 || d == 128 ? cudaSuccess : cudaErrorNotSupported;
}

} // namespace

/* lse2 (log2 domain, from the forward) and delta per (sequence, head, query), f32. */
extern "C" size_t hk_attention_tc_scratch(int B, int T, int H) {
    return B > 0 && T > 0 && H > 0 ? 2 * (size_t)B * H * T * sizeof(float) : 0;
}

extern "C" cudaError_t hk_attention_tc_fwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q,
                                           const float *k, const float *v, float *o, void *scratch) {
    cudaError_t e = check(B, T, H, d, window, scratch);
    if (e != cudaSuccess) return e;
    if (window >= T) window = 0; /* a window as long as the sequence is full causal attention */
    float *lse2 = (float *)scratch;
    return d == 64 ? fwd<64>(s, B, T, H, window, q, k, v, o, lse2) : fwd<128>(s, B, T, H, window, q, k, v, o, lse2);
}

extern "C" cudaError_t hk_attention_tc_bwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q,
                                           const float *k, const float *v, const float *o, const float *dO,
                                           float *dq, float *dk, float *dv, void *scratch) {
    cudaError_t e = check(B, T, H, d, window, scratch);
    if (e != cudaSuccess) return e;
    if (window >= T) window = 0;
    const float *lse2 = (const float *)scratch;
    float *delta = (float *)scratch + (size_t)B * H * T;
    return d == 64 ? bwd<64>(s, B, T, H, window, q, k, v, o, dO, dq, dk, dv, lse2, delta)
                   : bwd<128>(s, B, T, H, window, q, k, v, o, dO, dq, dk, dv, lse2, delta);
}
