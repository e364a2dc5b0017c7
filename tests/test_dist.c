/* test_dist.c — data-parallel training over MPI; run by ctest as
 * `mpirun -np 2 test_dist` (OMP_NUM_THREADS=1 per rank).
 *
 *  - equivalence: 2 ranks with global batch 2b = 1 process with batch 2b
 *    (rank 0 runs the plain trainer in the same job): losses over 20 steps
 *    within 1e-6 relative, final weights within 1e-5 (‖a−b‖/‖b‖), for AdamW
 *    and Muon, with and without --shard-optimizer; sharded and replicated
 *    runs write the same checkpoint bytes;
 *  - resume: 10 + 10 steps on 2 ranks = 20 straight, bit for bit; a 2-rank
 *    checkpoint continued by 1 process and a 1-process checkpoint continued
 *    by 2 sharded ranks match the uninterrupted run;
 *  - refusals: different options or data on one rank, a global batch that
 *    does not divide by the ranks — every rank fails with a message.
 *
 * Not cmocka: every rank must reach every collective, so a failed check is
 * counted, not a longjmp; the counts are summed and every rank exits 1 if
 * any check failed anywhere. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm_mpi.h"
#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_dist.h"
#include "hydralm_train.h"
#include "test_util.h"
#include "train/dist_internal.h"

#define STEPS 20
static hydra_comm C;
static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            fprintf(stderr, "FAIL (rank %d) %s:%d: ", C.rank, __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)
#define OK(expr) CHECK((expr) == HYDRA_OK, "%s: %s", #expr, hydra_last_error())

/* tests' tiny shape, with the byte vocabulary the text data needs */
static hydra_config small_config(void) {
    hydra_config c = tiny_config();
    c.vocab_size = 256;
    return c;
}

static hydra_train_opts opts(hydra_optimizer_kind kind) {
    hydra_train_opts o;
    memset(&o, 0, sizeof o);
    o.optim = hydra_optim_opts_default(kind);
    o.optim.total_steps = STEPS;
    o.optim.warmup_steps = 3;
    o.batch = 8; /* global: 4 rows per rank */
    o.seq = 32;
    o.seed = 5;
    return o;
}

/* Word salad from a fixed generator: text with some structure to learn. */
static hydra_text_data *make_data(uint64_t seed) {
    static const char *const words[] = {"the ", "king ", "and ", "queen ", "of ", "hydra ", "delta ", "rule ",
                                        "gate ", "window ", "to ", "be ", "or ", "not ", ".\n", ", "};
    char *buf = malloc(1 << 16);
    size_t n = 0;
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    while (n < (1 << 16) - 16) {
        const char *w = words[hydra_rng_next(&r) % 16];
        memcpy(buf + n, w, strlen(w));
        n += strlen(w);
    }
    hydra_text_data *d = NULL;
    if (hydra_text_data_from_memory(buf, n, 0.1, &d) != HYDRA_OK) abort();
    free(buf);
    return d;
}

static hydra_text_data *g_data;

typedef struct {
    double loss[STEPS];
    float gnorm[STEPS]; /* pre-clip global gradient norm: catches a wrong average, which clipping,
                           Adam and Muon would hide (they are invariant to the gradient's scale) */
    float *w; /* final weights [n_params] */
    size_t n;
} run_result;

static void result_take(run_result *r, const hydra_model *m) {
    r->n = hydra_model_n_params(m);
    r->w = malloc(r->n * sizeof(float));
    memcpy(r->w, m->params, r->n * sizeof(float));
}

/* Runs steps [from, to) of tr, recording losses into r. */
static void run_steps(hydra_trainer *tr, int from, int to, run_result *r) {
    for (int s = from; s < to; s++) {
        hydra_step_info info;
        OK(hydra_trainer_step(tr, &info));
        if (r) r->loss[s] = info.loss, r->gnorm[s] = info.grad_norm;
    }
}

/* comm NULL: one process. dir: checkpoint after `save_at` steps there. */
static void train(const hydra_comm *comm, int shard, hydra_optimizer_kind kind, const char *dir, int save_at,
                  run_result *r) {
    hydra_model *m = NULL;
    hydra_trainer *tr = NULL;
    hydra_config c = small_config();
    hydra_train_opts o = opts(kind);
    hydra_dist_opts d = {comm, shard, 1234};
    OK(hydra_model_create(&c, 3, &m));
    OK(hydra_trainer_create_dist(m, hydra_text_data_task(g_data), &o, &d, &tr));
    if (!tr) return;
    run_steps(tr, 0, save_at, r);
    if (dir) OK(hydra_trainer_save(tr, dir));
    run_steps(tr, save_at, STEPS, r);
    result_take(r, m);
    hydra_trainer_free(tr);
    hydra_model_free(m);
}

/* Continue the checkpoint in dir to STEPS steps. */
static void resume(const hydra_comm *comm, int shard, const char *dir, run_result *r) {
    hydra_model *m = NULL;
    hydra_trainer *tr = NULL;
    hydra_dist_opts d = {comm, shard, 1234};
    OK(hydra_trainer_resume_dist(dir, hydra_text_data_task(g_data), &d, &m, &tr));
    if (!tr) return;
    run_steps(tr, (int)hydra_trainer_steps(tr), STEPS, r);
    result_take(r, m);
    hydra_trainer_free(tr);
    hydra_model_free(m);
}

static void compare(const char *what, const run_result *a, const run_result *b, int from) {
    double worst = 0, gworst = 0;
    for (int s = from; s < STEPS; s++) {
        double e = fabs(a->loss[s] - b->loss[s]) / fabs(b->loss[s]);
        double g = fabs((double)a->gnorm[s] - b->gnorm[s]) / fabs((double)b->gnorm[s]);
        if (e > worst) worst = e;
        if (g > gworst) gworst = g;
    }
    double we = a->w && b->w && a->n == b->n ? rel_err(a->w, b->w, a->n) : INFINITY;
    fprintf(stderr, "%-52s losses max rel diff %.2e, grad norms %.2e, weights rel err %.2e\n", what, worst, gworst,
            we);
    CHECK(gworst <= 1e-5, "%s: gradient norms differ by %.3g relative (> 1e-5)", what, gworst);
    CHECK(worst <= 1e-6, "%s: losses differ by %.3g relative (> 1e-6)", what, worst);
    CHECK(we <= 1e-5, "%s: weights differ by %.3g (> 1e-5)", what, we);
}

static void result_free(run_result *r) { free(r->w); }

static int files_equal(const char *a, const char *b) {
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = hydra_read_file(a, "checkpoint", (size_t)1 << 30, &x, &nx) == HYDRA_OK &&
             hydra_read_file(b, "checkpoint", (size_t)1 << 30, &y, &ny) == HYDRA_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    return eq;
}

static char g_tmp[256];
static const char *dir(const char *name) {
    static char p[4][320];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_tmp, name);
    return p[k];
}

static void test_equivalence(hydra_optimizer_kind kind) {
    const char *kname = kind == HYDRA_OPT_MUON ? "Muon" : "AdamW";
    run_result ref = {0}, rep = {0}, sh = {0};
    char a[64], b[64];
    snprintf(a, sizeof a, "%s_rep", kname);
    snprintf(b, sizeof b, "%s_shard", kname);
    train(&C, 0, kind, dir(a), STEPS, &rep);
    train(&C, 1, kind, dir(b), STEPS, &sh);
    if (C.rank == 0) {
        char what[128];
        train(NULL, 0, kind, NULL, STEPS, &ref);
        snprintf(what, sizeof what, "%s: 2 ranks x 4 vs 1 process x 8", kname);
        compare(what, &rep, &ref, 0);
        snprintf(what, sizeof what, "%s: 2 ranks x 4 sharded vs 1 process x 8", kname);
        compare(what, &sh, &ref, 0);
        char ta[320], tb[320];
        snprintf(ta, sizeof ta, "%s/trainer.bin", dir(a));
        snprintf(tb, sizeof tb, "%s/trainer.bin", dir(b));
        CHECK(files_equal(ta, tb), "%s: the sharded run's trainer.bin differs from the replicated run's", kname);
    }
    result_free(&ref), result_free(&rep), result_free(&sh);
}

static void test_resume(void) {
    run_result straight = {0}, cont = {0};
    /* 2 ranks sharded, Muon: 10 steps, checkpoint, 10 more */
    train(&C, 1, HYDRA_OPT_MUON, dir("r2"), 10, &straight);
    resume(&C, 1, dir("r2"), &cont);
    CHECK(cont.w && straight.w && memcmp(cont.w, straight.w, straight.n * sizeof(float)) == 0,
          "2-rank resume is not bit-exact");
    CHECK(memcmp(cont.loss + 10, straight.loss + 10, 10 * sizeof(double)) == 0, "2-rank resume losses differ");
    if (C.rank == 0) fprintf(stderr, "2 ranks: 10 + 10 steps == 20 straight (bit-exact): %s\n",
                             failures ? "no" : "yes");
    result_free(&cont);
    /* the 2-rank checkpoint continued by one process */
    if (C.rank == 0) {
        run_result one = {0};
        resume(NULL, 0, dir("r2"), &one);
        compare("2-rank checkpoint continued by 1 process", &one, &straight, 10);
        result_free(&one);
    }
    /* a 1-process checkpoint continued by 2 sharded ranks */
    run_result ref = {0}, two = {0};
    hydra_status st = HYDRA_OK;
    if (C.rank == 0) {
        train(NULL, 0, HYDRA_OPT_MUON, dir("r1"), 10, &ref);
        st = failures ? HYDRA_ERR_IO : HYDRA_OK;
    }
    OK(hydra_dist_agree(&C, st, "the 1-process checkpoint"));
    resume(&C, 1, dir("r1"), &two);
    if (C.rank == 0) compare("1-process checkpoint continued by 2 sharded ranks", &two, &ref, 10);
    result_free(&ref), result_free(&two), result_free(&straight);
}

/* Every rank must fail, with a message naming the difference. */
static void expect_refusal(const char *what, hydra_train_opts o, uint64_t data_seed, const char *needle) {
    hydra_text_data *td = data_seed ? make_data(data_seed) : g_data;
    hydra_model *m = NULL;
    hydra_trainer *tr = NULL;
    hydra_config c = small_config();
    hydra_dist_opts d = {&C, 0, 1234};
    OK(hydra_model_create(&c, 3, &m));
    hydra_status st = hydra_trainer_create_dist(m, hydra_text_data_task(td), &o, &d, &tr);
    CHECK(st != HYDRA_OK, "%s: accepted", what);
    CHECK(strstr(hydra_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, hydra_last_error(), needle);
    if (C.rank == 0) fprintf(stderr, "%s -> %s\n", what, hydra_last_error());
    hydra_trainer_free(tr);
    hydra_model_free(m);
    if (td != g_data) hydra_text_data_free(td);
}

static void test_refusals(void) {
    hydra_train_opts o = opts(HYDRA_OPT_ADAMW);
    if (C.rank == 1) o.optim.lr *= 2;
    expect_refusal("different --lr on rank 1", o, 0, "training options");
    o = opts(HYDRA_OPT_ADAMW);
    expect_refusal("different data on rank 1", o, C.rank == 1 ? 99 : 0, "first batch");
    o.batch = 7;
    expect_refusal("global batch 7 on 2 ranks", o, 0, "does not divide");
}

int main(int argc, char **argv) {
    int local;
    if (cli_mpi_init(&argc, &argv, 120, &C, &local) != 0) return 1;
    if (C.size != 2) {
        fprintf(stderr, "test_dist runs on exactly 2 ranks (mpirun -np 2)\n");
        return 1;
    }
    char tmpl[] = "/tmp/hydra_test_dist_XXXXXX";
    if (C.rank == 0 && !mkdtemp(tmpl)) return 1;
    memcpy(g_tmp, tmpl, sizeof tmpl);
    if (C.bcast(C.ctx, g_tmp, sizeof tmpl, 0) != 0) return 1;
    g_data = make_data(7);
    test_equivalence(HYDRA_OPT_ADAMW);
    test_equivalence(HYDRA_OPT_MUON);
    test_resume();
    test_refusals();
    hydra_text_data_free(g_data);
    double total = failures;
    if (C.allreduce_f64(C.ctx, &total, 1) != 0) return 1;
    if (C.rank == 0) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
        fprintf(stderr, "%s (%d failed checks)\n", total == 0 ? "all passed" : "FAILED", (int)total);
    }
    cli_mpi_finalize();
    return total == 0 ? 0 : 1;
}
