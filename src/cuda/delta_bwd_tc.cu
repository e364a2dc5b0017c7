/* delta_bwd_tc.cu — backward of the gated delta rule on bf16 tensor cores
 * (tc = 1 of hk_delta_rule_bwd; training from S_0 = 0, no final-state
 * gradient, dk = dv = D in {64, 128}). Chunks of 64 in the WY form of
 * DESIGN §2; every product a raw m16n8k16 MMA with f32 accumulation
 * (mma.cuh), the state gradient kept in f32 registers through its scan.
 *
 * Forward per chunk (start state S [value, key]): G = prefix sum of g,
 * gamma = e^G, Gamma_ij = e^(G_i - G_j); L = strictLower(diag(beta)(Gamma ⊙ K K^T)),
 * A = (I + L)^-1, U = A (beta V), W = A (beta gamma K), Kd = (gamma_C / gamma) K;
 * V_new = U - W S^T; O = (gamma Q) S^T + P V_new, P = Q K^T ⊙ Gamma ⊙ M;
 * S' = gamma_C S + V_new^T Kd. Differentiating (dS' the gradient of the
 * chunk's end state, dVn the total gradient of V_new):
 *   dVn = P^T dO + Kd dS'^T                      dS = gamma_C dS' + dO^T (gamma Q) - dVn^T W
 *   dQ  = gamma (dO S) + dPm K,  dPm = (dO V_new^T) ⊙ Gamma ⊙ M
 *   dW  = -dVn S;  d(beta V) = A^T dVn;  d(beta gamma K) = A^T dW
 *   dA  = dVn (beta V)^T + dW (beta gamma K)^T;  dL = -A^T dA A^T (strictly lower)
 *   Mm  = dL ⊙ Gamma, Mb = diag(beta) Mm
 *   dK  = dPm^T Q + (gamma_C / gamma) (V_new dS') + beta gamma d(beta gamma K) + Mb K + Mb^T K
 *   dV  = beta d(beta V);  dbeta = d(beta V).V + gamma d(beta gamma K).K + rowsum(Mm ⊙ K K^T)
 *   dG_i (gradient of G) = q_i.(gamma dO S)_i + [rowsum - colsum](dPm ⊙ Q K^T + Mb ⊙ K K^T)_i
 *         + beta_i gamma_i d(beta gamma K)_i.k_i - (Kd_i.dKd_i) + [i = C-1] (sum_t Kd_t.dKd_t + gamma_C <dS', S>)
 *   dg = reverse cumulative sum of dG within the chunk.
 * (Checked in double against the token-by-token backward of DESIGN §2 to
 * 1e-15 before any kernel was written.)
 *
 * Kernels (4 warps, a warp per 16 rows):
 *  0. delta_tc.cu's prep and scan from S_0 = 0: G, U, W, Kt = Kd, A and
 *     every chunk's S_c (bf16) and V_new^T — or nothing, when the training
 *     forward kept them (hk_delta_rule_tc_keep: the same kernels, the same
 *     bits; the trainer keeps a buffer per DeltaNet layer).
 *  1. dvloc (chunks in parallel): P^T dO, the local part of dVn, computed
 *     as (K Q^T ⊙ Gamma^T ⊙ M^T) dO; also gamma Q and dO in bf16 for kernel 2.
 *  2. rscan (sequential over chunks in reverse; grid D/64 x H x B, 64 rows of
 *     dS a block, f32 registers): per chunk stores dS' (bf16), then
 *     dVn^T = (P^T dO)^T + dS' Kd^T, stored, and dS = gamma_C dS' +
 *     dO^T (gamma Q) - dVn^T W. Operands arrive by cp.async stages_r - 1
 *     chunks ahead, as in the forward scan.
 *  3. local (chunks in parallel): everything else from the formulas above;
 *     the row and column sums of dG and dbeta by shuffles and a fixed-order
 *     sum over warps in shared memory: no atomics, bit-identical runs.
 *
 * Scratch: the forward's plus A, P^T dO, gamma q, dO (bf16), dS' and dV_new
 * per chunk (bf16): 555 MB at B 16 x T 2048 x H 12 x d 64.
 *
 * Measured (H100 SXM, CUDA events, medians; tests/cuda_train/delta_bwd.c
 * with HYDRA_BENCH_DELTA_BWD=1, the split from events between the kernels):
 *   B 16 x T 2048 x H 12 x d 64:  1.31 ms = prep + scan 0.40, dvloc 0.16,
 *     rscan 0.17, local 0.56 (the f32 backward: 10.8 ms; the tensor-core
 *     forward: 0.54 ms);
 *   B 4 x T 8192 x H 16 x d 128: 4.0 ms = 1.08 + 0.43 + 0.56 + 1.94 (f32: 58 ms;
 *     forward 1.50 ms).
 * local held 209 KiB of shared memory at d 128 (one block of 4 warps an
 * SM) and 101 KiB at d 64 (two); with three tiles placed over dead ones it
 * holds 192 / 74 KiB (one / three blocks: local_smem); at d 64 the
 * backward as trained went 0.897 -> 0.830 ms (H100, B 8 x T 4096 x H 12). */
#include "delta_tc.cuh"
#include "kernels.h"

namespace hk_tc {

namespace {

/* Backward scratch: the forward's (tc_work, A included) plus these. */
struct bwd_work {
    tc_work f;
    bf *dvl, *gQ, *dOb; /* [BT, H, D]: P^T dO, gamma q, dO */
    bf *dSn;            /* [B, H, NC, D, D] gradient of each chunk's end state */
    bf *dVn;            /* [B, H, NC, D, CH] dV_new^T per chunk */
};

size_t extra_elems(int B, int T, int H, int D) {
    const size_t n = (size_t)B * T * H * D, NCH = (size_t)B * H * n_chunks(T);
    return NCH * CH * CH + 3 * n + NCH * D * D + NCH * D * CH;
}

/* keep: the forward's work (carve_keep), else A and the forward's work are
 * carved from base too (recomputed by states()). */
bwd_work carve_bwd(void *base, int B, int T, int H, int D, void *keep) {
    const size_t n = (size_t)B * T * H * D, NCH = (size_t)B * H * n_chunks(T);
    bf *p = (bf *)base;
    bwd_work w;
    bf *A = p;
    p += NCH * CH * CH;
    w.dvl = p, p += n;
    w.gQ = p, p += n;
    w.dOb = p, p += n;
    w.dSn = p, p += NCH * D * D;
    w.dVn = p, p += NCH * D * CH;
    if (keep) return w.f = carve_keep(keep, B, T, H, D), w;
    w.f = carve(p, B, T, H, D);
    w.f.A = A;
    return w;
}

/* rows (ia, ia + 8) of this warp's accumulator tiles -> dst (row ia at dst,
 * row ia + 8 at dst + 8 ld), each row scaled (sa, sb), rows only where valid */
template <int NJ, typename Tout>
__device__ __forceinline__ void store_rows(Tout *dst, size_t ld, const float (*acc)[4], float sa, float sb, bool va,
                                           bool vb) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        if (va) put2(dst + 8 * j + 2 * t, sa * acc[j][0], sa * acc[j][1]);
        if (vb) put2(dst + 8 * ld + 8 * j + 2 * t, sb * acc[j][2], sb * acc[j][3]);
    }
}

/* this thread's share of the dot products of rows (ia, ia + 8) of acc with
 * the same rows of the bf16 matrix M (row ia at M); summed over t later */
template <int NJ>
__device__ __forceinline__ void dot_rows(const float (*acc)[4], const bf *M, int ld, float &xa, float &xb) {
    const int t = threadIdx.x & 3;
    xa = xb = 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)(M + 8 * j + 2 * t));
        const float2 b = __bfloat1622float2(*(const __nv_bfloat162 *)(M + 8 * ld + 8 * j + 2 * t));
        xa += acc[j][0] * a.x + acc[j][1] * a.y;
        xb += acc[j][2] * b.x + acc[j][3] * b.y;
    }
}

/* acc *= s per row (sa for row g, sb for row g + 8) */
template <int NJ> __device__ __forceinline__ void scale_rows(float (*acc)[4], float sa, float sb) {
#pragma unroll
    for (int j = 0; j < NJ; j++) acc[j][0] *= sa, acc[j][1] *= sa, acc[j][2] *= sb, acc[j][3] *= sb;
}

/* A gradient through Gamma and the causal mask, in place on this warp's
 * rows (ia, ia + 8) of a chunk x chunk accumulator: M_ij = s_i neg acc_ij
 * e^(G_i - G_j) where j < i (j <= i with diag) and i < Lc, else 0; then
 * M ⊙ Y (Y the product Gamma multiplied, e.g. Q K^T) is the gradient of
 * G_i - G_j: its row sums go to rA, rB and its column sums to colp (to be
 * subtracted); with bA, the row sums of (M / s_i) ⊙ Y go there (the s_i = beta_i
 * gradient). acc <- M. */
template <int NJ>
__device__ __forceinline__ void decay_mask(float (*acc)[4], const float (*Y)[4], const float *Gs, int ia, int Lc,
                                           bool diag, float sa, float sb, float neg, float &rA, float &rB,
                                           float (*colp)[2], float *bA, float *bB) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int i = e < 2 ? ia : ia + 8, col = 8 * j + 2 * t + (e & 1);
            const bool keep = (diag ? col <= i : col < i) && i < Lc;
            const float m = keep ? neg * acc[j][e] * expf(Gs[i] - Gs[col]) : 0.0f, mb = (e < 2 ? sa : sb) * m,
                        x = mb * Y[j][e];
            acc[j][e] = mb;
            if (e < 2) rA += x;
            else rB += x;
            colp[j][e & 1] += x;
            if (bA) *(e < 2 ? bA : bB) += m * Y[j][e];
        }
}

/* f32 or bf16 rows of a chunk into a bf16 shared tile and, for rows < Lc,
 * also to global bf16 rows (gdst, scaled by e^(Gs[r]) when gexp) */
template <int D, typename Tin>
__device__ __forceinline__ void stage_copy(bf *dst, int ld, const Tin *src, size_t stride, int Lc, bf *gdst,
                                           const float *Gs, bool gexp) {
    constexpr int N = CH * D / 4 / NT;
    float4 x[N];
#pragma unroll
    for (int u = 0; u < N; u++) {
        const int i = threadIdx.x + u * NT, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
        x[u] = load4(src + (size_t)r * stride + c4, r < Lc);
    }
#pragma unroll
    for (int u = 0; u < N; u++) {
        const int i = threadIdx.x + u * NT, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
        store4(dst + r * ld + c4, x[u], 1.0f);
        if (gdst && r < Lc) store4(gdst + (size_t)r * stride + c4, x[u], gexp ? expf(Gs[r]) : 1.0f);
    }
}

/* G of one chunk into shared memory; padded rows repeat the last real one
 * (the forward pads with g = 0) */
__device__ __forceinline__ void load_G(float *Gs, const float *G, size_t r0, int H, int h, int Lc) {
    if (threadIdx.x < CH) Gs[threadIdx.x] = G[(r0 + min((int)threadIdx.x, Lc - 1)) * H + h];
}

/* ---------------------------------------------------------- 1: dvloc */
template <int D> constexpr size_t dvloc_smem() { return (size_t)3 * CH * (D + 8) * 2 + CH * 4; }

template <int D, typename Tin>
__global__ void __launch_bounds__(NT) dvloc_k(int T, int H, const Tin *__restrict__ q, const Tin *__restrict__ k,
                                             const Tin *__restrict__ dO, bwd_work w) {
    constexpr int LD = D + 8;
    extern __shared__ __align__(128) unsigned char smraw[];
    bf *Qb = (bf *)smraw, *Kb = Qb + CH * LD, *Ob = Kb + CH * LD;
    float *Gs = (float *)(Ob + CH * LD);
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3, i0 = warp * 16, ja = i0 + g, jb = ja + 8;
    const int Lc = min(CH, T - c * CH);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + (size_t)c * CH, at = r0 * HD + (size_t)h * D;
    load_G(Gs, w.f.G, r0, H, h, Lc);
    __syncthreads();
    stage_copy<D>(Qb, LD, q + at, HD, Lc, w.gQ + at, Gs, true);
    stage_copy<D>(Kb, LD, k + at, HD, Lc, nullptr, Gs, false);
    /* dO's bf16 copy for rscan; a bf16 dO is read where it is (launch pointed w.dOb at it) */
    stage_copy<D>(Ob, LD, dO + at, HD, Lc, sizeof(Tin) == sizeof(bf) ? nullptr : w.dOb + at, Gs, false);
    __syncthreads();

    /* P^T rows j = this warp's: (K Q^T)_ji e^(G_i - G_j) for i >= j */
    float pt[CH / 8][4];
    zero_acc<CH / 8>(pt);
    mma_tile<D / 16, CH / 8, false, false>(pt, Kb + i0 * LD, LD, Qb, LD, 0, D / 16, 2 * warp, CH / 8);
    const float Ga = Gs[ja], Gb = Gs[jb];
#pragma unroll
    for (int j = 0; j < CH / 8; j++) {
        const int ia = 8 * j + 2 * t, ib = ia + 1;
        pt[j][0] = ia >= ja ? pt[j][0] * expf(Gs[ia] - Ga) : 0.0f;
        pt[j][1] = ib >= ja ? pt[j][1] * expf(Gs[ib] - Ga) : 0.0f;
        pt[j][2] = ia >= jb ? pt[j][2] * expf(Gs[ia] - Gb) : 0.0f;
        pt[j][3] = ib >= jb ? pt[j][3] * expf(Gs[ib] - Gb) : 0.0f;
    }
    float dv[D / 8][4];
    zero_acc<D / 8>(dv);
    mma_acc<CH / 16, D / 8, true>(dv, pt, Ob, LD, warp, CH / 16); /* B(k = token i, n = value) = dO[i][value] */
    store_rows<D / 8>(w.dvl + at + (size_t)ja * HD, HD, dv, 1.0f, 1.0f, ja < Lc, jb < Lc);
}

/* ---------------------------------------------------------- 2: rscan */
constexpr int SR = 64;      /* rows of dS per block: 16 per warp */
/* chunks in flight. D 64: 2 (2 x 45 KiB), so that two blocks share an SM
 * and B H blocks (192 at B 16, H 12) run in one wave on 132 SMs, not two
 * (measured on an H100: 0.174 ms instead of 0.187 with 3 stages, so the
 * scan was not waiting on its second wave much); D 128 (D/64 = 2 blocks a
 * head): 3 x 69 KiB, one block an SM. */
template <int D> __host__ __device__ constexpr int stages_r() { return D == 64 ? 2 : 3; }

template <int D> constexpr size_t rscan_smem() {
    return (size_t)stages_r<D>() * CH * (3 * (D + 8) + 2 * (SR + 8)) * 2;
}

template <int D>
__global__ void __launch_bounds__(NT) rscan_k(int T, int H, bwd_work w) {
    constexpr int LD = D + 8, LU = SR + 8, NK = D / 8, STAGES_R = stages_r<D>();
    extern __shared__ __align__(128) unsigned char smraw[];
    bf *Kb = (bf *)smraw;             /* [STAGES_R][CH][LD] Kd */
    bf *Wb = Kb + STAGES_R * CH * LD; /* [STAGES_R][CH][LD] W */
    bf *Qb = Wb + STAGES_R * CH * LD; /* [STAGES_R][CH][LD] gamma q */
    bf *Pb = Qb + STAGES_R * CH * LD; /* [STAGES_R][CH][LU] this block's columns of P^T dO */
    bf *Ob = Pb + STAGES_R * CH * LU; /* [STAGES_R][CH][LU] this block's columns of dO */
    const int rs0 = blockIdx.x * SR, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, warp = tid >> 5,
              lane = tid & 31, g = lane >> 2;
    const int NC = n_chunks(T), m0 = rs0 + warp * 16;
    const size_t HD = (size_t)H * D;

    auto load_step = [&](int s) { /* step s is chunk NC - 1 - s; an empty group past the end */
        if (s >= NC) return cp_commit();
        const int c = NC - 1 - s, buf = s % STAGES_R, Lc = min(CH, T - c * CH);
        const size_t r0 = (size_t)b * T + (size_t)c * CH;
        bf *kd = Kb + buf * CH * LD, *wd = Wb + buf * CH * LD, *qd = Qb + buf * CH * LD;
        for (int i = tid; i < CH * D / 8; i += NT) {
            const int r = i / (D / 8), c8 = (i % (D / 8)) * 8;
            const size_t at = (r0 + (r < Lc ? r : 0)) * HD + (size_t)h * D + c8;
            cp16(kd + r * LD + c8, w.f.Kt + at, r < Lc);
            cp16(wd + r * LD + c8, w.f.W + at, r < Lc);
            cp16(qd + r * LD + c8, w.gQ + at, r < Lc);
        }
        bf *pd = Pb + buf * CH * LU, *od = Ob + buf * CH * LU;
        for (int i = tid; i < CH * SR / 8; i += NT) {
            const int r = i / (SR / 8), c8 = (i % (SR / 8)) * 8;
            const size_t at = (r0 + (r < Lc ? r : 0)) * HD + (size_t)h * D + rs0 + c8;
            cp16(pd + r * LU + c8, w.dvl + at, r < Lc);
            cp16(od + r * LU + c8, w.dOb + at, r < Lc);
        }
        cp_commit();
    };

    for (int s = 0; s < STAGES_R - 1; s++) load_step(s);
    float dS[NK][4]; /* dS rows m0 + g, m0 + g + 8; keys 8j + 2t, 8j + 2t + 1 */
    zero_acc<NK>(dS);
    /* G at the last real token of chunk c, read a step ahead (off the dependency chain) */
    auto G_last = [&](int c) { return w.f.G[((size_t)b * T + (size_t)c * CH + min(CH, T - c * CH) - 1) * H + h]; };
    float Gnext = G_last(NC - 1);
    for (int s = 0; s < NC; s++) {
        const int c = NC - 1 - s, buf = s % STAGES_R;
        const float gC = expf(Gnext);
        if (c > 0) Gnext = G_last(c - 1);
        cp_wait<STAGES_R - 2>();
        __syncthreads(); /* step s has landed; every warp is done with step s - 1's buffer */
        load_step(s + STAGES_R - 1);
        const bf *Kc = Kb + buf * CH * LD, *Wc = Wb + buf * CH * LD, *Qc = Qb + buf * CH * LD,
                 *Pc = Pb + buf * CH * LU, *Oc = Ob + buf * CH * LU;
        const size_t ch = ((size_t)b * H + h) * NC + c;

        /* dS' of this chunk (bf16) for kernel 3, and as A fragments */
        bf *dSg = w.dSn + ch * D * D + (size_t)(m0 + g) * D;
        store_rows<NK>(dSg, D, dS, 1.0f, 1.0f, true, true);
        unsigned dSa[D / 16][4];
#pragma unroll
        for (int kb = 0; kb < D / 16; kb++) acc_to_a(dSa[kb], dS[2 * kb], dS[2 * kb + 1], 1.0f);

        /* dVn^T = (P^T dO)^T + dS' Kd^T: the first term's tiles straight from
         * its rows by a transposing ldmatrix */
        float Vt[CH / 8][4];
        load_acc_T<CH / 8>(Vt, Pc + warp * 16, LU);
        mma_rowsT<D / 16, CH / 8>(Vt, dSa, Kc, LD, 0, CH); /* B(k = key, n = token) = Kd[token][key] */
        store_rows<CH / 8>(w.dVn + ch * D * CH + (size_t)(m0 + g) * CH, CH, Vt, 1.0f, 1.0f, true, true);

        /* dS = gamma_C dS' + dO^T (gamma Q) - dVn^T W */
        scale_rows<NK>(dS, gC, gC);
        mma_tile<CH / 16, NK, true, true>(dS, Oc + warp * 16, LU, Qc, LD);
        mma_acc<CH / 16, NK, true>(dS, Vt, Wc, LD, 0, CH / 16, -1.0f); /* B(k = token, n = key) = W[token][key] */
    }
}

/* ---------------------------------------------------------- 3: local */
/* the chunk's A [CH][CH] (bf16, global) into a [CH][CH + 8] tile by cp.async (not committed) */
__device__ __forceinline__ void load_A(bf *dst, const bf *src) {
    for (int i = threadIdx.x; i < CH * CH / 8; i += NT) {
        const int r = i / (CH / 8), c8 = (i % (CH / 8)) * 8;
        cp16(dst + r * (CH + 8) + c8, src + (size_t)r * CH + c8, true);
    }
}

/* Three tiles share space with tiles that are dead by then: dW takes dO's
 * rows (each warp reads, then writes, only its own 16); A takes S's place
 * and v that of dS' once every warp is past their last reads (loaded late,
 * behind a barrier; at D 64 only: at D 128 one block fits an SM either way). At D 64
 * that is 74 KiB instead of 101 and, with the registers capped at 168,
 * three blocks an SM instead of two. */
template <int D> __host__ __device__ constexpr bool local_late() { return D == 64; }
template <int D> constexpr size_t local_smem() {
    return ((size_t)(local_late<D>() ? 3 : 4) * CH * (D + 8) + (size_t)2 * D * (D + 8) + (size_t)2 * D * (CH + 8) +
            (size_t)(local_late<D>() ? 1 : 2) * CH * (CH + 8)) *
               2 +
           (size_t)(3 * CH + 4 * CH + 8) * 4;
}
template <int D> __host__ __device__ constexpr int local_blocks() { return local_late<D>() ? 3 : 1; }

template <int D, typename Tin>
__global__ void __launch_bounds__(NT, local_blocks<D>())
    local_k(int T, int H, const Tin *__restrict__ q, const Tin *__restrict__ k,
                                             const Tin *__restrict__ v, const float *__restrict__ beta,
                                             const Tin *__restrict__ dO, bwd_work w, float *__restrict__ dq,
                                             float *__restrict__ dk, float *__restrict__ dv, float *__restrict__ dg,
                                             float *__restrict__ dbeta) {
    constexpr int LD = D + 8, LC = CH + 8;
    extern __shared__ __align__(128) unsigned char smraw[];
    bf *Qb = (bf *)smraw;          /* [CH][LD] q */
    bf *Kb = Qb + CH * LD;         /* [CH][LD] k */
    bf *Ob = Kb + CH * LD;         /* [CH][LD] dO */
    bf *dWb = Ob;                  /* [CH][LD] dW, over dO */
    bf *Sb = Ob + CH * LD;         /* [D][LD] S_c [value][key] */
    bf *dNb = Sb + D * LD;         /* [D][LD] dS' [value][key] */
    bf *VnT = dNb + D * LD;        /* [D][LC] V_new^T */
    bf *dVT = VnT + D * LC;        /* [D][LC] dVn^T */
    bf *Xb = dVT + D * LC;         /* [CH][LC] dPm, then dA A^T, then Mb */
    bf *Ab = local_late<D>() ? Sb : Xb + CH * LC;              /* [CH][LC] A = (I + L)^-1: over S, or after X */
    bf *Vb = local_late<D>() ? dNb : Xb + 2 * CH * LC;         /* [CH][LD] v: over dS', or after A */
    float *Gs = (float *)(local_late<D>() ? Xb + CH * LC : Vb + CH * LD); /* the f32 vectors after the tiles */
    float *Bs = Gs + CH, *rowG = Bs + CH, *colG = rowG + CH, *red = colG + 4 * CH;
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3, i0 = warp * 16, ia = i0 + g, ib = ia + 8;
    const int Lc = min(CH, T - c * CH), NC = n_chunks(T);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + (size_t)c * CH, at = r0 * HD + (size_t)h * D;
    const size_t ch = ((size_t)b * H + h) * NC + c;
    {
        const bf *Sc = w.f.Sc + ch * D * D, *dN = w.dSn + ch * D * D, *Vn = w.f.Vn + ch * D * CH,
                 *dVn = w.dVn + ch * D * CH;
        for (int i = tid; i < D * D / 8; i += NT) {
            const int r = i / (D / 8), c8 = (i % (D / 8)) * 8;
            cp16(Sb + r * LD + c8, Sc + (size_t)r * D + c8, true);
            cp16(dNb + r * LD + c8, dN + (size_t)r * D + c8, true);
        }
        for (int i = tid; i < D * CH / 8; i += NT) {
            const int r = i / (CH / 8), c8 = (i % (CH / 8)) * 8;
            cp16(VnT + r * LC + c8, Vn + (size_t)r * CH + c8, true);
            cp16(dVT + r * LC + c8, dVn + (size_t)r * CH + c8, true);
        }
        if (!local_late<D>()) load_A(Ab, w.f.A + ch * CH * CH);
        cp_commit();
    }
    stage_rows<D, NT>(Qb, LD, q + at, HD, Lc);
    stage_rows<D, NT>(Kb, LD, k + at, HD, Lc);
    stage_rows<D, NT>(Ob, LD, dO + at, HD, Lc);
    if (!local_late<D>()) stage_rows<D, NT>(Vb, LD, v + at, HD, Lc);
    load_G(Gs, w.f.G, r0, H, h, Lc);
    if (tid < CH) Bs[tid] = tid < Lc ? beta[(r0 + tid) * H + h] : 0.0f;
    cp_commit(); /* bf16 rows came by cp.async (f32 ones through registers: an empty group) */
    cp_wait<0>();
    __syncthreads();

    const float Ga = Gs[ia], Gb = Gs[ib], GC = Gs[CH - 1], ba = Bs[ia], bb = Bs[ib];
    const bool va = ia < Lc, vb = ib < Lc;
    float rA = 0.0f, rB = 0.0f; /* this thread's share of dG for rows ia, ib */
    float bA = 0.0f, bB = 0.0f; /* ... of dbeta */
    float gcp = 0.0f;           /* ... of the dG_C terms */
    float colp[CH / 8][2];      /* ... of the column sums of dPm ⊙ QK^T + Mb ⊙ KK^T (subtracted from dG) */
#pragma unroll
    for (int j = 0; j < CH / 8; j++) colp[j][0] = colp[j][1] = 0.0f;
    float xa, xb;

    /* dG_C's <dS', S> term */
    const float gC = expf(GC);
    for (int i = tid; i < D * D / 2; i += NT) {
        const int r = i / (D / 2), c2 = (i % (D / 2)) * 2;
        const float2 s = __bfloat1622float2(*(const __nv_bfloat162 *)(Sb + r * LD + c2));
        const float2 d = __bfloat1622float2(*(const __nv_bfloat162 *)(dNb + r * LD + c2));
        gcp += gC * (s.x * d.x + s.y * d.y);
    }

    /* ---- dQ = gamma (dO S) + dPm K */
    {
        float aq[D / 8][4];
        zero_acc<D / 8>(aq);
        mma_tile<D / 16, D / 8, false, true>(aq, Ob + i0 * LD, LD, Sb, LD); /* B(k = value, n = key) = S */
        scale_rows<D / 8>(aq, expf(Ga), expf(Gb));
        dot_rows<D / 8>(aq, Qb + ia * LD, LD, xa, xb);
        rA += xa, rB += xb;
        float dp[CH / 8][4], qk[CH / 8][4];
        zero_acc<CH / 8>(dp);
        zero_acc<CH / 8>(qk);
        mma_tile<D / 16, CH / 8, false, true>(dp, Ob + i0 * LD, LD, VnT, LC, 0, D / 16, 0, 2 * warp + 2);
        mma_tile<D / 16, CH / 8, false, false>(qk, Qb + i0 * LD, LD, Kb, LD, 0, D / 16, 0, 2 * warp + 2);
        decay_mask<CH / 8>(dp, qk, Gs, ia, Lc, true, 1.0f, 1.0f, 1.0f, rA, rB, colp, nullptr, nullptr);
        mma_acc<CH / 16, D / 8, true>(aq, dp, Kb, LD, 0, warp + 1); /* B(k = token j, n = dim) = K[j][dim] */
        store_rows<D / 8>(dq + at + (size_t)ia * HD, HD, aq, 1.0f, 1.0f, va, vb);
        store_rows<CH / 8>(Xb + ia * LC, LC, dp, 1.0f, 1.0f, true, true);
    }
    /* ---- dW = -dVn S (A(m = token, k = value) = dVn^T[value][token]) */
    {
        float tw[D / 8][4];
        zero_acc<D / 8>(tw);
        mma_tile<D / 16, D / 8, true, true>(tw, dVT + i0, LC, Sb, LD);
        __syncwarp(); /* this warp's reads of its dO rows are done: dW takes them */
        store_rows<D / 8>(dWb + ia * LD, LD, tw, -1.0f, -1.0f, true, true);
    }
    __syncthreads(); /* dPm and dW complete; S is dead: A may come into its place */
    if (local_late<D>()) {
        load_A(Ab, w.f.A + ch * CH * CH);
        cp_commit();
    }

    /* ---- dK = (gamma_C / gamma) (V_new dS') + dPm^T Q, more below */
    float dK[D / 8][4];
    zero_acc<D / 8>(dK);
    mma_tile<D / 16, D / 8, true, true>(dK, VnT + i0, LC, dNb, LD);
    scale_rows<D / 8>(dK, expf(GC - Ga), expf(GC - Gb));
    dot_rows<D / 8>(dK, Kb + ia * LD, LD, xa, xb);
    rA -= xa, rB -= xb, gcp += xa + xb;
    mma_tile<CH / 16, D / 8, true, true>(dK, Xb + i0, LC, Qb, LD, warp, CH / 16); /* A(m = j, k = i) = dPm[i][j] */
    if (local_late<D>()) {
        __syncthreads(); /* every warp is past dS': v comes into its place */
        stage_rows<D, NT>(Vb, LD, v + at, HD, Lc);
        cp_commit(); /* bf16 v by cp.async */
        cp_wait<0>();
        __syncthreads(); /* A and v have landed */
    }

    /* ---- d(beta V) = A^T dVn: dv, dbeta */
    {
        float tv[D / 8][4];
        zero_acc<D / 8>(tv);
        mma_tile<CH / 16, D / 8, true, false>(tv, Ab + i0, LC, dVT, LC, warp, CH / 16);
        dot_rows<D / 8>(tv, Vb + ia * LD, LD, xa, xb);
        bA += xa, bB += xb;
        store_rows<D / 8>(dv + at + (size_t)ia * HD, HD, tv, ba, bb, va, vb);
        /* ---- d(beta gamma K) = A^T dW */
        zero_acc<D / 8>(tv);
        mma_tile<CH / 16, D / 8, true, true>(tv, Ab + i0, LC, dWb, LD, warp, CH / 16);
        dot_rows<D / 8>(tv, Kb + ia * LD, LD, xa, xb);
        const float ea = expf(Ga), eb = expf(Gb);
        bA += ea * xa, bB += eb * xb, rA += ba * ea * xa, rB += bb * eb * xb;
#pragma unroll
        for (int j = 0; j < D / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) dK[j][e] += (e < 2 ? ba * ea : bb * eb) * tv[j][e];
    }

    /* ---- dA = (dW K^T ⊙ gamma_j + dVn V^T) ⊙ beta_j, strictly lower rows */
    float da[CH / 8][4];
    zero_acc<CH / 8>(da);
    mma_tile<D / 16, CH / 8, false, false>(da, dWb + i0 * LD, LD, Kb, LD, 0, D / 16, 0, 2 * warp + 2);
#pragma unroll
    for (int j = 0; j < CH / 8; j++) {
        const float e0 = expf(Gs[8 * j + 2 * t]), e1 = expf(Gs[8 * j + 2 * t + 1]);
        da[j][0] *= e0, da[j][1] *= e1, da[j][2] *= e0, da[j][3] *= e1;
    }
    mma_tile<D / 16, CH / 8, true, false>(da, dVT + i0, LC, Vb, LD, 0, D / 16, 0, 2 * warp + 2);
#pragma unroll
    for (int j = 0; j < CH / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int i = e < 2 ? ia : ib, col = 8 * j + 2 * t + (e & 1);
            da[j][e] = col < i ? da[j][e] * Bs[col] : 0.0f;
        }
    /* X = dA A^T (B(k = n, n = j) = A[j][n]) */
    float xx[CH / 8][4];
    zero_acc<CH / 8>(xx);
    mma_acc<CH / 16, CH / 8, false>(xx, da, Ab, LC, 0, warp + 1);
    __syncthreads(); /* every warp has read dPm */
    store_rows<CH / 8>(Xb + ia * LC, LC, xx, 1.0f, 1.0f, true, true);
    __syncthreads();
    /* dL = -A^T X (rows i: m >= i), Mm = dL ⊙ Gamma, Mb = beta_i Mm; K K^T again */
    zero_acc<CH / 8>(da);
    mma_tile<CH / 16, CH / 8, true, true>(da, Ab + i0, LC, Xb, LC, warp, CH / 16, 0, 2 * warp + 2);
    zero_acc<CH / 8>(xx);
    mma_tile<D / 16, CH / 8, false, false>(xx, Kb + i0 * LD, LD, Kb, LD, 0, D / 16, 0, 2 * warp + 2);
    decay_mask<CH / 8>(da, xx, Gs, ia, Lc, false, ba, bb, -1.0f, rA, rB, colp, &bA, &bB);
    mma_acc<CH / 16, D / 8, true>(dK, da, Kb, LD, 0, warp + 1); /* Mb K */
    __syncthreads(); /* every warp has read X */
    store_rows<CH / 8>(Xb + ia * LC, LC, da, 1.0f, 1.0f, true, true);
    __syncthreads();
    mma_tile<CH / 16, D / 8, true, true>(dK, Xb + i0, LC, Kb, LD, warp, CH / 16); /* Mb^T K */
    store_rows<D / 8>(dk + at + (size_t)ia * HD, HD, dK, 1.0f, 1.0f, va, vb);

    /* ---- sums: rows over the 4 lanes of a row, columns over the 8 rows
     * of a lane group then the 4 warps in order, dG_C over the block */
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
        rA += __shfl_xor_sync(0xffffffffu, rA, o), rB += __shfl_xor_sync(0xffffffffu, rB, o);
        bA += __shfl_xor_sync(0xffffffffu, bA, o), bB += __shfl_xor_sync(0xffffffffu, bB, o);
    }
#pragma unroll
    for (int j = 0; j < CH / 8; j++)
#pragma unroll
        for (int x = 0; x < 2; x++)
#pragma unroll
            for (int o = 4; o < 32; o <<= 1) colp[j][x] += __shfl_xor_sync(0xffffffffu, colp[j][x], o);
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) gcp += __shfl_xor_sync(0xffffffffu, gcp, o);
    if (t == 0) {
        rowG[ia] = rA, rowG[ib] = rB;
        if (va) dbeta[(r0 + ia) * H + h] = bA;
        if (vb) dbeta[(r0 + ib) * H + h] = bB;
    }
    if (g == 0)
#pragma unroll
        for (int j = 0; j < CH / 8; j++)
            colG[warp * CH + 8 * j + 2 * t] = colp[j][0], colG[warp * CH + 8 * j + 2 * t + 1] = colp[j][1];
    if (lane == 0) red[warp] = gcp;
    __syncthreads();
    if (tid < CH)
        rowG[tid] += -(colG[tid] + colG[CH + tid] + colG[2 * CH + tid] + colG[3 * CH + tid]) +
                     (tid == CH - 1 ? (red[0] + red[1]) + (red[2] + red[3]) : 0.0f);
    __syncthreads();
    if (tid == 0) /* dg = reverse cumulative sum of dG */
        for (int i = CH - 2; i >= 0; i--) rowG[i] += rowG[i + 1];
    __syncthreads();
    if (tid < Lc) dg[(r0 + tid) * H + h] = rowG[tid];
}

template <int D, typename Tin>
cudaError_t launch(cudaStream_t s, int B, int T, int H, const Tin *q, const Tin *k, const Tin *v,
                   const float *g, const float *beta, const Tin *dO, float *dq, float *dk, float *dv, float *dg,
                   float *dbeta, void *scratch, void *keep) {
    static_assert(local_smem<D>() <= 227 * 1024 && rscan_smem<D>() <= 227 * 1024, "shared memory");
    bwd_work w = carve_bwd(scratch, B, T, H, D, keep);
    if (sizeof(Tin) == sizeof(bf)) w.dOb = (bf *)dO; /* rscan reads bf16 dO where it is: no copy */
    if (!keep) {
        cudaError_t e = states(s, B, T, H, D, k, v, g, beta, w.f);
        if (e != cudaSuccess) return e;
    }
    const dim3 grid((unsigned)n_chunks(T), (unsigned)H, (unsigned)B);
    cudaFuncSetAttribute(dvloc_k<D, Tin>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dvloc_smem<D>());
    cudaFuncSetAttribute(rscan_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)rscan_smem<D>());
    cudaFuncSetAttribute(local_k<D, Tin>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)local_smem<D>());
    dvloc_k<D, Tin><<<grid, NT, dvloc_smem<D>(), s>>>(T, H, q, k, dO, w);
    rscan_k<D><<<dim3(D / SR, H, B), NT, rscan_smem<D>(), s>>>(T, H, w);
    local_k<D, Tin><<<grid, NT, local_smem<D>(), s>>>(T, H, q, k, v, beta, dO, w, dq, dk, dv, dg, dbeta);
    return cudaGetLastError();
}

} // namespace

size_t bwd_scratch(int B, int T, int H, int D) {
    return extra_elems(B, T, H, D) * sizeof(bf) + fwd_scratch(B, T, H, D);
}

namespace {
template <typename Tin>
cudaError_t bwd_t(cudaStream_t s, int B, int T, int H, int D, const Tin *q, const Tin *k, const Tin *v,
                  const float *g, const float *beta, const Tin *dO, float *dq, float *dk, float *dv, float *dg,
                  float *dbeta, void *scratch, void *keep) {
    switch (D) {
    case 64: return launch<64>(s, B, T, H, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, keep);
    case 128: return launch<128>(s, B, T, H, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, keep);
    default: return cudaErrorNotSupported;
    }
}
} // namespace

cudaError_t bwd(cudaStream_t s, int B, int T, int H, int D, const float *q, const float *k, const float *v,
                const float *g, const float *beta, const float *dO, float *dq, float *dk, float *dv, float *dg,
                float *dbeta, void *scratch, void *keep) {
    return bwd_t(s, B, T, H, D, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, keep);
}
cudaError_t bwd(cudaStream_t s, int B, int T, int H, int D, const bf *q, const bf *k, const bf *v, const float *g,
                const float *beta, const bf *dO, float *dq, float *dk, float *dv, float *dg, float *dbeta,
                void *scratch, void *keep) {
    return bwd_t(s, B, T, H, D, q, k, v, g, beta, dO, dq, dk, dv, dg, dbeta, scratch, keep);
}

} // namespace hk_tc
