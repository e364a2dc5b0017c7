/* test_shard.c — the ZeRO-1 optimizer split without MPI (fast, also under
 * the sanitizers): hydra_optim_partition keeps Muon matrices whole, and N
 * range optimizers applied with the global gradient norm update the model
 * exactly like one whole optimizer — bit for bit without clipping (the
 * norm's partial sums are then irrelevant), to 1e-6 with clipping — and
 * their moment buffers, laid end to end, are the whole optimizer's. The
 * transport itself is tested by test_dist (mpirun). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "test_util.h"
#include "train/optim_internal.h"

#define STEPS 3
#define MAXN 8

static void check_partition(const hydra_model *m, const hydra_optim_opts *o, int n, const size_t *b) {
    assert_int_equal(b[0], 0);
    assert_int_equal(b[n], m->n_params);
    for (int r = 0; r < n; r++) {
        assert_true(b[r] <= b[r + 1]);
        for (int i = 0; i < m->n_info; i++) {
            const hydra_param_info *p = &m->info[i];
            if (hydra_optim_uses_muon(o, p->name, p->ndim))
                assert_false(b[r] > p->offset && b[r] < p->offset + p->numel);
        }
    }
}

/* STEPS updates of a copy of m: whole optimizer (n = 0) or n shards. */
static float *run(const hydra_model *m, const hydra_optim_opts *o, int n, const float *grads,
                  float **moments /* [n_buffers][n_params] out */) {
    hydra_model *c = NULL;
    hydra_config cfg = m->cfg;
    HY_OK(hydra_model_create(&cfg, 1, &c));
    memcpy(c->params, m->params, m->n_params * sizeof(float));
    const size_t N = m->n_params;
    size_t b[MAXN + 1] = {0, N};
    int parts = n ? n : 1;
    if (n) HY_OK(hydra_optim_partition(m, o, n, b));
    if (n) check_partition(m, o, n, b);
    hydra_optimizer *opt[MAXN];
    for (int r = 0; r < parts; r++) HY_OK(hydra_optimizer_create_range(c, o, b[r], b[r + 1], &opt[r]));
    float *g = malloc(N * sizeof(float));
    for (int s = 0; s < STEPS; s++) {
        memcpy(g, grads + (size_t)s * N, N * sizeof(float));
        if (!n) {
            HY_OK(hydra_optimizer_step(opt[0], c, g, NULL, NULL));
            continue;
        }
        double sumsq = 0;
        for (int r = 0; r < parts; r++) sumsq += hydra_optimizer_grad_sumsq(opt[r], g);
        for (int r = 0; r < parts; r++) HY_OK(hydra_optimizer_apply(opt[r], c, g, sumsq, NULL, NULL));
    }
    for (int k = 0; k < hydra_optimizer_n_buffers(opt[0]); k++)
        for (int r = 0; r < parts; r++) {
            float *data;
            size_t numel;
            HY_OK(hydra_optimizer_buffer(opt[r], k, NULL, &data, &numel));
            assert_int_equal(numel, b[r + 1] - b[r]);
            memcpy(moments[k] + b[r], data, numel * sizeof(float));
        }
    for (int r = 0; r < parts; r++) hydra_optimizer_free(opt[r]);
    float *w = malloc(N * sizeof(float));
    memcpy(w, c->params, N * sizeof(float));
    hydra_model_free(c);
    free(g);
    return w;
}

static void check_kind(hydra_optimizer_kind kind, float clip) {
    hydra_config cfg = tiny_config();
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&cfg, 7, &m));
    const size_t N = m->n_params;
    float *grads = malloc(STEPS * N * sizeof(float));
    fill_normal(grads, STEPS * N, 0.05f, 3);
    hydra_optim_opts o = hydra_optim_opts_default(kind);
    o.grad_clip = clip;
    float *ref_mom[3], *mom[3];
    for (int k = 0; k < 3; k++) ref_mom[k] = calloc(N, sizeof(float)), mom[k] = calloc(N, sizeof(float));
    float *ref = run(m, &o, 0, grads, ref_mom);
    const int ns[] = {1, 2, 3, 5, 8};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        float *w = run(m, &o, ns[i], grads, mom);
        if (clip == 0.0f) {
            assert_memory_equal(w, ref, N * sizeof(float));
            for (int k = 0; k < (kind == HYDRA_OPT_MUON ? 3 : 2); k++) assert_memory_equal(mom[k], ref_mom[k], N * sizeof(float));
        } else {
            ASSERT_REL(w, ref, N, 1e-6);
        }
        free(w);
    }
    free(ref), free(grads);
    for (int k = 0; k < 3; k++) free(ref_mom[k]), free(mom[k]);
    hydra_model_free(m);
}

static void test_adamw(void **s) {
    (void)s;
    check_kind(HYDRA_OPT_ADAMW, 0.0f);
    check_kind(HYDRA_OPT_ADAMW, 1.0f);
}

static void test_muon(void **s) {
    (void)s;
    check_kind(HYDRA_OPT_MUON, 0.0f);
    check_kind(HYDRA_OPT_MUON, 1.0f);
}

/* A range that cuts a Muon matrix is refused; a sharded optimizer refuses
 * the plain step (it cannot know the global norm). */
static void test_refusals(void **s) {
    (void)s;
    hydra_config cfg = tiny_config();
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&cfg, 7, &m));
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    const hydra_param_info *mat = NULL;
    for (int i = 0; i < m->n_info && !mat; i++)
        if (hydra_optim_uses_muon(&o, m->info[i].name, m->info[i].ndim)) mat = &m->info[i];
    assert_non_null(mat);
    hydra_optimizer *opt = NULL;
    assert_int_equal(hydra_optimizer_create_range(m, &o, 0, mat->offset + 1, &opt), HYDRA_ERR_ARG);
    assert_non_null(strstr(hydra_last_error(), "splits the Muon matrix"));
    HY_OK(hydra_optimizer_create_range(m, &o, 0, mat->offset, &opt));
    float *g = calloc(m->n_params, sizeof(float));
    assert_int_equal(hydra_optimizer_step(opt, m, g, NULL, NULL), HYDRA_ERR_ARG);
    free(g);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_muon),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
