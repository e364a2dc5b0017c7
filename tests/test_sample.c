/* test_sample.c — the sampling distribution (temperature, top-k, top-p),
 * seeded draws, greedy, stop tokens and streaming callbacks; batched
 * generation against the single-sequence path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static void test_probs(void **st) {
    (void)st;
    float logits[5] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f}, p[5];
    hydra_sample_opts o = hydra_sample_opts_default();
    /* plain softmax */
    HY_OK(hydra_sample_probs(logits, 5, &o, p));
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(logits[i]);
    for (int i = 0; i < 5; i++) assert_float_equal(p[i], exp(logits[i]) / z, 1e-6);
    /* temperature 2 flattens */
    o.temperature = 2.0f;
    HY_OK(hydra_sample_probs(logits, 5, &o, p));
    z = 0;
    for (int i = 0; i < 5; i++) z += exp(logits[i] / 2);
    for (int i = 0; i < 5; i++) assert_float_equal(p[i], exp(logits[i] / 2) / z, 1e-6);
    /* greedy: one-hot at the first maximum */
    o.temperature = 0.0f;
    HY_OK(hydra_sample_probs(logits, 5, &o, p));
    float want_g[5] = {0, 1, 0, 0, 0};
    assert_memory_equal(p, want_g, sizeof p);
    /* top-k 2 keeps the two 3.0 logits, equally */
    o.temperature = 1.0f;
    o.top_k = 2;
    HY_OK(hydra_sample_probs(logits, 5, &o, p));
    assert_float_equal(p[1], 0.5f, 1e-6);
    assert_float_equal(p[3], 0.5f, 1e-6);
    assert_float_equal(p[0] + p[2] + p[4], 0.0f, 0.0);
    /* top-p: smallest prefix with mass >= p */
    o.top_k = 0;
    float l2[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    o.top_p = 0.8f; /* 0.5 + 0.3 reaches 0.8 */
    HY_OK(hydra_sample_probs(l2, 4, &o, p));
    assert_float_equal(p[0], 0.5f / 0.8f, 1e-5);
    assert_float_equal(p[1], 0.3f / 0.8f, 1e-5);
    assert_float_equal(p[2] + p[3], 0.0f, 0.0);
    o.top_p = 0.1f; /* the top token alone */
    HY_OK(hydra_sample_probs(l2, 4, &o, p));
    assert_float_equal(p[0], 1.0f, 1e-6);
    /* top-k and top-p together: k first, then p within the kept mass */
    o.top_k = 3;
    o.top_p = 0.9f;
    HY_OK(hydra_sample_probs(l2, 4, &o, p));
    assert_float_equal(p[0], 0.5f / 0.95f, 1e-5);
    assert_float_equal(p[2], 0.15f / 0.95f, 1e-5);
    assert_float_equal(p[3], 0.0f, 0.0);
}

static void test_bad_opts(void **st) {
    (void)st;
    float l[3] = {0, 1, 2}, p[3];
    hydra_sample_opts o = hydra_sample_opts_default();
    hydra_rng r;
    int32_t tok;
    hydra_rng_seed(&r, 1);
    o.top_p = 0.0f;
    assert_int_equal(hydra_sample_probs(l, 3, &o, p), HYDRA_ERR_ARG);
    o.top_p = 1.01f;
    assert_int_equal(hydra_sample(l, 3, &o, &r, &tok), HYDRA_ERR_ARG);
    o.top_p = NAN;
    assert_int_equal(hydra_sample(l, 3, &o, &r, &tok), HYDRA_ERR_ARG);
    o = hydra_sample_opts_default();
    o.temperature = INFINITY;
    assert_int_equal(hydra_sample(l, 3, &o, &r, &tok), HYDRA_ERR_ARG);
    o = hydra_sample_opts_default();
    assert_int_equal(hydra_sample(l, 0, &o, &r, &tok), HYDRA_ERR_ARG);
    assert_int_equal(hydra_sample(NULL, 3, &o, &r, &tok), HYDRA_ERR_ARG);
    assert_int_equal(hydra_sample(l, 3, &o, NULL, &tok), HYDRA_ERR_ARG);
    assert_int_equal(hydra_sample(l, 3, NULL, &r, &tok), HYDRA_ERR_ARG);
    float bad[3] = {0, NAN, 1};
    assert_int_equal(hydra_sample(bad, 3, &o, &r, &tok), HYDRA_ERR_ARG);
}

/* Empirical frequencies match the distribution; the same seed repeats. */
static void test_draws(void **st) {
    (void)st;
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    hydra_sample_opts o = hydra_sample_opts_default();
    hydra_rng r;
    hydra_rng_seed(&r, 42);
    int n = 200000, cnt[4] = {0};
    for (int i = 0; i < n; i++) {
        int32_t t;
        HY_OK(hydra_sample(l, 4, &o, &r, &t));
        cnt[t]++;
    }
    /* 5 standard deviations of a binomial count: cannot flake in practice */
    for (int i = 0; i < 4; i++) {
        double pi = 0.1 * (i + 1), sd = sqrt(n * pi * (1 - pi));
        assert_true(fabs(cnt[i] - n * pi) < 5 * sd);
    }
    hydra_rng a, b;
    hydra_rng_seed(&a, 7);
    hydra_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++) assert_int_equal(hydra_rng_next(&a), hydra_rng_next(&b));
    /* top-k 1 never returns anything but the argmax */
    o.top_k = 1;
    for (int i = 0; i < 100; i++) {
        int32_t t;
        HY_OK(hydra_sample(l, 4, &o, &r, &t));
        assert_int_equal(t, 3);
    }
}

typedef struct {
    int calls;
    int stop_at;
} cb_state;
static int count_cb(int32_t tok, void *user) {
    (void)tok;
    cb_state *c = user;
    return ++c->calls == c->stop_at;
}

static void test_generate(void **st) {
    (void)st;
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 3, &m));
    int32_t prompt[3] = {1, 2, 3}, a[16], b[16];
    size_t na, nb;
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 16;
    g.seed = 9;
    g.sample.temperature = 0.9f;
    g.sample.top_p = 0.95f;
    HY_OK(hydra_generate(m, NULL, prompt, 3, &g, a, 16, &na));
    HY_OK(hydra_generate(m, NULL, prompt, 3, &g, b, 16, &nb));
    assert_int_equal(na, 16);
    assert_memory_equal(a, b, sizeof a); /* same seed, same tokens */
    for (int i = 0; i < 16; i++) assert_true(a[i] >= 0 && a[i] < 64);
    /* stop token: generation ends right after it is emitted */
    g.stop_tokens[0] = a[4];
    g.n_stop_tokens = 1;
    HY_OK(hydra_generate(m, NULL, prompt, 3, &g, b, 16, &nb));
    int first = 0;
    while (a[first] != a[4]) first++;
    assert_int_equal(nb, (size_t)first + 1);
    assert_int_equal(b[nb - 1], a[4]);
    /* the callback sees every token and can stop generation */
    cb_state cs = {0, 5};
    g.n_stop_tokens = 0;
    g.on_token = count_cb;
    g.user = &cs;
    HY_OK(hydra_generate(m, NULL, prompt, 3, &g, b, 16, &nb));
    assert_int_equal(cs.calls, 5);
    assert_int_equal(nb, 5);
    /* with a caller state: it holds prompt + every generated token */
    hydra_state *s;
    HY_OK(hydra_state_create(m, &s));
    g.on_token = NULL;
    HY_OK(hydra_generate(m, s, prompt, 3, &g, b, 16, &nb));
    assert_int_equal(hydra_state_position(s), 3 + nb);
    hydra_state_free(s);
    hydra_model_free(m);
}

/* hydra_generate_batch row b = hydra_generate(prompt b, seed + b): exactly
 * for B < 16 (the small-M kernel computes each row alike for any M); for
 * B >= 16 the step is a BLIS GEMM whose summation order may differ, so
 * allow a rare flipped draw there. */
static void test_generate_batch(void **st) {
    (void)st;
    hydra_config c = tiny_config();
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 5, &m));
    enum { P = 7, N = 24, BMAX = 20 };
    int32_t prompts[BMAX * P], out[BMAX * N], one[N];
    hydra_rng r;
    hydra_rng_seed(&r, 11);
    for (int i = 0; i < BMAX * P; i++) prompts[i] = (int32_t)(hydra_rng_next(&r) % 64);
    const int Bs[2] = {5, BMAX};
    const float temps[2] = {0.0f, 0.9f};
    for (int bi = 0; bi < 2; bi++)
        for (int ti = 0; ti < 2; ti++) {
            hydra_gen_opts g = hydra_gen_opts_default();
            g.max_new_tokens = N;
            g.seed = 100;
            g.sample.temperature = temps[ti];
            g.sample.top_p = 0.95f;
            HY_OK(hydra_generate_batch(m, prompts, Bs[bi], P, &g, out));
            int same = 0;
            for (int b = 0; b < Bs[bi]; b++) {
                hydra_gen_opts g1 = g;
                g1.seed = g.seed + (uint64_t)b;
                size_t n1;
                HY_OK(hydra_generate(m, NULL, prompts + b * P, P, &g1, one, N, &n1));
                assert_int_equal(n1, N);
                for (int t = 0; t < N; t++) {
                    assert_true(out[b * N + t] >= 0 && out[b * N + t] < 64);
                    same += out[b * N + t] == one[t];
                }
            }
            if (Bs[bi] < 16) assert_int_equal(same, Bs[bi] * N);
            else assert_true(same >= Bs[bi] * N * 99 / 100);
        }
    /* refused: what would make rows end at different lengths, bad shapes */
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 4;
    g.stop_tokens[0] = 3;
    g.n_stop_tokens = 1;
    assert_int_equal(hydra_generate_batch(m, prompts, 2, P, &g, out), HYDRA_ERR_ARG);
    g.n_stop_tokens = 0;
    assert_int_equal(hydra_generate_batch(m, prompts, 0, P, &g, out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_generate_batch(m, prompts, 2, 0, &g, out), HYDRA_ERR_ARG);
    g.max_new_tokens = 0;
    assert_int_equal(hydra_generate_batch(m, prompts, 2, P, &g, out), HYDRA_ERR_ARG);
    hydra_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probs),
        cmocka_unit_test(test_bad_opts),
        cmocka_unit_test(test_draws),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_generate_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
