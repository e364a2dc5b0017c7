/* stream.c — the streaming engine: an unbounded token stream fed chunk by
 * chunk into one hydra_state at constant memory (docs/streaming.md).
 *
 * The engine owns: the state (fixed size unless the model has full-attention
 * layers), the logits [V] of the last consumed token, counters, and one
 * chunk-sized forward workspace reused by every forward, so the process
 * footprint is the weights + state + one workspace, the same in every run. */
#include <math.h>
#include <time.h>

#include "core/internal.h"
#include "hydralm_stream.h"

struct hydra_stream {
    const hydra_model *m;  /* the model: identity (fingerprints), vocabulary */
    const hydra_model *fm; /* what the forwards run: m, or its bf16 view */
    hydra_model *view;     /* owned bf16 view (HYDRA_WEIGHTS_BF16) */
    hydra_stream_opts opts;
    hydra_state *st;
    float *logits;         /* [V] logits after the last consumed token */
    int has_logits;        /* logits are valid ...                     */
    uint64_t logits_pos;   /* ... for the state at this position       */
    uint64_t tokens, chunks;
    size_t peak_bytes;
    double seconds;
    hydra_fwd_scratch ws;  /* the forwards' workspace, kept between calls */
};

hydra_stream_opts hydra_stream_opts_default(void) {
    hydra_stream_opts o;
    memset(&o, 0, sizeof o);
    o.chunk = 512;
    o.weights = HYDRA_WEIGHTS_F32;
    return o;
}

hydra_status hydra_stream_create(const hydra_model *m, const hydra_stream_opts *opts, hydra_stream **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "stream_create: out pointer is NULL");
    *out = NULL;
    if (!m) return hydra_set_error(HYDRA_ERR_ARG, "stream_create: model is NULL");
    hydra_stream_opts o = opts ? *opts : hydra_stream_opts_default();
    if (o.chunk < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_create: chunk must be >= 1 (got %d)", o.chunk);
    if (o.weights != HYDRA_WEIGHTS_F32 && o.weights != HYDRA_WEIGHTS_BF16)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_create: unknown weights precision %d", (int)o.weights);
    if (m->quant && o.weights != HYDRA_WEIGHTS_F32)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_create: the model holds %s-quantised matrices "
                               "(hydra_model_load_quant) and runs with them as loaded; ask for HYDRA_WEIGHTS_F32 "
                               "(no conversion)", hydra_quant_name((hydra_quant)m->quant));
    if (m->bf16_only && o.weights != HYDRA_WEIGHTS_BF16)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_create: the model holds bf16 matrices only "
                               "(hydra_model_load_bf16); ask for HYDRA_WEIGHTS_BF16");
    hydra_stream *s = calloc(1, sizeof *s);
    if (!s) return hydra_set_error(HYDRA_ERR_NOMEM, "stream_create: out of memory");
    s->m = s->fm = m;
    s->opts = o;
    s->logits = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    hydra_status st = s->logits ? hydra_state_create(m, &s->st)
                                : hydra_set_error(HYDRA_ERR_NOMEM, "stream_create: out of memory");
    /* bf16 weights: a bf16-only model runs as it is; an f32 one gets a view. */
    if (!st && o.weights == HYDRA_WEIGHTS_BF16 && !m->bf16_only && !m->dev && !(st = hydra_model_bf16_view(m, &s->view)))
        s->fm = s->view;
    if (st != HYDRA_OK) {
        hydra_stream_free(s);
        return st;
    }
    s->peak_bytes = hydra_state_bytes(s->st);
    *out = s;
    return HYDRA_OK;
}

void hydra_stream_free(hydra_stream *s) {
    if (!s) return;
    hydra_state_free(s->st);
    hydra_model_free(s->view);
    hydra_fwd_scratch_free(&s->ws);
    free(s->logits);
    free(s);
}

void hydra_stream_reset(hydra_stream *s) {
    if (!s) return;
    hydra_state_reset(s->st);
    s->has_logits = 0;
    s->tokens = s->chunks = 0;
    s->seconds = 0;
    s->peak_bytes = hydra_state_bytes(s->st);
}

hydra_state *hydra_stream_state(hydra_stream *s) { return s ? s->st : NULL; }

static void note_forward(hydra_stream *s, size_t n_tokens) {
    s->tokens += n_tokens;
    s->chunks++;
    size_t b = hydra_state_bytes(s->st);
    if (b > s->peak_bytes) s->peak_bytes = b;
}

/* Feed without validation or timing (callers do both). */
static hydra_status feed_chunks(hydra_stream *s, const int32_t *tokens, size_t n) {
    const size_t chunk = (size_t)s->opts.chunk;
    for (size_t i = 0; i < n; i += chunk) {
        size_t t = n - i < chunk ? n - i : chunk;
        int last = i + t == n;
        hydra_status st = hydra_check_cancel("stream");
        if (st == HYDRA_OK)
            st = hydra_forward_scratch(s->fm, tokens + i, (int)t, s->st, last ? HYDRA_LOGITS_LAST : HYDRA_LOGITS_NONE,
                                       last ? s->logits : NULL, &s->ws);
        if (st != HYDRA_OK) {
            s->has_logits = 0;
            return st;
        }
        note_forward(s, t);
        if (last) {
            s->has_logits = 1;
            s->logits_pos = s->st->pos;
        }
    }
    return HYDRA_OK;
}

static hydra_status check_ids(const hydra_model *m, const int32_t *tokens, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return hydra_set_error(HYDRA_ERR_ARG, "%s: token id %d at index %zu is outside the vocabulary [0, %d)",
                                   what, tokens[i], i, m->cfg.vocab_size);
    return HYDRA_OK;
}

hydra_status hydra_stream_feed(hydra_stream *s, const int32_t *tokens, size_t n) {
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "stream_feed: stream is NULL");
    if (n == 0) return HYDRA_OK;
    if (!tokens) return hydra_set_error(HYDRA_ERR_ARG, "stream_feed: tokens is NULL with n = %zu", n);
    HYDRA_CHECK(check_ids(s->m, tokens, n, "stream_feed"));
    double t0 = hydra_now_seconds();
    hydra_status st = feed_chunks(s, tokens, n);
    s->seconds += hydra_now_seconds() - t0;
    return st;
}

static int logits_valid(const hydra_stream *s) { return s->has_logits && s->logits_pos == s->st->pos; }

hydra_status hydra_stream_last_logits(const hydra_stream *s, float *out_V) {
    if (!s || !out_V) return hydra_set_error(HYDRA_ERR_ARG, "stream_last_logits: NULL argument");
    if (!logits_valid(s))
        return hydra_set_error(HYDRA_ERR_ARG,
                               "stream_last_logits: no logits yet (feed at least one token after "
                               "creating, resetting or loading the state)");
    memcpy(out_V, s->logits, (size_t)s->m->cfg.vocab_size * sizeof(float));
    return HYDRA_OK;
}

/* The generation loop is hydra_generate's, token for token (same RNG seeding,
 * one hydra_sample per token, the token stepped into the state before the
 * callback and stop check), but it starts from the engine's last logits so
 * that the prompt can be fed in chunks (or be empty) and the logits of the
 * last generated token stay available afterwards. */
hydra_status hydra_stream_extend_and_generate(hydra_stream *s, const int32_t *prompt, size_t n_prompt,
                                              const hydra_gen_opts *opts, int32_t *out, size_t cap,
                                              size_t *n_out) {
    if (!s || !opts || !n_out)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_extend_and_generate: NULL stream, options or n_out");
    *n_out = 0;
    if (n_prompt && !prompt)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_extend_and_generate: prompt is NULL with n_prompt = %zu", n_prompt);
    if (opts->max_new_tokens < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_extend_and_generate: max_new_tokens must be >= 1 (got %d)",
                               opts->max_new_tokens);
    if (!out || cap < (size_t)opts->max_new_tokens)
        return hydra_set_error(HYDRA_ERR_ARG,
                               "stream_extend_and_generate: output buffer holds %zu tokens, max_new_tokens is %d",
                               out ? cap : 0, opts->max_new_tokens);
    if (opts->n_stop_tokens < 0 || opts->n_stop_tokens > 8)
        return hydra_set_error(HYDRA_ERR_ARG, "stream_extend_and_generate: n_stop_tokens must be in 0..8");
    HYDRA_CHECK(hydra_sample_opts_validate(&opts->sample));
    HYDRA_CHECK(check_ids(s->m, prompt, n_prompt, "stream_extend_and_generate"));
    if (n_prompt == 0 && !logits_valid(s))
        return hydra_set_error(HYDRA_ERR_ARG,
                               "stream_extend_and_generate: empty prompt and no logits to continue from (no token "
                               "consumed since create/reset, or the state was just loaded: give at least one token)");
    const int V = s->m->cfg.vocab_size;
    double t0 = hydra_now_seconds();
    hydra_status st = feed_chunks(s, prompt, n_prompt);
    hydra_rng rng;
    hydra_rng_seed(&rng, opts->seed);
    for (int i = 0; st == HYDRA_OK && i < opts->max_new_tokens; i++) {
        int32_t tok;
        if ((st = hydra_check_cancel("stream")) || (st = hydra_sample(s->logits, V, &opts->sample, &rng, &tok))) break;
        out[(*n_out)++] = tok;
        if ((st = hydra_forward_scratch(s->fm, &tok, 1, s->st, HYDRA_LOGITS_LAST, s->logits, &s->ws))) {
            s->has_logits = 0;
            break;
        }
        note_forward(s, 1);
        s->logits_pos = s->st->pos;
        int stop = opts->on_token ? opts->on_token(tok, opts->user) : 0;
        for (int j = 0; j < opts->n_stop_tokens; j++) stop |= tok == opts->stop_tokens[j];
        if (stop) break;
    }
    s->seconds += hydra_now_seconds() - t0;
    return st;
}

hydra_status hydra_stream_get_stats(const hydra_stream *s, hydra_stream_stats *out) {
    if (!s || !out) return hydra_set_error(HYDRA_ERR_ARG, "stream_get_stats: NULL argument");
    memset(out, 0, sizeof *out);
    out->tokens = s->tokens;
    out->chunks = s->chunks;
    out->position = s->st->pos;
    out->state_bytes = hydra_state_bytes(s->st);
    out->peak_state_bytes = s->peak_bytes > out->state_bytes ? s->peak_bytes : out->state_bytes;
    out->seconds = s->seconds;
    out->tokens_per_s = s->seconds > 0 ? (double)s->tokens / s->seconds : 0.0;
    return HYDRA_OK;
}

hydra_status hydra_stream_save(const hydra_stream *s, const char *path) {
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "stream_save: stream is NULL");
    return hydra_state_save(s->st, s->m, path);
}

hydra_status hydra_stream_load(hydra_stream *s, const char *path) {
    if (!s) return hydra_set_error(HYDRA_ERR_ARG, "stream_load: stream is NULL");
    HYDRA_CHECK(hydra_state_load(s->st, s->m, path));
    s->has_logits = 0;
    size_t b = hydra_state_bytes(s->st);
    if (b > s->peak_bytes) s->peak_bytes = b;
    return HYDRA_OK;
}
