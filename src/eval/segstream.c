/* segstream.c — the recurring-segment stream (hydralm_eval.h): synthetic
 * text whose structure reaches beyond a sliding window, stationary so that
 * the loss at 32K tokens is comparable with the loss at the training length;
 * and the same stream with facts planted at chosen distances up to 32K
 * (recall beyond the training length). */
#include <string.h>

#include "core/internal.h"
#include "hydralm_eval.h"

static int below(hydra_rng *r, int n) { return (int)(hydra_rng_next(r) % (uint64_t)n); }

static hydra_status check(const hydra_segstream_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "segstream: NULL options");
    if (o->vocab < 3 || o->n_slots < 1 || o->seg_len < 1 || o->new_every < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "segstream: need vocab >= 3, n_slots, seg_len, new_every >= 1");
    if ((size_t)o->n_slots * (size_t)o->seg_len > (1u << 20))
        return hydra_set_error(HYDRA_ERR_ARG, "segstream: dictionary too large");
    if ((o->vocab - 1) / o->seg_len < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "segstream: vocab - 1 must be >= seg_len (one id per band)");
    return HYDRA_OK;
}

int hydra_segstream_band(const hydra_segstream_opts *o) { return o && o->seg_len > 0 ? (o->vocab - 1) / o->seg_len : 0; }

hydra_status hydra_segstream_generate(const hydra_segstream_opts *o, hydra_rng *rng, int32_t *out, size_t n) {
    hydra_status st = check(o);
    if (st) return st;
    if (!rng || (!out && n)) return hydra_set_error(HYDRA_ERR_ARG, "segstream: NULL argument");
    const int D = o->n_slots, S = o->seg_len, w = hydra_segstream_band(o);
    int32_t *dict = malloc((size_t)D * S * sizeof *dict);
    if (!dict) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    /* position i of a segment draws from its own band [1 + i w, 1 + (i + 1) w) */
    for (int i = 0; i < D * S; i++) dict[i] = 1 + (i % S) * w + below(rng, w);
    size_t t = 0;
    for (long e = 0; t < n; e++) {
        int slot = below(rng, D);
        int32_t *seg = dict + (size_t)slot * S;
        if (e % o->new_every == o->new_every - 1)
            for (int i = 0; i < S; i++) seg[i] = 1 + i * w + below(rng, w);
        out[t++] = 0;
        for (int i = 0; i < S && t < n; i++) out[t++] = seg[i];
    }
    free(dict);
    return HYDRA_OK;
}

/* One task batch: B independent streams of T+1 tokens from gen, inputs and
 * targets shifted by one, mask from scored(ctx, stream, t). */
typedef hydra_status (*stream_gen_fn)(const void *ctx, hydra_rng *rng, int32_t *out, size_t n);
typedef int (*stream_scored_fn)(const void *ctx, const int32_t *tok, size_t t);

static hydra_status stream_sample(const void *ctx, stream_gen_fn gen, stream_scored_fn scored, hydra_rng *rng, int B,
                                  int T, int32_t *inputs, int32_t *targets, uint8_t *mask) {
    int32_t *buf = malloc(((size_t)T + 1) * sizeof *buf);
    if (!buf) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_status st = HYDRA_OK;
    for (int b = 0; b < B && !st; b++) {
        if ((st = gen(ctx, rng, buf, (size_t)T + 1))) break;
        memcpy(inputs + (size_t)b * T, buf, (size_t)T * sizeof *buf);
        memcpy(targets + (size_t)b * T, buf + 1, (size_t)T * sizeof *buf);
        for (int t = 0; t < T; t++) mask[(size_t)b * T + t] = (uint8_t)(scored(ctx, buf, (size_t)t) != 0);
    }
    free(buf);
    return st;
}

static hydra_status segstream_gen(const void *ctx, hydra_rng *rng, int32_t *out, size_t n) {
    return hydra_segstream_generate(ctx, rng, out, n);
}

static int segstream_scored(const void *ctx, const int32_t *tok, size_t t) {
    const hydra_segstream_opts *o = ctx;
    return !o->score_recall_only || hydra_segstream_is_recall(tok[t], tok[t + 1]);
}

static hydra_status segstream_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                                     int32_t *targets, uint8_t *mask) {
    (void)split; /* fresh random streams: train and validation never repeat */
    return stream_sample(ctx, segstream_gen, segstream_scored, rng, B, T, inputs, targets, mask);
}

hydra_task hydra_segstream_task(hydra_segstream_opts *o) {
    hydra_task t = {"segstream", o, o ? o->vocab : 0, segstream_sample};
    return t;
}

/* ------------------------------------------ planted long-range facts */
static hydra_status plant_check(const hydra_plant_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "plant: NULL options");
    hydra_status st = check(&o->base);
    if (st) return st;
    if (o->base.seg_len != 2) return hydra_set_error(HYDRA_ERR_ARG, "plant: the background needs seg_len 2");
    if (o->n_keys < 1 || o->n_keys > 256) return hydra_set_error(HYDRA_ERR_ARG, "plant: n_keys must be in [1, 256]");
    if (o->n_buckets < 1 || o->n_buckets > HYDRA_PLANT_MAX_BUCKETS || o->gap_max < 0)
        return hydra_set_error(HYDRA_ERR_ARG, "plant: n_buckets in [1, %d], gap_max >= 0", HYDRA_PLANT_MAX_BUCKETS);
    for (int b = 0; b < o->n_buckets; b++) /* every bucket holds a multiple of 3 */
        if (o->bucket_hi[b] / 3 < (b ? o->bucket_hi[b - 1] / 3 + 1 : 1))
            return hydra_set_error(HYDRA_ERR_ARG, "plant: bucket %d (upper bound %d) holds no distance 3k", b,
                                   o->bucket_hi[b]);
    return HYDRA_OK;
}

int hydra_plant_vocab(const hydra_plant_opts *o) { return o ? o->base.vocab + 2 + o->n_keys : 0; }

int hydra_plant_bucket(const hydra_plant_opts *o, int64_t distance) {
    if (!o || distance < 3) return -1;
    for (int b = 0; b < o->n_buckets && b < HYDRA_PLANT_MAX_BUCKETS; b++)
        if (distance <= o->bucket_hi[b]) return b;
    return -1;
}

int hydra_plant_position_kind(const hydra_plant_opts *o, const int32_t *tok, size_t t) {
    const int32_t x = tok[t], w = hydra_segstream_band(&o->base), q = o->base.vocab + 1;
    if (x >= 1 && x < 1 + w) return 1; /* a background key: its value follows */
    if (x > q && x < q + 1 + o->n_keys && t > 0 && tok[t - 1] == q) return 2;
    return 0;
}

/* Distances of bucket b in emissions (3 tokens each): [*lo, *hi]. */
static void bucket_emissions(const hydra_plant_opts *o, int b, int64_t *lo, int64_t *hi) {
    *lo = b ? o->bucket_hi[b - 1] / 3 + 1 : 1;
    *hi = o->bucket_hi[b] / 3;
}

/* The largest bucket with a distance of at most rem emissions, -1 if none. */
static int largest_fitting(const hydra_plant_opts *o, int64_t rem) {
    for (int b = o->n_buckets - 1; b >= 0; b--) {
        int64_t lo, hi;
        bucket_emissions(o, b, &lo, &hi);
        if (lo <= rem) return b;
    }
    return -1;
}

static int cmp_query(const void *a, const void *b) {
    const hydra_plant_fact *x = a, *y = b;
    return (x->query_pos > y->query_pos) - (x->query_pos < y->query_pos);
}

/* Places every key's chain of facts on the E emission slots (kind[e]: 0
 * background, 1 write, 2 query of fact[e]); returns the number of facts. */
static int plant_schedule(const hydra_plant_opts *o, hydra_rng *rng, int64_t E, uint8_t *kind, int64_t *fact_of,
                          hydra_plant_fact *facts) {
    const int w = hydra_segstream_band(&o->base);
    int nf = 0;
    for (int j = 0; j < o->n_keys; j++) {
        int64_t p = below(rng, o->gap_max + 1);
        int b = largest_fitting(o, E - 1 - p) - (j & 1);
        for (;;) {
            const int64_t rem = E - 1 - p; /* the query slot p + d must be < E */
            int64_t lo, hi;
            if (b < 0) b = o->n_buckets - 1;
            bucket_emissions(o, b, &lo, &hi);
            if (lo > rem && (b = largest_fitting(o, rem)) < 0) break;
            bucket_emissions(o, b, &lo, &hi);
            if (hi > rem) hi = rem;
            const int64_t d = lo + (int64_t)(hydra_rng_next(rng) % (uint64_t)(hi - lo + 1));
            int64_t s = p; /* the first slot from p where the write and its query are both free */
            while (s + d < E && (kind[s] || kind[s + d])) s++;
            if (s + d >= E) break;
            hydra_plant_fact *f = &facts[nf];
            f->key = o->base.vocab + 2 + j;
            f->value = 1 + w + below(rng, w);
            f->write_pos = 3 * s + 1, f->query_pos = 3 * (s + d) + 1;
            f->bucket = b;
            kind[s] = 1, kind[s + d] = 2, fact_of[s] = fact_of[s + d] = nf++;
            p = s + d + 1 + below(rng, o->gap_max + 1);
            b--;
        }
    }
    return nf;
}

hydra_status hydra_plant_generate(const hydra_plant_opts *o, hydra_rng *rng, int32_t *out, size_t n,
                                  hydra_plant_fact *facts, int cap, int *n_facts) {
    hydra_status st = plant_check(o);
    if (st) return st;
    if (!rng || (!out && n)) return hydra_set_error(HYDRA_ERR_ARG, "plant: NULL argument");
    const int64_t E = (int64_t)(n / 3), E_all = (int64_t)((n + 2) / 3); /* whole emissions / all begun */
    int32_t *bg = malloc(((size_t)E_all * 3 + 1) * sizeof *bg);
    uint8_t *kind = calloc((size_t)E + 1, 1);
    int64_t *fact_of = malloc(((size_t)E + 1) * sizeof *fact_of);
    hydra_plant_fact *all = malloc(((size_t)E / 2 + 1) * sizeof *all);
    if (!bg || !kind || !fact_of || !all) st = hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    /* the background first, from the same generator: planting does not change it */
    if (!st) st = hydra_segstream_generate(&o->base, rng, bg, (size_t)E_all * 3);
    int nf = st ? 0 : plant_schedule(o, rng, E, kind, fact_of, all);
    if (!st && facts && nf > cap) st = hydra_set_error(HYDRA_ERR_ARG, "plant: %d facts, room for %d", nf, cap);
    if (!st) {
        const int32_t *b = bg;
        for (int64_t e = 0; e < E_all; e++) {
            int32_t em[3];
            if (e < E && kind[e]) {
                const hydra_plant_fact *f = &all[fact_of[e]];
                em[0] = o->base.vocab + (kind[e] == 2), em[1] = f->key, em[2] = f->value;
            } else {
                memcpy(em, b, sizeof em), b += 3;
            }
            for (int i = 0; i < 3 && (size_t)(3 * e + i) < n; i++) out[3 * e + i] = em[i];
        }
        qsort(all, (size_t)nf, sizeof *all, cmp_query);
        if (facts) memcpy(facts, all, (size_t)nf * sizeof *all);
        if (n_facts) *n_facts = nf;
    }
    free(bg), free(kind), free(fact_of), free(all);
    return st;
}

static hydra_status plant_gen(const void *ctx, hydra_rng *rng, int32_t *out, size_t n) {
    return hydra_plant_generate(ctx, rng, out, n, NULL, 0, NULL);
}

static int plant_scored(const void *ctx, const int32_t *tok, size_t t) { return hydra_plant_position_kind(ctx, tok, t); }

static hydra_status plant_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs, int32_t *targets,
                                 uint8_t *mask) {
    (void)split;
    return stream_sample(ctx, plant_gen, plant_scored, rng, B, T, inputs, targets, mask);
}

hydra_task hydra_plant_task(hydra_plant_opts *o) {
    hydra_task t = {"plant", o, hydra_plant_vocab(o), plant_sample};
    return t;
}
