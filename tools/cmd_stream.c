/* hydra stream — feed a file or stdin (bytes = tokens) through the streaming
 * engine at constant memory, optionally continue with generation, and save /
 * restore the session state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "hydralm_stream.h"

static const char *count_str(double x, char *buf, size_t n) {
    if (x >= 1e9) snprintf(buf, n, "%.2fG", x / 1e9);
    else if (x >= 1e6) snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e4) snprintf(buf, n, "%.1fK", x / 1e3);
    else snprintf(buf, n, "%.0f", x);
    return buf;
}

static void progress(const hydra_stream *s, int tty, int final) {
    hydra_stream_stats ss;
    hydra_stream_get_stats(s, &ss);
    char a[32], b[32], c[32], d[32];
    long rss = hydra_process_memory_kib(final ? "VmHWM" : "VmRSS");
    fprintf(stderr, "%s[stream] %s tokens  %s tokens/s  state %s%s  %s %s%s", tty && !final ? "\r" : "",
            count_str((double)ss.tokens, a, sizeof a), count_str(ss.tokens_per_s, b, sizeof b),
            cli_bytes((double)ss.state_bytes, c, sizeof c),
            ss.peak_state_bytes != ss.state_bytes ? " (grows: full-attention layers)" : "",
            final ? "peak RSS" : "RSS", rss >= 0 ? cli_bytes(1024.0 * (double)rss, d, sizeof d) : "?",
            tty && !final ? "   " : "\n");
    fflush(stderr);
}

int cmd_stream(int argc, char **argv) {
    cli_spec s = {.usage = "hydra stream --model M --input FILE|- [--chunk N] [--then TEXT -n N] "
                           "[--save-state F] [--load-state F]",
                  .summary = "Feeds the input (bytes = tokens; '-' reads stdin) through the streaming engine\n"
                             "chunk by chunk at constant memory, never holding the whole input. With --then,\n"
                             "continues the stream with TEXT and generates N tokens to stdout (TEXT may be\n"
                             "empty: continue right after the input). --load-state starts from a saved session,\n"
                             "--save-state writes the final one (docs/formats.md). A progress line (tokens,\n"
                             "tokens/s, state bytes, RSS) goes to stderr when it is a terminal or the input is\n"
                             "longer than 1 MB; a summary line at the end."};
    const char *model = NULL, *input = NULL, *then = NULL, *save = NULL, *load = NULL;
    int chunk = 512, n = 128, threads = 0, quiet = 0, bf16 = 0, then_seen = 0, n_seen = 0;
    cli_sampling smp;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint to load (required)");
    cli_add(&s, "input", OPT_STR, &input, "input file, '-' = stdin (default: no input)");
    cli_add(&s, "chunk", OPT_INT, &chunk, "tokens per forward (default 512)");
    cli_add(&s, "then", OPT_STR, &then, "after the input, feed TEXT and generate -n tokens to stdout");
    s.opts[s.n - 1].seen = &then_seen;
    cli_add(&s, "n", OPT_INT, &n, "tokens to generate after --then (default 128)");
    s.opts[s.n - 1].seen = &n_seen;
    cli_add_sampling_opts(&s, &smp, 1.0f);
    cli_add(&s, "save-state", OPT_STR, &save, "write the final session state to this file");
    cli_add(&s, "load-state", OPT_STR, &load, "start from this saved session state");
    uint64_t save_every = 0;
    cli_add(&s, "save-every", OPT_U64, &save_every,
            "with --save-state: also save after every N input tokens, so that a long run stopped midway "
            "resumes from its last save (--load-state; the file holds the position)");
    cli_add(&s, "bf16", OPT_FLAG, &bf16, "load the matrices in bf16 only (half the memory, faster decode; ~1e-2 logit error)");
    const char *quant = NULL;
    cli_add_quant_opt(&s, &quant);
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_device dev;
    cli_add_device_opts(&s, &dev, "");
    cli_add(&s, "quiet", OPT_FLAG, &quiet, "no progress or summary line");
    cli_alias_n(argc, argv);
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "hydra stream: --model is required (see --help)\n");
        return 2;
    }
    if (!input && !then_seen && !load) {
        fprintf(stderr, "hydra stream: nothing to do: give --input, --then or --load-state (see --help)\n");
        return 2;
    }
    if (n_seen && !then_seen) {
        fprintf(stderr, "hydra stream: -n needs --then TEXT (use --then \"\" to continue right after the input)\n");
        return 2;
    }
    if (save_every && !save) {
        fprintf(stderr, "hydra stream: --save-every needs --save-state FILE\n");
        return 2;
    }
    if (chunk < 1) {
        fprintf(stderr, "hydra stream: --chunk must be >= 1 (got %d)\n", chunk);
        return 2;
    }
    if (then_seen && n < 1) {
        fprintf(stderr, "hydra stream: -n must be >= 1 (got %d)\n", n);
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);

    hydra_model *m = NULL;
    hydra_stream *eng = NULL;
    FILE *in = NULL;
    int32_t *ids = NULL, *out = NULL;
    unsigned char *buf = NULL;
    int rc = 0;
    if (cli_device_check("stream", &dev) || cli_quant_check("stream", quant, bf16)) return 2;
    hydra_status st = cli_model_load(model, bf16, quant, &dev, &m);
    if (st) return cli_fail("stream", model, st);
    if (hydra_model_config(m)->vocab_size < 256) {
        fprintf(stderr, "hydra stream: %s has a vocabulary of %d tokens; byte-level input needs at least 256\n", model,
                hydra_model_config(m)->vocab_size);
        hydra_model_free(m);
        return 1;
    }
    hydra_stream_opts o = hydra_stream_opts_default();
    o.chunk = chunk;
    if (bf16) o.weights = HYDRA_WEIGHTS_BF16;
    if ((st = hydra_stream_create(m, &o, &eng))) {
        rc = cli_fail("stream", "creating the engine", st);
        goto done;
    }
    if (load && (st = hydra_stream_load(eng, load))) {
        rc = cli_fail("stream", "loading state", st);
        goto done;
    }

    int tty = isatty(STDERR_FILENO);
    if (input) {
        int is_stdin = !strcmp(input, "-");
        in = is_stdin ? stdin : fopen(input, "rb");
        if (!in) {
            fprintf(stderr, "hydra stream: cannot open %s: %s\n", input, strerror(errno));
            rc = 1;
            goto done;
        }
        struct stat sb;
        long long size = (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode)) ? (long long)sb.st_size : -1;
        int show = !quiet && (tty || size > (1 << 20));
        buf = malloc((size_t)chunk);
        ids = malloc((size_t)chunk * sizeof *ids);
        if (!buf || !ids) {
            fprintf(stderr, "hydra stream: out of memory\n");
            rc = 1;
            goto done;
        }
        double last = hydra_now_seconds();
        long long total = 0;
        size_t got;
        while ((got = fread(buf, 1, (size_t)chunk, in)) > 0) {
            for (size_t i = 0; i < got; i++) ids[i] = buf[i];
            if ((st = hydra_stream_feed(eng, ids, got))) {
                rc = cli_fail("stream", "feeding the input", st);
                goto done;
            }
            total += (long long)got;
            if (save_every && (uint64_t)total / save_every != (uint64_t)(total - (long long)got) / save_every) {
                if ((st = hydra_stream_save(eng, save))) { /* atomic: the previous save stays until this one is whole */
                    rc = cli_fail("stream", "saving state", st);
                    goto done;
                }
                if (!quiet)
                    fprintf(stderr, "%s[stream] saved %s after %lld input tokens\n", show && tty ? "\n" : "", save, total);
            }
            if (!quiet && !show && total > (1 << 20)) show = 1; /* a long pipe */
            double t = hydra_now_seconds();
            if (show && t - last >= (tty ? 0.25 : 2.0)) {
                progress(eng, tty, 0);
                last = t;
            }
        }
        if (ferror(in)) {
            fprintf(stderr, "%shydra stream: read error on %s\n", show && tty ? "\n" : "", input);
            rc = 1;
            goto done;
        }
        if (show && tty) fputc('\n', stderr);
    }

    if (then_seen) {
        size_t len = strlen(then ? then : ""), n_ids = 0, n_out = 0;
        int32_t *tids = malloc((len ? len : 1) * sizeof *tids);
        out = malloc((size_t)n * sizeof *out);
        hydra_gen_opts g = hydra_gen_opts_default();
        g.max_new_tokens = n;
        cli_sampling_apply(&smp, &g);
        if (!tids || !out) {
            fprintf(stderr, "hydra stream: out of memory\n");
            rc = 1;
        } else if (len && (st = hydra_tokenize_bytes(then, len, tids, len, &n_ids))) {
            rc = cli_fail("stream", "tokenizing --then", st);
        } else {
            fputs(then ? then : "", stdout);
            fflush(stdout);
            st = hydra_stream_extend_and_generate(eng, tids, n_ids, &g, out, (size_t)n, &n_out);
            fputc('\n', stdout);
            fflush(stdout);
            if (st) rc = cli_fail("stream", "generating", st);
        }
        free(tids);
        if (rc) goto done;
    }

    if (save && (st = hydra_stream_save(eng, save))) {
        rc = cli_fail("stream", "saving state", st);
        goto done;
    }
    if (!quiet) {
        hydra_stream_stats ss;
        hydra_stream_get_stats(eng, &ss);
        char a[32], b[32], c[32], d[32];
        long hwm = hydra_process_memory_kib("VmHWM");
        fprintf(stderr,
                "[stream] done: %llu tokens (%llu forwards) in %.2f s, %s tokens/s; state %s (peak %s); "
                "position %llu; peak RSS %s%s%s\n",
                (unsigned long long)ss.tokens, (unsigned long long)ss.chunks, ss.seconds,
                count_str(ss.tokens_per_s, a, sizeof a), cli_bytes((double)ss.state_bytes, b, sizeof b),
                cli_bytes((double)ss.peak_state_bytes, c, sizeof c), (unsigned long long)ss.position,
                hwm >= 0 ? cli_bytes(1024.0 * (double)hwm, d, sizeof d) : "?", save ? "; saved to " : "",
                save ? save : "");
    }

done:
    if (in && in != stdin) fclose(in);
    free(buf);
    free(ids);
    free(out);
    hydra_stream_free(eng);
    hydra_model_free(m);
    return rc;
}
