/* test_delta_rule.c — hydra_op_delta_rule (fast) against hydra_op_delta_rule_ref. */
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int T, H, dk, dv;
    float *q, *k, *v, *g, *beta, *S0;
} dr_case;

/* Inputs normalised like the model: k L2-normalised, q L2-normalised * dk^-1/2,
 * g = -softplus-ish in [-1, 0], beta in (0, 1); S0 random nonzero. */
static dr_case make_case(int T, int H, int dk, int dv, uint64_t seed) {
    dr_case c = {T, H, dk, dv, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t nq = (size_t)T * H * dk + 1, nv = (size_t)T * H * dv + 1, nh = (size_t)T * H + 1;
    c.q = malloc(nq * sizeof(float));
    c.k = malloc(nq * sizeof(float));
    c.v = malloc(nv * sizeof(float));
    c.g = malloc(nh * sizeof(float));
    c.beta = malloc(nh * sizeof(float));
    c.S0 = malloc((size_t)H * dk * dv * sizeof(float));
    assert_non_null(c.q && c.k && c.v && c.g && c.beta && c.S0);
    fill_normal(c.q, nq, 1.0f, seed);
    fill_normal(c.k, nq, 1.0f, seed + 1);
    fill_normal(c.v, nv, 1.0f, seed + 2);
    fill_normal(c.g, nh, 1.0f, seed + 3);
    fill_normal(c.beta, nh, 1.0f, seed + 4);
    fill_normal(c.S0, (size_t)H * dk * dv, 0.3f, seed + 5);
    for (size_t r = 0; r < (size_t)T * H; r++) {
        double nk = 0, nqq = 0;
        for (int j = 0; j < dk; j++) {
            nk += (double)c.k[r * dk + j] * c.k[r * dk + j];
            nqq += (double)c.q[r * dk + j] * c.q[r * dk + j];
        }
        for (int j = 0; j < dk; j++) {
            c.k[r * dk + j] /= (float)(sqrt(nk) + 1e-6);
            c.q[r * dk + j] /= (float)((sqrt(nqq) + 1e-6) * sqrt((double)dk));
        }
        float x = c.g[r];
        c.g[r] = -(float)log1p(exp((double)x)) * 0.5f; /* -softplus/2 */
        if (c.g[r] < -1.0f) c.g[r] = -1.0f;
        c.beta[r] = 1.0f / (1.0f + expf(-c.beta[r]));
    }
    return c;
}

static void free_case(dr_case *c) {
    free(c->q), free(c->k), free(c->v), free(c->g), free(c->beta), free(c->S0);
}

/* Run fast and ref on the same case; compare o and S_T. */
static void check_case(int T, int H, int dk, int dv, uint64_t seed) {
    dr_case c = make_case(T, H, dk, dv, seed);
    size_t ns = (size_t)H * dk * dv, no = (size_t)T * H * dv + 1;
    float *S1 = malloc(ns * sizeof(float)), *S2 = malloc(ns * sizeof(float));
    float *o1 = calloc(no, sizeof(float)), *o2 = calloc(no, sizeof(float));
    memcpy(S1, c.S0, ns * sizeof(float));
    memcpy(S2, c.S0, ns * sizeof(float));
    HY_OK(hydra_op_delta_rule(T, H, dk, dv, c.q, c.k, c.v, c.g, c.beta, S1, o1));
    HY_OK(hydra_op_delta_rule_ref(T, H, dk, dv, c.q, c.k, c.v, c.g, c.beta, S2, o2));
    if (T > 0) ASSERT_REL(o1, o2, (size_t)T * H * dv, 1e-5);
    ASSERT_REL(S1, S2, ns, 1e-5);
    if (T == 0) assert_memory_equal(S1, c.S0, ns * sizeof(float));
    free(S1), free(S2), free(o1), free(o2);
    free_case(&c);
}

static void test_fast_matches_ref(void **st) {
    (void)st;
    static const int cases[][4] = {
        /* T, H, dk, dv */
        {1, 12, 64, 64},  {2, 3, 64, 64},   {3, 2, 64, 64},  {4, 2, 64, 64},   {37, 12, 64, 64},
        {512, 2, 64, 64}, {1, 16, 128, 128}, {67, 4, 128, 128}, {1, 2, 5, 7},   {9, 3, 5, 7},
        {13, 2, 7, 5},    {6, 1, 16, 16},   {1, 1, 16, 16},  {20, 2, 17, 33},  {5, 3, 48, 80},
        {3, 2, 33, 100},  {11, 2, 1, 1},    {1, 5, 96, 40},  {0, 4, 64, 64},   {100, 3, 32, 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(cases[i][0], cases[i][1], cases[i][2], cases[i][3], 100 + i);
}

/* Feeding T tokens in pieces (state carried) equals one call. */
static void test_chunked_equals_whole(void **st) {
    (void)st;
    const int T = 150, H = 3, dk = 64, dv = 48;
    const int pieces[] = {1, 3, 64};
    dr_case c = make_case(T, H, dk, dv, 7);
    size_t ns = (size_t)H * dk * dv, no = (size_t)T * H * dv;
    float *Sw = malloc(ns * sizeof(float)), *ow = malloc(no * sizeof(float));
    memcpy(Sw, c.S0, ns * sizeof(float));
    HY_OK(hydra_op_delta_rule(T, H, dk, dv, c.q, c.k, c.v, c.g, c.beta, Sw, ow));
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        float *Sc = malloc(ns * sizeof(float)), *oc = malloc(no * sizeof(float));
        memcpy(Sc, c.S0, ns * sizeof(float));
        for (int t0 = 0; t0 < T; t0 += pieces[p]) {
            int n = T - t0 < pieces[p] ? T - t0 : pieces[p];
            size_t ok = (size_t)t0 * H * dk, ov = (size_t)t0 * H * dv, oh = (size_t)t0 * H;
            HY_OK(hydra_op_delta_rule(n, H, dk, dv, c.q + ok, c.k + ok, c.v + ov, c.g + oh,
                                      c.beta + oh, Sc, oc + ov));
        }
        ASSERT_REL(oc, ow, no, 1e-5);
        ASSERT_REL(Sc, Sw, ns, 1e-5);
        free(Sc), free(oc);
    }
    free(Sw), free(ow);
    free_case(&c);
}

/* 1 thread vs 2 threads: the per-head arithmetic does not depend on the thread count. */
static void test_thread_count_independent(void **st) {
    (void)st;
    static const int cases[][4] = {{512, 12, 64, 64}, {1, 12, 64, 64}, {33, 16, 128, 128}};
    int saved = omp_get_max_threads();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int T = cases[i][0], H = cases[i][1], dk = cases[i][2], dv = cases[i][3];
        dr_case c = make_case(T, H, dk, dv, 50 + i);
        size_t ns = (size_t)H * dk * dv, no = (size_t)T * H * dv;
        float *S1 = malloc(ns * sizeof(float)), *S2 = malloc(ns * sizeof(float));
        float *o1 = malloc(no * sizeof(float)), *o2 = malloc(no * sizeof(float));
        memcpy(S1, c.S0, ns * sizeof(float));
        memcpy(S2, c.S0, ns * sizeof(float));
        omp_set_num_threads(1);
        HY_OK(hydra_op_delta_rule(T, H, dk, dv, c.q, c.k, c.v, c.g, c.beta, S1, o1));
        omp_set_num_threads(2);
        HY_OK(hydra_op_delta_rule(T, H, dk, dv, c.q, c.k, c.v, c.g, c.beta, S2, o2));
        ASSERT_REL(o1, o2, no, 1e-6);
        ASSERT_REL(S1, S2, ns, 1e-6);
        free(S1), free(S2), free(o1), free(o2);
        free_case(&c);
    }
    omp_set_num_threads(saved);
}

/* dk = dv = 2, T = 2, H = 1, S0 = 0, computed by hand:
 * t=0: k=(1,0) q=(1,0) v=(2,4) g=0 (alpha=1) beta=0.5
 *      S'=0, p=0, u=0.5*(2,4)=(1,2), S = u k^T = [[1,0],[2,0]], o = S q = (1,2)
 * t=1: k=(0.6,0.8) q=(0,1) v=(1,1) g=ln(0.5) (alpha=0.5) beta=1
 *      S'=[[0.5,0],[1,0]], p=S'k=(0.3,0.6), u=(0.7,0.4),
 *      S = S' + u k^T = [[0.5+0.42, 0.56],[1+0.24, 0.32]] = [[0.92,0.56],[1.24,0.32]],
 *      o = S q = (0.56, 0.32). */
static void test_hand_computed(void **st) {
    (void)st;
    const float q[] = {1, 0, 0, 1}, k[] = {1, 0, 0.6f, 0.8f}, v[] = {2, 4, 1, 1};
    const float g[] = {0.0f, logf(0.5f)}, beta[] = {0.5f, 1.0f};
    const float o_want[] = {1, 2, 0.56f, 0.32f}, S_want[] = {0.92f, 0.56f, 1.24f, 0.32f};
    for (int fast = 0; fast < 2; fast++) {
        float S[4] = {0}, o[4];
        if (fast)
            HY_OK(hydra_op_delta_rule(2, 1, 2, 2, q, k, v, g, beta, S, o));
        else
            HY_OK(hydra_op_delta_rule_ref(2, 1, 2, 2, q, k, v, g, beta, S, o));
        for (int i = 0; i < 4; i++) {
            assert_float_equal(o[i], o_want[i], 1e-6);
            assert_float_equal(S[i], S_want[i], 1e-6);
        }
    }
}

/* g = 0, beta = 1, keys = orthonormal basis vectors: after writing v_i under
 * key e_i (from S = 0), querying with q = e_i returns v_i exactly. */
static void test_orthogonal_recall(void **st) {
    (void)st;
    const int d = 16, dv = 8, H = 2, T = d;
    float *q = calloc((size_t)T * H * d, sizeof(float)), *k = calloc((size_t)T * H * d, sizeof(float));
    float *v = malloc((size_t)T * H * dv * sizeof(float)), *o = malloc((size_t)T * H * dv * sizeof(float));
    float *g = calloc((size_t)T * H, sizeof(float)), *beta = malloc((size_t)T * H * sizeof(float));
    fill_normal(v, (size_t)T * H * dv, 1.0f, 3);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            k[((size_t)t * H + h) * d + (t * 7 + h) % d] = 1.0f; /* a permutation of the basis */
            beta[t * H + h] = 1.0f;
        }
    for (int fast = 0; fast < 2; fast++) {
        float *S = calloc((size_t)H * d * dv, sizeof(float));
        /* write */
        if (fast)
            HY_OK(hydra_op_delta_rule(T, H, d, dv, q, k, v, g, beta, S, o));
        else
            HY_OK(hydra_op_delta_rule_ref(T, H, d, dv, q, k, v, g, beta, S, o));
        /* read back: one token per key, with v = p (so u = 0 and S is unchanged) */
        for (int t = 0; t < T; t++) {
            float qq[2 * 16], zero_b[2] = {0, 0}, vv[2 * 8], oo[2 * 8], zg[2] = {0, 0};
            for (int h = 0; h < H; h++)
                memcpy(qq + h * d, k + ((size_t)t * H + h) * d, d * sizeof(float));
            memset(vv, 0, sizeof vv);
            if (fast)
                HY_OK(hydra_op_delta_rule(1, H, d, dv, qq, qq, vv, zg, zero_b, S, oo));
            else
                HY_OK(hydra_op_delta_rule_ref(1, H, d, dv, qq, qq, vv, zg, zero_b, S, oo));
            for (int h = 0; h < H; h++)
                for (int i = 0; i < dv; i++)
                    assert_float_equal(oo[h * dv + i], v[((size_t)t * H + h) * dv + i], 1e-6);
        }
        free(S);
    }
    free(q), free(k), free(v), free(o), free(g), free(beta);
}

static void test_bad_args(void **st) {
    (void)st;
    float x[64] = {0}, S[64] = {0}, o[64];
    for (int fast = 0; fast < 2; fast++) {
        hydra_status (*f)(int, int, int, int, const float *, const float *, const float *,
                          const float *, const float *, float *, float *) =
            fast ? hydra_op_delta_rule : hydra_op_delta_rule_ref;
        assert_int_equal(f(-1, 1, 2, 2, x, x, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 0, 2, 2, x, x, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 0, 2, x, x, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, -3, x, x, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_non_null(strstr(hydra_last_error(), "dv"));
        assert_int_equal(f(1, 1, 2, 2, NULL, x, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_non_null(strstr(hydra_last_error(), "q"));
        assert_int_equal(f(1, 1, 2, 2, x, NULL, x, x, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, 2, x, x, NULL, x, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, 2, x, x, x, NULL, x, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, 2, x, x, x, x, NULL, S, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, 2, x, x, x, x, x, NULL, o), HYDRA_ERR_ARG);
        assert_int_equal(f(1, 1, 2, 2, x, x, x, x, x, S, NULL), HYDRA_ERR_ARG);
        /* T == 0 is a valid no-op */
        assert_int_equal(f(0, 1, 2, 2, x, x, x, x, x, S, o), HYDRA_OK);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_matches_ref),     cmocka_unit_test(test_chunked_equals_whole),
        cmocka_unit_test(test_thread_count_independent), cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_orthogonal_recall),    cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
