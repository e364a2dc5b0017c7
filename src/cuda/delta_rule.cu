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
#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int LANES_PER_ROW = 8;
constexpr int ROWS_PER_WARP = 32 / LANES_PER_ROW;
constexpr int WARPS = 4;
constexpr int ROWS_PER_BLOCK = ROWS_PER_WARP * WARPS;

__device__ __forceinline__ float row_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
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
        const float p = alpha * row_sum(acc);
        const float u = bt * (vt - p);
        float out = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            s[e] = alpha * s[e] + u * kt[e];
            out += s[e] * qt[e];
        }
        out = row_sum(out);
        if (live && (lane % LANES_PER_ROW) == 0) o[(r0 + t) * Hv + (size_t)h * dv + row] = out;
    }
    if (live) {
#pragma unroll
        for (int e = 0; e < E; e += 4) *(float4 *)(Sr + e) = make_float4(s[e], s[e + 1], s[e + 2], s[e + 3]);
    }
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
