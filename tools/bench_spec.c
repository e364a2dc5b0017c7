/* bench_spec.c — speculative decoding: plain vs speculative decode speed for
 * k in {2, 4, 6} at temperature 0 and 0.7, side by side in one run, over
 * several prompts (hydra_spec_measure_speed_prompts: each repetition runs
 * every prompt plain, then speculatively; the speedup is the median of the
 * repetitions' paired ratios, with their range), with the measured
 * per-token acceptance alpha pooled over the prompts, the
 * draft/target cost ratio c (median single-token step times) and the
 * predicted speedup of Leviathan et al. (2023),
 *   (1 - alpha^(k+1)) / ((1 - alpha) (c k + 1)),
 * beside the measured one; then adaptive rounds (hydra_spec_opts.min_draft_prob)
 * of up to adaptive_k proposals for each threshold asked for. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_spec.h"

/* Openings of speeches from four plays of tinyshakespeare. */
static const char *const SPEC_PROMPTS[] = {
    "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "QUEEN ELIZABETH:\nMy words are dull; O, quicken them with thine!\n",
    "KING RICHARD II:\nOld John of Gaunt, time-honour'd Lancaster,\n",
    "ROMEO:\nIs the day so young?\n",
};
#define N_SPEC_PROMPTS (int)(sizeof SPEC_PROMPTS / sizeof SPEC_PROMPTS[0])

void hydra_bench_spec(FILE *out, const char *target_path, const char *draft_path, int n_tokens, const float *min_ps,
                      int n_min_ps, int adaptive_k, int reps) {
    hydra_model *tm = NULL, *dm = NULL;
    hydra_status st;
    if ((st = hydra_model_load(target_path, &tm)) != HYDRA_OK) {
        cli_fail("bench", target_path, st);
        return;
    }
    if ((st = hydra_model_load(draft_path, &dm)) != HYDRA_OK || (st = hydra_spec_check_pair(tm, dm)) != HYDRA_OK) {
        cli_fail("bench", draft_path, st);
        hydra_model_free(tm);
        hydra_model_free(dm);
        return;
    }
    if (n_tokens < 8) n_tokens = 8;
    if (reps < 1) reps = 1;
    const int V = hydra_model_config(tm)->vocab_size;
    int32_t *prompts[N_SPEC_PROMPTS] = {0};
    size_t lens[N_SPEC_PROMPTS];
    for (int p = 0; p < N_SPEC_PROMPTS; p++) {
        lens[p] = strlen(SPEC_PROMPTS[p]);
        prompts[p] = malloc(lens[p] * sizeof *prompts[p]);
        if (!prompts[p]) {
            fprintf(stderr, "hydra bench: out of memory\n");
            goto done;
        }
        for (size_t i = 0; i < lens[p]; i++) prompts[p][i] = (int32_t)((unsigned char)SPEC_PROMPTS[p][i] % (unsigned)V);
    }
    size_t shortest = lens[0], longest = lens[0];
    for (int p = 1; p < N_SPEC_PROMPTS; p++) {
        if (lens[p] < shortest) shortest = lens[p];
        if (lens[p] > longest) longest = lens[p];
    }
    const int32_t *prompt = prompts[0];
    const size_t np = lens[0];
    double tt = NAN, td = NAN;
    if ((st = hydra_spec_step_seconds(tm, prompt, np, 32, &tt)) ||
        (st = hydra_spec_step_seconds(dm, prompt, np, 32, &td))) {
        cli_fail("bench", "step timing", st);
        goto done;
    }
    double c = td / tt;
    fprintf(out, "speculative decoding — target %s (%zu params), draft %s (%zu params), %s, %d threads\n", target_path,
            hydra_model_n_params(tm), draft_path, hydra_model_n_params(dm), hydra_blas_info(), hydra_get_num_threads());
    fprintf(out, "step time: target %.3f ms, draft %.3f ms -> c = %.3f; %d new tokens after each of %d prompts "
                 "(%zu-%zu tokens), %d repetitions\n\n", 1e3 * tt, 1e3 * td, c, n_tokens, N_SPEC_PROMPTS, shortest, longest, reps);
    fprintf(out, "%-6s %-11s %10s %10s %7s %7s %9s %9s %9s %11s %7s   %s\n", "temp", "k", "plain t/s", "spec t/s", "alpha",
            "acc.rate", "tok/fwd", "predicted", "measured", "range", "e2e", "ms per round: draft / verify / accept+rollback");
    const float temps[2] = {0.0f, 0.7f};
    const int ks[3] = {2, 4, 6};
    hydra_spec_speed prefill_note;
    memset(&prefill_note, 0, sizeof prefill_note);
    for (int ti = 0; ti < 2; ti++) {
        for (int ki = 0; ki < 3 + n_min_ps; ki++) {
            /* fixed k, then adaptive rounds: up to adaptive_k, stopping where the draft's top p < min_p */
            hydra_spec_opts o = hydra_spec_opts_default();
            int adaptive = ki >= 3;
            o.k = adaptive ? adaptive_k : ks[ki];
            o.min_draft_prob = adaptive ? min_ps[ki - 3] : 0.0f;
            o.sample.temperature = temps[ti];
            o.seed = 1;
            o.max_new_tokens = n_tokens;
            hydra_spec_speed sp;
            if ((st = hydra_spec_measure_speed_prompts(tm, dm, (const int32_t *const *)prompts, lens, N_SPEC_PROMPTS, &o,
                                                       reps, &sp))) {
                cli_fail("bench", "speculative vs plain generation", st);
                goto done;
            }
            double nr = sp.stats.rounds ? (double)sp.stats.rounds : 1.0;
            char kcol[16], pred[16];
            if (adaptive) {
                snprintf(kcol, sizeof kcol, "<=%d p%.2f", o.k, (double)o.min_draft_prob);
                snprintf(pred, sizeof pred, "%.2f/rd", (double)sp.stats.proposed / nr); /* mean proposals per round */
            } else {
                snprintf(kcol, sizeof kcol, "%d", o.k);
                snprintf(pred, sizeof pred, "%.2fx", hydra_spec_predicted_speedup(sp.alpha, c, o.k));
            }
            char range[24];
            snprintf(range, sizeof range, "%.2f-%.2f", sp.decode_speedup_min, sp.decode_speedup_max);
            fprintf(out, "%-6.1f %-11s %10.1f %10.1f %7.3f %7.3f %9.2f %9s %8.2fx %11s %6.2fx   %.2f / %.2f / %.2f\n",
                    temps[ti], kcol, sp.plain_decode_tps, sp.spec_decode_tps, sp.alpha, sp.acceptance_rate,
                    sp.tokens_per_target_forward, pred, sp.decode_speedup, range, sp.speedup, 1e3 * sp.stats.draft_seconds / nr,
                    1e3 * sp.stats.verify_seconds / nr, 1e3 * sp.stats.accept_seconds / nr);
            if (ti == 0 && ki == 0)
                prefill_note = sp; /* the prompt prefill, the same for every row */
        }
    }
    fprintf(out, "\nprompt prefill per prompt (excluded from the decode columns): plain %.1f ms, speculative %.1f ms (target + draft)\n",
            1e3 * prefill_note.plain_prefill_seconds, 1e3 * prefill_note.spec_prefill_seconds);
    fprintf(out, "\n(alpha = accepted / (accepted + rejections), the per-token acceptance of the formula;\n"
                 " acc.rate = accepted / proposed; predicted = (1 - alpha^(k+1)) / ((1 - alpha)(c k + 1));\n"
                 " plain / spec t/s: decode tokens/s, generated tokens / (time - prompt prefill), medians of repetitions;\n"
                 " measured = the median over repetitions of each one's paired ratio (every prompt plain, then\n"
                 " speculative), range = the lowest and highest of those ratios;\n"
                 " e2e = the same ratio with the prompt prefill included (the same work in both);\n"
                 " alpha, acc.rate, tok/fwd: pooled over the prompts of the last repetition;\n"
                 " ms per round: wall time of the last repetition's phases; compare with the target step time;\n"
                 " <=K pX: adaptive rounds of up to K proposals, ending where the draft's top probability < X;\n"
                 " their predicted column shows the mean proposals per round instead.)\n");
done:
    for (int p = 0; p < N_SPEC_PROMPTS; p++) free(prompts[p]);
    hydra_model_free(tm);
    hydra_model_free(dm);
}
