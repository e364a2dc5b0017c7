/* hydra factbank — write facts into a bank file through the model's own
 * recurrence, ask a model with a bank mounted, print a bank's header. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_factbank.h"

static void factbank_usage(FILE *f) {
    fprintf(f,
            "usage: hydra factbank <write|ask|info> [options]   (hydra factbank <sub> --help)\n\n"
            "  write --model M --facts FILE --out BANK [--append BANK]   facts -> bank (no gradients)\n"
            "  ask   --model M --bank BANK --prompt TEXT -n N [--mode restore|replace|add]\n"
            "  info  BANK                                                header, size, fingerprint\n");
}

static int print_token(int32_t tok, void *user) {
    (void)user;
    if (tok < 256) {
        fputc(tok, stdout);
        fflush(stdout);
    }
    return 0;
}

static int fb_write(int argc, char **argv) {
    cli_spec s = {.usage = "hydra factbank write --model M --facts FILE --out BANK [--append BANK]",
                  .summary = "Runs the facts file (bytes = tokens) through the model from an empty state, or from\n"
                             "the state of an existing bank with --append, without gradients, and saves the\n"
                             "resulting recurrent state as a bank file tied to the model's fingerprint. The\n"
                             "bank's size is fixed by the model, whatever the number of facts."};
    const char *model = NULL, *facts = NULL, *out = NULL, *append = NULL;
    int threads = 0;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint (required)");
    cli_add(&s, "facts", OPT_STR, &facts, "facts file, '-' = stdin (required)");
    cli_add(&s, "out", OPT_STR, &out, "bank file to write (required)");
    cli_add(&s, "append", OPT_STR, &append, "start from this bank's facts instead of an empty bank");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: all cores)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !facts || !out) {
        fprintf(stderr, "hydra factbank write: --model, --facts and --out are required (see --help)\n");
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    FILE *f = strcmp(facts, "-") ? fopen(facts, "rb") : stdin;
    if (!f) {
        perror(facts);
        return 1;
    }
    hydra_model *m = NULL;
    hydra_factbank *b = NULL;
    hydra_status st;
    int rc = 0;
    double t0 = cli_now();
    if ((st = hydra_model_load(model, &m))) {
        rc = cli_fail("factbank write", "loading the model", st);
        goto done;
    }
    if ((st = append ? hydra_factbank_load(m, append, &b) : hydra_factbank_create(m, &b))) {
        rc = cli_fail("factbank write", append ? "loading the bank to append to" : "creating the bank", st);
        goto done;
    }
    uint64_t before = hydra_factbank_tokens(b);
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        if ((st = hydra_factbank_write_text(b, buf, got))) {
            rc = cli_fail("factbank write", "writing facts", st);
            goto done;
        }
    if (ferror(f)) {
        fprintf(stderr, "hydra factbank write: read error on %s\n", facts);
        rc = 1;
        goto done;
    }
    if ((st = hydra_factbank_save(b, out))) {
        rc = cli_fail("factbank write", "saving the bank", st);
        goto done;
    }
    char b1[32];
    fprintf(stderr, "hydra factbank write: %llu fact tokens written (%llu in the bank), %s bank -> %s (%.2f s)\n",
            (unsigned long long)(hydra_factbank_tokens(b) - before), (unsigned long long)hydra_factbank_tokens(b),
            cli_bytes((double)hydra_factbank_bytes(b), b1, sizeof b1), out, cli_now() - t0);
done:
    if (f != stdin) fclose(f);
    hydra_factbank_free(b);
    hydra_model_free(m);
    return rc;
}

static int fb_ask(int argc, char **argv) {
    cli_spec s = {.usage = "hydra factbank ask --model M --bank BANK --prompt TEXT -n N [--mode restore|replace|add]",
                  .summary = "Mounts the bank into a fresh live state and generates N tokens after the prompt.\n"
                             "restore (default): the state becomes the bank's (DeltaNet S, conv tails, SWA rings,\n"
                             "position) = exactly as if the facts had just been read; replace / add: only the\n"
                             "DeltaNet S is swapped in / added (docs/factbank.md explains the SWA trade-off)."};
    const char *model = NULL, *bank = NULL, *prompt = NULL, *mode_s = "restore";
    int n = 64, top_k = 0, threads = 0;
    float temperature = 0.0f, top_p = 1.0f;
    uint64_t seed = 0;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint (required)");
    cli_add(&s, "bank", OPT_STR, &bank, "bank file (required)");
    cli_add(&s, "prompt", OPT_STR, &prompt, "prompt text (required; may be empty)");
    cli_add(&s, "n", OPT_INT, &n, "tokens to generate (default 64)");
    cli_add(&s, "mode", OPT_STR, &mode_s, "restore (default), replace or add");
    cli_add(&s, "temperature", OPT_FLOAT, &temperature, "sampling temperature (default 0 = greedy)");
    cli_add(&s, "top-k", OPT_INT, &top_k, "top-k (default off)");
    cli_add(&s, "top-p", OPT_FLOAT, &top_p, "top-p (default 1 = off)");
    cli_add(&s, "seed", OPT_U64, &seed, "sampling seed");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: all cores)");
    /* accept the short "-n N" spelling as well as "--n N" */
    char **av = malloc(((size_t)argc + 1) * sizeof *av);
    if (!av) return 1;
    for (int i = 0; i < argc; i++) av[i] = strcmp(argv[i], "-n") ? argv[i] : (char *)"--n";
    av[argc] = NULL;
    int r = cli_parse(&s, argc, av);
    free(av);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !bank || !prompt) {
        fprintf(stderr, "hydra factbank ask: --model, --bank and --prompt are required (see --help)\n");
        return 2;
    }
    hydra_mount_mode mode;
    if (!strcmp(mode_s, "restore")) mode = HYDRA_MOUNT_RESTORE;
    else if (!strcmp(mode_s, "replace")) mode = HYDRA_MOUNT_REPLACE;
    else if (!strcmp(mode_s, "add")) mode = HYDRA_MOUNT_ADD;
    else {
        fprintf(stderr, "hydra factbank ask: --mode must be restore, replace or add (got '%s')\n", mode_s);
        return 2;
    }
    if (n < 0) {
        fprintf(stderr, "hydra factbank ask: -n must be >= 0\n");
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    hydra_model *m = NULL;
    hydra_factbank *b = NULL;
    hydra_state *live = NULL;
    int32_t *ids = NULL, *out = NULL;
    hydra_status st;
    int rc = 0;
    if ((st = hydra_model_load(model, &m))) {
        rc = cli_fail("factbank ask", "loading the model", st);
        goto done;
    }
    if ((st = hydra_factbank_load(m, bank, &b))) {
        rc = cli_fail("factbank ask", "loading the bank", st);
        goto done;
    }
    if ((st = hydra_state_create(m, &live)) || (st = hydra_factbank_mount(b, live, mode))) {
        rc = cli_fail("factbank ask", "mounting the bank", st);
        goto done;
    }
    size_t np = strlen(prompt), nid = 0;
    ids = malloc((np + 1) * sizeof *ids);
    out = malloc(((size_t)n + 1) * sizeof *out);
    if (!ids || !out) {
        fprintf(stderr, "hydra factbank ask: out of memory\n");
        rc = 1;
        goto done;
    }
    if ((st = hydra_tokenize_bytes(prompt, np, ids, np + 1, &nid))) {
        rc = cli_fail("factbank ask", "tokenizing the prompt", st);
        goto done;
    }
    if (nid == 0 && hydra_state_position(live) == 0) {
        fprintf(stderr, "hydra factbank ask: empty prompt and an empty bank: nothing to continue from\n");
        rc = 2;
        goto done;
    }
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = n;
    g.sample.temperature = temperature;
    g.sample.top_k = top_k;
    g.sample.top_p = top_p;
    g.seed = seed;
    g.on_token = print_token;
    size_t n_out = 0;
    if (n > 0 && (st = hydra_generate(m, live, ids, nid, &g, out, (size_t)n, &n_out))) {
        rc = cli_fail("factbank ask", "generating", st);
        goto done;
    }
    fputc('\n', stdout);
done:
    free(ids);
    free(out);
    hydra_state_free(live);
    hydra_factbank_free(b);
    hydra_model_free(m);
    return rc;
}

static int fb_info(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: hydra factbank info BANK\n\nChecks a bank file (magic, version, size, checksum) and "
                   "prints its header.\n");
            return 0;
        }
        fprintf(stderr, "usage: hydra factbank info BANK\n");
        return 2;
    }
    hydra_factbank_info in;
    hydra_status st = hydra_factbank_read_info(argv[1], &in);
    if (st) return cli_fail("factbank info", argv[1], st);
    char b1[32], b2[32];
    printf("bank          %s\n", argv[1]);
    printf("format        HYDRABNK version %u, checksum ok\n", in.version);
    printf("fingerprint   %016llx (model that wrote it)\n", (unsigned long long)in.fingerprint);
    printf("fact tokens   %llu\n", (unsigned long long)in.tokens);
    printf("model shape   %d layers %s, %d heads x %d, window %d, conv %d\n", in.n_layers, in.schedule, in.n_heads,
           in.head_dim, in.window, in.conv_width);
    printf("payload       %s (constant for this model, whatever the facts)\n",
           cli_bytes((double)in.payload_bytes, b1, sizeof b1));
    printf("file          %s\n", cli_bytes((double)in.file_bytes, b2, sizeof b2));
    return 0;
}

int cmd_factbank(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        factbank_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "write")) return fb_write(argc - 1, argv + 1);
    if (!strcmp(sub, "ask")) return fb_ask(argc - 1, argv + 1);
    if (!strcmp(sub, "info")) return fb_info(argc - 1, argv + 1);
    fprintf(stderr, "hydra factbank: unknown subcommand '%s'\n\n", sub);
    factbank_usage(stderr);
    return 2;
}
