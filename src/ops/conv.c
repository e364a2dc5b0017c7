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

/* The taps of channels [c0, c1) transposed to [K][CB] (w is [C, K]: stride K
 * over channels), so the inner loops below are contiguous. */
#define CB 64
static void taps_block(int K, const float *w, int c0, int c1, float *wt) {
    for (int j = 0; j < K; j++)
        for (int c = c0; c < c1; c++) wt[j * CB + c - c0] = w[(size_t)c * K + j];
}

/* Channels [c0, c1) of one sequence: y_t[c] = sum_j w[c,j] in_{t-K+1+j}[c],
 * in_s for s < 0 from tail[K-1+s] (NULL: zeros); x rows ldx apart, y rows ldy. */
static void conv_block(int T, int K, const float *x, size_t ldx, const float *tail, size_t C, const float *wt,
                       int c0, int c1, float *y, size_t ldy) {
    for (int t = 0; t < T; t++) {
        float *yt = y + (size_t)t * ldy;
        for (int c = c0; c < c1; c++) yt[c] = 0.0f;
        for (int j = 0; j < K; j++) {
            int s = t - K + 1 + j;
            const float *src = s >= 0 ? x + (size_t)s * ldx : (tail ? tail + (size_t)(K - 1 + s) * C : NULL);
            if (!src) continue;
            const float *wj = wt + j * CB - c0;
#pragma omp simd
            for (int c = c0; c < c1; c++) yt[c] += wj[c] * src[c];
        }
    }
}

/* Backward of channels [c0, c1) of one sequence from a zero tail:
 *   dx[s,c] = sum_j w[c,j] dy[s+K-1-j, c]   (terms with s+K-1-j < T)
 *   acc[j][c] = sum_t dy[t,c] x[t-K+1+j, c] (terms with t-K+1+j >= 0), t in order
 * dy rows C apart, x ldx, dx lddx; acc NULL: no weight gradient. */
static void conv_bwd_block(int T, int K, const float *x, size_t ldx, const float *wt, const float *dy, size_t C,
                           int c0, int c1, float *dx, size_t lddx, float *acc) {
    for (int s = 0; s < T; s++) {
        float *ds = dx + (size_t)s * lddx;
        for (int c = c0; c < c1; c++) ds[c] = 0.0f;
        for (int j = 0; j < K; j++) {
            int t = s + K - 1 - j;
            if (t >= T) continue;
            const float *gt = dy + (size_t)t * C, *wj = wt + j * CB - c0;
#pragma omp simd
            for (int c = c0; c < c1; c++) ds[c] += wj[c] * gt[c];
        }
    }
    if (!acc) return;
    for (int j = 0; j < K; j++)
        for (int c = 0; c < c1 - c0; c++) acc[j * CB + c] = 0.0f;
    for (int t = 0; t < T; t++) {
        const float *gt = dy + (size_t)t * C;
        for (int j = 0; j < K; j++) {
            int s = t - K + 1 + j;
            if (s < 0) continue;
            const float *xs = x + (size_t)s * ldx;
            float *a = acc + j * CB - c0;
#pragma omp simd
            for (int c = c0; c < c1; c++) a[c] += gt[c] * xs[c];
        }
    }
}

static hydra_status conv_check(const char *fn, int T, int C, int K) {
    if (T < 0 || C <= 0 || K <= 0 || K > 64) return hydra_set_error(HYDRA_ERR_ARG, "%s: bad shape T=%d C=%d K=%d", fn, T, C, K);
    return HYDRA_OK;
}

hydra_status hydra_op_conv_causal(int T, int C, int K, const float *x, const float *w, float *tail,
                                  float *y) {
    if (!x || !w || !y) return hydra_set_error(HYDRA_ERR_ARG, "conv: NULL pointer");
    HYDRA_CHECK(conv_check("conv", T, C, K));
    const int nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)T * C * K >= 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float wt[CB * 64];
        taps_block(K, w, c0, c1, wt);
        conv_block(T, K, x, (size_t)C, tail, (size_t)C, wt, c0, c1, y, (size_t)C);
    }
    if (tail) hydra_conv_tail_advance(tail, x, T, K, (size_t)C);
    return HYDRA_OK;
}

/* Backward from a zero initial tail (training). Parallel over channel
 * blocks; each block runs over all t in order, so the sums never depend on
 * the thread count. */
hydra_status hydra_op_conv_causal_backward(int T, int C, int K, const float *x, const float *w,
                                           const float *dy, float *dx, float *dw) {
    if (!x || !w || !dy || !dx) return hydra_set_error(HYDRA_ERR_ARG, "conv_backward: NULL pointer");
    HYDRA_CHECK(conv_check("conv_backward", T, C, K));
    const int nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)T * C * K >= 65536)
    for (int b = 0; b < nb; b++) {
        int c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float wt[CB * 64], acc[CB * 64];
        taps_block(K, w, c0, c1, wt);
        conv_bwd_block(T, K, x, (size_t)C, wt, dy, (size_t)C, c0, c1, dx, (size_t)C, dw ? acc : NULL);
        if (dw)
            for (int c = c0; c < c1; c++)
                for (int j = 0; j < K; j++) dw[(size_t)c * K + j] += acc[j * CB + c - c0];
    }
    return HYDRA_OK;
}

/* ------------------------------------------------- batched (training) */
/* B sequences of T tokens from zero tails; x rows ldx apart (training reads
 * the conv input straight out of the fused projection), y / dy rows C apart,
 * dx rows lddx. Work items are (sequence, channel block) pairs, taken
 * dynamically; the weight gradient is summed per item over t, then over the
 * sequences in b order, so nothing depends on the thread count. */
hydra_status hydra_conv_batch(int B, int T, int C, int K, const float *x, size_t ldx, const float *w, float *y) {
    HYDRA_CHECK(conv_check("conv_batch", T, C, K));
    const int nb = (C + CB - 1) / CB;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * T * C * K >= 65536)
    for (int it = 0; it < B * nb; it++) {
        const int b = it / nb, c0 = it % nb * CB, c1 = c0 + CB < C ? c0 + CB : C;
        float wt[CB * 64];
        taps_block(K, w, c0, c1, wt);
        conv_block(T, K, x + (size_t)b * T * ldx, ldx, NULL, (size_t)C, wt, c0, c1, y + (size_t)b * T * C,
                   (size_t)C);
    }
    return HYDRA_OK;
}

hydra_status hydra_conv_backward_batch(int B, int T, int C, int K, const float *x, size_t ldx, const float *w,
                                       const float *dy, float *dx, size_t lddx, float *dw) {
    HYDRA_CHECK(conv_check("conv_backward_batch", T, C, K));
    const int nb = (C + CB - 1) / CB;
    float *part = malloc((size_t)B * nb * CB * K * sizeof(float)); /* [B][nb][K][CB] */
    if (!part) return hydra_set_error(HYDRA_ERR_NOMEM, "conv_backward_batch: out of memory");
    const int par = (size_t)B * T * C * K >= 65536;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < B * nb; it++) {
            const int b = it / nb, c0 = it % nb * CB, c1 = c0 + CB < C ? c0 + CB : C;
            float wt[CB * 64];
            taps_block(K, w, c0, c1, wt);
            conv_bwd_block(T, K, x + (size_t)b * T * ldx, ldx, wt, dy + (size_t)b * T * C, (size_t)C, c0, c1,
                           dx + (size_t)b * T * lddx, lddx, part + (size_t)it * CB * K);
        }
#pragma omp for schedule(dynamic, 64)
        for (int c = 0; c < C; c++)
            for (int b = 0; b < B; b++) {
                const float *a = part + ((size_t)b * nb + c / CB) * CB * K;
                for (int j = 0; j < K; j++) dw[(size_t)c * K + j] += a[j * CB + c % CB];
            }
    }
    free(part);
    return HYDRA_OK;
}
