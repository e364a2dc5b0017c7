/* spec_exact.c — exact output law of speculative decoding by enumeration
 * (hydralm_claims.h). Used by claim 4 of the claims gate and tests/test_spec.c.
 *
 * Contexts: a context of length L (tokens c_1..c_L after the prompt) has index
 * base[L] + sum_i c_i V^(L-i). The forwards for every context of length
 * 0..n-1 are run once (one batched forward per length); eval applies the
 * sampling transform and enumerates the two laws. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "hydralm_claims.h"
#include "hydralm_spec.h"
#include "infer/spec_internal.h" /* the sampler's accept / residual rule, shared */

#define MAX_N 8
#define MAX_SEQ ((size_t)1 << 22)

struct hydra_spec_exact {
    int V, n;
    size_t base[MAX_N + 2]; /* base[L] for L = 0..n+1 */
    size_t n_ctx;           /* contexts of length 0..n-1 = base[n] */
    float *tlog, *dlog;     /* [n_ctx, V] logits of target / draft */
    float *p, *q;           /* [n_ctx, V] sampling distributions (as the sampler holds them) */
    double *plain, *draft, *spec; /* [V^n] x3 */
    float *r;               /* [V] residual distribution */
    double *mass;           /* [base[n+1], HYDRA_SPEC_MAX_K + 1] */
};

void hydra_spec_exact_free(hydra_spec_exact *e) {
    if (!e) return;
    free(e->tlog), free(e->dlog), free(e->p), free(e->q);
    free(e->plain), free(e->draft), free(e->spec), free(e->r), free(e->mass);
    free(e);
}

static void ctx_tokens(int V, int L, size_t idx, int32_t *out) {
    for (int i = L - 1; i >= 0; i--) {
        out[i] = (int32_t)(idx % (size_t)V);
        idx /= (size_t)V;
    }
}

hydra_status hydra_spec_exact_create(const hydra_model *target, const hydra_model *draft, const int32_t *prompt,
                                     size_t n_prompt, int n_tokens, hydra_spec_exact **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "spec_exact: out is NULL");
    *out = NULL;
    if (!target || !draft || !prompt || n_prompt < 1 || n_prompt > 4096)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_exact: models and a prompt of 1..4096 tokens are required");
    if (n_tokens < 1 || n_tokens > MAX_N)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_exact: n_tokens %d outside [1, %d]", n_tokens, MAX_N);
    hydra_status st = hydra_spec_check_pair(target, draft);
    if (st) return st;
    const int V = hydra_model_config(target)->vocab_size;
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return hydra_set_error(HYDRA_ERR_ARG, "spec_exact: prompt token %d outside [0, %d)", prompt[i], V);
    size_t N = 1;
    for (int i = 0; i < n_tokens; i++) {
        N *= (size_t)V;
        if (N > MAX_SEQ)
            return hydra_set_error(HYDRA_ERR_ARG, "spec_exact: V^n = %d^%d sequences is too many to enumerate", V,
                                   n_tokens);
    }
    hydra_spec_exact *e = calloc(1, sizeof *e);
    if (!e) return hydra_set_error(HYDRA_ERR_NOMEM, "spec_exact: out of memory");
    e->V = V;
    e->n = n_tokens;
    size_t total = 0, cnt = 1;
    for (int L = 0; L <= n_tokens + 1; L++) {
        e->base[L] = total;
        total += cnt;
        cnt *= (size_t)V;
    }
    e->n_ctx = e->base[n_tokens];
    const size_t nv = e->n_ctx * (size_t)V;
    e->tlog = malloc(nv * sizeof(float));
    e->dlog = malloc(nv * sizeof(float));
    e->p = malloc(nv * sizeof(float));
    e->q = malloc(nv * sizeof(float));
    e->plain = malloc(N * sizeof(double));
    e->draft = malloc(N * sizeof(double));
    e->spec = malloc(N * sizeof(double));
    e->r = malloc((size_t)V * sizeof(float));
    e->mass = malloc(e->base[n_tokens + 1] * (HYDRA_SPEC_MAX_K + 1) * sizeof(double));
    if (!e->tlog || !e->dlog || !e->p || !e->q || !e->plain || !e->draft || !e->spec || !e->r || !e->mass) {
        hydra_spec_exact_free(e);
        return hydra_set_error(HYDRA_ERR_NOMEM, "spec_exact: out of memory");
    }
    /* One batched forward per context length: B = V^L sequences of n_prompt + L tokens. */
    for (int L = 0; L < n_tokens && !st; L++) {
        size_t B = e->base[L + 1] - e->base[L], T = n_prompt + (size_t)L;
        int32_t *tok = malloc(B * T * sizeof *tok);
        if (!tok) {
            st = hydra_set_error(HYDRA_ERR_NOMEM, "spec_exact: out of memory");
            break;
        }
        for (size_t b = 0; b < B; b++) {
            memcpy(tok + b * T, prompt, n_prompt * sizeof *tok);
            ctx_tokens(V, L, b, tok + b * T + n_prompt);
        }
        /* forwards in slices of at most 4096 sequences */
        for (size_t b0 = 0; b0 < B && !st; b0 += 4096) {
            size_t nb = B - b0 < 4096 ? B - b0 : 4096;
            st = hydra_forward(target, tok + b0 * T, (int)nb, (int)T, NULL, HYDRA_LOGITS_LAST,
                               e->tlog + (e->base[L] + b0) * V);
            if (!st)
                st = hydra_forward(draft, tok + b0 * T, (int)nb, (int)T, NULL, HYDRA_LOGITS_LAST,
                                   e->dlog + (e->base[L] + b0) * V);
        }
        free(tok);
    }
    if (st) {
        hydra_spec_exact_free(e);
        return st;
    }
    *out = e;
    return HYDRA_OK;
}

/* Plain sampling from dist: P(s_1..s_n) = prod dist(s_t | s_<t). out [V^n]. */
static void plain_law(const hydra_spec_exact *e, const float *dist, double *out) {
    const int V = e->V, n = e->n;
    size_t N = e->base[n + 1] - e->base[n];
    for (size_t s = 0; s < N; s++) {
        double pr = 1.0;
        size_t prefix = 0, pw = N;
        for (int t = 0; t < n; t++) {
            pw /= (size_t)V;
            int tok = (int)((s / pw) % (size_t)V);
            pr *= dist[(e->base[t] + prefix) * V + tok];
            prefix = prefix * V + (size_t)tok;
        }
        out[s] = pr;
    }
}

/* Speculative decoding, exactly: mass[(ctx, i)] = P(committed prefix is ctx
 * and i tokens of the current round have been accepted). From (ctx, i < k)
 * the draft draws x ~ q(.|ctx) (enumerated); accept with the sampler's
 * hydra_spec_accept_prob -> (ctx+x, i+1); reject -> y ~ the sampler's
 * hydra_spec_residual (enumerated) -> (ctx+y, 0).
 * From (ctx, k): bonus y ~ p(.|ctx) -> (ctx+y, 0). Adaptive rounds
 * (min_p > 0): from (ctx, 0 < i < k) the round also ends with the bonus when
 * the draft's top probability at ctx is below min_p. */
static void spec_law(hydra_spec_exact *e, int k, double min_p, int broken, double *out) {
    const int V = e->V, n = e->n, K1 = k + 1;
    const size_t *base = e->base;
    double *mass = e->mass;
    float *r = e->r;
    memset(mass, 0, base[n + 1] * (size_t)K1 * sizeof(double));
    mass[0] = 1.0;
    for (int L = 0; L < n; L++) {
        for (size_t c = 0; c < base[L + 1] - base[L]; c++) {
            const float *p = e->p + (base[L] + c) * V, *q = e->q + (base[L] + c) * V;
            hydra_spec_residual(p, q, V, broken, r);
            int stops = min_p > 0 && hydra_top_prob(e->dlog + (base[L] + c) * V, V) < min_p;
            for (int i = 0; i <= k; i++) {
                double w = mass[(base[L] + c) * K1 + i];
                if (w == 0.0) continue;
                size_t child = base[L + 1] + c * V; /* + token */
                if (i == k || (i > 0 && stops)) {
                    for (int y = 0; y < V; y++) mass[(child + y) * K1] += w * p[y];
                    continue;
                }
                for (int x = 0; x < V; x++) {
                    if (q[x] <= 0) continue;
                    double a = hydra_spec_accept_prob(p[x], q[x]);
                    mass[(child + x) * K1 + i + 1] += w * q[x] * a;
                    double rej = w * q[x] * (1.0 - a);
                    if (rej > 0)
                        for (int y = 0; y < V; y++) mass[(child + y) * K1] += rej * r[y];
                }
            }
        }
    }
    size_t N = base[n + 1] - base[n];
    for (size_t s = 0; s < N; s++) {
        double acc = 0;
        for (int i = 0; i <= k; i++) acc += mass[(base[n] + s) * K1 + i];
        out[s] = acc;
    }
}

static double tvd(const double *a, const double *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d += fabs(a[i] - b[i]);
    return 0.5 * d;
}

hydra_status hydra_spec_exact_eval(hydra_spec_exact *e, const hydra_sample_opts *sample, int k,
                                   hydra_spec_exact_variant variant, hydra_spec_exact_result *out) {
    return hydra_spec_exact_eval_adaptive(e, sample, k, 0.0f, variant, out);
}

hydra_status hydra_spec_exact_eval_adaptive(hydra_spec_exact *e, const hydra_sample_opts *sample, int k,
                                            float min_draft_prob, hydra_spec_exact_variant variant,
                                            hydra_spec_exact_result *out) {
    if (!e || !sample || !out) return hydra_set_error(HYDRA_ERR_ARG, "spec_exact_eval: NULL argument");
    if (!(min_draft_prob >= 0.0f && min_draft_prob < 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "spec_exact_eval: min_draft_prob %g outside [0, 1)", (double)min_draft_prob);
    if (k < 1 || k > HYDRA_SPEC_MAX_K)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_exact_eval: k %d outside [1, %d]", k, HYDRA_SPEC_MAX_K);
    if (variant != HYDRA_SPEC_EXACT_CORRECT && variant != HYDRA_SPEC_EXACT_BROKEN_RESIDUAL)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_exact_eval: unknown variant %d", (int)variant);
    hydra_status st = hydra_sample_opts_validate(sample);
    if (st) return st;
    const int V = e->V;
    for (size_t c = 0; c < e->n_ctx && !st; c++) {
        st = hydra_sample_probs(e->tlog + c * V, V, sample, e->p + c * V);
        if (!st) st = hydra_sample_probs(e->dlog + c * V, V, sample, e->q + c * V);
    }
    if (st) return st;
    size_t N = e->base[e->n + 1] - e->base[e->n];
    plain_law(e, e->p, e->plain);
    plain_law(e, e->q, e->draft);
    spec_law(e, k, min_draft_prob, variant == HYDRA_SPEC_EXACT_BROKEN_RESIDUAL, e->spec);
    double sum = 0;
    for (size_t s = 0; s < N; s++) sum += e->spec[s];
    out->tvd = tvd(e->spec, e->plain, N);
    out->mass = sum;
    out->tvd_draft = tvd(e->draft, e->plain, N);
    out->n_sequences = N;
    return HYDRA_OK;
}

const double *hydra_spec_exact_target_law(const hydra_spec_exact *e) { return e ? e->plain : NULL; }
