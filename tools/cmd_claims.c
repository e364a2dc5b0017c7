/* hydra claims — the claims gate (issue 6, docs/claims.md): runs every
 * headline claim as a thresholded measurement, prints one line per claim,
 * writes JSON / markdown, exits non-zero unless every claim passes.
 *
 * Cross-process steps: this binary spawns itself (/proc/self/exe) to write
 * claim 6's vector memory (`hydra claims --internal-vecbank-write ...`), to
 * train the small MQAR model (`hydra factbank train-mqar`) and to write the
 * model-level banks (`hydra factbank write --ids`). */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hydralm_claims.h"

extern char **environ;

/* Run /proc/self/exe with argv (NULL-terminated); stdout/stderr to /dev/null
 * unless verbose. 0 on exit status 0. */
static int spawn_self(char *const *args, int verbose) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (!verbose) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    int status = 0, rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return 0;
}

static int vec_writer(const char *path, uint64_t seed, int n, int d, int heads, void *user) {
    (void)user;
    char s_seed[32], s_n[16], s_d[16], s_h[16];
    snprintf(s_seed, sizeof s_seed, "%llu", (unsigned long long)seed);
    snprintf(s_n, sizeof s_n, "%d", n);
    snprintf(s_d, sizeof s_d, "%d", d);
    snprintf(s_h, sizeof s_h, "%d", heads);
    char *args[] = {"hydra", "claims", "--internal-vecbank-write", (char *)path, "--seed", s_seed, "--vec-facts", s_n,
                    "--vec-dim", s_d, "--vec-heads", s_h, NULL};
    return spawn_self(args, 0);
}

static int bank_writer(const char *model, const int32_t *ids, int n, const char *path, void *user) {
    (void)user;
    size_t cap = (size_t)n * 12 + 1, k = 0;
    char *s = malloc(cap);
    if (!s) return -1;
    s[0] = 0;
    for (int i = 0; i < n; i++) k += (size_t)snprintf(s + k, cap - k, "%d ", ids[i]);
    char *args[] = {"hydra", "factbank", "write", "--model", (char *)model, "--ids", s, "--out", (char *)path,
                    "--quiet", "--threads", "1", NULL};
    int rc = spawn_self(args, 0);
    free(s);
    return rc;
}

static void on_progress(const char *claim, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "  [%s] %s\n", claim, msg);
}

static char *cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return buf;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(buf, n, "%s", p);
            }
            break;
        }
    fclose(f);
    return buf;
}

static json_t *values_json(const hydra_claim_value *v, int n, int with_op) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        json_t *x = isfinite(v[i].value) ? json_real(v[i].value) : json_null();
        if (with_op) {
            json_t *t = json_object();
            json_object_set_new(t, "op", json_string(v[i].op));
            json_object_set_new(t, "value", x);
            json_object_set_new(o, v[i].name, t);
        } else
            json_object_set_new(o, v[i].name, x);
    }
    return o;
}

static int write_json(const char *path, const hydra_claim_result *r, int n, uint64_t seed, const char *budget,
                      double total_s, int threads, const char *date, int passed) {
    json_t *root = json_object(), *env = json_object(), *arr = json_array();
    char cpu[256];
    struct utsname u;
    json_object_set_new(env, "hydra_version", json_string(HYDRA_VERSION_STRING));
    json_object_set_new(env, "blas", json_string(hydra_blas_info()));
    json_object_set_new(env, "threads", json_integer(threads));
    json_object_set_new(env, "cpu_model", json_string(cpu_model(cpu, sizeof cpu)));
    json_object_set_new(env, "online_cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    if (!uname(&u)) {
        char k[400];
        snprintf(k, sizeof k, "%s %s %s", u.sysname, u.release, u.machine);
        json_object_set_new(env, "kernel", json_string(k));
    }
    json_object_set_new(env, "date", json_string(date));
    json_object_set_new(root, "seed", json_integer((json_int_t)seed));
    json_object_set_new(root, "budget", json_string(budget));
    json_object_set_new(root, "runtime_seconds", json_real(total_s));
    json_object_set_new(root, "passed", json_boolean(passed));
    json_object_set_new(root, "environment", env);
    for (int i = 0; i < n; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "name", json_string(r[i].name));
        json_object_set_new(c, "description", json_string(r[i].description));
        json_object_set_new(c, "status", json_string(hydra_claim_status_str(r[i].status)));
        json_object_set_new(c, "summary", json_string(r[i].summary));
        json_object_set_new(c, "seed", json_integer((json_int_t)seed));
        json_object_set_new(c, "budget", json_string(budget));
        json_object_set_new(c, "runtime_seconds", json_real(r[i].seconds));
        json_object_set_new(c, "thresholds", values_json(r[i].thresholds, r[i].n_thresholds, 1));
        json_object_set_new(c, "measured", values_json(r[i].values, r[i].n_values, 0));
        if (r[i].n_curves) {
            json_t *cv = json_object();
            for (int k = 0; k < r[i].n_curves; k++) {
                json_t *pts = json_array();
                for (int p = 0; p < r[i].curves[k].n; p++)
                    json_array_append_new(pts, json_pack("[f,f]", r[i].curves[k].x[p], r[i].curves[k].y[p]));
                json_object_set_new(cv, r[i].curves[k].name, pts);
            }
            json_object_set_new(c, "curves", cv);
        }
        json_array_append_new(arr, c);
    }
    json_object_set_new(root, "claims", arr);
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    return rc;
}

static int write_md(const char *path, const hydra_claim_result *r, int n, uint64_t seed, const char *budget,
                    double total_s, int threads, const char *date) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    char cpu[256];
    fprintf(f, "# HydraLM-C claims gate results\n\n");
    fprintf(f, "`hydra claims` — hydra %s, budget `%s`, seed %llu, %s, %d threads, %s; %s. Total %.1f s.\n\n",
            HYDRA_VERSION_STRING, budget, (unsigned long long)seed, cpu_model(cpu, sizeof cpu), threads,
            hydra_blas_info(), date, total_s);
    fprintf(f, "| claim | status | result | thresholds | seconds |\n|---|---|---|---|---:|\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "| %s | %s | %s | ", r[i].name, hydra_claim_status_str(r[i].status), r[i].summary);
        for (int t = 0; t < r[i].n_thresholds; t++) {
            const hydra_claim_value *x = &r[i].thresholds[t];
            fprintf(f, "%s`%s %s %g` (%.4g)", t ? "<br>" : "", x->name, x->op, x->value,
                    hydra_claim_value_get(&r[i], x->name));
        }
        fprintf(f, " | %.1f |\n", r[i].seconds);
    }
    fprintf(f, "\n## Measured values\n");
    for (int i = 0; i < n; i++) {
        if (!r[i].n_values) continue;
        fprintf(f, "\n### %s\n\n%s\n\n| value | measured |\n|---|---:|\n", r[i].name, r[i].description);
        for (int v = 0; v < r[i].n_values; v++) fprintf(f, "| %s | %.6g |\n", r[i].values[v].name, r[i].values[v].value);
        for (int k = 0; k < r[i].n_curves; k++) {
            const hydra_claim_curve *c = &r[i].curves[k];
            fprintf(f, "\n%s:\n\n| x |", c->name);
            for (int p = 0; p < c->n; p++) fprintf(f, " %g |", c->x[p]);
            fprintf(f, "\n|---|");
            for (int p = 0; p < c->n; p++) fprintf(f, "---|");
            fprintf(f, "\n| y |");
            for (int p = 0; p < c->n; p++) fprintf(f, " %.3f |", c->y[p]);
            fprintf(f, "\n");
        }
    }
    fprintf(f, "\nStatuses: PASS (every threshold holds), FAIL, TODO (not implemented: never a pass), ERROR "
               "(the measurement failed). See docs/claims.md.\n");
    return fclose(f) ? -1 : 0;
}

int cmd_claims(int argc, char **argv) {
    cli_spec s = {.usage = "hydra claims --all --seed S [--budget ci|paper] [--claim NAME[,NAME..]] [--json F] [--md F]",
                  .summary = "The claims gate: measures each headline claim against its thresholds, prints one\n"
                             "line per claim ([PASS] / [FAIL] / [TODO] / [ERROR]) and a summary, and exits 1\n"
                             "unless every selected claim passes (TODO = not implemented counts as a failure).\n"
                             "No external data. docs/claims.md describes each claim."};
    int spec_vocab = -1, spec_tokens = -1, lengen_steps = 0, lengen_len = 0, lengen_streams = 0, no_baseline = 0;
    float lengen_lr = 0;
    int muon_steps = 0, spec_steps = 0;
    int all = 0, threads = 0, quiet = 0, vec_facts = -1, vec_dim = -1, vec_heads = -1, mqar_steps = 0;
    uint64_t seed = 0, stream_tokens = 0;
    const char *budget_s = "ci", *claim = NULL, *json_path = NULL, *md_path = NULL, *fb_model = NULL,
               *internal_vec = NULL;
    cli_add(&s, "all", OPT_FLAG, &all, "run every registered claim");
    cli_add(&s, "claim", OPT_STR, &claim, "run only these claims (comma-separated; full name or claim_N)");
    cli_add(&s, "seed", OPT_U64, &seed, "seed of every model, fact and stream (default 0)");
    cli_add(&s, "budget", OPT_STR, &budget_s, "ci (default: <= 5 min on 2 cores) or paper (larger samples)");
    cli_add(&s, "json", OPT_STR, &json_path, "write results (thresholds, values, environment) as JSON");
    cli_add(&s, "md", OPT_STR, &md_path, "write results as a markdown report (RESULTS.md)");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: all cores)");
    cli_add(&s, "quiet", OPT_FLAG, &quiet, "no progress lines on stderr");
    cli_add(&s, "stream-tokens", OPT_U64, &stream_tokens, "claim 3: tokens to stream (default 1048576; for quick runs)");
    cli_add(&s, "lengen-steps", OPT_INT, &lengen_steps, "claim 1: training steps per arm (default 300 ci, 800 paper)");
    cli_add(&s, "lengen-lr", OPT_FLOAT, &lengen_lr, "claim 1: peak learning rate (default 3e-3)");
    cli_add(&s, "lengen-len", OPT_INT, &lengen_len, "claim 1: evaluation stream length (default 32768)");
    cli_add(&s, "lengen-streams", OPT_INT, &lengen_streams, "claim 1: long streams for the hybrid (default 4 ci, 16 paper)");
    cli_add(&s, "no-baseline", OPT_FLAG, &no_baseline, "claim 1: skip the full-attention baseline (quick runs)");
    cli_add(&s, "muon-steps", OPT_INT, &muon_steps, "claim 5: steps per run (default 400)");
    cli_add(&s, "spec-train-steps", OPT_INT, &spec_steps, "claim 7: training steps of target and draft (default 250)");
    cli_add(&s, "factbank-model", OPT_STR, &fb_model,
            "claim 6: use this MQAR checkpoint (8 pairs, hydra factbank train-mqar) instead of claim 2's hybrid");
    cli_add(&s, "mqar-steps", OPT_INT, &mqar_steps, "claim 2 (and its model in claim 6): steps per arm (default 400 ci, 800 paper)");
    cli_add(&s, "vec-facts", OPT_INT, &vec_facts, "claim 6: facts in the vector memory (default 1000)");
    cli_add(&s, "vec-dim", OPT_INT, &vec_dim, "claim 6: key/value dimension (default 1024)");
    cli_add(&s, "vec-heads", OPT_INT, &vec_heads, "claim 6: heads (default 4)");
    cli_add(&s, "spec-vocab", OPT_INT, &spec_vocab, "claim 4: vocabulary of the enumeration (default 8)");
    cli_add(&s, "spec-tokens", OPT_INT, &spec_tokens, "claim 4: sequence length of the enumeration (default 5)");
    cli_add(&s, "internal-vecbank-write", OPT_STR, &internal_vec, "(internal) claim 6's writer process");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    hydra_claims_budget budget;
    if (!strcmp(budget_s, "ci")) budget = HYDRA_BUDGET_CI;
    else if (!strcmp(budget_s, "paper")) budget = HYDRA_BUDGET_PAPER;
    else {
        fprintf(stderr, "hydra claims: --budget must be ci or paper (got '%s')\n", budget_s);
        return 2;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    hydra_claims_opts o = hydra_claims_opts_default(budget, seed);
    if (vec_facts > 0) o.vec_facts = vec_facts;
    if (vec_dim > 0) o.vec_dim = vec_dim;
    if (vec_heads > 0) o.vec_heads = vec_heads;
    if (spec_vocab > 0) o.spec_vocab = spec_vocab;
    if (spec_tokens > 0) o.spec_tokens = spec_tokens;
    o.lengen_steps = lengen_steps;
    o.mqar_steps = mqar_steps;
    o.muon_steps = muon_steps;
    o.spec_train_steps = spec_steps;
    o.lengen_lr = lengen_lr;
    o.lengen_eval_len = lengen_len;
    o.lengen_streams = lengen_streams;
    if (no_baseline) o.lengen_baseline = -1;
    if (internal_vec) {
        hydra_status st = hydra_claims_vecbank_write(internal_vec, seed, o.vec_facts, o.vec_dim, o.vec_heads);
        return st ? cli_fail("claims", "writing the vector bank", st) : 0;
    }
    if (all == (claim != NULL)) {
        fprintf(stderr, "hydra claims: give exactly one of --all or --claim NAME (see --help)\n");
        return 2;
    }
    if (stream_tokens) o.stream_tokens = (int64_t)stream_tokens;
    /* selection */
    const char *names[HYDRA_CLAIMS_MAX];
    int n_names = 0;
    char *sel = claim ? strdup(claim) : NULL;
    if (claim) {
        for (char *tok = strtok(sel, ","); tok; tok = strtok(NULL, ",")) {
            if (hydra_claim_find(tok) < 0) {
                fprintf(stderr, "hydra claims: no claim '%s'; claims are:\n", tok);
                for (int i = 0; i < hydra_claims_count(); i++) fprintf(stderr, "  %s\n", hydra_claim_name(i));
                free(sel);
                return 2;
            }
            if (n_names < HYDRA_CLAIMS_MAX) names[n_names++] = tok;
        }
    }
    if (!quiet) o.progress = on_progress;
    o.vec_writer = vec_writer;
    o.bank_writer = bank_writer;
    double t_start = cli_now();
    o.factbank_model = fb_model;
    hydra_claim_result res[HYDRA_CLAIMS_MAX];
    int n = 0;
    hydra_status st = hydra_claims_run(&o, claim ? names : NULL, n_names, res, HYDRA_CLAIMS_MAX, &n);
    free(sel);
    if (st) return cli_fail("claims", "running the claims", st);
    double total = cli_now() - t_start;
    int passed = hydra_claims_all_passed(res, n), n_pass = 0, n_fail = 0, n_todo = 0, n_err = 0;
    for (int i = 0; i < n; i++) {
        printf("[%s] %s · %s\n", hydra_claim_status_str(res[i].status), res[i].name, res[i].summary);
        n_pass += res[i].status == HYDRA_CLAIM_PASS;
        n_fail += res[i].status == HYDRA_CLAIM_FAIL;
        n_todo += res[i].status == HYDRA_CLAIM_NOT_IMPLEMENTED;
        n_err += res[i].status == HYDRA_CLAIM_ERROR;
    }
    printf("%s · %d passed, %d failed, %d not implemented, %d errors · budget %s · seed %llu · %.1f s\n",
           passed ? "CLAIMS PASS" : "CLAIMS FAIL", n_pass, n_fail, n_todo, n_err, budget_s, (unsigned long long)seed,
           total);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int nthreads = hydra_get_num_threads();
    if (json_path && write_json(json_path, res, n, seed, budget_s, total, nthreads, date, passed)) {
        fprintf(stderr, "hydra claims: could not write %s\n", json_path);
        return 1;
    }
    if (md_path && write_md(md_path, res, n, seed, budget_s, total, nthreads, date)) {
        fprintf(stderr, "hydra claims: could not write %s\n", md_path);
        return 1;
    }
    return passed ? 0 : 1;
}
