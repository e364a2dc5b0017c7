/* test_stream.c — the streaming engine and session state files:
 * any chunking of a stream equals one forward; extend_and_generate equals
 * hydra_generate; stats; save -> load resumes bit-exactly; every kind of bad
 * file is refused with a clear message and leaves the state untouched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "hydralm_spec.h"
#include "hydralm_stream.h"
#include "hydralm_train.h"
#include "test_util.h"

static hydra_model *make_model(hydra_config c, uint64_t seed) {
    c.init_std = 0.2f;
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&c, seed, &m));
    return m;
}

#define make_tokens random_tokens

static hydra_stream *make_stream(const hydra_model *m, int chunk) {
    hydra_stream_opts o = hydra_stream_opts_default();
    o.chunk = chunk;
    hydra_stream *s = NULL;
    HY_OK(hydra_stream_create(m, &o, &s));
    return s;
}

/* Compare two states of the same config: fixed arena (relative error) and position. */
static double state_rel_err(const hydra_state *a, const hydra_state *b) {
    assert_int_equal(a->arena_floats, b->arena_floats);
    assert_int_equal(a->pos, b->pos);
    return rel_err(a->arena, b->arena, a->arena_floats);
}

/* ---------------------------------------------------------------- chunking */
static void check_chunkings(hydra_config c) {
    hydra_model *m = make_model(c, 3);
    const int V = c.vocab_size;
    const size_t T = 300;
    int32_t *tok = make_tokens(T, V, 11);
    float *ref = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    hydra_state *ref_st;
    HY_OK(hydra_state_create(m, &ref_st));
    HY_OK(hydra_forward(m, tok, 1, (int)T, &ref_st, HYDRA_LOGITS_LAST, ref));

    int chunk_sizes[] = {1, 7, 512};
    hydra_rng r;
    hydra_rng_seed(&r, 5);
    for (size_t ci = 0; ci < sizeof chunk_sizes / sizeof chunk_sizes[0]; ci++) {
        /* chunk 1: both feed patterns are the same 300 one-token forwards */
        for (int split = chunk_sizes[ci] == 1; split < 2; split++) {
            hydra_stream *s = make_stream(m, chunk_sizes[ci]);
            if (!split) {
                HY_OK(hydra_stream_feed(s, tok, T));
            } else { /* random feed sizes 1..97, with empty feeds in between */
                size_t i = 0;
                while (i < T) {
                    size_t n = 1 + (size_t)(hydra_rng_next(&r) % 97);
                    if (n > T - i) n = T - i;
                    HY_OK(hydra_stream_feed(s, tok + i, n));
                    HY_OK(hydra_stream_feed(s, tok, 0));
                    i += n;
                }
            }
            HY_OK(hydra_stream_last_logits(s, got));
            double e = rel_err(got, ref, (size_t)V);
            if (!(e <= 1e-5)) fail_msg("chunk %d split %d: logits rel err %.3g", chunk_sizes[ci], split, e);
            double es = state_rel_err(hydra_stream_state(s), ref_st);
            if (!(es <= 1e-5)) fail_msg("chunk %d split %d: state rel err %.3g", chunk_sizes[ci], split, es);
            hydra_stream_free(s);
        }
    }
    hydra_state_free(ref_st);
    free(tok), free(ref), free(got);
    hydra_model_free(m);
}

static void test_chunking_equals_forward(void **st) {
    (void)st;
    check_chunkings(tiny_config()); /* DDSD, window 8 */
    hydra_config c = tiny_config();
    snprintf(c.pattern, sizeof c.pattern, "DA"); /* a full-attention layer: growing cache */
    c.n_layers = 2;
    check_chunkings(c);
}

/* ------------------------------------------------------------ bf16 weights */
/* A bf16 engine: its chunkings agree with each other (<= 1e-5: the same bf16
 * weights whichever path, one-token tiles or blocked GEMMs), its logits stay
 * within bf16 rounding of the f32 engine's (relative error <= 3e-2, argmax
 * agreeing on most positions), and its state files are the f32 model's. */
static void test_bf16_weights(void **st) {
    (void)st;
    hydra_config c = tiny_config();
    hydra_model *m = make_model(c, 3);
    const int V = c.vocab_size;
    const size_t T = 200;
    int32_t *tok = make_tokens(T, V, 12);
    float *lf = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float)),
          *l1 = malloc((size_t)V * sizeof(float));
    hydra_stream_opts o = hydra_stream_opts_default();
    o.weights = HYDRA_WEIGHTS_BF16;
    hydra_stream *sf = make_stream(m, 512), *sb = NULL, *s1 = NULL;
    HY_OK(hydra_stream_create(m, &o, &sb));
    o.chunk = 1;
    HY_OK(hydra_stream_create(m, &o, &s1));
    int agree = 0, n = 0;
    double worst = 0;
    for (size_t i = 0; i < T; i += 20) { /* 10 checkpoints */
        HY_OK(hydra_stream_feed(sf, tok + i, 20));
        HY_OK(hydra_stream_feed(sb, tok + i, 20));
        HY_OK(hydra_stream_feed(s1, tok + i, 20));
        HY_OK(hydra_stream_last_logits(sf, lf));
        HY_OK(hydra_stream_last_logits(sb, lb));
        HY_OK(hydra_stream_last_logits(s1, l1));
        double e1 = rel_err(l1, lb, (size_t)V), ef = rel_err(lb, lf, (size_t)V);
        if (!(e1 <= 1e-5)) fail_msg("bf16 chunk 1 vs 512 at %zu: rel err %.3g", i + 20, e1);
        if (!(ef > 0 && ef <= 3e-2)) fail_msg("bf16 vs f32 at %zu: rel err %.3g (want (0, 3e-2])", i + 20, ef);
        worst = ef > worst ? ef : worst;
        int af = 0, ab = 0;
        for (int v = 1; v < V; v++) {
            if (lf[v] > lf[af]) af = v;
            if (lb[v] > lb[ab]) ab = v;
        }
        agree += af == ab, n++;
    }
    print_message("bf16 vs f32 logits: worst rel err %.3g, argmax agrees %d/%d\n", worst, agree, n);
    assert_true(agree >= n - 2);
    /* the state file carries the f32 model's fingerprint: an f32 engine resumes it */
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("bf16.hstate"));
    HY_OK(hydra_stream_save(sb, path));
    hydra_stream *sr = make_stream(m, 512);
    HY_OK(hydra_stream_load(sr, path));
    assert_int_equal(hydra_state_position(hydra_stream_state(sr)), T);
    remove(path);
    hydra_stream_free(sr), hydra_stream_free(sf), hydra_stream_free(sb), hydra_stream_free(s1);
    free(tok), free(lf), free(lb), free(l1);
    hydra_model_free(m);
}

/* hydra_model_load_bf16: matrices read straight into bf16, nothing else
 * changes. Its forwards equal the bf16 view's bit for bit (same rounding,
 * same kernels); it holds only the bytes it needs; everything that needs f32
 * weights refuses it. Tied and untied heads. */
static void test_bf16_only_model(void **st) {
    (void)st;
    for (int tied = 0; tied <= 1; tied++) {
        hydra_config c = tiny_config();
        c.tie_embeddings = tied;
        hydra_model *m = make_model(c, 5), *mb = NULL;
        char path[256];
        snprintf(path, sizeof path, "%s", tmp_path("bf16only.safetensors"));
        HY_OK(hydra_model_save(m, path));
        HY_OK(hydra_model_load_bf16(path, &mb));
        assert_int_equal(hydra_model_is_bf16(mb), 1);
        assert_int_equal(hydra_model_is_bf16(m), 0);
        assert_true(hydra_model_fingerprint(mb) == hydra_model_fingerprint(m));
        assert_int_equal(hydra_model_n_params(mb), hydra_model_n_params(m));
        /* bytes: f32 for what is not a matrix, bf16 for the matrices (+ the tied head's copy) */
        size_t mat = 0, n = hydra_model_n_params(m), VC = (size_t)c.vocab_size * (size_t)c.d_model;
        for (int i = 0; i < hydra_model_n_tensors(m); i++) {
            hydra_tensor t;
            HY_OK(hydra_model_tensor(m, i, &t));
            if (hydra_param_is_matrix(t.name)) mat += t.numel;
        }
        assert_true(mat > n / 2);
        assert_int_equal(hydra_model_weight_bytes(m), 4 * n);
        assert_int_equal(hydra_model_weight_bytes(mb), 4 * (n - mat) + 2 * (mat + (tied ? VC : 0)));

        /* same logits as the bf16 view of the f32 model, chunked 7 and 64 */
        const int V = c.vocab_size;
        int32_t *tok = make_tokens(150, V, 31);
        float *la = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float));
        hydra_stream_opts o = hydra_stream_opts_default();
        o.weights = HYDRA_WEIGHTS_BF16;
        o.chunk = 7;
        hydra_stream *sv = NULL, *sb = NULL;
        HY_OK(hydra_stream_create(m, &o, &sv));
        o.chunk = 64;
        HY_OK(hydra_stream_create(mb, &o, &sb));
        HY_OK(hydra_stream_feed(sv, tok, 150));
        HY_OK(hydra_stream_feed(sb, tok, 150));
        HY_OK(hydra_stream_last_logits(sv, la));
        HY_OK(hydra_stream_last_logits(sb, lb));
        double e = rel_err(lb, la, (size_t)V);
        if (!(e <= 1e-5)) fail_msg("bf16-only vs bf16 view (tied %d): rel err %.3g", tied, e);
        hydra_stream_free(sv), hydra_stream_free(sb);

        /* refusals: everything that needs the f32 matrices */
        o.weights = HYDRA_WEIGHTS_F32;
        assert_int_equal(hydra_stream_create(mb, &o, &sv), HYDRA_ERR_ARG);
        assert_non_null(strstr(hydra_last_error(), "HYDRA_WEIGHTS_BF16"));
        assert_int_equal(hydra_model_save(mb, tmp_path("never.safetensors")), HYDRA_ERR_ARG);
        assert_non_null(strstr(hydra_last_error(), "hydra_model_load"));
        assert_int_equal(access(tmp_path("never.safetensors"), F_OK), -1);
        hydra_tensor t;
        assert_int_equal(hydra_model_find_tensor(mb, "blocks.0.mlp.down_proj.weight", &t), HYDRA_ERR_ARG);
        HY_OK(hydra_model_find_tensor(mb, "blocks.0.norm1.weight", &t));
        HY_OK(hydra_model_find_tensor(m, "blocks.0.norm1.weight", &(hydra_tensor){0}));
        assert_int_equal(hydra_forward_reference(mb, tok, 4, la), HYDRA_ERR_ARG);
        double loss;
        assert_int_equal(hydra_model_loss(mb, tok, tok + 1, NULL, 1, 8, &loss, NULL), HYDRA_ERR_ARG);
        hydra_optimizer *opt = NULL;
        hydra_optim_opts oo = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
        assert_int_equal(hydra_optimizer_create(mb, &oo, &opt), HYDRA_ERR_ARG);
        assert_null(opt);
        hydra_model *view = NULL;
        assert_int_equal(hydra_model_bf16_view(mb, &view), HYDRA_ERR_ARG);
        /* a truncated file is refused like by hydra_model_load */
        FILE *f = fopen(path, "r+b");
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fclose(f);
        assert_int_equal(truncate(path, sz - 4), 0);
        hydra_model *bad = NULL;
        assert_int_equal(hydra_model_load_bf16(path, &bad), HYDRA_ERR_FORMAT);
        assert_null(bad);
        remove(path);
        free(tok), free(la), free(lb);
        hydra_model_free(m), hydra_model_free(mb);
    }
}

/* ------------------------------------------------------ generate + stats */
static void test_extend_and_generate(void **st) {
    (void)st;
    hydra_config c = tiny_config();
    hydra_model *m = make_model(c, 4);
    const int V = c.vocab_size;
    int32_t *hist = make_tokens(150, V, 21), *prompt = make_tokens(20, V, 22);
    int32_t all[170];
    memcpy(all, hist, 150 * sizeof *all);
    memcpy(all + 150, prompt, 20 * sizeof *all);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 24;
    g.sample.temperature = 0.9f;
    g.sample.top_p = 0.95f;
    g.seed = 1234;
    int32_t want[24], got[24];
    size_t n_want = 0, n_got = 0;
    HY_OK(hydra_generate(m, NULL, all, 170, &g, want, 24, &n_want));

    hydra_stream *s = make_stream(m, 16);
    HY_OK(hydra_stream_feed(s, hist, 150));
    HY_OK(hydra_stream_extend_and_generate(s, prompt, 20, &g, got, 24, &n_got));
    assert_int_equal(n_got, n_want);
    assert_memory_equal(got, want, n_want * sizeof *got);

    hydra_stream_stats ss;
    HY_OK(hydra_stream_get_stats(s, &ss));
    assert_int_equal(ss.tokens, 170 + n_got);
    assert_int_equal(ss.position, 170 + n_got);
    /* 150 in chunks of 16 = 10 chunks, prompt 20 = 2 chunks, one step per generated token */
    assert_int_equal(ss.chunks, 10 + 2 + n_got);
    assert_int_equal(ss.state_bytes, hydra_model_state_bytes(m));
    assert_int_equal(ss.peak_state_bytes, ss.state_bytes);
    assert_true(ss.seconds > 0 && ss.tokens_per_s > 0);

    /* the last logits are those after the last generated token */
    hydra_state *ref;
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    int32_t seq[170 + 24];
    memcpy(seq, all, sizeof all);
    memcpy(seq + 170, got, n_got * sizeof *got);
    HY_OK(hydra_state_create(m, &ref));
    HY_OK(hydra_forward(m, seq, 1, (int)(170 + n_got), &ref, HYDRA_LOGITS_LAST, a));
    HY_OK(hydra_stream_last_logits(s, b));
    ASSERT_REL(b, a, (size_t)V, 1e-5);

    /* empty prompt continues from the current logits; greedy equals argmax */
    g.sample.temperature = 0;
    g.max_new_tokens = 1;
    HY_OK(hydra_stream_extend_and_generate(s, NULL, 0, &g, got, 24, &n_got));
    int best = 0;
    for (int i = 1; i < V; i++)
        if (b[i] > b[best]) best = i;
    assert_int_equal(n_got, 1);
    assert_int_equal(got[0], best);

    /* reset: empty state, zero stats, no logits */
    hydra_stream_reset(s);
    HY_OK(hydra_stream_get_stats(s, &ss));
    assert_int_equal(ss.tokens, 0);
    assert_int_equal(ss.chunks, 0);
    assert_int_equal(ss.position, 0);
    assert_int_equal(hydra_stream_last_logits(s, b), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, NULL, 0, &g, got, 24, &n_got), HYDRA_ERR_ARG);

    hydra_state_free(ref);
    hydra_stream_free(s);
    free(a), free(b), free(hist), free(prompt);
    hydra_model_free(m);
}

/* ------------------------------------------------------------ save / load */
static void save_load_roundtrip(hydra_config c) {
    hydra_model *m = make_model(c, 5);
    const int V = c.vocab_size;
    int32_t *tok = make_tokens(201, V, 31);
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    const char *path = tmp_path("stream_rt.hst");

    hydra_stream *s1 = make_stream(m, 32), *s2 = make_stream(m, 32);
    HY_OK(hydra_stream_feed(s1, tok, 200));
    HY_OK(hydra_stream_save(s1, path));
    HY_OK(hydra_stream_feed(s1, tok + 200, 1)); /* uninterrupted */
    HY_OK(hydra_stream_last_logits(s1, a));

    HY_OK(hydra_stream_load(s2, path));
    assert_int_equal(hydra_state_position(hydra_stream_state(s2)), 200);
    assert_int_equal(hydra_stream_last_logits(s2, b), HYDRA_ERR_ARG); /* no logits in a file */
    HY_OK(hydra_stream_feed(s2, tok + 200, 1));
    HY_OK(hydra_stream_last_logits(s2, b));
    assert_memory_equal(a, b, (size_t)V * sizeof(float)); /* bit-exact */

    /* plain state API into a fresh state too */
    hydra_state *fresh;
    HY_OK(hydra_state_create(m, &fresh));
    HY_OK(hydra_state_load(fresh, m, path));
    HY_OK(hydra_step(m, fresh, tok[200], b));
    assert_memory_equal(a, b, (size_t)V * sizeof(float));

    hydra_state_free(fresh);
    hydra_stream_free(s1);
    hydra_stream_free(s2);
    unlink(path);
    free(tok), free(a), free(b);
    hydra_model_free(m);
}

static void test_save_load(void **st) {
    (void)st;
    save_load_roundtrip(tiny_config());
    hydra_config c = tiny_config();
    snprintf(c.pattern, sizeof c.pattern, "DSA"); /* with a growing full-attention cache */
    c.n_layers = 3;
    save_load_roundtrip(c);
}

/* --------------------------------------------------------------- refusals */
static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}
static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Load must fail with `code`, an error containing `needle`, and st unchanged. */
static void expect_refused(hydra_state *st, const hydra_model *m, const char *path, hydra_status code,
                           const char *needle) {
    hydra_state *before;
    HY_OK(hydra_state_create(m, &before));
    HY_OK(hydra_state_copy(before, st));
    hydra_status r = hydra_state_load(st, m, path);
    if (r != code || !strstr(hydra_last_error(), needle))
        fail_msg("expected %s containing \"%s\", got %s: %s", hydra_status_str(code), needle, hydra_status_str(r),
                 hydra_last_error());
    assert_int_equal(hydra_state_position(st), hydra_state_position(before));
    assert_memory_equal(st->arena, before->arena, st->arena_floats * sizeof(float));
    hydra_state_free(before);
}

static void test_refusals(void **unused) {
    (void)unused;
    hydra_config c = tiny_config();
    hydra_model *m = make_model(c, 6), *other = make_model(c, 7);
    int32_t *tok = make_tokens(64, c.vocab_size, 41);
    hydra_state *st, *dst;
    HY_OK(hydra_state_create(m, &st));
    HY_OK(hydra_state_create(m, &dst));
    HY_OK(hydra_forward(m, tok, 1, 64, &st, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_forward(m, tok, 1, 10, &dst, HYDRA_LOGITS_NONE, NULL)); /* non-trivial destination */
    const char *good = strdup(tmp_path("good.hst"));
    const char *bad = strdup(tmp_path("bad.hst"));
    HY_OK(hydra_state_save(st, m, good));
    size_t n;
    unsigned char *img = read_all(good, &n);
    assert_int_equal(n, 36 + st->arena_floats * 4 + 8);

    /* another model (same shape, other weights) */
    expect_refused(dst, other, good, HYDRA_ERR_MISMATCH, "written by a different model");
    /* truncated: at several lengths */
    size_t cuts[] = {0, 5, 20, 36, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad, img, cuts[i]);
        expect_refused(dst, m, bad, HYDRA_ERR_FORMAT, "truncated");
    }
    /* trailing bytes */
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, img, n);
    memset(longer + n, 0, 3);
    write_all(bad, longer, n + 3);
    expect_refused(dst, m, bad, HYDRA_ERR_FORMAT, "trailing bytes");
    free(longer);
    /* flipped byte in the payload, in the header fields, in the checksum */
    size_t flips[] = {36 + 100, n / 2, 14 /* fingerprint */, 22 /* token count */, n - 3};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        img[flips[i]] ^= 0x10;
        write_all(bad, img, n);
        img[flips[i]] ^= 0x10;
        expect_refused(dst, m, bad, HYDRA_ERR_FORMAT, "checksum mismatch: file is corrupt");
    }
    /* wrong magic, wrong version */
    img[0] = 'X';
    write_all(bad, img, n);
    img[0] = 'H';
    expect_refused(dst, m, bad, HYDRA_ERR_FORMAT, "wrong magic");
    img[8] = 9;
    write_all(bad, img, n);
    img[8] = 1;
    expect_refused(dst, m, bad, HYDRA_ERR_FORMAT, "unsupported format version 9");
    /* nonexistent path */
    expect_refused(dst, m, "/nonexistent/dir/x.hst", HYDRA_ERR_IO, "cannot open state file");
    /* a state of another shape */
    hydra_config c2 = c;
    c2.window = 16;
    hydra_model *m2 = make_model(c2, 6);
    hydra_state *st2;
    HY_OK(hydra_state_create(m2, &st2));
    assert_int_equal(hydra_state_load(st2, m, good), HYDRA_ERR_MISMATCH);
    assert_int_equal(hydra_state_load(st2, m2, good), HYDRA_ERR_MISMATCH); /* fingerprint differs */
    assert_int_equal(hydra_state_save(st2, m, bad), HYDRA_ERR_MISMATCH);
    /* unwritable destination: no file appears, the error says why */
    assert_int_equal(hydra_state_save(st, m, "/nonexistent/dir/x.hst"), HYDRA_ERR_IO);
    assert_non_null(strstr(hydra_last_error(), "cannot write"));
    /* the good file still loads */
    HY_OK(hydra_state_load(dst, m, good));
    assert_memory_equal(dst->arena, st->arena, st->arena_floats * sizeof(float));
    assert_int_equal(hydra_state_position(dst), 64);

    unlink(good);
    unlink(bad);
    free((void *)good), free((void *)bad), free(img), free(tok);
    hydra_state_free(st), hydra_state_free(dst), hydra_state_free(st2);
    hydra_model_free(m), hydra_model_free(other), hydra_model_free(m2);
}

static void test_bad_args(void **unused) {
    (void)unused;
    hydra_config c = tiny_config();
    hydra_model *m = make_model(c, 8);
    hydra_stream *s = NULL;
    hydra_stream_opts o = hydra_stream_opts_default();
    assert_int_equal(o.chunk, 512);
    assert_int_equal(hydra_stream_create(NULL, NULL, &s), HYDRA_ERR_ARG);
    assert_null(s);
    assert_int_equal(hydra_stream_create(m, NULL, NULL), HYDRA_ERR_ARG);
    o.chunk = 0;
    assert_int_equal(hydra_stream_create(m, &o, &s), HYDRA_ERR_ARG);
    o.chunk = 8;
    o.weights = (hydra_weights_precision)7;
    assert_int_equal(hydra_stream_create(m, &o, &s), HYDRA_ERR_ARG);
    HY_OK(hydra_stream_create(m, NULL, &s));

    int32_t tok[3] = {1, 2, 3}, out[4];
    size_t n_out;
    float lg[64];
    assert_int_equal(hydra_stream_feed(NULL, tok, 3), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_feed(s, NULL, 3), HYDRA_ERR_ARG);
    HY_OK(hydra_stream_feed(s, NULL, 0));
    int32_t badtok[3] = {1, 64, 2};
    assert_int_equal(hydra_stream_feed(s, badtok, 3), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_position(hydra_stream_state(s)), 0); /* nothing consumed */
    badtok[1] = -1;
    assert_int_equal(hydra_stream_feed(s, badtok, 3), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_last_logits(s, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_last_logits(NULL, lg), HYDRA_ERR_ARG);
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 4;
    assert_int_equal(hydra_stream_extend_and_generate(NULL, tok, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, NULL, out, 4, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 4, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, NULL, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 3, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, NULL, 4, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_extend_and_generate(s, badtok, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    g.max_new_tokens = 0;
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    g.max_new_tokens = 4;
    g.sample.top_p = 1.5f;
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    g.sample.top_p = 1.0f;
    g.n_stop_tokens = 9;
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 4, &n_out), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_position(hydra_stream_state(s)), 0);
    hydra_stream_stats ss;
    assert_int_equal(hydra_stream_get_stats(NULL, &ss), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_get_stats(s, NULL), HYDRA_ERR_ARG);
    assert_null(hydra_stream_state(NULL));
    hydra_stream_reset(NULL);
    hydra_stream_free(NULL);
    assert_int_equal(hydra_state_save(NULL, m, "x"), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_save(hydra_stream_state(s), NULL, "x"), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_save(hydra_stream_state(s), m, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_save(hydra_stream_state(s), m, ""), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_load(NULL, m, "x"), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_load(hydra_stream_state(s), NULL, "x"), HYDRA_ERR_ARG);
    assert_int_equal(hydra_state_load(hydra_stream_state(s), m, NULL), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_save(NULL, "x"), HYDRA_ERR_ARG);
    assert_int_equal(hydra_stream_load(NULL, "x"), HYDRA_ERR_ARG);
    hydra_stream_free(s);
    hydra_model_free(m);
}

/* hydra_set_cancel_flag: a raised flag stops generate, stream feed/generate and
 * speculative generate with HYDRA_ERR_CANCELLED, keeping the work already done
 * (here the callback raises the flag after the 3rd token). */
static volatile int g_cancel;
static int cancel_after_3(int32_t tok, void *user) {
    (void)tok;
    if (++*(int *)user == 3) g_cancel = 1;
    return 0;
}

static void test_cancel(void **unused) {
    (void)unused;
    hydra_model *m = make_model(tiny_config(), 9);
    hydra_stream *s = NULL;
    HY_OK(hydra_stream_create(m, NULL, &s));
    int32_t tok[3] = {1, 2, 3}, out[16];
    size_t n_out = 99;
    int seen = 0;
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 16;
    g.on_token = cancel_after_3;
    g.user = &seen;
    hydra_set_cancel_flag(&g_cancel);
    g_cancel = 0;
    assert_int_equal(hydra_generate(m, NULL, tok, 3, &g, out, 16, &n_out), HYDRA_ERR_CANCELLED);
    assert_int_equal(n_out, 3);
    assert_non_null(strstr(hydra_last_error(), "cancelled"));
    assert_string_equal(hydra_status_str(HYDRA_ERR_CANCELLED), "cancelled");
    /* raised before the call: nothing is consumed */
    assert_int_equal(hydra_stream_feed(s, tok, 3), HYDRA_ERR_CANCELLED);
    assert_int_equal(hydra_state_position(hydra_stream_state(s)), 0);
    g_cancel = 0;
    HY_OK(hydra_stream_feed(s, tok, 3));
    seen = 0;
    assert_int_equal(hydra_stream_extend_and_generate(s, tok, 3, &g, out, 16, &n_out), HYDRA_ERR_CANCELLED);
    assert_int_equal(n_out, 3);
    assert_int_equal(hydra_state_position(hydra_stream_state(s)), 9); /* 3 + 3 fed, 3 generated */
    hydra_spec_opts so = hydra_spec_opts_default();
    so.k = 2;
    so.max_new_tokens = 16;
    so.on_token = cancel_after_3;
    so.user = &seen;
    seen = 0;
    g_cancel = 0;
    assert_int_equal(hydra_spec_generate(m, m, tok, 3, &so, out, 16, &n_out, NULL), HYDRA_ERR_CANCELLED);
    assert_true(n_out >= 3 && n_out < 16);
    /* NULL turns cancellation off again */
    hydra_set_cancel_flag(NULL);
    seen = 0;
    HY_OK(hydra_generate(m, NULL, tok, 3, &g, out, 16, &n_out));
    assert_int_equal(n_out, 16);
    hydra_stream_free(s);
    hydra_model_free(m);
}

int main(void) {
    /* These models are tiny and the engine makes ~1,500 forwards: with several
     * threads on a shared 2-vCPU machine the OpenMP barriers, not the math,
     * dominate (10x slower under load). Threaded forwards are covered by test_model. */
    hydra_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunking_equals_forward),
        cmocka_unit_test(test_bf16_weights),
        cmocka_unit_test(test_bf16_only_model),
        cmocka_unit_test(test_extend_and_generate),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
