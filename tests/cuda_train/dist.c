/* dist.c — data-parallel GPU ranks (issue "training across processes and
 * GPUs"): the trainer's device path hands each layer's gradient range to the
 * communicator as the backward finishes it (src/train/dist.c,
 * hydra_dev_grad_opts). At world size 1 a sum is the identity, so the
 * data-parallel trainer must give the plain GPU trainer's bits — through a
 * recording communicator (which also checks that the ranges cover every
 * tensor once, last layer first) and through NCCL itself (tools/comm_nccl.c,
 * skipped where libnccl.so.2 cannot be loaded). Also: the refusals, and a
 * failing device sum ending the step with its message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "comm_nccl.h"
#include "core/internal.h"
#include "groups.h"
#include "hydralm_dist.h"
#include "train/optim_internal.h"
#include "test_util.h"

#define STEPS 12

/* ------------------------------------------------- recording communicator */
typedef struct {
    const float *base; /* the device gradient arena */
    size_t off[64], n[64];
    int calls, waits, gathers, fail_at; /* fail_at > 0: that device sum fails */
} recorder;

static int rec_allreduce(void *ctx, float *dbuf, size_t n, void *stream) {
    recorder *r = ctx;
    (void)stream;
    r->calls++;
    if (r->fail_at && r->calls == r->fail_at) return -1;
    if (r->calls <= 64) r->off[r->calls - 1] = (size_t)(dbuf - r->base), r->n[r->calls - 1] = n;
    return 0;
}
static int rec_wait(void *ctx, void *stream) {
    (void)stream;
    ((recorder *)ctx)->waits++;
    return 0;
}
static int rec_allgather(void *ctx, float *dbuf, const size_t *counts, void *stream) {
    (void)dbuf, (void)counts, (void)stream;
    ((recorder *)ctx)->gathers++;
    return 0;
}
static const char *rec_error(void *ctx) { return ((recorder *)ctx)->fail_at ? "planted failure" : ""; }

static hydra_comm recording(recorder *r) {
    hydra_comm c = cli_comm_self();
    c.ctx = r;
    c.error = rec_error;
    c.dev_allreduce_f32 = rec_allreduce;
    c.dev_wait = rec_wait;
    c.dev_allgather_f32 = rec_allgather;
    return c;
}

/* Every tensor lies in exactly one of the k ranges of one step, and the
 * first range is the last layer's (the backward's order). */
static void check_ranges(const hydra_model *m, const recorder *r, int k) {
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        int in = 0;
        for (int j = 0; j < k; j++) in += p->store >= r->off[j] && p->store + p->numel <= r->off[j] + r->n[j];
        if (in != 1) fail_msg("tensor %s lies in %d of the %d gradient ranges", p->name, in, k);
    }
    char want[32];
    snprintf(want, sizeof want, "blocks.%d.", m->cfg.n_layers - 1);
    for (int i = 0; i < m->n_info; i++)
        if (m->info[i].store == r->off[0] && strncmp(m->info[i].name, want, strlen(want)) != 0)
            fail_msg("the first gradient range starts at %s, not in the last layer", m->info[i].name);
}

/* ------------------------------------------------------------ the runs */
typedef struct {
    double loss[STEPS];
    float *weights; /* n_params, after the last step (host) */
    size_t n;
} run;

/* STEPS steps of a fresh model (seed 5) on the GPU in bf16, plain (comm
 * NULL) or data-parallel over comm; rec (optional) gets the device arena. */
static void train(hydra_optimizer_kind kind, const hydra_comm *comm, int shard, recorder *rec, run *out) {
    hydra_model *m = cuda_train_model("DDSD");
    hydra_text_data *d = cuda_train_text_data();
    hydra_train_opts o = cuda_train_opts(kind);
    hydra_trainer *t;
    hydra_dist_opts dopt = {comm, shard, 0};
    HY_OK(hydra_trainer_create_dist(m, hydra_text_data_task(d), &o, &dopt, &t));
    if (rec) {
        float *g;
        HY_OK(hydra_dev_train_arenas(m, NULL, &g));
        rec->base = g;
    }
    for (int i = 0; i < STEPS; i++) {
        hydra_step_info info;
        int before = rec ? rec->calls : 0;
        HY_OK(hydra_trainer_step(t, &info));
        out->loss[i] = info.loss;
        if (rec && i == 0) check_ranges(m, rec, rec->calls - before);
    }
    hydra_trainer_free(t);
    HY_OK(hydra_model_to_device(m, "cpu", HYDRA_PRECISION_DEFAULT));
    out->n = m->n_params;
    out->weights = malloc(m->n_params * sizeof(float));
    assert_non_null(out->weights);
    memcpy(out->weights, m->params, m->n_params * sizeof(float));
    hydra_text_data_free(d);
    hydra_model_free(m);
}

/* The weights bit for bit; the reported losses to 1e-12 (the data-parallel
 * mean is (mean * n) / n over the ranks, in double). */
static void assert_same(const run *a, const run *b, const char *what) {
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < STEPS; i++)
        if (!(fabs(a->loss[i] - b->loss[i]) <= 1e-12 * fabs(b->loss[i])))
            fail_msg("%s: loss at step %d %.15f vs %.15f (plain)", what, i + 1, a->loss[i], b->loss[i]);
    if (memcmp(a->weights, b->weights, a->n * sizeof(float)) != 0)
        fail_msg("%s: the data-parallel run's weights differ from the plain GPU run's", what);
}

/* World size 1 through the device path = the plain trainer, bit for bit
 * (AdamW, Muon; one batch and micro-batches of 2 of 4, where only the last
 * micro-batch's backward hands ranges on; replicated and ZeRO-1, whose one
 * range is the whole arena). */
static void test_device_path_bits(void **unused) {
    (void)unused;
    for (int micro = 0; micro < 2; micro++) {
        if (micro) setenv("HYDRA_CUDA_MICRO_BATCH", "2", 1);
        for (int kind = 0; kind < 2; kind++) {
            run plain;
            train(kind, NULL, 0, NULL, &plain);
            for (int shard = 0; shard < 2; shard++) {
                run dp;
                recorder rec;
                memset(&rec, 0, sizeof rec);
                hydra_comm c = recording(&rec);
                train(kind, &c, shard, &rec, &dp);
                print_message("    %s%s%s: loss %.6f -> %.6f, %d device sums in %d steps (%d a step), %d waits, "
                              "%d weight gathers\n", kind ? "muon" : "adamw", shard ? ", ZeRO-1" : "",
                              micro ? ", micro-batches of 2" : "", plain.loss[0], plain.loss[STEPS - 1], rec.calls,
                              STEPS, rec.calls / STEPS, rec.waits, rec.gathers);
                assert_int_equal(rec.waits, (1 + shard) * STEPS);
                assert_int_equal(rec.gathers, shard * STEPS);
                assert_true(rec.calls >= 5 * STEPS); /* one per layer (4) + the rest, every step */
                assert_same(&dp, &plain, kind ? "muon" : "adamw");
                free(dp.weights);
            }
            free(plain.weights);
        }
        unsetenv("HYDRA_CUDA_MICRO_BATCH");
    }
}

/* ZeRO-1's update on the device: 3 range optimizers (hydra_optim_partition:
 * AdamW tensors cut anywhere, Muon matrices whole), each updating its range
 * of the device master weights with its own moments from the same
 * gradients, then the weights refreshed = one whole-arena optimizer, bit for
 * bit over 5 steps (no clipping: the norm is then only reported). */
static void test_zero1_ranges(void **unused) {
    (void)unused;
    enum { NR = 3, K = 5 };
    for (int kind = 0; kind < 2; kind++) {
        hydra_model *m[2] = {cuda_train_model("DDSD"), cuda_train_model("DDSD")};
        hydra_optim_opts oo = hydra_optim_opts_default(kind);
        oo.grad_clip = 0;
        const size_t n = m[0]->n_params;
        float *g = malloc(n * sizeof(float));
        assert_non_null(g);
        size_t bounds[NR + 1];
        HY_OK(hydra_optim_partition(m[1], &oo, NR, bounds));
        hydra_optimizer *whole, *part[NR];
        HY_OK(hydra_optimizer_create(m[0], &oo, &whole));
        for (int r = 0; r < NR; r++) HY_OK(hydra_optimizer_create_range(m[1], &oo, bounds[r], bounds[r + 1], &part[r]));
        uint64_t st = 77;
        for (int k = 0; k < K; k++) {
            for (size_t i = 0; i < n; i++) {
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                g[i] = ((float)(st >> 40) / (float)(1 << 24) - 0.5f) * 1e-2f;
            }
            HY_OK(hydra_optimizer_step(whole, m[0], g, NULL, NULL));
            HY_OK(hydra_dev_train_upload_grads(m[1], g));
            double total = 0;
            for (int r = 0; r < NR; r++) {
                double sq;
                HY_OK(hydra_optimizer_grad_sumsq_device(part[r], m[1], &sq));
                total += sq;
            }
            for (int r = 0; r < NR; r++) HY_OK(hydra_optimizer_apply_device(part[r], m[1], total, NULL, NULL));
            HY_OK(hydra_dev_train_sync(m[1]));
        }
        for (int v = 0; v < 2; v++) HY_OK(hydra_model_to_device(m[v], "cpu", HYDRA_PRECISION_DEFAULT));
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += memcmp(&m[0]->params[i], &m[1]->params[i], 4) != 0;
        for (int i = 0, shown = 0; differ && i < m[0]->n_info && shown < 6; i++) { /* where, when they differ */
            const hydra_param_info *p = &m[0]->info[i];
            size_t d = 0;
            for (size_t j = p->store; j < p->store + p->numel; j++) d += memcmp(&m[0]->params[j], &m[1]->params[j], 4) != 0;
            if (d) print_message("      %s [%zu, %zu): %zu differ\n", p->name, p->store, p->store + p->numel, d), shown++;
        }
        print_message("    %s: %d ranges [0, %zu, %zu, %zu), %d steps: %zu of %zu weights differ from one optimizer\n",
                      kind ? "muon" : "adamw", NR, bounds[1], bounds[2], n, K, differ, n);
        assert_int_equal(differ, 0);
        hydra_optimizer_free(whole);
        for (int r = 0; r < NR; r++) hydra_optimizer_free(part[r]);
        for (int v = 0; v < 2; v++) hydra_model_free(m[v]);
        free(g);
    }
}

/* The same through NCCL (a communicator of one rank on cuda:0). */
static void test_nccl_world1(void **unused) {
    (void)unused;
    hydra_comm self = cli_comm_self(), c;
    char err[400];
    if (cli_nccl_init(&self, 0, 120, &c, err, sizeof err) != 0) {
        print_message("    SKIPPED: %s\n", err);
        skip();
    }
    for (int kind = 0; kind < 2; kind++) {
        run plain, dp;
        train(kind, NULL, 0, NULL, &plain);
        train(kind, &c, 0, NULL, &dp);
        print_message("    NCCL, %s: loss at step %d %.9f (plain) vs %.9f (NCCL)\n", kind ? "muon" : "adamw", STEPS,
                      plain.loss[STEPS - 1], dp.loss[STEPS - 1]);
        assert_same(&dp, &plain, kind ? "NCCL muon" : "NCCL adamw");
        free(plain.weights), free(dp.weights);
    }
    cli_nccl_free(&c);
}

/* A GPU model with a host-only communicator, or with --shard-optimizer and
 * no device all-gather, is refused with a message; a failing device sum ends
 * the step with its own. */
static void test_refusals_and_failure(void **unused) {
    (void)unused;
    hydra_model *m = cuda_train_model("DS");
    hydra_text_data *d = cuda_train_text_data();
    hydra_train_opts o = cuda_train_opts(HYDRA_OPT_ADAMW);
    hydra_trainer *t = NULL;
    hydra_comm host = cli_comm_self();
    hydra_dist_opts dopt = {&host, 0, 0};
    assert_int_equal(hydra_trainer_create_dist(m, hydra_text_data_task(d), &o, &dopt, &t), HYDRA_ERR_DEVICE);
    assert_non_null(strstr(hydra_last_error(), "NCCL"));
    recorder rec;
    memset(&rec, 0, sizeof rec);
    hydra_comm c = recording(&rec);
    c.dev_allgather_f32 = NULL;
    dopt.comm = &c;
    dopt.shard_optimizer = 1;
    assert_int_equal(hydra_trainer_create_dist(m, hydra_text_data_task(d), &o, &dopt, &t), HYDRA_ERR_DEVICE);
    assert_non_null(strstr(hydra_last_error(), "all-gather"));
    dopt.shard_optimizer = 0;
    rec.fail_at = 2;
    HY_OK(hydra_trainer_create_dist(m, hydra_text_data_task(d), &o, &dopt, &t));
    float *g;
    HY_OK(hydra_dev_train_arenas(m, NULL, &g));
    rec.base = g;
    hydra_step_info info;
    assert_int_not_equal(hydra_trainer_step(t, &info), HYDRA_OK);
    print_message("    a failing device sum: %s\n", hydra_last_error());
    assert_non_null(strstr(hydra_last_error(), "planted failure"));
    hydra_trainer_free(t);
    hydra_text_data_free(d);
    hydra_model_free(m);
}

int cuda_train_dist_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_path_bits),
        cmocka_unit_test(test_zero1_ranges),
        cmocka_unit_test(test_nccl_world1),
        cmocka_unit_test(test_refusals_and_failure),
    };
    return cmocka_run_group_tests_name("dist", tests, NULL, NULL);
}
