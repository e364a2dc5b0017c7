/* common.h — error handling shared by the host code of the CUDA backend. */
#ifndef HYDRA_CUDA_COMMON_H
#define HYDRA_CUDA_COMMON_H

#include <cuda_runtime.h>

#include "core/internal.h"

/* A CUDA runtime call that failed becomes HYDRA_ERR_DEVICE with the
 * runtime's own words and the call site; the library still never prints. */
#define CU_CHECK(call)                                                                                      \
    do {                                                                                                    \
        cudaError_t e__ = (call);                                                                           \
        if (e__ != cudaSuccess)                                                                             \
            return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: %s (%s) at %s:%d", cudaGetErrorString(e__), #call, \
                                   __FILE__, __LINE__);                                                     \
    } while (0)

/* Device allocation of n bytes that names what it was for when it fails. */
hydra_status hydra_cu_alloc(void **p, size_t bytes, const char *what);

#endif /* HYDRA_CUDA_COMMON_H */
