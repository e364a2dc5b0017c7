/* segstream.c — the recurring-segment stream (hydralm_eval.h): synthetic
 * text whose structure reaches beyond a sliding window, stationary so that
 * the loss at 32K tokens is comparable with the loss at the training length. */
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

static hydra_status segstream_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                                     int32_t *targets, uint8_t *mask) {
    const hydra_segstream_opts *o = ctx;
    (void)split; /* fresh random streams: train and validation never repeat */
    int32_t *buf = malloc(((size_t)T + 1) * sizeof *buf);
    if (!buf) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_status st = HYDRA_OK;
    for (int b = 0; b < B && !st; b++) {
        if ((st = hydra_segstream_generate(o, rng, buf, (size_t)T + 1))) break;
        memcpy(inputs + (size_t)b * T, buf, (size_t)T * sizeof *buf);
        memcpy(targets + (size_t)b * T, buf + 1, (size_t)T * sizeof *buf);
        for (int t = 0; t < T; t++)
            mask[(size_t)b * T + t] = !o->score_recall_only || hydra_segstream_is_recall(buf[t], buf[t + 1]);
    }
    free(buf);
    return st;
}

hydra_task hydra_segstream_task(hydra_segstream_opts *o) {
    hydra_task t = {"segstream", o, o ? o->vocab : 0, segstream_sample};
    return t;
}
