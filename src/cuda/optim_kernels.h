/* optim_kernels.h — launchers of the device optimizer's kernels
 * (optim_kernels.cu), used by optim.c. Device pointers, stream s, the
 * launch's cudaError_t. "bf16" selects the dtype of the Newton–Schulz iterate
 * X (and of B, the GEMM input it feeds): f32 or bf16 (round to nearest even).
 * Every elementwise formula is written with explicitly rounded operations in
 * the order of src/train/optim.c, so nvcc cannot contract it into FMAs and
 * the f32 results match the CPU's bit for bit where the inputs do. */
#ifndef HYDRA_CUDA_OPTIM_KERNELS_H
#define HYDRA_CUDA_OPTIM_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Floats per partial sum of hk_sumsq (the CPU's block size, docs/optim.md). */
#define HK_SUMSQ_BLOCK 16384
/* Partial sums hk_sumsq needs room for. */
size_t hk_sumsq_parts(size_t n);
/* out[0] = sum of x[i]^2 in double, deterministic: fixed blocks of
 * HK_SUMSQ_BLOCK floats each reduced in a fixed tree order into parts[b],
 * then the parts combined in a fixed order by one block. No atomics. */
cudaError_t hk_sumsq(cudaStream_t s, const float *x, size_t n, double *parts, double *out);
/* x[i] *= a (the global-norm clip). */
cudaError_t hk_scale(cudaStream_t s, float *x, size_t n, float a);

/* The AdamW-routed part of the arena as chunks of at most HK_ADAM_CHUNK
 * floats, one thread block each. */
#define HK_ADAM_CHUNK 8192
typedef struct {
    uint64_t start;
    uint32_t len;
    uint32_t decay; /* hydra_optim_decays of its tensor */
} hk_adam_chunk;
/* AdamW over the chunks (optim.c's adamw_tensor): m = b1 m + c1 g;
 * v = b2 v + c2 g^2; p = p * (decay ? decay_mul : 1) - step_size * m / (sqrt(v)/bc2_sqrt + eps). */
cudaError_t hk_adamw(cudaStream_t s, const hk_adam_chunk *chunks, int n_chunks, float *p, const float *g, float *m,
                     float *v, float decay_mul, float b1, float c1, float b2, float c2, float step_size,
                     float bc2_sqrt, float eps);

/* The weights the forward reads, refreshed from the master copy after an
 * optimizer step in one launch: chunks of at most HK_COPY_CHUNK floats, a
 * thread block each, dst = src (f32) or rounded to nearest even (bf16). */
#define HK_COPY_CHUNK 16384
typedef struct {
    const float *src;
    void *dst;
    uint32_t len, bf16;
} hk_copy_chunk;
cudaError_t hk_copy_chunks(cudaStream_t s, const hk_copy_chunk *chunks, int n_chunks);

/* Muon momentum of one matrix: buf = mu buf + g; d = nesterov ? g + mu buf : buf. */
cudaError_t hk_muon_momentum(cudaStream_t s, size_t n, const float *g, float *buf, float mu, int nesterov, float *d);
/* X = d * (float)(1 / (sqrt(*sumsq) + 1e-7)) (Frobenius normalisation). */
cudaError_t hk_ns_normalize(cudaStream_t s, size_t n, const float *d, const double *sumsq, void *X, int bf16);
/* B = b A + c AA (B may be A when f32). */
cudaError_t hk_ns_poly(cudaStream_t s, size_t n, const float *A, const float *AA, float b, float c, void *B, int bf16);
/* X = a X + Y. */
cudaError_t hk_ns_combine(cudaStream_t s, size_t n, void *X, const float *Y, float a, int bf16);
/* p = p * decay_mul - step * O. */
cudaError_t hk_muon_update(cudaStream_t s, size_t n, float *p, const void *O, int bf16, float decay_mul, float step);

#ifdef __cplusplus
}
#endif
#endif /* HYDRA_CUDA_OPTIM_KERNELS_H */
