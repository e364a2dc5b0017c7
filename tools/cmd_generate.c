/* hydra generate — prompt a model and stream sampled bytes to stdout. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_spec.h"

int cmd_generate(int argc, char **argv) {
    cli_spec s = {.usage = "hydra generate --model m.safetensors --prompt TEXT [-n N] [sampling options]",
                  .summary = "Prefills the prompt (byte-level tokens) and streams sampled tokens to stdout\n"
                             "as they are produced. Temperature 0 is greedy decoding."};
    const char *model = NULL, *prompt = NULL, *draft_path = NULL, *quant = NULL;
    int spec_k = 4;
    int n = 128, threads = 0, stats = 0, bf16 = 0;
    cli_sampling smp;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint to load (required)");
    cli_add(&s, "prompt", OPT_STR, &prompt, "prompt text (required, at least one byte)");
    cli_add(&s, "n", OPT_INT, &n, "number of tokens to generate (default 128)");
    cli_add_sampling_opts(&s, &smp, 1.0f);
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_add(&s, "stats", OPT_FLAG, &stats, "print prefill/decode speed to stderr");
    cli_add(&s, "draft", OPT_STR, &draft_path, "speculative decoding with this draft model (same vocabulary); stats on stderr");
    cli_add(&s, "k", OPT_INT, &spec_k, "draft tokens per speculative round (default 4; the most, with --min-draft-prob)");
    float min_draft_prob = 0.0f;
    cli_add(&s, "min-draft-prob", OPT_FLOAT, &min_draft_prob,
            "adaptive rounds: the draft stops proposing once its top probability is below this (default 0: always k)");
    cli_add(&s, "bf16", OPT_FLAG, &bf16, "load the matrices in bf16 only (half the memory, faster decode; ~1e-2 logit error)");
    cli_add_quant_opt(&s, &quant);
    cli_device dev, ddev;
    cli_add_device_opts(&s, &dev, "");
    cli_add_device_opts(&s, &ddev, "draft-");
    cli_alias_n(argc, argv);
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (cli_device_check("generate", &dev) || cli_device_check("generate", &ddev) ||
        cli_quant_check("generate", quant, bf16))
        return 2;
    if (!model || !prompt) {
        fprintf(stderr, "hydra generate: --model and --prompt are required (see --help)\n");
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    hydra_model *m = NULL;
    hydra_status st = cli_model_load(model, bf16, quant, &dev, &m);
    if (st) return cli_fail("generate", model, st);
    size_t len = strlen(prompt), n_ids = 0, n_out = 0;
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    int32_t *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = n;
    cli_sampling_apply(&smp, &g);
    int rc = 0;
    if (!ids || !out) {
        fprintf(stderr, "hydra generate: out of memory\n");
        rc = 1;
    } else if ((st = hydra_tokenize_bytes(prompt, len, ids, len, &n_ids)) != HYDRA_OK) {
        rc = cli_fail("generate", "tokenizing", st);
    } else {
        fputs(prompt, stdout);
        fflush(stdout);
        double t0 = hydra_now_seconds();
        if (draft_path) { /* speculative: same sampling options, exact target distribution */
            hydra_model *dm = NULL;
            hydra_spec_stats ss;
            hydra_spec_opts so = hydra_spec_opts_default();
            so.k = spec_k;
            so.min_draft_prob = min_draft_prob;
            so.sample = g.sample;
            so.seed = g.seed;
            so.max_new_tokens = g.max_new_tokens;
            memcpy(so.stop_tokens, g.stop_tokens, sizeof so.stop_tokens);
            so.n_stop_tokens = g.n_stop_tokens;
            so.on_token = g.on_token;
            if ((st = cli_model_load(draft_path, bf16, quant, &ddev, &dm)) != HYDRA_OK) {
                rc = cli_fail("generate", draft_path, st);
            } else {
                st = hydra_spec_generate(m, dm, ids, n_ids, &so, out, (size_t)(n > 0 ? n : 1), &n_out, &ss);
                if (st == HYDRA_OK)
                    fprintf(stderr,
                            "[spec k=%d: %llu rounds, %llu proposed, %llu accepted, acceptance rate %.3f "
                            "(per-token alpha %.3f), %.2f tokens per target forward, %llu draft steps, %.1f tokens/s]\n",
                            spec_k, (unsigned long long)ss.rounds, (unsigned long long)ss.proposed,
                            (unsigned long long)ss.accepted, ss.acceptance_rate, ss.alpha, ss.tokens_per_target_forward,
                            (unsigned long long)ss.draft_steps, (double)n_out / (hydra_now_seconds() - t0));
            }
            hydra_model_free(dm);
            if (rc) st = HYDRA_OK; /* already reported */
        } else
            st = hydra_generate(m, NULL, ids, n_ids, &g, out, (size_t)(n > 0 ? n : 1), &n_out);
        double dt = hydra_now_seconds() - t0;
        fputc('\n', stdout);
        if (st) rc = cli_fail("generate", "generating", st);
        else if (stats)
            fprintf(stderr, "[%zu prompt + %zu generated tokens in %.2f s: %.1f tokens/s overall]\n", n_ids, n_out, dt,
                    (double)(n_ids + n_out) / dt);
    }
    free(ids);
    free(out);
    hydra_model_free(m);
    return rc;
}
