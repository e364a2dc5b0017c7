/* state.c — the recurrent state: everything one sequence needs to continue.
 * Fixed-size part (DeltaNet S and conv tails, SWA rings) lives in one arena;
 * full-attention caches (window 0) grow on demand. */
#include "backend/backend.h"
#include "core/internal.h"

int hydra_layer_cache_unbounded(const hydra_config *c, char kind) {
    return kind == HYDRA_LAYER_ATTN || (kind == HYDRA_LAYER_SWA && c->window == 0);
}

/* Floats of the fixed-size part of one layer's state. */
static size_t layer_floats(const hydra_config *c, char kind) {
    size_t H = (size_t)c->n_heads, d = (size_t)hydra_config_head_dim(c), K = (size_t)c->conv_width;
    if (kind == HYDRA_LAYER_DELTANET) return H * d * d + (K - 1) * 3 * H * d;
    if (hydra_layer_cache_unbounded(c, kind)) return 0;
    return 2 * (size_t)c->window * H * d;
}

hydra_status hydra_state_create(const hydra_model *m, hydra_state **out) {
    if (!m || !out) return hydra_set_error(HYDRA_ERR_ARG, "state_create: NULL argument");
    const hydra_config *c = &m->cfg;
    hydra_state *s = calloc(1, sizeof *s);
    if (!s) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    s->cfg = *c;
    s->layers = calloc((size_t)c->n_layers, sizeof *s->layers);
    size_t total = 0;
    for (int i = 0; i < c->n_layers; i++) total += layer_floats(c, hydra_config_layer_kind(c, i));
    s->arena_floats = total;
    s->arena = hydra_aligned_calloc(total * sizeof(float));
    if (!s->layers || !s->arena) {
        hydra_state_free(s);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory allocating state");
    }
    size_t H = (size_t)c->n_heads, d = (size_t)hydra_config_head_dim(c);
    float *p = s->arena;
    for (int i = 0; i < c->n_layers; i++) {
        char kind = hydra_config_layer_kind(c, i);
        hydra_layer_state *l = &s->layers[i];
        if (kind == HYDRA_LAYER_DELTANET) {
            l->S = p;
            l->conv = p + H * d * d;
        } else if (!hydra_layer_cache_unbounded(c, kind)) {
            l->cap = (size_t)c->window;
            l->kc = p;
            l->vc = p + l->cap * H * d;
        }
        p += layer_floats(c, kind);
    }
    *out = s;
    return HYDRA_OK;
}

void hydra_state_free(hydra_state *s) {
    if (!s) return;
    hydra_dev_state_free(s->dev);
    if (s->layers)
        for (int i = 0; i < s->cfg.n_layers; i++)
            if (hydra_layer_cache_unbounded(&s->cfg, hydra_config_layer_kind(&s->cfg, i))) {
                hydra_aligned_free(s->layers[i].kc);
                hydra_aligned_free(s->layers[i].vc);
            }
    hydra_aligned_free(s->arena);
    free(s->layers);
    free(s);
}

void hydra_state_reset(hydra_state *s) {
    if (!s) return;
    memset(s->arena, 0, s->arena_floats * sizeof(float));
    s->pos = 0; /* grown caches keep their capacity; positions >= pos are never read */
    s->where = HYDRA_STATE_HOST;
    if (s->dev && hydra_dev_state_reset(s) == HYDRA_OK) s->where = HYDRA_STATE_BOTH;
}

/* ------------------------------------------------ host and device copies */
hydra_status hydra_state_host_read(const hydra_state *s) {
    if (!s || s->where != HYDRA_STATE_DEVICE) return HYDRA_OK;
    hydra_state *w = (hydra_state *)s; /* the host copy is a cache: refreshing it is not a change */
    HYDRA_CHECK(hydra_dev_state_download(w));
    w->where = HYDRA_STATE_BOTH;
    return HYDRA_OK;
}

hydra_status hydra_state_host_write(hydra_state *s) {
    if (!s) return HYDRA_OK;
    HYDRA_CHECK(hydra_state_host_read(s));
    s->where = HYDRA_STATE_HOST;
    return HYDRA_OK;
}

hydra_status hydra_state_to_device(hydra_state *s, int device) {
    if (s->dev && hydra_dev_state_device(s->dev) != device) {
        /* moving between GPUs goes through the host copy */
        HYDRA_CHECK(hydra_state_host_read(s));
        hydra_dev_state_free(s->dev);
        s->dev = NULL;
        s->where = HYDRA_STATE_HOST;
    }
    if (!s->dev || s->where == HYDRA_STATE_HOST) HYDRA_CHECK(hydra_dev_state_upload(s, device));
    s->where = HYDRA_STATE_DEVICE;
    return HYDRA_OK;
}

hydra_status hydra_state_reserve(hydra_state *s, size_t positions) {
    const hydra_config *c = &s->cfg;
    size_t Hd = (size_t)c->n_heads * (size_t)hydra_config_head_dim(c);
    for (int i = 0; i < c->n_layers; i++) {
        hydra_layer_state *l = &s->layers[i];
        if (!hydra_layer_cache_unbounded(c, hydra_config_layer_kind(c, i)) || l->cap >= positions) continue;
        size_t cap = l->cap ? l->cap : 256;
        while (cap < positions) cap *= 2;
        size_t bytes;
        if (!hydra_mul_ok(cap, Hd * sizeof(float), &bytes))
            return hydra_set_error(HYDRA_ERR_NOMEM, "attention cache too large");
        float *k = hydra_aligned_alloc(bytes), *v = hydra_aligned_alloc(bytes);
        if (!k || !v) {
            hydra_aligned_free(k);
            hydra_aligned_free(v);
            return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory growing the attention cache to %zu positions", cap);
        }
        if (l->cap) {
            memcpy(k, l->kc, l->cap * Hd * sizeof(float));
            memcpy(v, l->vc, l->cap * Hd * sizeof(float));
        }
        hydra_aligned_free(l->kc);
        hydra_aligned_free(l->vc);
        l->kc = k;
        l->vc = v;
        l->cap = cap;
    }
    return HYDRA_OK;
}

int hydra_config_same_state_shape(const hydra_config *a, const hydra_config *b) {
    if (a->n_layers != b->n_layers || a->n_heads != b->n_heads ||
        hydra_config_head_dim(a) != hydra_config_head_dim(b) || a->window != b->window ||
        a->conv_width != b->conv_width)
        return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (hydra_config_layer_kind(a, i) != hydra_config_layer_kind(b, i)) return 0;
    return 1;
}

hydra_status hydra_state_copy(hydra_state *dst, const hydra_state *src) {
    if (!dst || !src) return hydra_set_error(HYDRA_ERR_ARG, "state_copy: NULL argument");
    if (dst == src) return HYDRA_OK;
    if (!hydra_config_same_state_shape(&dst->cfg, &src->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH, "state_copy: states belong to different model shapes");
    if (src->dev && src->where != HYDRA_STATE_HOST) {
        /* current on a GPU: copy there (snapshots in spec decoding and streaming) */
        HYDRA_CHECK(hydra_state_to_device(dst, hydra_dev_state_device(src->dev)));
        HYDRA_CHECK(hydra_dev_state_copy(dst, src));
        dst->pos = src->pos;
        return HYDRA_OK;
    }
    HYDRA_CHECK(hydra_state_host_write(dst));
    HYDRA_CHECK(hydra_state_reserve(dst, (size_t)src->pos));
    memcpy(dst->arena, src->arena, src->arena_floats * sizeof(float));
    size_t Hd = (size_t)src->cfg.n_heads * (size_t)hydra_config_head_dim(&src->cfg);
    for (int i = 0; i < src->cfg.n_layers; i++)
        if (hydra_layer_cache_unbounded(&src->cfg, hydra_config_layer_kind(&src->cfg, i)) && src->pos) {
            memcpy(dst->layers[i].kc, src->layers[i].kc, (size_t)src->pos * Hd * sizeof(float));
            memcpy(dst->layers[i].vc, src->layers[i].vc, (size_t)src->pos * Hd * sizeof(float));
        }
    dst->pos = src->pos;
    return HYDRA_OK;
}

size_t hydra_state_bytes(const hydra_state *s) {
    if (!s) return 0;
    size_t floats = s->arena_floats;
    size_t Hd = (size_t)s->cfg.n_heads * (size_t)hydra_config_head_dim(&s->cfg);
    for (int i = 0; i < s->cfg.n_layers; i++)
        if (hydra_layer_cache_unbounded(&s->cfg, hydra_config_layer_kind(&s->cfg, i))) floats += 2 * s->layers[i].cap * Hd;
    return floats * sizeof(float);
}

size_t hydra_model_state_bytes(const hydra_model *m) {
    if (!m) return 0;
    size_t total = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) total += layer_floats(&m->cfg, hydra_config_layer_kind(&m->cfg, i));
    return total * sizeof(float);
}

uint64_t hydra_state_position(const hydra_state *s) { return s ? s->pos : 0; }

hydra_status hydra_position_check(const char *who, uint64_t pos, int64_t n) {
    if (n < 0 || pos > HYDRA_MAX_POSITION || (uint64_t)n > HYDRA_MAX_POSITION - pos)
        return hydra_set_error(HYDRA_ERR_ARG,
                               "%s: position %llu + %lld tokens would pass the limit of 2^53 positions "
                               "(HYDRA_MAX_POSITION); reset the state to go on", who, (unsigned long long)pos,
                               (long long)n);
    return HYDRA_OK;
}
