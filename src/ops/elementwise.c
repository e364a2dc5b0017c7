/* elementwise.c — activations and RMSNorm. */
#include <math.h>

#include "core/internal.h"

float hydra_silu(float x) { return x / (1.0f + expf(-x)); }
float hydra_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
/* log(1 + e^x) without overflow for large x. */
float hydra_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

hydra_status hydra_op_rmsnorm(int M, int C, const float *x, const float *w, float eps, float *y) {
    if (!x || !w || !y) return hydra_set_error(HYDRA_ERR_ARG, "rmsnorm: NULL pointer");
    if (M < 0 || C <= 0) return hydra_set_error(HYDRA_ERR_ARG, "rmsnorm: bad shape [%d, %d]", M, C);
#pragma omp parallel for schedule(static) if (M >= 8)
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += xi[c] * xi[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) yi[c] = xi[c] * r * w[c];
    }
    return HYDRA_OK;
}
