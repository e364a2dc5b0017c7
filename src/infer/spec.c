/* spec.c — speculative decoding with an exact target distribution
 * (Leviathan et al. 2023; Chen et al. 2023). See docs/spec-decoding.md.
 *
 * Round (k draft tokens), with p_i / q_i the target / draft distributions for
 * the i-th new position, both from hydra_sample_probs (the one definition of
 * the sampling transform):
 *   draft:  forward(pending) -> q_1, x_1 ~ q_1, step(x_1) -> q_2, ..., x_k ~ q_k
 *   target: ONE forward over [pending, x_1..x_k] (T = k+1, all logits)
 *           -> p_1..p_{k+1}, snapshots after each position
 *   i = 1..k: accept x_i with probability min(1, p_i(x_i)/q_i(x_i)); at the
 *           first rejection draw y ~ norm(max(0, p_i - q_i)) and stop;
 *           all accepted: y ~ p_{k+1}.
 *   commit x_1..x_j, y; roll both states back to "consumed pending + x_1..x_j"
 *   with their rollback journals (internal.h): each round begins a journal
 *   per model (a copy of the DeltaNet states and conv tails), the forwards
 *   record their inputs and the SWA ring rows they overwrite, and a rollback
 *   restores and replays the kept prefix — O(state), never a re-read of the
 *   context, and no full state copy per drafted token.
 * Every round ends with a token drawn from the target whose successor logits
 * are unknown, so it stays pending: the target always has exactly one pending
 * token; the draft has one, or two ([x_k, y]) after a fully accepted round. */
#include <math.h>

#include "core/internal.h"
#include "infer/spec_internal.h"

struct hydra_spec_session {
    const hydra_model *target, *draft;
    hydra_spec_opts opts;
    int V, k;
    hydra_rng rng;
    hydra_state *tst, *dst;                 /* live states */
    hydra_journal *tjr, *djr;               /* their rollback journals, begun every round */
    int32_t tpend;                          /* target's pending token */
    int32_t dpend[2];                       /* draft's pending tokens */
    int n_dpend;                            /* 0 before prefill */
    float *tlogits;                         /* [k+1, V] */
    float *dlogits;                         /* [V] */
    float *q;                               /* [k, V] draft distributions q_1..q_k */
    float *p;                               /* [V] */
    float *r;                               /* [V] residual distribution at a rejection */
    hydra_spec_stats st;
};

hydra_spec_opts hydra_spec_opts_default(void) {
    hydra_spec_opts o;
    memset(&o, 0, sizeof o);
    o.k = 4;
    o.sample = hydra_sample_opts_default();
    o.max_new_tokens = 128;
    return o;
}

hydra_status hydra_spec_check_pair(const hydra_model *target, const hydra_model *draft) {
    if (!target || !draft) return hydra_set_error(HYDRA_ERR_ARG, "spec: target or draft model is NULL");
    if (target->cfg.vocab_size != draft->cfg.vocab_size)
        return hydra_set_error(HYDRA_ERR_MISMATCH,
                               "spec: target and draft must share a vocabulary (target vocab_size %d, draft vocab_size %d)",
                               target->cfg.vocab_size, draft->cfg.vocab_size);
    return HYDRA_OK;
}

static hydra_status check_opts(const hydra_spec_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "spec: options are NULL");
    if (o->k < 1 || o->k > HYDRA_SPEC_MAX_K)
        return hydra_set_error(HYDRA_ERR_ARG, "spec: k must be in 1..%d (got %d)", HYDRA_SPEC_MAX_K, o->k);
    if (o->n_stop_tokens < 0 || o->n_stop_tokens > 8)
        return hydra_set_error(HYDRA_ERR_ARG, "spec: n_stop_tokens must be in 0..8 (got %d)", o->n_stop_tokens);
    if (!(o->min_draft_prob >= 0.0f && o->min_draft_prob < 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "spec: min_draft_prob must be in [0, 1) (got %g)", (double)o->min_draft_prob);
    return hydra_sample_opts_validate(&o->sample);
}

void hydra_spec_session_free(hydra_spec_session *s) {
    if (!s) return;
    hydra_state_free(s->tst);
    hydra_state_free(s->dst);
    hydra_journal_free(s->tjr);
    hydra_journal_free(s->djr);
    free(s->tlogits);
    free(s->dlogits);
    free(s->q);
    free(s->p);
    free(s->r);
    free(s);
}

hydra_status hydra_spec_session_create(const hydra_model *target, const hydra_model *draft,
                                       const hydra_spec_opts *opts, hydra_spec_session **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "spec: out is NULL");
    *out = NULL;
    HYDRA_CHECK(hydra_spec_check_pair(target, draft));
    HYDRA_CHECK(check_opts(opts));
    hydra_spec_session *s = calloc(1, sizeof *s);
    if (!s) return hydra_set_error(HYDRA_ERR_NOMEM, "spec: out of memory");
    s->target = target;
    s->draft = draft;
    s->opts = *opts;
    s->k = opts->k;
    s->V = target->cfg.vocab_size;
    hydra_rng_seed(&s->rng, opts->seed);
    size_t V = (size_t)s->V, k = (size_t)s->k;
    hydra_status st = HYDRA_OK;
    if (!st) st = hydra_state_create(target, &s->tst);
    if (!st) st = hydra_state_create(draft, &s->dst);
    if (!st) st = hydra_journal_create(target, s->k + 1, &s->tjr);
    if (!st) st = hydra_journal_create(draft, s->k + 1, &s->djr); /* <= 2 pending + k-1 drafted */
    if (!st) {
        s->tlogits = malloc((k + 1) * V * sizeof(float));
        s->dlogits = malloc(V * sizeof(float));
        s->q = malloc(k * V * sizeof(float));
        s->p = malloc(V * sizeof(float));
        s->r = malloc(V * sizeof(float));
        if (!s->tlogits || !s->dlogits || !s->q || !s->p || !s->r) st = hydra_set_error(HYDRA_ERR_NOMEM, "spec: out of memory");
    }
    if (st) {
        hydra_spec_session_free(s);
        return st;
    }
    *out = s;
    return HYDRA_OK;
}

hydra_status hydra_spec_prefill(hydra_spec_session *s, const int32_t *prompt, size_t n) {
    if (!s || !prompt || n == 0) return hydra_set_error(HYDRA_ERR_ARG, "spec: the prompt must hold at least one token");
    if (n > (size_t)1 << 30) return hydra_set_error(HYDRA_ERR_ARG, "spec: prompt too long");
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->V)
            return hydra_set_error(HYDRA_ERR_ARG, "spec: prompt token %d at index %zu is outside the vocabulary [0, %d)",
                                   prompt[i], i, s->V);
    hydra_state_reset(s->tst);
    hydra_state_reset(s->dst);
    s->n_dpend = 0;
    if (n > 1) {
        HYDRA_CHECK(hydra_forward(s->target, prompt, 1, (int)(n - 1), &s->tst, HYDRA_LOGITS_NONE, NULL));
        HYDRA_CHECK(hydra_forward(s->draft, prompt, 1, (int)(n - 1), &s->dst, HYDRA_LOGITS_NONE, NULL));
    }
    s->tpend = s->dpend[0] = prompt[n - 1];
    s->n_dpend = 1;
    return HYDRA_OK;
}

_Thread_local int hydra_spec_fault_residual;

double hydra_spec_accept_prob(float p, float q) { return q > 0.0f ? fmin(1.0, (double)p / (double)q) : 0.0; }

void hydra_spec_residual(const float *p, const float *q, int V, int broken, float *r) {
    double z = 0.0;
    for (int i = 0; i < V; i++) z += fmax(0.0, (double)p[i] - (double)q[i]);
    if (broken || !(z > 0.0)) { /* a rejection needs p(x) < q(x), so z > 0 up to rounding */
        memcpy(r, p, (size_t)V * sizeof *r);
        return;
    }
    for (int i = 0; i < V; i++) r[i] = (float)(fmax(0.0, (double)p[i] - (double)q[i]) / z);
}

hydra_status hydra_spec_round(hydra_spec_session *s, int k_round, int32_t *out, int *n_out) {
    if (!s || !out || !n_out) return hydra_set_error(HYDRA_ERR_ARG, "spec_round: NULL argument");
    *n_out = 0;
    if (s->n_dpend == 0) return hydra_set_error(HYDRA_ERR_ARG, "spec_round: call hydra_spec_prefill first");
    if (k_round == 0) k_round = s->k;
    if (k_round < 1 || k_round > s->k)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_round: k_round must be in 0..%d (got %d)", s->k, k_round);
    const int V = s->V;
    const hydra_sample_opts *so = &s->opts.sample;
    const double min_p = s->opts.min_draft_prob;
    int32_t toks[HYDRA_SPEC_MAX_K + 1]; /* [pending, x_1..x_k] for the target */
    toks[0] = s->tpend;
    /* 1. Draft proposes x_1..x_k (its journal records pending + x_1..x_{k-1}).
     * Adaptive rounds stop at k = i once the draft's top probability after
     * x_i is below min_draft_prob: a stopping rule that looks only at the
     * draft's own outputs leaves every accept/reject step, hence the output
     * law, unchanged. Then the draft has consumed x_1..x_k (dcons = k). */
    int k = k_round, dcons = k_round - 1;
    const double t0 = hydra_now_seconds();
    HYDRA_CHECK(hydra_journal_begin(s->djr, s->dst));
    HYDRA_CHECK(hydra_forward_journaled(s->draft, s->dpend, s->n_dpend, s->dst, HYDRA_LOGITS_LAST, s->dlogits, s->djr));
    s->st.draft_steps++;
    for (int i = 0; i < k; i++) {
        if (i > 0) {
            HYDRA_CHECK(hydra_forward_journaled(s->draft, &toks[i], 1, s->dst, HYDRA_LOGITS_LAST, s->dlogits, s->djr));
            s->st.draft_steps++;
            if (min_p > 0 && hydra_top_prob(s->dlogits, V) < min_p) {
                k = dcons = i;
                break;
            }
        }
        float *qi = s->q + (size_t)i * V;
        HYDRA_CHECK(hydra_sample_probs(s->dlogits, V, so, qi));
        toks[i + 1] = hydra_sample_draw(qi, V, &s->rng);
    }
    /* 2. Target scores all k in one journaled forward over [pending, x_1..x_k]. */
    const double t1 = hydra_now_seconds();
    HYDRA_CHECK(hydra_journal_begin(s->tjr, s->tst));
    HYDRA_CHECK(hydra_forward_journaled(s->target, toks, k + 1, s->tst, HYDRA_LOGITS_ALL, s->tlogits, s->tjr));
    const double t2 = hydra_now_seconds();
    s->st.draft_seconds += t1 - t0;
    s->st.verify_seconds += t2 - t1;
    s->st.target_forwards++;
    s->st.rounds++;
    s->st.proposed += (uint64_t)k;
    /* 3. Accept / reject. */
    int j = 0;
    int32_t y = -1;
    for (; j < k; j++) {
        HYDRA_CHECK(hydra_sample_probs(s->tlogits + (size_t)j * V, V, so, s->p));
        const float *qi = s->q + (size_t)j * V;
        int32_t x = toks[j + 1];
        if (hydra_rng_uniform(&s->rng) < hydra_spec_accept_prob(s->p[x], qi[x])) continue;
        hydra_spec_residual(s->p, qi, V, hydra_spec_fault_residual, s->r);
        y = hydra_sample_draw(s->r, V, &s->rng);
        break;
    }
    if (j == k) { /* all accepted: bonus token from p_{k+1} */
        HYDRA_CHECK(hydra_sample_probs(s->tlogits + (size_t)k * V, V, so, s->p));
        y = hydra_sample_draw(s->p, V, &s->rng);
    } else {
        s->st.rejected++;
    }
    s->st.accepted += (uint64_t)j;
    /* 4. Roll back to the accepted prefix: the target keeps pending + x_1..x_j,
     * the draft its pending tokens + x_1..x_j (it consumed x_1..x_dcons). */
    HYDRA_CHECK(hydra_journal_rollback(s->tjr, s->tst, j + 1));
    if (j < dcons) HYDRA_CHECK(hydra_journal_rollback(s->djr, s->dst, s->n_dpend + j));
    s->tpend = y;
    if (j > dcons) { /* all k accepted and x_k never consumed: it stays pending */
        s->dpend[0] = toks[k];
        s->dpend[1] = y;
        s->n_dpend = 2;
    } else {
        s->dpend[0] = y;
        s->n_dpend = 1;
    }
    for (int i = 0; i < j; i++) out[i] = toks[i + 1];
    out[j] = y;
    *n_out = j + 1;
    s->st.accept_seconds += hydra_now_seconds() - t2;
    s->st.generated += (uint64_t)(j + 1);
    return HYDRA_OK;
}

hydra_status hydra_spec_session_states(const hydra_spec_session *s, hydra_state *target_out,
                                       hydra_state *draft_out) {
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "spec_session_states: session is NULL");
    if (s->n_dpend == 0) return hydra_set_error(HYDRA_ERR_ARG, "spec_session_states: call hydra_spec_prefill first");
    if (target_out) {
        HYDRA_CHECK(hydra_state_copy(target_out, s->tst));
        HYDRA_CHECK(hydra_step(s->target, target_out, s->tpend, NULL));
    }
    if (draft_out) {
        HYDRA_CHECK(hydra_state_copy(draft_out, s->dst));
        HYDRA_CHECK(hydra_forward(s->draft, s->dpend, 1, s->n_dpend, &draft_out, HYDRA_LOGITS_NONE, NULL));
    }
    return HYDRA_OK;
}

void hydra_spec_session_stats(const hydra_spec_session *s, hydra_spec_stats *out) {
    if (!s || !out) return;
    *out = s->st;
    hydra_spec_stats_derive(out);
}

void hydra_spec_stats_derive(hydra_spec_stats *s) {
    s->acceptance_rate = s->proposed ? (double)s->accepted / (double)s->proposed : 0.0;
    uint64_t evaluated = s->accepted + s->rejected;
    s->alpha = evaluated ? (double)s->accepted / (double)evaluated : 0.0;
    s->tokens_per_target_forward = s->target_forwards ? (double)s->generated / (double)s->target_forwards : 0.0;
}

hydra_status hydra_spec_generate(const hydra_model *target, const hydra_model *draft,
                                 const int32_t *prompt, size_t n_prompt, const hydra_spec_opts *opts,
                                 int32_t *out, size_t cap, size_t *n_out, hydra_spec_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!n_out) return hydra_set_error(HYDRA_ERR_ARG, "spec_generate: n_out is NULL");
    *n_out = 0;
    HYDRA_CHECK(hydra_spec_check_pair(target, draft));
    HYDRA_CHECK(check_opts(opts));
    if (!prompt || n_prompt == 0) return hydra_set_error(HYDRA_ERR_ARG, "spec_generate: the prompt must hold at least one token");
    if (opts->max_new_tokens < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_generate: max_new_tokens must be >= 1 (got %d)", opts->max_new_tokens);
    if (!out || cap < (size_t)opts->max_new_tokens)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_generate: output buffer holds %zu tokens, max_new_tokens is %d",
                               out ? cap : 0, opts->max_new_tokens);
    hydra_spec_session *s = NULL;
    HYDRA_CHECK(hydra_spec_session_create(target, draft, opts, &s));
    const double t0 = hydra_now_seconds();
    hydra_status st = hydra_spec_prefill(s, prompt, n_prompt);
    s->st.prefill_seconds = hydra_now_seconds() - t0;
    int32_t buf[HYDRA_SPEC_MAX_K + 1];
    int stop = 0;
    while (!st && !stop && *n_out < (size_t)opts->max_new_tokens) {
        /* Never propose more than can be emitted: a round commits <= k+1 tokens
         * (tokens past the limit would be dropped; the prefix stays exact). */
        int left = opts->max_new_tokens - (int)*n_out;
        int kr = left - 1 < opts->k ? left - 1 : opts->k;
        if (kr < 1) kr = 1;
        int n = 0;
        if ((st = hydra_check_cancel("spec_generate")) || (st = hydra_spec_round(s, kr, buf, &n))) break;
        int i = 0;
        for (; i < n && !stop && *n_out < (size_t)opts->max_new_tokens; i++) {
            int32_t tok = buf[i];
            out[(*n_out)++] = tok;
            if (opts->on_token && opts->on_token(tok, opts->user)) stop = 1;
            for (int j = 0; j < opts->n_stop_tokens; j++) stop |= tok == opts->stop_tokens[j];
        }
        s->st.generated -= (uint64_t)(n - i); /* committed but not emitted (stop) */
    }
    if (stats) hydra_spec_session_stats(s, stats);
    hydra_spec_session_free(s);
    return st;
}
