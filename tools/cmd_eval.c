/* hydra eval — loss and perplexity of a model on a text file read as one
 * long sequence, with the loss per position bucket (the length-generalisation
 * view: does the loss keep falling, or blow up, past the training length?). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_train.h"

int cmd_eval(int argc, char **argv) {
    cli_spec s = {.usage = "hydra eval --model M --data FILE [--max-tokens N] [--chunk N]",
                  .summary = "Streams the file through the model as ONE sequence (state carried across\n"
                             "chunks) and reports the mean loss (nats/token), perplexity and the mean loss\n"
                             "of positions in buckets 0-256, 256-1K, 1K-4K, ... up to the file length."};
    const char *model = NULL, *data = NULL, *quant = NULL;
    long long max_tokens = 0;
    int chunk = 512, threads = 0;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint (required)");
    cli_add(&s, "data", OPT_STR, &data, "text file (required)");
    cli_add(&s, "max-tokens", OPT_INT, &max_tokens, "evaluate only the first N bytes (default: whole file)");
    cli_add(&s, "chunk", OPT_INT, &chunk, "tokens per forward call (default 512; does not change the result)");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_add_quant_opt(&s, &quant);
    cli_device dev;
    cli_add_device_opts(&s, &dev, "");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !data) {
        fprintf(stderr, "hydra eval: --model and --data are required (see --help)\n");
        return 2;
    }
    if (chunk < 1 || max_tokens < 0) {
        fprintf(stderr, "hydra eval: --chunk must be >= 1 and --max-tokens >= 0\n");
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    hydra_model *m = NULL;
    hydra_text_data *td = NULL;
    if (cli_device_check("eval", &dev) || cli_quant_check("eval", quant, 0)) return 2;
    hydra_status st = cli_model_load(model, 0, quant, &dev, &m);
    if (st) return cli_fail("eval", model, st);
    if ((st = hydra_text_data_load(data, 0.0, &td)) != HYDRA_OK) {
        hydra_model_free(m);
        return cli_fail("eval", data, st);
    }
    size_t n = hydra_text_data_size(td, 0);
    if (max_tokens > 0 && (size_t)max_tokens < n) n = (size_t)max_tokens;
    int rc = 0;
    if (n < 2) {
        fprintf(stderr, "hydra eval: %s has fewer than 2 bytes\n", data);
        rc = 2;
    } else if (hydra_model_config(m)->vocab_size < 256) {
        fprintf(stderr, "hydra eval: the model's vocabulary (%d) cannot hold byte tokens\n", hydra_model_config(m)->vocab_size);
        rc = 2;
    }
    int32_t *tok = rc ? NULL : malloc(n * sizeof *tok);
    float *pl = rc ? NULL : malloc((n - 1) * sizeof *pl);
    if (!rc && (!tok || !pl)) {
        fprintf(stderr, "hydra eval: out of memory\n");
        rc = 1;
    }
    if (!rc) {
        const uint8_t *b = hydra_text_data_bytes(td, 0);
        for (size_t i = 0; i < n; i++) tok[i] = b[i];
        double t0 = hydra_now_seconds();
        st = hydra_eval_stream_loss(m, tok, n, chunk, pl);
        double dt = hydra_now_seconds() - t0;
        if (st) rc = cli_fail("eval", "evaluating", st);
        else {
            double total = 0;
            for (size_t i = 0; i < n - 1; i++) total += pl[i];
            double mean = total / (double)(n - 1);
            printf("model      %s\ndata       %s (%zu tokens, %.1f s, %.0f tokens/s)\n", model, data, n, dt, (double)n / dt);
            printf("loss       %.4f nats/token (%.4f bits/byte)\nperplexity %.3f\n\n", mean, mean / log(2.0), exp(mean));
            printf("%-18s %10s %10s\n", "positions", "loss", "tokens");
            for (size_t lo = 0, hi = 256; lo < n - 1; lo = hi, hi *= 4) {
                size_t e = hi < n - 1 ? hi : n - 1;
                double sum = 0;
                for (size_t i = lo; i < e; i++) sum += pl[i];
                char range[48];
                snprintf(range, sizeof range, "%zu-%zu", lo, e);
                printf("%-18s %10.4f %10zu\n", range, sum / (double)(e - lo), e - lo);
            }
        }
    }
    free(tok);
    free(pl);
    hydra_text_data_free(td);
    hydra_model_free(m);
    return rc;
}
