/* bench_threads.c — `hydra bench --contention`: threads on a machine where one
 * core is busy (issue 20, docs/threads.md).
 *
 * The process pins itself to two CPUs (--cpus A,B; default the first it may
 * use and the next one on another physical core), then measures train, prefill and decode at small and default
 * sizes four ways: quiet 1 thread, quiet 2 threads, and the same while a
 * CPU hog (a forked busy loop pinned to CPU B) runs. The hog is started
 * before each loaded pair and killed right after it; it also dies with this
 * process (PR_SET_PDEATHSIG), on SIGINT/SIGTERM, and by itself after
 * HOG_MAX_S seconds, so it never outlives the benchmark. Each figure is the
 * total throughput over a time budget (not a median: on a loaded machine
 * the stalls are what a user meets). */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_train.h"

#define HOG_MAX_S 600

static volatile pid_t g_hog = 0;

static void hog_stop(void) {
    pid_t p = g_hog;
    if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
    }
    g_hog = 0;
}

static void on_signal(int sig) {
    if (g_hog > 0) kill(g_hog, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A busy loop pinned to `cpu`, bounded by HOG_MAX_S and by this process's life. */
static int hog_start(int cpu) {
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
        alarm(HOG_MAX_S);
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    g_hog = p;
    return 0;
}

/* Restricts this process and every OpenMP thread (already started or not) to `set`. */
static void pin_all(const cpu_set_t *set, int max_threads) {
    sched_setaffinity(0, sizeof *set, set);
    omp_set_num_threads(max_threads);
#pragma omp parallel num_threads(max_threads)
    sched_setaffinity(0, sizeof *set, set);
}

typedef enum { W_TRAIN, W_PREFILL, W_DECODE } work_kind;

typedef struct {
    const char *name;
    work_kind kind;
    int C, L, H, B, T; /* width, layers, heads (x 64; 0 = the default config), batch, tokens */
} workload;

/* Runs the workload repeatedly for at least `budget` seconds (after one
 * warm-up) and returns tokens per second over the whole span. */
typedef struct {
    hydra_model *m;
    hydra_optimizer *opt;
    hydra_state *st;
    float *grads, *logits;
    int32_t *in, *tg;
} work_ctx;

static double run_once(const workload *w, work_ctx *x) {
    if (w->kind == W_TRAIN) {
        if (hydra_model_loss_grad(x->m, x->in, x->tg, NULL, w->B, w->T, x->grads, NULL, NULL) ||
            hydra_optimizer_step(x->opt, x->m, x->grads, NULL, NULL))
            return -1;
        return (double)w->B * w->T;
    }
    if (w->kind == W_PREFILL) {
        hydra_state_reset(x->st);
        if (hydra_forward(x->m, x->in, 1, w->T, &x->st, HYDRA_LOGITS_LAST, x->logits)) return -1;
        return w->T;
    }
    for (int i = 0; i < 16; i++)
        if (hydra_step(x->m, x->st, x->in[i], x->logits)) return -1;
    return 16;
}

static double measure(const workload *w, work_ctx *x, double budget) {
    if (run_once(w, x) < 0) return -1;
    double t0 = hydra_now_seconds(), tok = 0, dt = 0;
    int n = 0;
    while (dt < budget || n < 2) {
        double k = run_once(w, x);
        if (k < 0) return -1;
        tok += k, n++;
        dt = hydra_now_seconds() - t0;
    }
    return tok / dt;
}

static int ctx_open(const workload *w, work_ctx *x) {
    memset(x, 0, sizeof *x);
    hydra_config c = hydra_config_default();
    if (w->C) {
        c.d_model = w->C, c.n_layers = w->L, c.n_heads = w->H, c.head_dim = 64;
        if (w->C < 256) c.head_dim = w->C / w->H, c.window = 128;
    }
    if (hydra_model_create(&c, 1, &x->m)) return -1;
    size_t BT = (size_t)w->B * w->T;
    x->in = malloc(BT * sizeof(int32_t));
    x->tg = malloc(BT * sizeof(int32_t));
    x->logits = malloc((size_t)c.vocab_size * sizeof(float));
    if (!x->in || !x->tg || !x->logits) return -1;
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < BT; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x->in[i] = (int32_t)((s >> 33) % (uint64_t)c.vocab_size);
        x->tg[i] = (int32_t)((s >> 41) % (uint64_t)c.vocab_size);
    }
    if (w->kind == W_TRAIN) {
        hydra_optim_opts oo = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
        x->grads = malloc(hydra_model_n_params(x->m) * sizeof(float));
        return !x->grads || hydra_optimizer_create(x->m, &oo, &x->opt) ? -1 : 0;
    }
    if (hydra_state_create(x->m, &x->st)) return -1;
    /* decode runs after a 512-token prefill, as in `hydra bench` */
    return w->kind == W_DECODE && hydra_forward(x->m, x->in, 1, w->T, &x->st, HYDRA_LOGITS_LAST, x->logits) ? -1 : 0;
}

static void ctx_close(work_ctx *x) {
    hydra_optimizer_free(x->opt);
    hydra_state_free(x->st);
    hydra_model_free(x->m);
    free(x->grads), free(x->logits), free(x->in), free(x->tg);
    hydra_train_free_cache();
}

/* 1 if CPUs a and b are hardware threads of one core (sysfs
 * thread_siblings_list of a, e.g. "0,8" or "0-1"); 0 if not or unknown. */
static int smt_siblings(int a, int b) {
    char path[96], buf[256];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", a);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    for (char *p = buf; ok && *p && *p != '\n';) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p) break;
        if (*end == '-') hi = strtol(end + 1, &end, 10);
        if (b >= lo && b <= hi) return 1;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    return 0;
}

/* Parses "A,B" into two CPU ids the process may use; default: the first one
 * and the next one on a different core. */
static int pick_cpus(const char *spec, int cpu[2]) {
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine)) return -1;
    if (spec && *spec) {
        char *end;
        long a = strtol(spec, &end, 10), b = *end == ',' ? strtol(end + 1, &end, 10) : -1;
        if (*end || a < 0 || b < 0 || a == b || a >= CPU_SETSIZE || b >= CPU_SETSIZE || !CPU_ISSET(a, &mine) ||
            !CPU_ISSET(b, &mine))
            return -1;
        cpu[0] = (int)a, cpu[1] = (int)b;
        return 0;
    }
    /* Default: the first CPU, and the next one on another core (two SMT
     * siblings share one core's units, which measures something else). */
    int n = 0;
    for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
        if (CPU_ISSET(i, &mine) && !(n == 1 && smt_siblings(cpu[0], i))) cpu[n++] = i;
    for (int i = 0; i < CPU_SETSIZE && n < 2; i++) /* one core only: its siblings it is */
        if (CPU_ISSET(i, &mine) && i != cpu[0]) cpu[n++] = i;
    return n == 2 ? 0 : -1;
}

int hydra_bench_contention(FILE *out, const char *cpus, const char *only, int quick) {
    int cpu[2];
    if (pick_cpus(cpus, cpu))
        return fprintf(stderr, "hydra bench --contention: --cpus wants two distinct CPUs this process may use, "
                               "e.g. 0,1 (got \"%s\")\n", cpus ? cpus : ""), 2;
    cpu_set_t two;
    CPU_ZERO(&two);
    CPU_SET(cpu[0], &two);
    CPU_SET(cpu[1], &two);
    pin_all(&two, 2);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    atexit(hog_stop);
    const double budget = quick ? 0.6 : 2.0;
    const workload ws[] = {
        {"train d128x4 B16 T128", W_TRAIN, 128, 4, 2, 16, 128},
        {"train d256x4 B8 T256", W_TRAIN, 256, 4, 4, 8, 256},
        {"train default B1 T256", W_TRAIN, 0, 0, 0, 1, 256},
        {"prefill small 512", W_PREFILL, 256, 4, 4, 1, 512},
        {"prefill default 512", W_PREFILL, 0, 0, 0, 1, 512},
        {"decode small", W_DECODE, 256, 4, 4, 1, 512},
        {"decode default", W_DECODE, 0, 0, 0, 1, 512},
    };
    const int nw = (int)(sizeof ws / sizeof ws[0]);
    fprintf(out, "hydra bench --contention — %s; CPUs %d,%d (%s); hog: a busy loop pinned to CPU %d during 'loaded'\n",
            hydra_blas_info(), cpu[0], cpu[1], smt_siblings(cpu[0], cpu[1]) ? "SMT siblings of one core" : "two cores",
            cpu[1]);
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    fprintf(out, "OpenMP waits: OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s; tokens/s over >= %.1f s per cell (after one\n"
                 "warm-up run); ratios vs quiet 1 thread\n\n", wp ? wp : "(unset)", sc ? sc : "(unset)", budget);
    fprintf(out, "%-23s %10s %10s %10s %10s   %7s %7s %7s   %s\n", "workload", "quiet 1T", "quiet 2T", "loaded 1T",
            "loaded 2T", "q2/q1", "l1/q1", "l2/q1", "bo q2/l2");
    fflush(out);
    double worst = 1e9;
    int rc = 0;
    for (int i = 0; i < nw && !rc; i++) {
        if (only && strncmp(ws[i].name, only, strlen(only))) continue;
        work_ctx x;
        double r[4] = {0, 0, 0, 0};
        uint64_t bo[4] = {0, 0, 0, 0}; /* contention back-offs during each cell */
        if (ctx_open(&ws[i], &x)) {
            fprintf(out, "%-23s error: %s\n", ws[i].name, hydra_last_error());
            ctx_close(&x);
            rc = 1;
            break;
        }
        for (int k = 0; k < 4; k++) { /* quiet 1T, quiet 2T, then the same with the hog */
            if (k == 2 && hog_start(cpu[1])) {
                r[k] = -1;
                break;
            }
            hydra_set_num_threads(k % 2 ? 2 : 1);
            uint64_t b0, b1;
            hydra_backoff_stats(&b0, NULL);
            if ((r[k] = measure(&ws[i], &x, budget)) < 0) break;
            hydra_backoff_stats(&b1, NULL);
            bo[k] = b1 - b0;
        }
        hog_stop();
        ctx_close(&x);
        if (r[0] <= 0 || r[1] <= 0 || r[2] <= 0 || r[3] <= 0) {
            fprintf(out, "%-23s error: %s\n", ws[i].name, hydra_last_error());
            rc = 1;
            break;
        }
        fprintf(out, "%-23s %10.0f %10.0f %10.0f %10.0f   %6.2fx %6.2fx %6.2fx   %3llu/%llu\n", ws[i].name, r[0], r[1],
                r[2], r[3], r[1] / r[0], r[2] / r[0], r[3] / r[0], (unsigned long long)bo[1], (unsigned long long)bo[3]);
        fflush(out);
        if (r[3] / r[0] < worst) worst = r[3] / r[0];
    }
    hog_stop();
    if (!rc)
        fprintf(out, "\nworst loaded 2T / quiet 1T: %.2fx (target: >= 1.0 typical, never below 0.8). q2/q1 = quiet\n"
                     "scaling; l1/q1 ~ 1 (one thread runs on the free CPU); l2/q1 is what a user with a busy core gets.\n"
                     "bo q2/l2 = contention back-offs (one thread for 0.5-8 s) started during the quiet / loaded\n"
                     "2-thread cell: on a quiet machine q2 should be 0.\n",
                worst);
    return rc;
}
