/* test_tasks.c — the synthetic tasks behind the claims (hydralm_eval.h):
 * MQAR batches follow the Zoology layout exactly, the recurring-segment
 * stream has the structure it promises (and so do its planted facts), and the
 * MQAR training recipe reports
 * its curve and honours early stopping. */
#include <stdlib.h>
#include <string.h>

#include "hydralm_eval.h"
#include "test_util.h"

static void test_mqar_layout(void **st) {
    (void)st;
    hydra_mqar_opts mo = {.vocab = 64, .seq_len = 64, .n_pairs = 6};
    hydra_mqar *t = NULL;
    HY_OK(hydra_mqar_create(&mo, &t));
    enum { B = 8, T = 64 };
    int32_t in[B * T], tg[B * T], ds[B * T];
    uint8_t mk[B * T];
    hydra_rng r;
    hydra_rng_seed(&r, 9);
    HY_OK(hydra_mqar_sample(t, &r, B, in, tg, mk, ds));
    for (int b = 0; b < B; b++) {
        const int32_t *x = in + b * T;
        int answers = 0;
        for (int i = 0; i < mo.n_pairs; i++) {
            assert_true(x[2 * i] >= 1 && x[2 * i] < 32);    /* keys: first half, not 0 */
            assert_true(x[2 * i + 1] >= 32 && x[2 * i + 1] < 64); /* values: second half */
            for (int j = 0; j < i; j++) assert_int_not_equal(x[2 * j], x[2 * i]); /* distinct keys */
        }
        for (int p = 0; p < T; p++) {
            if (p + 1 < T) assert_int_equal(tg[b * T + p], x[p + 1]);
            if (!mk[b * T + p]) {
                assert_int_equal(ds[b * T + p], 0);
                continue;
            }
            /* a scored position is a query key whose target is the value stored with it */
            answers++;
            assert_true(p >= 2 * mo.n_pairs);
            int d = ds[b * T + p], k = p - d;
            assert_true(d > 0 && k >= 0 && k % 2 == 0 && k < 2 * mo.n_pairs);
            assert_int_equal(x[k], x[p]);
            assert_int_equal(tg[b * T + p], x[k + 1]);
        }
        assert_int_equal(answers, mo.n_pairs); /* each key queried once */
    }
    hydra_mqar_free(t);
    hydra_mqar_opts bad = {.vocab = 8, .seq_len = 64, .n_pairs = 6}; /* 3 keys for 6 pairs */
    assert_int_equal(hydra_mqar_create(&bad, &t), HYDRA_ERR_ARG);
}

/* Distinct segments in a stream = the initial dictionary entries that were
 * used plus one per renewal (collisions are negligible at V = 256, S = 4). */
static int distinct_segments(const hydra_segstream_opts *o, uint64_t seed, int n_emit) {
    const int S = o->seg_len, n = n_emit * (S + 1);
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    HY_OK(hydra_segstream_generate(o, &(hydra_rng){0}, tok, 0)); /* n = 0 is fine */
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    HY_OK(hydra_segstream_generate(o, &r, tok, (size_t)n));
    int distinct = 0;
    for (int e = 0; e < n_emit; e++) {
        const int32_t *seg = tok + e * (S + 1);
        assert_int_equal(seg[0], 0); /* a delimiter opens every emission */
        const int w = hydra_segstream_band(o);
        for (int i = 1; i <= S; i++) /* token i of a segment lies in band i */
            assert_true(seg[i] >= 1 + (i - 1) * w && seg[i] < 1 + i * w && seg[i] < o->vocab);
        int seen = 0;
        for (int f = 0; f < e && !seen; f++) seen = !memcmp(seg, tok + f * (S + 1), (size_t)(S + 1) * sizeof *seg);
        distinct += !seen;
    }
    free(tok);
    return distinct;
}

static void test_segstream(void **st) {
    (void)st;
    hydra_segstream_opts o = {.vocab = 256, .n_slots = 5, .seg_len = 4, .new_every = 1000000};
    /* never renewed: only the dictionary's 5 segments ever appear */
    assert_int_equal(distinct_segments(&o, 1, 400), 5);
    /* renewed every 4th emission: 100 fresh segments + the initial ones used before being replaced */
    o.new_every = 4;
    int d = distinct_segments(&o, 2, 400);
    assert_true(d >= 100 && d <= 105);
    /* every emission fresh: nothing recurs */
    o.new_every = 1;
    assert_int_equal(distinct_segments(&o, 3, 200), 200);
    /* same seed, same stream; a split stream is a prefix of the long one */
    int32_t a[300], b[300];
    hydra_rng r1, r2;
    hydra_rng_seed(&r1, 4), hydra_rng_seed(&r2, 4);
    HY_OK(hydra_segstream_generate(&o, &r1, a, 300));
    HY_OK(hydra_segstream_generate(&o, &r2, b, 137));
    assert_memory_equal(a, b, 137 * sizeof *a);
    hydra_segstream_opts bad = {.vocab = 2, .n_slots = 1, .seg_len = 1, .new_every = 1};
    assert_int_equal(hydra_segstream_generate(&bad, &r1, a, 10), HYDRA_ERR_ARG);
    bad = (hydra_segstream_opts){.vocab = 4, .n_slots = 1, .seg_len = 4, .new_every = 1}; /* 3 ids for 4 bands */
    assert_int_equal(hydra_segstream_generate(&bad, &r1, a, 10), HYDRA_ERR_ARG);
    /* the trainer task: targets are the inputs shifted by one, every position
     * scored; with score_recall_only exactly the segment tokens after the first */
    hydra_task task = hydra_segstream_task(&o);
    int32_t in[2 * 16], tg[2 * 16];
    uint8_t mk[2 * 16];
    for (int recall = 0; recall < 2; recall++) {
        o.score_recall_only = recall;
        HY_OK(task.sample(task.ctx, 0, &r1, 2, 16, in, tg, mk));
        int scored = 0;
        for (int b2 = 0; b2 < 2; b2++)
            for (int i = 0; i < 16; i++) {
                if (i + 1 < 16) assert_int_equal(tg[b2 * 16 + i], in[b2 * 16 + i + 1]);
                int pos_in_emission = i % (o.seg_len + 1); /* 0 = the delimiter */
                int want = !recall || (pos_in_emission >= 1 && pos_in_emission < o.seg_len);
                assert_int_equal(mk[b2 * 16 + i], want);
                scored += mk[b2 * 16 + i];
            }
        assert_true(scored > 0);
    }
}

/* Claim 1's planted facts (issue 18, finding 6). */
static hydra_plant_opts plant_opts(void) {
    hydra_plant_opts o = {.base = {.vocab = 64, .n_slots = 8, .seg_len = 2, .new_every = 4, .score_recall_only = 1},
                          .n_keys = 8, .n_buckets = 6, .bucket_hi = {8, 256, 1024, 4096, 16384, 32768}, .gap_max = 32};
    return o;
}

/* Every fact's distance lies in its bucket; its write and query carry the
 * markers, key and value; nothing else mentions the key while it is alive,
 * so the answer is determined by the planted fact; the positions scored as
 * planted answers are exactly the facts' queries. Returns the facts per bucket. */
static void check_plant_stream(const hydra_plant_opts *o, const int32_t *tok, size_t n, const hydra_plant_fact *f, int nf,
                               int *per_bucket) {
    const int32_t W = o->base.vocab, Q = W + 1;
    uint8_t *is_query = calloc(n, 1);
    for (int i = 0; i < nf; i++) {
        const int64_t d = f[i].query_pos - f[i].write_pos;
        const int b = f[i].bucket;
        assert_true(d >= 3 && d % 3 == 0 && f[i].query_pos + 1 < (int64_t)n);
        assert_int_equal(hydra_plant_bucket(o, d), b);
        assert_true(d <= o->bucket_hi[b] && (b == 0 || d > o->bucket_hi[b - 1]));
        assert_int_equal(tok[f[i].write_pos - 1], W);
        assert_int_equal(tok[f[i].query_pos - 1], Q);
        assert_int_equal(tok[f[i].write_pos], f[i].key);
        assert_int_equal(tok[f[i].query_pos], f[i].key);
        assert_int_equal(tok[f[i].write_pos + 1], f[i].value);
        assert_int_equal(tok[f[i].query_pos + 1], f[i].value);
        assert_true(f[i].key >= W + 2 && f[i].key < hydra_plant_vocab(o));
        const int w = hydra_segstream_band(&o->base);
        assert_true(f[i].value >= 1 + w && f[i].value < 1 + 2 * w);
        for (int64_t t = f[i].write_pos + 1; t < f[i].query_pos; t++) assert_int_not_equal(tok[t], f[i].key);
        if (i) assert_true(f[i].query_pos > f[i - 1].query_pos); /* in query order */
        is_query[f[i].query_pos] = 1;
        per_bucket[b]++;
    }
    for (size_t t = 0; t + 1 < n; t++) {
        const int kind = hydra_plant_position_kind(o, tok, t);
        assert_int_equal(kind == 2, is_query[t]);
        if (kind == 1) assert_true(tok[t + 1] >= 1 + hydra_segstream_band(&o->base) && tok[t + 1] < W);
        assert_true(tok[t] >= 0 && tok[t] < hydra_plant_vocab(o));
    }
    free(is_query);
}

static void test_plant_buckets(void **st) {
    (void)st;
    hydra_plant_opts o = plant_opts();
    enum { N = 32769, CAP = N / 6 + 1 };
    int32_t *tok = malloc(N * sizeof *tok), *tok2 = malloc(N * sizeof *tok2);
    hydra_plant_fact *f = malloc(CAP * sizeof *f), *f2 = malloc(CAP * sizeof *f2);
    int total[6] = {0};
    for (uint64_t seed = 1; seed <= 4; seed++) {
        hydra_rng r;
        hydra_rng_seed(&r, seed);
        int nf = 0, nf2 = 0, per[6] = {0};
        HY_OK(hydra_plant_generate(&o, &r, tok, N, f, CAP, &nf));
        check_plant_stream(&o, tok, N, f, nf, per);
        /* a 32K stream has facts in every bucket, the longest from at least
         * half of the keys (every even key starts its chain there) */
        for (int b = 0; b < 6; b++) assert_true(per[b] >= 1), total[b] += per[b];
        assert_true(per[5] >= o.n_keys / 2);
        /* deterministic per seed, different across seeds */
        hydra_rng_seed(&r, seed);
        HY_OK(hydra_plant_generate(&o, &r, tok2, N, f2, CAP, &nf2));
        assert_int_equal(nf, nf2);
        assert_memory_equal(tok, tok2, N * sizeof *tok);
        assert_memory_equal(f, f2, (size_t)nf * sizeof *f);
        hydra_rng_seed(&r, seed + 100);
        HY_OK(hydra_plant_generate(&o, &r, tok2, N, NULL, 0, NULL));
        assert_memory_not_equal(tok, tok2, N * sizeof *tok);
    }
    /* a stream of the training length holds only the two short buckets */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        hydra_rng r;
        hydra_rng_seed(&r, seed);
        int nf = 0, per[6] = {0};
        HY_OK(hydra_plant_generate(&o, &r, tok, 257, f, CAP, &nf));
        check_plant_stream(&o, tok, 257, f, nf, per);
        assert_true(nf > 0);
        for (int b = 2; b < 6; b++) assert_int_equal(per[b], 0);
    }
    assert_int_equal(hydra_plant_bucket(&o, 2), -1);
    assert_int_equal(hydra_plant_bucket(&o, 8), 0);
    assert_int_equal(hydra_plant_bucket(&o, 9), 1);
    assert_int_equal(hydra_plant_bucket(&o, 32768), 5);
    assert_int_equal(hydra_plant_bucket(&o, 32769), -1);
    free(tok), free(tok2), free(f), free(f2);
}

/* The background continues around the planted emissions as if they were not
 * there: removing them gives the segstream of the same seed. The task scores
 * the background recalls and the planted answers, not a planted write. */
static void test_plant_background_and_task(void **st) {
    (void)st;
    hydra_plant_opts o = plant_opts();
    enum { N = 3000 };
    int32_t tok[N], bg[N], rest[N];
    hydra_rng r;
    hydra_rng_seed(&r, 7);
    HY_OK(hydra_plant_generate(&o, &r, tok, N, NULL, 0, NULL));
    hydra_rng_seed(&r, 7);
    HY_OK(hydra_segstream_generate(&o.base, &r, bg, N));
    int n = 0, planted = 0;
    for (int e = 0; 3 * e + 2 < N; e++) {
        if (tok[3 * e] >= o.base.vocab) {
            planted++;
            continue;
        }
        assert_int_equal(tok[3 * e], 0);
        for (int i = 0; i < 3; i++) rest[n++] = tok[3 * e + i];
    }
    assert_true(planted > 0);
    assert_memory_equal(rest, bg, (size_t)n * sizeof *bg);
    /* the task's mask */
    hydra_plant_opts to = o;
    hydra_task task = hydra_plant_task(&to);
    assert_int_equal(task.min_vocab, 64 + 2 + 8);
    enum { B = 2, T = 256 };
    int32_t in[B * T], tg[B * T];
    uint8_t mk[B * T];
    HY_OK(task.sample(task.ctx, 0, &r, B, T, in, tg, mk));
    int answers = 0, recalls = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const int32_t x = in[b * T + t], prev = t ? in[b * T + t - 1] : -1;
            const int want = (x >= 1 && x < 32) || (x >= 66 && prev == 65);
            assert_int_equal(mk[b * T + t], want);
            if (x >= 66 && prev == 64) assert_int_equal(mk[b * T + t], 0); /* a write's value: unpredictable */
            answers += x >= 66 && prev == 65, recalls += x >= 1 && x < 32;
        }
    assert_true(answers > 0 && recalls > answers);
    /* refused options */
    hydra_plant_opts bad = o;
    bad.base.seg_len = 3;
    assert_int_equal(hydra_plant_generate(&bad, &r, tok, 10, NULL, 0, NULL), HYDRA_ERR_ARG);
    bad = o, bad.n_keys = 0;
    assert_int_equal(hydra_plant_generate(&bad, &r, tok, 10, NULL, 0, NULL), HYDRA_ERR_ARG);
    bad = o, bad.bucket_hi[2] = 257; /* (256, 257] holds no multiple of 3 */
    assert_int_equal(hydra_plant_generate(&bad, &r, tok, 10, NULL, 0, NULL), HYDRA_ERR_ARG);
    hydra_plant_fact f[2];
    int nf;
    assert_int_equal(hydra_plant_generate(&o, &r, tok, N, f, 2, &nf), HYDRA_ERR_ARG); /* more facts than room */
}

static int points, stop_after;
static int on_point(const hydra_mqar_point *p, void *user) {
    (void)user;
    points++;
    assert_true(p->eval.accuracy >= 0 && p->eval.accuracy <= 1 && p->eval.answers == 2 * 16 * 3);
    assert_true(p->step == points * 2);
    return stop_after && points >= stop_after;
}

static void test_mqar_train(void **st) {
    (void)st;
    hydra_mqar_train_opts o = hydra_mqar_train_opts_default();
    o.cfg = tiny_config();
    o.task = (hydra_mqar_opts){.vocab = 64, .seq_len = 32, .n_pairs = 3};
    o.train.batch = 4;
    o.steps = 6;
    o.eval_every = 2;
    o.eval_batches = 2;
    o.eval_batch = 16;
    o.on_point = on_point;
    hydra_model *m = NULL;
    hydra_mqar_point fin;
    points = 0, stop_after = 0;
    HY_OK(hydra_mqar_train(&o, &m, &fin));
    assert_int_equal(points, 3);
    assert_int_equal(fin.step, 6);
    assert_non_null(m);
    hydra_model_free(m);
    points = 0, stop_after = 2; /* the callback stops training early */
    HY_OK(hydra_mqar_train(&o, NULL, &fin));
    assert_int_equal(points, 2);
    assert_int_equal(fin.step, 4);
    o.cfg.vocab_size = 32; /* smaller than the task's vocabulary */
    assert_int_equal(hydra_mqar_train(&o, &m, NULL), HYDRA_ERR_MISMATCH);
    assert_null(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mqar_layout),
        cmocka_unit_test(test_segstream),
        cmocka_unit_test(test_plant_buckets),
        cmocka_unit_test(test_plant_background_and_task),
        cmocka_unit_test(test_mqar_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
