/* delta_tc.cu — the chunked gated delta rule on bf16 tensor cores: the BF16
 * precision's prefill (DESIGN §2 and §9; docs/gpu.md walks through it).
 * The f32 kernels of delta_chunked.cu compute the same thing in SIMT f32;
 * here every product is a raw m16n8k16 tensor-core MMA with f32
 * accumulation, chained in registers where one product feeds the next, and
 * the recurrent state itself never leaves f32. Three kernels, 4 warps each,
 * a warp per 16 rows:
 *
 *  1. prep  (every chunk in parallel): G = prefix sum of g (a warp scan);
 *           A = K K^T, then A_ij = beta_i e^(G_i - G_j) A_ij below the
 *           diagonal (in registers); T = (I + A)^-1 in f32 (forward
 *           substitution, a thread per column: 64 x 64 is too small to
 *           block); U = T (beta ⊙ V) and W = T (beta ⊙ e^G ⊙ K) (T is lower
 *           triangular: token blocks up to the diagonal only); also
 *           Kt_i = e^(G_C - G_i) k_i, the keys as the state update needs them.
 *           U, W, Kt leave in bf16, G in f32.
 *  2. scan  (the only sequential part: over chunks, parallel over
 *           sequences, heads and 64-row slices of S): each warp keeps 16
 *           rows of S in f32 accumulator registers for the whole sequence:
 *           V_new^T = U^T - S_c W^T, then S <- gamma_C S + V_new^T Kt;
 *           S_c (bf16) and V_new^T go to memory for kernel 3. W, Kt and the
 *           U slice of the next chunks arrive by cp.async while this one
 *           computes (STAGES buffers).
 *  3. out   (every chunk in parallel): P = (Q K^T) ⊙ Gamma ⊙ M (M the causal
 *           mask with its diagonal), O = e^G ⊙ (Q S_c^T) + P V_new.
 *
 * Shapes as in delta_chunked.cu: q, k, v [BT, H, D] (f32, or bf16 with
 * io_bf16); g, beta [BT, H]; S[b] [H, D (value), D (key)] f32; D in
 * {64, 128}. A short last chunk is zero-padded (k = v = g = beta = 0), which
 * changes nothing. */
#include "delta_tc.cuh"
#include "kernels.h"

namespace hk_tc {

tc_work carve(void *base, int B, int T, int H, int D) {
    bf *p = (bf *)base;
    size_t n = (size_t)B * T * H * D;
    tc_work w;
    w.U = p, p += n;
    w.W = p, p += n;
    w.Kt = p, p += n;
    w.Vn = p, p += (size_t)B * H * n_chunks(T) * CH * D;
    w.Sc = p, p += (size_t)B * H * n_chunks(T) * D * D;
    w.G = (float *)p;
    w.A = nullptr;
    return w;
}

size_t fwd_scratch(int B, int T, int H, int D) {
    size_t BT = (size_t)B * T;
    size_t NCH = (size_t)B * H * n_chunks(T);
    return (3 * BT * H * D + NCH * CH * D + NCH * D * D) * sizeof(bf) + BT * H * sizeof(float);
}

namespace {

/* ---------------------------------------------------------------- 1: prep */
template <int D>
constexpr size_t prep_smem() {
    return (size_t)3 * CH * (D + 8) * 2 + (size_t)CH * (CH + 4) * 4 + 2 * CH * 4;
}

/* C = A_strip (16 x 64, bf16 in shared memory, rows r0s.., token blocks up
 * to kmax) times R (64 x D, [token][dim] in shared memory), for this warp;
 * written to dst rows (bf16, ld elements apart) below `rows`. */
template <int D>
__device__ __forceinline__ void strip_times(const bf *Ab, int lda, const bf *R, int ldr, int kmax, bf *dst, size_t ld,
                                            int rows) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, mi = lane >> 3, rr = lane & 7;
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
#pragma unroll
    for (int kb = 0; kb < CH / 16; kb++) {
        if (kb > kmax) break;
        unsigned a[4];
        ldsm4(a, Ab + (lane & 15) * lda + 16 * kb + 8 * (lane >> 4));
#pragma unroll
        for (int j = 0; j < D / 8; j += 2) {
            unsigned br[4]; /* B(k = token, n = dim) = R[token][dim], transposed on load */
            ldsm4t(br, R + (16 * kb + 8 * (mi & 1) + rr) * ldr + 8 * (j + (mi >> 1)));
            mma16816(acc[j], a, br[0], br[1]);
            mma16816(acc[j + 1], a, br[2], br[3]);
        }
    }
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        if (g < rows) *(unsigned *)(dst + (size_t)g * ld + 8 * j + 2 * t) = pack2(acc[j][0], acc[j][1]);
        if (g + 8 < rows) *(unsigned *)(dst + (size_t)(g + 8) * ld + 8 * j + 2 * t) = pack2(acc[j][2], acc[j][3]);
    }
}

template <int D, typename Tin>
__global__ void __launch_bounds__(NT) prep_k(int T, int H, const Tin *__restrict__ k, const Tin *__restrict__ v,
                                            const float *__restrict__ g, const float *__restrict__ beta, tc_work w) {
    constexpr int LD = D + 8, LT = CH + 8, LA = CH + 4;
    extern __shared__ __align__(128) unsigned char smraw[];
    bf *Kb = (bf *)smraw;                /* [CH][LD] k (for K K^T) */
    bf *Tb = Kb;                         /* [CH][LT] T = (I + A)^-1, over Kb once K K^T is done */
    bf *Kw = Kb + CH * LD;               /* [CH][LD] beta e^G k */
    bf *Vb = Kw + CH * LD;               /* [CH][LD] beta v */
    float *As = (float *)(Vb + CH * LD); /* [CH][LA] A */
    float *Gs = As + CH * LA;            /* [CH] */
    float *Bs = Gs + CH;                 /* [CH] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gq = lane >> 2, t = lane & 3, i0 = warp * 16;
    const int t0 = c * CH, Lc = min(CH, T - t0);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + t0;
    const Tin *kh = k + r0 * HD + (size_t)h * D, *vh = v + r0 * HD + (size_t)h * D;

    if (warp == 0) { /* G: inclusive prefix sum of g over the chunk, two per lane */
        float a0 = 2 * lane < Lc ? g[(r0 + 2 * lane) * H + h] : 0.0f;
        float a1 = 2 * lane + 1 < Lc ? g[(r0 + 2 * lane + 1) * H + h] : 0.0f;
        float s = a0 + a1;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            float y = __shfl_up_sync(0xffffffffu, s, off);
            if (lane >= off) s += y;
        }
        Gs[2 * lane] = s - a1;
        Gs[2 * lane + 1] = s;
    }
    if (tid < CH) Bs[tid] = tid < Lc ? beta[(r0 + tid) * H + h] : 0.0f;
    __syncthreads();

    /* one pass over k and v: k for K K^T, the right-hand sides beta e^G k and
     * beta v, and Kt = e^(G_C - G) k for the scan (G_C = G at the last real
     * row: padding has g = 0) */
    const float GC = Gs[CH - 1];
    constexpr int UNR = 4; /* loads in flight per thread before the first use */
    for (int base = tid; base < CH * D / 4; base += NT * UNR) {
        float4 kv[UNR], vv[UNR];
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            int i = base + u * NT, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
            kv[u] = load4(kh + r * HD + c4, r < Lc);
            vv[u] = load4(vh + r * HD + c4, r < Lc);
        }
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            int i = base + u * NT, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
            store4(Kb + r * LD + c4, kv[u], 1.0f);
            store4(Kw + r * LD + c4, kv[u], Bs[r] * expf(Gs[r]));
            store4(Vb + r * LD + c4, vv[u], Bs[r]);
            if (r < Lc) store4(w.Kt + (r0 + r) * HD + (size_t)h * D + c4, kv[u], expf(GC - Gs[r]));
        }
    }
    if (tid < Lc) w.G[(r0 + tid) * H + h] = Gs[tid];
    __syncthreads();

    /* A rows i0..: K K^T for key tiles below the diagonal, then
     * A_ij = beta_i e^(G_i - G_j) k_i . k_j (j < i) in registers, to As */
    {
        float ac[CH / 8][4];
        unsigned ka[D / 16][4];
        zero_acc<CH / 8>(ac);
        load_a<D / 16>(ka, Kb, LD, i0);
        mma_rowsT<D / 16, CH / 8>(ac, ka, Kb, LD, 0, 2 * warp); /* B(k = dim, n = token) = K[token][dim] */
        const int ia = i0 + gq, ib = ia + 8;
        const float sa = Bs[ia], sb = Bs[ib], Ga = Gs[ia], Gb = Gs[ib];
#pragma unroll
        for (int j = 0; j < CH / 8; j++) {
            if (j > 2 * warp + 1) break;
            const int ja = 8 * j + 2 * t, jb = ja + 1;
            float2 xa = make_float2(ja < ia ? sa * expf(Ga - Gs[ja]) * ac[j][0] : 0.0f,
                                    jb < ia ? sa * expf(Ga - Gs[jb]) * ac[j][1] : 0.0f);
            float2 xb = make_float2(ja < ib ? sb * expf(Gb - Gs[ja]) * ac[j][2] : 0.0f,
                                    jb < ib ? sb * expf(Gb - Gs[jb]) * ac[j][3] : 0.0f);
            *(float2 *)(As + ia * LA + ja) = xa;
            *(float2 *)(As + ib * LA + ja) = xb;
        }
    }
    __syncthreads();

    /* T = (I + A)^-1: column `col` by forward substitution in f32, four
     * partial sums to shorten the dependency chain */
    if (tid < CH) {
        const int col = tid;
        float x[CH];
#pragma unroll
        for (int i = 0; i < CH; i++) {
            float s0 = i == col ? 1.0f : 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma unroll
            for (int j = 0; j + 3 < i; j += 4) {
                float4 a = *(const float4 *)(As + i * LA + j);
                s0 -= a.x * x[j], s1 -= a.y * x[j + 1], s2 -= a.z * x[j + 2], s3 -= a.w * x[j + 3];
            }
#pragma unroll
            for (int j = i & ~3; j < i; j++) s0 -= As[i * LA + j] * x[j];
            x[i] = (s0 + s1) + (s2 + s3);
            Tb[i * LT + col] = __float2bfloat16_rn(x[i]);
        }
    }
    __syncthreads();
    if (w.A) { /* the backward's copy of T (whole 64 x 64, padded rows included) */
        bf *Ag = w.A + (((size_t)b * H + h) * gridDim.x + c) * CH * CH;
        for (int i = tid; i < CH * CH / 8; i += NT) {
            const int r = i / (CH / 8), c8 = (i % (CH / 8)) * 8;
            *(uint4 *)(Ag + r * CH + c8) = *(const uint4 *)(Tb + r * LT + c8);
        }
    }

    /* U = T (beta v), W = T (beta e^G k), this warp's 16 rows (T is lower
     * triangular: token blocks up to the diagonal) */
    const size_t at = (r0 + i0) * HD + (size_t)h * D;
    strip_times<D>(Tb + i0 * LT, LT, Vb, LD, warp, w.U + at, HD, Lc - i0);
    strip_times<D>(Tb + i0 * LT, LT, Kw, LD, warp, w.W + at, HD, Lc - i0);
}

/* ---------------------------------------------------------------- 2: scan */
constexpr int SR = 64;    /* rows of S per scan block: 16 per warp */
constexpr int STAGES = 4; /* chunks in flight: the scan waits on memory latency, not bandwidth */

template <int D>
constexpr size_t scan_smem() {
    return (size_t)STAGES * CH * (2 * (D + 8) + SR + 8) * 2;
}

/* 64 rows of one head's S per block (grid D/64 x H x B), 16 per warp, kept
 * in f32 accumulator registers for the whole sequence. Per chunk, in the
 * transposed form that keeps S as the A operand:
 *   V_new^T = U^T - S W^T        (16 x 64 per warp; S rounded to bf16)
 *   S       = gamma_C S + V_new^T Kt
 * W, Kt and U arrive by cp.async STAGES - 1 chunks ahead; one block barrier
 * per chunk. */
template <int D>
__global__ void __launch_bounds__(NT) scan_k(int T, int H, float *const *S, tc_work w) {
    constexpr int LD = D + 8, LU = SR + 8, NK = D / 8; /* NK accumulator tiles of S per warp */
    extern __shared__ __align__(128) unsigned char smraw[];
    bf *Wb = (bf *)smraw;           /* [STAGES][CH][LD] W */
    bf *Kb = Wb + STAGES * CH * LD; /* [STAGES][CH][LD] Kt */
    bf *Ub = Kb + STAGES * CH * LD; /* [STAGES][CH][LU] this block's columns of U */
    const int rs0 = blockIdx.x * SR, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, warp = tid >> 5,
              lane = tid & 31, g = lane >> 2, t = lane & 3, mi = lane >> 3, rr = lane & 7;
    const int NC = n_chunks(T), m0 = rs0 + warp * 16; /* this warp's first row of S */
    const size_t HD = (size_t)H * D;
    float *Sg = S ? S[b] + (size_t)h * D * D : nullptr; /* null: S_0 = 0, final state not kept */

    auto load_chunk = [&](int c) { /* an empty group past the end keeps the counting uniform */
        if (c >= NC) return cp_commit();
        const int buf = c % STAGES, Lc = min(CH, T - c * CH);
        const size_t r0 = (size_t)b * T + (size_t)c * CH;
        bf *wd = Wb + buf * CH * LD, *kd = Kb + buf * CH * LD, *ud = Ub + buf * CH * LU;
        for (int i = tid; i < CH * D / 8; i += NT) {
            int r = i / (D / 8), c8 = (i % (D / 8)) * 8;
            size_t at = (r0 + (r < Lc ? r : 0)) * HD + (size_t)h * D + c8;
            cp16(wd + r * LD + c8, w.W + at, r < Lc);
            cp16(kd + r * LD + c8, w.Kt + at, r < Lc);
        }
        for (int i = tid; i < CH * SR / 8; i += NT) {
            int r = i / (SR / 8), c8 = (i % (SR / 8)) * 8;
            cp16(ud + r * LU + c8, w.U + (r0 + (r < Lc ? r : 0)) * HD + (size_t)h * D + rs0 + c8, r < Lc);
        }
        cp_commit();
    };

    for (int c = 0; c < STAGES - 1; c++) load_chunk(c);
    float Sa[NK][4]; /* S rows m0 + g, m0 + g + 8; keys 8j + 2t, 8j + 2t + 1 */
#pragma unroll
    for (int j = 0; j < NK; j++) {
        const float2 z = make_float2(0.0f, 0.0f);
        float2 lo = Sg ? *(const float2 *)(Sg + (size_t)(m0 + g) * D + 8 * j + 2 * t) : z;
        float2 hi = Sg ? *(const float2 *)(Sg + (size_t)(m0 + g + 8) * D + 8 * j + 2 * t) : z;
        Sa[j][0] = lo.x, Sa[j][1] = lo.y, Sa[j][2] = hi.x, Sa[j][3] = hi.y;
    }

    float Gnext = w.G[((size_t)b * T + min(CH, T) - 1) * H + h];
    for (int c = 0; c < NC; c++) {
        const int buf = c % STAGES, Lc = min(CH, T - c * CH);
        const size_t r0 = (size_t)b * T + (size_t)c * CH;
        const float gC = expf(Gnext);
        if (c + 1 < NC) Gnext = w.G[(r0 + CH + min(CH, T - (c + 1) * CH) - 1) * H + h];
        cp_wait<STAGES - 2>();
        __syncthreads(); /* chunk c has landed; every warp is done with chunk c - 1's buffer */
        load_chunk(c + STAGES - 1);
        const bf *Wc = Wb + buf * CH * LD, *Kc = Kb + buf * CH * LD, *Uc = Ub + buf * CH * LU;

        /* S_c (bf16) for the output kernel, and -S as A fragments */
        bf *Scg = w.Sc + (((size_t)b * H + h) * NC + c) * D * D;
        unsigned Sneg[D / 16][4];
#pragma unroll
        for (int kb = 0; kb < D / 16; kb++) acc_to_a(Sneg[kb], Sa[2 * kb], Sa[2 * kb + 1], -1.0f);
#pragma unroll
        for (int j = 0; j < NK; j++) {
            *(unsigned *)(Scg + (size_t)(m0 + g) * D + 8 * j + 2 * t) = pack2(Sa[j][0], Sa[j][1]);
            *(unsigned *)(Scg + (size_t)(m0 + g + 8) * D + 8 * j + 2 * t) = pack2(Sa[j][2], Sa[j][3]);
        }

        /* V_new^T = U^T - S W^T: 8 tiles of 8 tokens; U^T's tiles come
         * straight from U's rows by a transposing ldmatrix */
        float Vt[CH / 8][4];
        load_acc_T<CH / 8>(Vt, Uc + warp * 16, LU);
        mma_rowsT<D / 16, CH / 8>(Vt, Sneg, Wc, LD, 0, CH); /* B(k = key, n = token) = W[token][key] */
        /* V_new^T (bf16, [value][token] per chunk) for the output kernel;
         * padded tokens hold zeros (U = W = 0 there) */
        bf *Vg = w.Vn + (((size_t)b * H + h) * NC + c) * D * CH;
#pragma unroll
        for (int j = 0; j < CH / 8; j++) {
            *(unsigned *)(Vg + (size_t)(m0 + g) * CH + 8 * j + 2 * t) = pack2(Vt[j][0], Vt[j][1]);
            *(unsigned *)(Vg + (size_t)(m0 + g + 8) * CH + 8 * j + 2 * t) = pack2(Vt[j][2], Vt[j][3]);
        }

        /* S = gamma_C S + V_new^T Kt */
#pragma unroll
        for (int j = 0; j < NK; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) Sa[j][e] *= gC;
#pragma unroll
        for (int kb = 0; kb < CH / 16; kb++) {
            unsigned av[4];
            acc_to_a(av, Vt[2 * kb], Vt[2 * kb + 1], 1.0f);
#pragma unroll
            for (int j = 0; j < NK; j += 2) {
                /* B(k = token, n = key) = Kt[token][key], transposed on load: matrices
                 * (tokens 16kb + {0, 8}, keys 8j..) and keys 8j + 8.. */
                unsigned bk[4];
                ldsm4t(bk, Kc + (16 * kb + 8 * (mi & 1) + rr) * LD + 8 * (j + (mi >> 1)));
                mma16816(Sa[j], av, bk[0], bk[1]);
                mma16816(Sa[j + 1], av, bk[2], bk[3]);
            }
        }
    }
    if (!Sg) return;
#pragma unroll
    for (int j = 0; j < NK; j++) {
        *(float2 *)(Sg + (size_t)(m0 + g) * D + 8 * j + 2 * t) = make_float2(Sa[j][0], Sa[j][1]);
        *(float2 *)(Sg + (size_t)(m0 + g + 8) * D + 8 * j + 2 * t) = make_float2(Sa[j][2], Sa[j][3]);
    }
}

/* ----------------------------------------------------------------- 3: out */
template <int D>
constexpr size_t out_smem() {
    return (size_t)(2 * CH + D) * (D + 8) * 2 + (size_t)D * (CH + 8) * 2 + CH * 4;
}

/* One chunk of one head, a warp per 16 rows (tokens), everything chained in
 * registers: P = (Q K^T) ⊙ Gamma ⊙ M (decay and causal mask applied to the
 * accumulators, then rounded to bf16 as the next A operand);
 * O = e^G ⊙ (Q S_c^T) + P V_new. */
template <int D, typename Tin, typename Tout>
__global__ void __launch_bounds__(NT) out_k(int T, int H, const Tin *__restrict__ q, const Tin *__restrict__ k,
                                           tc_work w, Tout *__restrict__ o) {
    extern __shared__ __align__(128) unsigned char smraw[];
    constexpr int LD = D + 8, LC = CH + 8;
    bf *Qb = (bf *)smraw;               /* [CH][LD] q */
    bf *Kb = Qb + CH * LD;              /* [CH][LD] k */
    bf *Sb = Kb + CH * LD;              /* [D][LD]  S_c [value][key] */
    bf *Vb = Sb + D * LD;               /* [D][LC]  V_new^T [value][token] */
    float *Gs = (float *)(Vb + D * LC); /* [CH] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3, i0 = warp * 16;
    const int t0 = c * CH, Lc = min(CH, T - t0), NC = n_chunks(T);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + t0, ch = ((size_t)b * H + h) * NC + c;
    const bf *Sc = w.Sc + ch * D * D, *Vn = w.Vn + ch * D * CH;
    for (int i = threadIdx.x; i < D * D / 8; i += NT) {
        int r = i / (D / 8), c8 = (i % (D / 8)) * 8;
        cp16(Sb + r * LD + c8, Sc + (size_t)r * D + c8, true);
    }
    for (int i = threadIdx.x; i < D * CH / 8; i += NT) {
        int r = i / (CH / 8), c8 = (i % (CH / 8)) * 8;
        cp16(Vb + r * LC + c8, Vn + (size_t)r * CH + c8, true);
    }
    stage_rows<D, NT>(Qb, LD, q + r0 * HD + (size_t)h * D, HD, Lc);
    stage_rows<D, NT>(Kb, LD, k + r0 * HD + (size_t)h * D, HD, Lc);
    cp_commit();
    if (threadIdx.x < CH) Gs[threadIdx.x] = threadIdx.x < Lc ? w.G[(r0 + threadIdx.x) * H + h] : 0.0f;
    cp_wait<0>();
    __syncthreads();

    unsigned qa[D / 16][4]; /* this warp's 16 rows of Q as A fragments */
    load_a<D / 16>(qa, Qb, LD, i0);
    float pc[CH / 8][4]; /* P: key tiles up to the diagonal; B(k = dim, n = token) = K[token][dim] */
    zero_acc<CH / 8>(pc);
    mma_rowsT<D / 16, CH / 8>(pc, qa, Kb, LD, 0, 2 * warp);
    const int ia = i0 + g, ib = ia + 8; /* this lane's rows */
    const float Ga = Gs[ia], Gb = Gs[ib];
#pragma unroll
    for (int j = 0; j < CH / 8; j++) {
        const int ja = 8 * j + 2 * t, jb = ja + 1;
        pc[j][0] = ja <= ia && ia < Lc ? pc[j][0] * expf(Ga - Gs[ja]) : 0.0f;
        pc[j][1] = jb <= ia && ia < Lc ? pc[j][1] * expf(Ga - Gs[jb]) : 0.0f;
        pc[j][2] = ja <= ib && ib < Lc ? pc[j][2] * expf(Gb - Gs[ja]) : 0.0f;
        pc[j][3] = jb <= ib && ib < Lc ? pc[j][3] * expf(Gb - Gs[jb]) : 0.0f;
    }

    /* X = Q S_c^T (B(k = key, n = value) = S_c[value][key]), then e^G per row */
    float oc[D / 8][4];
    zero_acc<D / 8>(oc);
    mma_rowsT<D / 16, D / 8>(oc, qa, Sb, LD, 0, D);
    const float ea = expf(Ga), eb = expf(Gb);
#pragma unroll
    for (int j = 0; j < D / 8; j++) oc[j][0] *= ea, oc[j][1] *= ea, oc[j][2] *= eb, oc[j][3] *= eb;

    /* O += P V_new over token blocks up to the diagonal; B(k = token, n = value) = V_new^T[value][token] */
#pragma unroll
    for (int kb = 0; kb < CH / 16; kb++) {
        if (kb > warp) break;
        unsigned pa[1][4];
        acc_to_a(pa[0], pc[2 * kb], pc[2 * kb + 1], 1.0f);
        mma_rowsT<1, D / 8>(oc, pa, Vb, LC, kb, D);
    }
    Tout *oa = o + (r0 + ia) * HD + (size_t)h * D + 2 * t, *ob = oa + 8 * HD;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        if (ia < Lc) put2(oa + 8 * j, oc[j][0], oc[j][1]);
        if (ib < Lc) put2(ob + 8 * j, oc[j][2], oc[j][3]);
    }
}

/* kernels 1 and 2; S null: from S_0 = 0, final state not kept */
template <int D, typename Tin>
void prep_scan(cudaStream_t s, int B, int T, int H, const Tin *k, const Tin *v, const float *g, const float *beta,
               float *const *S, const tc_work &w) {
    const unsigned NC = (unsigned)n_chunks(T);
    /* above 48 KiB a kernel must ask for its shared memory (per device, so every time) */
    cudaFuncSetAttribute(prep_k<D, Tin>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)prep_smem<D>());
    cudaFuncSetAttribute(scan_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)scan_smem<D>());
    prep_k<D, Tin><<<dim3(NC, H, B), NT, prep_smem<D>(), s>>>(T, H, k, v, g, beta, w);
    scan_k<D><<<dim3(D / SR, H, B), NT, scan_smem<D>(), s>>>(T, H, S, w);
}

template <int D, typename Tin, typename Tout>
cudaError_t launch_w(cudaStream_t s, int B, int T, int H, const Tin *q, const Tin *k, const Tin *v, const float *g,
                     const float *beta, float *const *S, Tout *o, const tc_work &w) {
    prep_scan<D, Tin>(s, B, T, H, k, v, g, beta, S, w);
    cudaFuncSetAttribute(out_k<D, Tin, Tout>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)out_smem<D>());
    out_k<D, Tin, Tout><<<dim3((unsigned)n_chunks(T), H, B), NT, out_smem<D>(), s>>>(T, H, q, k, w, o);
    return cudaGetLastError();
}

template <int D, typename Tin, typename Tout>
cudaError_t launch(cudaStream_t s, int B, int T, int H, const Tin *q, const Tin *k, const Tin *v, const float *g,
                   const float *beta, float *const *S, Tout *o, void *scratch) {
    return launch_w<D, Tin, Tout>(s, B, T, H, q, k, v, g, beta, S, o, carve(scratch, B, T, H, D));
}

template <typename Tin, typename Tout>
cudaError_t launch_d(cudaStream_t s, int B, int T, int H, int d, const void *q, const void *k, const void *v,
                     const float *g, const float *beta, float *const *S, void *o, void *scratch) {
    const Tin *q_ = (const Tin *)q, *k_ = (const Tin *)k, *v_ = (const Tin *)v;
    switch (d) {
    case 64: return launch<64>(s, B, T, H, q_, k_, v_, g, beta, S, (Tout *)o, scratch);
    case 128: return launch<128>(s, B, T, H, q_, k_, v_, g, beta, S, (Tout *)o, scratch);
    default: return cudaErrorNotSupported;
    }
}

} // namespace

namespace {
template <typename Tin>
cudaError_t states_t(cudaStream_t s, int B, int T, int H, int D, const Tin *k, const Tin *v, const float *g,
                     const float *beta, const tc_work &w) {
    switch (D) {
    case 64: prep_scan<64, Tin>(s, B, T, H, k, v, g, beta, nullptr, w); break;
    case 128: prep_scan<128, Tin>(s, B, T, H, k, v, g, beta, nullptr, w); break;
    default: return cudaErrorNotSupported;
    }
    return cudaGetLastError();
}

template <typename Tin>
cudaError_t fwd_keep_t(cudaStream_t s, int B, int T, int H, int D, const Tin *q, const Tin *k, const Tin *v,
                       const float *g, const float *beta, float *o, void *keep) {
    const tc_work w = carve_keep(keep, B, T, H, D);
    switch (D) {
    case 64: return launch_w<64, Tin, float>(s, B, T, H, q, k, v, g, beta, nullptr, o, w);
    case 128: return launch_w<128, Tin, float>(s, B, T, H, q, k, v, g, beta, nullptr, o, w);
    default: return cudaErrorNotSupported;
    }
}
} // namespace

cudaError_t states(cudaStream_t s, int B, int T, int H, int D, const float *k, const float *v, const float *g,
                   const float *beta, const tc_work &w) {
    return states_t(s, B, T, H, D, k, v, g, beta, w);
}
cudaError_t states(cudaStream_t s, int B, int T, int H, int D, const bf *k, const bf *v, const float *g,
                   const float *beta, const tc_work &w) {
    return states_t(s, B, T, H, D, k, v, g, beta, w);
}

size_t keep_bytes(int B, int T, int H, int D) {
    return (size_t)B * H * n_chunks(T) * CH * CH * sizeof(bf) + fwd_scratch(B, T, H, D);
}

tc_work carve_keep(void *keep, int B, int T, int H, int D) {
    bf *A = (bf *)keep;
    tc_work w = carve(A + (size_t)B * H * n_chunks(T) * CH * CH, B, T, H, D);
    w.A = A;
    return w;
}

cudaError_t fwd_keep(cudaStream_t s, int B, int T, int H, int D, const float *q, const float *k, const float *v,
                     const float *g, const float *beta, float *o, void *keep) {
    return fwd_keep_t(s, B, T, H, D, q, k, v, g, beta, o, keep);
}
cudaError_t fwd_keep(cudaStream_t s, int B, int T, int H, int D, const bf *q, const bf *k, const bf *v,
                     const float *g, const float *beta, float *o, void *keep) {
    return fwd_keep_t(s, B, T, H, D, q, k, v, g, beta, o, keep);
}

} // namespace hk_tc

extern "C" size_t hk_delta_rule_keep_bytes(int B, int T, int H, int d) {
    return B > 0 && T > 0 && H > 0 && (d == 64 || d == 128) ? hk_tc::keep_bytes(B, T, H, d) : 0;
}

extern "C" cudaError_t hk_delta_rule_tc_keep(cudaStream_t s, int B, int T, int H, int d, const float *q,
                                             const float *k, const float *v, const float *g, const float *beta,
                                             float *o, void *keep) {
    if (B <= 0 || T <= 0 || H <= 0 || !keep) return cudaErrorInvalidValue;
    return hk_tc::fwd_keep(s, B, T, H, d, q, k, v, g, beta, o, keep);
}
extern "C" cudaError_t hk_delta_rule_tc_keep16(cudaStream_t s, int B, int T, int H, int d, const uint16_t *q,
                                               const uint16_t *k, const uint16_t *v, const float *g,
                                               const float *beta, float *o, void *keep) {
    if (B <= 0 || T <= 0 || H <= 0 || !keep) return cudaErrorInvalidValue;
    return hk_tc::fwd_keep(s, B, T, H, d, (const bf *)q, (const bf *)k, (const bf *)v, g, beta, o, keep);
}

extern "C" size_t hk_delta_rule_tc_scratch(int B, int T, int H, int d) { return hk_tc::fwd_scratch(B, T, H, d); }

extern "C" cudaError_t hk_delta_rule_tc(cudaStream_t s, int B, int T, int H, int d, const void *q, const void *k,
                                        const void *v, const float *g, const float *beta, float *const *S, void *o,
                                        void *scratch, int io_bf16) {
    if (B <= 0 || T <= 0 || H <= 0 || !scratch) return cudaErrorInvalidValue;
    return io_bf16 ? hk_tc::launch_d<bf, bf>(s, B, T, H, d, q, k, v, g, beta, S, o, scratch)
                   : hk_tc::launch_d<float, float>(s, B, T, H, d, q, k, v, g, beta, S, o, scratch);
}
