/* spec_speed.c — wall-clock speed of speculative vs plain decoding
 * (hydralm_spec.h): the measurement behind `hydra bench --spec-*` and claim 7. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "hydralm_spec.h"

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

hydra_status hydra_spec_measure_speed(const hydra_model *target, const hydra_model *draft, const int32_t *prompt,
                                      size_t n_prompt, const hydra_spec_opts *opts, int reps, hydra_spec_speed *out) {
    if (!target || !draft || !prompt || !opts || !out || reps < 1 || reps > 64)
        return hydra_set_error(HYDRA_ERR_ARG, "spec_measure_speed: bad arguments (reps in 1..64)");
    const size_t n = (size_t)opts->max_new_tokens;
    int32_t *buf = malloc(n * sizeof *buf);
    double tp[64], ts[64], dp[64], ds[64], pp[64], ps[64];
    hydra_state *pst = NULL; /* plain: prompt[0..n-1) prefilled into it, then hydra_generate decodes */
    size_t n_plain = 0, n_spec = 0;
    hydra_spec_stats ss;
    memset(&ss, 0, sizeof ss);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.sample = opts->sample;
    g.seed = opts->seed;
    g.max_new_tokens = opts->max_new_tokens;
    hydra_status st = buf ? hydra_spec_check_pair(target, draft) : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    if (!st) st = hydra_state_create(target, &pst);
    for (int r = 0; !st && r < reps; r++) {
        /* plain: the same work as hydra_generate(prompt), with the prefill of
         * all but the last prompt token timed apart (the last one is the
         * first decode step, as in the speculative session) */
        hydra_state_reset(pst);
        double t0 = hydra_now_seconds();
        if (n_prompt > 1 &&
            (st = hydra_forward(target, prompt, 1, (int)(n_prompt - 1), &pst, HYDRA_LOGITS_NONE, NULL)))
            break;
        double t1 = hydra_now_seconds();
        if ((st = hydra_generate(target, pst, prompt + n_prompt - 1, 1, &g, buf, n, &n_plain))) break;
        double t2 = hydra_now_seconds();
        if ((st = hydra_spec_generate(target, draft, prompt, n_prompt, opts, buf, n, &n_spec, &ss))) break;
        ts[r] = hydra_now_seconds() - t2;
        tp[r] = t2 - t0;
        pp[r] = t1 - t0;
        dp[r] = t2 - t1;
        ps[r] = ss.prefill_seconds;
        ds[r] = ts[r] - ss.prefill_seconds;
    }
    free(buf);
    hydra_state_free(pst);
    if (st) return st;
    memset(out, 0, sizeof *out);
    out->plain_tps = (double)n_plain / hydra_median(tp, reps);
    out->spec_tps = (double)n_spec / hydra_median(ts, reps);
    out->speedup = out->spec_tps / out->plain_tps;
    out->plain_decode_tps = (double)n_plain / hydra_median(dp, reps);
    out->spec_decode_tps = (double)n_spec / hydra_median(ds, reps);
    out->decode_speedup = out->spec_decode_tps / out->plain_decode_tps;
    out->plain_prefill_seconds = hydra_median(pp, reps);
    out->spec_prefill_seconds = hydra_median(ps, reps);
    out->alpha = ss.alpha;
    out->acceptance_rate = ss.acceptance_rate;
    out->tokens_per_target_forward = ss.tokens_per_target_forward;
    out->tokens = n_spec;
    out->stats = ss;
    return HYDRA_OK;
}
