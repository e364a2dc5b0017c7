/* bench_factbank.c — FactBank measurements for `hydra bench --factbank`:
 * the vector memory's capacity curve (top-1 recall vs facts written at
 * d = 1024) and, given a model, key-value recall with the facts in context vs
 * with the facts in a bank file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "hydralm_factbank.h"
#include "hydralm_ops.h"

static void fill_normal_b(float *x, size_t n, uint64_t seed) {
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = hydra_rng_normal(&r);
}

void hydra_bench_factbank(FILE *out) {
    const int d = 1024;
    const int ns[] = {100, 250, 500, 750, 1000, 1250, 1500, 2000, 3000, 4000, 6000, 8000};
    const int nn = (int)(sizeof ns / sizeof ns[0]), N = ns[nn - 1];
    struct {
        const char *name;
        int heads;
        hydra_vecmem_feature f;
    } cfgs[] = {{"linear H=4", 4, HYDRA_VECMEM_LINEAR},
                {"cubic H=1", 1, HYDRA_VECMEM_CUBIC},
                {"cubic H=4", 4, HYDRA_VECMEM_CUBIC}};
    const int nc = (int)(sizeof cfgs / sizeof cfgs[0]);
    float *K = malloc(sizeof(float) * (size_t)N * d), *V = malloc(sizeof(float) * (size_t)N * d);
    float *R = malloc(sizeof(float) * (size_t)N * d);
    double acc[3][16], cosv[3][16], secs[3];
    if (!K || !V || !R) {
        fprintf(out, "bench factbank: out of memory\n");
        goto done;
    }
    fill_normal_b(K, (size_t)N * d, 101);
    fill_normal_b(V, (size_t)N * d, 102);
    for (int i = 0; i < N; i++) { /* unit values (cosine = dot) */
        double s = 0;
        for (int t = 0; t < d; t++) s += (double)V[(size_t)i * d + t] * V[(size_t)i * d + t];
        for (int t = 0; t < d; t++) V[(size_t)i * d + t] = (float)(V[(size_t)i * d + t] / sqrt(s));
    }
    fprintf(out, "FactBank vector memory: capacity at d_key = d_value = %d, alpha = beta = 1, random Gaussian keys,\n"
                 "unit random values; top-1 = recall's nearest stored value (cosine) is the right one, over all\n"
                 "facts written so far; cos = mean cosine of recall to the right value.\n\n", d);
    for (int c = 0; c < nc; c++) {
        hydra_vecmem_opts o = hydra_vecmem_opts_default(d, d);
        o.n_heads = cfgs[c].heads;
        o.feature = cfgs[c].f;
        hydra_vecmem *vm;
        if (hydra_vecmem_create(&o, &vm)) {
            fprintf(out, "bench factbank: %s\n", hydra_last_error());
            goto done;
        }
        int written = 0;
        secs[c] = 0;
        for (int k = 0; k < nn; k++) {
            double t0 = hydra_now_seconds();
            hydra_vecmem_memorize(vm, K + (size_t)written * d, V + (size_t)written * d, (size_t)(ns[k] - written));
            secs[c] += hydra_now_seconds() - t0;
            written = ns[k];
            hydra_vecmem_recall(vm, K, (size_t)written, R);
            hydra_vecmem_score(R, V, (size_t)written, d, &acc[c][k], &cosv[c][k]);
        }
        hydra_vecmem_free(vm);
    }
    fprintf(out, "| facts n | n / d |");
    for (int c = 0; c < nc; c++) fprintf(out, " %s top-1 | cos |", cfgs[c].name);
    fprintf(out, "\n|---:|---:|");
    for (int c = 0; c < nc; c++) fprintf(out, "---:|---:|");
    fprintf(out, "\n");
    for (int k = 0; k < nn; k++) {
        fprintf(out, "| %d | %.2f |", ns[k], (double)ns[k] / d);
        for (int c = 0; c < nc; c++) fprintf(out, " %.4f | %.3f |", acc[c][k], cosv[c][k]);
        fprintf(out, "\n");
    }
    fprintf(out, "\nmemory bytes: H x d x d x 4 = %.1f MiB at H = 4 (%.1f MiB at H = 1), whatever n.\n",
            4.0 * d * d * 4 / 1048576.0, 1.0 * d * d * 4 / 1048576.0);
    fprintf(out, "write time for %d facts:", N);
    for (int c = 0; c < nc; c++) fprintf(out, " %s %.2f s%s", cfgs[c].name, secs[c], c + 1 < nc ? "," : "\n");
done:
    free(K), free(V), free(R);
}

/* ------------------------------------------------------ model-level demo */
/* Key-value recall in the Zoology MQAR layout: keys are ids in [1, V/2),
 * values in [V/2, V); the facts are n_pairs pairs "k v"; a query is a key and
 * the answer is the next token. Accuracy = greedy next token == value.
 *   in context: one forward over facts ++ key, from an empty state
 *   bank:       facts written into a bank file by another process (`hydra
 *               factbank write --ids`), loaded here, mounted (restore, or
 *               replace into an empty state), then key. */
/* Run `hydra factbank write --model M --ids "..." --out path --quiet` as a
 * separate process (this executable). Returns 0 on success. */
static int spawn_writer(const char *model_path, const int32_t *ids, int n, const char *path) {
    size_t cap = (size_t)n * 12 + 1, k = 0;
    char *s = malloc(cap);
    if (!s) return -1;
    s[0] = 0;
    for (int i = 0; i < n; i++) k += (size_t)snprintf(s + k, cap - k, "%d ", ids[i]);
    char *args[] = {(char *)"hydra", (char *)"factbank", (char *)"write", (char *)"--model", (char *)model_path,
                    (char *)"--ids", s, (char *)"--out", (char *)path, (char *)"--quiet", (char *)"--threads",
                    (char *)"1", NULL};
    extern char **environ;
    pid_t pid;
    int status = 0, rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
    free(s);
    if (rc != 0) return -1;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return 0;
}

int hydra_bench_factbank_model(FILE *out, const char *model_path, int n_pairs, int n_trials, unsigned long long seed) {
    hydra_model *m = NULL;
    hydra_status st = hydra_model_load(model_path, &m);
    if (st) return cli_fail("bench", "loading the factbank model", st);
    const int V = hydra_model_config(m)->vocab_size, half = V / 2;
    if (n_pairs < 1 || n_pairs > half - 1) {
        fprintf(out, "bench factbank: %d pairs do not fit a vocabulary of %d (keys in [1, %d))\n", n_pairs, V, half);
        hydra_model_free(m);
        return 1;
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/hydra_bench_factbank_%d.hbk", (int)getpid());
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)(2 * n_pairs + 1));
    float *logits = malloc(sizeof(float) * (size_t)V);
    hydra_state *live = NULL;
    hydra_factbank *b = NULL, *loaded = NULL;
    hydra_rng rng;
    hydra_rng_seed(&rng, seed);
    long hit_ctx = 0, hit_restore = 0, hit_replace = 0, total = 0;
    double t_ctx = 0, t_bank = 0;
    if ((st = hydra_state_create(m, &live)) || (st = hydra_factbank_create(m, &b))) goto fail; /* b: size only */
    for (int trial = 0; trial < n_trials; trial++) {
        /* distinct keys, random values */
        for (int i = 0; i < n_pairs; i++) {
            int32_t k;
            int dup;
            do {
                k = 1 + (int32_t)(hydra_rng_uniform(&rng) * (half - 1));
                dup = 0;
                for (int j = 0; j < i; j++) dup |= seq[2 * j] == k;
            } while (dup);
            seq[2 * i] = k;
            seq[2 * i + 1] = half + (int32_t)(hydra_rng_uniform(&rng) * (V - half));
        }
        /* Another process (this binary, `hydra factbank write --ids ...`) writes the bank file;
         * this one loads it. */
        double t0 = hydra_now_seconds();
        if (spawn_writer(model_path, seq, 2 * n_pairs, path)) {
            fprintf(out, "bench factbank: the writer process failed\n");
            goto fail_quiet;
        }
        if ((st = hydra_factbank_load(m, path, &loaded))) goto fail;
        t_bank += hydra_now_seconds() - t0;
        for (int q = 0; q < n_pairs; q++) {
            int32_t key = seq[2 * q], val = seq[2 * q + 1], saved = seq[2 * n_pairs];
            int am;
            /* in context */
            seq[2 * n_pairs] = key;
            t0 = hydra_now_seconds();
            if ((st = hydra_forward(m, seq, 1, 2 * n_pairs + 1, NULL, HYDRA_LOGITS_LAST, logits))) goto fail;
            t_ctx += hydra_now_seconds() - t0;
            seq[2 * n_pairs] = saved;
            am = 0;
            for (int v = 1; v < V; v++)
                if (logits[v] > logits[am]) am = v;
            hit_ctx += am == val;
            /* bank, restore */
            if ((st = hydra_factbank_mount(loaded, live, HYDRA_MOUNT_RESTORE)) ||
                (st = hydra_step(m, live, key, logits)))
                goto fail;
            am = 0;
            for (int v = 1; v < V; v++)
                if (logits[v] > logits[am]) am = v;
            hit_restore += am == val;
            /* bank, replace into an empty state (DeltaNet memory only) */
            hydra_state_reset(live);
            if ((st = hydra_factbank_mount(loaded, live, HYDRA_MOUNT_REPLACE)) ||
                (st = hydra_step(m, live, key, logits)))
                goto fail;
            am = 0;
            for (int v = 1; v < V; v++)
                if (logits[v] > logits[am]) am = v;
            hit_replace += am == val;
            total++;
        }
        hydra_factbank_free(loaded);
        loaded = NULL;
    }
    {
        double a_ctx = (double)hit_ctx / total, a_res = (double)hit_restore / total, a_rep = (double)hit_replace / total;
        char b1[32];
        fprintf(out, "FactBank model-level recall: %s, %d pairs x %d trials (%ld queries), bank %s\n", model_path,
                n_pairs, n_trials, total, cli_bytes((double)hydra_factbank_bytes(b), b1, sizeof b1));
        fprintf(out, "| setting | accuracy | vs in context |\n|---|---:|---:|\n");
        fprintf(out, "| facts in context (one forward) | %.4f | 1.000 |\n", a_ctx);
        char r1[16] = "n/a", r2[16] = "n/a"; /* ratios are undefined when in-context accuracy is 0 */
        if (a_ctx > 0) snprintf(r1, sizeof r1, "%.3f", a_res / a_ctx), snprintf(r2, sizeof r2, "%.3f", a_rep / a_ctx);
        fprintf(out, "| bank file, mount restore | %.4f | %s |\n", a_res, r1);
        fprintf(out, "| bank file, mount replace (DeltaNet S only, empty SWA) | %.4f | %s |\n", a_rep, r2);
        fprintf(out, "(chance = %.4f; writer process + load %.3f s per trial; in-context forwards %.3f s per query)\n",
                1.0 / (V - half), t_bank / n_trials, t_ctx / total);
    }
    unlink(path);
    free(seq), free(logits);
    hydra_state_free(live);
    hydra_factbank_free(b);
    hydra_model_free(m);
    return 0;
fail:
    cli_fail("bench", "factbank model recall", st);
fail_quiet:
    unlink(path);
    free(seq), free(logits);
    hydra_state_free(live);
    hydra_factbank_free(b), hydra_factbank_free(loaded);
    hydra_model_free(m);
    return 1;
}
