/* spec_speed.c — wall-clock speed of speculative vs plain decoding
 * (hydralm_spec.h): the measurement behind `hydra bench --spec-*` and claim 7. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "infer/spec_internal.h"

hydra_status hydra_spec_step_seconds(const hydra_model *m, const int32_t *prompt, size_t n, int steps,
                                     double *seconds) {
    if (!m || !prompt || !n || steps < 1 || !seconds) return hydra_set_error(HYDRA_ERR_ARG, "spec_step_seconds: bad arguments");
    const int V = m->cfg.vocab_size;
    hydra_state *s = NULL;
    float *lg = malloc((size_t)V * sizeof *lg);
    double *t = malloc((size_t)steps * sizeof *t);
    hydra_status st = lg && t ? hydra_state_create(m, &s) : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    if (!st) st = hydra_forward(m, prompt, 1, (int)n, &s, HYDRA_LOGITS_LAST, lg);
    int32_t tok = prompt[n - 1];
    for (int i = 0; !st && i < 3; i++) st = hydra_step(m, s, tok, lg);
    for (int i = 0; !st && i < steps; i++) {
        double t0 = hydra_now_seconds();
        st = hydra_step(m, s, tok, lg);
        t[i] = hydra_now_seconds() - t0;
        tok = (int32_t)((tok * 31 + 7) % V);
    }
    if (!st) *seconds = hydra_median(t, steps);
    hydra_state_free(s);
    free(lg), free(t);
    return st;
}

double hydra_spec_predicted_speedup(double a, double c, int k) {
    double tokens = a >= 1.0 ? (double)(k + 1) : (1.0 - pow(a, k + 1)) / (1.0 - a);
    return tokens / (c * k + 1.0);
}

/* Pools one speculative run's counters into acc (the per-phase seconds too). */
static void stats_add(hydra_spec_stats *acc, const hydra_spec_stats *s) {
    acc->rounds += s->rounds;
    acc->proposed += s->proposed;
    acc->accepted += s->accepted;
    acc->rejected += s->rejected;
    acc->generated += s->generated;
    acc->target_forwards += s->target_forwards;
    acc->draft_steps += s->draft_steps;
    acc->draft_seconds += s->draft_seconds;
    acc->verify_seconds += s->verify_seconds;
    acc->accept_seconds += s->accept_seconds;
    acc->prefill_seconds += s->prefill_seconds;
}

#define SPEED_MAX_REPS 64
#define SPEED_MAX_PROMPTS 16

hydra_status hydra_spec_measure_speed_prompts(const hydra_model *target, const hydra_model *draft,
                                              const int32_t *const *prompts, const size_t *n_prompts, int n_p,
                                              const hydra_spec_opts *opts, int reps, hydra_spec_speed *out) {
    if (!target || !draft || !prompts || !n_prompts || !opts || !out || reps < 1 || reps > SPEED_MAX_REPS ||
        n_p < 1 || n_p > SPEED_MAX_PROMPTS)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_measure_speed: bad arguments (reps in 1..%d, prompts in 1..%d)",
                               SPEED_MAX_REPS, SPEED_MAX_PROMPTS);
    for (int p = 0; p < n_p; p++)
        if (!prompts[p] || n_prompts[p] == 0)
            return hydra_set_error(HYDRA_ERR_ARG, "spec_measure_speed: prompt %d is empty", p);
    const size_t n = (size_t)opts->max_new_tokens;
    int32_t *buf = malloc(n * sizeof *buf);
    /* per repetition, summed over prompts: total / prefill time, plain and speculative */
    double tp[SPEED_MAX_REPS], ts[SPEED_MAX_REPS], pp[SPEED_MAX_REPS], ps[SPEED_MAX_REPS];
    double re[SPEED_MAX_REPS], rd[SPEED_MAX_REPS], dp[SPEED_MAX_REPS], ds[SPEED_MAX_REPS];
    hydra_state *pst = NULL; /* plain: prompt[0..n-1) prefilled into it, then hydra_generate decodes */
    size_t n_plain = 0, n_spec = 0;
    hydra_spec_stats pooled;
    memset(&pooled, 0, sizeof pooled);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.sample = opts->sample;
    g.seed = opts->seed;
    g.max_new_tokens = opts->max_new_tokens;
    hydra_status st = buf ? hydra_spec_check_pair(target, draft) : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    if (!st) st = hydra_state_create(target, &pst);
    for (int r = 0; !st && r < reps; r++) {
        tp[r] = ts[r] = pp[r] = ps[r] = 0.0;
        n_plain = n_spec = 0;
        memset(&pooled, 0, sizeof pooled);
        for (int p = 0; !st && p < n_p; p++) {
            const int32_t *prompt = prompts[p];
            const size_t np = n_prompts[p];
            /* plain: the same work as hydra_generate(prompt), with the prefill of
             * all but the last prompt token timed apart (the last one is the
             * first decode step, as in the speculative session) */
            hydra_state_reset(pst);
            double t0 = hydra_now_seconds();
            if (np > 1 && (st = hydra_forward(target, prompt, 1, (int)(np - 1), &pst, HYDRA_LOGITS_NONE, NULL)))
                break;
            double t1 = hydra_now_seconds();
            size_t got = 0;
            if ((st = hydra_generate(target, pst, prompt + np - 1, 1, &g, buf, n, &got))) break;
            n_plain += got;
            double t2 = hydra_now_seconds();
            hydra_spec_stats ss;
            if ((st = hydra_spec_generate(target, draft, prompt, np, opts, buf, n, &got, &ss))) break;
            n_spec += got;
            ts[r] += hydra_now_seconds() - t2;
            tp[r] += t2 - t0;
            pp[r] += t1 - t0;
            ps[r] += ss.prefill_seconds;
            stats_add(&pooled, &ss);
        }
        dp[r] = tp[r] - pp[r];
        ds[r] = ts[r] - ps[r];
        re[r] = ((double)n_spec / ts[r]) / ((double)n_plain / tp[r]); /* this repetition's paired ratios */
        rd[r] = ((double)n_spec / ds[r]) / ((double)n_plain / dp[r]);
    }
    free(buf);
    hydra_state_free(pst);
    if (st) return st;
    memset(out, 0, sizeof *out);
    out->decode_speedup_min = out->decode_speedup_max = rd[0];
    for (int r = 1; r < reps; r++) {
        if (rd[r] < out->decode_speedup_min) out->decode_speedup_min = rd[r];
        if (rd[r] > out->decode_speedup_max) out->decode_speedup_max = rd[r];
    }
    out->plain_tps = (double)n_plain / hydra_median(tp, reps);
    out->spec_tps = (double)n_spec / hydra_median(ts, reps);
    out->speedup = hydra_median(re, reps);
    out->plain_decode_tps = (double)n_plain / hydra_median(dp, reps);
    out->spec_decode_tps = (double)n_spec / hydra_median(ds, reps);
    out->decode_speedup = hydra_median(rd, reps);
    out->plain_prefill_seconds = hydra_median(pp, reps) / n_p;
    out->spec_prefill_seconds = hydra_median(ps, reps) / n_p;
    hydra_spec_stats *o = &out->stats;
    *o = pooled;
    hydra_spec_stats_derive(o);
    out->alpha = o->alpha;
    out->acceptance_rate = o->acceptance_rate;
    out->tokens_per_target_forward = o->tokens_per_target_forward;
    out->tokens = n_spec;
    return HYDRA_OK;
}

hydra_status hydra_spec_measure_speed(const hydra_model *target, const hydra_model *draft, const int32_t *prompt,
                                      size_t n_prompt, const hydra_spec_opts *opts, int reps, hydra_spec_speed *out) {
    return hydra_spec_measure_speed_prompts(target, draft, &prompt, &n_prompt, 1, opts, reps, out);
}
