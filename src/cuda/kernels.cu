/* kernels.cu — the memory-bound kernels of the forward: embedding, norms,
 * the DeltaNet input stage (conv + SiLU + L2 norm + gates), RoPE, the
 * attention cache write, SwiGLU. Each mirrors one CPU op of src/ops/ or one
 * loop of src/model/forward.c; the tests compare them on the same inputs. */
#include <cuda_bf16.h>
#include <math.h>

#include "kernels.h"
#include "launch.cuh"
#include "device_util.cuh"

namespace {

__global__ void embed_k(const int32_t *tok, int rows, const float *E, int C, float *x) {
    hk_pdl_entry();
    size_t r = blockIdx.x;
    const float *e = E + (size_t)tok[r] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) x[r * C + c] = e[c];
}

/* One block per row. */
__global__ void rmsnorm_k(int C, const float *x, const float *w, float eps, void *y, int bf16) {
    hk_pdl_entry();
    size_t r = blockIdx.x;
    const float *xr = x + r * C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
    float inv = 1.0f / sqrtf(block_sum(ss) / (float)C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) store(y, r * C + c, xr[c] * inv * w[c], bf16);
}

/* C % 4 == 0, 16-byte rows: one warp per row, lane holds float4s c4 = lane +
 * 32 i (i < NV) in registers, so x is read once and no barrier is needed. */
template <int NV>
__global__ void rmsnorm4_k(int M, int C, const float *x, const float *w, float eps, void *y, int bf16) {
    const int lane = threadIdx.x & 31, C4 = C / 4;
    /* the weights before the PDL wait: no kernel of a forward writes them (a decode step's norms are latency-bound) */
    float4 wv[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c4 = lane + 32 * i;
        wv[i] = c4 < C4 ? load4(w, (size_t)c4 * 4) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    hk_pdl_entry();
    const size_t r = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= (size_t)M) return; /* whole warps only */
    const float *xr = x + r * C;
    float4 xv[NV];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c4 = lane + 32 * i;
        xv[i] = c4 < C4 ? load4(xr, (size_t)c4 * 4) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        ss += xv[i].x * xv[i].x + xv[i].y * xv[i].y + xv[i].z * xv[i].z + xv[i].w * xv[i].w;
    }
    const float inv = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c4 = lane + 32 * i;
        if (c4 >= C4) continue;
        const float4 a = xv[i];
        store4(y, r * C + (size_t)c4 * 4,
               make_float4(a.x * inv * wv[i].x, a.y * inv * wv[i].y, a.z * inv * wv[i].z, a.w * inv * wv[i].w), bf16);
    }
}

__global__ void to_bf16_2d_k(const float *src, size_t lds, __nv_bfloat16 *dst, size_t ldd, int cols) {
    hk_pdl_entry();
    const size_t r = blockIdx.x;
    for (int c = blockIdx.y * blockDim.x + threadIdx.x; c < cols; c += gridDim.y * blockDim.x)
        dst[r * ldd + c] = __float2bfloat16_rn(src[r * lds + c]);
}

/* The same with cols, lds, ldd multiples of 4 and aligned rows: 4 elements
 * a thread (a 16-byte load, an 8-byte store), rows x cols/4 threads in all.
 * Each element is rounded exactly as above (the same bits); the one-element
 * kernel spent ~2.4x the copy rate on the attention backward's dq|dk|dv. */
__global__ void to_bf16_2d4_k(const float *src, size_t lds, __nv_bfloat16 *dst, size_t ldd, int c4, size_t n4) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / (size_t)c4, c = 4 * (i % (size_t)c4);
        store4(dst, r * ldd + c, load4(src, r * lds + c), 1);
    }
}

/* Four elements per step where x and y allow 16- and 8-byte accesses, the
 * n % 4 tail one by one. */
__global__ void to_bf16_k(const float *x, __nv_bfloat16 *y, size_t n, int vec) {
    hk_pdl_entry();
    const size_t i0 = blockIdx.x * (size_t)blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
    const size_t n4 = vec ? n / 4 : 0;
    for (size_t i = i0; i < n4; i += step) store4(y, 4 * i, load4(x, 4 * i), 1);
    for (size_t i = 4 * n4 + i0; i < n; i += step) y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void gather_last_k(int T, int C, const float *x, float *last) {
    hk_pdl_entry();
    size_t b = blockIdx.x;
    for (int c = threadIdx.x; c < C; c += blockDim.x) last[b * C + c] = x[(b * T + T - 1) * C + c];
}

/* One warp per (row, head, part) (gdn_item). With T = 1 (a decode step) the
 * warp also shifts its channels' conv tails (no other thread reads them) and
 * the q warp computes its head's gates: one kernel instead of three. */
template <typename TP>
__global__ void gdn_prep_k(size_t items, int T, int H, int d, int K, const TP *proj, int P, const float *convw,
                           float *const *tails, float l2_eps, void *q, void *k, void *v, int qkv16,
                           const float *A_log, const float *dt_bias, float *g, float *beta) {
    hk_pdl_entry();
    const int lane = threadIdx.x & 31;
    GdnItem it;
    if (!gdn_item(items, T, H, &it)) return;
    const size_t Hd = (size_t)H * d, r = it.r;
    const int part = it.part, h = it.h, b = (int)(r / T);
    const float *tail = tails[b];
    float y[8];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int c = lane + 32 * i;
        y[i] = 0.0f;
        if (c >= d) continue;
        size_t ch = (size_t)part * Hd + (size_t)h * d + c;
        y[i] = silu(gdn_conv_at(proj, P, convw, K, r, it.t, ch, tail, 3 * Hd));
        ss += y[i] * y[i];
    }
    float scale = 1.0f;
    if (part < 2) {
        ss = warp_sum(ss);
        scale = (part == 0 ? rsqrtf((float)d) : 1.0f) / sqrtf(ss + l2_eps);
    }
    void *out = part == 0 ? q : part == 1 ? k : v;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int c = lane + 32 * i;
        if (c < d) store(out, r * Hd + (size_t)h * d + c, y[i] * scale, qkv16);
    }
    if (T != 1) return; /* hk_conv_tail and gdn_gates_k do the rest */
    float *tl = tails[b];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int c = lane + 32 * i;
        if (c >= d) continue;
        size_t ch = (size_t)part * Hd + (size_t)h * d + c;
        for (int row = 0; row < K - 1; row++)
            tl[(size_t)row * 3 * Hd + ch] = row + 1 < K - 1 ? tl[(size_t)(row + 1) * 3 * Hd + ch] : load1(proj, r * P + ch);
    }
    if (part == 0 && lane == 0) gdn_gate(proj + r * P + 4 * Hd, H, h, A_log, dt_bias, g + r * H + h, beta + r * H + h);
}

/* The input stage for T > 1 with d/4 a power of two <= 32: a thread takes 4
 * channels of the q|k|v columns down kPrepRows rows (ConvWalk: one 16-byte
 * load per proj row instead of K scattered ones), the d/4 lanes of a head
 * reduce its L2 norm by shuffles (PrepTile). The gates are gdn_gates_k's,
 * the tails hk_conv_tail's. */
template <int KW, typename TP>
__global__ void gdn_prep_tiled_k(int BT, int T, int H, int d, const TP *proj, int P, const float *convw,
                                 float *const *tails, float l2_eps, void *q, void *k, void *v, int qkv16) {
    hk_pdl_entry();
    PrepTile p;
    if (!prep_tile(BT, H, d, &p)) return;
    const int ch = p.ch, part = p.part;
    const bool on = p.on;
    ConvWalk<KW> cw;
    if (on) cw.load_weights(convw, (size_t)ch);
    void *out = part == 0 ? q : part == 1 ? k : v;
    const float qs = part == 0 ? rsqrtf((float)d) : 1.0f;
    const int r0 = p.r0, r1 = p.r1;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int rg = r0; rg < r1; rg += kPrepAhead) {
        float4 xs[kPrepAhead]; /* the group's rows, all in flight at once */
#pragma unroll
        for (int u = 0; u < kPrepAhead; u++) xs[u] = on && rg + u < r1 ? load4(proj, (size_t)(rg + u) * P + ch) : zero;
#pragma unroll
        for (int u = 0; u < kPrepAhead; u++) {
            const int r = rg + u, t = r % T;
            if (r >= r1) break; /* the same for the whole block */
            if (on && (r == r0 || t == 0)) cw.fill(proj, P, (size_t)r, t, (size_t)ch, tails[r / T], (size_t)p.Cc);
            float4 y = zero;
            if (on) {
                y = cw.step(xs[u]);
                y = make_float4(silu(y.x), silu(y.y), silu(y.z), silu(y.w));
            }
            const float ss = group_sum(y.x * y.x + y.y * y.y + y.z * y.z + y.w * y.w, d / 4);
            const float sc = part < 2 ? qs / sqrtf(ss + l2_eps) : 1.0f;
            if (on) store4(out, (size_t)r * p.Hd + p.hc, make_float4(y.x * sc, y.y * sc, y.z * sc, y.w * sc), qkv16);
        }
    }
}

template <typename TP>
__global__ void gdn_gates_k(size_t n, int H, const TP *proj, int P, int a_off, const float *A_log,
                            const float *dt_bias, float *g, float *beta) {
    hk_pdl_entry();
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / H;
    int h = (int)(i % H);
    gdn_gate(proj + r * P + a_off, H, h, A_log, dt_bias, g + i, beta + i);
}

/* One thread per (sequence, channel): rows move up in increasing order, so
 * an in-place shift never reads a row it already overwrote. */
__global__ void conv_tail_k(int B, int T, int Cc, int K, const float *proj, int P, float *const *tails) {
    hk_pdl_entry();
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Cc) return;
    int b = (int)(i / Cc), c = (int)(i % Cc);
    float *tail = tails[b];
    for (int row = 0; row < K - 1; row++) {
        int z = T + row; /* index into tail ++ chunk */
        tail[(size_t)row * Cc + c] = z < K - 1 ? tail[(size_t)z * Cc + c] : proj[((size_t)b * T + z - (K - 1)) * P + c];
    }
}

template <typename TP>
__global__ void gated_onorm_k(size_t items, int H, int d, const float *o, const TP *proj, int P, int gate_off,
                              const float *w, float eps, void *y, int bf16) {
    hk_pdl_entry();
    const int lane = threadIdx.x & 31;
    const size_t item = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); /* (row, head) */
    if (item >= items) return;
    const size_t r = item / H;
    const int h = (int)(item % H);
    const float *oh = o + item * d;
    const TP *gh = proj + r * P + gate_off + (size_t)h * d;
    float ss = 0.0f;
    for (int c = lane; c < d; c += 32) ss += oh[c] * oh[c];
    float inv = 1.0f / sqrtf(warp_sum(ss) / (float)d + eps);
    for (int c = lane; c < d; c += 32) store(y, item * d + c, oh[c] * silu(load1(gh, (size_t)c)) * inv * w[c], bf16);
}

/* d/4 a power of two <= 32, 16-byte rows: a thread takes 4 channels of a
 * row's [Hd] (grid (rows, column blocks)), the d/4 lanes of a head reduce by
 * shuffles: no per-item division, 16-byte loads. */
template <typename TP>
__global__ void gated_onorm4_k(int Hd, int d, const float *o, const TP *proj, int P, int gate_off, const float *w,
                               float eps, void *y, int bf16) {
    hk_pdl_entry();
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    const bool on = c < Hd;
    const size_t r = blockIdx.x, i = r * Hd + c;
    const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f), ov = on ? load4(o, i) : z,
                 gv = on ? load4(proj, r * P + gate_off + c) : z, wv = on ? load4(w, (size_t)(c % d)) : z;
    const float ss = group_sum(ov.x * ov.x + ov.y * ov.y + ov.z * ov.z + ov.w * ov.w, d / 4);
    const float inv = 1.0f / sqrtf(ss / (float)d + eps);
    if (on)
        store4(y, i,
               make_float4(ov.x * silu(gv.x) * inv * wv.x, ov.y * silu(gv.y) * inv * wv.y,
                           ov.z * silu(gv.z) * inv * wv.z, ov.w * silu(gv.w) * inv * wv.w),
               bf16);
}

/* One thread per (row, head, i < d/2). */
__global__ void rope_qkv_k(size_t n, int T, int H, int d, const float *proj, const int64_t *pos,
                           const double *inv_freq, float *q, float *k, float *v, int window, float *const *kc,
                           float *const *vc) {
    hk_pdl_entry();
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int half = d / 2;
    const size_t Hd = (size_t)H * d;
    const int f = (int)(i % half);
    const size_t rh = i / half, r = rh / H;
    const int h = (int)(rh % H);
    const int b = (int)(r / T), t = (int)(r % T);
    double ang = (double)(pos[b] + t) * inv_freq[f];
    float c = (float)cos(ang), sn = (float)sin(ang);
    const float *pr = proj + r * 3 * Hd + (size_t)h * d;
    size_t o = r * Hd + (size_t)h * d;
    float a = pr[f], bb = pr[f + half];
    q[o + f] = a * c - bb * sn;
    q[o + f + half] = a * sn + bb * c;
    a = pr[Hd + f];
    bb = pr[Hd + f + half];
    k[o + f] = a * c - bb * sn;
    k[o + f + half] = a * sn + bb * c;
    v[o + f] = pr[2 * Hd + f];
    v[o + f + half] = pr[2 * Hd + f + half];
    if (kc) { /* T = 1: the cache row too (hk_rope_qkv) */
        int64_t p = pos[b] + t;
        size_t slot = (window ? (size_t)(p % window) : (size_t)p) * Hd + (size_t)h * d;
        kc[b][slot + f] = k[o + f], kc[b][slot + f + half] = k[o + f + half];
        vc[b][slot + f] = v[o + f], vc[b][slot + f + half] = v[o + f + half];
    }
}

/* One block per (row of the written range, sequence). */
__global__ void cache_write_k(int T, int first, int H, int d, int window, const int64_t *pos, const float *k,
                              const float *v, float *const *kc, float *const *vc) {
    hk_pdl_entry();
    const int b = blockIdx.y, t = first + blockIdx.x;
    const size_t Hd = (size_t)H * d;
    int64_t p = pos[b] + t;
    size_t slot = window ? (size_t)(p % window) : (size_t)p;
    const float *ks = k + ((size_t)b * T + t) * Hd, *vs = v + ((size_t)b * T + t) * Hd;
    float *kd = kc[b] + slot * Hd, *vd = vc[b] + slot * Hd;
    for (size_t c = threadIdx.x; c < Hd; c += blockDim.x) {
        kd[c] = ks[c];
        vd[c] = vs[c];
    }
}

/* gu f32 or bf16 (TI). */
template <typename TI> __global__ void swiglu_k(size_t n, int F, const TI *gu, void *act, int bf16) {
    hk_pdl_entry();
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / F;
    int c = (int)(i % F);
    const TI *row = gu + r * 2 * F;
    store(act, i, silu(load1(row, c)) * load1(row, F + c), bf16);
}

/* F % 4 == 0, 16-byte rows: 4 columns per thread, grid (rows, column
 * blocks): no index division, 16-byte loads. */
template <typename TI> __global__ void swiglu4_k(int F, const TI *gu, void *act, int bf16) {
    hk_pdl_entry();
    const int c = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    if (c >= F) return;
    const size_t r = blockIdx.x;
    const float4 g = load4(gu, r * 2 * F + c), u = load4(gu, r * 2 * F + F + c);
    store4(act, r * F + c, make_float4(silu(g.x) * u.x, silu(g.y) * u.y, silu(g.z) * u.z, silu(g.w) * u.w), bf16);
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__global__ void fill_k(void *x, size_t n, uint64_t seed, float lo, float hi, int bf16) {
    hk_pdl_entry();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = splitmix64(seed + 0x9E3779B97F4A7C15ull * (i + 1));
        store(x, i, lo + (hi - lo) * (float)(z >> 40) * (1.0f / 16777216.0f), bf16);
    }
}

/* *h += sum over the 16-bit words w_i of mix(i, w_i): a fingerprint of the
 * bits, independent of the order the atomic adds land in. */
__global__ void hash_k(const uint16_t *x, size_t n, unsigned long long *h) {
    hk_pdl_entry();
    unsigned long long acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += splitmix64(((uint64_t)i << 16 | x[i]) + 0x9E3779B97F4A7C15ull);
    atomicAdd(h, acc);
}

template <typename TI> cudaError_t swiglu_launch(cudaStream_t s, int BT, int F, const TI *gu, void *act, int out_bf16) {
    size_t n = (size_t)BT * F;
    if (!n) return cudaSuccess;
    if (F % 4 == 0 && aligned16(gu) && aligned16(act)) {
        const unsigned threads = F / 4 < 256 ? (unsigned)(F / 4 + 31) / 32 * 32 : 256;
        hk_launch(swiglu4_k<TI>, dim3((unsigned)BT, blocks_for((size_t)F / 4, threads)), threads, 0, s, F, gu, act, out_bf16);
    } else hk_launch(swiglu_k<TI>, blocks_for(n, 256), 256, 0, s, n, F, gu, act, out_bf16);
    return cudaGetLastError();
}

} // namespace

extern "C" {

cudaError_t hk_embed(cudaStream_t s, const int32_t *tok, int rows, const float *E, int C, float *x) {
    if (rows > 0) hk_launch(embed_k, rows, 256, 0, s, tok, rows, E, C, x);
    return cudaGetLastError();
}

cudaError_t hk_rmsnorm(cudaStream_t s, int M, int C, const float *x, const float *w, float eps, void *y,
                       int out_bf16) {
    if (M <= 0) return cudaSuccess;
    const int nv = (C / 4 + 31) / 32; /* float4s per lane */
    if (C % 4 == 0 && nv <= 8 && aligned16(x) && aligned16(w) && aligned16(y)) {
        const unsigned nb = blocks_for((size_t)M, 8);
        if (nv <= 1) hk_launch(rmsnorm4_k<1>, nb, 256, 0, s, M, C, x, w, eps, y, out_bf16);
        else if (nv <= 2) hk_launch(rmsnorm4_k<2>, nb, 256, 0, s, M, C, x, w, eps, y, out_bf16);
        else if (nv <= 4) hk_launch(rmsnorm4_k<4>, nb, 256, 0, s, M, C, x, w, eps, y, out_bf16);
        else hk_launch(rmsnorm4_k<8>, nb, 256, 0, s, M, C, x, w, eps, y, out_bf16);
    } else hk_launch(rmsnorm_k, M, 256, 0, s, C, x, w, eps, y, out_bf16);
    return cudaGetLastError();
}

cudaError_t hk_f32_to_bf16(cudaStream_t s, const float *x, uint16_t *y, size_t n) {
    const int vec = aligned16(x) && ((size_t)y & 7) == 0;
    unsigned nb = blocks_for(vec ? (n + 3) / 4 : n, 256);
    if (n) hk_launch(to_bf16_k, nb > 4096 ? 4096 : nb, 256, 0, s, x, (__nv_bfloat16 *)y, n, vec);
    return cudaGetLastError();
}

cudaError_t hk_f32_to_bf16_2d(cudaStream_t s, const float *src, size_t lds, uint16_t *dst, size_t ldd, int rows,
                              int cols) {
    if (rows > 0 && cols > 0 && cols % 4 == 0 && lds % 4 == 0 && ldd % 4 == 0 && (uintptr_t)src % 16 == 0 &&
        (uintptr_t)dst % 8 == 0) {
        const size_t n4 = (size_t)rows * (cols / 4);
        const unsigned nb = blocks_for(n4, 256);
        hk_launch(to_bf16_2d4_k, nb > 65535u ? 65535u : nb, 256, 0, s, src, lds, (__nv_bfloat16 *)dst, ldd, cols / 4, n4);
    } else if (rows > 0 && cols > 0) {
        const unsigned ny = blocks_for((size_t)cols, 256);
        hk_launch(to_bf16_2d_k, dim3((unsigned)rows, ny > 8 ? 8 : ny), 256, 0, s, src, lds, (__nv_bfloat16 *)dst, ldd,
                  cols);
    }
    return cudaGetLastError();
}

cudaError_t hk_gather_last(cudaStream_t s, int B, int T, int C, const float *x, float *last) {
    hk_launch(gather_last_k, B, 256, 0, s, T, C, x, last);
    return cudaGetLastError();
}

} // extern "C"

namespace {

template <typename TP>
cudaError_t gdn_prep_launch(cudaStream_t s, int B, int T, int H, int d, int K, const TP *proj, int P,
                            const float *convw, float *const *tails, const float *A_log, const float *dt_bias,
                            float l2_eps, void *q, void *k, void *v, int qkv16, float *g, float *beta) {
    size_t BT = (size_t)B * T, warps = BT * 3 * H;
    if (d > 256) return cudaErrorInvalidValue;
    if (warps && prep_tiled_ok(T, d, K, P, proj) && aligned16(q) && aligned16(k) && aligned16(v)) {
        with_k(K, [&](auto kw) {
            hk_launch(gdn_prep_tiled_k<decltype(kw)::value, TP>, prep_tiled_grid(BT, H, d), 128, 0, s, (int)BT, T, H, d, proj, P,
                      convw, tails, l2_eps, q, k, v, qkv16);
        });
    } else if (warps)
        hk_launch(gdn_prep_k<TP>, blocks_for(warps, 8), 256, 0, s, warps, T, H, d, K, proj, P, convw, tails, l2_eps, q, k,
                  v, qkv16, A_log, dt_bias, g, beta);
    size_t n = T == 1 ? 0 : BT * H; /* T = 1: gdn_prep_k did the gates */
    if (n) hk_launch(gdn_gates_k<TP>, blocks_for(n, 256), 256, 0, s, n, H, proj, P, 4 * H * d, A_log, dt_bias, g, beta);
    return cudaGetLastError();
}

template <typename TP>
cudaError_t gated_onorm_launch(cudaStream_t s, int BT, int H, int d, const float *o, const TP *proj, int P,
                               int gate_off, const float *w, float eps, void *y, int out_bf16) {
    size_t items = (size_t)BT * H; /* one warp each, 4 warps per block */
    const int g = d / 4, Hd = H * d;
    if (items && d % 4 == 0 && g <= 32 && (g & (g - 1)) == 0 && P % 4 == 0 && gate_off % 4 == 0 && aligned16(o) &&
        aligned16(proj) && aligned16(w) && aligned16(y)) {
        const unsigned threads = Hd / 4 < 256 ? (unsigned)(Hd / 4 + 31) / 32 * 32 : 256;
        hk_launch(gated_onorm4_k<TP>, dim3((unsigned)BT, blocks_for((size_t)Hd / 4, threads)), threads, 0, s, Hd, d, o,
                  proj, P, gate_off, w, eps, y, out_bf16);
    } else if (items)
        hk_launch(gated_onorm_k<TP>, blocks_for(items, 4), 128, 0, s, items, H, d, o, proj, P, gate_off, w, eps, y,
                  out_bf16);
    return cudaGetLastError();
}

} // namespace

extern "C" {

cudaError_t hk_gdn_prep(cudaStream_t s, int B, int T, int H, int d, int K, const float *proj, int P,
                        const float *convw, float *const *tails, const float *A_log, const float *dt_bias,
                        float l2_eps, float *q, float *k, float *v, float *g, float *beta) {
    return gdn_prep_launch(s, B, T, H, d, K, proj, P, convw, tails, A_log, dt_bias, l2_eps, q, k, v, 0, g, beta);
}

cudaError_t hk_gdn_prep16(cudaStream_t s, int B, int T, int H, int d, int K, const uint16_t *proj, int P,
                          const float *convw, float *const *tails, const float *A_log, const float *dt_bias,
                          float l2_eps, void *q, void *k, void *v, int qkv16, float *g, float *beta) {
    return gdn_prep_launch(s, B, T, H, d, K, (const __nv_bfloat16 *)proj, P, convw, tails, A_log, dt_bias, l2_eps, q, k,
                           v, qkv16, g, beta);
}

cudaError_t hk_conv_tail(cudaStream_t s, int B, int T, int Cc, int K, const float *proj, int P,
                         float *const *tails) {
    size_t n = (size_t)B * Cc;
    if (K > 1 && T != 1) hk_launch(conv_tail_k, blocks_for(n, 256), 256, 0, s, B, T, Cc, K, proj, P, tails);
    return cudaGetLastError();
}

cudaError_t hk_gated_onorm(cudaStream_t s, int BT, int H, int d, const float *o, const float *proj, int P,
                           int gate_off, const float *w, float eps, void *y, int out_bf16) {
    return gated_onorm_launch(s, BT, H, d, o, proj, P, gate_off, w, eps, y, out_bf16);
}

cudaError_t hk_gated_onorm16(cudaStream_t s, int BT, int H, int d, const float *o, const uint16_t *proj, int P,
                             int gate_off, const float *w, float eps, void *y, int out_bf16) {
    return gated_onorm_launch(s, BT, H, d, o, (const __nv_bfloat16 *)proj, P, gate_off, w, eps, y, out_bf16);
}

cudaError_t hk_rope_qkv(cudaStream_t s, int B, int T, int H, int d, const float *proj, const int64_t *pos,
                        const double *inv_freq, float *q, float *k, float *v, int window, float *const *kc,
                        float *const *vc) {
    size_t n = (size_t)B * T * H * (d / 2);
    if (n)
        hk_launch(rope_qkv_k, blocks_for(n, 256), 256, 0, s, n, T, H, d, proj, pos, inv_freq, q, k, v, window,
                  T == 1 ? kc : nullptr, T == 1 ? vc : nullptr);
    return cudaGetLastError();
}

cudaError_t hk_cache_write(cudaStream_t s, int B, int T, int H, int d, int window, const int64_t *pos,
                           const float *k, const float *v, float *const *kc, float *const *vc) {
    if (T == 1) return cudaSuccess; /* hk_rope_qkv wrote the row */
    int first = window && T > window ? T - window : 0;
    dim3 grid((unsigned)(T - first), (unsigned)B);
    hk_launch(cache_write_k, grid, 256, 0, s, T, first, H, d, window, pos, k, v, kc, vc);
    return cudaGetLastError();
}

cudaError_t hk_swiglu(cudaStream_t s, int BT, int F, const float *gu, void *act, int out_bf16) {
    return swiglu_launch(s, BT, F, gu, act, out_bf16);
}

cudaError_t hk_swiglu16(cudaStream_t s, int BT, int F, const uint16_t *gu, void *act, int out_bf16) {
    return swiglu_launch(s, BT, F, (const __nv_bfloat16 *)gu, act, out_bf16);
}

cudaError_t hk_fill_uniform(cudaStream_t s, float *x, size_t n, uint64_t seed, float lo, float hi) {
    unsigned nb = blocks_for(n, 256);
    if (n) hk_launch(fill_k, nb > 8192 ? 8192 : nb, 256, 0, s, (void *)x, n, seed, lo, hi, 0);
    return cudaGetLastError();
}

cudaError_t hk_fill_uniform16(cudaStream_t s, uint16_t *x, size_t n, uint64_t seed, float lo, float hi) {
    unsigned nb = blocks_for(n, 256);
    if (n) hk_launch(fill_k, nb > 8192 ? 8192 : nb, 256, 0, s, (void *)x, n, seed, lo, hi, 1);
    return cudaGetLastError();
}

cudaError_t hk_hash16(cudaStream_t s, const uint16_t *x, size_t n, unsigned long long *h) {
    unsigned nb = blocks_for(n, 256);
    cudaError_t e = cudaMemsetAsync(h, 0, sizeof *h, s);
    if (e == cudaSuccess && n) hk_launch(hash_k, nb > 1024 ? 1024 : nb, 256, 0, s, x, n, h);
    return e == cudaSuccess ? cudaGetLastError() : e;
}

} // extern "C"
