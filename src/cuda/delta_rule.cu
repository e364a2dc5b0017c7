/* delta_rule.cu — the gated delta rule token by token, state in registers.
 *
 *   S' = exp(g_t) S;  p = S' k_t;  u = beta_t (v_t - p);  S = S' + u k_t^T;  o_t = S q_t
 *
 * Rows of S (one per value dim) never interact: row i needs only S[i, :],
 * k_t, q_t and v_t[i]. So the work splits over (row, head, sequence) with no
 * communication: 8 lanes own one row (DK/8 columns each), a warp owns 4 rows,
 * a block 16. Per token a row costs two 8-lane dot products (3 shuffles each);
 * the next token's k, q, v, g, beta are loaded before the current one is
 * used, so their latency hides behind the arithmetic. This is the decode and
 * speculative-verify kernel (one read and one write of S per call), and the
 * f32 path for prefill. */
#include "device_util.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int LANES_PER_ROW = 8;
constexpr int ROWS_PER_WARP = 32 / LANES_PER_ROW;
constexpr int WARPS = 4;
constexpr int ROWS_PER_BLOCK = ROWS_PER_WARP * WARPS;

/* Sum over groups of L consecutive lanes (a state row's lanes), xor 1, 2, 4, ...: a fixed order. */
template <int L> __device__ __forceinline__ float lanes_sum(float v) {
#pragma unroll
    for (int o = 1; o < L; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int DK>
__global__ void __launch_bounds__(WARPS * 32) delta_rule_k(int T, int H, int dv, const float *__restrict__ q,
                                                          const float *__restrict__ k, const float *__restrict__ v,
                                                          const float *__restrict__ g, const float *__restrict__ beta,
                                                          float *const *S, float *__restrict__ o) {
    hk_pdl_entry();
    constexpr int E = DK / LANES_PER_ROW; /* columns per lane */
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5) * ROWS_PER_WARP + lane / LANES_PER_ROW;
    const int h = blockIdx.y, b = blockIdx.z;
    const int c0 = (lane % LANES_PER_ROW) * E;
    const bool live = row < dv; /* rows past dv still shuffle, never store */
    const size_t Hk = (size_t)H * DK, Hv = (size_t)H * dv;
    float *Sr = S[b] + ((size_t)h * dv + (live ? row : 0)) * DK + c0;
    float s[E]; /* 16-byte loads and stores: c0 is a multiple of E, E of 4 */
#pragma unroll
    for (int e = 0; e < E; e += 4) {
        float4 x = live ? *(const float4 *)(Sr + e) : make_float4(0.f, 0.f, 0.f, 0.f);
        s[e] = x.x, s[e + 1] = x.y, s[e + 2] = x.z, s[e + 3] = x.w;
    }

    const size_t r0 = (size_t)b * T;
    const float *kp = k + r0 * Hk + (size_t)h * DK + c0, *qp = q + r0 * Hk + (size_t)h * DK + c0;
    const float *vp = v + r0 * Hv + (size_t)h * dv + (live ? row : 0);
    const float *gp = g + r0 * H + h, *bp = beta + r0 * H + h;
    float kn[E], qn[E], vn = 0.0f, gn = 0.0f, bn = 0.0f;
    if (T > 0) {
#pragma unroll
        for (int e = 0; e < E; e += 4) {
            float4 a = *(const float4 *)(kp + e), c = *(const float4 *)(qp + e);
            kn[e] = a.x, kn[e + 1] = a.y, kn[e + 2] = a.z, kn[e + 3] = a.w;
            qn[e] = c.x, qn[e + 1] = c.y, qn[e + 2] = c.z, qn[e + 3] = c.w;
        }
        vn = *vp;
        gn = *gp;
        bn = *bp;
    }
    for (int t = 0; t < T; t++) {
        float kt[E], qt[E];
#pragma unroll
        for (int e = 0; e < E; e++) {
            kt[e] = kn[e];
            qt[e] = qn[e];
        }
        const float vt = vn, alpha = expf(gn), bt = bn;
        if (t + 1 < T) { /* prefetch token t + 1 */
            const size_t step = (size_t)(t + 1);
#pragma unroll
            for (int e = 0; e < E; e += 4) {
                float4 a = *(const float4 *)(kp + step * Hk + e), c = *(const float4 *)(qp + step * Hk + e);
                kn[e] = a.x, kn[e + 1] = a.y, kn[e + 2] = a.z, kn[e + 3] = a.w;
                qn[e] = c.x, qn[e + 1] = c.y, qn[e + 2] = c.z, qn[e + 3] = c.w;
            }
            vn = vp[step * Hv];
            gn = gp[step * H];
            bn = bp[step * H];
        }
        float acc = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) acc += s[e] * kt[e];
        const float p = alpha * lanes_sum<LANES_PER_ROW>(acc);
        const float u = bt * (vt - p);
        float out = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            s[e] = alpha * s[e] + u * kt[e];
            out += s[e] * qt[e];
        }
        out = lanes_sum<LANES_PER_ROW>(out);
        if (live && (lane % LANES_PER_ROW) == 0) o[(r0 + t) * Hv + (size_t)h * dv + row] = out;
    }
    if (live) {
#pragma unroll
        for (int e = 0; e < E; e += 4) *(float4 *)(Sr + e) = make_float4(s[e], s[e + 1], s[e + 2], s[e + 3]);
    }
}

/* One decode step (T = 1) of a DeltaNet layer after its input product, in
 * one kernel per (head, sequence) instead of three (hk_gdn_prep, the kernel
 * above, hk_gated_onorm): the head's conv + SiLU + L2 norms and gates, the
 * delta rule on its D x D state (L lanes a row), the gated output norm, with
 * q, k, v and o kept in shared memory. With L = 8 every value is computed as
 * the three kernels compute it (the same expressions, the same reduction
 * orders), so the result is the same to the bit. L = 4 (large batches) gives
 * blocks half the size, so that a batch's blocks fit the card in one wave;
 * its row sums are in another order (equal to rounding). The state row and
 * the conv taps are read before the PDL wait: only the input product (proj)
 * comes from the kernel before; the state and tails were last written by
 * this layer's previous step. */
template <int D, int L>
__global__ void __launch_bounds__(D * L, L == 4 ? 1536 / (D * L) : 1)
    gdn_decode_k(int d_rt, int H, int K, const float *__restrict__ proj, int P, const float *__restrict__ convw, float *const *S,
                 float *const *tails, const float *__restrict__ A_log, const float *__restrict__ dt_bias, float l2_eps,
                 const float *__restrict__ onw, float eps, void *y, int bf16) {
    constexpr int E = D / L;
    __shared__ float sx[3][D]; /* q, k (normalised in place), v */
    __shared__ float so[D], sgb[2], sscale[2];
    const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x, lane = tid & 31;
    const size_t Hd = (size_t)H * D, Cc = 3 * Hd;
    /* before the wait: this thread's state row slice */
    const int row = tid / L, c0 = (tid % L) * E;
    float *Sr = S[b] + ((size_t)h * D + row) * D + c0;
    float s[E];
#pragma unroll
    for (int e = 0; e < E; e += 4) {
        const float4 x = *(const float4 *)(Sr + e);
        s[e] = x.x, s[e + 1] = x.y, s[e + 2] = x.z, s[e + 3] = x.w;
    }
    const int part = tid / D, c = tid % D;
    const size_t ch = (size_t)part * Hd + (size_t)h * D + c;
    hk_pdl_entry();
    /* 1. input stage (gdn_prep_k at T = 1): conv with the tail, SiLU; shift the tail */
    const float *pr = proj + (size_t)b * P;
    if (part < 3) {
        float *tl = tails[b];
        sx[part][c] = silu(gdn_conv_at(proj, P, convw, K, (size_t)b, 0, ch, tl, Cc));
        for (int r = 0; r < K - 1; r++) tl[(size_t)r * Cc + ch] = r + 1 < K - 1 ? tl[(size_t)(r + 1) * Cc + ch] : pr[ch];
    }
    if (tid == 0) gdn_gate(pr + 4 * Hd, H, h, A_log, dt_bias, &sgb[0], &sgb[1]);
    __syncthreads();
    if (tid < 64) { /* warp 0: q's norm, warp 1: k's, in gdn_prep_k's order (lane's channels lane + 32 i) */
        const int p = tid >> 5;
        float ss = 0.0f;
#pragma unroll
        for (int i = 0; i < D / 32; i++) ss += sx[p][lane + 32 * i] * sx[p][lane + 32 * i];
        ss = warp_sum(ss);
        /* d_rt (= D) at run time: rsqrtf(128) folded at compile time differs in the last bit from the
         * device's rsqrtf that gdn_prep_k computes */
        if (lane == 0) sscale[p] = (p == 0 ? rsqrtf((float)d_rt) : 1.0f) / sqrtf(ss + l2_eps);
    }
    __syncthreads();
    /* 2. the delta rule for this row (delta_rule_k at T = 1); q and k read from shared memory as used */
    const float qs = sscale[0], ks = sscale[1];
    const float alpha = expf(sgb[0]), bt = sgb[1], vt = sx[2][row];
    float acc = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) acc += s[e] * (sx[1][c0 + e] * ks);
    const float pp = alpha * lanes_sum<L>(acc);
    const float u = bt * (vt - pp);
    float out = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) {
        s[e] = alpha * s[e] + u * (sx[1][c0 + e] * ks);
        out += s[e] * (sx[0][c0 + e] * qs);
    }
    out = lanes_sum<L>(out);
#pragma unroll
    for (int e = 0; e < E; e += 4) *(float4 *)(Sr + e) = make_float4(s[e], s[e + 1], s[e + 2], s[e + 3]);
    if (tid % L == 0) so[row] = out;
    __syncthreads();
    /* 3. gated output norm (gated_onorm4_k): 4 channels a lane, the head's D/4 lanes of warp 0 */
    if (tid < 32) {
        const int cc = 4 * lane;
        const bool on = cc < D;
        const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float4 ov = on ? make_float4(so[cc], so[cc + 1], so[cc + 2], so[cc + 3]) : z;
        const float4 gv = on ? load4(pr, 3 * Hd + (size_t)h * D + cc) : z, wv = on ? load4(onw, (size_t)cc) : z;
        const float ss = group_sum(ov.x * ov.x + ov.y * ov.y + ov.z * ov.z + ov.w * ov.w, D / 4);
        const float inv = 1.0f / sqrtf(ss / (float)d_rt + eps);
        if (on)
            store4(y, (size_t)b * Hd + (size_t)h * D + cc,
                   make_float4(ov.x * silu(gv.x) * inv * wv.x, ov.y * silu(gv.y) * inv * wv.y,
                               ov.z * silu(gv.z) * inv * wv.z, ov.w * silu(gv.w) * inv * wv.w),
                   bf16);
    }
}

template <int D, int L>
void gdn_decode_launch(cudaStream_t s, int B, int H, int K, const float *proj, int P, const float *convw,
                       float *const *S, float *const *tails, const float *A_log, const float *dt_bias, float l2_eps,
                       const float *o_norm, float eps, void *y, int out_bf16) {
    hk_launch(gdn_decode_k<D, L>, dim3((unsigned)H, (unsigned)B), D * L, 0, s, D, H, K, proj, P, convw, S, tails, A_log,
              dt_bias, l2_eps, o_norm, eps, y, out_bf16);
}

template <int DK>
cudaError_t launch(cudaStream_t st, int B, int T, int H, int dv, const float *q, const float *k, const float *v,
                   const float *g, const float *beta, float *const *S, float *o) {
    dim3 grid((unsigned)((dv + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), (unsigned)H, (unsigned)B);
    hk_launch(delta_rule_k<DK>, grid, WARPS * 32, 0, st, T, H, dv, q, k, v, g, beta, S, o);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t hk_delta_rule_recurrent(cudaStream_t s, int B, int T, int H, int dk, int dv, const float *q,
                                               const float *k, const float *v, const float *g, const float *beta,
                                               float *const *S, float *o) {
    if (B <= 0 || H <= 0 || dv <= 0 || T < 0) return cudaErrorInvalidValue;
    switch (dk) {
    case 32: return launch<32>(s, B, T, H, dv, q, k, v, g, beta, S, o);
    case 64: return launch<64>(s, B, T, H, dv, q, k, v, g, beta, S, o);
    case 128: return launch<128>(s, B, T, H, dv, q, k, v, g, beta, S, o);
    case 256: return launch<256>(s, B, T, H, dv, q, k, v, g, beta, S, o);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t hk_gdn_decode(cudaStream_t s, int B, int H, int d, int K, const float *proj, int P,
                                     const float *convw, float *const *S, float *const *tails, const float *A_log,
                                     const float *dt_bias, float l2_eps, const float *o_norm, float eps, void *y,
                                     int out_bf16) {
    if (B <= 0 || H <= 0 || K < 1) return cudaErrorInvalidValue;
    /* where hk_gated_onorm would take its scalar kernel (another summation order), so does the caller */
    if (P % 4 || !aligned16(proj) || !aligned16(o_norm) || !aligned16(y)) return cudaErrorNotSupported;
    /* 8 lanes a row (the bits of the three kernels) unless the batch's blocks would need several waves */
    const int wide = (size_t)B * H >= HK_GDN_DECODE_WIDE;
    switch (d) {
    case 64:
        if (wide) gdn_decode_launch<64, 4>(s, B, H, K, proj, P, convw, S, tails, A_log, dt_bias, l2_eps, o_norm, eps, y, out_bf16);
        else gdn_decode_launch<64, 8>(s, B, H, K, proj, P, convw, S, tails, A_log, dt_bias, l2_eps, o_norm, eps, y, out_bf16);
        break;
    case 128:
        if (wide) gdn_decode_launch<128, 4>(s, B, H, K, proj, P, convw, S, tails, A_log, dt_bias, l2_eps, o_norm, eps, y, out_bf16);
        else gdn_decode_launch<128, 8>(s, B, H, K, proj, P, convw, S, tails, A_log, dt_bias, l2_eps, o_norm, eps, y, out_bf16);
        break;
    default: return cudaErrorNotSupported;
    }
    return cudaGetLastError();
}
