/* attention.cu — causal sliding-window attention, flash style: keys and
 * values stream through shared memory in tiles of 32, each query keeps a
 * running max, sum and output (online softmax), and tiles wholly outside
 * the block's window are never loaded, so the cost is O(T * W), not O(T^2).
 *
 * A query is owned by TPQ = D/16 consecutive threads, each holding 16 of its
 * dims interleaved (dim = e*TPQ + sub), so a group reads 16 consecutive
 * floats of a key row from shared memory without bank conflicts and the
 * score needs log2(TPQ) shuffles. Keys before the chunk come from the
 * sequence's cache (ring slot j % W, or j when unbounded). */
#include <cuda_bf16.h>
#include <math.h>

#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int THREADS = 128;
constexpr int KT = 32; /* keys per tile */
constexpr int EPT = 16; /* dims per thread */
/* the decode kernel: one query per block, its keys over 512 threads (4 rounds
 * over a 512-key window at d = 64: the rounds are memory round trips); with
 * many (query, head, sequence) blocks (batched decode) over 128 threads, so
 * the launch fits one wave and the final merge runs over 32 groups, not 128:
 * at batch 64 the kernel took 28.6 us a layer in 512-thread blocks (two
 * waves of 768 blocks). */
constexpr int DEC_THREADS = 512, DEC_THREADS_WIDE = 128, DEC_WIDE_BLOCKS = 256;

template <int D>
__global__ void __launch_bounds__(THREADS) attention_k(int T, int H, int window, const int64_t *pos,
                                                      const float *__restrict__ q, const float *__restrict__ k,
                                                      const float *__restrict__ v, float *const *kc,
                                                      float *const *vc, void *o, int out_bf16) {
    hk_pdl_entry();
    constexpr int TPQ = D / EPT;       /* threads per query */
    constexpr int QB = THREADS / TPQ;  /* queries per block */
    __shared__ float Ks[KT][D], Vs[KT][D];
    const int b = blockIdx.z, h = blockIdx.y;
    const int sub = threadIdx.x % TPQ;
    const int t = blockIdx.x * QB + threadIdx.x / TPQ;
    const bool live = t < T;
    const size_t Hd = (size_t)H * D;
    const int64_t P0 = pos[b];
    const int64_t p = P0 + (live ? t : T - 1);
    const float scale = rsqrtf((float)D);

    float qr[EPT], acc[EPT];
    const float *qp = q + ((size_t)b * T + (live ? t : T - 1)) * Hd + (size_t)h * D;
#pragma unroll
    for (int e = 0; e < EPT; e++) {
        qr[e] = qp[e * TPQ + sub] * scale;
        acc[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    /* keys any query of this block may see */
    const int t_first = blockIdx.x * QB, t_last = min(T - 1, t_first + QB - 1);
    int64_t lo = window ? P0 + t_first - window + 1 : 0;
    if (lo < 0) lo = 0;
    const int64_t hi = P0 + t_last;
    const float *kcb = kc ? kc[b] : nullptr, *vcb = vc ? vc[b] : nullptr;

    for (int64_t j0 = lo; j0 <= hi; j0 += KT) {
        __syncthreads();
        for (int i = threadIdx.x; i < KT * D; i += THREADS) {
            int jj = i / D, c = i % D;
            int64_t j = j0 + jj;
            float kv = 0.0f, vv = 0.0f;
            if (j <= hi) {
                if (j < P0) {
                    size_t slot = window ? (size_t)(j % window) : (size_t)j;
                    kv = kcb[slot * Hd + (size_t)h * D + c];
                    vv = vcb[slot * Hd + (size_t)h * D + c];
                } else {
                    size_t r = (size_t)b * T + (size_t)(j - P0);
                    kv = k[r * Hd + (size_t)h * D + c];
                    vv = v[r * Hd + (size_t)h * D + c];
                }
            }
            Ks[jj][c] = kv;
            Vs[jj][c] = vv;
        }
        __syncthreads();
        float sc[KT];
        float mt = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < KT; jj++) {
            float part = 0.0f;
#pragma unroll
            for (int e = 0; e < EPT; e++) part += qr[e] * Ks[jj][e * TPQ + sub];
#pragma unroll
            for (int off = 1; off < TPQ; off <<= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
            int64_t j = j0 + jj;
            bool ok = j <= p && (!window || j > p - window);
            sc[jj] = ok ? part : -INFINITY;
            mt = fmaxf(mt, sc[jj]);
        }
        float mn = fmaxf(m, mt);
        if (mn == -INFINITY) continue; /* nothing visible to this query in the tile */
        float corr = expf(m - mn);
        l *= corr;
#pragma unroll
        for (int e = 0; e < EPT; e++) acc[e] *= corr;
#pragma unroll
        for (int jj = 0; jj < KT; jj++) {
            float pj = expf(sc[jj] - mn);
            l += pj;
#pragma unroll
            for (int e = 0; e < EPT; e++) acc[e] += pj * Vs[jj][e * TPQ + sub];
        }
        m = mn;
    }
    if (!live) return;
    const float inv = 1.0f / l;
    const size_t ob = ((size_t)b * T + t) * Hd + (size_t)h * D;
#pragma unroll
    for (int e = 0; e < EPT; e++) {
        float val = acc[e] * inv;
        size_t idx = ob + e * TPQ + sub;
        if (out_bf16) ((__nv_bfloat16 *)o)[idx] = __float2bfloat16_rn(val);
        else ((float *)o)[idx] = val;
    }
}

/* Decode and verify (T <= 8 queries): one block per (query, head, sequence),
 * its keys split among the block's groups of TPQ threads — group g takes keys
 * lo + g, lo + g + NG, ... with its own running max, sum and output — and the
 * partial softmaxes merged in shared memory at the end (flash-decoding). The
 * tiled kernel above would leave 124 of 128 threads idle for one query. */
template <int D, int NT>
__global__ void __launch_bounds__(NT) attention_decode_k(int T, int H, int window, const int64_t *pos,
                                                             const float *__restrict__ q, const float *__restrict__ k,
                                                             const float *__restrict__ v, float *const *kc,
                                                             float *const *vc, void *o, int out_bf16) {
    hk_pdl_entry();
    constexpr int TPQ = D / EPT, NG = NT / TPQ;
    __shared__ float acc_s[NG][D + 1], m_s[NG], l_s[NG];
    const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int sub = threadIdx.x % TPQ, grp = threadIdx.x / TPQ;
    const size_t Hd = (size_t)H * D;
    const int64_t P0 = pos[b], p = P0 + t;
    int64_t lo = window ? p - window + 1 : 0;
    if (lo < 0) lo = 0;
    const float scale = rsqrtf((float)D);
    const size_t row = (size_t)b * T + t;
    float qr[EPT], acc[EPT];
#pragma unroll
    for (int e = 0; e < EPT; e++) {
        qr[e] = q[row * Hd + (size_t)h * D + sub * EPT + e] * scale;
        acc[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const float *kcb = kc ? kc[b] : nullptr, *vcb = vc ? vc[b] : nullptr;
    /* every warp runs the same number of rounds (its groups' shuffles need all
     * 32 lanes); a group past the last key sits the round out */
    for (int64_t j0 = lo; j0 <= p; j0 += NG) {
        const int64_t j = j0 + grp;
        const bool has = j <= p;
        const float *kj, *vj;
        const int64_t jj = has ? j : p; /* a valid row to read; its score is dropped */
        if (jj < P0) {
            size_t slot = window ? (size_t)(jj % window) : (size_t)jj;
            kj = kcb + slot * Hd;
            vj = vcb + slot * Hd;
        } else {
            size_t r = (size_t)b * T + (size_t)(jj - P0);
            kj = k + r * Hd;
            vj = v + r * Hd;
        }
        kj += (size_t)h * D + sub * EPT;
        vj += (size_t)h * D + sub * EPT;
        float part = 0.0f;
        float4 vr[EPT / 4]; /* V's row loads go out with K's, before the score is known */
#pragma unroll
        for (int e = 0; e < EPT; e += 4) {
            float4 kk = *(const float4 *)(kj + e);
            vr[e / 4] = *(const float4 *)(vj + e);
            part += qr[e] * kk.x + qr[e + 1] * kk.y + qr[e + 2] * kk.z + qr[e + 3] * kk.w;
        }
#pragma unroll
        for (int off = 1; off < TPQ; off <<= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
        if (!has) continue;
        float mn = fmaxf(m, part), corr = expf(m - mn), pj = expf(part - mn);
        l = l * corr + pj;
#pragma unroll
        for (int e = 0; e < EPT; e += 4) {
            float4 vv = vr[e / 4];
            acc[e] = acc[e] * corr + pj * vv.x;
            acc[e + 1] = acc[e + 1] * corr + pj * vv.y;
            acc[e + 2] = acc[e + 2] * corr + pj * vv.z;
            acc[e + 3] = acc[e + 3] * corr + pj * vv.w;
        }
        m = mn;
    }
#pragma unroll
    for (int e = 0; e < EPT; e++) acc_s[grp][sub * EPT + e] = acc[e];
    if (sub == 0) m_s[grp] = m, l_s[grp] = l;
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += NT) {
        float M = -INFINITY;
        for (int g = 0; g < NG; g++) M = fmaxf(M, m_s[g]);
        float num = 0.0f, den = 0.0f;
        for (int g = 0; g < NG; g++) {
            if (m_s[g] == -INFINITY) continue; /* a group that saw no key */
            float w = expf(m_s[g] - M);
            num += acc_s[g][c] * w;
            den += l_s[g] * w;
        }
        float val = num / den;
        size_t idx = row * Hd + (size_t)h * D + c;
        if (out_bf16) ((__nv_bfloat16 *)o)[idx] = __float2bfloat16_rn(val);
        else ((float *)o)[idx] = val;
    }
}

template <int D>
cudaError_t launch(cudaStream_t s, int B, int T, int H, int window, const int64_t *pos, const float *q,
                   const float *k, const float *v, float *const *kc, float *const *vc, void *o, int out_bf16) {
    if (T <= 8) {
        dim3 grid((unsigned)T, (unsigned)H, (unsigned)B);
        if ((size_t)T * H * B >= DEC_WIDE_BLOCKS)
            hk_launch(attention_decode_k<D, DEC_THREADS_WIDE>, grid, DEC_THREADS_WIDE, 0, s, T, H, window, pos, q, k, v, kc,
                      vc, o, out_bf16);
        else hk_launch(attention_decode_k<D, DEC_THREADS>, grid, DEC_THREADS, 0, s, T, H, window, pos, q, k, v, kc, vc, o, out_bf16);
        return cudaGetLastError();
    }
    constexpr int QB = THREADS / (D / EPT);
    dim3 grid((unsigned)((T + QB - 1) / QB), (unsigned)H, (unsigned)B);
    hk_launch(attention_k<D>, grid, THREADS, 0, s, T, H, window, pos, q, k, v, kc, vc, o, out_bf16);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t hk_attention(cudaStream_t s, int B, int T, int H, int d, int window, const int64_t *pos,
                                    const float *q, const float *k, const float *v, float *const *kc,
                                    float *const *vc, void *o, int out_bf16) {
    if (B <= 0 || T <= 0 || H <= 0 || window < 0) return cudaErrorInvalidValue;
    switch (d) {
    case 32: return launch<32>(s, B, T, H, window, pos, q, k, v, kc, vc, o, out_bf16);
    case 64: return launch<64>(s, B, T, H, window, pos, q, k, v, kc, vc, o, out_bf16);
    case 128: return launch<128>(s, B, T, H, window, pos, q, k, v, kc, vc, o, out_bf16);
    default: return cudaErrorInvalidValue;
    }
}
