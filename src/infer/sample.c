/* sample.c — logits -> sampling distribution (temperature, top-k, top-p)
 * -> token. hydra_sample_probs is the one definition of the distribution;
 * speculative decoding reuses it for both models. */
#include <math.h>

#include "core/internal.h"

hydra_sample_opts hydra_sample_opts_default(void) {
    hydra_sample_opts o = {1.0f, 0, 1.0f};
    return o;
}

hydra_status hydra_sample_opts_validate(const hydra_sample_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "sampling options are NULL");
    if (!(o->temperature >= 0.0f) || !isfinite(o->temperature))
        return hydra_set_error(HYDRA_ERR_ARG, "temperature must be a finite number >= 0 (got %g)", o->temperature);
    if (o->top_k < 0) return hydra_set_error(HYDRA_ERR_ARG, "top_k must be >= 0 (got %d)", o->top_k);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "top_p must be in (0, 1] (got %g)", o->top_p);
    return HYDRA_OK;
}

typedef struct {
    float p;
    int i;
} prob_idx;

/* Descending by probability, ascending index on ties: deterministic. */
static int cmp_desc(const void *a, const void *b) {
    const prob_idx *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->i - y->i;
}

hydra_status hydra_sample_probs(const float *logits, int V, const hydra_sample_opts *o, float *probs) {
    if (!logits || !probs) return hydra_set_error(HYDRA_ERR_ARG, "sample: NULL logits or probs");
    if (V < 1) return hydra_set_error(HYDRA_ERR_ARG, "sample: vocabulary size must be >= 1 (got %d)", V);
    HYDRA_CHECK(hydra_sample_opts_validate(o));
    int best = 0;
    for (int i = 0; i < V; i++) {
        if (isnan(logits[i])) return hydra_set_error(HYDRA_ERR_ARG, "sample: logit %d is NaN", i);
        if (logits[i] > logits[best]) best = i;
    }
    if (o->temperature == 0.0f) { /* greedy */
        memset(probs, 0, (size_t)V * sizeof(float));
        probs[best] = 1.0f;
        return HYDRA_OK;
    }
    double mx = logits[best], sum = 0.0;
    for (int i = 0; i < V; i++) {
        double e = exp(((double)logits[i] - mx) / o->temperature);
        probs[i] = (float)e;
        sum += e;
    }
    for (int i = 0; i < V; i++) probs[i] = (float)(probs[i] / sum);
    int k = (o->top_k > 0 && o->top_k < V) ? o->top_k : V;
    if (k == V && o->top_p >= 1.0f) return HYDRA_OK;
    prob_idx *s = malloc((size_t)V * sizeof *s);
    if (!s) return hydra_set_error(HYDRA_ERR_NOMEM, "sample: out of memory");
    for (int i = 0; i < V; i++) s[i] = (prob_idx){probs[i], i};
    qsort(s, (size_t)V, sizeof *s, cmp_desc);
    /* Keep the k most likely, then the smallest prefix reaching top_p mass. */
    int keep = k;
    if (o->top_p < 1.0f) {
        double cum = 0.0;
        for (int j = 0; j < k; j++) {
            cum += s[j].p;
            if (cum >= (double)o->top_p - 1e-6) { /* tolerance: float probs summing to exactly top_p */
                keep = j + 1;
                break;
            }
        }
    }
    double kept = 0.0;
    for (int j = 0; j < keep; j++) kept += s[j].p;
    memset(probs, 0, (size_t)V * sizeof(float));
    for (int j = 0; j < keep; j++) probs[s[j].i] = (float)(s[j].p / kept);
    free(s);
    return HYDRA_OK;
}

/* Inverse-CDF draw from probs [V]; never returns a zero-probability id. */
int32_t hydra_sample_draw(const float *probs, int V, hydra_rng *rng) {
    double u = hydra_rng_uniform(rng), cum = 0.0;
    int32_t last = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0.0f) continue;
        cum += probs[i];
        last = i;
        if (u < cum) return i;
    }
    return last; /* rounding left u above the total: the last kept id */
}

hydra_status hydra_sample(const float *logits, int V, const hydra_sample_opts *o, hydra_rng *rng,
                          int32_t *token) {
    if (!rng || !token) return hydra_set_error(HYDRA_ERR_ARG, "sample: NULL rng or token");
    float *probs = malloc((size_t)(V > 0 ? V : 1) * sizeof(float));
    if (!probs) return hydra_set_error(HYDRA_ERR_NOMEM, "sample: out of memory");
    hydra_status st = hydra_sample_probs(logits, V, o, probs);
    if (st == HYDRA_OK) *token = hydra_sample_draw(probs, V, rng);
    free(probs);
    return st;
}

double hydra_top_prob(const float *logits, int V) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double z = 0.0;
    for (int i = 0; i < V; i++) z += exp((double)logits[i] - (double)mx);
    return 1.0 / z;
}
