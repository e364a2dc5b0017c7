/* generate.c — prompt prefill + autoregressive sampling with streaming
 * callback and stop tokens; byte-level tokenizer. */
#include "backend/backend.h"
#include "core/internal.h"

#define HYDRA_PREFILL_CHUNK ((size_t)512)

/* Feed tokens [B, T] and sample each row's next token (row b from rng[b]).
 * A model that samples on its device keeps the logits there and returns
 * only the B ids (docs/gpu.md, "Sampling"); otherwise the logits come back
 * into logits [B, V] and hydra_sample draws here. Both take one uniform per
 * row, so they choose the same tokens. next may alias tokens. */
static hydra_status feed_and_sample(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state **st,
                                    const hydra_sample_opts *o, hydra_rng *rng, float *logits, int32_t *next) {
    if (m->dev && hydra_dev_sampling(m->dev)) return hydra_forward_sample(m, tokens, B, T, st, o, rng, next);
    const int V = m->cfg.vocab_size;
    HYDRA_CHECK(hydra_forward(m, tokens, B, T, st, HYDRA_LOGITS_LAST, logits));
    for (int b = 0; b < B; b++) HYDRA_CHECK(hydra_sample(logits + (size_t)b * V, V, o, &rng[b], &next[b]));
    return HYDRA_OK;
}

hydra_gen_opts hydra_gen_opts_default(void) {
    hydra_gen_opts g;
    memset(&g, 0, sizeof g);
    g.sample = hydra_sample_opts_default();
    g.max_new_tokens = 128;
    return g;
}

hydra_status hydra_generate(const hydra_model *m, hydra_state *st, const int32_t *prompt,
                            size_t n_prompt, const hydra_gen_opts *opts, int32_t *out, size_t cap,
                            size_t *n_out) {
    if (!m || !opts || !n_out) return hydra_set_error(HYDRA_ERR_ARG, "generate: NULL model, options or n_out");
    *n_out = 0;
    if (!prompt || n_prompt == 0) return hydra_set_error(HYDRA_ERR_ARG, "generate: the prompt must hold at least one token");
    if (opts->max_new_tokens < 1) return hydra_set_error(HYDRA_ERR_ARG, "generate: max_new_tokens must be >= 1 (got %d)", opts->max_new_tokens);
    if (!out || cap < (size_t)opts->max_new_tokens)
        return hydra_set_error(HYDRA_ERR_ARG, "generate: output buffer holds %zu tokens, max_new_tokens is %d", out ? cap : 0, opts->max_new_tokens);
    if (opts->n_stop_tokens < 0 || opts->n_stop_tokens > 8) return hydra_set_error(HYDRA_ERR_ARG, "generate: n_stop_tokens must be in 0..8");
    HYDRA_CHECK(hydra_sample_opts_validate(&opts->sample));
    const int V = m->cfg.vocab_size;
    hydra_state *own = NULL;
    if (!st) {
        HYDRA_CHECK(hydra_state_create(m, &own));
        st = own;
    }
    float *logits = malloc((size_t)V * sizeof(float));
    hydra_status s = logits ? HYDRA_OK : hydra_set_error(HYDRA_ERR_NOMEM, "generate: out of memory");
    hydra_rng rng;
    hydra_rng_seed(&rng, opts->seed);
    int32_t next = 0;
    /* Prefill in bounded chunks: the workspace stays small for long prompts.
     * The last chunk also samples the first token. */
    for (size_t i = 0; s == HYDRA_OK && i < n_prompt; i += HYDRA_PREFILL_CHUNK) {
        size_t n = n_prompt - i < HYDRA_PREFILL_CHUNK ? n_prompt - i : HYDRA_PREFILL_CHUNK;
        if ((s = hydra_check_cancel("generate"))) break;
        if (i + n == n_prompt) s = feed_and_sample(m, prompt + i, 1, (int)n, &st, &opts->sample, &rng, logits, &next);
        else s = hydra_forward(m, prompt + i, 1, (int)n, &st, HYDRA_LOGITS_NONE, NULL);
    }
    for (int i = 0; s == HYDRA_OK && i < opts->max_new_tokens; i++) {
        const int32_t tok = next;
        if ((s = hydra_check_cancel("generate"))) break;
        out[(*n_out)++] = tok;
        /* Feed the token so the state holds prompt + everything generated,
         * sampling the next one unless this was the last. */
        if (i + 1 < opts->max_new_tokens) s = feed_and_sample(m, &tok, 1, 1, &st, &opts->sample, &rng, logits, &next);
        else s = hydra_step(m, st, tok, NULL);
        if (s) break;
        int stop = opts->on_token ? opts->on_token(tok, opts->user) : 0;
        for (int j = 0; j < opts->n_stop_tokens; j++) stop |= tok == opts->stop_tokens[j];
        if (stop) break;
    }
    free(logits);
    hydra_state_free(own);
    return s;
}

hydra_status hydra_generate_batch(const hydra_model *m, const int32_t *prompts, int B, int n_prompt,
                                  const hydra_gen_opts *opts, int32_t *out) {
    if (!m || !prompts || !opts || !out) return hydra_set_error(HYDRA_ERR_ARG, "generate_batch: NULL argument");
    if (B < 1 || B > 4096) return hydra_set_error(HYDRA_ERR_ARG, "generate_batch: B must be in 1..4096 (got %d)", B);
    if (n_prompt < 1) return hydra_set_error(HYDRA_ERR_ARG, "generate_batch: the prompts must hold at least one token");
    if (opts->max_new_tokens < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "generate_batch: max_new_tokens must be >= 1 (got %d)", opts->max_new_tokens);
    if (opts->n_stop_tokens != 0 || opts->on_token)
        return hydra_set_error(HYDRA_ERR_ARG, "generate_batch: stop tokens and on_token are not supported (rows would end at different lengths)");
    HYDRA_CHECK(hydra_sample_opts_validate(&opts->sample));
    const int V = m->cfg.vocab_size;
    const size_t T = (size_t)opts->max_new_tokens;
    hydra_state **st = calloc((size_t)B, sizeof *st);
    hydra_rng *rng = malloc((size_t)B * sizeof *rng);
    float *logits = malloc((size_t)B * V * sizeof(float));
    int32_t *chunk = malloc((size_t)B * HYDRA_PREFILL_CHUNK * sizeof *chunk);
    hydra_status s = st && rng && logits && chunk ? HYDRA_OK : hydra_set_error(HYDRA_ERR_NOMEM, "generate_batch: out of memory");
    for (int b = 0; s == HYDRA_OK && b < B; b++) {
        s = hydra_state_create(m, &st[b]);
        hydra_rng_seed(&rng[b], opts->seed + (uint64_t)b);
    }
    /* Prefill in the same chunks as hydra_generate, all rows per forward;
     * the last chunk also samples each row's first token into chunk[0..B). */
    const int CH = (int)HYDRA_PREFILL_CHUNK;
    for (int i = 0; s == HYDRA_OK && i < n_prompt; i += CH) {
        int n = n_prompt - i < CH ? n_prompt - i : CH;
        for (int b = 0; b < B; b++) memcpy(chunk + (size_t)b * n, prompts + (size_t)b * n_prompt + i, (size_t)n * sizeof *chunk);
        if (i + n == n_prompt) s = feed_and_sample(m, chunk, B, n, st, &opts->sample, rng, logits, chunk);
        else s = hydra_forward(m, chunk, B, n, st, HYDRA_LOGITS_NONE, NULL);
    }
    for (size_t t = 0; s == HYDRA_OK && t < T; t++) {
        for (int b = 0; b < B; b++) out[(size_t)b * T + t] = chunk[b];
        if (t + 1 < T) s = feed_and_sample(m, chunk, B, 1, st, &opts->sample, rng, logits, chunk);
    }
    for (int b = 0; st && b < B; b++) hydra_state_free(st[b]);
    free(st), free(rng), free(logits), free(chunk);
    return s;
}

hydra_status hydra_tokenize_bytes(const char *text, size_t len, int32_t *ids, size_t cap, size_t *n) {
    if (!text || !n || (!ids && len)) return hydra_set_error(HYDRA_ERR_ARG, "tokenize: NULL argument");
    if (cap < len) return hydra_set_error(HYDRA_ERR_ARG, "tokenize: buffer holds %zu ids, text has %zu bytes", cap, len);
    for (size_t i = 0; i < len; i++) ids[i] = (unsigned char)text[i];
    *n = len;
    return HYDRA_OK;
}
