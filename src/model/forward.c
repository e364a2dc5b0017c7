/* forward.c — the fast model forward over [B, T] tokens with carried state,
 * and the one-token step built on it. Every GEMM goes through
 * hydra_op_matmul; the per-sequence recurrences (conv tails, delta rule, SWA
 * ring) read and write the caller's state objects. */
#include <math.h>

#include "backend/backend.h"
#include "core/internal.h"

/* Scratch for one forward call; BT = B*T rows. */
typedef struct {
    float *x;     /* [BT, C] residual stream */
    float *h;     /* [BT, C] normed input of the current sublayer */
    float *proj;  /* [BT, P] fused input projection, P = max(gdn_in, 3*H*d, 2F) */
    float *qkv;   /* [BT, 3*H*d] conv input (DeltaNet) */
    float *conv;  /* [BT, 3*H*d] conv output */
    float *q, *k, *v; /* [BT, H*d] each */
    float *o;     /* [BT, H*d] mixer output before o_proj */
    float *gdec;  /* [BT, H] log decay g */
    float *beta;  /* [BT, H] */
    float *act;   /* [BT, F] SwiGLU activation */
    float *last;  /* [B, C] final hidden rows for HYDRA_LOGITS_LAST */
    float *block; /* the one allocation all of the above live in */
} workspace;

/* Carves w from one block: ws's, grown when too small (kept by the caller
 * between calls), or a fresh one when ws is NULL (freed by forward_impl). */
static hydra_status ws_alloc(const hydra_model *m, size_t BT, size_t B, workspace *w, hydra_fwd_scratch *ws) {
    const hydra_config *c = &m->cfg;
    size_t C = (size_t)c->d_model, Hd = (size_t)c->n_heads * (size_t)m->dk, H = (size_t)c->n_heads;
    size_t F = (size_t)m->F;
    size_t P = (size_t)hydra_gdn_in_width(m);
    if (3 * Hd > P) P = 3 * Hd;
    if (2 * F > P) P = 2 * F;
    /* Round every buffer to 16 floats so each starts 64-byte aligned. */
#define R16(n) (((n) + 15) & ~(size_t)15)
    size_t sizes[] = {R16(BT * C), R16(BT * C), R16(BT * P), R16(BT * 3 * Hd), R16(BT * 3 * Hd), R16(BT * Hd),
                      R16(BT * Hd), R16(BT * Hd), R16(BT * Hd), R16(BT * H), R16(BT * H),
                      R16(BT * F), R16(B * C)};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    if (ws && ws->floats < total) {
        hydra_aligned_free(ws->block);
        ws->floats = 0;
        if ((ws->block = hydra_aligned_alloc(total * sizeof(float)))) ws->floats = total;
    }
    w->block = ws ? ws->block : hydra_aligned_alloc(total * sizeof(float));
    if (!w->block) return hydra_set_error(HYDRA_ERR_NOMEM, "forward: out of memory for %zu-token workspace", BT);
    float **dst[] = {&w->x, &w->h, &w->proj, &w->qkv, &w->conv, &w->q, &w->k, &w->v, &w->o, &w->gdec, &w->beta, &w->act, &w->last};
    float *p = w->block;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += sizes[i];
    }
#undef R16
    return HYDRA_OK;
}

/* y = x . W^T with W's bf16 copy when the model is a bf16 view, or its
 * quantised one in a quantised model. */
static hydra_status mm(const hydra_model *m, int M, int N, int K, const float *x, const float *W, const uint16_t *Wh,
                       hydra_qmat Wq, float *y, int acc) {
    if (Wq.q) return hydra_op_matmul_q((hydra_quant)m->quant, M, N, K, x, Wq.q, Wq.d, y, acc);
    return Wh ? hydra_op_matmul_bf16(M, N, K, x, Wh, y, acc) : hydra_op_matmul(M, N, K, x, W, y, acc);
}

/* q,k of one token-row set: per head L2-normalise (q also scaled by d^-1/2). */
static void l2norm_heads(float *x, size_t rows, int H, int d, float eps, float scale) {
#pragma omp parallel for schedule(dynamic, 16) if (rows * H * d > 32768)
    for (size_t r = 0; r < rows * (size_t)H; r++) {
        float *xh = x + r * (size_t)d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xh[i] * xh[i];
        float inv = scale / sqrtf(ss + eps);
        for (int i = 0; i < d; i++) xh[i] *= inv;
    }
}

/* ------------------------------------------------------------ DeltaNet */
/* jr: NULL, or a begun journal (B = 1) that records this layer's inputs. */
static hydra_status gdn_mixer(const hydra_model *m, const hydra_layer_weights *lw, int li,
                              hydra_state *const *states, int B, int T, workspace *w, hydra_journal *jr) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, d = m->dk, K = c->conv_width;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d, P = (size_t)hydra_gdn_in_width(m);
    HYDRA_CHECK(mm(m, (int)BT, (int)P, C, w->h, lw->in_proj, lw->in_proj_h, lw->in_proj_q, w->proj, 0));
    /* proj row = q | k | v | gate | a | b. */
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *pr = w->proj + r * P;
        memcpy(w->qkv + r * 3 * Hd, pr, 3 * Hd * sizeof(float));
        const float *a = pr + 4 * Hd, *b = a + H;
        for (int h = 0; h < H; h++) {
            w->beta[r * H + h] = hydra_sigmoid(b[h]);
            w->gdec[r * H + h] = -expf(lw->A_log[h]) * hydra_softplus(a[h] + lw->dt_bias[h]);
        }
    }
    hydra_journal_layer *jl = jr ? &jr->layers[li] : NULL;
    if (jl) memcpy(jl->x + (size_t)jr->n * 3 * Hd, w->qkv, (size_t)T * 3 * Hd * sizeof(float));
    /* Causal conv per sequence (q|k|v conv weights are adjacent: one [3Hd, K] op). */
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)b * T * 3 * Hd;
        HYDRA_CHECK(hydra_op_conv_causal(T, (int)(3 * Hd), K, w->qkv + off, lw->q_conv,
                                         states[b]->layers[li].conv, w->conv + off));
    }
    /* SiLU, split into q, k, v. */
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *cr = w->conv + r * 3 * Hd;
        hydra_vec_silu(w->q + r * Hd, cr, Hd);
        hydra_vec_silu(w->k + r * Hd, cr + Hd, Hd);
        hydra_vec_silu(w->v + r * Hd, cr + 2 * Hd, Hd);
    }
    l2norm_heads(w->q, BT, H, d, c->l2_eps, 1.0f / sqrtf((float)d));
    l2norm_heads(w->k, BT, H, d, c->l2_eps, 1.0f);
    if (jl) {
        size_t n = (size_t)jr->n;
        memcpy(jl->k + n * Hd, w->k, (size_t)T * Hd * sizeof(float));
        memcpy(jl->v + n * Hd, w->v, (size_t)T * Hd * sizeof(float));
        memcpy(jl->g + n * H, w->gdec, (size_t)T * H * sizeof(float));
        memcpy(jl->beta + n * H, w->beta, (size_t)T * H * sizeof(float));
    }
    for (int b = 0; b < B; b++) {
        size_t o0 = (size_t)b * T;
        HYDRA_CHECK(hydra_op_delta_rule(T, H, d, d, w->q + o0 * Hd, w->k + o0 * Hd, w->v + o0 * Hd,
                                        w->gdec + o0 * H, w->beta + o0 * H, states[b]->layers[li].S,
                                        w->o + o0 * Hd));
    }
    /* y = RMSNorm_head(o) * o_norm * SiLU(gate), in place on o; gate = proj[:, 3Hd:4Hd]. */
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT * (size_t)H; r++) {
        size_t row = r / (size_t)H, h = r % (size_t)H;
        float *oh = w->o + r * d;
        const float *gh = w->proj + row * P + 3 * Hd + h * d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += oh[i] * oh[i];
        float inv = 1.0f / sqrtf(ss / (float)d + c->norm_eps);
        hydra_vec_swiglu(oh, gh, oh, (size_t)d); /* o * SiLU(gate) */
        for (int i = 0; i < d; i++) oh[i] *= inv * lw->o_norm[i];
    }
    return HYDRA_OK;
}

/* ----------------------------------------------------------- attention */
static hydra_status attn_mixer(const hydra_model *m, const hydra_layer_weights *lw, int li,
                               hydra_state *const *states, int B, int T, workspace *w, hydra_journal *jr) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, d = m->dk;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d;
    int window = hydra_config_layer_kind(c, li) == HYDRA_LAYER_ATTN ? 0 : c->window;
    HYDRA_CHECK(mm(m, (int)BT, (int)(3 * Hd), C, w->h, lw->in_proj, lw->in_proj_h, lw->in_proj_q, w->proj, 0));
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
    for (size_t r = 0; r < BT; r++) {
        const float *pr = w->proj + r * 3 * Hd;
        memcpy(w->q + r * Hd, pr, Hd * sizeof(float));
        memcpy(w->k + r * Hd, pr + Hd, Hd * sizeof(float));
        memcpy(w->v + r * Hd, pr + 2 * Hd, Hd * sizeof(float));
    }
    for (int b = 0; b < B; b++) {
        hydra_layer_state *ls = &states[b]->layers[li];
        int64_t pos0 = (int64_t)states[b]->pos;
        size_t o0 = (size_t)b * T * Hd;
        float *q = w->q + o0, *k = w->k + o0, *v = w->v + o0;
        HYDRA_CHECK(hydra_op_rope(T, H, d, pos0, c->rope_base, q));
        HYDRA_CHECK(hydra_op_rope(T, H, d, pos0, c->rope_base, k));
        HYDRA_CHECK(hydra_op_attention(T, H, d, pos0, window, q, k, v, ls->kc, ls->vc, w->o + o0));
        /* Write this chunk's keys/values into the cache (only the last W matter
         * for SWA; a journaled ring writes every row, saving what it overwrites,
         * so that any prefix can be restored). */
        hydra_journal_layer *jl = jr && window ? &jr->layers[li] : NULL;
        int first = window && T > window && !jl ? T - window : 0;
        for (int t = first; t < T; t++) {
            size_t slot = window ? (size_t)((pos0 + t) % window) : (size_t)(pos0 + t);
            if (jl) {
                size_t n = (size_t)(jr->n + t);
                memcpy(jl->kold + n * Hd, ls->kc + slot * Hd, Hd * sizeof(float));
                memcpy(jl->vold + n * Hd, ls->vc + slot * Hd, Hd * sizeof(float));
            }
            memcpy(ls->kc + slot * Hd, k + (size_t)t * Hd, Hd * sizeof(float));
            memcpy(ls->vc + slot * Hd, v + (size_t)t * Hd, Hd * sizeof(float));
        }
    }
    return HYDRA_OK;
}

/* ------------------------------------------------------------- forward */
static hydra_status check_tokens(const hydra_model *m, const int32_t *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return hydra_set_error(HYDRA_ERR_ARG, "token id %d at index %zu is outside the vocabulary [0, %d)",
                                   tokens[i], i, m->cfg.vocab_size);
    return HYDRA_OK;
}

static hydra_status forward_impl(const hydra_model *m, const int32_t *tokens, int B, int T,
                                 hydra_state *const *states, hydra_logits_mode mode, float *logits,
                                 hydra_journal *jr, hydra_fwd_scratch *ws) {
    for (int b = 0; b < B; b++) HYDRA_CHECK(hydra_position_check("forward", states[b]->pos, T));
    if (m->dev && !jr) return hydra_dev_forward(m, tokens, B, T, states, mode, logits); /* the model lives on a GPU */
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, F = m->F;
    const size_t BT = (size_t)B * T, Hd = (size_t)c->n_heads * m->dk;
    for (int b = 0; b < B; b++) {
        HYDRA_CHECK(hydra_state_host_write(states[b])); /* a state last used on a GPU comes back first */
        HYDRA_CHECK(hydra_state_reserve(states[b], states[b]->pos + (size_t)T));
    }
    workspace w;
    HYDRA_CHECK(ws_alloc(m, BT, (size_t)B, &w, ws));
    hydra_status st = HYDRA_OK;
    for (size_t r = 0; r < BT; r++) memcpy(w.x + r * C, m->embed + (size_t)tokens[r] * C, C * sizeof(float));
    for (int li = 0; li < c->n_layers && st == HYDRA_OK; li++) {
        const hydra_layer_weights *lw = &m->layers[li];
        if ((st = hydra_op_rmsnorm((int)BT, C, w.x, lw->norm1, c->norm_eps, w.h))) break;
        if (lw->kind == HYDRA_LAYER_DELTANET) {
            if ((st = gdn_mixer(m, lw, li, states, B, T, &w, jr))) break;
        } else {
            if ((st = attn_mixer(m, lw, li, states, B, T, &w, jr))) break;
        }
        if ((st = mm(m, (int)BT, C, (int)Hd, w.o, lw->o_proj, lw->o_proj_h, lw->o_proj_q, w.x, 1))) break;
        /* SwiGLU MLP. */
        if ((st = hydra_op_rmsnorm((int)BT, C, w.x, lw->norm2, c->norm_eps, w.h))) break;
        if ((st = mm(m, (int)BT, 2 * F, C, w.h, lw->gate_up, lw->gate_up_h, lw->gate_up_q, w.proj, 0))) break;
#pragma omp parallel for schedule(dynamic, 16) if (BT >= 16)
        for (size_t r = 0; r < BT; r++) {
            const float *g = w.proj + r * 2 * F;
            hydra_vec_swiglu(w.act + r * F, g, g + F, (size_t)F);
        }
        if ((st = mm(m, (int)BT, C, F, w.act, lw->down, lw->down_h, lw->down_q, w.x, 1))) break;
    }
    if (st == HYDRA_OK) {
        if (jr) jr->n += T;
        for (int b = 0; b < B; b++) states[b]->pos += (uint64_t)T;
        if (mode == HYDRA_LOGITS_ALL) {
            st = hydra_op_rmsnorm((int)BT, C, w.x, m->norm_f, c->norm_eps, w.h);
            if (!st) st = mm(m, (int)BT, V, C, w.h, m->lm_head, m->lm_head_h, m->lm_head_q, logits, 0);
        } else if (mode == HYDRA_LOGITS_LAST) {
            for (int b = 0; b < B; b++)
                memcpy(w.last + (size_t)b * C, w.x + ((size_t)b * T + T - 1) * C, C * sizeof(float));
            st = hydra_op_rmsnorm(B, C, w.last, m->norm_f, c->norm_eps, w.h);
            if (!st) st = mm(m, B, V, C, w.h, m->lm_head, m->lm_head_h, m->lm_head_q, logits, 0);
        }
    }
    if (!ws) hydra_aligned_free(w.block);
    return st;
}

void hydra_fwd_scratch_free(hydra_fwd_scratch *ws) {
    if (!ws) return;
    hydra_aligned_free(ws->block);
    ws->block = NULL;
    ws->floats = 0;
}

/* Argument checks shared by the public entry points. */
static hydra_status check_forward_args(const hydra_model *m, const int32_t *tokens, int B, int T,
                                       hydra_logits_mode mode, const float *logits) {
    if (!m || !tokens) return hydra_set_error(HYDRA_ERR_ARG, "forward: model or tokens is NULL");
    if (B < 1 || T < 1) return hydra_set_error(HYDRA_ERR_ARG, "forward: B and T must be >= 1 (got B=%d, T=%d)", B, T);
    if (mode != HYDRA_LOGITS_NONE && mode != HYDRA_LOGITS_LAST && mode != HYDRA_LOGITS_ALL)
        return hydra_set_error(HYDRA_ERR_ARG, "forward: invalid logits mode %d", (int)mode);
    if (mode != HYDRA_LOGITS_NONE && !logits) return hydra_set_error(HYDRA_ERR_ARG, "forward: logits buffer is NULL");
    return check_tokens(m, tokens, (size_t)B * T);
}

/* The caller's states: present, of this model's shape, all distinct. */
static hydra_status check_states(const hydra_model *m, hydra_state *const *states, int B) {
    for (int b = 0; b < B; b++) {
        if (!states[b]) return hydra_set_error(HYDRA_ERR_ARG, "forward: states[%d] is NULL", b);
        if (!hydra_config_same_state_shape(&states[b]->cfg, &m->cfg))
            return hydra_set_error(HYDRA_ERR_MISMATCH, "forward: states[%d] was created for a different model shape", b);
        for (int j = 0; j < b; j++)
            if (states[j] == states[b])
                return hydra_set_error(HYDRA_ERR_ARG, "forward: states[%d] and states[%d] are the same object", j, b);
    }
    return HYDRA_OK;
}

hydra_status hydra_forward(const hydra_model *m, const int32_t *tokens, int B, int T,
                           hydra_state *const *states, hydra_logits_mode mode, float *logits) {
    HYDRA_CHECK(check_forward_args(m, tokens, B, T, mode, logits));
    if (states) {
        HYDRA_CHECK(check_states(m, states, B));
        return forward_impl(m, tokens, B, T, states, mode, logits, NULL, NULL);
    }
    /* No states given: run from fresh temporaries. */
    hydra_state **tmp = calloc((size_t)B, sizeof *tmp);
    if (!tmp) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_status st = HYDRA_OK;
    for (int b = 0; b < B && st == HYDRA_OK; b++) st = hydra_state_create(m, &tmp[b]);
    if (st == HYDRA_OK) st = forward_impl(m, tokens, B, T, tmp, mode, logits, NULL, NULL);
    for (int b = 0; b < B; b++) hydra_state_free(tmp[b]);
    free(tmp);
    return st;
}

hydra_status hydra_forward_journaled(const hydra_model *m, const int32_t *tokens, int T, hydra_state *s,
                                     hydra_logits_mode mode, float *logits, hydra_journal *j) {
    if (!j) return hydra_forward(m, tokens, 1, T, &s, mode, logits);
    HYDRA_CHECK(check_forward_args(m, tokens, 1, T, mode, logits));
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "forward: the journaled state is NULL");
    if (!hydra_config_same_state_shape(&s->cfg, &m->cfg) || !hydra_config_same_state_shape(&j->cfg, &m->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH, "forward: state or journal was created for a different model shape");
    if (!j->active || s->pos != j->pos0 + (uint64_t)j->n)
        return hydra_set_error(HYDRA_ERR_ARG, "forward: the journal was not begun at this state");
    if (j->n + T > j->cap)
        return hydra_set_error(HYDRA_ERR_ARG, "forward: the journal holds %d positions, %d recorded + %d new", j->cap,
                               j->n, T);
    if (j->dev_mode) { /* snapshot journal (a GPU model): record the tokens, run a plain forward */
        if (m != j->m) return hydra_set_error(HYDRA_ERR_ARG, "forward: the journal belongs to another model");
        HYDRA_CHECK(hydra_forward(m, tokens, 1, T, &s, mode, logits));
        memcpy(j->tok + j->n, tokens, (size_t)T * sizeof *tokens);
        j->n += T;
        return HYDRA_OK;
    }
    return forward_impl(m, tokens, 1, T, &s, mode, logits, j, NULL);
}

hydra_status hydra_forward_scratch(const hydra_model *m, const int32_t *tokens, int T, hydra_state *s,
                                   hydra_logits_mode mode, float *logits, hydra_fwd_scratch *ws) {
    HYDRA_CHECK(check_forward_args(m, tokens, 1, T, mode, logits));
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "forward: state is NULL");
    HYDRA_CHECK(check_states(m, &s, 1));
    return forward_impl(m, tokens, 1, T, &s, mode, logits, NULL, ws);
}

hydra_status hydra_step(const hydra_model *m, hydra_state *st, int32_t token, float *logits) {
    if (!st) return hydra_set_error(HYDRA_ERR_ARG, "step: state is NULL");
    return hydra_forward(m, &token, 1, 1, &st, logits ? HYDRA_LOGITS_LAST : HYDRA_LOGITS_NONE, logits);
}

hydra_status hydra_forward_sample(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state *const *states,
                                  const hydra_sample_opts *o, hydra_rng *rng, int32_t *next) {
    HYDRA_CHECK(check_forward_args(m, tokens, B, T, HYDRA_LOGITS_NONE, NULL));
    if (!states || !o || !rng || !next) return hydra_set_error(HYDRA_ERR_ARG, "forward_sample: NULL argument");
    if (!m->dev) return hydra_set_error(HYDRA_ERR_ARG, "forward_sample: the model is not on a device");
    HYDRA_CHECK(hydra_sample_opts_validate(o));
    HYDRA_CHECK(check_states(m, states, B));
    for (int b = 0; b < B; b++) HYDRA_CHECK(hydra_position_check("forward", states[b]->pos, T));
    double *u = malloc((size_t)B * sizeof *u);
    if (!u) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    for (int b = 0; b < B; b++) u[b] = hydra_rng_uniform(&rng[b]);
    hydra_status st = hydra_dev_forward_sample(m, tokens, B, T, states, o, u, next);
    free(u);
    return st;
}
