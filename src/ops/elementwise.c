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
#pragma omp parallel for schedule(dynamic, 8) if (M >= 8)
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

/* ------------------------------------------------ vectorised activations */
#include "ops/simd.h"

/* Below -88, e^-x overflows the clamp; SiLU is 0 to within 1e-36 there. */
HYDRA_AI hydra_v16 silu16(hydra_v16 x) {
    hydra_v16 y = x / (1.0f + hydra_v16_exp(-x));
    return HYDRA_VSEL(x < -88.0f, x * 0.0f, y);
}

HYDRA_CLONES
void hydra_vec_silu(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) *(hydra_v16 *)(y + i) = silu16(*(const hydra_v16 *)(x + i));
    for (; i < n; i++) y[i] = hydra_silu(x[i]);
}

HYDRA_CLONES
void hydra_vec_swiglu(float *y, const float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        *(hydra_v16 *)(y + i) = silu16(*(const hydra_v16 *)(g + i)) * *(const hydra_v16 *)(u + i);
    for (; i < n; i++) y[i] = hydra_silu(g[i]) * u[i];
}

/* ------------------------------------------------------ RMSNorm backward */
/* y = n * w with n = x r, r = 1/sqrt(mean(x^2) + eps):
 *   dn = dy * w;  dx = r (dn - n mean(dn * n));  dw += sum_rows dy * n.
 * dw is reduced per column block over all rows in row order, so the result
 * does not depend on the thread count. */
hydra_status hydra_op_rmsnorm_backward(int M, int C, const float *x, const float *w, float eps,
                                       const float *dy, float *dx, float *dw, int accumulate) {
    if (!x || !w || !dy || !dx) return hydra_set_error(HYDRA_ERR_ARG, "rmsnorm_backward: NULL pointer");
    if (M < 0 || C <= 0) return hydra_set_error(HYDRA_ERR_ARG, "rmsnorm_backward: bad shape [%d, %d]", M, C);
    if (M == 0) return HYDRA_OK;
    float *rs = malloc((size_t)M * sizeof(float)); /* [M] r per row */
    if (!rs) return hydra_set_error(HYDRA_ERR_NOMEM, "rmsnorm_backward: out of memory");
#pragma omp parallel for schedule(dynamic, 8) if ((size_t)M * C >= 16384)
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
        float *di = dx + (size_t)i * C;
        float ss = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : ss, dot)
        for (int c = 0; c < C; c++) {
            ss += xi[c] * xi[c];
            dot += gi[c] * w[c] * xi[c];
        }
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        rs[i] = r;
        float m = dot * r * r / (float)C; /* mean(dn * n) / r */
        if (accumulate) {
#pragma omp simd
            for (int c = 0; c < C; c++) di[c] += r * (gi[c] * w[c] - xi[c] * m);
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) di[c] = r * (gi[c] * w[c] - xi[c] * m);
        }
    }
    if (dw) { /* column blocks of 16 (enough blocks for 16+ threads), rows summed in order */
        const int CB = 16, nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)M * C >= 65536)
        for (int b = 0; b < nb; b++) {
            int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
            float acc[64];
            for (int c = c0; c < c1; c++) acc[c - c0] = 0.0f;
            for (int i = 0; i < M; i++) {
                const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
                const float r = rs[i];
#pragma omp simd
                for (int c = c0; c < c1; c++) acc[c - c0] += gi[c] * xi[c] * r;
            }
            for (int c = c0; c < c1; c++) dw[c] += acc[c - c0];
        }
    }
    free(rs);
    return HYDRA_OK;
}
