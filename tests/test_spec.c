/* test_spec.c — speculative decoding: exactness of the algorithm by
 * enumeration (exact probabilities of every output sequence vs plain target
 * sampling), an empirical check of the implementation, greedy equality,
 * rollback (states equal plain feeding of the committed tokens), the rollback
 * journal, and argument errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "hydralm_claims.h"
#include "hydralm_spec.h"
#include "test_util.h"

/* Tiny model: DeltaNet (conv tails + S) and SWA with a window of 4, so the
 * ring wraps within a few tokens. init_std 0.5 gives logits with a spread of
 * a few units (near-uniform distributions would make the tests toothless). */
static hydra_model *tiny_model(int V, uint64_t seed, const char *pattern, int d_model) {
    hydra_config c = hydra_config_default();
    c.d_model = d_model;
    c.n_heads = 2;
    c.head_dim = d_model / 2;
    c.vocab_size = V;
    c.window = 4;
    c.mlp_multiple = 16;
    c.init_std = 0.5f;
    c.n_layers = (int)strlen(pattern);
    snprintf(c.pattern, sizeof c.pattern, "%s", pattern);
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&c, seed, &m));
    return m;
}

/* A draft that resembles the target: the target's weights plus relative
 * noise, so acceptance is high and the residual distribution matters. */
static hydra_model *noisy_copy(int V, uint64_t seed, const char *pattern, int d_model, float noise) {
    hydra_model *m = tiny_model(V, seed, pattern, d_model);
    hydra_rng r;
    hydra_rng_seed(&r, seed * 7 + 1);
    for (int i = 0; i < hydra_model_n_tensors(m); i++) {
        hydra_tensor t;
        HY_OK(hydra_model_tensor(m, i, &t));
        for (size_t j = 0; j < t.numel; j++) t.data[j] *= 1.0f + noise * hydra_rng_normal(&r);
    }
    return m;
}

/* --------------------------------------------------- exact enumeration */
/* The enumeration itself lives in the library (src/eval/spec_exact.c,
 * hydralm_claims.h) so that the claims gate (claim 4) runs the very same
 * computation: exact probabilities of all V^n output sequences under plain
 * target sampling and under speculative decoding. */
static double tvd(const double *a, const double *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d += fabs(a[i] - b[i]);
    return 0.5 * d;
}

static void check_enumeration(int V, int n, const hydra_sample_opts *settings, int n_settings) {
    hydra_model *tm = tiny_model(V, 11, "DSD", 16), *dm = noisy_copy(V, 11, "DSD", 16, 0.1f);
    int32_t prompt[3] = {1, 3 % V, 2};
    hydra_spec_exact *ex = NULL;
    HY_OK(hydra_spec_exact_create(tm, dm, prompt, 3, n, &ex));
    const int ks[3] = {1, 2, 4};
    for (int si = 0; si < n_settings; si++) {
        for (int ki = 0; ki < 3; ki++) {
            hydra_spec_exact_result r;
            HY_OK(hydra_spec_exact_eval(ex, &settings[si], ks[ki], HYDRA_SPEC_EXACT_CORRECT, &r));
            size_t N = 1;
            for (int i = 0; i < n; i++) N *= (size_t)V;
            assert_int_equal(r.n_sequences, N);
            if (!(fabs(r.mass - 1.0) < 1e-6 && r.tvd < 1e-4))
                fail_msg("V=%d n=%d T=%g top_k=%d top_p=%g k=%d: sum %.9f, TVD(spec, target) = %.3g (draft vs target %.3g)",
                         V, n, settings[si].temperature, settings[si].top_k, settings[si].top_p, ks[ki], r.mass, r.tvd,
                         r.tvd_draft);
            /* The check has teeth: the draft alone, and the "resample from p"
             * bug, are far from the target. */
            if (settings[si].temperature > 0 && ks[ki] == 2) {
                if (!(r.tvd_draft > 0.05)) fail_msg("draft too close to the target: TVD %.3g", r.tvd_draft);
                hydra_spec_exact_result rb;
                HY_OK(hydra_spec_exact_eval(ex, &settings[si], ks[ki], HYDRA_SPEC_EXACT_BROKEN_RESIDUAL, &rb));
                if (!(rb.tvd > 1e-3)) fail_msg("broken variant TVD %.3g too small to be detected", rb.tvd);
            }
        }
        /* Adaptive rounds: the draft stops early where its top probability is
         * below min_p; the law must not move. */
        const float min_ps[2] = {0.25f, 0.5f};
        for (int mi = 0; mi < 2; mi++) {
            for (int ki = 1; ki < 3; ki++) {
                hydra_spec_exact_result r;
                HY_OK(hydra_spec_exact_eval_adaptive(ex, &settings[si], ks[ki], min_ps[mi], HYDRA_SPEC_EXACT_CORRECT, &r));
                if (!(fabs(r.mass - 1.0) < 1e-6 && r.tvd < 1e-4))
                    fail_msg("adaptive min_p=%g V=%d n=%d T=%g k=%d: sum %.9f, TVD %.3g", min_ps[mi], V, n,
                             settings[si].temperature, ks[ki], r.mass, r.tvd);
            }
        }
    }
    /* ...and the rule has teeth here: the draft's top probability after one
     * more token is below 0.5 in some contexts and above it in others. */
    int below = 0, above = 0;
    float *lg = malloc((size_t)V * sizeof(float));
    int32_t ctx[4] = {prompt[0], prompt[1], prompt[2], 0};
    for (int x = 0; x < V; x++) {
        ctx[3] = x;
        HY_OK(hydra_forward(dm, ctx, 1, 4, NULL, HYDRA_LOGITS_LAST, lg));
        if (hydra_top_prob(lg, V) < 0.5) below++;
        else above++;
    }
    free(lg);
    if (!(below > 0 && above > 0)) fail_msg("V=%d: draft top probability below 0.5 in %d of %d contexts", V, below, V);
    hydra_spec_exact_free(ex);
    hydra_model_free(tm);
    hydra_model_free(dm);
}

static void test_exact_enumeration(void **st) {
    (void)st;
    hydra_sample_opts s[5];
    for (int i = 0; i < 5; i++) s[i] = hydra_sample_opts_default();
    s[1].temperature = 0.7f;
    s[2].temperature = 1.3f;
    s[2].top_p = 0.9f;
    s[3].temperature = 1.0f;
    s[3].top_p = 0.6f;
    s[3].top_k = 5;
    s[4].temperature = 0.0f; /* greedy: the limit case */
    check_enumeration(8, 5, s, 5);   /* V = 8, sequences of 5 tokens: k = 4 reaches its bonus token */
    check_enumeration(16, 3, s, 4);  /* V = 16, sequences of 3 tokens */
}

/* ------------------------------------------- empirical (implementation) */
/* The implementation samples (s_1, s_2) N times; the exact target law of the
 * pair is prod p(s_t | s_<t). Bound: E[TVD_n] = 1/2 sum_i E|f_i - p_i| <=
 * 1/2 sum_i sqrt(p_i (1 - p_i) / N) (Jensen), and TVD_n changes by at most
 * 1/N when one sample changes, so by McDiarmid P(TVD_n > E + eps) <=
 * exp(-2 N eps^2); eps = sqrt(ln(1e6) / (2N)) makes a false failure < 1e-6
 * for a correct sampler. The seed is fixed, so the test is deterministic. The
 * bound is also checked to be well below TVD(draft, target), so a sampler
 * that returned draft tokens unverified would fail. */
static void test_empirical(void **st) {
    (void)st;
    const int V = 64, N = 4000;
    hydra_model *tm = tiny_model(V, 5, "DSD", 16), *dm = noisy_copy(V, 5, "DSD", 16, 0.05f);
    hydra_sample_opts so = hydra_sample_opts_default();
    so.temperature = 1.0f;
    so.top_k = 6; /* at most 36 pair outcomes */
    int32_t prompt[1] = {42}; /* one token: nothing to prefill, the samples stay cheap */
    /* Exact pair laws of target and draft. */
    double *pt = calloc((size_t)V * V, sizeof(double)), *pd = calloc((size_t)V * V, sizeof(double));
    float *lg = malloc((size_t)V * sizeof(float)), *p1 = malloc((size_t)V * sizeof(float)),
          *p2 = malloc((size_t)V * sizeof(float));
    int32_t seq[2] = {42, 0};
    for (int which = 0; which < 2; which++) {
        const hydra_model *m = which ? dm : tm;
        double *dist = which ? pd : pt;
        HY_OK(hydra_forward(m, prompt, 1, 1, NULL, HYDRA_LOGITS_LAST, lg));
        HY_OK(hydra_sample_probs(lg, V, &so, p1));
        for (int a = 0; a < V; a++) {
            if (p1[a] <= 0) continue;
            seq[1] = a;
            HY_OK(hydra_forward(m, seq, 1, 2, NULL, HYDRA_LOGITS_LAST, lg));
            HY_OK(hydra_sample_probs(lg, V, &so, p2));
            for (int b = 0; b < V; b++) dist[a * V + b] = (double)p1[a] * p2[b];
        }
    }
    double bound = 0;
    for (int i = 0; i < V * V; i++) bound += 0.5 * sqrt(pt[i] * (1 - pt[i]) / N);
    bound += sqrt(log(1e6) / (2.0 * N));
    double d_draft = tvd(pd, pt, (size_t)V * V);
    if (!(d_draft > 2 * bound)) fail_msg("test has no power: TVD(draft, target) %.3g vs bound %.3g", d_draft, bound);
    /* k = 1: the bonus token is the second; k = 2: two accepts in a row;
     * k = 3 with adaptive rounds (the draft stops where its top p < 0.2: 1.6 proposals per round) */
    const int ks[3] = {1, 2, 3};
    double *f = malloc((size_t)V * V * sizeof(double));
    for (int ki = 0; ki < 3; ki++) {
        hydra_spec_opts o = hydra_spec_opts_default();
        o.k = ks[ki];
        o.min_draft_prob = ki == 2 ? 0.2f : 0.0f;
        o.sample = so;
        o.seed = 1234;
        hydra_spec_session *s = NULL;
        HY_OK(hydra_spec_session_create(tm, dm, &o, &s));
        memset(f, 0, (size_t)V * V * sizeof(double));
        for (int it = 0; it < N; it++) {
            int32_t got[2], buf[HYDRA_SPEC_MAX_K + 1];
            int have = 0, n = 0;
            HY_OK(hydra_spec_prefill(s, prompt, 1));
            while (have < 2) {
                HY_OK(hydra_spec_round(s, 0, buf, &n));
                for (int i = 0; i < n && have < 2; i++) got[have++] = buf[i];
            }
            f[got[0] * V + got[1]] += 1.0 / N;
        }
        hydra_spec_stats stats;
        hydra_spec_session_stats(s, &stats);
        double d = tvd(f, pt, (size_t)V * V);
        print_message("empirical k=%d min_p %.2f: N=%d TVD %.4f (bound %.4f, draft-vs-target %.4f), alpha %.3f, proposed %.2f per round\n", ks[ki], o.min_draft_prob, N, d,
                      bound, d_draft, stats.alpha, (double)stats.proposed / (double)stats.rounds);
        if (!(d < bound)) fail_msg("k=%d: empirical TVD %.4f exceeds the bound %.4f", ks[ki], d, bound);
        assert_true(stats.rejected > 0 && stats.accepted > 0); /* both branches exercised */
        if (o.min_draft_prob > 0) /* some rounds ended early, not all */
            assert_true(stats.proposed < (uint64_t)o.k * stats.rounds && stats.proposed > stats.rounds);
        hydra_spec_session_free(s);
    }
    free(f);
    free(pt);
    free(pd);
    free(lg);
    free(p1);
    free(p2);
    hydra_model_free(tm);
    hydra_model_free(dm);
}

/* ----------------------------------------------------------- greedy */
static void test_greedy_equals_plain(void **st) {
    (void)st;
    const int V = 64, n = 40;
    hydra_model *tm = tiny_model(V, 5, "DSDS", 32), *dm = tiny_model(V, 6, "DS", 16);
    int32_t prompt[5] = {1, 2, 3, 4, 5}, ref[40], got[40];
    size_t n_ref = 0, n_got = 0;
    hydra_gen_opts g = hydra_gen_opts_default();
    g.sample.temperature = 0.0f;
    g.max_new_tokens = n;
    HY_OK(hydra_generate(tm, NULL, prompt, 5, &g, ref, n, &n_ref));
    assert_int_equal(n_ref, n);
    const int ks[4] = {1, 2, 4, 6};
    for (int pass = 0; pass < 3; pass++) {
        /* pass 1: the target drafts for itself: alpha = 1; pass 2: adaptive rounds */
        const hydra_model *draft = pass == 1 ? tm : dm;
        for (int ki = 0; ki < 4; ki++) {
            hydra_spec_opts o = hydra_spec_opts_default();
            o.k = ks[ki];
            o.min_draft_prob = pass == 2 ? 0.3f : 0.0f;
            o.sample.temperature = 0.0f;
            o.max_new_tokens = n;
            hydra_spec_stats s;
            HY_OK(hydra_spec_generate(tm, draft, prompt, 5, &o, got, n, &n_got, &s));
            assert_int_equal(n_got, n);
            for (int i = 0; i < n; i++)
                if (got[i] != ref[i]) fail_msg("k=%d pass %d: token %d: spec %d, plain %d", ks[ki], pass, i, got[i], ref[i]);
            assert_int_equal(s.generated, n);
            assert_true(s.tokens_per_target_forward >= 1.0);
            if (pass == 2 && o.k > 1) assert_true(s.proposed < (uint64_t)o.k * s.rounds);
            if (pass == 1) {
                assert_int_equal(s.accepted, s.proposed);
                assert_float_equal(s.alpha, 1.0, 0.0);
                assert_int_equal(s.target_forwards, s.rounds);
            }
        }
    }
    hydra_model_free(tm);
    hydra_model_free(dm);
}

/* ---------------------------------------------------------- rollback */
static void assert_state_near(const hydra_state *a, const hydra_state *b, const char *what, int round) {
    if (a->pos != b->pos) fail_msg("%s after round %d: pos %llu vs %llu", what, round, (unsigned long long)a->pos,
                                   (unsigned long long)b->pos);
    double e = rel_err(a->arena, b->arena, a->arena_floats);
    if (!(e <= 1e-5)) fail_msg("%s after round %d: state rel err %.3g", what, round, e);
}

static void test_rollback_states(void **st) {
    (void)st;
    for (int adaptive = 0; adaptive < 2; adaptive++) {
    const int V = 32;
    hydra_model *tm = tiny_model(V, 8, "DSDS", 32), *dm = tiny_model(V, 9, "SD", 16);
    hydra_spec_opts o = hydra_spec_opts_default();
    o.k = 4;
    o.min_draft_prob = adaptive ? 0.2f : 0.0f; /* adaptive: the draft consumes its last proposal */
    o.sample.temperature = 1.0f;
    o.seed = 77;
    hydra_spec_session *s = NULL;
    HY_OK(hydra_spec_session_create(tm, dm, &o, &s));
    int32_t seq[256] = {4, 8, 15, 16, 23};
    int len = 5, full = 0, partial = 0;
    HY_OK(hydra_spec_prefill(s, seq, 5));
    hydra_state *ts, *ds, *tref, *dref;
    HY_OK(hydra_state_create(tm, &ts));
    HY_OK(hydra_state_create(dm, &ds));
    HY_OK(hydra_state_create(tm, &tref));
    HY_OK(hydra_state_create(dm, &dref));
    for (int round = 0; round < 25; round++) {
        int32_t buf[HYDRA_SPEC_MAX_K + 1];
        int n = 0;
        HY_OK(hydra_spec_round(s, 0, buf, &n));
        assert_true(n >= 1 && n <= o.k + 1);
        if (n == o.k + 1) full++;
        else partial++;
        memcpy(seq + len, buf, (size_t)n * sizeof *buf);
        len += n;
        HY_OK(hydra_spec_session_states(s, ts, ds));
        hydra_state_reset(tref);
        hydra_state_reset(dref);
        HY_OK(hydra_forward(tm, seq, 1, len, &tref, HYDRA_LOGITS_NONE, NULL));
        HY_OK(hydra_forward(dm, seq, 1, len, &dref, HYDRA_LOGITS_NONE, NULL));
        assert_state_near(ts, tref, "target", round);
        assert_state_near(ds, dref, "draft", round);
    }
    assert_true(partial > 0);
    (void)full;
    hydra_spec_stats ss;
    hydra_spec_session_stats(s, &ss);
    if (adaptive) assert_true(ss.proposed < (uint64_t)o.k * ss.rounds && ss.proposed > ss.rounds);
    hydra_state_free(ts);
    hydra_state_free(ds);
    hydra_state_free(tref);
    hydra_state_free(dref);
    hydra_spec_session_free(s);
    hydra_model_free(tm);
    hydra_model_free(dm);
    }
}

/* The rollback journal: a journaled forward gives hydra_forward's logits and
 * state; rolling back to any prefix n gives the state after the base + the
 * first n tokens fed plainly (DeltaNet S and conv tails, the SWA ring with
 * window 4 < the 6 journaled tokens so it wraps, the growing 'A' cache), also
 * across several journaled forwards and after a rollback; misuse is refused. */
static void test_journal_rollback(void **st) {
    (void)st;
    hydra_model *m = tiny_model(32, 3, "DSAD", 32);
    int32_t pre[6] = {1, 2, 3, 4, 5, 6}, tok[6] = {7, 8, 9, 10, 11, 12};
    const int T = 6, V = 32;
    hydra_state *a, *b, *ref;
    hydra_journal *jr;
    HY_OK(hydra_state_create(m, &a));
    HY_OK(hydra_state_create(m, &b));
    HY_OK(hydra_state_create(m, &ref));
    HY_OK(hydra_journal_create(m, T, &jr));
    HY_OK(hydra_forward(m, pre, 1, 6, &a, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_state_copy(b, a));
    float la[6 * 32], lb[6 * 32], l1[32], l2[32];
    HY_OK(hydra_forward(m, tok, 1, T, &a, HYDRA_LOGITS_ALL, la));
    for (int n = 0; n <= T; n++) {
        hydra_state_reset(b);
        HY_OK(hydra_forward(m, pre, 1, 6, &b, HYDRA_LOGITS_NONE, NULL));
        HY_OK(hydra_journal_begin(jr, b));
        if (n % 2) { /* one forward of T tokens */
            HY_OK(hydra_forward_journaled(m, tok, T, b, HYDRA_LOGITS_ALL, lb, jr));
            ASSERT_REL(lb, la, (size_t)T * V, 1e-5);
        } else { /* 3 + 1 + 2 tokens */
            HY_OK(hydra_forward_journaled(m, tok, 3, b, HYDRA_LOGITS_NONE, NULL, jr));
            HY_OK(hydra_forward_journaled(m, tok + 3, 1, b, HYDRA_LOGITS_NONE, NULL, jr));
            HY_OK(hydra_forward_journaled(m, tok + 4, 2, b, HYDRA_LOGITS_LAST, lb, jr));
            ASSERT_REL(lb, la + 5 * V, (size_t)V, 1e-5);
        }
        assert_state_near(b, a, "journaled forward", n);
        HY_OK(hydra_journal_rollback(jr, b, n));
        hydra_state_reset(ref);
        HY_OK(hydra_forward(m, pre, 1, 6, &ref, HYDRA_LOGITS_NONE, NULL));
        if (n) HY_OK(hydra_forward(m, tok, 1, n, &ref, HYDRA_LOGITS_NONE, NULL));
        assert_state_near(b, ref, "rollback", n);
        /* continue recording after the rollback, then roll back again */
        if (n < T) {
            HY_OK(hydra_forward_journaled(m, tok + n, 1, b, HYDRA_LOGITS_NONE, NULL, jr));
            HY_OK(hydra_journal_rollback(jr, b, n));
            assert_state_near(b, ref, "second rollback", n);
        }
        /* the 'A' layer's cache lives outside the arena: continue from both */
        HY_OK(hydra_step(m, b, 5, l1));
        HY_OK(hydra_step(m, ref, 5, l2));
        ASSERT_REL(l1, l2, (size_t)V, 1e-5);
    }
    /* misuse: a state moved since begin, more than cap tokens, n_keep out of range */
    HY_OK(hydra_journal_begin(jr, b));
    HY_OK(hydra_step(m, b, 5, NULL));
    assert_int_equal(hydra_forward_journaled(m, tok, 1, b, HYDRA_LOGITS_NONE, NULL, jr), HYDRA_ERR_ARG);
    assert_int_equal(hydra_journal_rollback(jr, b, 0), HYDRA_ERR_ARG);
    HY_OK(hydra_journal_begin(jr, b));
    int32_t many[7] = {1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(hydra_forward_journaled(m, many, 7, b, HYDRA_LOGITS_NONE, NULL, jr), HYDRA_ERR_ARG);
    HY_OK(hydra_forward_journaled(m, many, 2, b, HYDRA_LOGITS_NONE, NULL, jr));
    assert_int_equal(hydra_journal_rollback(jr, b, 3), HYDRA_ERR_ARG);
    hydra_journal *bad = NULL;
    assert_int_equal(hydra_journal_create(m, 0, &bad), HYDRA_ERR_ARG);
    assert_null(bad);
    hydra_journal_free(jr);
    hydra_state_free(a);
    hydra_state_free(b);
    hydra_state_free(ref);
    hydra_model_free(m);
}

/* ------------------------------------------------------------ errors */
static int count_cb(int32_t tok, void *user) {
    (void)tok;
    ++*(int *)user;
    return 0;
}

static void test_errors_and_stop(void **st) {
    (void)st;
    hydra_model *tm = tiny_model(32, 1, "DS", 16), *dm = tiny_model(48, 2, "DS", 16), *dm2 = tiny_model(32, 2, "D", 16);
    hydra_spec_opts o = hydra_spec_opts_default();
    o.max_new_tokens = 20;
    int32_t prompt[2] = {1, 2}, out[20];
    size_t n = 99;
    hydra_spec_stats s;
    assert_int_equal(hydra_spec_generate(tm, dm, prompt, 2, &o, out, 20, &n, &s), HYDRA_ERR_MISMATCH);
    assert_non_null(strstr(hydra_last_error(), "vocab"));
    assert_int_equal(n, 0);
    o.k = 0;
    assert_int_equal(hydra_spec_generate(tm, dm2, prompt, 2, &o, out, 20, &n, &s), HYDRA_ERR_ARG);
    o.k = HYDRA_SPEC_MAX_K + 1;
    assert_int_equal(hydra_spec_generate(tm, dm2, prompt, 2, &o, out, 20, &n, &s), HYDRA_ERR_ARG);
    o.k = 3;
    assert_int_equal(hydra_spec_generate(tm, dm2, prompt, 2, &o, out, 19, &n, &s), HYDRA_ERR_ARG);
    assert_int_equal(hydra_spec_generate(tm, dm2, prompt, 0, &o, out, 20, &n, &s), HYDRA_ERR_ARG);
    int32_t bad[2] = {1, 32};
    assert_int_equal(hydra_spec_generate(tm, dm2, bad, 2, &o, out, 20, &n, &s), HYDRA_ERR_ARG);
    o.sample.top_p = 0.0f;
    assert_int_equal(hydra_spec_generate(tm, dm2, prompt, 2, &o, out, 20, &n, &s), HYDRA_ERR_ARG);
    o.sample.top_p = 1.0f;
    /* max_new_tokens respected exactly; callback sees every token. */
    int calls = 0;
    o.on_token = count_cb;
    o.user = &calls;
    HY_OK(hydra_spec_generate(tm, dm2, prompt, 2, &o, out, 20, &n, &s));
    assert_int_equal(n, 20);
    assert_int_equal(calls, 20);
    assert_int_equal(s.generated, 20);
    assert_true(s.proposed >= s.accepted && s.rounds == s.target_forwards);
    /* Stop token: generation ends right after emitting it. */
    int32_t stop_tok = out[5];
    int first = 0;
    while (out[first] != stop_tok) first++;
    o.stop_tokens[0] = stop_tok;
    o.n_stop_tokens = 1;
    int32_t out2[20];
    HY_OK(hydra_spec_generate(tm, dm2, prompt, 2, &o, out2, 20, &n, &s));
    assert_int_equal(n, first + 1);
    assert_memory_equal(out2, out, n * sizeof *out);
    assert_int_equal(s.generated, n);
    /* Sessions: round before prefill. */
    hydra_spec_session *ss = NULL;
    HY_OK(hydra_spec_session_create(tm, dm2, &o, &ss));
    int nn;
    assert_int_equal(hydra_spec_round(ss, 0, out, &nn), HYDRA_ERR_ARG);
    hydra_spec_session_free(ss);
    hydra_model_free(tm);
    hydra_model_free(dm);
    hydra_model_free(dm2);
}

int main(void) {
    hydra_set_num_threads(1); /* tiny models: threads only add synchronisation */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_rollback), cmocka_unit_test(test_exact_enumeration),
        cmocka_unit_test(test_greedy_equals_plain), cmocka_unit_test(test_rollback_states),
        cmocka_unit_test(test_errors_and_stop),   cmocka_unit_test(test_empirical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
