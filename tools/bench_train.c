/* bench_train.c — training-step benchmark (`hydra bench --train`, see bench/LOG.md
 * "## Training step").
 *
 * For d_model 256 / 4 layers / 4 heads x 64 and d_model 512 / 8 layers /
 * 8 heads x 64 (vocab 256, layer i is SWA when (i+1) % 4 == 0, SWA window
 * W = 256 = T, i.e. full causal attention within each sequence), T = 256,
 * B = 8: the median wall time of one full training step
 * (hydra_model_loss_grad + hydra_optimizer_step with AdamW defaults, i.e.
 * global-norm clip 1.0) after warm-up steps, and from it:
 *
 *   tokens/s  = B*T / median step seconds
 *   model FLOPs per step (the definition used for GFLOP/s and MFU):
 *       6 * N_mm * B*T                                   (forward 2, backward 4 per MAC)
 *     + per SWA layer and head: 3 * 4 * T * W_eff * d * B (QK^T and PV, fwd + 2x bwd)
 *     + per DeltaNet layer and head: 3 * 6 * dk * dv * B*T (p = S'k, S += u k^T, o = S q)
 *     N_mm = matmul parameters: every projection (GDN in_proj q|k|v|g|a|b and o_proj,
 *            attention q|k|v and o_proj, MLP gate|up and down) plus the tied head's V x C
 *            (the embedding lookup is not a matmul and is not counted again);
 *     W_eff = mean number of keys a query attends = (1/T) sum_t min(t+1, W) (128.5 at W = T = 256).
 *     Elementwise work (norms, conv, SiLU, softmax exp, optimizer) is not counted.
 *   MFU       = (model FLOPs / step seconds) / sgemm peak, the peak measured in the same run
 *               (1024^3 through hydra_op_matmul, median of 5; re-measured at the end as a
 *               check -- on a busy machine the peak, hence MFU, is unreliable).
 *   %matmul   = share of the step's wall time spent inside hydra matmuls (hydra_matmul_stats).
 *   peer      = python/train_peer.py (PyTorch, same model and step, chunked delta rule),
 *               run through /usr/bin/python3 in the same run with the same B, T, W and
 *               thread count; "unavailable" if python or torch is missing.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_ops.h"
#include "hydralm_train.h"

#define TR_T 256
#define TR_B 8
#define TR_W 256

/* Mean number of keys a query attends with window W (0 = unbounded) over T positions. */
static double w_eff_of(int T, int W) {
    double w = 0;
    for (int t = 0; t < T; t++) w += (W > 0 && W < t + 1) ? W : t + 1;
    return w / T;
}

/* Model FLOPs of one training step (see the file comment). */
double hydra_bench_train_flops(const hydra_config *c, int B, int T, double *n_mm_out) {
    const double C = c->d_model, H = c->n_heads, d = c->head_dim > 0 ? c->head_dim : c->d_model / c->n_heads;
    const double Hd = H * d, V = c->vocab_size;
    const int f0 = (8 * c->d_model + 2) / 3, mm = c->mlp_multiple > 0 ? c->mlp_multiple : 1;
    const double F = (double)((f0 + mm - 1) / mm * mm);
    const double w_eff = w_eff_of(T, c->window);
    double n_mm = V * C, extra = 0;
    for (int li = 0; li < c->n_layers; li++) {
        const char kind = hydra_config_layer_kind(c, li);
        n_mm += 3 * F * C;
        if (kind == HYDRA_LAYER_DELTANET) {
            n_mm += (4 * Hd + 2 * H) * C + C * Hd;
            extra += 3.0 * 6.0 * d * d * H * (double)B * T;
        } else {
            double we = w_eff;
            if (kind == HYDRA_LAYER_ATTN) we = w_eff_of(T, 0);
            n_mm += 3 * Hd * C + C * Hd;
            extra += 3.0 * 4.0 * T * we * d * H * B;
        }
    }
    *n_mm_out = n_mm;
    return 6.0 * n_mm * (double)B * T + extra;
}

/* Finds python/train_peer.py: $HYDRA_SOURCE_DIR, then next to the executable
 * (build dir inside the source tree), then this file's source directory. */
static int find_peer(char *buf, size_t n) {
    const char *src = getenv("HYDRA_SOURCE_DIR");
    if (src && *src) {
        snprintf(buf, n, "%s/python/train_peer.py", src);
        if (access(buf, R_OK) == 0) return 1;
    }
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, n, "%s/../python/train_peer.py", exe);
            if (access(buf, R_OK) == 0) return 1;
        }
    }
    char here[4096];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash) {
        *slash = 0;
        snprintf(buf, n, "%s/../python/train_peer.py", here);
        if (access(buf, R_OK) == 0) return 1;
    }
    return 0;
}

/* Runs the PyTorch peer; returns its tokens/s, or 0 if unavailable. */
static double run_peer(const hydra_config *c, int B, int T, int threads, int steps, char *why, size_t nwhy) {
    char script[4200], cmd[8600];
    if (access("/usr/bin/python3", X_OK) != 0) return snprintf(why, nwhy, "no /usr/bin/python3"), 0.0;
    if (!find_peer(script, sizeof script)) return snprintf(why, nwhy, "python/train_peer.py not found"), 0.0;
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s' --d-model %d --n-layers %d --n-heads %d --head-dim %d --vocab %d "
             "--window %d --swa-every %d --batch %d --seq %d --threads %d --steps %d --warmup 1 2>&1",
             script, c->d_model, c->n_layers, c->n_heads, c->head_dim, c->vocab_size, c->window, c->swa_every, B,
             T, threads, steps);
    FILE *p = popen(cmd, "r");
    if (!p) return snprintf(why, nwhy, "popen failed"), 0.0;
    char line[8192];
    double tps = 0.0;
    why[0] = 0;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "\"tokens_per_s\":");
        if (s) tps = strtod(s + 15, NULL);
        else if (!why[0]) snprintf(why, nwhy, "%.*s", (int)strcspn(line, "\n"), line);
    }
    int rc = pclose(p);
    if (rc != 0 || tps <= 0) {
        if (!why[0]) snprintf(why, nwhy, "exit status %d", rc);
        return 0.0;
    }
    return tps;
}

typedef struct {
    const char *name;
    int C, L, H;
} train_cfg;

/* One config's median step at the current thread count: tokens/s etc. into *r. */
#define N_PH 8
typedef struct {
    double sec, share, loss, flops, n_mm;
    double ph[N_PH]; /* seconds per timed step: loss_grad phases, then the optimizer */
    const char *ph_names[N_PH];
    int n_ph;
    size_t np;
} step_result;

static int time_steps(const hydra_config *c, int B, int T, int warm, int reps, step_result *r) {
    hydra_model *m = NULL;
    hydra_optimizer *opt = NULL;
    hydra_status st = hydra_model_create(c, 1, &m);
    hydra_optim_opts oo = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    if (!st) st = hydra_optimizer_create(m, &oo, &opt);
    const size_t np = m ? hydra_model_n_params(m) : 0, BT = (size_t)B * T;
    float *grads = st ? NULL : malloc(np * sizeof(float));
    int32_t *tok = malloc((BT + B) * sizeof(int32_t)), *in = malloc(BT * sizeof(int32_t)),
            *tg = malloc(BT * sizeof(int32_t));
    int ok = !st && grads && tok && in && tg;
    if (ok) {
        uint64_t s = 0x243F6A8885A308D3ULL;
        for (size_t i = 0; i < BT + B; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            tok[i] = (int32_t)((s >> 33) % 256);
        }
        for (int b = 0; b < B; b++) /* windows of T+1 tokens: targets = inputs shifted by one */
            for (int t = 0; t < T; t++) {
                in[(size_t)b * T + t] = tok[(size_t)b * (T + 1) + t];
                tg[(size_t)b * T + t] = tok[(size_t)b * (T + 1) + t + 1];
            }
    }
    double ts[16], sh[16], t_opt = 0;
    for (int i = 0; i < warm + reps && ok; i++) {
        if (i == warm) hydra_train_profile_reset();
        hydra_matmul_stats_reset();
        hydra_matmul_stats_enable(1);
        hydra_train_profile_enable(1);
        double t0 = hydra_now_seconds();
        ok = !hydra_model_loss_grad(m, in, tg, NULL, B, T, grads, &r->loss, NULL);
        hydra_train_profile_enable(0);
        double t1 = hydra_now_seconds();
        ok = ok && !hydra_optimizer_step(opt, m, grads, NULL, NULL);
        double dt = hydra_now_seconds() - t0;
        if (i >= warm) t_opt += hydra_now_seconds() - t1;
        hydra_matmul_stats_enable(0);
        hydra_matmul_stats ms;
        hydra_matmul_stats_get(&ms);
        if (i >= warm) ts[i - warm] = dt, sh[i - warm] = ms.seconds / dt;
    }
    if (ok) {
        r->n_ph = hydra_train_profile_get(r->ph, r->ph_names, N_PH - 1);
        if (r->n_ph > N_PH - 1) r->n_ph = N_PH - 1;
        for (int k = 0; k < r->n_ph; k++) r->ph[k] /= reps;
        r->ph[r->n_ph] = t_opt / reps, r->ph_names[r->n_ph++] = "optimizer";
        r->sec = hydra_median(ts, reps), r->share = hydra_median(sh, reps), r->np = np;
        r->flops = hydra_bench_train_flops(c, B, T, &r->n_mm);
    }
    free(grads), free(tok), free(in), free(tg);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
    hydra_train_free_cache();
    return ok ? 0 : -1;
}

void hydra_bench_train(FILE *out, int quick, const int *threads, int n_threads, int peer_on) {
    const int B = TR_B, T = TR_T;
    const int warm = quick ? 1 : 2, reps = quick ? 3 : 5, peer_steps = quick ? 2 : 3;
    const train_cfg cfgs[2] = {{"d256 x 4L", 256, 4, 4}, {"d512 x 8L", 512, 8, 8}};
    double loadavg[3] = {0, 0, 0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &loadavg[0], &loadavg[1], &loadavg[2]) != 3) loadavg[0] = -1;
        fclose(la);
    }
    fprintf(out, "hydra bench --train — %s, load average %.2f %.2f %.2f\n", hydra_blas_info(), loadavg[0], loadavg[1],
            loadavg[2]);
    fprintf(out, "step = hydra_model_loss_grad + hydra_optimizer_step (AdamW), B=%d, T=%d, SWA window %d, vocab 256;\n"
                 "median of %d steps after %d warm-up; the sgemm peak (1024^3 through hydra_op_matmul, median of 5)\n"
                 "is measured at each thread count before its rows and again after them\n\n", B, T, TR_W, reps, warm);
    fprintf(out, "%-10s %7s %9s %10s %7s %9s %8s %6s %8s %11s %7s %9s\n", "config", "threads", "params", "tokens/s",
            "xfirst", "GFLOP/s", "peak GF", "MFU", "%matmul", "peer tok/s", "xpeer", "s/step");
    fflush(out);
    char peer_notes[2][512] = {"", ""}, peak_notes[512] = "";
    double first[2] = {0, 0};
    for (int ti = 0; ti < n_threads; ti++) {
        hydra_set_num_threads(threads[ti]);
        const int nt = hydra_get_num_threads();
        /* A burst of load during the runs deflates the peak (and inflates the MFU): measured twice. */
        const double peak = 1e9 * cli_gemm_peak_gflops(1024, 5);
        for (int ci = 0; ci < 2; ci++) {
            hydra_config c = hydra_config_default();
            c.d_model = cfgs[ci].C;
            c.n_layers = cfgs[ci].L;
            c.n_heads = cfgs[ci].H;
            c.head_dim = 64;
            c.vocab_size = 256;
            c.window = TR_W;
            c.swa_every = 4;
            c.pattern[0] = 0;
            step_result r;
            uint64_t bo0, bo1;
            hydra_backoff_stats(&bo0, NULL);
            if (time_steps(&c, B, T, warm, reps, &r)) {
                fprintf(out, "%-10s %7d error: %s\n", cfgs[ci].name, nt, hydra_last_error());
                continue;
            }
            hydra_backoff_stats(&bo1, NULL);
            const double tps = (double)B * T / r.sec, gfs = r.flops / r.sec;
            if (ti == 0) first[ci] = tps;
            char why[256], peer_s[32] = "-", ratio_s[32] = "-";
            const double peer = peer_on ? run_peer(&c, B, T, nt, peer_steps, why, sizeof why) : 0;
            if (peer > 0) {
                snprintf(peer_s, sizeof peer_s, "%.0f", peer);
                snprintf(ratio_s, sizeof ratio_s, "%.2fx", tps / peer);
            } else if (peer_on) {
                snprintf(peer_s, sizeof peer_s, "unavail.");
                snprintf(peer_notes[ci], sizeof peer_notes[ci], "peer: unavailable for %s (%s)", cfgs[ci].name, why);
            }
            fprintf(out, "%-10s %7d %9zu %10.0f %6.2fx %9.1f %8.1f %5.1f%% %7.1f%% %11s %7s %9.3f\n", cfgs[ci].name,
                    nt, r.np, tps, first[ci] > 0 ? tps / first[ci] : 0, gfs / 1e9, peak / 1e9, 100 * gfs / peak,
                    100 * r.share, peer_s, ratio_s, r.sec);
            if (n_threads == 1)
                fprintf(out, "%-10s   (model FLOPs/step %.1f G, matmul params %.2f M, final loss %.3f)\n", "",
                        r.flops / 1e9, r.n_mm / 1e6, r.loss);
            double tot = 0;
            for (int k = 0; k < r.n_ph; k++) tot += r.ph[k];
            fprintf(out, "%-10s   ms/step by phase:", "");
            for (int k = 0; k < r.n_ph; k++)
                fprintf(out, " %s %.1f (%.0f%%)%s", r.ph_names[k], 1e3 * r.ph[k], 100 * r.ph[k] / tot,
                        k + 1 < r.n_ph ? "," : "");
            fprintf(out, "; contention back-offs %llu\n", (unsigned long long)(bo1 - bo0));
            fflush(out);
        }
        const double peak2 = 1e9 * cli_gemm_peak_gflops(1024, 5);
        if (peak2 > 1.1 * peak) {
            size_t l = strlen(peak_notes);
            snprintf(peak_notes + l, sizeof peak_notes - l,
                     "%d threads: sgemm peak %.1f before, %.1f GFLOP/s after the rows -- the machine was busy, MFU "
                     "inflated\n", nt, peak / 1e9, peak2 / 1e9);
        }
    }
    for (int ci = 0; ci < 2; ci++)
        if (peer_notes[ci][0]) fprintf(out, "%s\n", peer_notes[ci]);
    fputs(peak_notes, out);
    fprintf(out,
            "\nmodel FLOPs/step = 6 x (matmul params incl. the tied head's V x C) x B*T\n"
            "  + per SWA layer and head 3 x 4*T*W_eff*d x B (W_eff = mean keys per query, %.1f here)\n"
            "  + per DeltaNet layer and head 3 x 6*dk*dv x B*T; elementwise work not counted.\n"
            "GFLOP/s = model FLOPs / median step time; MFU = that / the sgemm peak at the same thread count;\n"
            "xfirst = tokens/s vs the first thread count of the list; %%matmul = share of step time inside\n"
            "hydra matmuls (all callers); ms/step by phase: mean wall time of each phase of a step\n"
            "(hydra_train_profile_*: loss_grad split at phase boundaries, then the optimizer step);\n"
            "contention back-offs: started during the row's steps (docs/threads.md; 0 on a quiet machine);\n"
            "peer = python/train_peer.py (PyTorch %s, same model, same step incl. clip + AdamW,\n"
            "chunked delta rule, same B, T, W, threads), xpeer = C tokens/s / peer tokens/s.\n"
            "Targets: MFU >= 35%% at d512 (>= 40%% at 16 threads), >= 2x peer; d256 at 16 threads >= 3x 2 threads.\n",
            w_eff_of(TR_T, TR_W), "via /usr/bin/python3");
}
