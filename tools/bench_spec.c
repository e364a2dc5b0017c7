/* bench_spec.c — speculative decoding: plain vs speculative decode speed for
 * k in {2, 4, 6} at temperature 0 and 0.7, side by side in one run (medians
 * of several repetitions), with the measured per-token acceptance alpha, the
 * draft/target cost ratio c (median single-token step times) and the
 * predicted speedup of Leviathan et al. (2023),
 *   (1 - alpha^(k+1)) / ((1 - alpha) (c k + 1)),
 * beside the measured one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_spec.h"

/* Median single-token step time after a short prefill. */
static double step_time(const hydra_model *m, const int32_t *prompt, int np, int steps) {
    hydra_state *s = NULL;
    int V = hydra_model_config(m)->vocab_size;
    float *lg = malloc((size_t)V * sizeof *lg);
    double t[64];
    if (steps > 64) steps = 64;
    if (!lg || hydra_state_create(m, &s) != HYDRA_OK) {
        free(lg);
        return NAN;
    }
    hydra_forward(m, prompt, 1, np, &s, HYDRA_LOGITS_LAST, lg);
    int32_t tok = prompt[np - 1];
    for (int i = 0; i < 3; i++) hydra_step(m, s, tok, lg);
    for (int i = 0; i < steps; i++) {
        double t0 = cli_now();
        hydra_step(m, s, tok, lg);
        t[i] = cli_now() - t0;
        tok = (int32_t)((tok * 31 + 7) % V);
    }
    hydra_state_free(s);
    free(lg);
    return cli_median(t, steps);
}

static double predicted_speedup(double a, double c, int k) {
    double tokens = a >= 1.0 ? (double)(k + 1) : (1.0 - pow(a, k + 1)) / (1.0 - a);
    return tokens / (c * k + 1.0);
}

void hydra_bench_spec(FILE *out, const char *target_path, const char *draft_path, int n_tokens) {
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
    const int reps = 3, V = hydra_model_config(tm)->vocab_size;
    const char *text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
    int np = (int)strlen(text);
    int32_t *prompt = malloc((size_t)np * sizeof *prompt), *buf = malloc((size_t)n_tokens * sizeof *buf);
    for (int i = 0; i < np; i++) prompt[i] = (int32_t)((unsigned char)text[i] % (unsigned)V);
    double tt = step_time(tm, prompt, np, 32), td = step_time(dm, prompt, np, 32), c = td / tt;
    fprintf(out, "speculative decoding — target %s (%zu params), draft %s (%zu params), %s, %d threads\n", target_path,
            hydra_model_n_params(tm), draft_path, hydra_model_n_params(dm), hydra_blas_info(), hydra_get_num_threads());
    fprintf(out, "step time: target %.3f ms, draft %.3f ms -> c = %.3f; %d new tokens after a %d-token prompt, "
                 "median of %d runs\n\n", 1e3 * tt, 1e3 * td, c, n_tokens, np, reps);
    fprintf(out, "%-6s %-5s %10s %10s %7s %7s %9s %9s %9s\n", "temp", "k", "plain t/s", "spec t/s", "alpha", "acc.rate",
            "tok/fwd", "predicted", "measured");
    const float temps[2] = {0.0f, 0.7f};
    const int ks[3] = {2, 4, 6};
    for (int ti = 0; ti < 2; ti++) {
        double tp[8];
        hydra_gen_opts g = hydra_gen_opts_default();
        g.sample.temperature = temps[ti];
        g.max_new_tokens = n_tokens;
        g.seed = 1;
        size_t n_out = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = cli_now();
            st = hydra_generate(tm, NULL, prompt, (size_t)np, &g, buf, (size_t)n_tokens, &n_out);
            tp[r] = cli_now() - t0;
            if (st) {
                cli_fail("bench", "plain generation", st);
                goto done;
            }
        }
        double plain = (double)n_out / cli_median(tp, reps);
        for (int ki = 0; ki < 3; ki++) {
            hydra_spec_opts o = hydra_spec_opts_default();
            o.k = ks[ki];
            o.sample = g.sample;
            o.seed = 1;
            o.max_new_tokens = n_tokens;
            hydra_spec_stats ss;
            double ts[8];
            for (int r = 0; r < reps; r++) {
                double t0 = cli_now();
                st = hydra_spec_generate(tm, dm, prompt, (size_t)np, &o, buf, (size_t)n_tokens, &n_out, &ss);
                ts[r] = cli_now() - t0;
                if (st) {
                    cli_fail("bench", "speculative generation", st);
                    goto done;
                }
            }
            double spec = (double)n_out / cli_median(ts, reps);
            fprintf(out, "%-6.1f %-5d %10.1f %10.1f %7.3f %7.3f %9.2f %8.2fx %8.2fx\n", temps[ti], ks[ki], plain, spec,
                    ss.alpha, ss.acceptance_rate, ss.tokens_per_target_forward,
                    predicted_speedup(ss.alpha, c, ks[ki]), spec / plain);
        }
    }
    fprintf(out, "\n(alpha = accepted / (accepted + rejections), the per-token acceptance of the formula;\n"
                 " acc.rate = accepted / proposed; predicted = (1 - alpha^(k+1)) / ((1 - alpha)(c k + 1));\n"
                 " measured = speculative tokens/s / plain tokens/s, both including the same prompt prefill.)\n");
done:
    free(prompt);
    free(buf);
    hydra_model_free(tm);
    hydra_model_free(dm);
}
