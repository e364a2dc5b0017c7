/* gemm.h — cuBLASLt matrix products of the CUDA backend (gemm.c). */
#ifndef HYDRA_CUDA_GEMM_H
#define HYDRA_CUDA_GEMM_H

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/internal.h"

struct plan;
typedef struct {
    cublasLtHandle_t lt;
    void *ws;          /* cuBLASLt workspace (device) */
    size_t ws_bytes;
    struct plan *plans; /* cached layouts + algorithms, one per shape */
    int small_m;        /* products with M <= small_m rows use gemm_small.cu (0: cuBLASLt only) */
    int choice;         /* how a new plan picks its algorithm: HYDRA_GEMM_* */
} hydra_gemm_ctx;

enum {
    HYDRA_GEMM_FASTEST = 0,   /* the fastest of cuBLASLt's candidates, timed (inference) */
    HYDRA_GEMM_FIRST = 1,     /* cuBLASLt's first heuristic choice: the same algorithm in every process */
    HYDRA_GEMM_SAME_BITS = 2, /* the fastest of the candidates whose output has the first choice's bits on
                                 random operands (checked when the plan is made): timed, yet every process
                                 computes the same bits, so a resumed run repeats them (training) */
};
/* Training's choice (HYDRA_GEMM_SAME_BITS), or what HYDRA_CUDA_TRAIN_TIMED_GEMM asks for: "0" the first
 * choice, "any" the fastest of all (not reproducible across processes; for comparisons). */
void hydra_gemm_train_choice(hydra_gemm_ctx *g);

hydra_status hydra_gemm_init(hydra_gemm_ctx *g);
void hydra_gemm_free(hydra_gemm_ctx *g);
/* One line per cached plan (shape, the candidate taken of how many, and with
 * timed choices the first candidate's time and the taken one's, and how many
 * candidates gave other bits) into buf
 * (truncated to cap); returns the length the full report needs. */
size_t hydra_gemm_report(const hydra_gemm_ctx *g, char *buf, size_t cap);
/* The newest plan's candidate taken, number of candidates, and candidates
 * left out for other bits (zeros without a plan). */
void hydra_gemm_plan_info(const hydra_gemm_ctx *g, int info[3]);
/* y[M, N] (+ y if acc) = x[M, K] . W[N, K]^T; x and W f32 (bf16 = 0) or bf16
 * (bf16 = 1); y f32 on the device; runs on stream s. */
hydra_status hydra_gemm(hydra_gemm_ctx *g, cudaStream_t s, int M, int N, int K, const void *x, const void *W, float *y,
                        int bf16, int acc);
/* C[M, N] (+ C if acc) = op(A)[M, K] . op(B)[K, N], row-major with leading
 * dimensions lda, ldb, ldc; op = transpose when ta / tb; A and B both f32
 * or both bf16, C f32. Always cuBLASLt (no small-M kernel). */
hydra_status hydra_gemm_ex(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A, int lda,
                           const void *B, int ldb, float *C, int ldc, int bf16, int acc);
/* C = op(A) . op(B) + Cin (Cin NULL: + 0), Cin [M, N] with C's leading
 * dimension and may differ from C: a residual added without first copying
 * it into the output (cuBLASLt's D = alpha A B + beta C with C != D). */
hydra_status hydra_gemm_ex_add(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A,
                               int lda, const void *B, int ldb, const float *Cin, float *C, int ldc, int bf16);
/* C = op(A) . op(B) with bf16 A, B and C (f32 accumulation, C rounded to
 * nearest even): a product whose output only feeds a kernel that reads bf16. */
hydra_status hydra_gemm_ex16(hydra_gemm_ctx *g, cudaStream_t s, int ta, int tb, int M, int N, int K, const void *A,
                             int lda, const void *B, int ldb, void *C, int ldc);
/* The same with its input formed from x by `in` (HK_IN_RMSNORM with weights
 * nw and eps, HK_IN_SWIGLU; kernels.h): fused into the small-M kernel, or
 * written to tmp (rows of K in the GEMM dtype) by hk_rmsnorm / hk_swiglu
 * first for larger M. */
hydra_status hydra_gemm_in(hydra_gemm_ctx *g, cudaStream_t s, int M, int N, int K, int in, const float *x,
                           const float *nw, float eps, void *tmp, const void *W, float *y, int bf16, int acc);

#endif /* HYDRA_CUDA_GEMM_H */
