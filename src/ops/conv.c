/* conv.c — causal depthwise convolution over time with a carried tail. */
#include "core/internal.h"

hydra_status hydra_op_conv_causal(int T, int C, int K, const float *x, const float *w, float *tail,
                                  float *y) {
    if (!x || !w || !y) return hydra_set_error(HYDRA_ERR_ARG, "conv: NULL pointer");
    if (T < 0 || C <= 0 || K <= 0) return hydra_set_error(HYDRA_ERR_ARG, "conv: bad shape T=%d C=%d K=%d", T, C, K);
    /* y_t[c] = sum_j w[c,j] * in_{t-K+1+j}[c]; in_s for s < 0 comes from tail[K-1+s]. */
    for (int t = 0; t < T; t++) {
        float *yt = y + (size_t)t * C;
        for (int c = 0; c < C; c++) yt[c] = 0.0f;
        for (int j = 0; j < K; j++) {
            int s = t - K + 1 + j;
            const float *src = s >= 0 ? x + (size_t)s * C : (tail ? tail + (size_t)(K - 1 + s) * C : NULL);
            if (!src) continue;
            const float *wj = w + j; /* stride K */
#pragma omp simd
            for (int c = 0; c < C; c++) yt[c] += wj[(size_t)c * K] * src[c];
        }
    }
    if (tail && K > 1) {
        /* New tail = the last K-1 inputs of (old tail ++ x). */
        int keep_old = K - 1 - T; /* rows of the old tail that survive */
        if (keep_old > 0) {
            memmove(tail, tail + (size_t)(K - 1 - keep_old) * C, (size_t)keep_old * C * sizeof(float));
            memcpy(tail + (size_t)keep_old * C, x, (size_t)T * C * sizeof(float));
        } else {
            memcpy(tail, x + (size_t)(T - (K - 1)) * C, (size_t)(K - 1) * C * sizeof(float));
        }
    }
    return HYDRA_OK;
}

/* Backward from a zero initial tail (training):
 *   dx[s,c] = sum_j w[c,j] dy[s+K-1-j, c]   (terms with s+K-1-j < T)
 *   dw[c,j] += sum_t dy[t,c] x[t-K+1+j, c]  (terms with t-K+1+j >= 0)
 * Parallel over channel blocks; each block runs over all t in order, so the
 * sums never depend on the thread count. */
hydra_status hydra_op_conv_causal_backward(int T, int C, int K, const float *x, const float *w,
                                           const float *dy, float *dx, float *dw) {
    if (!x || !w || !dy || !dx) return hydra_set_error(HYDRA_ERR_ARG, "conv_backward: NULL pointer");
    if (T < 0 || C <= 0 || K <= 0 || K > 64)
        return hydra_set_error(HYDRA_ERR_ARG, "conv_backward: bad shape T=%d C=%d K=%d", T, C, K);
    const int CB = 64, nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if ((size_t)T * C * K >= 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int s = 0; s < T; s++) {
            float *ds = dx + (size_t)s * C;
            for (int c = c0; c < c1; c++) ds[c] = 0.0f;
            for (int j = 0; j < K; j++) {
                int t = s + K - 1 - j;
                if (t >= T) continue;
                const float *gt = dy + (size_t)t * C;
#pragma omp simd
                for (int c = c0; c < c1; c++) ds[c] += w[(size_t)c * K + j] * gt[c];
            }
        }
        if (dw) {
            float acc[64 * 64]; /* [K][CB] */
            for (int j = 0; j < K; j++)
                for (int c = 0; c < c1 - c0; c++) acc[j * CB + c] = 0.0f;
            for (int t = 0; t < T; t++) {
                const float *gt = dy + (size_t)t * C;
                for (int j = 0; j < K; j++) {
                    int s = t - K + 1 + j;
                    if (s < 0) continue;
                    const float *xs = x + (size_t)s * C;
                    float *a = acc + j * CB - c0;
#pragma omp simd
                    for (int c = c0; c < c1; c++) a[c] += gt[c] * xs[c];
                }
            }
            for (int c = c0; c < c1; c++)
                for (int j = 0; j < K; j++) dw[(size_t)c * K + j] += acc[j * CB + c - c0];
        }
    }
    return HYDRA_OK;
}
