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
