/*
 * hydralm_stream.h — the streaming engine and session state files of libhydralm.
 *
 * A stream reads an unbounded token sequence chunk by chunk at constant memory:
 * everything it keeps is one hydra_state (DeltaNet S and conv tails, SWA rings,
 * the position) plus the logits of the last token fed. Feeding the same tokens
 * in any split gives the same state and logits as one hydra_forward (up to fp32
 * rounding, <= 1e-5 relative).
 *
 *   hydra_stream *s;
 *   hydra_stream_create(model, NULL, &s);            // NULL = defaults (chunk 512, fp32)
 *   hydra_stream_feed(s, ids, n);                    // as often as you like, any n
 *   hydra_stream_extend_and_generate(s, q, nq, &g, out, cap, &n_out);
 *   hydra_state_save(hydra_stream_state(s), model, "session.hst");
 *   hydra_stream_free(s);
 *
 * Full-attention layers (pattern 'A' or window 0) are the one exception to
 * constant memory: their K/V cache grows with the number of tokens.
 * See docs/streaming.md and docs/formats.md ("Session state files").
 */
#ifndef HYDRALM_STREAM_H
#define HYDRALM_STREAM_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Precision of the weights the engine runs with. BF16: the engine makes its
 * own bf16 copy of the model's matrices (projections, MLP, head; vectors,
 * convs and the embedding stay f32) and runs every forward on it: half the
 * weight bytes read per token, which is what bounds decode speed; logits
 * differ from f32 by bf16 rounding (~1e-2 relative). The f32 model must still
 * outlive the engine (it gives the state files their fingerprint). */
typedef enum {
    HYDRA_WEIGHTS_F32 = 0,
    HYDRA_WEIGHTS_BF16 = 1,
} hydra_weights_precision;

typedef struct {
    int chunk;                       /* tokens per internal forward, >= 1 (default 512) */
    hydra_weights_precision weights; /* HYDRA_WEIGHTS_F32 (default) or HYDRA_WEIGHTS_BF16 */
} hydra_stream_opts;

/* chunk 512, fp32 weights. */
hydra_stream_opts hydra_stream_opts_default(void);

typedef struct {
    uint64_t tokens;         /* tokens processed by this engine since create/reset (fed + generated) */
    uint64_t chunks;         /* forward calls made (feed chunks + generation steps) */
    uint64_t position;       /* absolute position of the state (includes a loaded session) */
    size_t state_bytes;      /* hydra_state_bytes of the engine's state now */
    size_t peak_state_bytes; /* largest state_bytes seen since create/reset */
    double seconds;          /* wall time spent inside feed / extend_and_generate */
    double tokens_per_s;     /* tokens / seconds (0 before any work) */
} hydra_stream_stats;

typedef struct hydra_stream hydra_stream;

/* Create an engine on m (which must outlive it). opts may be NULL (defaults). */
hydra_status hydra_stream_create(const hydra_model *m, const hydra_stream_opts *opts, hydra_stream **out);
void hydra_stream_free(hydra_stream *s);

/* Consume n >= 0 tokens (ids in [0, V)). Split internally into forwards of at
 * most `chunk` tokens. All ids are validated first: on a bad id nothing is
 * consumed. Keeps the logits of the last token fed (hydra_stream_last_logits). */
hydra_status hydra_stream_feed(hydra_stream *s, const int32_t *tokens, size_t n);

/* Logits [V] after the last token consumed (fed or generated). HYDRA_ERR_ARG if
 * no token has been consumed since create/reset/hydra_state_load (a loaded
 * state carries no logits: feed at least one token). */
hydra_status hydra_stream_last_logits(const hydra_stream *s, float *out_V);

/* Feed prompt[n_prompt] (n_prompt may be 0 if tokens were already consumed),
 * then sample up to opts->max_new_tokens tokens into out[cap] exactly as
 * hydra_generate does (same seed -> same tokens as hydra_generate on the whole
 * history; stop tokens and on_token callback likewise). Every generated token
 * is fed back, so the stream continues after it. */
hydra_status hydra_stream_extend_and_generate(hydra_stream *s, const int32_t *prompt, size_t n_prompt,
                                              const hydra_gen_opts *opts, int32_t *out, size_t cap,
                                              size_t *n_out);

hydra_status hydra_stream_get_stats(const hydra_stream *s, hydra_stream_stats *out);

/* The engine's state (borrowed; valid until hydra_stream_free). Save it with
 * hydra_state_save, or restore into it with hydra_state_load (after which the
 * last logits are unavailable until the next token is fed). */
hydra_state *hydra_stream_state(hydra_stream *s);

/* Empty state, zero stats, no last logits. */
void hydra_stream_reset(hydra_stream *s);

/* Convenience: hydra_state_save / hydra_state_load on the engine's state with
 * the engine's model. After a load the last logits are unavailable until the
 * next token is fed; stats keep counting this engine's work. */
hydra_status hydra_stream_save(const hydra_stream *s, const char *path);
hydra_status hydra_stream_load(hydra_stream *s, const char *path);

/* ------------------------------------------------------ session state files */
/* Save st (created for m) to path atomically (temp file, fsync, rename).
 * Format: docs/formats.md "Session state files". Computes the model
 * fingerprint (a hash of every weight: ~1 s for the 363 MB default model). */
hydra_status hydra_state_save(const hydra_state *st, const hydra_model *m, const char *path);
/* Load a state file written for model m into st (created for m). Refuses, with
 * a message and st unchanged: a missing/unreadable file, wrong magic or
 * version, a truncated file or trailing bytes, a checksum mismatch (corrupt
 * file), a file from a different model, a payload that does not match the
 * model's state shape, non-finite values. */
hydra_status hydra_state_load(hydra_state *st, const hydra_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_STREAM_H */
