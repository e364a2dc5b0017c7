/* attention.c — causal sliding-window attention over a chunk plus a cache. */
#include <math.h>
#include <omp.h>

#include "core/internal.h"
#include "ops/simd.h"

/* sc[0..n) <- exp(sc - mx) with the 16-lane exponential (the forward and the
 * backward's recomputation use this one function, so they agree bit for
 * bit); returns the sum. The tail runs in a padded vector. */
HYDRA_AI float softmax_exp(float *sc, int64_t n, float mx) {
    hydra_v16 acc = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        hydra_v16 e = hydra_v16_exp(*(const hydra_v16 *)(sc + j) - mx);
        *(hydra_v16 *)(sc + j) = e;
        acc += e;
    }
    float sum = hydra_v16_hsum(acc);
    if (j < n) {
        float tmp[16];
        int r = (int)(n - j);
        for (int i = 0; i < 16; i++) tmp[i] = i < r ? sc[j + i] - mx : 0.0f;
        hydra_v16 e;
        __builtin_memcpy(&e, tmp, sizeof e);
        e = hydra_v16_exp(e);
        __builtin_memcpy(tmp, &e, sizeof e);
        for (int i = 0; i < r; i++) sum += (sc[j + i] = tmp[i]);
    }
    return sum;
}

/* One query (absolute position p, head h) against keys max(lo,0)..p: scores
 * into sc, softmax, weighted sum of values into oh [d]. */
HYDRA_CLONES
static void attend_one(int d, size_t Hd, int64_t pos0, int window, int64_t p, float scale,
                       const float *qh, const float *k_new, const float *v_new, const float *cache_k,
                       const float *cache_v, float *sc, float *oh) {
    int64_t lo = window ? p - window + 1 : 0;
    if (lo < 0) lo = 0;
    float mx = -INFINITY;
    for (int64_t j = lo; j <= p; j++) {
        const float *kj = j < pos0 ? cache_k + (size_t)(window ? j % window : j) * Hd
                                   : k_new + (size_t)(j - pos0) * Hd;
        float s = hydra_dot(qh, kj, d) * scale;
        sc[j - lo] = s;
        if (s > mx) mx = s;
    }
    float inv = 1.0f / softmax_exp(sc, p - lo + 1, mx);
    for (int i = 0; i < d; i++) oh[i] = 0.0f;
    for (int64_t j = lo; j <= p; j++) {
        const float *vj = j < pos0 ? cache_v + (size_t)(window ? j % window : j) * Hd
                                   : v_new + (size_t)(j - pos0) * Hd;
        float a = sc[j - lo] * inv;
        for (int i = 0; i < d; i++) oh[i] += a * vj[i];
    }
}

hydra_status hydra_op_attention(int T, int H, int d, int64_t pos0, int window, const float *q,
                                const float *k_new, const float *v_new, const float *cache_k,
                                const float *cache_v, float *o) {
    if (!q || !k_new || !v_new || !o) return hydra_set_error(HYDRA_ERR_ARG, "attention: NULL pointer");
    if (pos0 > 0 && (!cache_k || !cache_v)) return hydra_set_error(HYDRA_ERR_ARG, "attention: cache is NULL but pos0 > 0");
    if (T < 0 || H <= 0 || d <= 0 || window < 0 || pos0 < 0) return hydra_set_error(HYDRA_ERR_ARG, "attention: bad shape");
    HYDRA_CHECK(hydra_position_check("attention", (uint64_t)pos0, T)); /* no overflow in pos0 + t, p - window */
    const float scale = 1.0f / sqrtf((float)d);
    const size_t Hd = (size_t)H * d;
    /* Widest span of keys one query sees: bounds the per-thread score buffer. */
    size_t span = window ? (size_t)window : (size_t)(pos0 + T);
    int err = 0;
    /* Items of 4 (t, h) pairs, or single pairs when there are too few for the
     * threads (decode: T = 1 and 12 heads gave 16 threads 3 items). */
    const int chunk = T * H >= 16 * omp_get_max_threads() ? 4 : 1;
#pragma omp parallel if ((size_t)T * H * span * d > 200000)
    {
        float *sc = malloc(span * sizeof(float));
        if (!sc) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for collapse(2) schedule(dynamic, chunk)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                if (!sc) continue;
                attend_one(d, Hd, pos0, window, pos0 + t, scale, q + (size_t)t * Hd + (size_t)h * d,
                           k_new + (size_t)h * d, v_new + (size_t)h * d,
                           cache_k ? cache_k + (size_t)h * d : NULL, cache_v ? cache_v + (size_t)h * d : NULL,
                           sc, o + (size_t)t * Hd + (size_t)h * d);
            }
        free(sc);
    }
    if (err) return hydra_set_error(HYDRA_ERR_NOMEM, "attention: out of memory");
    return HYDRA_OK;
}

/* ---------------------------------------------------------------- backward */

/* One head over all queries t (positions 0..T-1, no cache). Per query the
 * probabilities P are recomputed (no T x W storage), then with
 * dp_j = dO_t . v_j and D_t = dO_t . o_t = sum_j P_j dp_j:
 *   ds_j = P_j (dp_j - D_t) scale;  dq_t = sum_j ds_j k_j;
 *   dk_j += ds_j q_t;  dv_j += P_j dO_t.
 * q, k, v, o, dO, dq, dk, dv point at head h of token 0; rows are Hd apart. */
HYDRA_CLONES
static void attn_bwd_head(int T, int d, size_t Hd, int window, float scale, const float *q,
                          const float *k, const float *v, const float *o, const float *dO,
                          float *dq, float *dk, float *dv, float *sc) {
    for (int t = 0; t < T; t++) {
        memset(dk + (size_t)t * Hd, 0, (size_t)d * sizeof(float));
        memset(dv + (size_t)t * Hd, 0, (size_t)d * sizeof(float));
    }
    for (int t = 0; t < T; t++) {
        int lo = window ? t - window + 1 : 0;
        if (lo < 0) lo = 0;
        const float *qt = q + (size_t)t * Hd, *gt = dO + (size_t)t * Hd, *ot = o + (size_t)t * Hd;
        float mx = -INFINITY;
        for (int j = lo; j <= t; j++) {
            const float *kj = k + (size_t)j * Hd;
            float s = hydra_dot(qt, kj, d) * scale;
            sc[j - lo] = s;
            if (s > mx) mx = s;
        }
        const float inv = 1.0f / softmax_exp(sc, t - lo + 1, mx);
        const float D = hydra_dot(gt, ot, d);
        float *dqt = dq + (size_t)t * Hd;
        for (int i = 0; i < d; i++) dqt[i] = 0.0f;
        for (int j = lo; j <= t; j++) {
            const float *vj = v + (size_t)j * Hd, *kj = k + (size_t)j * Hd;
            float *dkj = dk + (size_t)j * Hd, *dvj = dv + (size_t)j * Hd;
            const float P = sc[j - lo] * inv;
            const float dp = hydra_dot(gt, vj, d);
            const float ds = P * (dp - D) * scale;
#pragma omp simd
            for (int i = 0; i < d; i++) {
                dqt[i] += ds * kj[i];
                dkj[i] += ds * qt[i];
                dvj[i] += P * gt[i];
            }
        }
    }
}

hydra_status hydra_op_attention_backward(int T, int H, int d, int window, const float *q,
                                         const float *k, const float *v, const float *o,
                                         const float *dO, float *dq, float *dk, float *dv) {
    if (!q || !k || !v || !o || !dO || !dq || !dk || !dv)
        return hydra_set_error(HYDRA_ERR_ARG, "attention_backward: NULL pointer");
    if (T < 0 || H <= 0 || d <= 0 || window < 0) return hydra_set_error(HYDRA_ERR_ARG, "attention_backward: bad shape");
    if (T == 0) return HYDRA_OK;
    const float scale = 1.0f / sqrtf((float)d);
    const size_t Hd = (size_t)H * d;
    const size_t span = window && window < T ? (size_t)window : (size_t)T;
    int err = 0;
#pragma omp parallel if ((size_t)T * H * span * d > 200000 && !omp_in_parallel())
    {
        float *sc = malloc(span * sizeof(float));
        if (!sc) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < H; h++) {
            if (!sc) continue;
            size_t off = (size_t)h * d;
            attn_bwd_head(T, d, Hd, window, scale, q + off, k + off, v + off, o + off, dO + off,
                          dq + off, dk + off, dv + off, sc);
        }
        free(sc);
    }
    if (err) return hydra_set_error(HYDRA_ERR_NOMEM, "attention_backward: out of memory");
    return HYDRA_OK;
}

/* B sequences of T tokens ([B, T, H*d] rows, no cache): one work item per
 * (sequence, head), taken dynamically (training; see hydra_delta_rule_batch). */
hydra_status hydra_attention_backward_batch(int B, int T, int H, int d, int window, const float *q, const float *k,
                                            const float *v, const float *o, const float *dO, float *dq, float *dk,
                                            float *dv) {
    if (!q || !k || !v || !o || !dO || !dq || !dk || !dv)
        return hydra_set_error(HYDRA_ERR_ARG, "attention_backward_batch: NULL pointer");
    if (B < 0 || T < 0 || H <= 0 || d <= 0 || window < 0)
        return hydra_set_error(HYDRA_ERR_ARG, "attention_backward_batch: bad shape");
    if (T == 0 || B == 0) return HYDRA_OK;
    const float scale = 1.0f / sqrtf((float)d);
    const size_t Hd = (size_t)H * d, span = window && window < T ? (size_t)window : (size_t)T;
    int err = 0;
#pragma omp parallel if ((size_t)B * T * H * span * d > 200000 && B * H > 1) reduction(| : err)
    {
        float *sc = malloc(span * sizeof(float));
        err = !sc;
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            const size_t off = (size_t)(bh / H) * T * Hd + (size_t)(bh % H) * d;
            if (sc)
                attn_bwd_head(T, d, Hd, window, scale, q + off, k + off, v + off, o + off, dO + off, dq + off,
                              dk + off, dv + off, sc);
        }
        free(sc);
    }
    return err ? hydra_set_error(HYDRA_ERR_NOMEM, "attention_backward_batch: out of memory") : HYDRA_OK;
}
