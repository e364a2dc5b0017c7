/* ops_util.h — copy-in / run / copy-out helpers of the single-op wrappers
 * (ops.c and the backward ops' wrappers) that the tests call on host arrays. */
#ifndef HYDRA_CUDA_OPS_UTIL_H
#define HYDRA_CUDA_OPS_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "hydralm_ops.h"

/* A scratch list of device buffers freed together. */
typedef struct {
    void *p[16];
    int n;
} dbufs;

static inline void dbufs_free(dbufs *b) {
    for (int i = 0; i < b->n; i++) cudaFree(b->p[i]);
    b->n = 0;
}

/* Device copy of host[n] (NULL host: zero-filled). */
static inline hydra_status dput(dbufs *b, void **d, const void *host, size_t bytes) {
    HYDRA_CHECK(hydra_cu_alloc(d, bytes ? bytes : 4, "an op argument"));
    b->p[b->n++] = *d;
    if (host) CU_CHECK(cudaMemcpy(*d, host, bytes, cudaMemcpyHostToDevice));
    else CU_CHECK(cudaMemset(*d, 0, bytes ? bytes : 4));
    return HYDRA_OK;
}

/* Device copy of host[n] floats rounded to bf16 (nearest even), or, with
 * bf16 0, of the floats as they are (dput). */
static inline hydra_status dput_as(dbufs *b, void **d, const float *host, size_t n, int bf16) {
    if (!bf16) return dput(b, d, host, n * 4);
    uint16_t *h = malloc(n ? n * 2 : 2);
    if (!h) return hydra_set_error(HYDRA_ERR_NOMEM, "op: out of host memory");
    for (size_t i = 0; i < n; i++) h[i] = hydra_f32_to_bf16(host[i]);
    hydra_status st = dput(b, d, h, n * 2);
    free(h);
    return st;
}

/* host[bytes] <- the device result. */
static inline hydra_status dget(void *host, const void *d, size_t bytes) {
    CU_CHECK(cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
    return HYDRA_OK;
}

static inline hydra_status need_device(void) {
    if (hydra_dev_count() == 0) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: no CUDA device is visible");
    return HYDRA_OK;
}

#define OP_RUN(expr)                                                                                   \
    do {                                                                                               \
        cudaError_t e__ = (expr);                                                                      \
        if (e__ == cudaSuccess) e__ = cudaDeviceSynchronize();                                         \
        if (e__ != cudaSuccess) {                                                                      \
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda op %s: %s", #expr, cudaGetErrorString(e__)); \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)
#define OP_TRY(expr)                 \
    do {                             \
        if ((st = (expr))) goto done; \
    } while (0)

#endif /* HYDRA_CUDA_OPS_UTIL_H */
