/* attention.c — causal sliding-window attention over a chunk plus a cache. */
#include <math.h>

#include "core/internal.h"

hydra_status hydra_op_attention(int T, int H, int d, int64_t pos0, int window, const float *q,
                                const float *k_new, const float *v_new, const float *cache_k,
                                const float *cache_v, float *o) {
    if (!q || !k_new || !v_new || !o) return hydra_set_error(HYDRA_ERR_ARG, "attention: NULL pointer");
    if (pos0 > 0 && (!cache_k || !cache_v)) return hydra_set_error(HYDRA_ERR_ARG, "attention: cache is NULL but pos0 > 0");
    if (T < 0 || H <= 0 || d <= 0 || window < 0 || pos0 < 0) return hydra_set_error(HYDRA_ERR_ARG, "attention: bad shape");
    const float scale = 1.0f / sqrtf((float)d);
    const size_t Hd = (size_t)H * d;
    /* Widest span of keys one query sees: bounds the per-thread score buffer. */
    size_t span = window ? (size_t)window : (size_t)(pos0 + T);
    int err = 0;
#pragma omp parallel if ((size_t)T * H * span * d > 200000)
    {
        float *sc = malloc(span * sizeof(float));
        if (!sc) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for collapse(2) schedule(static)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                if (!sc) continue;
                int64_t p = pos0 + t, lo = window ? p - window + 1 : 0;
                if (lo < 0) lo = 0;
                const float *qh = q + (size_t)t * Hd + (size_t)h * d;
                float mx = -INFINITY;
                for (int64_t j = lo; j <= p; j++) {
                    const float *kj = j < pos0 ? cache_k + (size_t)(window ? j % window : j) * Hd
                                               : k_new + (size_t)(j - pos0) * Hd;
                    kj += (size_t)h * d;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < d; i++) s += qh[i] * kj[i];
                    s *= scale;
                    sc[j - lo] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                for (int64_t j = lo; j <= p; j++) {
                    sc[j - lo] = expf(sc[j - lo] - mx);
                    sum += sc[j - lo];
                }
                float inv = 1.0f / sum;
                float *oh = o + (size_t)t * Hd + (size_t)h * d;
                for (int i = 0; i < d; i++) oh[i] = 0.0f;
                for (int64_t j = lo; j <= p; j++) {
                    const float *vj = j < pos0 ? cache_v + (size_t)(window ? j % window : j) * Hd
                                               : v_new + (size_t)(j - pos0) * Hd;
                    vj += (size_t)h * d;
                    float a = sc[j - lo] * inv;
#pragma omp simd
                    for (int i = 0; i < d; i++) oh[i] += a * vj[i];
                }
            }
        free(sc);
    }
    if (err) return hydra_set_error(HYDRA_ERR_NOMEM, "attention: out of memory");
    return HYDRA_OK;
}
