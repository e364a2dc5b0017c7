/* delta_bwd.cu — backward of the gated delta rule (training: B sequences
 * from S_0 = 0, no final-state gradient, dk = dv = D), f32.
 *
 * Per token (DESIGN §2, recurrent form):
 *   S' = a S_{t-1};  p = S' k;  u = b (v - p);  S_t = S' + u k^T;  o = S_t q
 *   D = dS + dO q^T;  du = D k;  dp = -b du;  dq = S_t^T dO;  dk = D^T u + S'^T dp
 *   dv = b du;  dbeta = du.(v - p);  dS' = D + dp k^T;  dg = a <dS', S_{t-1}>;  dS_{t-1} = a dS'
 *
 * Row i of S (value dim i) evolves alone in both directions: the forward
 * needs only S[i,:], k, v_i; the reverse recursion of dS only dS[i,:], dO_i,
 * q, k (it never reads S). Only dq, dk, dg, dbeta sum over rows. So:
 *
 *  1. bounds_k, row-parallel like the forward kernel (8 lanes a row): one
 *     set of blocks runs S forward and stores it before every 64-token chunk,
 *     another runs dS in reverse and stores it after every chunk. No
 *     reductions, two independent sequential sweeps running side by side.
 *  2. chunk_k, one block per (sequence, head, chunk): all chunks in
 *     parallel. It walks its chunk forward from the stored S and keeps S at
 *     every SC-th token in shared memory (the chunk's 64 states would not
 *     fit on chip), then goes back in groups of RS tokens: the group's
 *     states are recomputed from the nearest sub-checkpoint into registers,
 *     dS comes from the stored chunk-end value and is carried down token by
 *     token. The cross-row sums go through warp shuffles and, once a group,
 *     a fixed-order sum over warps in shared memory: no atomics, so results
 *     are bit-identical run to run.
 *
 * Scratch: the two checkpoint sets, 2 B H ceil(T/64) D^2 floats.
 *
 * Measured (H100 SXM, tests/cuda_train/delta_bwd.c with HYDRA_BENCH_DELTA_BWD=1,
 * median of 5): B 16 x T 2048 x H 12 x d 64 10.8 ms, 8.5x the f32 recurrent
 * forward (1.27 ms); B 4 x T 8192 x H 16 x d 128 58 ms (6.2x). Going from
 * per-token recomputation to register groups and from 32 to 12 shuffles a
 * token moved the first by only 2%, so the time is not in that arithmetic;
 * not profiled yet (the per-token loads of k, q, v, dO miss L1, which shared
 * memory mostly takes, and sit on the dependency chain: a suspect, not a
 * finding). This is the f32 reference mode (tc = 0, d 32, 64, 128); tc = 1
 * runs the tensor-core chunked backward of delta_bwd_tc.cu (d 64, 128):
 * 1.31 ms and 4.0 ms at those two shapes on the same card. */
#include "delta_tc.cuh"
#include "kernels.h"
#include "launch.cuh"

namespace {

constexpr int CK = 64; /* chunk: checkpoint interval of bounds_k, work item of chunk_k */
constexpr int LPR = 8; /* lanes per row of S in bounds_k */

/* Sum over the L lanes that hold one row (L consecutive lanes). */
template <int L> __device__ __forceinline__ float row_sum(float x) {
#pragma unroll
    for (int o = 1; o < L; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <int E> __device__ __forceinline__ void load_vec(float (&x)[E], const float *p) {
#pragma unroll
    for (int e = 0; e < E; e += 4) {
        const float4 a = *(const float4 *)(p + e);
        x[e] = a.x, x[e + 1] = a.y, x[e + 2] = a.z, x[e + 3] = a.w;
    }
}

template <int E> __device__ __forceinline__ void store_vec(float *p, const float (&x)[E]) {
#pragma unroll
    for (int e = 0; e < E; e += 4) *(float4 *)(p + e) = make_float4(x[e], x[e + 1], x[e + 2], x[e + 3]);
}

/* What a forward step of the rows of one thread reads from token t. */
template <int E, int R> struct fwd_tok {
    float k[E], v[R], a, b;
    __device__ __forceinline__ void load(const float *k_, const float *v_, const float *g, const float *beta,
                                         size_t t, size_t HD, size_t H, size_t NR) {
        load_vec<E>(k, k_ + t * HD);
#pragma unroll
        for (int r = 0; r < R; r++) v[r] = v_[t * HD + r * NR];
        a = expf(g[t * H]);
        b = beta[t * H];
    }
};

/* S <- step(S): one token forward for the thread's R rows (E columns each, L lanes a row). */
template <int L, int E, int R> __device__ __forceinline__ void fwd_step(float (&S)[R][E], const fwd_tok<E, R> &x) {
    float dot[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        dot[r] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) dot[r] += S[r][e] * x.k[e];
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float u = x.b * (x.v[r] - x.a * row_sum<L>(dot[r]));
#pragma unroll
        for (int e = 0; e < E; e++) S[r][e] = x.a * S[r][e] + u * x.k[e];
    }
}

/* 1. Chunk-boundary states. grid (D/16, H, 2B), 4 warps of 4 rows.
 * z < B: S before token c*CK -> ckS; z >= B: dS after token min(T, (c+1)CK) - 1 -> ckD.
 * Checkpoints are [B, H, nch, D, D] row-major. */
template <int D>
__global__ void __launch_bounds__(128) bounds_k(int B, int T, int H, const float *__restrict__ q,
                                               const float *__restrict__ k, const float *__restrict__ v,
                                               const float *__restrict__ g, const float *__restrict__ beta,
                                               const float *__restrict__ dO, float *__restrict__ ckS,
                                               float *__restrict__ ckD) {
    hk_pdl_entry();
    constexpr int E = D / LPR;
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * 16 + (threadIdx.x >> 5) * 4 + lane / LPR;
    const int h = blockIdx.y;
    const bool rev = (int)blockIdx.z >= B;
    const int b = rev ? blockIdx.z - B : blockIdx.z;
    const int c0 = (lane % LPR) * E, nch = (T + CK - 1) / CK;
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T, DD = (size_t)D * D;
    const float *kp = k + r0 * HD + (size_t)h * D + c0, *gp = g + r0 * H + h, *bp = beta + r0 * H + h;
    float *ck = (rev ? ckD : ckS) + ((size_t)b * H + h) * nch * DD + (size_t)row * D + c0;
    float S[1][E];
#pragma unroll
    for (int e = 0; e < E; e++) S[0][e] = 0.0f;
    if (!rev) {
        const float *vp = v + r0 * HD + (size_t)h * D + row;
        fwd_tok<E, 1> nx, cur;
        nx.load(kp, vp, gp, bp, 0, HD, H, 0);
        for (int t = 0; t < T; t++) {
            cur = nx;
            if (t + 1 < T) nx.load(kp, vp, gp, bp, t + 1, HD, H, 0); /* prefetch */
            if (t % CK == 0) store_vec<E>(ck + (size_t)(t / CK) * DD, S[0]);
            fwd_step<LPR, E, 1>(S, cur);
        }
        return;
    }
    /* reverse: D = dS + dO_i q;  dS <- a (D - b (D.k) k) */
    const float *qp = q + r0 * HD + (size_t)h * D + c0, *op = dO + r0 * HD + (size_t)h * D + row;
    float kn[E], qn[E], on = 0.0f, an = 0.0f, bn = 0.0f;
    int t = T - 1;
    auto load = [&](int tt) {
        load_vec<E>(kn, kp + (size_t)tt * HD);
        load_vec<E>(qn, qp + (size_t)tt * HD);
        on = op[(size_t)tt * HD];
        an = expf(gp[(size_t)tt * H]);
        bn = bp[(size_t)tt * H];
    };
    load(t);
    for (int c = nch - 1; c >= 0; c--) {
        store_vec<E>(ck + (size_t)c * DD, S[0]);
        for (; t >= c * CK; t--) {
            float kt[E], qt[E];
#pragma unroll
            for (int e = 0; e < E; e++) kt[e] = kn[e], qt[e] = qn[e];
            const float ot = on, a = an, bt = bn;
            if (t > 0) load(t - 1);
            float Dm[E], dot = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) {
                Dm[e] = S[0][e] + ot * qt[e];
                dot += Dm[e] * kt[e];
            }
            const float dp = -bt * row_sum<LPR>(dot);
#pragma unroll
            for (int e = 0; e < E; e++) S[0][e] = a * (Dm[e] + dp * kt[e]);
        }
    }
}

/* 2. Per-chunk backward. L lanes a row (E = D/L columns each), R rows per
 * thread (rows rb, rb + NR, ...), NT threads. S is kept in shared memory at
 * every SC-th token of the chunk; a sub-chunk is done in groups of RS tokens
 * from its end: the group's RS states are recomputed once into registers
 * (not once a token), and the cross-warp sums of the group are done
 * together after it, behind one barrier. */
template <int D, int L, int R, int SC, int RS> struct cfg {
    static constexpr int E = D / L, NR = D / R, NT = NR * L, NW = NT / 32, NSUB = CK / SC, RPW = 32 / L;
    static constexpr int RED = 2 * D + 2;    /* per warp and token: dq[D], dk[D], a dg, dbeta partial sums */
    static constexpr int M = 2 * E * L / 32; /* dq/dk partial sums a lane holds after the in-warp sum */
    static constexpr size_t SMEM = (size_t)(NSUB - 1) * D * D * 4 + 2 * (size_t)RS * NW * RED * 4;
};

template <int D, int L, int R, int SC, int RS>
__global__ void __launch_bounds__(cfg<D, L, R, SC, RS>::NT, 1)
    chunk_k(int T, int H, const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
            const float *__restrict__ g, const float *__restrict__ beta, const float *__restrict__ dO,
            const float *__restrict__ ckS, const float *__restrict__ ckD, float *__restrict__ dq,
            float *__restrict__ dk, float *__restrict__ dv, float *__restrict__ dg, float *__restrict__ dbeta) {
    hk_pdl_entry();
    using C = cfg<D, L, R, SC, RS>;
    constexpr int E = C::E, NR = C::NR, NT = C::NT, NW = C::NW, RED = C::RED, M = C::M;
    extern __shared__ float4 sm4[];
    float4 *sub = sm4;                                               /* [NSUB-1][R][E/4][NT] S at sub-chunk starts */
    float *red = (float *)(sm4 + (size_t)(C::NSUB - 1) * D * D / 4); /* [2][RS][NW][RED] */

    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, nch = (T + CK - 1) / CK;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int rb = w * C::RPW + lane / L, seg = lane % L, c0 = seg * E;
    const int t0 = c * CK, n = min(CK, T - t0), nsub = (n + SC - 1) / SC;
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T, DD = (size_t)D * D;
    const size_t ckoff = (((size_t)b * H + h) * nch + c) * DD + (size_t)rb * D + c0;
    const float *Sc = ckS + ckoff, *dSc = ckD + ckoff;
    /* at token 0 of the sequence: this thread's columns of k, q; its first row of v, dO */
    const float *kp = k + r0 * HD + (size_t)h * D + c0, *qp = q + r0 * HD + (size_t)h * D + c0;
    const float *vp = v + r0 * HD + (size_t)h * D + rb, *op = dO + r0 * HD + (size_t)h * D + rb;
    const float *gp = g + r0 * H + h, *bp = beta + r0 * H + h;
    /* where this lane's dq/dk partial sums land in a RED row after the halving sum */
    int off = 0;
#pragma unroll
    for (int o = 16, N = 2 * E; o >= L; o >>= 1, N >>= 1)
        if (lane & o) off += N / 2;
    const int roff = off < E ? c0 + off : D + c0 + off - E;

    auto sub_at = [&](int m, int r, int e) -> float4 & { return sub[(((size_t)m * R + r) * (E / 4) + e / 4) * NT + tid]; };
    auto load_S = [&](int m, float(&S)[R][E]) { /* S before token t0 + m SC */
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (m == 0) load_vec<E>(S[r], Sc + (size_t)r * NR * D);
            else {
#pragma unroll
                for (int e = 0; e < E; e += 4) {
                    const float4 x = sub_at(m - 1, r, e);
                    S[r][e] = x.x, S[r][e + 1] = x.y, S[r][e + 2] = x.z, S[r][e + 3] = x.w;
                }
            }
        }
    };
    /* forward steps over tokens ta .. tb - 1, the next token's inputs prefetched */
    auto fwd_run = [&](int ta, int tb, float(&S)[R][E]) {
        if (ta >= tb) return;
        fwd_tok<E, R> nx, cur;
        nx.load(kp, vp, gp, bp, ta, HD, H, NR);
        for (int t = ta; t < tb; t++) {
            cur = nx;
            if (t + 1 < tb) nx.load(kp, vp, gp, bp, t + 1, HD, H, NR);
            fwd_step<L, E, R>(S, cur);
        }
    };
    float dS[R][E];
    /* token t given S = S_{t-1}; dS: in the gradient of S_t, out that of S_{t-1}; this warp's
     * partial sums to rw[RED] */
    auto bwd_token = [&](const float(&S)[R][E], size_t tt, float *rw) {
        float kt[E], qt[E], vt[R], ot[R];
        load_vec<E>(kt, kp + tt * HD);
        load_vec<E>(qt, qp + tt * HD);
#pragma unroll
        for (int r = 0; r < R; r++) vt[r] = vp[tt * HD + r * NR], ot[r] = op[tt * HD + r * NR];
        const float a = expf(gp[tt * H]), bt = bp[tt * H];
        float dot[R], ddot[R]; /* S_{t-1} k and D k, D = dS + dO q^T */
#pragma unroll
        for (int r = 0; r < R; r++) {
            dot[r] = ddot[r] = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) {
                dot[r] += S[r][e] * kt[e];
                ddot[r] += (dS[r][e] + ot[r] * qt[e]) * kt[e];
            }
        }
        float x[2 * E], pg = 0.0f, pb = 0.0f; /* x: dq then dk partial sums of this thread's columns */
#pragma unroll
        for (int e = 0; e < 2 * E; e++) x[e] = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float p = a * row_sum<L>(dot[r]), u = bt * (vt[r] - p);
            const float du = row_sum<L>(ddot[r]), dp = -bt * du;
#pragma unroll
            for (int e = 0; e < E; e++) {
                const float Dm = dS[r][e] + ot[r] * qt[e], sp = a * S[r][e], dsp = Dm + dp * kt[e];
                x[e] += (sp + u * kt[e]) * ot[r]; /* S_t^T dO */
                x[E + e] += Dm * u + sp * dp;     /* D^T u + S'^T dp */
                pg += dsp * S[r][e];              /* <dS', S_{t-1}> */
                dS[r][e] = a * dsp;
            }
            if (seg == 0) {
                dv[(r0 + tt) * HD + (size_t)h * D + rb + r * NR] = bt * du;
                pb += du * (vt[r] - p);
            }
        }
        pg *= a;
        /* sum over the warp's rows (lanes L, 2L, ... apart share columns), halving the vector
         * at each level: a lane keeps one half and sends the other */
#pragma unroll
        for (int o = 16, N = 2 * E; o >= L; o >>= 1, N >>= 1) {
            const bool hi = lane & o;
#pragma unroll
            for (int i = 0; i < N / 2; i++) {
                const float send = hi ? x[i] : x[i + N / 2], keep = hi ? x[i + N / 2] : x[i];
                x[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
            }
        }
        /* dg and dbeta the same way: lanes 0-15 keep dg, 16-31 dbeta */
        float y = ((lane & 16) ? pb : pg) + __shfl_xor_sync(0xffffffffu, (lane & 16) ? pg : pb, 16);
#pragma unroll
        for (int o = 1; o < 16; o <<= 1) y += __shfl_xor_sync(0xffffffffu, y, o);
#pragma unroll
        for (int i = 0; i < M; i++) rw[roff + i] = x[i];
        if ((lane & 15) == 0) rw[2 * D + (lane >> 4)] = y;
    };

    /* forward over the chunk: S at each later sub-chunk start into shared memory (each thread
     * writes and later reads only its own elements: no barrier needed) */
    float st[RS][R][E]; /* st[j]: S before token tg + j of the current group */
    load_S(0, st[0]);
    for (int m = 1; m < nsub; m++) {
        fwd_run(t0 + (m - 1) * SC, t0 + m * SC, st[0]);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int e = 0; e < E; e += 4)
                sub_at(m - 1, r, e) = make_float4(st[0][r][e], st[0][r][e + 1], st[0][r][e + 2], st[0][r][e + 3]);
    }
#pragma unroll
    for (int r = 0; r < R; r++) load_vec<E>(dS[r], dSc + (size_t)r * NR * D);

    int parity = 0;
    for (int m = nsub - 1; m >= 0; m--) {
        const int ts = t0 + m * SC, te = min(ts + SC, t0 + n);
        for (int tg = ts + (te - 1 - ts) / RS * RS; tg >= ts; tg -= RS, parity ^= 1) {
            const int nv = min(RS, te - tg); /* tokens tg .. tg + nv - 1 */
            load_S(m, st[0]);
            fwd_run(ts, tg, st[0]);
#pragma unroll
            for (int j = 1; j < RS; j++)
                if (j < nv) {
                    fwd_tok<E, R> x;
                    x.load(kp, vp, gp, bp, tg + j - 1, HD, H, NR);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int e = 0; e < E; e++) st[j][r][e] = st[j - 1][r][e];
                    fwd_step<L, E, R>(st[j], x);
                }
            float *buf = red + (size_t)parity * RS * NW * RED;
#pragma unroll
            for (int j = RS - 1; j >= 0; j--)
                if (j < nv) bwd_token(st[j], (size_t)(tg + j), buf + ((size_t)j * NW + w) * RED);
            /* two buffers by group parity: a buffer is rewritten only two groups later, after a
             * barrier every reader of it has passed, so one barrier a group suffices */
            __syncthreads();
            for (int i = tid; i < nv * RED; i += NT) {
                const int j = i / RED, col = i - j * RED;
                const float *rr = buf + (size_t)j * NW * RED + col;
                float s = 0.0f;
#pragma unroll
                for (int x = 0; x < NW; x++) s += rr[(size_t)x * RED];
                const size_t row = r0 + tg + j;
                if (col < D) dq[row * HD + (size_t)h * D + col] = s;
                else if (col < 2 * D) dk[row * HD + (size_t)h * D + col - D] = s;
                else if (col == 2 * D) dg[row * H + h] = s;
                else dbeta[row * H + h] = s;
            }
        }
    }
}

template <int D, int L, int R, int SC, int RS>
cudaError_t launch(cudaStream_t s, int B, int T, int H, const float *q, const float *k, const float *v,
                   const float *g, const float *beta, const float *dO, float *dq, float *dk, float *dv, float *dg,
                   float *dbeta, void *scratch) {
    using C = cfg<D, L, R, SC, RS>;
    static_assert(C::SMEM <= 227 * 1024, "chunk_k shared memory");
    const int nch = (T + CK - 1) / CK;
    float *ckS = (float *)scratch, *ckD = ckS + (size_t)B * H * nch * D * D;
    cudaError_t e = hk_launch(bounds_k<D>, dim3(D / 16, (unsigned)H, 2u * (unsigned)B), dim3(128), 0, s, B, T, H,
                              q, k, v, g, beta, dO, ckS, ckD);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(chunk_k<D, L, R, SC, RS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
    if (e != cudaSuccess) return e;
    return hk_launch(chunk_k<D, L, R, SC, RS>, dim3((unsigned)nch, (unsigned)H, (unsigned)B), dim3(C::NT), C::SMEM, s, T,
                     H, q, k, v, g, beta, dO, (const float *)ckS, (const float *)ckD, dq, dk, dv, dg, dbeta);
}

} // namespace

extern "C" size_t hk_delta_rule_bwd_scratch(int B, int T, int H, int d) {
    if (B <= 0 || T <= 0 || H <= 0 || d <= 0) return 0;
    const size_t f32 = 2 * (size_t)B * H * ((T + CK - 1) / CK) * d * d * sizeof(float);
    const size_t tc = d == 64 || d == 128 ? hk_tc::bwd_scratch(B, T, H, d) : 0;
    return f32 > tc ? f32 : tc;
}

extern "C" cudaError_t hk_delta_rule_bwd(cudaStream_t s, int B, int T, int H, int d, const float *q, const float *k,
                                         const float *v, const float *g, const float *beta, const float *dO,
                                         float *dq, float *dk, float *dv, float *dg, float *dbeta, void *scratch,
                                         int tc) {
    if (tc && d != 64 && d != 128) return cudaErrorNotSupported; /* d 32: the f32 path (tc = 0) */
    if (B <= 0 || T < 0 || H <= 0 || B > 32767 || H > 65535) return cudaErrorInvalidValue; /* grid y, z */
    if (T == 0) return cudaSuccess;
    if (!scratch) return cudaErrorInvalidValue;
    if (tc) return hk_tc::bwd(s, B, T, H, d, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, nullptr);
    /* sub-checkpoints take (64/SC - 1) D^2 floats of shared memory, a group's states RS R E
     * registers a thread: with SC 8, RS 4 (D 64) a sub-chunk costs 10 forward steps for 8 tokens.
     * 512 threads hold the state of D 64 and 128 (8 and 32 floats a thread); D 128 has room for
     * neither more sub-checkpoints nor a register group (RS 1: 7.5 steps a token on average). */
    switch (d) {
    case 32: return launch<32, 8, 1, 4, 4>(s, B, T, H, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch);
    case 64: return launch<64, 8, 1, 8, 4>(s, B, T, H, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch);
    case 128: return launch<128, 16, 4, 16, 1>(s, B, T, H, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t hk_delta_rule_bwd_kept(cudaStream_t s, int B, int T, int H, int d, const float *q,
                                              const float *k, const float *v, const float *g, const float *beta,
                                              const float *dO, float *dq, float *dk, float *dv, float *dg,
                                              float *dbeta, void *scratch, void *keep) {
    if (d != 64 && d != 128) return cudaErrorNotSupported;
    if (B <= 0 || T <= 0 || H <= 0 || B > 32767 || H > 65535 || !scratch || !keep) return cudaErrorInvalidValue;
    return hk_tc::bwd(s, B, T, H, d, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, keep);
}
extern "C" cudaError_t hk_delta_rule_bwd_kept16(cudaStream_t s, int B, int T, int H, int d, const uint16_t *q,
                                                const uint16_t *k, const uint16_t *v, const float *g,
                                                const float *beta, const uint16_t *dO, float *dq, float *dk, float *dv,
                                                float *dg, float *dbeta, void *scratch, void *keep) {
    if (d != 64 && d != 128) return cudaErrorNotSupported;
    if (B <= 0 || T <= 0 || H <= 0 || B > 32767 || H > 65535 || !scratch || !keep) return cudaErrorInvalidValue;
    return hk_tc::bwd(s, B, T, H, d, (const bf *)q, (const bf *)k, (const bf *)v, g, beta, (const bf *)dO, dq, dk, dv,
                      dg, dbeta, scratch, keep);
}
