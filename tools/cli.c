/* cli.c — option parsing and shared helpers for the hydra subcommands. */
#include "cli.h"
#include "hydralm_ops.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_add(cli_spec *s, const char *name, opt_type t, void *dst, const char *help) {
    if (s->n < CLI_MAX_OPTS) s->opts[s->n++] = (cli_opt){name, t, dst, help, NULL};
}

static void print_help(const cli_spec *s) {
    printf("usage: %s\n\n%s\n\noptions:\n", s->usage, s->summary);
    for (int i = 0; i < s->n; i++) {
        const cli_opt *o = &s->opts[i];
        const char *arg = o->type == OPT_FLAG ? "" : o->type == OPT_STR ? " S" : o->type == OPT_FLOAT ? " X" : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        printf("  %-22s %s\n", left, o->help);
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

static int set_value(const char *cmd, const cli_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v || x < -2147483647L || x > 2147483647L) goto bad;
        *(int *)o->dst = (int)x;
        break;
    }
    case OPT_U64: {
        if (*v == '-') goto bad;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v) goto bad;
        *(uint64_t *)o->dst = (uint64_t)x;
        break;
    }
    case OPT_FLOAT: {
        float x = strtof(v, &end);
        if (errno || *end || end == v) goto bad;
        *(float *)o->dst = x;
        break;
    }
    case OPT_STR: *(const char **)o->dst = v; break;
    case OPT_FLAG: *(int *)o->dst = 1; break;
    }
    return 0;
bad:
    fprintf(stderr, "%s: invalid value '%s' for --%s\n", cmd, v, o->name);
    return -1;
}

int cli_parse(cli_spec *s, int argc, char **argv) {
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(s);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "hydra %s: unexpected argument '%s' (see --help)\n", cmd, a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = NULL;
        for (int j = 0; j < s->n; j++)
            if (strlen(s->opts[j].name) == len && !strncmp(s->opts[j].name, name, len)) o = &s->opts[j];
        if (!o) {
            fprintf(stderr, "hydra %s: unknown option '%s' (see --help)\n", cmd, a);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (o->type == OPT_FLAG) {
            if (v) {
                fprintf(stderr, "hydra %s: --%s takes no value\n", cmd, o->name);
                return -1;
            }
        } else if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hydra %s: --%s needs a value\n", cmd, o->name);
                return -1;
            }
            v = argv[++i];
        }
        char label[64];
        snprintf(label, sizeof label, "hydra %s", cmd);
        if (set_value(label, o, v ? v : "")) return -1;
        if (o->seen) *o->seen = 1;
    }
    return 0;
}

void cli_add_config_opts(cli_spec *s, cli_config *c) {
    memset(c, 0, sizeof *c);
    c->cfg = hydra_config_default();
    c->d_model = c->n_layers = c->n_heads = c->head_dim = c->swa_every = c->window = -1;
    c->vocab = c->conv_width = c->mlp_multiple = -1;
    c->init_std = c->init_dt_min = c->init_dt_max = -1.0f;
    cli_add(s, "config", OPT_STR, &c->config_path, "JSON config file (flags below override it)");
    cli_add(s, "d-model", OPT_INT, &c->d_model, "model width C (default 768)");
    cli_add(s, "n-layers", OPT_INT, &c->n_layers, "number of layers L (default 12)");
    cli_add(s, "n-heads", OPT_INT, &c->n_heads, "heads per layer H (default 12)");
    cli_add(s, "head-dim", OPT_INT, &c->head_dim, "head dim dk = dv (default 64, but d_model / n_heads when --d-model or --n-heads is given; 0 = d_model / n_heads)");
    cli_add(s, "swa-every", OPT_INT, &c->swa_every, "every Nth layer is sliding-window attention (default 4)");
    cli_add(s, "pattern", OPT_STR, &c->pattern, "explicit layer schedule, e.g. DDDS (D DeltaNet, S SWA, A full attention)");
    cli_add(s, "window", OPT_INT, &c->window, "SWA window in tokens (default 512; 0 = unbounded)");
    cli_add(s, "vocab", OPT_INT, &c->vocab, "vocabulary size (default 256 = bytes)");
    cli_add(s, "conv-width", OPT_INT, &c->conv_width, "DeltaNet causal conv width (default 4)");
    cli_add(s, "mlp-multiple", OPT_INT, &c->mlp_multiple, "SwiGLU width rounds 8C/3 up to this multiple (default 64)");
    cli_add(s, "init-std", OPT_FLOAT, &c->init_std, "init std of linear layers (default 0.02)");
    cli_add(s, "init-dt-min", OPT_FLOAT, &c->init_dt_min, "DeltaNet decay gate init: smallest dt (default 1e-3)");
    cli_add(s, "init-dt-max", OPT_FLOAT, &c->init_dt_max, "largest dt; smaller = slower decay at init (default 0.1)");
    cli_add(s, "untied", OPT_FLAG, &c->untied, "separate lm_head instead of the tied embedding");
}

int cli_config_resolve(cli_config *c) {
    hydra_status st;
    if (c->config_path && (st = hydra_config_load_json(c->config_path, &c->cfg)) != HYDRA_OK) {
        fprintf(stderr, "hydra: config %s: %s\n", c->config_path, hydra_last_error());
        return -1;
    }
    hydra_config *g = &c->cfg;
    if (c->d_model >= 0) g->d_model = c->d_model;
    if (c->n_layers >= 0) g->n_layers = c->n_layers;
    if (c->n_heads >= 0) g->n_heads = c->n_heads;
    if (c->head_dim >= 0) g->head_dim = c->head_dim;
    else if (c->d_model >= 0 || c->n_heads >= 0) g->head_dim = 0; /* keep C = H * d consistent */
    if (c->swa_every >= 0) g->swa_every = c->swa_every;
    if (c->window >= 0) g->window = c->window;
    if (c->vocab >= 0) g->vocab_size = c->vocab;
    if (c->conv_width >= 0) g->conv_width = c->conv_width;
    if (c->mlp_multiple >= 0) g->mlp_multiple = c->mlp_multiple;
    if (c->init_std >= 0) g->init_std = c->init_std;
    if (c->init_dt_min >= 0) g->init_dt_min = c->init_dt_min;
    if (c->init_dt_max >= 0) g->init_dt_max = c->init_dt_max;
    if (c->untied) g->tie_embeddings = 0;
    if (c->pattern) {
        if (strlen(c->pattern) > HYDRA_MAX_LAYERS) {
            fprintf(stderr, "hydra: --pattern is longer than %d layers\n", HYDRA_MAX_LAYERS);
            return -1;
        }
        snprintf(g->pattern, sizeof g->pattern, "%s", c->pattern);
    }
    if (hydra_config_validate(g) != HYDRA_OK) {
        fprintf(stderr, "hydra: invalid config: %s\n", hydra_last_error());
        return -1;
    }
    return 0;
}

void cli_add_optim_opts(cli_spec *s, cli_optim *o) {
    memset(o, 0, sizeof *o);
    o->optimizer = "adamw";
    o->decay = "cosine";
    o->warmup = -1;
    o->lr = o->muon_lr = o->wd = o->clip = o->min_lr = o->b1 = o->b2 = -1;
    cli_add(s, "optimizer", OPT_STR, &o->optimizer, "adamw or muon (Muon for hidden matrices + AdamW) (default adamw)");
    cli_add(s, "lr", OPT_FLOAT, &o->lr, "peak AdamW learning rate (default 3e-3)");
    cli_add(s, "muon-lr", OPT_FLOAT, &o->muon_lr, "peak Muon learning rate (default 0.02)");
    cli_add(s, "muon-rms-match", OPT_FLAG, &o->muon_rms, "Muon scale 0.2*sqrt(max(rows,cols)) with the AdamW lr");
    cli_add(s, "weight-decay", OPT_FLOAT, &o->wd, "decoupled weight decay (default 0.1)");
    cli_add(s, "beta1", OPT_FLOAT, &o->b1, "AdamW beta1 (default 0.9)");
    cli_add(s, "beta2", OPT_FLOAT, &o->b2, "AdamW beta2 (default 0.95)");
    cli_add(s, "warmup", OPT_INT, &o->warmup, "linear warmup steps (default: 5% of --steps)");
    cli_add(s, "decay", OPT_STR, &o->decay, "cosine, linear or constant (default cosine)");
    cli_add(s, "min-lr-ratio", OPT_FLOAT, &o->min_lr, "final lr as a fraction of the peak (default 0.1)");
    cli_add(s, "grad-clip", OPT_FLOAT, &o->clip, "global gradient-norm clip, 0 = off (default 1)");
}

int cli_optim_resolve(const cli_optim *o, int steps, hydra_optim_opts *out) {
    hydra_optimizer_kind kind;
    if (!strcmp(o->optimizer, "adamw")) kind = HYDRA_OPT_ADAMW;
    else if (!strcmp(o->optimizer, "muon")) kind = HYDRA_OPT_MUON;
    else {
        fprintf(stderr, "hydra: --optimizer must be adamw or muon (got '%s')\n", o->optimizer);
        return -1;
    }
    *out = hydra_optim_opts_default(kind);
    if (!strcmp(o->decay, "cosine")) out->decay = HYDRA_DECAY_COSINE;
    else if (!strcmp(o->decay, "linear")) out->decay = HYDRA_DECAY_LINEAR;
    else if (!strcmp(o->decay, "constant")) out->decay = HYDRA_DECAY_CONSTANT;
    else {
        fprintf(stderr, "hydra: --decay must be cosine, linear or constant (got '%s')\n", o->decay);
        return -1;
    }
    out->total_steps = steps;
    out->warmup_steps = o->warmup >= 0 ? o->warmup : steps / 20;
    if (o->lr >= 0) out->lr = o->lr;
    if (o->muon_lr >= 0) out->muon_lr = o->muon_lr;
    if (o->muon_rms) out->muon_rms_match = 1;
    if (o->wd >= 0) out->weight_decay = o->wd;
    if (o->clip >= 0) out->grad_clip = o->clip;
    if (o->min_lr >= 0) out->min_lr_ratio = o->min_lr;
    if (o->b1 >= 0) out->beta1 = o->b1;
    if (o->b2 >= 0) out->beta2 = o->b2;
    if (hydra_optim_opts_validate(out) != HYDRA_OK) {
        fprintf(stderr, "hydra: invalid optimizer options: %s\n", hydra_last_error());
        return -1;
    }
    return 0;
}

const char *cli_schedule(const hydra_config *c, char *buf) {
    int n = c->n_layers < HYDRA_MAX_LAYERS ? c->n_layers : HYDRA_MAX_LAYERS;
    for (int i = 0; i < n; i++) buf[i] = hydra_config_layer_kind(c, i);
    buf[n] = '\0';
    return buf;
}

void cli_add_device_opts(cli_spec *s, cli_device *d, const char *prefix) {
    int draft = strcmp(prefix, "draft-") == 0; /* the only prefix: the option names must outlive this call */
    d->device = "cpu";
    d->precision = "bf16";
    cli_add(s, draft ? "draft-device" : "device", OPT_STR, &d->device, "where the model runs: cpu (default), cuda or cuda:N (an NVIDIA GPU)");
    cli_add(s, draft ? "draft-precision" : "precision", OPT_STR, &d->precision,
            "on a GPU: bf16 (default: bf16 weights and GEMM inputs on tensor cores, f32 accumulation and state) or "
            "f32 (tensor cores off, matches the CPU to ~1e-5)");
}

hydra_status cli_model_place(hydra_model *m, const cli_device *d) {
    if (!d || !d->device || strcmp(d->device, "cpu") == 0) return HYDRA_OK;
    hydra_precision p = d->precision && strcmp(d->precision, "f32") == 0 ? HYDRA_PRECISION_F32 : HYDRA_PRECISION_BF16;
    return hydra_model_to_device(m, d->device, p);
}

int cli_device_check(const char *cmd, const cli_device *d) {
    if (d->precision && strcmp(d->precision, "bf16") && strcmp(d->precision, "f32")) {
        fprintf(stderr, "hydra %s: --precision is bf16 or f32, not \"%s\"\n", cmd, d->precision);
        return -1;
    }
    return 0;
}

void cli_add_quant_opt(cli_spec *s, const char **quant) {
    cli_add(s, "quant", OPT_STR, quant,
            "int8 or int4: quantise the matrices at load, for CPU decode (docs/quantization.md); a quantised "
            "checkpoint loads as it is without this");
}

int cli_quant_check(const char *cmd, const char *quant, int bf16) {
    hydra_quant q;
    if (quant && (hydra_quant_parse(quant, &q) != HYDRA_OK || q == HYDRA_QUANT_NONE)) {
        fprintf(stderr, "hydra %s: --quant is int8 or int4, not \"%s\"\n", cmd, quant);
        return -1;
    }
    if (quant && bf16) {
        fprintf(stderr, "hydra %s: --quant and --bf16 are two precisions of the same matrices: pick one\n", cmd);
        return -1;
    }
    return 0;
}

hydra_status cli_model_load(const char *path, int bf16, const char *quant, const cli_device *d, hydra_model **out) {
    hydra_quant q = HYDRA_QUANT_NONE;
    if (quant && hydra_quant_parse(quant, &q)) return HYDRA_ERR_ARG;
    hydra_status st = bf16 ? hydra_model_load_bf16(path, out) : hydra_model_load_quant(path, q, out);
    if (st) return st;
    if (hydra_model_quant(*out) && d && d->device && strcmp(d->device, "cpu") != 0) {
        fprintf(stderr, "hydra: %s holds %s-quantised matrices, which run on the CPU only: drop --device or load "
                "the f32 checkpoint\n", path, hydra_quant_name(hydra_model_quant(*out)));
        hydra_model_free(*out);
        *out = NULL;
        return HYDRA_ERR_ARG;
    }
    if ((st = cli_model_place(*out, d))) {
        hydra_model_free(*out);
        *out = NULL;
    }
    return st;
}

int cli_fail(const char *cmd, const char *what, hydra_status st) {
    fprintf(stderr, "hydra %s: %s: %s (%s)\n", cmd, what, hydra_last_error(), hydra_status_str(st));
    return 1;
}

const char *cli_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

void cli_add_sampling_opts(cli_spec *s, cli_sampling *o, float default_temperature) {
    o->temperature = default_temperature;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->seed = 0;
    o->stop = -1;
    cli_add(s, "temperature", OPT_FLOAT, &o->temperature,
            default_temperature == 0.0f ? "sampling temperature (default 0 = greedy)"
                                        : "sampling temperature, 0 = greedy (default 1)");
    cli_add(s, "top-k", OPT_INT, &o->top_k, "keep only the k most likely tokens, 0 = off (default 0)");
    cli_add(s, "top-p", OPT_FLOAT, &o->top_p, "nucleus sampling mass in (0, 1] (default 1 = off)");
    cli_add(s, "seed", OPT_U64, &o->seed, "sampling seed (default 0)");
    cli_add(s, "stop", OPT_INT, &o->stop, "stop after emitting this token id (e.g. 10 = newline)");
}

void cli_sampling_apply(const cli_sampling *o, hydra_gen_opts *g) {
    g->sample.temperature = o->temperature;
    g->sample.top_k = o->top_k;
    g->sample.top_p = o->top_p;
    g->seed = o->seed;
    g->on_token = cli_print_token;
    g->n_stop_tokens = 0;
    if (o->stop >= 0) {
        g->stop_tokens[0] = o->stop;
        g->n_stop_tokens = 1;
    }
}

int cli_print_token(int32_t tok, void *user) {
    (void)user;
    if (tok < 256) {
        fputc(tok, stdout);
        fflush(stdout);
    }
    return 0;
}

void cli_alias_n(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n")) argv[i] = "--n";
}

/* Peak sgemm throughput through the library's own matmul entry point. */
double cli_gemm_peak_gflops(int n, int reps) {
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) return free(a), free(b), free(c), 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 1e-3f;
        b[i] = (float)(i % 5) * 1e-3f;
    }
    double t[32];
    if (reps > 32) reps = 32;
    hydra_op_matmul(n, n, n, a, b, c, 0);
    for (int r = 0; r < reps; r++) {
        double t0 = hydra_now_seconds();
        hydra_op_matmul(n, n, n, a, b, c, 0);
        t[r] = hydra_now_seconds() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / hydra_median(t, reps) / 1e9;
}

int cli_mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

void cli_small_recall_config(hydra_config *c, int n_layers, int window, const char *pattern) {
    c->vocab_size = 64;
    c->d_model = 64;
    c->n_heads = 2;
    c->head_dim = 32;
    c->mlp_multiple = 16;
    c->n_layers = n_layers;
    c->window = window;
    snprintf(c->pattern, sizeof c->pattern, "%s", pattern);
}
