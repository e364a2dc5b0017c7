/* cli.h — shared pieces of the hydra CLI: a table-driven option parser and
 * the config flags every model-creating command accepts. */
#ifndef HYDRA_CLI_H
#define HYDRA_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "hydralm.h"
#include "hydralm_train.h"

int cmd_init(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_stream(int argc, char **argv);
int cmd_factbank(int argc, char **argv);
int cmd_claims(int argc, char **argv);
int cmd_mqar(int argc, char **argv);

typedef enum { OPT_INT, OPT_U64, OPT_FLOAT, OPT_STR, OPT_FLAG } opt_type;
typedef struct {
    const char *name; /* without the leading "--" */
    opt_type type;
    void *dst;        /* int*, uint64_t*, float*, const char**, int* (flag) */
    const char *help;
    int *seen;        /* optional: set to 1 when given */
} cli_opt;

#define CLI_MAX_OPTS 64
typedef struct {
    const char *usage;   /* "hydra init [options]" */
    const char *summary; /* one paragraph shown by --help */
    cli_opt opts[CLI_MAX_OPTS];
    int n;
} cli_spec;

void cli_add(cli_spec *s, const char *name, opt_type t, void *dst, const char *help);
/* Parses argv into the table. Returns 0 to continue, 1 if --help was printed
 * (exit 0), -1 on a usage error (already reported on stderr; exit 2). */
int cli_parse(cli_spec *s, int argc, char **argv);

/* The config flags (--config FILE, --d-model, --n-layers, ...). Call
 * cli_config_resolve after parsing: loads the file first, then applies flags. */
typedef struct {
    hydra_config cfg;
    const char *config_path;
    int d_model, n_layers, n_heads, head_dim, swa_every, window, vocab, conv_width, mlp_multiple, untied;
    const char *pattern;
    float init_std, init_dt_min, init_dt_max;
} cli_config;
void cli_add_config_opts(cli_spec *s, cli_config *c);
int cli_config_resolve(cli_config *c); /* 0 ok, -1 error reported */

/* Optimizer flags shared by train and mqar: --optimizer --lr --muon-lr
 * --muon-rms-match --weight-decay --beta1 --beta2 --warmup --decay
 * --min-lr-ratio --grad-clip. Resolve after parsing (warmup defaults to 5%
 * of steps; the schedule ends at steps). */
typedef struct {
    const char *optimizer, *decay;
    int warmup, muon_rms;
    float lr, muon_lr, wd, clip, min_lr, b1, b2;
} cli_optim;
void cli_add_optim_opts(cli_spec *s, cli_optim *o);
int cli_optim_resolve(const cli_optim *o, int steps, hydra_optim_opts *out); /* 0 ok, -1 reported */

/* Sampling flags shared by generate, stream and factbank ask:
 * --temperature --top-k --top-p --seed --stop. */
typedef struct {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
    int stop; /* token id, -1 = none */
} cli_sampling;
/* Adds the flags with defaults (temperature as given: 1 for sampling, 0 for greedy commands). */
void cli_add_sampling_opts(cli_spec *s, cli_sampling *o, float default_temperature);
/* Copies the flags into g (sampling, seed, stop token); sets on_token to cli_print_token. */
void cli_sampling_apply(const cli_sampling *o, hydra_gen_opts *g);
/* Streams a byte token to stdout (ids >= 256 are specials: not printed). */
int cli_print_token(int32_t tok, void *user);
/* Rewrites a bare "-n" argument to "--n" so both spellings work. */
void cli_alias_n(int argc, char **argv);

/* Where a command runs its model: --device cpu|cuda|cuda:N and --precision
 * bf16|f32 (the GPU default is bf16; f32 turns tensor cores off). With the
 * prefix "draft-" (the only other) the flags are --draft-device / --draft-precision. */
typedef struct {
    const char *device, *precision;
} cli_device;
void cli_add_device_opts(cli_spec *s, cli_device *d, const char *prefix);
/* Checks the flags' values after parsing; -1 = reported on stderr (exit 2). */
int cli_device_check(const char *cmd, const cli_device *d);
/* Load a checkpoint (bf16: the matrices in bf16 only) and move it to d's
 * device. On failure the model is freed and the status returned (message in
 * hydra_last_error), like hydra_model_load. */
hydra_status cli_model_load(const char *path, int bf16, const char *quant, const cli_device *d, hydra_model **out);
/* --quant int8|int4 (docs/quantization.md) for the inference commands, and
 * its check: 0, or -1 after printing why (an unknown name, with --bf16). */
void cli_add_quant_opt(cli_spec *s, const char **quant);
int cli_quant_check(const char *cmd, const char *quant, int bf16);
/* Move an existing model to d's device; same contract. */
hydra_status cli_model_place(hydra_model *m, const cli_device *d);

/* Report a library failure: "hydra <cmd>: <what>: <last error>". Returns 1. */
int cli_fail(const char *cmd, const char *what, hydra_status st);
/* The layer schedule ("DDDS...") into buf [HYDRA_MAX_LAYERS + 1]; returns buf. */
const char *cli_schedule(const hydra_config *c, char *buf);
/* The small recall models' shape (`hydra mqar`, `hydra factbank train-mqar`):
 * vocab 64, d_model 64, 2 heads x 32, MLP multiple 16, and the given layers. */
void cli_small_recall_config(hydra_config *c, int n_layers, int window, const char *pattern);
/* Human-readable byte count into buf. */
const char *cli_bytes(double bytes, char *buf, size_t n);
/* mkdir -p; 0 on success (errno set otherwise). */
int cli_mkdir_p(const char *path);
/* Median sgemm GFLOP/s of an n^3 product through hydra_op_matmul (reps <= 32). */
double cli_gemm_peak_gflops(int n, int reps);

/* plot_svg.c: train loss as a line (x, y [n]) and validation loss as dots
 * (vx, vy [nv]). Returns 0 on success. */
int cli_write_loss_svg(const char *path, const char *title, const double *x, const double *y, int n,
                       const double *vx, const double *vy, int nv);

/* bench_delta.c */
#include "bench.h"
#endif
