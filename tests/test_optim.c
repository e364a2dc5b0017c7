/* test_optim.c — optimizers (AdamW, Muon + AdamW), Newton–Schulz, routing,
 * LR schedule, clipping, checkpointable state (docs/optim.md).
 *
 * The AdamW and Muon steps are compared with python/optim_ref.py (PyTorch:
 * torch.optim.AdamW itself, and Keller Jordan's Muon written out) on every
 * tensor of a tiny model, with normalised error <= 1e-5. Python with torch is
 * looked for in $HYDRA_PYTHON, then /usr/bin/python3, then python3 on PATH;
 * without one those tests are skipped with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/internal.h"
#include "hydralm_train.h"
#include "test_util.h"

#define TOL 1e-5

/* ------------------------------------------------------------ python */
/* All PyTorch jobs of this file run in ONE python process (torch imports
 * once): test_torch_reference prepares every input, runs the script, then
 * compares. The script exits with 77 when torch/numpy are missing. */
static const char *script_path(void) {
    static char buf[1024];
    const char *src = getenv("HYDRA_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/python/optim_ref.py", src && src[0] ? src : "..");
    return buf;
}

/* Runs the script with `args` under $HYDRA_PYTHON, /usr/bin/python3, python3
 * in turn: 1 = ran fine, 0 = no interpreter with torch (skip), fails otherwise. */
static int run_python(const char *args) {
    const char *env = getenv("HYDRA_PYTHON");
    const char *cands[] = {env, "/usr/bin/python3", "python3"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i] || !cands[i][0] || strchr(cands[i], '\'')) continue;
        char cmd[16384];
        snprintf(cmd, sizeof cmd, "'%s' '%s' %s", cands[i], script_path(), args);
        int rc = system(cmd);
        if (rc == -1 || !WIFEXITED(rc)) fail_msg("could not run %s", cmd);
        int code = WEXITSTATUS(rc);
        if (code == 0) return 1;
        if (code == 77 || code == 127) continue; /* no torch / no such interpreter */
        fail_msg("python reference failed (exit %d): %s", code, cmd);
    }
    return 0;
}

static float *read_floats(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("python reference wrote no output %s", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(bytes > 0 && bytes % 4 == 0);
    *n = (size_t)bytes / 4;
    float *out = malloc((size_t)bytes);
    assert_non_null(out);
    assert_int_equal(fread(out, 4, *n, f), *n);
    fclose(f);
    return out;
}

/* ------------------------------------------------------------ helpers */
static hydra_config untied_tiny(void) {
    hydra_config c = tiny_config();
    c.tie_embeddings = 0;
    return c;
}

static int buffer_of(hydra_optimizer *opt, const char *want, float **data) {
    for (int i = 0; i < hydra_optimizer_n_buffers(opt); i++) {
        const char *name;
        float *d;
        size_t n;
        HY_OK(hydra_optimizer_buffer(opt, i, &name, &d, &n));
        if (strcmp(name, want) == 0) {
            *data = d;
            return 1;
        }
    }
    *data = NULL;
    return 0;
}

static void fill_abs(float *x, size_t n, float scale, uint64_t seed) {
    fill_normal(x, n, scale, seed);
    for (size_t i = 0; i < n; i++) x[i] = fabsf(x[i]) + 1e-4f * scale;
}

/* One optimizer step of C vs PyTorch on every tensor of a tiny model, from
 * non-zero moments at AdamW step t = 3 (weight decay on, clip off). */
typedef struct {
    const char *tag;
    hydra_model *m;
    hydra_optimizer *opt;
    hydra_optim_opts o;
    float *p0; /* parameters before the step [N] */
    char in_path[600], out_path[600];
} step_job;

static void step_prepare(step_job *j, hydra_optimizer_kind kind, int rms_match, const char *tag) {
    memset(j, 0, sizeof *j);
    j->tag = tag;
    hydra_config cfg = untied_tiny();
    HY_OK(hydra_model_create(&cfg, 7, &j->m));
    hydra_model *m = j->m;
    const size_t N = hydra_model_n_params(m);
    hydra_optim_opts o = hydra_optim_opts_default(kind);
    o.lr = 1e-2f;
    o.weight_decay = 0.1f;
    o.grad_clip = 0.0f;
    o.decay = HYDRA_DECAY_CONSTANT;
    o.muon_rms_match = rms_match;
    j->o = o;
    HY_OK(hydra_optimizer_create(m, &o, &j->opt));
    HY_OK(hydra_optimizer_set_steps(j->opt, 2)); /* the next step is t = 3 */

    float *g = malloc(N * sizeof *g), *zero = calloc(N, sizeof *zero);
    assert_non_null(g);
    assert_non_null(zero);
    fill_normal(g, N, 1.0f, 11);
    float *am, *av, *mb = NULL;
    assert_true(buffer_of(j->opt, "adam_m", &am));
    assert_true(buffer_of(j->opt, "adam_v", &av));
    fill_normal(am, N, 0.1f, 12);
    fill_abs(av, N, 0.05f, 13);
    if (kind == HYDRA_OPT_MUON) {
        assert_true(buffer_of(j->opt, "muon_momentum", &mb));
        fill_normal(mb, N, 0.5f, 14);
    } else {
        assert_false(buffer_of(j->opt, "muon_momentum", &mb));
    }

    char name[128];
    snprintf(name, sizeof name, "%s_in.bin", tag);
    snprintf(j->in_path, sizeof j->in_path, "%s", tmp_path(name));
    snprintf(name, sizeof name, "%s_out.bin", tag);
    snprintf(j->out_path, sizeof j->out_path, "%s", tmp_path(name));
    FILE *f = fopen(j->in_path, "wb");
    assert_non_null(f);
    int32_t nt = hydra_model_n_tensors(m);
    int32_t head[6] = {1, 3, o.muon_nesterov, o.muon_ns_steps, o.muon_rms_match, nt};
    double hyper[7] = {o.lr, o.muon_lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.muon_momentum};
    fwrite(head, 4, 6, f);
    fwrite(hyper, 8, 7, f);
    int n_muon = 0, n_tall = 0, n_wide = 0, n_square = 0, n_decay = 0, n_nodecay = 0;
    for (int i = 0; i < nt; i++) {
        hydra_tensor t;
        HY_OK(hydra_model_tensor(m, i, &t));
        size_t off = (size_t)(t.data - m->params);
        int32_t hdr[4] = {(int32_t)t.shape[0], t.ndim == 2 ? (int32_t)t.shape[1] : 0,
                          hydra_optim_uses_muon(&o, t.name, t.ndim), hydra_optim_decays(t.name, t.ndim)};
        if (hdr[2]) {
            n_muon++;
            n_tall += hdr[0] > hdr[1];
            n_wide += hdr[0] < hdr[1];
            n_square += hdr[0] == hdr[1];
        } else {
            n_decay += hdr[3];
            n_nodecay += !hdr[3];
        }
        fwrite(hdr, 4, 4, f);
        fwrite(t.data, 4, t.numel, f);
        fwrite(g + off, 4, t.numel, f);
        fwrite(am + off, 4, t.numel, f);
        fwrite(av + off, 4, t.numel, f);
        fwrite((mb ? mb : zero) + off, 4, t.numel, f);
    }
    assert_int_equal(fclose(f), 0);
    if (kind == HYDRA_OPT_MUON) assert_true(n_tall > 0 && n_wide > 0 && n_square > 0);
    else assert_int_equal(n_muon, 0);
    assert_true(n_decay > 0 && n_nodecay > 0);

    j->p0 = malloc(N * sizeof *j->p0);
    memcpy(j->p0, m->params, N * sizeof *j->p0);
    float gn, lr_used;
    HY_OK(hydra_optimizer_step(j->opt, m, g, &gn, &lr_used));
    assert_true(fabsf(lr_used - o.lr) <= 1e-9f);
    assert_int_equal(hydra_optimizer_steps(j->opt), 3);
    print_message("%s: %d tensors (%d Muon: %d tall, %d wide, %d square)\n", tag, nt, n_muon, n_tall, n_wide,
                  n_square);
    free(g);
    free(zero);
}

/* compare tensor by tensor: parameters, the update itself, moments */
static void step_compare(step_job *j) {
    hydra_model *m = j->m;
    const size_t N = hydra_model_n_params(m);
    size_t n_py;
    float *py = read_floats(j->out_path, &n_py);
    assert_int_equal(n_py, 4 * N);
    float *am, *av, *mb;
    buffer_of(j->opt, "adam_m", &am);
    buffer_of(j->opt, "adam_v", &av);
    buffer_of(j->opt, "muon_momentum", &mb);
    size_t pos = 0;
    double worst_p = 0, worst_d = 0, worst_s = 0;
    float *d_c = malloc(N * sizeof *d_c), *d_py = malloc(N * sizeof *d_py);
    for (int i = 0; i < hydra_model_n_tensors(m); i++) {
        hydra_tensor t;
        HY_OK(hydra_model_tensor(m, i, &t));
        size_t off = (size_t)(t.data - m->params), n = t.numel;
        const float *pp = py + pos, *pm = pp + n, *pv = pm + n, *pb = pv + n;
        pos += 4 * n;
        double ep = rel_err(t.data, pp, n);
        for (size_t k = 0; k < n; k++) {
            d_c[k] = t.data[k] - j->p0[off + k];
            d_py[k] = pp[k] - j->p0[off + k];
        }
        double ed = rel_err(d_c, d_py, n);
        int muon = hydra_optim_uses_muon(&j->o, t.name, t.ndim);
        double es = muon ? rel_err(mb + off, pb, n) : fmax(rel_err(am + off, pm, n), rel_err(av + off, pv, n));
        if (ep > worst_p) worst_p = ep;
        if (ed > worst_d) worst_d = ed;
        if (es > worst_s) worst_s = es;
        if (!(ep <= TOL) || !(es <= TOL) || !(ed <= 1e-4))
            fail_msg("%s: %s (%s) rel err param %.3g, update %.3g, state %.3g", j->tag, t.name,
                     muon ? "Muon" : "AdamW", ep, ed, es);
    }
    print_message("%s vs PyTorch: worst rel err param %.2g, update %.2g, moments %.2g\n", j->tag, worst_p,
                  worst_d, worst_s);
    remove(j->in_path);
    remove(j->out_path);
    free(d_c);
    free(d_py);
    free(py);
    free(j->p0);
    hydra_optimizer_free(j->opt);
    hydra_model_free(j->m);
}

/* ------------------------------------------------------- Newton–Schulz */
/* Eigenvalues of the symmetric n x n matrix a (destroyed), cyclic Jacobi in double. */
static void jacobi_eigen(double *a, int n, double *ev) {
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                if (i != j) off += a[i * n + j] * a[i * n + j];
                else diag += a[i * n + i] * a[i * n + i];
            }
        if (off <= 1e-30 * diag) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), sn = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - sn * akq;
                    a[k * n + q] = sn * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - sn * aqk;
                    a[q * n + k] = sn * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++) ev[i] = a[i * n + i];
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Singular values (ascending) of X [rows, cols] via eigenvalues of the smaller Gram matrix. */
static void singular_values(const float *X, int rows, int cols, double *sv) {
    int tall = rows > cols, n = tall ? cols : rows, k = tall ? rows : cols;
    double *gm = calloc((size_t)n * n, sizeof *gm);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++) {
                double a = tall ? X[(size_t)l * cols + i] : X[(size_t)i * cols + l];
                double b = tall ? X[(size_t)l * cols + j] : X[(size_t)j * cols + l];
                acc += a * b;
            }
            gm[i * n + j] = gm[j * n + i] = acc;
        }
    jacobi_eigen(gm, n, sv);
    for (int i = 0; i < n; i++) sv[i] = sqrt(fmax(sv[i], 0));
    qsort(sv, (size_t)n, sizeof *sv, cmp_double);
    free(gm);
}

/* The scalar map NS applies to each singular value of G/(||G||_F + eps). */
static double ns_poly(double x, int steps) {
    for (int i = 0; i < steps; i++) x = 3.4445 * x - 4.7750 * x * x * x + 2.0315 * x * x * x * x * x;
    return x;
}

/* Threshold below which 5 steps cannot reach 0.5 (docs/optim.md): 1.07e-3. */
#define NS_REACH 1.07e-3

static void check_ns(int rows, int cols, uint64_t seed, double *lo, double *hi) {
    size_t n = (size_t)rows * cols;
    int r = rows < cols ? rows : cols;
    float *G = malloc(n * sizeof *G), *O = malloc(n * sizeof *O);
    fill_normal(G, n, 1.0f, seed);
    HY_OK(hydra_newton_schulz(G, rows, cols, 5, O));
    double *sg = malloc((size_t)r * sizeof *sg), *so = malloc((size_t)r * sizeof *so);
    singular_values(G, rows, cols, sg);
    singular_values(O, rows, cols, so);
    double fro = 0;
    for (size_t i = 0; i < n; i++) fro += (double)G[i] * G[i];
    fro = sqrt(fro) + 1e-7;
    /* NS maps each singular value x of G/(||G||_F + eps) to ns_poly(x) (the
     * map is not monotone, so compare the sorted images) */
    double *img = malloc((size_t)r * sizeof *img);
    int all_reach = 1;
    for (int i = 0; i < r; i++) {
        double x = sg[i] / fro;
        img[i] = ns_poly(x, 5);
        all_reach &= x >= NS_REACH;
    }
    qsort(img, (size_t)r, sizeof *img, cmp_double);
    for (int i = 0; i < r; i++)
        if (fabs(so[i] - img[i]) > 1e-4 + 1e-4 * img[i])
            fail_msg("NS %dx%d seed %llu: singular value %d is %.6f, polynomial map gives %.6f", rows, cols,
                     (unsigned long long)seed, i, so[i], img[i]);
    if (all_reach && !(so[0] >= 0.5 && so[r - 1] <= 1.5))
        fail_msg("NS %dx%d seed %llu: singular values [%.4f, %.4f] outside [0.5, 1.5]", rows, cols,
                 (unsigned long long)seed, so[0], so[r - 1]);
    free(img);
    *lo = so[0];
    *hi = so[r - 1];
    /* out may alias G */
    HY_OK(hydra_newton_schulz(G, rows, cols, 5, G));
    assert_memory_equal(G, O, n * sizeof *G);
    free(sg);
    free(so);
    free(G);
    free(O);
}

static void test_newton_schulz_singular_values(void **s) {
    (void)s;
    const int shapes[][2] = {{64, 32}, {32, 64}, {48, 48}, {5, 3}, {1, 7}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        double lo = 1e9, hi = 0;
        int below = 0;
        const int seeds = 8;
        for (int sd = 0; sd < seeds; sd++) {
            double l, h;
            check_ns(shapes[k][0], shapes[k][1], 100 + (uint64_t)sd, &l, &h);
            below += l < 0.5;
            if (l < lo) lo = l;
            if (h > hi) hi = h;
        }
        int rows = shapes[k][0], cols = shapes[k][1];
        print_message("NS5 %dx%d, %d seeds: singular values in [%.4f, %.4f]%s\n", rows, cols, seeds, lo, hi,
                      below ? " (some below 0.5: inputs under 1.07e-3 of ||G||_F, see docs/optim.md)" : "");
        /* tall and wide random Gaussian matrices are well conditioned: all in range */
        if (rows != cols && rows > 1 && cols > 1) assert_true(lo >= 0.5 && hi <= 1.5);
    }
    /* a square matrix with a controlled spectrum: every value reaches the range */
    {
        const int n = 48;
        float *G = malloc((size_t)n * n * sizeof *G), *O = malloc((size_t)n * n * sizeof *O);
        fill_normal(G, (size_t)n * n, 1.0f, 5);
        for (int i = 0; i < n; i++) G[i * n + i] += 3.0f * sqrtf((float)n); /* sigma_min well above 0 */
        HY_OK(hydra_newton_schulz(G, n, n, 5, O));
        double sv[48];
        singular_values(O, n, n, sv);
        print_message("NS5 48x48 (random + diagonal shift): singular values in [%.4f, %.4f]\n", sv[0], sv[n - 1]);
        assert_true(sv[0] >= 0.5 && sv[n - 1] <= 1.5);
        free(G);
        free(O);
    }
    /* zero input stays zero, bad arguments are refused */
    float z[6] = {0}, o6[6];
    HY_OK(hydra_newton_schulz(z, 2, 3, 5, o6));
    for (int i = 0; i < 6; i++) assert_true(o6[i] == 0.0f);
    assert_int_equal(hydra_newton_schulz(NULL, 2, 3, 5, o6), HYDRA_ERR_ARG);
    assert_int_equal(hydra_newton_schulz(z, 2, 3, 5, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_newton_schulz(z, 0, 3, 5, o6), HYDRA_ERR_ARG);
    assert_int_equal(hydra_newton_schulz(z, 2, -1, 5, o6), HYDRA_ERR_ARG);
    assert_int_equal(hydra_newton_schulz(z, 2, 3, -1, o6), HYDRA_ERR_ARG);
}

/* The PyTorch comparisons, in one python process:
 *  - one AdamW step (t = 3, non-zero moments, decay on 2-D weights)
 *  - one Muon step (Nesterov) with both scale options; tall, wide and square matrices
 *  - singular values (torch.linalg.svdvals) of NS5 of a random 768 x 2048 matrix;
 *    NS5 of its transpose must be exactly the transpose. */
static void test_torch_reference(void **s) {
    (void)s;
    step_job jobs[3];
    step_prepare(&jobs[0], HYDRA_OPT_ADAMW, 0, "adamw");
    step_prepare(&jobs[1], HYDRA_OPT_MUON, 0, "muon");
    step_prepare(&jobs[2], HYDRA_OPT_MUON, 1, "muon_rms");

    const int rows = 768, cols = 2048;
    size_t n = (size_t)rows * cols;
    float *G = malloc(n * sizeof *G), *Gt = malloc(n * sizeof *Gt), *Ot = malloc(n * sizeof *Ot);
    fill_normal(G, n, 1.0f, 21);
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols; k++) Gt[(size_t)k * rows + i] = G[(size_t)i * cols + k];
    HY_OK(hydra_newton_schulz(Gt, cols, rows, 5, Ot)); /* tall: transposed internally */
    HY_OK(hydra_newton_schulz(G, rows, cols, 5, G));   /* wide, in place */
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols; k++)
            if (Ot[(size_t)k * rows + i] != G[(size_t)i * cols + k]) fail_msg("NS5(G^T) != NS5(G)^T at %d,%d", i, k);
    char svd_in[600], svd_out[600];
    snprintf(svd_in, sizeof svd_in, "%s", tmp_path("ns_in.bin"));
    snprintf(svd_out, sizeof svd_out, "%s", tmp_path("ns_out.bin"));
    FILE *f = fopen(svd_in, "wb");
    assert_non_null(f);
    int32_t hdr[3] = {2, rows, cols};
    fwrite(hdr, 4, 3, f);
    assert_int_equal(fwrite(G, 4, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(G);
    free(Gt);
    free(Ot);

    char args[8192];
    snprintf(args, sizeof args, "'%s' '%s' '%s' '%s' '%s' '%s' '%s' '%s'", jobs[0].in_path, jobs[0].out_path,
             jobs[1].in_path, jobs[1].out_path, jobs[2].in_path, jobs[2].out_path, svd_in, svd_out);
    if (!run_python(args)) {
        for (int k = 0; k < 3; k++) {
            remove(jobs[k].in_path);
            free(jobs[k].p0);
            hydra_optimizer_free(jobs[k].opt);
            hydra_model_free(jobs[k].m);
        }
        remove(svd_in);
        print_message("SKIP: no python3 with torch+numpy found ($HYDRA_PYTHON=\"%s\", /usr/bin/python3, "
                      "python3); PyTorch reference not compared\n",
                      getenv("HYDRA_PYTHON") ? getenv("HYDRA_PYTHON") : "");
        skip();
    }
    for (int k = 0; k < 3; k++) step_compare(&jobs[k]);

    size_t nsv;
    float *sv = read_floats(svd_out, &nsv);
    assert_int_equal(nsv, (size_t)rows);
    print_message("NS5 768x2048 (and its transpose): singular values in [%.4f, %.4f]\n", (double)sv[rows - 1],
                  (double)sv[0]);
    assert_true(sv[rows - 1] >= 0.5f && sv[0] <= 1.5f);
    remove(svd_in);
    remove(svd_out);
    free(sv);
}

/* ------------------------------------------------------------ routing */
static int in_list(const char *name, char (*list)[64], int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0) return 1;
    return 0;
}

static void check_routing(const hydra_config *cfg) {
    hydra_model *m;
    HY_OK(hydra_model_alloc(cfg, &m)); /* table only, no init */
    char expect[512][64];
    int ne = 0;
    for (int i = 0; i < cfg->n_layers; i++) {
        char kind = hydra_config_layer_kind(cfg, i);
        const char *mix = kind == HYDRA_LAYER_DELTANET ? "gdn" : "attn";
        const char *projs[] = {"q_proj", "k_proj", "v_proj", "g_proj", "o_proj"};
        for (int j = 0; j < 5; j++) {
            if (j == 3 && kind != HYDRA_LAYER_DELTANET) continue; /* attention has no g_proj */
            snprintf(expect[ne++], 64, "blocks.%d.%s.%s.weight", i, mix, projs[j]);
        }
        snprintf(expect[ne++], 64, "blocks.%d.mlp.gate_proj.weight", i);
        snprintf(expect[ne++], 64, "blocks.%d.mlp.up_proj.weight", i);
        snprintf(expect[ne++], 64, "blocks.%d.mlp.down_proj.weight", i);
    }
    hydra_optim_opts mu = hydra_optim_opts_default(HYDRA_OPT_MUON);
    hydra_optim_opts ad = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    int n_muon = 0;
    size_t muon_params = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        int want = in_list(p->name, expect, ne);
        int got = hydra_optim_uses_muon(&mu, p->name, p->ndim);
        if (got != want) fail_msg("routing of %s: got %s, expected %s", p->name, got ? "Muon" : "AdamW",
                                  want ? "Muon" : "AdamW");
        assert_int_equal(hydra_optim_uses_muon(&ad, p->name, p->ndim), 0);
        n_muon += got;
        if (got) muon_params += p->numel;
        /* decay: every 2-D weight except conv kernels */
        size_t len = strlen(p->name);
        int is_conv = len >= 12 && strcmp(p->name + len - 12, "_conv.weight") == 0;
        assert_int_equal(hydra_optim_decays(p->name, p->ndim), p->ndim == 2 && !is_conv);
        /* the explicit AdamW list */
        if (strstr(p->name, "embed") || strstr(p->name, "lm_head") || strstr(p->name, "a_proj") ||
            strstr(p->name, "b_proj") || strstr(p->name, "norm") || strstr(p->name, "A_log") ||
            strstr(p->name, "dt_bias") || is_conv)
            assert_int_equal(got, 0);
    }
    assert_int_equal(n_muon, ne);
    print_message("routing (%d layers, %s): %d Muon tensors, %.1f%% of %zu parameters\n", cfg->n_layers,
                  cfg->tie_embeddings ? "tied" : "untied", n_muon, 100.0 * (double)muon_params / (double)m->n_params,
                  m->n_params);
    hydra_model_free(m);
}

static void test_routing_table(void **s) {
    (void)s;
    hydra_config c = hydra_config_default();
    check_routing(&c);
    c.tie_embeddings = 0;
    check_routing(&c);
    c = untied_tiny();
    check_routing(&c);
    hydra_optim_opts mu = hydra_optim_opts_default(HYDRA_OPT_MUON);
    /* names: exact components, not substrings */
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.0.gdn.q_proj.weight", 2), 1);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.0.gdn.q_proj.weight", 1), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.0.gdn.a_proj.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.0.gdn.b_proj.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.0.gdn.q_conv.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.3.attn.o_proj.weight", 2), 1);
    assert_int_equal(hydra_optim_uses_muon(&mu, "blocks.3.mlp.up_proj.weight", 2), 1);
    assert_int_equal(hydra_optim_uses_muon(&mu, "embed.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "lm_head.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "q_proj.weight", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, "", 2), 0);
    assert_int_equal(hydra_optim_uses_muon(&mu, NULL, 2), 0);
    assert_int_equal(hydra_optim_uses_muon(NULL, "blocks.0.gdn.q_proj.weight", 2), 0);
    assert_int_equal(hydra_optim_decays("embed.weight", 2), 1);
    assert_int_equal(hydra_optim_decays("blocks.0.gdn.A_log", 1), 0);
    assert_int_equal(hydra_optim_decays(NULL, 2), 0);
}

/* ------------------------------------------------------------ schedule */
static void test_schedule(void **s) {
    (void)s;
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    o.warmup_steps = 10;
    o.total_steps = 110;
    o.min_lr_ratio = 0.1f;
    const double eps = 1e-6;
    o.decay = HYDRA_DECAY_COSINE;
    assert_true(fabs(hydra_lr_schedule(&o, 0) - 0.1) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 4) - 0.5) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 9) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 10) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 35) - (0.1 + 0.45 * (1 + cos(M_PI / 4)))) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 60) - 0.55) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 110) - 0.1) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 100000) - 0.1) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, -5) - 0.1) < eps);
    o.decay = HYDRA_DECAY_LINEAR;
    assert_true(fabs(hydra_lr_schedule(&o, 9) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 35) - 0.775) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 60) - 0.55) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 110) - 0.1) < eps);
    o.decay = HYDRA_DECAY_CONSTANT;
    assert_true(fabs(hydra_lr_schedule(&o, 0) - 0.1) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 60) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 1000) - 1.0) < eps);
    /* no warmup, total 0: constant peak */
    o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    assert_true(fabs(hydra_lr_schedule(&o, 0) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 12345) - 1.0) < eps);
    o.total_steps = 100;
    assert_true(fabs(hydra_lr_schedule(&o, 0) - 1.0) < eps);
    assert_true(fabs(hydra_lr_schedule(&o, 50) - 0.55) < eps);
    assert_true(hydra_lr_schedule(NULL, 3) == 0.0f);

    /* the optimizer uses the schedule at its 0-based step count */
    hydra_config cfg = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&cfg, 1, &m));
    o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    o.warmup_steps = 4;
    o.total_steps = 20;
    hydra_optimizer *opt;
    HY_OK(hydra_optimizer_create(m, &o, &opt));
    size_t N = hydra_model_n_params(m);
    float *g = malloc(N * sizeof *g);
    for (int step = 0; step < 6; step++) {
        fill_normal(g, N, 0.01f, 40 + (uint64_t)step);
        float lr;
        HY_OK(hydra_optimizer_step(opt, m, g, NULL, &lr));
        assert_true(fabsf(lr - o.lr * hydra_lr_schedule(&o, step)) <= 1e-9f);
    }
    free(g);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
}

static void test_opts_validate(void **s) {
    (void)s;
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    HY_OK(hydra_optim_opts_validate(&o));
    assert_int_equal(o.muon_ns_steps, 5);
    assert_true(o.muon_momentum == 0.95f && o.muon_nesterov == 1);
    hydra_optim_opts a = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    HY_OK(hydra_optim_opts_validate(&a));
    assert_int_equal(hydra_optim_opts_validate(NULL), HYDRA_ERR_ARG);
#define BAD(field, val)                                                   \
    do {                                                                  \
        hydra_optim_opts b = hydra_optim_opts_default(HYDRA_OPT_MUON);    \
        b.field = val;                                                    \
        assert_int_equal(hydra_optim_opts_validate(&b), HYDRA_ERR_ARG);   \
        assert_non_null(strstr(hydra_last_error(), #field));              \
    } while (0)
    BAD(lr, 0.0f);
    BAD(lr, NAN);
    BAD(beta1, 1.0f);
    BAD(beta2, -0.1f);
    BAD(eps, 0.0f);
    BAD(weight_decay, -1.0f);
    BAD(muon_lr, INFINITY);
    BAD(muon_momentum, 1.0f);
    BAD(muon_ns_steps, 0);
    BAD(muon_nesterov, 2);
    BAD(warmup_steps, -1);
    BAD(total_steps, -1);
    BAD(min_lr_ratio, 1.5f);
    BAD(grad_clip, -1.0f);
    BAD(kind, (hydra_optimizer_kind)7);
#undef BAD
}

/* ------------------------------------------------------------ clipping */
static void test_clipping(void **s) {
    (void)s;
    hydra_config cfg = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&cfg, 2, &m));
    size_t N = hydra_model_n_params(m);
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    o.grad_clip = 1.0f;
    hydra_optimizer *opt;
    HY_OK(hydra_optimizer_create(m, &o, &opt));
    float *g = malloc(N * sizeof *g), *g0 = malloc(N * sizeof *g0);
    fill_normal(g, N, 0.1f, 3);
    double want = 0;
    for (size_t i = 0; i < N; i++) want += (double)g[i] * g[i];
    want = sqrt(want);
    assert_true(want > 5.0);
    float gn;
    HY_OK(hydra_optimizer_step(opt, m, g, &gn, NULL));
    assert_true(fabs(gn - want) <= 1e-6 * want); /* pre-clip norm reported */
    double after = 0;
    for (size_t i = 0; i < N; i++) after += (double)g[i] * g[i];
    after = sqrt(after);
    print_message("clip: norm %.4f -> %.7f (clip 1)\n", want, after);
    assert_true(fabs(after - 1.0) <= 1e-5);
    /* below the clip: untouched */
    fill_normal(g, N, 1e-4f, 4);
    memcpy(g0, g, N * sizeof *g);
    HY_OK(hydra_optimizer_step(opt, m, g, &gn, NULL));
    assert_true(gn < 1.0f);
    assert_memory_equal(g, g0, N * sizeof *g);
    /* clip 0 = off */
    hydra_optimizer_free(opt);
    o.grad_clip = 0.0f;
    HY_OK(hydra_optimizer_create(m, &o, &opt));
    fill_normal(g, N, 0.1f, 3);
    memcpy(g0, g, N * sizeof *g);
    HY_OK(hydra_optimizer_step(opt, m, g, &gn, NULL));
    assert_memory_equal(g, g0, N * sizeof *g);
    free(g);
    free(g0);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
}

/* ------------------------------------------------ checkpoint round trip */
static void run_steps(hydra_optimizer *opt, hydra_model *m, float *g, int from, int n) {
    size_t N = hydra_model_n_params(m);
    for (int k = from; k < from + n; k++) {
        fill_normal(g, N, 0.05f, 1000 + (uint64_t)k);
        HY_OK(hydra_optimizer_step(opt, m, g, NULL, NULL));
    }
}

static void test_state_round_trip(void **s) {
    (void)s;
    for (int kind = 0; kind < 2; kind++) {
        hydra_config cfg = untied_tiny();
        hydra_model *m;
        HY_OK(hydra_model_create(&cfg, 9, &m));
        size_t N = hydra_model_n_params(m);
        hydra_optim_opts o = hydra_optim_opts_default((hydra_optimizer_kind)kind);
        o.warmup_steps = 2;
        o.total_steps = 10;
        o.grad_clip = 0.5f;
        hydra_optimizer *opt;
        HY_OK(hydra_optimizer_create(m, &o, &opt));
        assert_int_equal(hydra_optimizer_n_buffers(opt), kind == HYDRA_OPT_MUON ? 3 : 2);
        assert_int_equal(hydra_optimizer_opts(opt)->kind, kind);
        float *g = malloc(N * sizeof *g);
        run_steps(opt, m, g, 0, 2);

        /* "checkpoint": params, buffers, step */
        int nb = hydra_optimizer_n_buffers(opt);
        float *saved_p = malloc(N * sizeof *saved_p), *saved_b[3] = {0};
        memcpy(saved_p, m->params, N * sizeof *saved_p);
        for (int b = 0; b < nb; b++) {
            float *d;
            size_t n;
            HY_OK(hydra_optimizer_buffer(opt, b, NULL, &d, &n));
            assert_int_equal(n, N);
            saved_b[b] = malloc(N * sizeof(float));
            memcpy(saved_b[b], d, N * sizeof(float));
        }
        int64_t saved_steps = hydra_optimizer_steps(opt);
        assert_int_equal(saved_steps, 2);
        run_steps(opt, m, g, 2, 2);
        float *ref = malloc(N * sizeof *ref);
        memcpy(ref, m->params, N * sizeof *ref);

        /* resume into a fresh optimizer */
        hydra_optimizer *opt2;
        HY_OK(hydra_optimizer_create(m, &o, &opt2));
        memcpy(m->params, saved_p, N * sizeof *saved_p);
        for (int b = 0; b < nb; b++) {
            const char *name1, *name2;
            float *d;
            HY_OK(hydra_optimizer_buffer(opt, b, &name1, NULL, NULL));
            HY_OK(hydra_optimizer_buffer(opt2, b, &name2, &d, NULL));
            assert_string_equal(name1, name2);
            memcpy(d, saved_b[b], N * sizeof(float));
        }
        HY_OK(hydra_optimizer_set_steps(opt2, saved_steps));
        run_steps(opt2, m, g, 2, 2);
        assert_memory_equal(m->params, ref, N * sizeof *ref);
        assert_int_equal(hydra_optimizer_steps(opt2), 4);
        assert_int_equal(hydra_optimizer_buffer(opt2, nb, NULL, NULL, NULL), HYDRA_ERR_ARG);
        assert_int_equal(hydra_optimizer_buffer(opt2, -1, NULL, NULL, NULL), HYDRA_ERR_ARG);

        /* thread count does not change the result: elementwise updates, a
         * fixed-order grad norm, and Muon's Newton–Schulz GEMMs are tiles of
         * single-threaded BLIS never split along the reduction (docs/threads.md). */
        memcpy(m->params, saved_p, N * sizeof *saved_p);
        hydra_optimizer *opt3;
        HY_OK(hydra_optimizer_create(m, &o, &opt3));
        for (int b = 0; b < nb; b++) {
            float *d;
            HY_OK(hydra_optimizer_buffer(opt3, b, NULL, &d, NULL));
            memcpy(d, saved_b[b], N * sizeof(float));
        }
        HY_OK(hydra_optimizer_set_steps(opt3, saved_steps));
        int nt = hydra_get_num_threads();
        hydra_set_num_threads(nt == 1 ? 2 : 1);
        run_steps(opt3, m, g, 2, 2);
        hydra_set_num_threads(nt);
        assert_memory_equal(m->params, ref, N * sizeof *ref);
        hydra_optimizer_free(opt3);
        for (int b = 0; b < nb; b++) free(saved_b[b]);
        free(saved_p);
        free(ref);
        free(g);
        hydra_optimizer_free(opt);
        hydra_optimizer_free(opt2);
        hydra_model_free(m);
    }
}

/* ------------------------------------------------------------ errors */
static void test_errors(void **s) {
    (void)s;
    hydra_config cfg = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&cfg, 3, &m));
    size_t N = hydra_model_n_params(m);
    hydra_optim_opts o = hydra_optim_opts_default(HYDRA_OPT_MUON);
    hydra_optimizer *opt = (hydra_optimizer *)0x1;
    assert_int_equal(hydra_optimizer_create(NULL, &o, &opt), HYDRA_ERR_ARG);
    assert_null(opt);
    assert_int_equal(hydra_optimizer_create(m, NULL, &opt), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_create(m, &o, NULL), HYDRA_ERR_ARG);
    hydra_optim_opts bad = o;
    bad.lr = -1;
    assert_int_equal(hydra_optimizer_create(m, &bad, &opt), HYDRA_ERR_ARG);
    HY_OK(hydra_optimizer_create(m, &o, &opt));
    float *g = malloc(N * sizeof *g), *g0 = malloc(N * sizeof *g0), *p0 = malloc(N * sizeof *p0);
    assert_int_equal(hydra_optimizer_step(NULL, m, g, NULL, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_step(opt, NULL, g, NULL, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_step(opt, m, NULL, NULL, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_set_steps(NULL, 1), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_set_steps(opt, -1), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_buffer(NULL, 0, NULL, NULL, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_optimizer_n_buffers(NULL), 0);
    assert_int_equal(hydra_optimizer_steps(NULL), 0);
    assert_null(hydra_optimizer_opts(NULL));
    hydra_optimizer_free(NULL);

    /* one warm-up step so the moments are non-zero */
    fill_normal(g, N, 0.01f, 5);
    HY_OK(hydra_optimizer_step(opt, m, g, NULL, NULL));
    int nb = hydra_optimizer_n_buffers(opt);
    float *b0[3];
    for (int b = 0; b < nb; b++) {
        float *d;
        HY_OK(hydra_optimizer_buffer(opt, b, NULL, &d, NULL));
        b0[b] = malloc(N * sizeof(float));
        memcpy(b0[b], d, N * sizeof(float));
    }
    const float poison[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        fill_normal(g, N, 10.0f, 6); /* would be clipped */
        g[N / 2] = poison[k];
        memcpy(g0, g, N * sizeof *g);
        memcpy(p0, m->params, N * sizeof *p0);
        float gn = -1, lr = -1;
        assert_int_equal(hydra_optimizer_step(opt, m, g, &gn, &lr), HYDRA_ERR_ARG);
        assert_non_null(strstr(hydra_last_error(), "gradient is not finite"));
        assert_memory_equal(m->params, p0, N * sizeof *p0);
        assert_memory_equal(g, g0, N * sizeof *g); /* not clipped either */
        assert_int_equal(hydra_optimizer_steps(opt), 1);
        for (int b = 0; b < nb; b++) {
            float *d;
            HY_OK(hydra_optimizer_buffer(opt, b, NULL, &d, NULL));
            assert_memory_equal(d, b0[b], N * sizeof(float));
        }
    }
    /* another model's table */
    hydra_config other = untied_tiny();
    hydra_model *m2;
    HY_OK(hydra_model_create(&other, 3, &m2));
    float *g2 = calloc(hydra_model_n_params(m2), sizeof *g2);
    assert_int_equal(hydra_optimizer_step(opt, m2, g2, NULL, NULL), HYDRA_ERR_MISMATCH);
    free(g2);
    hydra_model_free(m2);
    for (int b = 0; b < nb; b++) free(b0[b]);
    free(g);
    free(g0);
    free(p0);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
}

/* Each test prints its wall time (the suite must stay fast, ASan included). */
#include <time.h>
static double t_start;
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static int tic(void **s) { (void)s; t_start = now_s(); return 0; }
static int toc(void **s) { (void)s; print_message("  (%.2f s)\n", now_s() - t_start); return 0; }
#undef cmocka_unit_test
#define cmocka_unit_test(f) cmocka_unit_test_setup_teardown(f, tic, toc)

int main(void) {
    /* The matrices here are tiny: with a shared, loaded machine, a second
     * OpenMP/BLIS thread only adds barrier waits. test_state_round_trip
     * still runs AdamW with 2 threads to check thread-count independence. */
    hydra_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_validate),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_routing_table),
        cmocka_unit_test(test_newton_schulz_singular_values),
        cmocka_unit_test(test_torch_reference),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
