/* reference.c — the plain reference forward (DESIGN §2, fp32) of one sequence
 * from an empty state. Written for reading, not speed: naive loops, no BLAS,
 * token-by-token recurrence, attention recomputed over the explicit window.
 * The fast path (forward.c) is tested against this. Never optimise it. */
#include <math.h>

#include "core/internal.h"

/* y[n] = sum_k W[n,k] x[k] for one token. */
static void linear(const float *W, const float *x, int N, int K, float *y) {
    for (int n = 0; n < N; n++) {
        float acc = 0.0f;
        for (int k = 0; k < K; k++) acc += W[(size_t)n * K + k] * x[k];
        y[n] = acc;
    }
}

static void rmsnorm(const float *x, const float *w, int n, float eps, float *y) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

static void l2norm(float *x, int n, float eps, float scale) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = scale / sqrtf(ss + eps);
    for (int i = 0; i < n; i++) x[i] *= r;
}

static void rope(float *x, int d, int64_t pos, double base) {
    int half = d / 2;
    for (int i = 0; i < half; i++) {
        double ang = (double)pos * pow(base, -2.0 * i / d);
        float c = (float)cos(ang), s = (float)sin(ang);
        float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = a * s + b * c;
    }
}

hydra_status hydra_forward_reference(const hydra_model *m, const int32_t *tokens, int T, float *logits) {
    if (!m || !tokens || !logits) return hydra_set_error(HYDRA_ERR_ARG, "forward_reference: NULL argument");
    if (T < 1) return hydra_set_error(HYDRA_ERR_ARG, "forward_reference: T must be >= 1");
    HYDRA_CHECK(hydra_require_f32(m, "forward_reference"));
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, d = m->dk, F = m->F, V = c->vocab_size, K = c->conv_width;
    const int Hd = H * d;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return hydra_set_error(HYDRA_ERR_ARG, "token id %d at index %d is outside the vocabulary", tokens[t], t);
    /* Whole-sequence buffers, one row per token. */
    float *x = calloc((size_t)T * C, sizeof(float));     /* [T, C] residual */
    float *h = calloc((size_t)C, sizeof(float));
    float *raw = calloc((size_t)T * 3 * Hd, sizeof(float)); /* [T, 3Hd] pre-conv q|k|v or attention q|k|v */
    float *gate = calloc((size_t)T * Hd, sizeof(float));  /* [T, Hd] */
    float *ab = calloc((size_t)T * 2 * H, sizeof(float)); /* [T, 2H] a|b */
    float *q = calloc((size_t)Hd, sizeof(float)), *k = calloc((size_t)Hd, sizeof(float));
    float *v = calloc((size_t)Hd, sizeof(float)), *o = calloc((size_t)Hd, sizeof(float));
    float *S = calloc((size_t)H * d * d, sizeof(float));   /* [H, dv, dk] */
    float *y = calloc((size_t)C, sizeof(float));
    float *mg = calloc((size_t)F, sizeof(float)), *mu = calloc((size_t)F, sizeof(float));
    float *sc = calloc((size_t)T, sizeof(float));
    float *gb = calloc((size_t)2 * H, sizeof(float)); /* [2, H] decay g | beta of one token */
    hydra_status st = HYDRA_OK;
    if (!x || !h || !raw || !gate || !ab || !q || !k || !v || !o || !S || !y || !mg || !mu || !sc || !gb) {
        st = hydra_set_error(HYDRA_ERR_NOMEM, "forward_reference: out of memory");
        goto done;
    }
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * C, m->embed + (size_t)tokens[t] * C, C * sizeof(float));
    for (int li = 0; li < c->n_layers; li++) {
        const hydra_layer_weights *lw = &m->layers[li];
        /* Input projections for every token. */
        for (int t = 0; t < T; t++) {
            rmsnorm(x + (size_t)t * C, lw->norm1, C, c->norm_eps, h);
            if (lw->kind == HYDRA_LAYER_DELTANET) {
                linear(lw->in_proj, h, 3 * Hd, C, raw + (size_t)t * 3 * Hd);
                linear(lw->in_proj + (size_t)3 * Hd * C, h, Hd, C, gate + (size_t)t * Hd);
                linear(lw->in_proj + (size_t)4 * Hd * C, h, 2 * H, C, ab + (size_t)t * 2 * H);
            } else {
                linear(lw->in_proj, h, 3 * Hd, C, raw + (size_t)t * 3 * Hd);
            }
        }
        if (lw->kind == HYDRA_LAYER_DELTANET) {
            memset(S, 0, (size_t)H * d * d * sizeof(float));
            for (int t = 0; t < T; t++) {
                /* Causal depthwise conv, zeros before t = 0, then SiLU. */
                float *qkv[3] = {q, k, v};
                for (int part = 0; part < 3; part++)
                    for (int ch = 0; ch < Hd; ch++) {
                        int cc = part * Hd + ch;
                        float acc = 0.0f;
                        for (int j = 0; j < K; j++) {
                            int s = t - K + 1 + j;
                            if (s >= 0) acc += lw->q_conv[(size_t)cc * K + j] * raw[(size_t)s * 3 * Hd + cc];
                        }
                        qkv[part][ch] = hydra_silu(acc);
                    }
                for (int hh = 0; hh < H; hh++) {
                    l2norm(q + hh * d, d, c->l2_eps, 1.0f / sqrtf((float)d));
                    l2norm(k + hh * d, d, c->l2_eps, 1.0f);
                }
                float *g = gb, *beta = gb + H;
                for (int hh = 0; hh < H; hh++) {
                    const float *a = ab + (size_t)t * 2 * H;
                    beta[hh] = hydra_sigmoid(a[H + hh]);
                    g[hh] = -expf(lw->A_log[hh]) * hydra_softplus(a[hh] + lw->dt_bias[hh]);
                }
                hydra_op_delta_rule_ref(1, H, d, d, q, k, v, g, beta, S, o);
                /* Gated output norm per head. */
                for (int hh = 0; hh < H; hh++) {
                    float tmp[4096];
                    rmsnorm(o + hh * d, lw->o_norm, d, c->norm_eps, tmp);
                    for (int i = 0; i < d; i++) o[hh * d + i] = tmp[i] * hydra_silu(gate[(size_t)t * Hd + hh * d + i]);
                }
                linear(lw->o_proj, o, C, Hd, y);
                for (int i = 0; i < C; i++) x[(size_t)t * C + i] += y[i];
            }
        } else {
            int W = lw->kind == HYDRA_LAYER_ATTN ? 0 : c->window;
            /* Rotate every q and k in place in raw. */
            for (int t = 0; t < T; t++)
                for (int hh = 0; hh < H; hh++) {
                    rope(raw + (size_t)t * 3 * Hd + hh * d, d, t, c->rope_base);
                    rope(raw + (size_t)t * 3 * Hd + Hd + hh * d, d, t, c->rope_base);
                }
            /* Outputs depend only on raw, so the residual can be updated token by token. */
            for (int t = 0; t < T; t++) {
                int lo = W ? t - W + 1 : 0;
                if (lo < 0) lo = 0;
                for (int hh = 0; hh < H; hh++) {
                    const float *qt = raw + (size_t)t * 3 * Hd + hh * d;
                    float mx = -INFINITY, sum = 0.0f;
                    for (int j = lo; j <= t; j++) {
                        const float *kj = raw + (size_t)j * 3 * Hd + Hd + hh * d;
                        float s = 0.0f;
                        for (int i = 0; i < d; i++) s += qt[i] * kj[i];
                        sc[j] = s / sqrtf((float)d);
                        if (sc[j] > mx) mx = sc[j];
                    }
                    for (int j = lo; j <= t; j++) sum += (sc[j] = expf(sc[j] - mx));
                    for (int i = 0; i < d; i++) {
                        float acc = 0.0f;
                        for (int j = lo; j <= t; j++) acc += sc[j] / sum * raw[(size_t)j * 3 * Hd + 2 * Hd + hh * d + i];
                        o[hh * d + i] = acc;
                    }
                }
                linear(lw->o_proj, o, C, Hd, y);
                for (int i = 0; i < C; i++) x[(size_t)t * C + i] += y[i];
            }
        }
        /* SwiGLU MLP. */
        for (int t = 0; t < T; t++) {
            float *xt = x + (size_t)t * C;
            rmsnorm(xt, lw->norm2, C, c->norm_eps, h);
            linear(lw->gate_up, h, F, C, mg);
            linear(lw->gate_up + (size_t)F * C, h, F, C, mu);
            for (int i = 0; i < F; i++) mg[i] = hydra_silu(mg[i]) * mu[i];
            linear(lw->down, mg, C, F, y);
            for (int i = 0; i < C; i++) xt[i] += y[i];
        }
    }
    for (int t = 0; t < T; t++) {
        rmsnorm(x + (size_t)t * C, m->norm_f, C, c->norm_eps, h);
        linear(m->lm_head, h, V, C, logits + (size_t)t * V);
    }
done:
    free(x); free(h); free(raw); free(gate); free(ab); free(q); free(k); free(v); free(o);
    free(S); free(y); free(mg); free(mu); free(sc); free(gb);
    return st;
}
