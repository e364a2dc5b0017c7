/* delta_tc.cuh — what the tensor-core chunked delta rule (delta_tc.cu) shares
 * with its backward (delta_bwd_tc.cu): the chunk length, the scratch
 * layout, the chunk-row staging, and the forward pass up to the per-chunk
 * states, which the backward recomputes. */
#ifndef HYDRA_CUDA_DELTA_TC_CUH
#define HYDRA_CUDA_DELTA_TC_CUH

#include <cuda_runtime.h>

#include "mma.cuh"

namespace hk_tc {

constexpr int CH = 64;  /* chunk length */
constexpr int NT = 128; /* 4 warps per block, a warp per 16 rows */

__host__ __device__ inline int n_chunks(int T) { return (T + CH - 1) / CH; }

/* Scratch of the forward (carved from the caller's work buffer; 16-byte aligned pieces). */
struct tc_work {
    bf *U, *W, *Kt;      /* [BT, H, D] */
    bf *Vn;              /* [B, H, NC, D, CH] V_new^T per chunk (the scan's register layout) */
    bf *Sc;              /* [B, H, NC, D, D] chunk-start states */
    float *G;            /* [BT, H] cumulative log decay within the chunk */
    bf *A;               /* [B, H, NC, CH, CH] (I + L)^-1 per chunk, or null (only the backward keeps it) */
};

size_t fwd_scratch(int B, int T, int H, int D);
tc_work carve(void *base, int B, int T, int H, int D); /* A = null */
/* prep and scan from S_0 = 0 (no final state): G, U, W, Kt, A (when set),
 * then S_c and V_new^T of every chunk. q is not needed. */
cudaError_t states(cudaStream_t s, int B, int T, int H, int D, const float *k, const float *v, const float *g,
                   const float *beta, const tc_work &w);
cudaError_t states(cudaStream_t s, int B, int T, int H, int D, const bf *k, const bf *v, const float *g,
                   const float *beta, const tc_work &w);

/* The forward's work kept for the backward (training): A, then a tc_work,
 * in one buffer of keep_bytes; fwd_keep is the forward from S_0 = 0 (no
 * final state) writing o and that buffer. The same kernels as states(), so
 * the backward that reads it gets the bits it would have recomputed. */
size_t keep_bytes(int B, int T, int H, int D);
tc_work carve_keep(void *keep, int B, int T, int H, int D);
cudaError_t fwd_keep(cudaStream_t s, int B, int T, int H, int D, const float *q, const float *k, const float *v,
                     const float *g, const float *beta, float *o, void *keep);
cudaError_t fwd_keep(cudaStream_t s, int B, int T, int H, int D, const bf *q, const bf *k, const bf *v,
                     const float *g, const float *beta, float *o, void *keep); /* q, k, v in bf16 */

/* The backward (delta_bwd_tc.cu): hk_delta_rule_bwd's contract, D in {64, 128}.
 * keep: fwd_keep's buffer for these inputs (prep and scan are then not run
 * again), or null (they are recomputed in scratch). */
size_t bwd_scratch(int B, int T, int H, int D);
cudaError_t bwd(cudaStream_t s, int B, int T, int H, int D, const float *q, const float *k, const float *v,
                const float *g, const float *beta, const float *dO, float *dq, float *dk, float *dv, float *dg,
                float *dbeta, void *scratch, void *keep);
cudaError_t bwd(cudaStream_t s, int B, int T, int H, int D, const bf *q, const bf *k, const bf *v, const float *g,
                const float *beta, const bf *dO, float *dq, float *dk, float *dv, float *dg, float *dbeta,
                void *scratch, void *keep); /* q, k, v and dO in bf16 */

/* q, k rows of one chunk into bf16 shared tiles: bf16 inputs by cp.async,
 * f32 ones through registers (every load issued before the first store) */
template <int D, int THREADS>
__device__ __forceinline__ void stage_rows(bf *dst, int ld, const bf *src, size_t stride, int Lc) {
    for (int i = threadIdx.x; i < CH * D / 8; i += THREADS) {
        int r = i / (D / 8), c8 = (i % (D / 8)) * 8;
        cp16(dst + r * ld + c8, src + (size_t)(r < Lc ? r : 0) * stride + c8, r < Lc);
    }
}
template <int D, int THREADS>
__device__ __forceinline__ void stage_rows(bf *dst, int ld, const float *src, size_t stride, int Lc) {
    constexpr int N = CH * D / 4 / THREADS;
    float4 x[N];
#pragma unroll
    for (int u = 0; u < N; u++) {
        int i = threadIdx.x + u * THREADS, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
        x[u] = load4(src + (size_t)r * stride + c4, r < Lc);
    }
#pragma unroll
    for (int u = 0; u < N; u++) {
        int i = threadIdx.x + u * THREADS, r = i / (D / 4), c4 = (i % (D / 4)) * 4;
        store4(dst + r * ld + c4, x[u], 1.0f);
    }
}


} // namespace hk_tc

#endif /* HYDRA_CUDA_DELTA_TC_CUH */
