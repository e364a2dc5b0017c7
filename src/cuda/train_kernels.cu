/* train_kernels.cu — the backward kernels of the memory-bound ops for GPU
 * training: RMSNorm, the gated output norm, the DeltaNet input stage (conv
 * recomputed, SiLU, L2 norms, gates), the causal conv, SwiGLU, RoPE, the
 * embedding and the masked cross-entropy. Each mirrors one piece of the CPU
 * backward (src/model/train.c, src/ops/); tests/cuda_train/bwd_ops.c holds
 * them against it.
 *
 * Determinism: no float atomics anywhere. A parameter gradient is summed per
 * fixed chunk of rows into scratch partials [chunks, width], then
 * reduce_cols_k adds the chunks in a fixed order to the gradient, so a run
 * repeats bit for bit on the same card. */
#include <math.h>

#include <type_traits>

#include "device_util.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace {

/* The smallest chunk of rows behind one partial; hk_bwd_scratch_bytes sizes
 * for it, and every kernel's chunk is at least this long. */
constexpr int kMinChunk = 32;
constexpr int kRmsRows = 32;      /* rows per block of the RMSNorm backward */
constexpr int kNormItems = 256;   /* (row, head) items per block of the gated norm backward */
constexpr int kGateRows = 32;     /* rows per thread of the gates backward */
constexpr int kConvRows = 64;     /* rows per block of the conv backward */
constexpr int kConvTile = 32;     /* channels per block of the conv backward */

/* f(std::integral_constant<int, M>()) for the smallest power of two M in
 * [N, Max] with M >= n (Max when none is): kernels templated on their values
 * per thread keep exactly that many registers (a runtime bound would hold
 * the maximum). */
template <int N, int Max, class F> void with_pow2(int n, F f) {
    if constexpr (N >= Max) f(std::integral_constant<int, N>());
    else if (n <= N) f(std::integral_constant<int, N>());
    else with_pow2<2 * N, Max>(n, f);
}

__device__ __forceinline__ float silu_grad(float x) { /* d/dx x sigmoid(x) */
    const float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* out[c] += sum over i < n of part[i * width + c]: thread row y sums
 * i = y, y + 32, ... in order, then row 0 adds the 32 sums in y order. */
__global__ void reduce_cols_k(int n, int width, const float *part, float *out) {
    hk_pdl_entry();
    __shared__ float s[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < width) {
#pragma unroll 4
        for (int i = threadIdx.y; i < n; i += 32) acc += part[(size_t)i * width + c];
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < width) {
        float t = 0.0f;
        for (int y = 0; y < 32; y++) t += s[y][threadIdx.x];
        out[c] += t;
    }
}

cudaError_t reduce_cols(cudaStream_t s, int n, int width, const float *part, float *out) {
    if (n > 0 && width > 0) hk_launch(reduce_cols_k, blocks_for(width, 32), dim3(32, 32), 0, s, n, width, part, out);
    return cudaGetLastError();
}

/* Two block sums with one pair of barriers, each added in block_sum's order. */
__device__ float2 block_sum2(float a, float b) {
    __shared__ float2 part[32];
    __shared__ float2 total;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) part[w] = make_float2(a, b);
    __syncthreads();
    if (w == 0) {
        float2 p = lane < (int)(blockDim.x >> 5) ? part[lane] : make_float2(0.0f, 0.0f);
        p.x = warp_sum(p.x);
        p.y = warp_sum(p.y);
        if (lane == 0) total = p;
    }
    __syncthreads();
    return total;
}

/* One block per kRmsRows rows; a thread keeps its NPT slots of V
 * consecutive columns (c = (tid + i * blockDim) V + e) in registers, so x
 * and dy are read once (16-byte accesses with V = 4), and loads the next row
 * before reducing this one (the loads overlap the barriers). Per row:
 * r = 1/sqrt(mean(x^2) + eps), m = (dy w . x) r^2 / C, dx = r (dy w - x m);
 * the dw partial of the chunk sums dy x r over its rows in order. */
template <int V, typename T> __device__ __forceinline__ void load_v(const T *p, int c, bool on, float *out) {
    if constexpr (V == 4) {
        const float4 a = on ? load4(p, (size_t)c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
    } else out[0] = on ? load1(p, (size_t)c) : 0.0f;
}
template <int V> __device__ __forceinline__ void store_v(void *p, size_t i, const float *v, int bf16) {
    if constexpr (V == 4) store4(p, i, make_float4(v[0], v[1], v[2], v[3]), bf16);
    else store(p, i, v[0], bf16);
}
template <int NPT, int V, typename TD>
__device__ __forceinline__ void load_row(int C, const float *xr, const TD *gr, float *xv, float *gv) {
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int c = (threadIdx.x + i * blockDim.x) * V;
        load_v<V>(xr, c, c < C, xv + i * V);
        load_v<V>(gr, c, c < C, gv + i * V);
    }
}

template <int NPT, int V, typename TD>
__global__ void __launch_bounds__(512) rmsnorm_bwd_k(int M, int C, const float *x, const float *w, float eps, const TD *dy, float *dx,
                              __nv_bfloat16 *dx16, int acc, float *part) {
    hk_pdl_entry();
    constexpr int N = NPT * V;
    const int nt = blockDim.x;
    float wv[N], pw[N] = {};
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int c = (threadIdx.x + i * nt) * V;
        load_v<V>(w, c, c < C, wv + i * V);
    }
    const int r0 = blockIdx.x * kRmsRows, r1 = min(M, r0 + kRmsRows);
    float xv[N], gv[N], xn[N] = {}, gn[N] = {};
    load_row<NPT, V, TD>(C, x + (size_t)r0 * C, dy + (size_t)r0 * C, xv, gv);
    for (int r = r0; r < r1; r++) {
        if (r + 1 < r1) load_row<NPT, V, TD>(C, x + (size_t)(r + 1) * C, dy + (size_t)(r + 1) * C, xn, gn);
        float ss = 0.0f, dot = 0.0f;
#pragma unroll
        for (int i = 0; i < N; i++) {
            ss += xv[i] * xv[i];
            dot += gv[i] * wv[i] * xv[i];
        }
        const float2 sd = block_sum2(ss, dot);
        const float rr = 1.0f / sqrtf(sd.x / (float)C + eps), m = sd.y * rr * rr / (float)C;
        float *dr = dx + (size_t)r * C;
#pragma unroll
        for (int i = 0; i < NPT; i++) {
            const int c = (threadIdx.x + i * nt) * V;
            if (c < C) {
                float o[V] = {};
                if (acc) load_v<V>(dr, c, true, o);
#pragma unroll
                for (int e = 0; e < V; e++) {
                    const int k = i * V + e;
                    const float v = rr * (gv[k] * wv[k] - xv[k] * m);
                    o[e] = acc ? o[e] + v : v;
                    pw[k] += gv[k] * xv[k] * rr;
                }
                store_v<V>(dr, (size_t)c, o, 0);
                if (dx16) store_v<V>(dx16, (size_t)r * C + c, o, 1);
            }
        }
#pragma unroll
        for (int k = 0; k < N; k++) xv[k] = xn[k], gv[k] = gn[k];
    }
    if (!part) return;
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int c = (threadIdx.x + i * nt) * V;
        if (c < C) store_v<V>(part, (size_t)blockIdx.x * C + c, pw + i * V, 0);
    }
}

/* Gated output norm backward, one warp per (row, head) item, 8 warps per
 * block, kNormItems items per block (warp w takes items w, w + 8, ...); lane
 * holds channels lane + 32 i, i < NPL (d <= 32 NPL <= 256). With n = o rr, s = SiLU(z):
 * dz = dy n w SiLU'(z); dn = dy w s; dO = rr (dn - o rr mean(dn n));
 * the o_norm partial of the block sums dy n s (warps added in order). */
template <int NPL, typename TP>
__global__ void gated_onorm_bwd_k(size_t items, int H, int d, const float *o, const TP *proj, int P, int gate_off,
                                  const float *w, float eps, const float *dy, void *dproj, int dproj_bf16, void *dO,
                                  int dO16, float *part) {
    hk_pdl_entry();
    __shared__ float pws[8][256];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    float pw[NPL], wv[NPL];
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int c = lane + 32 * i;
        wv[i] = c < d ? w[c] : 0.0f;
        pw[i] = 0.0f;
    }
    const size_t i0 = (size_t)blockIdx.x * kNormItems;
    for (size_t it = i0 + wp; it < items && it < i0 + kNormItems; it += 8) {
        const size_t r = it / H, zoff = r * P + gate_off + (it % H) * d;
        const float *oh = o + it * d, *gy = dy + it * d;
        const TP *zh = proj + zoff;
        float ov[NPL], zv[NPL], gv[NPL], dn[NPL], ss = 0.0f, dot = 0.0f;
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int c = lane + 32 * i;
            ov[i] = c < d ? oh[c] : 0.0f;
            zv[i] = c < d ? load1(zh, (size_t)c) : 0.0f;
            gv[i] = c < d ? gy[c] : 0.0f;
            ss += ov[i] * ov[i];
        }
        const float rr = 1.0f / sqrtf(warp_sum(ss) / (float)d + eps);
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int c = lane + 32 * i;
            const float n = ov[i] * rr, sg = sigmoid(zv[i]), s = zv[i] * sg;
            dn[i] = gv[i] * wv[i] * s;
            dot += dn[i] * n;
            if (c >= d) continue;
            store(dproj, zoff + c, gv[i] * n * wv[i] * (sg * (1.0f + zv[i] * (1.0f - sg))), dproj_bf16);
            pw[i] += gv[i] * n * s;
        }
        const float mean = warp_sum(dot) / (float)d;
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int c = lane + 32 * i;
            if (c < d) store(dO, it * d + c, rr * (dn[i] - ov[i] * (rr * mean)), dO16);
        }
    }
    if (!part) return; /* uniform over the block: no __syncthreads is skipped by some threads only */
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int c = lane + 32 * i;
        if (c < d) pws[wp][c] = pw[i];
    }
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += pws[k][c];
        part[(size_t)blockIdx.x * d + c] = t;
    }
}

/* DeltaNet input stage backward, one warp per (row, head, part) (gdn_item):
 * recompute the conv output c (zero tails), then
 * v: dc = dv SiLU'(c); q, k: s = SiLU(c), rn = 1/sqrt(|s|^2 + eps),
 * dc = scale rn (dy - s (s . dy) rn^2) SiLU'(c). */
template <int NPL, typename TP>
__global__ void gdn_prep_bwd_k(size_t items, int T, int H, int d, int K, const TP *proj, int P, const float *convw,
                               float l2_eps, float qscale, const float *dq, const float *dk, const float *dv,
                               void *dconv, int dconv16) {
    hk_pdl_entry();
    const int lane = threadIdx.x & 31;
    GdnItem it;
    if (!gdn_item(items, T, H, &it)) return;
    const size_t Hd = (size_t)H * d, r = it.r;
    const int part = it.part, h = it.h;
    const float *gsrc = (part == 0 ? dq : part == 1 ? dk : dv) + r * Hd + (size_t)h * d;
    float cv[NPL], gv[NPL], ss = 0.0f, dot = 0.0f;
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int c = lane + 32 * i;
        cv[i] = gv[i] = 0.0f;
        if (c >= d) continue;
        cv[i] = gdn_conv_at(proj, P, convw, K, r, it.t, (size_t)part * Hd + (size_t)h * d + c, nullptr, 0);
        gv[i] = gsrc[c];
        const float s = silu(cv[i]);
        ss += s * s;
        dot += s * gv[i];
    }
    const size_t out = r * 3 * Hd + (size_t)part * Hd + (size_t)h * d;
    if (part == 2) {
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int c = lane + 32 * i;
            if (c < d) store(dconv, out + c, gv[i] * silu_grad(cv[i]), dconv16);
        }
        return;
    }
    const float rn = 1.0f / sqrtf(warp_sum(ss) + l2_eps), nd = warp_sum(dot) * rn * rn;
    const float scale = part == 0 ? qscale : 1.0f;
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int c = lane + 32 * i;
        if (c < d) store(dconv, out + c, scale * rn * (gv[i] - silu(cv[i]) * nd) * silu_grad(cv[i]), dconv16);
    }
}

/* The same for prep_tiled_ok shapes: a thread takes 4 channels down
 * kPrepRows rows (ConvWalk from zero tails), the d/4 lanes of a head reduce
 * by shuffles (PrepTile). */
template <int KW, typename TP>
__global__ void gdn_prep_bwd_tiled_k(int BT, int T, int H, int d, const TP *proj, int P, const float *convw,
                                     float l2_eps, float qscale, const float *dq, const float *dk, const float *dv,
                                     void *dconv, int dconv16) {
    hk_pdl_entry();
    PrepTile p;
    if (!prep_tile(BT, H, d, &p)) return;
    const int ch = p.ch, part = p.part, Hd = p.Hd, hc = p.hc;
    const bool on = p.on;
    const float *gsrc = part == 0 ? dq : part == 1 ? dk : dv;
    const float scale = part == 0 ? qscale : 1.0f;
    ConvWalk<KW> cw;
    if (on) cw.load_weights(convw, (size_t)ch);
    const int r0 = p.r0, r1 = p.r1;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int rg = r0; rg < r1; rg += kPrepAhead) {
        float4 xs[kPrepAhead], gs[kPrepAhead]; /* the group's rows, all in flight at once */
#pragma unroll
        for (int u = 0; u < kPrepAhead; u++) {
            const bool in = on && rg + u < r1;
            xs[u] = in ? load4(proj, (size_t)(rg + u) * P + ch) : zero;
            gs[u] = in ? load4(gsrc, (size_t)(rg + u) * Hd + hc) : zero;
        }
#pragma unroll
        for (int u = 0; u < kPrepAhead; u++) {
            const int r = rg + u, t = r % T;
            if (r >= r1) break; /* the same for the whole block */
            if (on && (r == r0 || t == 0)) cw.fill(proj, P, (size_t)r, t, (size_t)ch, nullptr, (size_t)p.Cc);
            const float4 c4 = on ? cw.step(xs[u]) : zero;
            float cv[4], gv[4], sv[4], ss = 0.0f, dot = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                cv[i] = at(c4, i), gv[i] = at(gs[u], i), sv[i] = silu(cv[i]);
                ss += sv[i] * sv[i];
                dot += sv[i] * gv[i];
            }
            ss = group_sum(ss, d / 4);
            dot = group_sum(dot, d / 4);
            const float rn = 1.0f / sqrtf(ss + l2_eps), nd = dot * rn * rn;
            float o[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                o[i] = part == 2 ? gv[i] * silu_grad(cv[i]) : scale * rn * (gv[i] - sv[i] * nd) * silu_grad(cv[i]);
            if (on) store4(dconv, (size_t)r * p.Cc + ch, make_float4(o[0], o[1], o[2], o[3]), dconv16);
        }
    }
}

/* Gates backward, one thread per (chunk of kGateRows rows, head):
 * beta = sigmoid(b): db = dbeta beta (1 - beta);
 * g = -exp(A_log) softplus(a + dt_bias): da = dg (-exp(A_log)) sigmoid(a + dt_bias);
 * partials of dA_log (sum dg g) at part[chunk, h] and of ddt_bias (sum da)
 * at part[nchunk + chunk, h], rows in order. */
template <typename TP>
__global__ void gdn_gates_bwd_k(int BT, int H, int nchunk, const TP *proj, int P, int a_off, const float *A_log,
                                const float *dt_bias, const float *g, const float *beta, const float *dg,
                                const float *dbeta, void *dproj, int dproj_bf16, float *part) {
    hk_pdl_entry();
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)nchunk * H) return;
    const int chunk = (int)(i / H), h = (int)(i % H);
    const float ea = -expf(A_log[h]), bias = dt_bias[h];
    float sA = 0.0f, sdt = 0.0f;
    const int r1 = min(BT, (chunk + 1) * kGateRows);
#pragma unroll 4
    for (int r = chunk * kGateRows; r < r1; r++) {
        const size_t rh = (size_t)r * H + h;
        const TP *pr = proj + (size_t)r * P + a_off;
        const size_t dp = (size_t)r * P + a_off;
        const float be = beta[rh], da = dg[rh] * ea * sigmoid(load1(pr, (size_t)h) + bias);
        store(dproj, dp + H + h, dbeta[rh] * be * (1.0f - be), dproj_bf16);
        store(dproj, dp + h, da, dproj_bf16);
        sA += dg[rh] * g[rh];
        sdt += da;
    }
    part[i] = sA;
    part[(size_t)nchunk * H + i] = sdt;
}

/* Causal depthwise conv backward from zero tails. Block (32, 8): kConvTile
 * channels x kConvRows rows of the flattened [BT] (a chunk may span
 * sequences: the taps are masked by the position t within the sequence).
 * dy rows [r0, r0 + rows + K - 1) and x rows [r0 - K + 1, r0 + rows) are
 * staged in shared memory, then
 *   dx[s, c] = sum_j w[c, j] dy[s + K - 1 - j, c]   (t_s + K - 1 - j < T)
 *   part[chunk, c K + j] = sum_s dy[s, c] x[s - K + 1 + j, c]  (t_s - K + 1 + j >= 0), s in order. */
template <typename TX, typename TD>
__global__ void conv_bwd_k(int BT, int T, int Cc, int K, const TX *x, int ldx, const float *w, const TD *dy,
                           void *dx, int lddx, int dx_bf16, float *part) {
    hk_pdl_entry();
    extern __shared__ float sm[];
    const int span = kConvRows + K - 1;
    float *dys = sm, *xs = sm + span * kConvTile, *ws = xs + span * kConvTile; /* [span][32], [span][32], [K][32] */
    const int tx = threadIdx.x, ty = threadIdx.y, ny = blockDim.y;
    const int c = blockIdx.x * kConvTile + tx, r0 = blockIdx.y * kConvRows;
    const bool on = c < Cc;
    for (int i = ty; i < span; i += ny) {
        const int rd = r0 + i, rx = r0 - (K - 1) + i;
        dys[i * kConvTile + tx] = on && rd < BT ? load1(dy, (size_t)rd * Cc + c) : 0.0f;
        xs[i * kConvTile + tx] = on && rx >= 0 && rx < BT ? load1(x, (size_t)rx * ldx + c) : 0.0f;
    }
    for (int j = ty; j < K; j += ny) ws[j * kConvTile + tx] = on ? w[(size_t)c * K + j] : 0.0f;
    __syncthreads();
    if (!on) return;
    const int rows = min(kConvRows, BT - r0);
    for (int i = ty; i < rows; i += ny) {
        const int t = (r0 + i) % T;
        float acc = 0.0f;
        for (int j = 0; j < K; j++)
            if (t + K - 1 - j < T) acc += ws[j * kConvTile + tx] * dys[(i + K - 1 - j) * kConvTile + tx];
        store(dx, (size_t)(r0 + i) * lddx + c, acc, dx_bf16);
    }
    if (!part) return;
    for (int j = ty; j < K; j += ny) {
        float acc = 0.0f;
        for (int i = 0, t = r0 % T; i < rows; i++, t = t + 1 == T ? 0 : t + 1) /* t: row r0 + i's position */
            if (t - (K - 1) + j >= 0) acc += dys[i * kConvTile + tx] * xs[(i + j) * kConvTile + tx];
        part[(size_t)blockIdx.y * Cc * K + (size_t)c * K + j] = acc;
    }
}

/* The same for 4 consecutive channels a thread (K = KW <= 4 taps, aligned
 * rows): a thread walks the kConvRows rows of its chunk once, keeping the
 * last KW rows of x and the next KW rows of dy in registers, so each row is
 * read once (conv_bwd_k reads element by element through shared memory:
 * ~3x the memory floor at the default model's 2,304 channels). Same chunks,
 * same order of every sum: the same bits as conv_bwd_k. */
template <typename TX, typename TD, int KW>
__global__ void conv_bwd4_k(int BT, int T, int Cc, const TX *x, int ldx, const float *w, const TD *dy, void *dx,
                            int lddx, int dx_bf16, float *part) {
    hk_pdl_entry();
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4, r0 = blockIdx.x * kConvRows;
    if (c >= Cc) return;
    const int rows = min(kConvRows, BT - r0);
    const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float wt[4][KW];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < KW; j++) wt[i][j] = w[(size_t)(c + i) * KW + j];
    float4 xw[KW], dw[KW]; /* x rows s-KW+1 .. s; dy rows s .. s+KW-1 */
#pragma unroll
    for (int j = 0; j < KW - 1; j++) {
        const int rx = r0 - (KW - 1) + j, rd = r0 + j;
        xw[j + 1] = rx >= 0 ? load4(x, (size_t)rx * ldx + c) : z;
        dw[j] = rd < BT ? load4(dy, (size_t)rd * Cc + c) : z;
    }
    float pj[KW][4];
#pragma unroll
    for (int j = 0; j < KW; j++) pj[j][0] = pj[j][1] = pj[j][2] = pj[j][3] = 0.0f;
    int t = r0 % T;
#pragma unroll 4
    for (int i = 0; i < rows; i++, t = t + 1 == T ? 0 : t + 1) {
        const int s = r0 + i;
#pragma unroll
        for (int j = 0; j < KW - 1; j++) xw[j] = xw[j + 1];
        xw[KW - 1] = load4(x, (size_t)s * ldx + c);
        dw[KW - 1] = s + KW - 1 < BT ? load4(dy, (size_t)(s + KW - 1) * Cc + c) : z;
        float o[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float acc = 0.0f; /* dx[s] = sum_j w[j] dy[s + KW - 1 - j], j ascending, within the sequence */
#pragma unroll
            for (int j = 0; j < KW; j++)
                if (t + KW - 1 - j < T) acc = fmaf(wt[e][j], at(dw[KW - 1 - j], e), acc);
            o[e] = acc;
        }
        store4(dx, (size_t)s * lddx + c, make_float4(o[0], o[1], o[2], o[3]), dx_bf16);
        if (part) /* part[c, j] += dy[s] x[s - KW + 1 + j], within the sequence */
#pragma unroll
            for (int j = 0; j < KW; j++)
                if (t - (KW - 1) + j >= 0)
#pragma unroll
                    for (int e = 0; e < 4; e++) pj[j][e] = fmaf(at(dw[0], e), at(xw[j], e), pj[j][e]);
#pragma unroll
        for (int j = 0; j < KW - 1; j++) dw[j] = dw[j + 1];
    }
    if (!part) return;
    float *pp = part + (size_t)blockIdx.x * Cc * KW + (size_t)c * KW; /* [c..c+3][KW]: 4 KW contiguous floats */
#pragma unroll
    for (int e = 0; e < 4; e++)
#pragma unroll
        for (int j = 0; j < KW; j++) pp[e * KW + j] = pj[j][e];
}

/* SwiGLU backward: act = SiLU(g) u: dg = da u SiLU'(g), du = da SiLU(g). */
__device__ __forceinline__ float2 swiglu_grad(float g, float u, float a) {
    const float sg = sigmoid(g);
    return make_float2(a * u * (sg * (1.0f + g * (1.0f - sg))), a * g * sg);
}

/* One thread per (row, i < F); gu f32 or bf16 (TI), dact too (TA). */
template <typename TI, typename TA>
__global__ void swiglu_bwd_k(size_t n, int F, const TI *gu, const TA *dact, void *dgu, int bf16) {
    hk_pdl_entry();
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t r = i / F;
    const int c = (int)(i % F);
    const TI *row = gu + r * 2 * F;
    const float2 d = swiglu_grad(load1(row, c), load1(row, F + c), load1(dact, i));
    store(dgu, r * 2 * F + c, d.x, bf16);
    store(dgu, r * 2 * F + F + c, d.y, bf16);
}

/* F % 4 == 0, 16-byte aligned rows: 4 columns per thread, grid (rows, column
 * blocks), so no index division and 16-byte loads. */
template <typename TI, typename TA> __global__ void swiglu_bwd4_k(int F, const TI *gu, const TA *dact, void *dgu, int bf16) {
    hk_pdl_entry();
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    if (c >= F) return;
    const size_t r = blockIdx.x, o = r * 2 * F + c;
    const float4 g = load4(gu, o), u = load4(gu, o + F), a = load4(dact, r * F + c);
    const float2 d0 = swiglu_grad(g.x, u.x, a.x), d1 = swiglu_grad(g.y, u.y, a.y), d2 = swiglu_grad(g.z, u.z, a.z),
                 d3 = swiglu_grad(g.w, u.w, a.w);
    store4(dgu, o, make_float4(d0.x, d1.x, d2.x, d3.x), bf16);
    store4(dgu, o + F, make_float4(d0.y, d1.y, d2.y, d3.y), bf16);
}

/* RoPE backward = the rotation by minus the angle (c, sn: its cosine and
 * sine at the row's position): (a, b) -> (a c + b sn, b c - a sn), each
 * product and sum rounded on its own (no FMA contraction), so that the two
 * kernels below give the same bits whatever the compiler fuses. */
__device__ __forceinline__ float2 rope_back(float a, float b, float c, float sn) {
    return make_float2(__fadd_rn(__fmul_rn(a, c), __fmul_rn(b, sn)), __fsub_rn(__fmul_rn(b, c), __fmul_rn(a, sn)));
}
/* cos, sin of the angle of row r (position r % T), frequency f; in double */
__device__ __forceinline__ float2 rope_angle(size_t r, int T, const double *inv_freq, int f) {
    double sd, cd;
    sincos((double)(r % T) * inv_freq[f], &sd, &cd);
    return make_float2((float)cd, (float)sd);
}

/* RoPE backward in place, one thread per (row, i < d/2), all heads: the
 * angle is computed once per H values. */
__global__ void rope_bwd_k(size_t n, int T, int H, int d, const double *inv_freq, float *dx) {
    hk_pdl_entry();
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int half = d / 2, f = (int)(i % half);
    const size_t r = i / half;
    const float2 cs = rope_angle(r, T, inv_freq, f);
    for (int h = 0; h < H; h++) {
        float *xh = dx + (r * H + h) * d;
        const float2 y = rope_back(xh[f], xh[f + half], cs.x, cs.y);
        xh[f] = y.x, xh[f + half] = y.y;
    }
}

/* The attention backward's dq, dk, dv (f32 [3][BT, H d], part stride ps)
 * into the in-projection's gradient dst [BT, 3 H d] (bf16, row stride ldd):
 * RoPE's backward on dq and dk on the way — one pass instead of two
 * rope_bwd_k passes and three bf16 copies, the same bits. */
__global__ void rope_bwd16_k(size_t n, int T, int H, int d, const double *inv_freq, const float *dqkv, size_t ps,
                             __nv_bfloat16 *dst, size_t ldd) {
    hk_pdl_entry();
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int half = d / 2, f = (int)(i % half);
    const size_t r = i / half, Hd = (size_t)H * d;
    const float2 cs = rope_angle(r, T, inv_freq, f);
    for (int part = 0; part < 3; part++)
        for (int h = 0; h < H; h++) {
            const float *xh = dqkv + part * ps + r * Hd + (size_t)h * d;
            float2 y = make_float2(xh[f], xh[f + half]);
            if (part < 2) y = rope_back(y.x, y.y, cs.x, cs.y);
            __nv_bfloat16 *o = dst + r * ldd + part * Hd + (size_t)h * d;
            o[f] = __float2bfloat16_rn(y.x), o[f + half] = __float2bfloat16_rn(y.y);
        }
}

/* Embedding backward, block (32, 16) per (token, 32 columns): warp row y
 * sums the token's rows y, y + 16, ... (CSR order), then row 0 adds the 16
 * sums in y order to dE. */
__global__ void embed_bwd_k(int C, const int32_t *row_start, const int32_t *rows, const float *dx, float *dE) {
    hk_pdl_entry();
    __shared__ float s[16][33];
    const int v = blockIdx.x, c = blockIdx.y * 32 + threadIdx.x;
    const int k0 = row_start[v], k1 = row_start[v + 1];
    if (k0 == k1) return; /* the whole block: no __syncthreads is split */
    float acc = 0.0f;
    if (c < C) {
#pragma unroll 4
        for (int k = k0 + threadIdx.y; k < k1; k += 16) acc += dx[(size_t)rows[k] * C + c];
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
        for (int y = 0; y < 16; y++) t += s[y][threadIdx.x];
        dE[(size_t)v * C + c] += t;
    }
}

/* Cross-entropy, one warp per row (8 rows per block), in place: loss =
 * logsumexp - x[target] (max-shifted, the exponentials summed in double as
 * the CPU op does); x <- (softmax - onehot) * scale on scored rows, 0
 * elsewhere. An out-of-range target on a scored row gives a NaN loss (the
 * host wrappers refuse it before). */
__global__ void xent_k(int M, int V, float *logits, const int32_t *targets, const uint8_t *mask, float scale,
                       double *rl, __nv_bfloat16 *d16) {
    hk_pdl_entry();
    const int lane = threadIdx.x & 31;
    const size_t r = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= (size_t)M) return; /* whole warps only */
    float *x = logits + r * V;
    if (mask && !mask[r]) {
        for (int c = lane; c < V; c += 32) {
            if (d16) d16[r * V + c] = __float2bfloat16_rn(0.0f);
            else x[c] = 0.0f;
        }
        if (lane == 0) rl[r] = 0.0;
        return;
    }
    const int tg = targets[r];
    const bool ok = tg >= 0 && tg < V;
    const float xt = ok ? x[tg] : 0.0f;
    float mx = -INFINITY;
    for (int c = lane; c < V; c += 32) mx = fmaxf(mx, x[c]);
    mx = warp_reduce(mx, OpMax());
    double sum = 0.0;
    for (int c = lane; c < V; c += 32) sum += exp((double)x[c] - mx);
    sum = warp_sum(sum);
    __syncwarp(); /* every lane has read x[tg] before any lane overwrites x */
    const double inv = 1.0 / sum;
    for (int c = lane; c < V; c += 32) {
        /* explicit roundings: the one-hot term is subtracted from the rounded product, never fused */
        float p = __fmul_rn((float)(exp((double)x[c] - mx) * inv), scale);
        if (ok && c == tg) p = __fsub_rn(p, scale);
        if (d16) d16[r * V + c] = __float2bfloat16_rn(p);
        else x[c] = p;
    }
    if (lane == 0) rl[r] = ok ? (double)mx + log(sum) - (double)xt : (double)NAN;
}

/* *out = sum of rl[M]: thread i sums rows i, i + blockDim, ... in order, then a fixed tree. */
__global__ void sum_rows_k(int M, const double *rl, double *out) {
    hk_pdl_entry();
    double s = 0.0;
    for (int i = threadIdx.x; i < M; i += blockDim.x) s += rl[i];
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

template <typename TI, typename TA>
cudaError_t swiglu_bwd_launch(cudaStream_t s, int BT, int F, const TI *gu, const TA *dact, void *dgu, int out_bf16) {
    const size_t n = (size_t)BT * F;
    if (!n) return cudaSuccess;
    if (F % 4 == 0 && aligned16(gu) && aligned16(dact) && aligned16(dgu)) {
        const unsigned threads = F / 4 < 256 ? (unsigned)(F / 4 + 31) / 32 * 32 : 256;
        hk_launch(swiglu_bwd4_k<TI, TA>, dim3((unsigned)BT, blocks_for((size_t)F / 4, threads)), threads, 0, s, F, gu, dact,
                  dgu, out_bf16);
    } else hk_launch(swiglu_bwd_k<TI, TA>, blocks_for(n, 256), 256, 0, s, n, F, gu, dact, dgu, out_bf16);
    return cudaGetLastError();
}

template <typename TD>
cudaError_t rmsnorm_bwd_launch(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, const TD *dy,
                               float *dx, void *dx16, int acc, float *dw, void *scratch) {
    if (M <= 0) return cudaSuccess;
    if (C <= 0 || C > 16 * 512 || (dw && !scratch)) return cudaErrorInvalidValue;
    float *part = dw ? (float *)scratch : nullptr;
    const unsigned nb = blocks_for((size_t)M, kRmsRows);
    /* 16-byte slots where rows allow them, up to C = 2048 (2 slots per thread: the registers of 8 columns);
     * else the fewest columns per thread (1..16) that fit in 256 threads; past C = 4096, 16 per thread
     * and up to 512 threads (the register file's bound at 16) */
    const bool v4 = C % 4 == 0 && C <= 2048 && aligned16(x) && aligned16(w) && aligned16(dy) && aligned16(dx) &&
                    ((size_t)dx16 & 7) == 0 && ((size_t)part & 15) == 0;
    auto go = [&](auto npt, auto vw) {
        constexpr int NPT = decltype(npt)::value, V = decltype(vw)::value;
        const unsigned threads = (blocks_for((size_t)C, NPT * V) + 31) / 32 * 32;
        hk_launch(rmsnorm_bwd_k<NPT, V, TD>, nb, threads, 0, s, M, C, x, w, eps, dy, dx, (__nv_bfloat16 *)dx16, acc, part);
    };
    if (v4) with_pow2<1, 2>((C / 4 + 255) / 256, [&](auto npt) { go(npt, std::integral_constant<int, 4>()); });
    else with_pow2<1, 16>((C + 255) / 256, [&](auto npt) { go(npt, std::integral_constant<int, 1>()); });
    if (dw) return reduce_cols(s, (int)nb, C, part, dw);
    return cudaGetLastError();
}

} // namespace

extern "C" {

size_t hk_bwd_scratch_bytes(size_t rows, size_t width) {
    const size_t part = (rows + kMinChunk - 1) / kMinChunk * width * sizeof(float), loss = rows * sizeof(double);
    const size_t n = part > loss ? part : loss;
    return (n + 255) & ~(size_t)255;
}


} // extern "C"

namespace {

template <typename TP>
cudaError_t gated_onorm_bwd_launch(cudaStream_t s, int BT, int H, int d, const float *o, const TP *proj, int P,
                                   int gate_off, const float *w, float eps, const float *dy, void *dproj, int dproj_bf16,
                                   void *dO, int dO16, float *dw, void *scratch) {
    const size_t items = (size_t)BT * H;
    if (!items) return cudaSuccess;
    if (d <= 0 || d > 256 || (dw && !scratch)) return cudaErrorInvalidValue;
    float *part = dw ? (float *)scratch : nullptr;
    const unsigned nb = blocks_for(items, kNormItems);
    with_pow2<1, 8>((d + 31) / 32, [&](auto npl) {
        hk_launch(gated_onorm_bwd_k<decltype(npl)::value, TP>, nb, 256, 0, s, items, H, d, o, proj, P, gate_off, w, eps, dy,
                  dproj, dproj_bf16, dO, dO16, part);
    });
    if (dw) return reduce_cols(s, (int)nb, d, part, dw);
    return cudaGetLastError();
}

template <typename TP>
cudaError_t gdn_prep_bwd_launch(cudaStream_t s, int B, int T, int H, int d, int K, const TP *proj, int P,
                                const float *convw, const float *A_log, const float *dt_bias, const float *g,
                                const float *beta, float l2_eps, const float *dq, const float *dk, const float *dv,
                                const float *dg, const float *dbeta, void *dconv, int dconv16, void *dproj,
                                int dproj_bf16, float *dA_log, float *ddt_bias, void *scratch) {
    const size_t BT = (size_t)B * T, warps = BT * 3 * H;
    if (!warps) return cudaSuccess;
    if (d <= 0 || d > 256 || K < 1 || !scratch) return cudaErrorInvalidValue;
    const float qscale = 1.0f / sqrtf((float)d);
    if (prep_tiled_ok(T, d, K, P, proj) && aligned16(dq) && aligned16(dk) && aligned16(dv) && aligned16(dconv)) {
        with_k(K, [&](auto kw) {
            hk_launch(gdn_prep_bwd_tiled_k<decltype(kw)::value, TP>, prep_tiled_grid(BT, H, d), 128, 0, s, (int)BT, T, H, d,
                      proj, P, convw, l2_eps, qscale, dq, dk, dv, dconv, dconv16);
        });
    } else
        with_pow2<1, 8>((d + 31) / 32, [&](auto npl) {
            hk_launch(gdn_prep_bwd_k<decltype(npl)::value, TP>, blocks_for(warps, 8), 256, 0, s, warps, T, H, d, K, proj, P,
                      convw, l2_eps, qscale, dq, dk, dv, dconv, dconv16);
        });
    const int nchunk = (int)blocks_for(BT, kGateRows);
    float *part = (float *)scratch; /* [2][nchunk][H] */
    hk_launch(gdn_gates_bwd_k<TP>, blocks_for((size_t)nchunk * H, 256), 256, 0, s, (int)BT, H, nchunk, proj, P, 4 * H * d,
              A_log, dt_bias, g, beta, dg, dbeta, dproj, dproj_bf16, part);
    cudaError_t e = reduce_cols(s, nchunk, H, part, dA_log);
    if (e == cudaSuccess) e = reduce_cols(s, nchunk, H, part + (size_t)nchunk * H, ddt_bias);
    return e;
}

template <typename TX, typename TD>
cudaError_t conv_bwd_launch(cudaStream_t s, int B, int T, int Cc, int K, const TX *x, int ldx, const float *w,
                            const TD *dy, void *dx, int lddx, int dx_bf16, float *dw, void *scratch) {
    const size_t BT = (size_t)B * T;
    if (!BT || Cc <= 0) return cudaSuccess;
    if (K < 1 || K > 64 || (dw && !scratch) || BT > (size_t)65535 * kConvRows) return cudaErrorInvalidValue;
    float *part = dw ? (float *)scratch : nullptr; /* [nchunk][Cc K] */
    const unsigned nchunk = blocks_for(BT, kConvRows);
    const size_t smem = (size_t)(2 * (kConvRows + K - 1) + K) * kConvTile * sizeof(float); /* <= 41 KB at K = 64 */
    const size_t xa = sizeof(TX) * 4; /* 4 channels of x, of dx in its dtype */
    const char *e4 = getenv("HYDRA_CUDA_CONV_BWD4"); /* "0": conv_bwd_k at every shape (for comparisons) */
    const bool walk4 = K <= 4 && Cc % 4 == 0 && ldx % 4 == 0 && lddx % 4 == 0 && (size_t)x % xa == 0 &&
                       (size_t)dx % (dx_bf16 ? 8 : 16) == 0 && (size_t)dy % (sizeof(TD) * 4) == 0;
    if (walk4 && !(e4 && strcmp(e4, "0") == 0)) {
        with_k(K, [&](auto kw) {
            hk_launch(conv_bwd4_k<TX, TD, decltype(kw)::value>, dim3(nchunk, blocks_for((size_t)Cc / 4, 128)), 128, 0, s,
                      (int)BT, T, Cc, x, ldx, w, dy, dx, lddx, dx_bf16, part);
        });
    } else /* channel tiles fastest: blocks running together read whole rows */
        hk_launch(conv_bwd_k<TX, TD>, dim3(blocks_for((size_t)Cc, kConvTile), nchunk), dim3(kConvTile, 8), smem, s, (int)BT,
                  T, Cc, K, x, ldx, w, dy, dx, lddx, dx_bf16, part);
    if (dw) return reduce_cols(s, (int)nchunk, Cc * K, part, dw);
    return cudaGetLastError();
}

} // namespace

extern "C" {

cudaError_t hk_rmsnorm_bwd(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, const float *dy,
                           float *dx, void *dx16, int acc, float *dw, void *scratch) {
    return rmsnorm_bwd_launch(s, M, C, x, w, eps, dy, dx, dx16, acc, dw, scratch);
}

cudaError_t hk_rmsnorm_bwd16(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, const uint16_t *dy,
                             float *dx, void *dx16, int acc, float *dw, void *scratch) {
    return rmsnorm_bwd_launch(s, M, C, x, w, eps, (const __nv_bfloat16 *)dy, dx, dx16, acc, dw, scratch);
}

cudaError_t hk_gated_onorm_bwd(cudaStream_t s, int BT, int H, int d, const float *o, const float *proj, int P,
                               int gate_off, const float *w, float eps, const float *dy, void *dproj, int dproj_bf16,
                               float *dO, float *dw, void *scratch) {
    return gated_onorm_bwd_launch(s, BT, H, d, o, proj, P, gate_off, w, eps, dy, dproj, dproj_bf16, dO, 0, dw, scratch);
}
cudaError_t hk_gated_onorm_bwd16(cudaStream_t s, int BT, int H, int d, const float *o, const uint16_t *proj, int P,
                                 int gate_off, const float *w, float eps, const float *dy, void *dproj, int dproj_bf16,
                                 void *dO, int dO16, float *dw, void *scratch) {
    return gated_onorm_bwd_launch(s, BT, H, d, o, (const __nv_bfloat16 *)proj, P, gate_off, w, eps, dy, dproj, dproj_bf16,
                                  dO, dO16, dw, scratch);
}

cudaError_t hk_gdn_prep_bwd(cudaStream_t s, int B, int T, int H, int d, int K, const float *proj, int P,
                            const float *convw, const float *A_log, const float *dt_bias, const float *g,
                            const float *beta, float l2_eps, const float *dq, const float *dk, const float *dv,
                            const float *dg, const float *dbeta, float *dconv, void *dproj, int dproj_bf16,
                            float *dA_log, float *ddt_bias, void *scratch) {
    return gdn_prep_bwd_launch(s, B, T, H, d, K, proj, P, convw, A_log, dt_bias, g, beta, l2_eps, dq, dk, dv, dg, dbeta,
                               dconv, 0, dproj, dproj_bf16, dA_log, ddt_bias, scratch);
}
cudaError_t hk_gdn_prep_bwd16(cudaStream_t s, int B, int T, int H, int d, int K, const uint16_t *proj, int P,
                              const float *convw, const float *A_log, const float *dt_bias, const float *g,
                              const float *beta, float l2_eps, const float *dq, const float *dk, const float *dv,
                              const float *dg, const float *dbeta, void *dconv, int dconv16, void *dproj,
                              int dproj_bf16, float *dA_log, float *ddt_bias, void *scratch) {
    return gdn_prep_bwd_launch(s, B, T, H, d, K, (const __nv_bfloat16 *)proj, P, convw, A_log, dt_bias, g, beta, l2_eps,
                               dq, dk, dv, dg, dbeta, dconv, dconv16, dproj, dproj_bf16, dA_log, ddt_bias, scratch);
}

cudaError_t hk_conv_bwd(cudaStream_t s, int B, int T, int Cc, int K, const float *x, int ldx, const float *w,
                        const float *dy, void *dx, int lddx, int dx_bf16, float *dw, void *scratch) {
    return conv_bwd_launch(s, B, T, Cc, K, x, ldx, w, dy, dx, lddx, dx_bf16, dw, scratch);
}
cudaError_t hk_conv_bwd16(cudaStream_t s, int B, int T, int Cc, int K, const uint16_t *x, int ldx, const float *w,
                          const void *dy, int dy16, void *dx, int lddx, int dx_bf16, float *dw, void *scratch) {
    const __nv_bfloat16 *x16 = (const __nv_bfloat16 *)x;
    if (dy16) return conv_bwd_launch(s, B, T, Cc, K, x16, ldx, w, (const __nv_bfloat16 *)dy, dx, lddx, dx_bf16, dw, scratch);
    return conv_bwd_launch(s, B, T, Cc, K, x16, ldx, w, (const float *)dy, dx, lddx, dx_bf16, dw, scratch);
}

cudaError_t hk_swiglu_bwd(cudaStream_t s, int BT, int F, const float *gu, const float *dact, void *dgu, int out_bf16) {
    return swiglu_bwd_launch(s, BT, F, gu, dact, dgu, out_bf16);
}

cudaError_t hk_swiglu16_bwd(cudaStream_t s, int BT, int F, const uint16_t *gu, const float *dact, void *dgu,
                            int out_bf16) {
    return swiglu_bwd_launch(s, BT, F, (const __nv_bfloat16 *)gu, dact, dgu, out_bf16);
}

cudaError_t hk_swiglu16_bwd16(cudaStream_t s, int BT, int F, const uint16_t *gu, const uint16_t *dact, void *dgu,
                              int out_bf16) {
    return swiglu_bwd_launch(s, BT, F, (const __nv_bfloat16 *)gu, (const __nv_bfloat16 *)dact, dgu, out_bf16);
}

cudaError_t hk_rope_bwd(cudaStream_t s, int B, int T, int H, int d, const double *inv_freq, float *dx) {
    if (d & 1) return cudaErrorInvalidValue;
    const size_t n = (size_t)B * T * (d / 2);
    if (n && H > 0) hk_launch(rope_bwd_k, blocks_for(n, 256), 256, 0, s, n, T, H, d, inv_freq, dx);
    return cudaGetLastError();
}
cudaError_t hk_rope_bwd16(cudaStream_t s, int B, int T, int H, int d, const double *inv_freq, const float *dqkv,
                          uint16_t *dst, size_t ldd) {
    if (d & 1 || ldd < (size_t)3 * H * d) return cudaErrorInvalidValue;
    const size_t n = (size_t)B * T * (d / 2), ps = (size_t)B * T * H * d;
    if (n && H > 0)
        hk_launch(rope_bwd16_k, blocks_for(n, 256), 256, 0, s, n, T, H, d, inv_freq, dqkv, ps, (__nv_bfloat16 *)dst, ldd);
    return cudaGetLastError();
}

cudaError_t hk_embed_bwd(cudaStream_t s, int V, int C, const int32_t *row_start, const int32_t *rows, const float *dx,
                         float *dE) {
    if (V > 0 && C > 0)
        hk_launch(embed_bwd_k, dim3((unsigned)V, blocks_for((size_t)C, 32)), dim3(32, 16), 0, s, C, row_start, rows, dx,
                  dE);
    return cudaGetLastError();
}

cudaError_t hk_cross_entropy(cudaStream_t s, int M, int V, float *logits, const int32_t *targets, const uint8_t *mask,
                             float scale, double *loss_sum, void *dlogits16, void *scratch) {
    if (M < 0 || V <= 0 || (M > 0 && !scratch)) return cudaErrorInvalidValue;
    double *rl = (double *)scratch; /* [M] row losses */
    if (M > 0)
        hk_launch(xent_k, blocks_for((size_t)M, 8), 256, 0, s, M, V, logits, targets, mask, scale, rl,
                  (__nv_bfloat16 *)dlogits16);
    hk_launch(sum_rows_k, 1, 1024, 0, s, M, (const double *)rl, loss_sum);
    return cudaGetLastError();
}

} // extern "C"
