/* journal.c — rollback journal for one sequence's state (internal.h): the
 * cheap rollback behind speculative decoding. Begin copies what a forward
 * overwrites in place and cannot recompute from its inputs (DeltaNet S and
 * conv tails); journaled forwards append each position's inputs and the SWA
 * ring rows they overwrite; rollback restores and replays a prefix. */
#include "core/internal.h"

/* Bytes of DeltaNet state to copy above which begin / rollback split the
 * layers across threads (below, a parallel region costs more than it saves). */
#define JOURNAL_PAR_BYTES (256u * 1024u)

static int is_ring(const hydra_config *c, char kind) {
    return kind == HYDRA_LAYER_SWA && !hydra_layer_cache_unbounded(c, kind);
}

/* Floats of one layer's journal for cap positions. */
static size_t layer_floats(const hydra_config *c, char kind, size_t cap) {
    size_t H = (size_t)c->n_heads, Hd = H * (size_t)hydra_config_head_dim(c), K = (size_t)c->conv_width;
    if (kind == HYDRA_LAYER_DELTANET) return Hd * (size_t)hydra_config_head_dim(c) + (K - 1) * 3 * Hd + cap * (6 * Hd + 2 * H);
    if (is_ring(c, kind)) return 2 * cap * Hd;
    return 0;
}

hydra_status hydra_journal_create(const hydra_model *m, int cap, hydra_journal **out) {
    if (!m || !out) return hydra_set_error(HYDRA_ERR_ARG, "journal_create: NULL argument");
    *out = NULL;
    if (cap < 1 || cap > 4096) return hydra_set_error(HYDRA_ERR_ARG, "journal_create: cap must be in 1..4096 (got %d)", cap);
    const hydra_config *c = &m->cfg;
    hydra_journal *j = calloc(1, sizeof *j);
    if (!j) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    j->cfg = *c;
    j->dk = hydra_config_head_dim(c);
    j->cap = cap;
    j->m = m;
    j->tok = calloc((size_t)cap, sizeof *j->tok);
    const size_t H = (size_t)c->n_heads, d = (size_t)j->dk, Hd = H * d, K = (size_t)c->conv_width, n = (size_t)cap;
    size_t total = n * Hd;
    for (int i = 0; i < c->n_layers; i++) total += layer_floats(c, hydra_config_layer_kind(c, i), n);
    j->layers = calloc((size_t)c->n_layers, sizeof *j->layers);
    j->arena = hydra_aligned_calloc(total * sizeof(float));
    if (!j->layers || !j->arena || !j->tok) {
        hydra_journal_free(j);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory allocating a %d-position journal", cap);
    }
    float *p = j->arena;
    j->scratch = p, p += n * Hd;
    for (int i = 0; i < c->n_layers; i++) {
        char kind = hydra_config_layer_kind(c, i);
        hydra_journal_layer *l = &j->layers[i];
        if (kind == HYDRA_LAYER_DELTANET) {
            l->S0 = p, p += Hd * d;
            l->conv0 = p, p += (K - 1) * 3 * Hd;
            l->x = p, p += n * 3 * Hd;
            l->k = p, p += n * Hd;
            l->v = p, p += n * Hd;
            l->g = p, p += n * H;
            l->beta = p, p += n * H;
        } else if (is_ring(c, kind)) {
            l->kold = p, p += n * Hd;
            l->vold = p, p += n * Hd;
        }
    }
    *out = j;
    return HYDRA_OK;
}

void hydra_journal_free(hydra_journal *j) {
    if (!j) return;
    hydra_state_free(j->snap);
    free(j->tok);
    hydra_aligned_free(j->arena);
    free(j->layers);
    free(j);
}

hydra_status hydra_journal_begin(hydra_journal *j, const hydra_state *s) {
    if (!j || !s) return hydra_set_error(HYDRA_ERR_ARG, "journal_begin: NULL argument");
    if (!hydra_config_same_state_shape(&j->cfg, &s->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH, "journal_begin: the state belongs to another model shape");
    j->dev_mode = j->m->dev != NULL;
    if (j->dev_mode) { /* a snapshot (a device-to-device copy when s is current on the GPU) */
        if (!j->snap) HYDRA_CHECK(hydra_state_create(j->m, &j->snap));
        HYDRA_CHECK(hydra_state_copy(j->snap, s));
        j->pos0 = s->pos;
        j->n = 0;
        j->active = 1;
        return HYDRA_OK;
    }
    HYDRA_CHECK(hydra_state_host_read(s)); /* a state last used on a GPU, journaled on the CPU */
    const size_t Hd = (size_t)j->cfg.n_heads * (size_t)j->dk, K = (size_t)j->cfg.conv_width;
    const size_t sbytes = Hd * (size_t)j->dk * sizeof(float);
    /* one copy per DeltaNet layer; the threads split the layers once there is
     * enough to copy (the d512 target: 6 x 128 KiB per speculative round) */
#pragma omp parallel for schedule(dynamic, 1) if (sbytes * (size_t)j->cfg.n_layers >= JOURNAL_PAR_BYTES)
    for (int i = 0; i < j->cfg.n_layers; i++) {
        hydra_journal_layer *l = &j->layers[i];
        if (!l->S0) continue;
        memcpy(l->S0, s->layers[i].S, sbytes);
        memcpy(l->conv0, s->layers[i].conv, (K - 1) * 3 * Hd * sizeof(float));
    }
    j->pos0 = s->pos;
    j->n = 0;
    j->active = 1;
    return HYDRA_OK;
}

hydra_status hydra_journal_rollback(hydra_journal *j, hydra_state *s, int n_keep) {
    if (!j || !s) return hydra_set_error(HYDRA_ERR_ARG, "journal_rollback: NULL argument");
    if (!j->active || s->pos != j->pos0 + (uint64_t)j->n || !hydra_config_same_state_shape(&j->cfg, &s->cfg))
        return hydra_set_error(HYDRA_ERR_ARG, "journal_rollback: the state is not the journaled one");
    if (n_keep < 0 || n_keep > j->n)
        return hydra_set_error(HYDRA_ERR_ARG, "journal_rollback: n_keep must be in 0..%d (got %d)", j->n, n_keep);
    if (n_keep == j->n) return HYDRA_OK;
    if (j->dev_mode) { /* restore the snapshot, re-run the kept tokens */
        HYDRA_CHECK(hydra_state_copy(s, j->snap));
        if (n_keep > 0) HYDRA_CHECK(hydra_forward(j->m, j->tok, 1, n_keep, &s, HYDRA_LOGITS_NONE, NULL));
        j->n = n_keep;
        return HYDRA_OK;
    }
    HYDRA_CHECK(hydra_state_host_write(s));
    const hydra_config *c = &j->cfg;
    const int H = c->n_heads, d = j->dk, K = c->conv_width, W = c->window;
    const size_t Hd = (size_t)H * d;
    const size_t sbytes = Hd * (size_t)d * sizeof(float);
#pragma omp parallel for schedule(dynamic, 1) if (sbytes * (size_t)c->n_layers >= JOURNAL_PAR_BYTES)
    for (int i = 0; i < c->n_layers; i++) { /* restore the DeltaNet bases (threads split the layers) */
        hydra_journal_layer *l = &j->layers[i];
        if (!l->S0) continue;
        memcpy(s->layers[i].S, l->S0, sbytes);
        memcpy(s->layers[i].conv, l->conv0, (size_t)(K - 1) * 3 * Hd * sizeof(float));
    }
    for (int i = 0; i < c->n_layers; i++) {
        hydra_journal_layer *l = &j->layers[i];
        hydra_layer_state *ls = &s->layers[i];
        if (l->S0) { /* replay the kept positions on the restored base */
            if (n_keep > 0) {
                HYDRA_CHECK(hydra_op_delta_rule(n_keep, H, d, d, l->k, l->k, l->v, l->g, l->beta, ls->S, j->scratch));
                hydra_conv_tail_advance(ls->conv, l->x, n_keep, K, 3 * Hd);
            }
        } else if (l->kold) { /* put back what the dropped positions overwrote, newest first */
            for (int t = j->n - 1; t >= n_keep; t--) {
                size_t slot = (size_t)((j->pos0 + (uint64_t)t) % (uint64_t)W);
                memcpy(ls->kc + slot * Hd, l->kold + (size_t)t * Hd, Hd * sizeof(float));
                memcpy(ls->vc + slot * Hd, l->vold + (size_t)t * Hd, Hd * sizeof(float));
            }
        }
    }
    s->pos = j->pos0 + (uint64_t)n_keep;
    j->n = n_keep; /* the kept records stay valid: recording may continue from here */
    return HYDRA_OK;
}
