/* optim.c — the device optimizers (src/cuda/optim.c) against the CPU
 * optimizer (src/train/optim.c) on the same parameters and gradients:
 * AdamW and Muon (+AdamW) with warmup + cosine schedule and clipping, step
 * by step (parameters, grad norms, learning rates, moment buffers); Muon's
 * bf16 Newton–Schulz against its f32 one; buffer set/get; bit-identical
 * repeated runs; refusal of a non-finite gradient. Models: the tiny config
 * (d_model 32: square [32,32] projections, tall [96,32] / wide [32,96] MLP)
 * and a d_model 96 one (wide [32,96] q/k/v, tall [96,32] o_proj, MLP
 * [256,96] / [96,256]). Timing of one default-model step: HYDRA_OPTIM_TIME=1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "groups.h"
#include "test_util.h"

#define N_STEPS 4

static hydra_config cfg_d96(void) {
    hydra_config c = tiny_config();
    c.d_model = 96;
    c.tie_embeddings = 0;
    return c;
}

/* warmup 2 then cosine to step 5, clip 1; lr high enough that updates matter. */
static hydra_optim_opts test_opts(hydra_optimizer_kind kind) {
    hydra_optim_opts o = hydra_optim_opts_default(kind);
    o.lr = 1e-2f;
    o.warmup_steps = 2;
    o.total_steps = 5;
    o.decay = HYDRA_DECAY_COSINE;
    o.grad_clip = 1.0f;
    o.weight_decay = 0.1f;
    return o;
}

/* n_steps rows of gradients; row 1 small enough (norm < 1) to skip the clip,
 * the others clipped. */
static float *make_grads(size_t n, int n_steps, uint64_t seed) {
    float *g = malloc((size_t)n_steps * n * sizeof *g);
    assert_non_null(g);
    for (int k = 0; k < n_steps; k++) fill_normal(g + (size_t)k * n, n, k == 1 ? 1e-4f : 0.05f, seed + (uint64_t)k);
    return g;
}

static double max_d(double a, double b) { return a > b ? a : b; }

/* Worst errors of one comparison, printed by the caller. */
typedef struct {
    double params, update, norm, lr, buffers;
    int clipped, unclipped;
} cmp_errs;

/* Device (f32 NS) vs CPU for N_STEPS steps; the device run of k steps
 * starts from the initial parameters each time (fresh optimizer). */
static cmp_errs compare_with_cpu(const hydra_config *cfg, const hydra_optim_opts *opts, double tol_p, double tol_u) {
    const int threads = hydra_get_num_threads();
    hydra_set_num_threads(1); /* BLIS on 32..256-wide matrices: threads only spin (docs/optim.md) */
    hydra_model *m;
    HY_OK(hydra_model_create(cfg, 5, &m));
    const size_t n = m->n_params;
    const hydra_optim_opts o = *opts;
    float *g = make_grads(n, N_STEPS, 40), *gk = malloc(n * 4), *prev = malloc(n * 4), *dev = malloc(n * 4);
    float *p0 = malloc(n * 4), *upd_c = malloc(n * 4), *upd_d = malloc(n * 4), *bufs = malloc(3 * n * 4);
    assert_true(gk && prev && dev && p0 && upd_c && upd_d && bufs);
    memcpy(p0, m->params, n * 4);
    hydra_optimizer *opt;
    HY_OK(hydra_optimizer_create(m, &o, &opt));
    cmp_errs e = {0};
    for (int k = 0; k < N_STEPS; k++) {
        float cn, cl, dn[N_STEPS], dl[N_STEPS];
        memcpy(prev, m->params, n * 4);
        memcpy(gk, g + (size_t)k * n, n * 4);
        HY_OK(hydra_optimizer_step(opt, m, gk, &cn, &cl));
        memcpy(dev, p0, n * 4);
        HY_OK(hydra_dev_op_optim_steps(m, &o, 0, k + 1, dev, g, dn, dl, k == N_STEPS - 1 ? bufs : NULL));
        for (size_t i = 0; i < n; i++) upd_c[i] = m->params[i] - prev[i], upd_d[i] = dev[i] - prev[i];
        double ep = rel_err(dev, m->params, n), eu = rel_err(upd_d, upd_c, n);
        double en = fabs((double)dn[k] - cn) / cn, el = fabs((double)dl[k] - cl) / cl;
        if (!(ep <= tol_p && eu <= tol_u && en <= 1e-6 && el <= 1e-7))
            fail_msg("step %d: params rel err %.3g (tol %.3g), update %.3g (tol %.3g), grad norm %.9g vs %.9g, lr %.9g "
                     "vs %.9g", k, ep, tol_p, eu, tol_u, (double)dn[k], (double)cn, (double)dl[k], (double)cl);
        e.params = max_d(e.params, ep), e.update = max_d(e.update, eu);
        e.norm = max_d(e.norm, en), e.lr = max_d(e.lr, el);
        if (cn > o.grad_clip) e.clipped++;
        else e.unclipped++;
    }
    assert_int_equal(hydra_optimizer_n_buffers(opt), o.kind == HYDRA_OPT_MUON ? 3 : 2);
    for (int i = 0; i < hydra_optimizer_n_buffers(opt); i++) {
        const char *name;
        float *data;
        size_t numel;
        HY_OK(hydra_optimizer_buffer(opt, i, &name, &data, &numel));
        assert_int_equal(numel, n);
        double eb = rel_err(bufs + (size_t)i * n, data, n);
        if (!(eb <= tol_p)) fail_msg("buffer %s: rel err %.3g > %.3g", name, eb, tol_p);
        e.buffers = max_d(e.buffers, eb);
    }
    assert_true(e.clipped > 0 && e.unclipped > 0); /* both branches of the clip ran */
    hydra_optimizer_free(opt);
    free(g), free(gk), free(prev), free(dev), free(p0), free(upd_c), free(upd_d), free(bufs);
    hydra_model_free(m);
    hydra_set_num_threads(threads);
    return e;
}

static void report(cmp_errs e) {
    printf(" %d steps (%d clipped): worst rel err params %.2e, update %.2e, moments %.2e; grad norm %.2e, lr %.2e\n",
           N_STEPS, e.clipped, e.params, e.update, e.buffers, e.norm, e.lr);
}

/* Both models; tol_p on the parameters and moments, 1e-4 on the update.
 * Muon also runs its other variant (muon_rms_match, no Nesterov) on d96. */
static void vs_cpu(hydra_optimizer_kind kind, double tol_p) {
    const int muon = kind == HYDRA_OPT_MUON;
    hydra_config cfgs[2] = {tiny_config(), cfg_d96()};
    hydra_optim_opts o = test_opts(kind);
    for (int i = 0; i < 2 + muon; i++) {
        if (i == 2) o.muon_rms_match = 1, o.muon_nesterov = 0;
        const char *which = i == 2 ? "d96, rms_match, no Nesterov" : i ? "d96" : "tiny";
        printf("  %s, %s:", muon ? "Muon (f32 NS)" : "AdamW", which);
        report(compare_with_cpu(&cfgs[i < 2 ? i : 1], &o, tol_p, 1e-4));
    }
}

static void adamw_vs_cpu(void **unused) {
    (void)unused;
    vs_cpu(HYDRA_OPT_ADAMW, 1e-5);
}

static void muon_vs_cpu(void **unused) {
    (void)unused;
    vs_cpu(HYDRA_OPT_MUON, 1e-4);
}

/* bf16 Newton–Schulz vs f32, one step, weight decay 0 so the update of a Muon
 * matrix is exactly -lr·scale·NS(d): the difference is NS's alone.
 * Tolerance 3e-2 (relative, over all Muon matrices; measured 2.1e-2 on an
 * H100): bf16 keeps 8 significant bits, unit roundoff 2^-8 = 3.9e-3; the
 * iterate X, A and B are rounded in each of the 5 iterations (15 roundings,
 * ~1e-2 if they add up as independent errors), and the early iterations
 * amplify perturbations along the small singular values (p'(x) ~ 3 for
 * x <= 0.2; these matrices start near 1/sqrt(32) = 0.18). The check also
 * requires a difference above 1e-5, so a bf16 path that silently ran in f32
 * fails. */
static void muon_bf16_vs_f32(void **unused) {
    (void)unused;
    hydra_config c = cfg_d96();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 6, &m));
    const size_t n = m->n_params;
    hydra_optim_opts o = test_opts(HYDRA_OPT_MUON);
    o.weight_decay = 0;
    float *g = make_grads(n, 1, 50), *pf = malloc(n * 4), *pb = malloc(n * 4);
    assert_true(pf && pb);
    memcpy(pf, m->params, n * 4);
    memcpy(pb, m->params, n * 4);
    HY_OK(hydra_dev_op_optim_steps(m, &o, 0, 1, pf, g, NULL, NULL, NULL));
    HY_OK(hydra_dev_op_optim_steps(m, &o, 1, 1, pb, g, NULL, NULL, NULL));
    double num = 0, den = 0, worst = 0;
    const char *worst_name = "";
    int n_mat = 0;
    for (int t = 0; t < m->n_info; t++) {
        const hydra_param_info *p = &m->info[t];
        double tn = 0, td = 0;
        for (size_t i = p->offset; i < p->offset + p->numel; i++) {
            double uf = (double)pf[i] - m->params[i], ub = (double)pb[i] - m->params[i];
            if (!hydra_optim_uses_muon(&o, p->name, p->ndim)) {
                if (pf[i] != pb[i]) fail_msg("AdamW tensor %s differs between bf16 and f32 NS", p->name);
                continue;
            }
            tn += (ub - uf) * (ub - uf), td += uf * uf;
        }
        if (!hydra_optim_uses_muon(&o, p->name, p->ndim)) continue;
        n_mat++;
        num += tn, den += td;
        if (sqrt(tn / td) > worst) worst = sqrt(tn / td), worst_name = p->name;
    }
    double err = sqrt(num / den);
    printf("  Muon bf16 NS vs f32 NS (d96, %d matrices): update rel err %.2e (worst matrix %s %.2e; tol 3e-2)\n",
           n_mat, err, worst_name, worst);
    assert_true(n_mat > 0);
    if (!(err <= 3e-2 && err > 1e-5)) fail_msg("bf16 NS update rel err %.3g outside (1e-5, 3e-2]", err);
    free(g), free(pf), free(pb);
    hydra_model_free(m);
}

static void buffers_round_trip(void **unused) {
    (void)unused;
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 7, &m));
    const size_t n = m->n_params;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    assert_true(a && b);
    for (int kind = 0; kind < 2; kind++) {
        hydra_optim_opts o = test_opts((hydra_optimizer_kind)kind);
        hydra_dev_optim *op;
        HY_OK(hydra_dev_optim_create(m, &o, 0, m->n_params, 0, 1, &op));
        assert_int_equal(hydra_dev_optim_n_buffers(op), kind == HYDRA_OPT_MUON ? 3 : 2);
        for (int i = 0; i < hydra_dev_optim_n_buffers(op); i++) {
            HY_OK(hydra_dev_optim_buffer_get(op, i, b));
            for (size_t j = 0; j < n; j++) assert_true(b[j] == 0.0f); /* zero-initialised */
            fill_normal(a, n, 1.0f, 60 + (uint64_t)i);
            HY_OK(hydra_dev_optim_buffer_set(op, i, a));
            HY_OK(hydra_dev_optim_buffer_get(op, i, b));
            assert_memory_equal(a, b, n * 4);
        }
        assert_int_equal(hydra_dev_optim_buffer_get(op, 3, b), HYDRA_ERR_ARG);
        assert_int_equal(hydra_dev_optim_buffer_set(op, -1, a), HYDRA_ERR_ARG);
        hydra_dev_optim_free(op);
    }
    free(a), free(b);
    hydra_model_free(m);
}

/* Two runs from the same inputs give the same bits (parameters and moments):
 * the reductions have a fixed order and nothing uses atomics. */
static void deterministic(void **unused) {
    (void)unused;
    hydra_config c = cfg_d96();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 8, &m));
    const size_t n = m->n_params;
    float *g = make_grads(n, 3, 70), *p[2], *bufs[2];
    for (int bf16 = 0; bf16 < 2; bf16++) {
        const hydra_optim_opts o = test_opts(HYDRA_OPT_MUON);
        for (int r = 0; r < 2; r++) {
            p[r] = malloc(n * 4), bufs[r] = malloc(3 * n * 4);
            assert_true(p[r] && bufs[r]);
            memcpy(p[r], m->params, n * 4);
            HY_OK(hydra_dev_op_optim_steps(m, &o, bf16, 3, p[r], g, NULL, NULL, bufs[r]));
        }
        size_t dp = 0, db = 0;
        for (size_t i = 0; i < n; i++) dp += memcmp(&p[0][i], &p[1][i], 4) != 0;
        for (size_t i = 0; i < 3 * n; i++) db += memcmp(&bufs[0][i], &bufs[1][i], 4) != 0;
        if (dp || db)
            fail_msg("%s NS: %zu parameters and %zu buffer floats differ between two runs", bf16 ? "bf16" : "f32", dp,
                     db);
        for (int r = 0; r < 2; r++) free(p[r]), free(bufs[r]);
    }
    printf("  Muon (+AdamW) 3 steps twice, f32 and bf16 NS: bit-identical parameters and moments\n");
    free(g);
    hydra_model_free(m);
}

static void refuses_nonfinite(void **unused) {
    (void)unused;
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 9, &m));
    const size_t n = m->n_params;
    float *g = make_grads(n, 1, 80), *p = malloc(n * 4);
    assert_non_null(p);
    memcpy(p, m->params, n * 4);
    g[n / 2] = NAN;
    const hydra_optim_opts o = test_opts(HYDRA_OPT_MUON);
    assert_int_equal(hydra_dev_op_optim_steps(m, &o, 1, 1, p, g, NULL, NULL, NULL), HYDRA_ERR_ARG);
    assert_non_null(strstr(hydra_last_error(), "not finite"));
    assert_int_equal(hydra_dev_op_optim_steps(m, &o, 1, -1, p, g, NULL, NULL, NULL), HYDRA_ERR_ARG);
    free(g), free(p);
    hydra_model_free(m);
}

/* Not a check: prints one step's time for the default model when asked. */
static void time_default_model(void **unused) {
    (void)unused;
    if (!getenv("HYDRA_OPTIM_TIME")) skip();
    hydra_config c = hydra_config_default();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 1, &m));
    double ms[3];
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    HY_OK(hydra_dev_op_optim_time(m, &o, 1, 5, &ms[0]));
    HY_OK(hydra_dev_op_optim_time(m, &o, 0, 5, &ms[1]));
    o = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    HY_OK(hydra_dev_op_optim_time(m, &o, 0, 5, &ms[2]));
    printf("  one step, default model (%d x %d, %.1f M params), median of 5: Muon bf16 NS %.2f ms, Muon f32 NS "
           "%.2f ms (%.2fx), AdamW only %.3f ms\n", c.d_model, c.n_layers, (double)m->n_params / 1e6, ms[0], ms[1],
           ms[1] / ms[0], ms[2]);
    hydra_model_free(m);
}

int cuda_train_optim_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adamw_vs_cpu),         cmocka_unit_test(muon_vs_cpu),   cmocka_unit_test(muon_bf16_vs_f32),
        cmocka_unit_test(buffers_round_trip),   cmocka_unit_test(deterministic), cmocka_unit_test(refuses_nonfinite),
        cmocka_unit_test(time_default_model),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
