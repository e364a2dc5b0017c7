/* conv.c — causal depthwise convolution over time with a carried tail. */
#include "core/internal.h"

void hydra_conv_tail_advance(float *tail, const float *x, int n, int K, size_t C) {
    if (K <= 1 || n <= 0) return;
    int keep = K - 1 - n; /* rows of the old tail that survive */
    if (keep > 0) {
        memmove(tail, tail + (size_t)n * C, (size_t)keep * C * sizeof(float));
        memcpy(tail + (size_t)keep * C, x, (size_t)n * C * sizeof(float));
    } else {
        memcpy(tail, x + (size_t)(n - (K - 1)) * C, (size_t)(K - 1) * C * sizeof(float));
    }
}

hydra_status hydra_op_conv_causal(int T, int C, int K, const float *x, const float *w, float *tail,
                                  float *y) {
    if (!x || !w || !y) return hydra_set_error(HYDRA_ERR_ARG, "conv: NULL pointer");
    if (T < 0 || C <= 0 || K <= 0 || K > 64) return hydra_set_error(HYDRA_ERR_ARG, "conv: bad shape T=%d C=%d K=%d", T, C, K);
    /* y_t[c] = sum_j w[c,j] * in_{t-K+1+j}[c]; in_s for s < 0 comes from tail[K-1+s].
     * Channel blocks of 64 with the block's taps transposed to [K][64], so the
     * inner loop is contiguous (w itself is [C, K]: stride K over channels). */
    const int CB = 64, nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static) if ((size_t)T * C * K >= 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float wt[64 * 64];
        for (int j = 0; j < K; j++)
            for (int c = c0; c < c1; c++) wt[j * CB + c - c0] = w[(size_t)c * K + j];
        for (int t = 0; t < T; t++) {
            float *yt = y + (size_t)t * C;
            for (int c = c0; c < c1; c++) yt[c] = 0.0f;
            for (int j = 0; j < K; j++) {
                int s = t - K + 1 + j;
                const float *src = s >= 0 ? x + (size_t)s * C : (tail ? tail + (size_t)(K - 1 + s) * C : NULL);
                if (!src) continue;
                const float *wj = wt + j * CB - c0;
#pragma omp simd
                for (int c = c0; c < c1; c++) yt[c] += wj[c] * src[c];
            }
        }
    }
    if (tail) hydra_conv_tail_advance(tail, x, T, K, (size_t)C);
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
        float wt[64 * 64]; /* [K][CB]: this block's taps, contiguous over channels */
        for (int j = 0; j < K; j++)
            for (int c = c0; c < c1; c++) wt[j * CB + c - c0] = w[(size_t)c * K + j];
        for (int s = 0; s < T; s++) {
            float *ds = dx + (size_t)s * C;
            for (int c = c0; c < c1; c++) ds[c] = 0.0f;
            for (int j = 0; j < K; j++) {
                int t = s + K - 1 - j;
                if (t >= T) continue;
                const float *gt = dy + (size_t)t * C, *wj = wt + j * CB - c0;
#pragma omp simd
                for (int c = c0; c < c1; c++) ds[c] += wj[c] * gt[c];
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
