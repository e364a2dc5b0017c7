/* hydra factbank — write facts into a bank file through the model's own
 * recurrence, ask a model with a bank mounted, print a bank's header. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_eval.h"
#include "hydralm_factbank.h"

static void factbank_usage(FILE *f) {
    fprintf(f,
            "usage: hydra factbank <write|ask|info> [options]   (hydra factbank <sub> --help)\n\n"
            "  write --model M (--facts FILE | --ids \"5 40 ..\") --out BANK [--append BANK]   facts -> bank\n"
            "  ask   --model M --bank BANK (--prompt TEXT | --prompt-ids \"5\") -n N [--mode restore|replace|add]\n"
            "  info  BANK                                                header, size, fingerprint\n"
            "  train-mqar --out M [--steps N --pairs P]   train a small model on key-value recall (demo)\n");
}

/* Parse whitespace/comma-separated token ids into a malloc'ed array. */
static int parse_ids(const char *str, int32_t **out, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = str;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 2147483647L) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
            cap *= 2;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *out = v;
    *n = k;
    return 0;
}

static int print_id(int32_t tok, void *user) {
    (void)user;
    printf("%d ", tok);
    fflush(stdout);
    return 0;
}

static int fb_write(int argc, char **argv) {
    cli_spec s = {.usage = "hydra factbank write --model M (--facts FILE | --ids IDS) --out BANK [--append BANK]",
                  .summary = "Runs the facts file (bytes = tokens) through the model from an empty state, or from\n"
                             "the state of an existing bank with --append, without gradients, and saves the\n"
                             "resulting recurrent state as a bank file tied to the model's fingerprint. The\n"
                             "bank's size is fixed by the model, whatever the number of facts."};
    const char *model = NULL, *facts = NULL, *out = NULL, *append = NULL, *ids_s = NULL;
    int threads = 0, quiet = 0;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint (required)");
    cli_add(&s, "facts", OPT_STR, &facts, "facts file, '-' = stdin (this or --ids is required)");
    cli_add(&s, "ids", OPT_STR, &ids_s, "facts as token ids instead of text, e.g. \"5 40 17 33\"");
    cli_add(&s, "quiet", OPT_FLAG, &quiet, "no summary line");
    cli_add(&s, "out", OPT_STR, &out, "bank file to write (required)");
    cli_add(&s, "append", OPT_STR, &append, "start from this bank's facts instead of an empty bank");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_device dev;
    cli_add_device_opts(&s, &dev, "");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !out || !facts == !ids_s) {
        fprintf(stderr, "hydra factbank write: --model, --out and one of --facts / --ids are required (see --help)\n");
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (ids_s && parse_ids(ids_s, &ids, &n_ids)) {
        fprintf(stderr, "hydra factbank write: --ids must be non-negative integers\n");
        return 2;
    }
    FILE *f = ids_s ? NULL : strcmp(facts, "-") ? fopen(facts, "rb") : stdin;
    if (!f && !ids_s) {
        perror(facts);
        return 1;
    }
    hydra_model *m = NULL;
    hydra_factbank *b = NULL;
    hydra_status st;
    int rc = 0;
    double t0 = hydra_now_seconds();
    if (cli_device_check("factbank", &dev)) return 2;
    if ((st = cli_model_load(model, 0, NULL, &dev, &m))) {
        rc = cli_fail("factbank write", "loading the model", st);
        goto done;
    }
    if ((st = append ? hydra_factbank_load(m, append, &b) : hydra_factbank_create(m, &b))) {
        rc = cli_fail("factbank write", append ? "loading the bank to append to" : "creating the bank", st);
        goto done;
    }
    uint64_t before = hydra_factbank_tokens(b);
    if (ids && (st = hydra_factbank_write(b, ids, n_ids))) {
        rc = cli_fail("factbank write", "writing facts", st);
        goto done;
    }
    char buf[1 << 16];
    size_t got;
    while (f && (got = fread(buf, 1, sizeof buf, f)) > 0)
        if ((st = hydra_factbank_write_text(b, buf, got))) {
            rc = cli_fail("factbank write", "writing facts", st);
            goto done;
        }
    if (f && ferror(f)) {
        fprintf(stderr, "hydra factbank write: read error on %s\n", facts);
        rc = 1;
        goto done;
    }
    if ((st = hydra_factbank_save(b, out))) {
        rc = cli_fail("factbank write", "saving the bank", st);
        goto done;
    }
    char b1[32];
    if (!quiet)
        fprintf(stderr, "hydra factbank write: %llu fact tokens written (%llu in the bank), %s bank -> %s (%.2f s)\n",
            (unsigned long long)(hydra_factbank_tokens(b) - before), (unsigned long long)hydra_factbank_tokens(b),
            cli_bytes((double)hydra_factbank_bytes(b), b1, sizeof b1), out, hydra_now_seconds() - t0);
done:
    if (f && f != stdin) fclose(f);
    free(ids);
    hydra_factbank_free(b);
    hydra_model_free(m);
    return rc;
}

static int fb_ask(int argc, char **argv) {
    cli_spec s = {.usage = "hydra factbank ask --model M --bank BANK (--prompt TEXT | --prompt-ids IDS) -n N [--mode restore|replace|add]",
                  .summary = "Mounts the bank into a fresh live state and generates N tokens after the prompt.\n"
                             "restore (default): the state becomes the bank's (DeltaNet S, conv tails, SWA rings,\n"
                             "position) = exactly as if the facts had just been read; replace / add: only the\n"
                             "DeltaNet S is swapped in / added (docs/factbank.md explains the SWA trade-off)."};
    const char *model = NULL, *bank = NULL, *prompt = NULL, *mode_s = "restore";
    int n = 64, threads = 0;
    cli_sampling smp;
    cli_add(&s, "model", OPT_STR, &model, "checkpoint (required)");
    cli_add(&s, "bank", OPT_STR, &bank, "bank file (required)");
    cli_add(&s, "prompt", OPT_STR, &prompt, "prompt text (this or --prompt-ids is required; may be empty)");
    const char *prompt_ids = NULL;
    cli_add(&s, "prompt-ids", OPT_STR, &prompt_ids, "prompt as token ids; output is printed as ids");
    cli_add(&s, "n", OPT_INT, &n, "tokens to generate (default 64)");
    cli_add(&s, "mode", OPT_STR, &mode_s, "restore (default), replace or add");
    cli_add_sampling_opts(&s, &smp, 0.0f);
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_device dev;
    cli_add_device_opts(&s, &dev, "");
    cli_alias_n(argc, argv);
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !bank || !prompt == !prompt_ids) {
        fprintf(stderr, "hydra factbank ask: --model, --bank and one of --prompt / --prompt-ids are required\n");
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
    if (cli_device_check("factbank", &dev)) return 2;
    if ((st = cli_model_load(model, 0, NULL, &dev, &m))) {
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
    size_t np = prompt ? strlen(prompt) : 0, nid = 0;
    if (prompt_ids) {
        if (parse_ids(prompt_ids, &ids, &nid)) {
            fprintf(stderr, "hydra factbank ask: --prompt-ids must be non-negative integers\n");
            rc = 2;
            goto done;
        }
    } else
        ids = malloc((np + 1) * sizeof *ids);
    out = malloc(((size_t)n + 1) * sizeof *out);
    if (!ids || !out) {
        fprintf(stderr, "hydra factbank ask: out of memory\n");
        rc = 1;
        goto done;
    }
    if (!prompt_ids && (st = hydra_tokenize_bytes(prompt, np, ids, np + 1, &nid))) {
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
    cli_sampling_apply(&smp, &g);
    if (prompt_ids) g.on_token = print_id;
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

/* ---------------------------------------------------- MQAR demo training
 * The library's MQAR recipe (hydra_mqar_train, as `hydra mqar`) with the
 * demonstration model's shape and sequences of exactly 4P tokens: P pairs
 * "k v", then the P keys in random order, each followed by its value -- the
 * layout `hydra bench --factbank-model` and claim 6 query. */
static int fb_mqar_point(const hydra_mqar_point *p, void *user) {
    (void)user;
    fprintf(stderr, "step %5d  loss %.4f  held-out accuracy %.4f  %.1f s\n", p->step, p->train_loss,
            p->eval.accuracy, p->seconds);
    return 0;
}

static int fb_train_mqar(int argc, char **argv) {
    cli_spec s = {.usage = "hydra factbank train-mqar --out M [--steps N] [--pairs P] [--batch B] [--lr X]",
                  .summary = "Trains a small hybrid model (vocab 64, d_model 64, 4 layers DDSD, window 8) on\n"
                             "multi-query associative recall (P pairs, then the P keys queried in random\n"
                             "order), for the FactBank demonstration (hydra bench --factbank-model M)."};
    const char *outp = NULL;
    int steps = 2000, pairs = 8, batch = 32;
    float lr = 3e-3f;
    uint64_t seed = 1;
    cli_add(&s, "out", OPT_STR, &outp, "checkpoint to write (required)");
    cli_add(&s, "steps", OPT_INT, &steps, "optimisation steps (default 2000)");
    cli_add(&s, "pairs", OPT_INT, &pairs, "key-value pairs per sequence (default 8, at most 31)");
    cli_add(&s, "batch", OPT_INT, &batch, "sequences per step (default 32)");
    cli_add(&s, "lr", OPT_FLOAT, &lr, "peak AdamW learning rate (default 3e-3)");
    cli_add(&s, "seed", OPT_U64, &seed, "init and data seed (default 1)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!outp || pairs < 1 || pairs > 31 || steps < 1 || batch < 1) {
        fprintf(stderr, "hydra factbank train-mqar: --out is required; --pairs in [1, 31]; --steps, --batch >= 1\n");
        return 2;
    }
    hydra_mqar_train_opts o = hydra_mqar_train_opts_default();
    cli_small_recall_config(&o.cfg, 4, 8, "DDSD");
    o.init_seed = seed;
    o.task = (hydra_mqar_opts){.vocab = 64, .seq_len = 4 * pairs, .n_pairs = pairs};
    o.train.batch = batch;
    o.train.seed = seed;
    o.train.optim.lr = lr;
    o.train.optim.warmup_steps = steps / 20;
    o.train.optim.total_steps = steps;
    o.train.optim.weight_decay = 0.01f;
    o.steps = steps;
    o.eval_every = steps >= 10 ? steps / 10 : 1;
    o.window = o.cfg.window;
    o.on_point = fb_mqar_point;
    hydra_model *m = NULL;
    hydra_status st = hydra_mqar_train(&o, &m, NULL);
    if (st) return cli_fail("factbank train-mqar", "training", st);
    if ((st = hydra_model_save(m, outp))) {
        hydra_model_free(m);
        return cli_fail("factbank train-mqar", outp, st);
    }
    hydra_model_free(m);
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
    if (!strcmp(sub, "train-mqar")) return fb_train_mqar(argc - 1, argv + 1);
    fprintf(stderr, "hydra factbank: unknown subcommand '%s'\n\n", sub);
    factbank_usage(stderr);
    return 2;
}
