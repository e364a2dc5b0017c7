/* mma.cuh — device helpers of the tensor-core kernels (delta_tc.cu,
 * delta_bwd_tc.cu): raw m16n8k16 bf16 MMAs with f32 accumulation (PTX),
 * ldmatrix fragment loads, cp.async copies and bf16 packing.
 * Fragment layouts (PTX ISA, mma.m16n8k16): with g = lane / 4, t = lane % 4,
 * an f32 accumulator tile (16 x 8) holds rows g and g + 8 at columns 2t,
 * 2t + 1; an A fragment (16 x 16) the same rows at columns 2t, 2t + 1,
 * 2t + 8, 2t + 9; a B fragment (16 x 8) column g at rows 2t, 2t + 1 (b0)
 * and 2t + 8, 2t + 9 (b1). */
#ifndef HYDRA_CUDA_MMA_CUH
#define HYDRA_CUDA_MMA_CUH

#include <cuda_bf16.h>

namespace {

typedef __nv_bfloat16 bf;

/* 4 f32 -> 4 bf16 (8-byte store), each scaled by s */
__device__ __forceinline__ void store4(bf *dst, float4 x, float s) {
    __nv_bfloat162 h[2] = {__floats2bfloat162_rn(x.x * s, x.y * s), __floats2bfloat162_rn(x.z * s, x.w * s)};
    *(uint2 *)dst = *(const uint2 *)h;
}

/* 4 consecutive inputs as f32 (zeros where !valid): f32 or bf16 activations */
__device__ __forceinline__ float4 load4(const float *p, bool valid) {
    return valid ? *(const float4 *)p : make_float4(0.f, 0.f, 0.f, 0.f);
}
__device__ __forceinline__ float4 load4(const bf *p, bool valid) {
    if (!valid) return make_float4(0.f, 0.f, 0.f, 0.f);
    uint2 u = *(const uint2 *)p;
    float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)&u.x), b = __bfloat1622float2(*(const __nv_bfloat162 *)&u.y);
    return make_float4(a.x, a.y, b.x, b.y);
}

/* 16-byte global -> shared copy that bypasses registers; valid = 0 writes zeros */
__device__ __forceinline__ void cp16(void *smem, const void *gmem, bool valid) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Raw m16n8k16 tensor-core products (PTX), whose fragment layouts are
 * documented: with g = lane / 4 and t = lane % 4, an f32 accumulator tile
 * (16 x 8) holds rows g and g + 8 at columns 2t, 2t + 1; an A fragment
 * (16 x 16) holds the same rows at columns 2t, 2t + 1, 2t + 8, 2t + 9. Two
 * adjacent accumulator tiles are therefore one A fragment once rounded to
 * bf16: the scan chains its products in registers without touching shared
 * memory (the flash-attention trick). */
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *(const unsigned *)&h;
}
__device__ __forceinline__ void mma16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give matrix i's row addresses */
__device__ __forceinline__ void ldsm4(unsigned r[4], const bf *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldsm4t(unsigned r[4], const bf *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
/* A fragment for k-block kb from accumulator tiles 2kb and 2kb + 1 (times s) */
__device__ __forceinline__ void acc_to_a(unsigned a[4], const float c0[4], const float c1[4], float s) {
    a[0] = pack2(s * c0[0], s * c0[1]);
    a[1] = pack2(s * c0[2], s * c0[3]);
    a[2] = pack2(s * c1[0], s * c1[1]);
    a[3] = pack2(s * c1[2], s * c1[3]);
}

/* acc[j] (j < NJ accumulator tiles of 8 columns) += A (16 rows; k-blocks
 * kb0 .. kb0 + KB - 1 of a[]) times B with B(k, n) = R[n][k]: column n of B
 * is row n of the bf16 matrix R (ld elements apart), so one non-transposing
 * ldmatrix gives two tiles' B fragments. Tile pairs past jmax are skipped
 * (causal masks); the bounds are compile-time so acc stays in registers. */
template <int KB, int NJ>
__device__ __forceinline__ void mma_rowsT(float (*acc)[4], const unsigned (*a)[4], const bf *R, int ld, int kb0,
                                          int jmax) {
    const int lane = threadIdx.x & 31, mi = lane >> 3, rr = lane & 7;
#pragma unroll
    for (int kb = 0; kb < KB; kb++)
#pragma unroll
        for (int j = 0; j < NJ; j += 2) {
            if (j > jmax) break;
            unsigned b[4];
            ldsm4(b, R + (8 * (j + (mi >> 1)) + rr) * ld + 16 * (kb0 + kb) + 8 * (mi & 1));
            mma16816(acc[j], a[kb], b[0], b[1]);
            mma16816(acc[j + 1], a[kb], b[2], b[3]);
        }
}

template <int NJ>
__device__ __forceinline__ void zero_acc(float (*acc)[4]) {
#pragma unroll
    for (int j = 0; j < NJ; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
}

/* A fragments of 16 rows (row0..) of a bf16 row-major matrix, k-blocks 0 .. KB - 1 */
template <int KB>
__device__ __forceinline__ void load_a(unsigned (*a)[4], const bf *M, int ld, int row0) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kb = 0; kb < KB; kb++) ldsm4(a[kb], M + (row0 + (lane & 15)) * ld + 16 * kb + 8 * (lane >> 4));
}

/* two adjacent outputs (columns 2t, 2t + 1 of a row) to f32 or bf16 memory */
__device__ __forceinline__ void put2(float *dst, float a, float b) { *(float2 *)dst = make_float2(a, b); }
__device__ __forceinline__ void put2(bf *dst, float a, float b) { *(unsigned *)dst = pack2(a, b); }

/* acc[j] (j in [jlo, jhi) of NJ accumulator tiles of 8 columns, jlo and
 * jhi even) += a (one A fragment: k-block kb) times B, where
 *   BT = false: B(k, n) = Bm[n * ldb + k];  BT = true: B(k, n) = Bm[k * ldb + n]
 * (Bm at n = 0, k = 0; the transposed case is ldmatrix.trans, so B is read
 * in the layout it is stored in). */
template <int NJ, bool BT>
__device__ __forceinline__ void mma_kb(float (*acc)[4], const unsigned a[4], const bf *Bm, int ldb, int kb,
                                       int jlo = 0, int jhi = NJ) {
    const int lane = threadIdx.x & 31, mi = lane >> 3, rr = lane & 7;
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
        if (j < jlo || j >= jhi) continue;
        unsigned b[4];
        if (BT) ldsm4t(b, Bm + (16 * kb + 8 * (mi & 1) + rr) * ldb + 8 * (j + (mi >> 1)));
        else ldsm4(b, Bm + (8 * (j + (mi >> 1)) + rr) * ldb + 16 * kb + 8 * (mi & 1));
        mma16816(acc[j], a, b[0], b[1]);
        mma16816(acc[j + 1], a, b[2], b[3]);
    }
}

/* The same over k-blocks kb in [kb0, kb1) of KB, A read from shared memory
 * (this warp's 16 rows; Am at row 0, k = 0):
 *   AT = false: A(m, k) = Am[m * lda + k];  AT = true: A(m, k) = Am[k * lda + m]
 * Bounds are runtime (causal tiles are skipped), the loops unrolled over the
 * compile-time maxima so acc stays in registers. */
template <int KB, int NJ, bool AT, bool BT>
__device__ __forceinline__ void mma_tile(float (*acc)[4], const bf *Am, int lda, const bf *Bm, int ldb, int kb0 = 0,
                                         int kb1 = KB, int jlo = 0, int jhi = NJ) {
    const int lane = threadIdx.x & 31, mi = lane >> 3, rr = lane & 7;
#pragma unroll
    for (int kb = 0; kb < KB; kb++) {
        if (kb < kb0 || kb >= kb1) continue;
        unsigned a[4];
        if (AT) ldsm4t(a, Am + (16 * kb + 8 * (mi >> 1) + rr) * lda + 8 * (mi & 1));
        else ldsm4(a, Am + (lane & 15) * lda + 16 * kb + 8 * (lane >> 4));
        mma_kb<NJ, BT>(acc, a, Bm, ldb, kb, jlo, jhi);
    }
}

/* acc += P B with P in registers (accumulator tiles 2kb, 2kb + 1 rounded
 * to bf16 as the A fragment of k-block kb), k-blocks kb in [kb0, kb1): the
 * product chained on one before without a trip through shared memory */
template <int KB, int NJ, bool BT>
__device__ __forceinline__ void mma_acc(float (*acc)[4], const float (*P)[4], const bf *Bm, int ldb, int kb0, int kb1,
                                        float s = 1.0f) {
#pragma unroll
    for (int kb = 0; kb < KB; kb++) {
        if (kb < kb0 || kb >= kb1) continue;
        unsigned a[4];
        acc_to_a(a, P[2 * kb], P[2 * kb + 1], s);
        mma_kb<NJ, BT>(acc, a, Bm, ldb, kb);
    }
}

/* NJ accumulator tiles (this warp's 16 rows m, 8 columns n each) loaded
 * from a bf16 matrix stored transposed, X[n][m] (X at m = 0, n = 0), by a
 * transposing ldmatrix */
template <int NJ>
__device__ __forceinline__ void load_acc_T(float (*acc)[4], const bf *X, int ld) {
    const int lane = threadIdx.x & 31, mi = lane >> 3, rr = lane & 7;
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
        unsigned u4[4]; /* matrices (n 8j.., m 0..7), (n 8j.., m 8..15), then n 8j + 8.. */
        ldsm4t(u4, X + (8 * (j + (mi >> 1)) + rr) * ld + 8 * (mi & 1));
#pragma unroll
        for (int x = 0; x < 2; x++) {
            float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)&u4[2 * x]);
            float2 hi = __bfloat1622float2(*(const __nv_bfloat162 *)&u4[2 * x + 1]);
            acc[j + x][0] = lo.x, acc[j + x][1] = lo.y, acc[j + x][2] = hi.x, acc[j + x][3] = hi.y;
        }
    }
}

} // namespace

#endif /* HYDRA_CUDA_MMA_CUH */
