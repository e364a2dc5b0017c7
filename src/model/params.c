/* params.c — the parameter table (names, shapes, arena offsets), model
 * allocation and deterministic initialisation (DESIGN §2). */
#include <math.h>

#include "backend/backend.h"
#include "core/internal.h"

typedef struct {
    hydra_model *m;
    size_t off;      /* logical f32 offset (file and fingerprint order) */
    size_t n32, n16; /* elements stored in the f32 / bf16 arenas */
    size_t nq, nqs;  /* bytes / scales in the quantised arenas */
    int n;
    int fill;        /* 0: count only, 1: fill the table, 2: also point the weights into the arenas */
    int bf16_only;   /* matrices go to the bf16 arena */
    int quant;       /* matrices go to the quantised arenas (hydra_quant) */
} table_builder;

int hydra_param_is_matrix(const char *name) {
    static const char *const suffix[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight",
                                         "a_proj.weight", "b_proj.weight", "o_proj.weight", "gate_proj.weight",
                                         "up_proj.weight", "down_proj.weight"};
    size_t n = strlen(name);
    if (strcmp(name, "lm_head.weight") == 0) return 1;
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && strcmp(name + n - k, suffix[i]) == 0) return 1;
    }
    return 0;
}

/* Append one tensor to the table; returns its index. */
static int add(table_builder *b, const char *name, int64_t d0, int64_t d1) {
    size_t numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    int h = b->bf16_only && hydra_param_is_matrix(name);
    int q = b->quant && d1 > 0 && hydra_param_is_matrix(name);
    if (b->fill) {
        hydra_param_info *p = &b->m->info[b->n];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = d1 > 0 ? 2 : 1;
        p->shape[0] = d0;
        p->shape[1] = d1 > 0 ? d1 : 0;
        p->offset = b->off;
        p->numel = numel;
        p->bf16 = h;
        p->quant = q ? b->quant : HYDRA_QUANT_NONE;
        p->store = h ? b->n16 : q ? b->nq : b->n32;
        p->qscale = q ? b->nqs : 0;
    }
    b->off += numel;
    if (q) {
        b->nq += (size_t)d0 * hydra_quant_row_bytes(b->quant, (int)d1);
        b->nqs += (size_t)d0 * (size_t)hydra_quant_row_blocks((int)d1);
    } else {
        *(h ? &b->n16 : &b->n32) += numel;
    }
    return b->n++;
}

/* Where tensor i lives: its f32 data (NULL when held in bf16 only) and its
 * bf16 data (NULL unless held in bf16). Fill mode 2 only. */
static float *f32_of(const table_builder *b, int i) {
    const hydra_param_info *p = &b->m->info[i];
    return p->bf16 || p->quant ? NULL : b->m->params + p->store;
}
static hydra_qmat q_of(const table_builder *b, int i) {
    const hydra_param_info *p = &b->m->info[i];
    return p->quant ? (hydra_qmat){b->m->qdata + p->store, b->m->qscale + p->qscale} : (hydra_qmat){NULL, NULL};
}
static uint16_t *bf16_of(const table_builder *b, int i) {
    const hydra_param_info *p = &b->m->info[i];
    return p->bf16 ? b->m->bf16 + p->store : NULL;
}

/* Walks the schedule once; in fill mode also sets the layer pointers. */
static void build_table(table_builder *b) {
    hydra_model *m = b->m;
    const hydra_config *c = &m->cfg;
    int64_t C = c->d_model, H = c->n_heads, dk = m->dk, dv = m->dv, F = m->F, V = c->vocab_size;
    int64_t K = c->conv_width;
    char name[64];
#define P(field, ...) (snprintf(name, sizeof name, field, __VA_ARGS__), name)
    int i_embed = add(b, "embed.weight", V, C);
    for (int i = 0; i < c->n_layers; i++) {
        hydra_layer_weights *w = b->fill == 2 ? &m->layers[i] : NULL;
        char kind = hydra_config_layer_kind(c, i);
        int i_n1 = add(b, P("blocks.%d.norm1.weight", i), C, 0), i_in, i_out;
        int i_alog = 0, i_dtb = 0, i_qc = 0, i_kc = 0, i_vc = 0, i_on = 0;
        if (kind == HYDRA_LAYER_DELTANET) {
            i_in = add(b, P("blocks.%d.gdn.q_proj.weight", i), H * dk, C);
            add(b, P("blocks.%d.gdn.k_proj.weight", i), H * dk, C);
            add(b, P("blocks.%d.gdn.v_proj.weight", i), H * dv, C);
            add(b, P("blocks.%d.gdn.g_proj.weight", i), H * dv, C);
            add(b, P("blocks.%d.gdn.a_proj.weight", i), H, C);
            add(b, P("blocks.%d.gdn.b_proj.weight", i), H, C);
            i_alog = add(b, P("blocks.%d.gdn.A_log", i), H, 0);
            i_dtb = add(b, P("blocks.%d.gdn.dt_bias", i), H, 0);
            i_qc = add(b, P("blocks.%d.gdn.q_conv.weight", i), H * dk, K);
            i_kc = add(b, P("blocks.%d.gdn.k_conv.weight", i), H * dk, K);
            i_vc = add(b, P("blocks.%d.gdn.v_conv.weight", i), H * dv, K);
            i_on = add(b, P("blocks.%d.gdn.o_norm.weight", i), dv, 0);
            i_out = add(b, P("blocks.%d.gdn.o_proj.weight", i), C, H * dv);
        } else {
            i_in = add(b, P("blocks.%d.attn.q_proj.weight", i), H * dk, C);
            add(b, P("blocks.%d.attn.k_proj.weight", i), H * dk, C);
            add(b, P("blocks.%d.attn.v_proj.weight", i), H * dv, C);
            i_out = add(b, P("blocks.%d.attn.o_proj.weight", i), C, H * dv);
        }
        int i_n2 = add(b, P("blocks.%d.norm2.weight", i), C, 0);
        int i_gu = add(b, P("blocks.%d.mlp.gate_proj.weight", i), F, C);
        add(b, P("blocks.%d.mlp.up_proj.weight", i), F, C);
        int i_down = add(b, P("blocks.%d.mlp.down_proj.weight", i), C, F);
        if (w) { /* fused matrices (in_proj, gate_up) are adjacent tensors in both arenas */
            w->kind = kind;
            w->norm1 = f32_of(b, i_n1);
            w->norm2 = f32_of(b, i_n2);
            w->in_proj = f32_of(b, i_in);
            w->o_proj = f32_of(b, i_out);
            w->gate_up = f32_of(b, i_gu);
            w->down = f32_of(b, i_down);
            w->in_proj_h = bf16_of(b, i_in);
            w->o_proj_h = bf16_of(b, i_out);
            w->gate_up_h = bf16_of(b, i_gu);
            w->down_h = bf16_of(b, i_down);
            w->in_proj_q = q_of(b, i_in);
            w->o_proj_q = q_of(b, i_out);
            w->gate_up_q = q_of(b, i_gu);
            w->down_q = q_of(b, i_down);
            if (kind == HYDRA_LAYER_DELTANET) {
                w->A_log = f32_of(b, i_alog);
                w->dt_bias = f32_of(b, i_dtb);
                w->q_conv = f32_of(b, i_qc);
                w->k_conv = f32_of(b, i_kc);
                w->v_conv = f32_of(b, i_vc);
                w->o_norm = f32_of(b, i_on);
            }
        }
    }
    int i_nf = add(b, "norm_f.weight", C, 0);
    int i_head = c->tie_embeddings ? i_embed : add(b, "lm_head.weight", V, C);
    /* A tied head in a bf16-only model: the embedding lookup stays f32, the
     * head product gets its own bf16 copy after the weights are loaded. */
    size_t head16 = b->n16, headq = b->nq, headqs = b->nqs; /* the same for a quantised model */
    if (b->bf16_only && c->tie_embeddings) b->n16 += (size_t)V * (size_t)C;
    if (b->quant && c->tie_embeddings) {
        b->nq += (size_t)V * hydra_quant_row_bytes(b->quant, (int)C);
        b->nqs += (size_t)V * (size_t)hydra_quant_row_blocks((int)C);
    }
    if (b->fill == 2) {
        m->embed = f32_of(b, i_embed);
        m->norm_f = f32_of(b, i_nf);
        m->lm_head = f32_of(b, i_head);
        m->lm_head_h = b->bf16_only ? (c->tie_embeddings ? m->bf16 + head16 : bf16_of(b, i_head)) : NULL;
        m->lm_head_q = !b->quant ? (hydra_qmat){NULL, NULL}
                       : c->tie_embeddings ? (hydra_qmat){m->qdata + headq, m->qscale + headqs}
                                           : q_of(b, i_head);
    }
#undef P
}

hydra_status hydra_model_alloc(const hydra_config *cfg, hydra_model **out) { return hydra_model_alloc_ex(cfg, 0, out); }

hydra_status hydra_model_alloc_ex(const hydra_config *cfg, int mode, hydra_model **out) {
    HYDRA_CHECK(hydra_model_plan(cfg, mode, out));
    hydra_status st = hydra_model_alloc_arenas(*out, 1);
    if (st != HYDRA_OK) {
        hydra_model_free(*out);
        *out = NULL;
    }
    return st;
}

hydra_status hydra_model_plan(const hydra_config *cfg, int mode, hydra_model **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "model: out pointer is NULL");
    *out = NULL;
    HYDRA_CHECK(hydra_config_validate(cfg));
    hydra_model *m = calloc(1, sizeof *m);
    if (!m) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->dk = m->dv = hydra_config_head_dim(cfg);
    m->F = hydra_config_mlp_hidden(cfg);
    m->bf16_only = mode == HYDRA_STORE_BF16;
    m->quant = mode == HYDRA_STORE_INT8 ? HYDRA_QUANT_INT8 : mode == HYDRA_STORE_INT4 ? HYDRA_QUANT_INT4 : HYDRA_QUANT_NONE;
    table_builder b = {.m = m, .bf16_only = m->bf16_only, .quant = m->quant};
    build_table(&b);
    m->n_params = b.off;
    m->n_f32 = b.n32;
    m->n_bf16 = b.n16;
    m->n_qbytes = b.nq;
    m->n_qscales = b.nqs;
    m->n_info = b.n;
    size_t bytes;
    if (!hydra_mul_ok(m->n_params, sizeof(float), &bytes) || bytes > ((size_t)1 << 40)) {
        size_t n = m->n_params;
        free(m);
        return hydra_set_error(HYDRA_ERR_CONFIG, "model too large (%zu parameters)", n);
    }
    m->info = calloc((size_t)m->n_info, sizeof *m->info);
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->info || !m->layers) {
        hydra_model_free(m);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory for the parameter table");
    }
    b = (table_builder){.m = m, .fill = 1, .bf16_only = m->bf16_only, .quant = m->quant};
    build_table(&b);
    *out = m;
    return HYDRA_OK;
}

hydra_status hydra_model_alloc_arenas(hydra_model *m, int zero) {
    size_t bytes32 = m->n_f32 * sizeof(float); /* n_params <= 2^38: no overflow */
    m->params = zero ? hydra_aligned_calloc(bytes32) : hydra_aligned_alloc(bytes32);
    if (m->n_bf16) m->bf16 = hydra_aligned_alloc(m->n_bf16 * sizeof(uint16_t));
    if (m->n_qbytes) m->qdata = hydra_aligned_alloc(m->n_qbytes);
    if (m->n_qscales) m->qscale = hydra_aligned_alloc(m->n_qscales * sizeof(uint16_t));
    if (!m->params || (m->n_bf16 && !m->bf16) || (m->n_qbytes && !m->qdata) || (m->n_qscales && !m->qscale))
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory allocating %zu parameters", m->n_params);
    table_builder b = {.m = m, .fill = 2, .bf16_only = m->bf16_only, .quant = m->quant};
    build_table(&b);
    return HYDRA_OK;
}

hydra_status hydra_require_f32(const hydra_model *m, const char *what) {
    if (m && m->quant)
        return hydra_set_error(HYDRA_ERR_ARG,
                               "%s needs the f32 weights, but this model holds its matrices quantised to %s only "
                               "(hydra_model_load_quant, for inference); load the f32 checkpoint with hydra_model_load",
                               what, hydra_quant_name((hydra_quant)m->quant));
    if (m && m->bf16_only)
        return hydra_set_error(HYDRA_ERR_ARG,
                               "%s needs the f32 weights, but this model was loaded with bf16 matrices only "
                               "(hydra_model_load_bf16, for inference); load it with hydra_model_load", what);
    return HYDRA_OK;
}

void hydra_model_free(hydra_model *m) {
    if (!m) return;
    hydra_dev_model_free(m->dev);
    hydra_aligned_free(m->bf16);
    hydra_aligned_free(m->qdata);
    hydra_aligned_free(m->qscale);
    if (!m->is_view) hydra_aligned_free(m->params), free(m->info);
    free(m->layers);
    free(m);
}

hydra_status hydra_model_bf16_view(const hydra_model *m, hydra_model **out) {
    if (!m || !out) return hydra_set_error(HYDRA_ERR_ARG, "model_bf16_view: NULL argument");
    *out = NULL;
    if (m->is_view) return hydra_set_error(HYDRA_ERR_ARG, "model_bf16_view: the model is already a view");
    HYDRA_CHECK(hydra_require_f32(m, "model_bf16_view"));
    const hydra_config *c = &m->cfg;
    const size_t C = (size_t)c->d_model, H = (size_t)c->n_heads, F = (size_t)m->F, V = (size_t)c->vocab_size;
    const size_t Hq = H * (size_t)m->dk, Hv = H * (size_t)m->dv;
    /* [rows, cols] of in_proj, o_proj, gate_up, down per layer */
    size_t total = V * C;
    for (int i = 0; i < c->n_layers; i++) {
        size_t in_rows = m->layers[i].kind == HYDRA_LAYER_DELTANET ? (size_t)hydra_gdn_in_width(m) : 2 * Hq + Hv;
        total += in_rows * C + C * Hv + 2 * F * C + C * F;
    }
    hydra_model *v = calloc(1, sizeof *v);
    if (!v) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    *v = *m;
    v->is_view = 1;
    v->layers = malloc((size_t)c->n_layers * sizeof *v->layers);
    v->bf16 = hydra_aligned_alloc(total * sizeof(uint16_t));
    if (!v->layers || !v->bf16) {
        hydra_model_free(v);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory for %zu bf16 weights", total);
    }
    memcpy(v->layers, m->layers, (size_t)c->n_layers * sizeof *v->layers);
    uint16_t *p = v->bf16;
#define CONVERT(dst, src, n)                                              \
    do {                                                                  \
        for (size_t i_ = 0; i_ < (n); i_++) p[i_] = hydra_f32_to_bf16((src)[i_]); \
        (dst) = p;                                                        \
        p += (n);                                                         \
    } while (0)
    CONVERT(v->lm_head_h, m->lm_head, V * C);
    for (int i = 0; i < c->n_layers; i++) {
        hydra_layer_weights *l = &v->layers[i];
        size_t in_rows = l->kind == HYDRA_LAYER_DELTANET ? (size_t)hydra_gdn_in_width(m) : 2 * Hq + Hv;
        CONVERT(l->in_proj_h, l->in_proj, in_rows * C);
        CONVERT(l->o_proj_h, l->o_proj, C * Hv);
        CONVERT(l->gate_up_h, l->gate_up, 2 * F * C);
        CONVERT(l->down_h, l->down, C * F);
    }
#undef CONVERT
    *out = v;
    return HYDRA_OK;
}

/* Box-Muller, both outputs used: init of the default model draws 90M normals. */
static void fill_normal(float *x, size_t n, float std, hydra_rng *r) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = hydra_rng_uniform(r), u2 = hydra_rng_uniform(r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        x[i] = (float)(std * rad * cos(th));
        if (i + 1 < n) x[i + 1] = (float)(std * rad * sin(th));
    }
}
static void fill_uniform(float *x, size_t n, double lo, double hi, hydra_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * hydra_rng_uniform(r));
}
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Each tensor draws from its own stream seeded by (seed, tensor index), so
 * adding a tensor never shifts the values of the others. */
void hydra_model_init_params(hydra_model *m, uint64_t seed) {
    const hydra_config *c = &m->cfg;
    float std = c->init_std, std_out = std / sqrtf(2.0f * (float)c->n_layers);
    for (int t = 0; t < m->n_info; t++) {
        const hydra_param_info *p = &m->info[t];
        float *x = m->params + p->store; /* f32 models only (create) */
        hydra_rng r;
        hydra_rng_seed(&r, seed * 0x100000001B3ULL + (uint64_t)t * 0x9E3779B97F4A7C15ULL + 1);
        if (ends_with(p->name, "norm1.weight") || ends_with(p->name, "norm2.weight") ||
            ends_with(p->name, "o_norm.weight") || strcmp(p->name, "norm_f.weight") == 0) {
            for (size_t i = 0; i < p->numel; i++) x[i] = 1.0f;
        } else if (ends_with(p->name, "_conv.weight")) {
            double b = 1.0 / sqrt((double)c->conv_width);
            fill_uniform(x, p->numel, -b, b, &r);
        } else if (ends_with(p->name, ".A_log")) {
            for (size_t i = 0; i < p->numel; i++) x[i] = (float)log(1.0 + 15.0 * hydra_rng_uniform(&r));
        } else if (ends_with(p->name, ".dt_bias")) {
            for (size_t i = 0; i < p->numel; i++) {
                double lo = log((double)c->init_dt_min), hi = log((double)c->init_dt_max);
                double dt = exp(lo + (hi - lo) * hydra_rng_uniform(&r));
                if (dt < 1e-4) dt = 1e-4;
                x[i] = (float)(dt + log(-expm1(-dt))); /* inverse softplus */
            }
        } else if (ends_with(p->name, "o_proj.weight") || ends_with(p->name, "down_proj.weight")) {
            fill_normal(x, p->numel, std_out, &r);
        } else {
            fill_normal(x, p->numel, std, &r);
        }
    }
}

hydra_status hydra_model_create(const hydra_config *cfg, uint64_t seed, hydra_model **out) {
    HYDRA_CHECK(hydra_model_alloc(cfg, out));
    hydra_model_init_params(*out, seed);
    return HYDRA_OK;
}

const hydra_config *hydra_model_config(const hydra_model *m) { return m ? &m->cfg : NULL; }
size_t hydra_model_n_params(const hydra_model *m) { return m ? m->n_params : 0; }
int hydra_model_is_bf16(const hydra_model *m) { return m && m->bf16_only; }
hydra_quant hydra_model_quant(const hydra_model *m) { return m ? (hydra_quant)m->quant : HYDRA_QUANT_NONE; }
size_t hydra_model_weight_bytes(const hydra_model *m) {
    return m ? m->n_f32 * sizeof(float) + (m->n_bf16 + m->n_qscales) * sizeof(uint16_t) + m->n_qbytes : 0;
}
int hydra_model_n_tensors(const hydra_model *m) { return m ? m->n_info : 0; }

hydra_status hydra_model_tensor(const hydra_model *m, int i, hydra_tensor *out) {
    if (!m || !out) return hydra_set_error(HYDRA_ERR_ARG, "model_tensor: NULL argument");
    if (i < 0 || i >= m->n_info)
        return hydra_set_error(HYDRA_ERR_ARG, "model_tensor: index %d out of range 0..%d", i, m->n_info - 1);
    const hydra_param_info *p = &m->info[i];
    if (p->bf16 || p->quant)
        return hydra_set_error(HYDRA_ERR_ARG, "model_tensor: \"%s\" is held in %s only (a model loaded with "
                               "hydra_model_load_%s); load the f32 checkpoint with hydra_model_load to read it", p->name,
                               p->bf16 ? "bf16" : hydra_quant_name((hydra_quant)p->quant), p->bf16 ? "bf16" : "quant");
    out->name = p->name;
    out->ndim = p->ndim;
    out->shape[0] = p->shape[0];
    out->shape[1] = p->shape[1];
    out->data = m->params + p->store;
    out->numel = p->numel;
    return HYDRA_OK;
}

hydra_status hydra_model_find_tensor(const hydra_model *m, const char *name, hydra_tensor *out) {
    if (!m || !name || !out) return hydra_set_error(HYDRA_ERR_ARG, "model_find_tensor: NULL argument");
    for (int i = 0; i < m->n_info; i++)
        if (strcmp(m->info[i].name, name) == 0) return hydra_model_tensor(m, i, out);
    return hydra_set_error(HYDRA_ERR_ARG, "no tensor named \"%s\"", name);
}

uint64_t hydra_fingerprint_begin(const hydra_config *cfg) {
    char *json = NULL;
    uint64_t h = HYDRA_FNV_OFFSET;
    if (hydra_config_to_json(cfg, &json) == HYDRA_OK) {
        h = hydra_fnv1a(h, json, strlen(json));
        hydra_free(json);
    }
    return h;
}

uint64_t hydra_model_fingerprint(const hydra_model *m) {
    if (!m) return 0;
    if (m->bf16_only || m->quant) return m->fingerprint; /* the f32 file's, from the load */
    return hydra_fnv1a(hydra_fingerprint_begin(&m->cfg), m->params, m->n_params * sizeof(float));
}
