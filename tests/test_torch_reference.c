/* test_torch_reference.c — compare the C model with the independent PyTorch
 * reference in python/hydra_ref.py (DESIGN §2, §6 "a PyTorch reference
 * comparison").
 *
 * For each tiny seeded model: save it as safetensors, write T = 40 tokens
 * (longer than the SWA window), run the Python script on them and compare
 *   - logits [T, V] of hydra_forward (fast path, with a state object),
 *   - the final S [H, dv, dk] of every DeltaNet layer in that state,
 *   - logits of hydra_forward_reference,
 *   - logits and S of a forward split into two chunks (state carried),
 * all with normalised error ||a - b|| / ||b|| <= 1e-5.
 *
 * Random init (std 0.02) keeps activations tiny and the model nearly linear,
 * so most models here have their 2-D projection weights scaled up by 10
 * (norms, A_log, dt_bias and conv weights untouched): gates, SiLUs, softmax
 * and the delta-rule correction then all work away from their linear regime.
 *
 * Python with torch is looked for in $HYDRA_PYTHON, then /usr/bin/python3,
 * then python3 on PATH; without one the test is skipped with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "test_util.h"

#define T_TOKENS 40
#define TOL 1e-5

/* ------------------------------------------------------------ python */
/* Skips the calling test when no usable Python is around. */
#define REQUIRE_PYTHON()                                                                  \
    do {                                                                                  \
        if (!find_torch_python()) {                                                             \
            print_message("SKIP: no python3 with torch+numpy found ($HYDRA_PYTHON=\"%s\", " \
                          "/usr/bin/python3, python3); PyTorch reference not compared\n",  \
                          getenv("HYDRA_PYTHON") ? getenv("HYDRA_PYTHON") : "");          \
            skip();                                                                       \
        }                                                                                 \
    } while (0)

/* ------------------------------------------------------------ helpers */
/* Multiply every 2-D weight except the conv kernels by `factor`. */
static void scale_weights(hydra_model *m, float factor) {
    for (int i = 0; i < hydra_model_n_tensors(m); i++) {
        hydra_tensor t;
        HY_OK(hydra_model_tensor(m, i, &t));
        size_t n = strlen(t.name);
        if (t.ndim != 2 || (n >= 12 && strcmp(t.name + n - 12, "_conv.weight") == 0)) continue;
        for (size_t j = 0; j < t.numel; j++) t.data[j] *= factor;
    }
}

static void make_tokens(int32_t *tok, int T, int V, uint64_t seed) {
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(hydra_rng_next(&r) % (uint64_t)V);
}

/* Runs the Python reference; returns a malloc'd buffer of *n floats. */
static float *run_python(const hydra_model *m, const int32_t *tok, int T, const char *tag,
                         const char *dtype, size_t *n) {
    char model_path[600], tok_path[600], out_path[600], name[128];
    snprintf(name, sizeof name, "%s.safetensors", tag);
    snprintf(model_path, sizeof model_path, "%s", tmp_path(name));
    snprintf(name, sizeof name, "%s_tokens.bin", tag);
    snprintf(tok_path, sizeof tok_path, "%s", tmp_path(name));
    snprintf(name, sizeof name, "%s_out.bin", tag);
    snprintf(out_path, sizeof out_path, "%s", tmp_path(name));

    HY_OK(hydra_model_save(m, model_path));
    FILE *f = fopen(tok_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(tok, sizeof(int32_t), (size_t)T, f), (size_t)T); /* host is LE */
    fclose(f);

    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --model '%s' --tokens '%s' --out '%s' --dtype %s", find_torch_python(),
             source_path("python/hydra_ref.py"), model_path, tok_path, out_path, dtype);
    int rc = system(cmd);
    if (rc != 0) fail_msg("python reference failed (status %d): %s", rc, cmd);

    f = fopen(out_path, "rb");
    if (!f) fail_msg("python reference wrote no output %s", out_path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(bytes > 0 && bytes % 4 == 0);
    *n = (size_t)bytes / 4;
    float *out = malloc((size_t)bytes);
    assert_non_null(out);
    assert_int_equal(fread(out, 4, *n, f), *n);
    fclose(f);
    remove(model_path);
    remove(tok_path);
    remove(out_path);
    return out;
}

/* The whole comparison for one model. */
static void compare_model(hydra_model *m, const char *tag, const char *dtype, uint64_t tok_seed) {
    const hydra_config *c = hydra_model_config(m);
    const int T = T_TOKENS, V = c->vocab_size, L = c->n_layers;
    const size_t d = (size_t)hydra_config_head_dim(c), H = (size_t)c->n_heads, SN = H * d * d;
    int32_t tok[T_TOKENS];
    make_tokens(tok, T, V, tok_seed);

    size_t n_py;
    float *py = run_python(m, tok, T, tag, dtype, &n_py);
    int n_gdn = 0;
    for (int i = 0; i < L; i++) n_gdn += hydra_config_layer_kind(c, i) == HYDRA_LAYER_DELTANET;
    size_t want = (size_t)T * V + (size_t)n_gdn * SN;
    if (n_py != want) fail_msg("%s: python output has %zu floats, expected %zu", tag, n_py, want);
    const float *py_logits = py; /* [T, V] */

    /* Fast path in one call, with a state. */
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    float *logits2 = malloc(sizeof(float) * (size_t)T * V);
    assert_non_null(logits);
    assert_non_null(logits2);
    hydra_state *st = NULL;
    HY_OK(hydra_state_create(m, &st));
    HY_OK(hydra_forward(m, tok, 1, T, &st, HYDRA_LOGITS_ALL, logits));
    double e_logits = rel_err(logits, py_logits, (size_t)T * V), e_S = 0;
    ASSERT_REL(logits, py_logits, (size_t)T * V, TOL);
    const float *py_S = py + (size_t)T * V;
    for (int i = 0, g = 0; i < L; i++) {
        if (hydra_config_layer_kind(c, i) != HYDRA_LAYER_DELTANET) continue;
        const float *S_c = st->layers[i].S, *S_py = py_S + (size_t)g++ * SN; /* [H, dv, dk] */
        double e = rel_err(S_c, S_py, SN);
        if (e > e_S) e_S = e;
        if (!(e <= TOL)) fail_msg("%s: layer %d final S: rel err %.3g > %.3g", tag, i, e, TOL);
    }

    /* Plain C reference. */
    HY_OK(hydra_forward_reference(m, tok, T, logits2));
    double e_ref = rel_err(logits2, py_logits, (size_t)T * V);
    ASSERT_REL(logits2, py_logits, (size_t)T * V, TOL);

    /* Two chunks (17 + 23 tokens) through one state: conv tails, S and the
     * attention caches are carried across the boundary. */
    const int T1 = 17;
    hydra_state_reset(st);
    HY_OK(hydra_forward(m, tok, 1, T1, &st, HYDRA_LOGITS_ALL, logits2));
    HY_OK(hydra_forward(m, tok + T1, 1, T - T1, &st, HYDRA_LOGITS_ALL, logits2 + (size_t)T1 * V));
    double e_chunk = rel_err(logits2, py_logits, (size_t)T * V);
    ASSERT_REL(logits2, py_logits, (size_t)T * V, TOL);
    for (int i = 0, g = 0; i < L; i++) {
        if (hydra_config_layer_kind(c, i) != HYDRA_LAYER_DELTANET) continue;
        const float *S_py = py_S + (size_t)g++ * SN;
        double e = rel_err(st->layers[i].S, S_py, SN);
        if (!(e <= TOL)) fail_msg("%s: chunked forward, layer %d final S: rel err %.3g > %.3g", tag, i, e, TOL);
    }

    /* Guard against a vacuous comparison: the logits must not be ~0. */
    double ss = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) ss += (double)py_logits[i] * py_logits[i];
    print_message("%-22s (torch %s) logits rms %.3g | rel err: fast %.2e, S max %.2e, reference %.2e, chunked %.2e\n",
                  tag, dtype, sqrt(ss / ((double)T * V)), e_logits, e_S, e_ref, e_chunk);
    assert_true(ss > 0);

    hydra_state_free(st);
    free(logits);
    free(logits2);
    free(py);
}

/* -------------------------------------------------------------- tests */
static void test_tiny_init(void **state) {
    (void)state;
    REQUIRE_PYTHON();
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 7, &m));
    compare_model(m, "tiny_init", "float64", 11);
    hydra_model_free(m);
}

static void test_tiny_scaled(void **state) {
    (void)state;
    REQUIRE_PYTHON();
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 8, &m));
    scale_weights(m, 10.0f);
    compare_model(m, "tiny_scaled", "float64", 12);
    /* The script's default float32 path agrees too. */
    compare_model(m, "tiny_scaled_f32", "float32", 12);
    hydra_model_free(m);
}

/* Pattern "DSDA" (full attention), untied lm_head, head_dim 0 (= C/H). */
static void test_dsda_untied(void **state) {
    (void)state;
    REQUIRE_PYTHON();
    hydra_config c = tiny_config();
    snprintf(c.pattern, sizeof c.pattern, "DSDA");
    c.tie_embeddings = 0;
    c.n_heads = 4;
    c.head_dim = 0;
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 9, &m));
    scale_weights(m, 10.0f);
    compare_model(m, "dsda_untied", "float64", 13);
    hydra_model_free(m);
}

/* Schedule from swa_every (no pattern), another window, conv width and MLP multiple. */
static void test_swa_every(void **state) {
    (void)state;
    REQUIRE_PYTHON();
    hydra_config c = tiny_config();
    c.pattern[0] = '\0';
    c.swa_every = 2; /* DSDS */
    c.window = 5;
    c.conv_width = 3;
    c.mlp_multiple = 8;
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 10, &m));
    scale_weights(m, 10.0f);
    compare_model(m, "swa_every2", "float64", 14);
    hydra_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_init),
        cmocka_unit_test(test_tiny_scaled),
        cmocka_unit_test(test_dsda_untied),
        cmocka_unit_test(test_swa_every),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
