/* bench_quant.c — quantised decode (`hydra bench --quant`, issue 20): the
 * same model held as f32, bf16, int8 and int4, decoded one token at a time,
 * the four interleaved within each repetition so that a noisy, shared
 * machine slows them alike; bytes read per token, tokens/s (min and median
 * of the repetitions' per-step medians) and the ratio to f32 of this run.
 * With a checkpoint, quality against f32 on held-out text: the loss through
 * the decode path (hydra_step, whose matmuls quantise activations too), the
 * loss through the prefill path (hydra_eval_stream_loss: dequantised
 * weights, f32 activations) and teacher-forced greedy agreement (the share
 * of positions whose argmax equals f32's). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_ops.h"
#include "hydralm_train.h"

enum { NV = 4 };
static const char *const VNAME[NV] = {"f32", "bf16", "int8", "int4"};

/* The four variants of the checkpoint at path. */
static int load_variants(const char *path, hydra_model **v) {
    hydra_status st = hydra_model_load(path, &v[0]);
    if (!st) st = hydra_model_load_bf16(path, &v[1]);
    if (!st) st = hydra_model_load_quant(path, HYDRA_QUANT_INT8, &v[2]);
    if (!st) st = hydra_model_load_quant(path, HYDRA_QUANT_INT4, &v[3]);
    return st ? cli_fail("bench", path, st) : 0;
}
static void free_variants(hydra_model **v) {
    for (int i = 0; i < NV; i++) hydra_model_free(v[i]), v[i] = NULL;
}

/* Bytes a decode step reads: the weights it multiplies by (a reduced model's
 * f32 embedding is only looked up, one row, when its head has its own copy),
 * the small f32 vectors, and the state read and written. */
static double bytes_per_token(const hydra_model *m) {
    const hydra_config *c = hydra_model_config(m);
    double w = (double)hydra_model_weight_bytes(m);
    if ((hydra_model_is_bf16(m) || hydra_model_quant(m)) && c->tie_embeddings)
        w -= 4.0 * c->vocab_size * (double)c->d_model;
    return w + 2.0 * (double)hydra_model_state_bytes(m);
}

#define QB_REPS 3
static int speed_table(FILE *out, const char *name, const hydra_config *cfg, int steps) {
    const char *path = "/tmp/hydra-bench-quant.safetensors";
    hydra_model *m = NULL, *v[NV] = {0};
    hydra_state *s[NV] = {0};
    hydra_status st = hydra_model_create(cfg, 1, &m);
    if (!st) st = hydra_model_save(m, path);
    hydra_model_free(m);
    if (st) return cli_fail("bench", "writing the f32 checkpoint", st);
    int rc = load_variants(path, v);
    remove(path);
    const int V = cfg->vocab_size, T0 = 64;
    float *logits = malloc((size_t)V * sizeof *logits);
    double *td = malloc((size_t)steps * sizeof *td), per[NV][QB_REPS];
    unsigned long long bo[NV] = {0}; /* contention back-offs started during each variant's steps */
    int32_t prompt[64];
    for (int i = 0; i < T0; i++) prompt[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
    for (int i = 0; !rc && i < NV; i++) {
        st = hydra_state_create(v[i], &s[i]);
        if (!st) st = hydra_forward(v[i], prompt, 1, T0, &s[i], HYDRA_LOGITS_LAST, logits);
        if (st) rc = cli_fail("bench", "prefill", st);
    }
    for (int r = 0; !rc && r < QB_REPS; r++)
        for (int i = 0; i < NV; i++) {
            int32_t t = prompt[T0 - 1];
            for (int k = 0; k < 3; k++) hydra_step(v[i], s[i], t, logits); /* warm the caches */
            uint64_t b0, b1;
            hydra_backoff_stats(&b0, NULL);
            for (int k = 0; k < steps; k++) {
                double t0 = hydra_now_seconds();
                hydra_step(v[i], s[i], t, logits);
                td[k] = hydra_now_seconds() - t0;
                t = (int32_t)((t * 31 + 7) % V);
            }
            per[i][r] = hydra_median(td, steps);
            hydra_backoff_stats(&b1, NULL);
            bo[i] += b1 - b0;
        }
    if (!rc) {
        double f32_med = 0;
        for (int i = 0; i < NV; i++) {
            double sorted[QB_REPS];
            memcpy(sorted, per[i], sizeof sorted);
            double med = hydra_median(sorted, QB_REPS), mn = per[i][0];
            for (int r = 1; r < QB_REPS; r++) mn = per[i][r] < mn ? per[i][r] : mn;
            if (i == 0) f32_med = med;
            double bytes = bytes_per_token(v[i]);
            char b[32];
            fprintf(out, "%-16s %-5s %11s  %9.1f  %9.1f  %7.2f  %6.2fx  %7.1f  %3llu\n", name, VNAME[i],
                    cli_bytes(bytes, b, sizeof b), 1.0 / med, 1.0 / mn, 1e3 * med, f32_med / med, bytes / med / 1e9,
                    bo[i]);
        }
    }
    for (int i = 0; i < NV; i++) hydra_state_free(s[i]);
    free_variants(v);
    free(logits);
    free(td);
    return rc;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}
static double token_loss(const float *x, int n, int target) {
    double mx = x[argmax(x, n)], z = 0;
    for (int i = 0; i < n; i++) z += exp(x[i] - mx);
    return log(z) + mx - x[target];
}

/* Free-running greedy decoding from n_prompts prompts taken from the text
 * (64 tokens each, spread over it): per variant the mean number of generated
 * tokens equal to f32's before the first difference (of n_new). */
#define QB_PROMPT 64
static int free_run_match(hydra_model **v, const int32_t *tok, size_t n_tok, int n_prompts, int n_new, double *match) {
    int32_t *out = malloc((size_t)NV * n_new * sizeof *out);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.sample.temperature = 0.0f;
    g.max_new_tokens = n_new;
    int rc = 0;
    for (int i = 0; i < NV; i++) match[i] = 0;
    for (int p = 0; !rc && p < n_prompts; p++) {
        const int32_t *prompt = tok + (n_tok - QB_PROMPT) * (size_t)p / (size_t)n_prompts;
        size_t n_out[NV];
        for (int i = 0; !rc && i < NV; i++) {
            hydra_status st = hydra_generate(v[i], NULL, prompt, QB_PROMPT, &g, out + (size_t)i * n_new, (size_t)n_new, &n_out[i]);
            if (st) rc = cli_fail("bench", "greedy generation", st);
        }
        for (int i = 0; !rc && i < NV; i++) {
            size_t k = 0;
            while (k < n_out[i] && k < n_out[0] && out[(size_t)i * n_new + k] == out[k]) k++;
            match[i] += (double)k / n_prompts;
        }
    }
    free(out);
    return rc;
}

/* Quality of each variant against f32 on the validation split of data. */
static int quality_table(FILE *out, const char *model_path, const char *data_path, int n_decode, int n_prefill) {
    hydra_model *v[NV] = {0};
    hydra_text_data *td = NULL;
    if (load_variants(model_path, v)) return 1;
    hydra_status st = hydra_text_data_load(data_path, 0.1, &td);
    if (st) {
        free_variants(v);
        return cli_fail("bench", data_path, st);
    }
    size_t n_val = hydra_text_data_size(td, 1);
    const uint8_t *val = hydra_text_data_bytes(td, 1);
    if ((size_t)n_prefill > n_val) n_prefill = (int)n_val;
    if (n_decode > n_prefill) n_decode = n_prefill;
    const int V = hydra_model_config(v[0])->vocab_size;
    int32_t *tok = malloc((size_t)n_prefill * sizeof *tok);
    float *pl = malloc((size_t)n_prefill * sizeof *pl), *lg = malloc((size_t)NV * V * sizeof *lg);
    hydra_state *s[NV] = {0};
    double dec_loss[NV] = {0}, pre_loss[NV] = {0};
    int agree[NV] = {0}, rc = 0, n_free = 8, n_new = 256;
    double match[NV] = {0};
    for (int i = 0; i < n_prefill; i++) tok[i] = val[i];
    for (int i = 0; !rc && i < NV; i++) {
        if ((st = hydra_state_create(v[i], &s[i])) || (st = hydra_eval_stream_loss(v[i], tok, (size_t)n_prefill, 512, pl)))
            rc = cli_fail("bench", "quality", st);
        for (int k = 0; !rc && k < n_prefill - 1; k++) pre_loss[i] += pl[k] / (n_prefill - 1);
    }
    for (int k = 0; !rc && k < n_decode - 1; k++) /* decode path: the four in step */
        for (int i = 0; !rc && i < NV; i++) {
            float *x = lg + (size_t)i * V;
            if ((st = hydra_step(v[i], s[i], tok[k], x))) rc = cli_fail("bench", "quality", st);
            dec_loss[i] += token_loss(x, V, tok[k + 1]) / (n_decode - 1);
            agree[i] += argmax(x, V) == argmax(lg, V);
        }
    if (!rc) rc = free_run_match(v, tok, (size_t)n_prefill, n_free, n_new, match);
    if (!rc) {
        fprintf(out, "\nquality of %s on the last 10%% of %s (held out by hydra train's default split)\n", model_path,
                data_path);
        fprintf(out, "%-5s  %14s  %9s  %15s  %9s  %16s  %14s\n", "", "decode loss", "vs f32", "prefill loss", "vs f32",
                "greedy agreement", "free-run match");
        for (int i = 0; i < NV; i++)
            fprintf(out, "%-5s  %14.4f  %+8.2f%%  %15.4f  %+8.2f%%  %15.2f%%  %10.1f/%d\n", VNAME[i], dec_loss[i],
                    100 * (dec_loss[i] / dec_loss[0] - 1), pre_loss[i], 100 * (pre_loss[i] / pre_loss[0] - 1),
                    100.0 * agree[i] / (n_decode - 1), match[i], n_new);
        fprintf(out, "(decode: %d tokens through hydra_step, activations quantised per block in the int8/int4 rows;\n"
                     " prefill: %d tokens through hydra_eval_stream_loss, chunks of 512, dequantised weights with f32\n"
                     " activations; greedy agreement: positions of the decode run whose argmax equals f32's;\n"
                     " free-run match: greedy tokens generated equal to f32's before the first difference, mean over\n"
                     " %d prompts of %d tokens from the split)\n",
                n_decode, n_prefill, n_free, QB_PROMPT);
    }
    for (int i = 0; i < NV; i++) hydra_state_free(s[i]);
    free_variants(v);
    hydra_text_data_free(td);
    free(tok), free(pl), free(lg);
    return rc;
}

int hydra_bench_quant(FILE *out, int quick, int speed, const char *model_path, const char *data_path) {
    fprintf(out, "quantised decode — %d threads, small-M kernel %s\n", hydra_get_num_threads(), hydra_quant_kernel());
    if (speed) {
        fprintf(out, "\n%-16s %-5s %11s  %9s  %9s  %7s  %7s  %7s  %3s\n", "model", "", "bytes/tok", "tok/s med",
                "tok/s max", "ms/tok", "vs f32", "GB/s", "bo");
        hydra_config def = hydra_config_default(), small = def;
        small.d_model = 256, small.n_layers = 4, small.n_heads = 4, small.head_dim = 64;
        int steps = quick ? 16 : 64;
        uint64_t bo0, bo1;
        double bs0, bs1;
        hydra_backoff_stats(&bo0, &bs0);
        if (speed_table(out, "default 768x12", &def, steps) || speed_table(out, "small 256x4", &small, steps)) return 1;
        hydra_backoff_stats(&bo1, &bs1);
        fprintf(out, "(random-init weights, seed 1; decode after a 64-token prefill; per repetition the median of %d\n"
                     " single-token steps, %d repetitions with the four precisions interleaved; tok/s med / max = the\n"
                     " median / best repetition; vs f32 = f32 median time / this median time, same run; bo = contention\n"
                     " back-offs started during that row's steps, HYDRA_BACKOFF=0 turns them off)\n"
                     "contention back-offs during the tables: %llu (%.1f s on one thread scheduled; docs/threads.md)\n",
                steps, QB_REPS, (unsigned long long)(bo1 - bo0), bs1 - bs0);
    }
    if (model_path) return quality_table(out, model_path, data_path, quick ? 512 : 2048, quick ? 8192 : 32768);
    return 0;
}
