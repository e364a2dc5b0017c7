/* sample.h — the device sampler's launcher (sample.cu), a C header like
 * kernels.h: device pointers, the given stream, the launch's cudaError_t. */
#ifndef HYDRA_CUDA_SAMPLE_H
#define HYDRA_CUDA_SAMPLE_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* hydra_sample_opts as the kernel reads it, from device memory: a captured
 * decode graph then takes fresh settings on every replay. */
typedef struct {
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* (0, 1]; 1 = off */
    int unused;        /* keeps the uniforms after it 8-byte aligned */
} hk_sample_params;

/* For each row b of logits [B, V]: temperature, top-k and top-p as
 * hydra_sample_probs, then hydra_sample_draw's inverse-CDF draw with the
 * uniform u[b]; tok[b] = the token, or -1 if the row holds a NaN. The rows
 * are overwritten (with the draw's probabilities, except for greedy rows
 * and rows with a NaN). */
cudaError_t hk_sample(cudaStream_t s, int B, int V, float *logits, const hk_sample_params *par, const double *u,
                      int32_t *tok);

#ifdef __cplusplus
}
#endif
#endif /* HYDRA_CUDA_SAMPLE_H */
