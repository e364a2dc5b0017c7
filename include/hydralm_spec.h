/*
 * hydralm_spec.h — speculative decoding with an exact target distribution
 * (Leviathan et al. 2023; Chen et al. 2023).
 *
 * A small draft model proposes k tokens from q (its distribution after the
 * temperature/top-k/top-p transform of hydra_sample_probs); the target scores
 * all k in ONE forward; token i is accepted with probability min(1, p_i/q_i);
 * at the first rejection a token is drawn from norm(max(0, p - q)) and the
 * round ends; if all k are accepted a bonus token is drawn from p_{k+1}. The
 * output has exactly the distribution of plain sampling from the target with
 * the same options (greedy: exactly the target's greedy output). Both models
 * roll back to the accepted prefix from per-position state snapshots taken
 * during the round (O(state), never a re-read of the context).
 *
 *   hydra_spec_opts o = hydra_spec_opts_default();
 *   o.k = 4; o.max_new_tokens = 64; o.sample.temperature = 0.7f;
 *   hydra_spec_stats st;
 *   hydra_spec_generate(target, draft, prompt, n_prompt, &o, out, 64, &n_out, &st);
 */
#ifndef HYDRALM_SPEC_H
#define HYDRALM_SPEC_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HYDRA_SPEC_MAX_K 16

typedef struct {
    int k;                    /* draft tokens per round, 1..HYDRA_SPEC_MAX_K (default 4) */
    float min_draft_prob;     /* adaptive rounds: the draft stops proposing (before k) once its top
                                 probability, softmax of its logits, falls below this; the output
                                 law stays exact. 0 (default): always k. In [0, 1). */
    hydra_sample_opts sample; /* the one sampling transform, applied to both models */
    uint64_t seed;
    int max_new_tokens;       /* >= 1 (default 128) */
    int32_t stop_tokens[8];   /* generation stops after emitting any of these */
    int n_stop_tokens;
    hydra_token_cb on_token;  /* optional streaming callback; non-zero return stops */
    void *user;
} hydra_spec_opts;
hydra_spec_opts hydra_spec_opts_default(void);

typedef struct {
    uint64_t rounds;          /* draft-propose / target-verify rounds */
    uint64_t proposed;        /* draft tokens proposed (k per round; fewer near max_new_tokens or
                                 when min_draft_prob ends a round early) */
    uint64_t accepted;        /* proposed tokens the target accepted */
    uint64_t rejected;        /* rounds that ended in a rejection (the rest ended with a bonus token) */
    uint64_t generated;       /* tokens emitted */
    double acceptance_rate;   /* accepted / proposed */
    double alpha;             /* per-token acceptance estimate accepted / (accepted + rejected):
                                 the alpha of Leviathan et al.'s speedup formula */
    double tokens_per_target_forward; /* generated / target_forwards */
    uint64_t target_forwards; /* verification forwards (the prompt prefill is not counted) */
    uint64_t draft_steps;     /* draft forward calls (the prompt prefill is not counted) */
    /* wall time per phase, summed over rounds: where a round's time goes */
    double draft_seconds;     /* draft forwards, snapshots and sampling q */
    double verify_seconds;    /* the target's (k+1)-token forward with its snapshots */
    double accept_seconds;    /* target distributions p, accept/reject draws, rollback */
    double prefill_seconds;   /* hydra_spec_generate's prompt prefill (both models) */
} hydra_spec_stats;

/* HYDRA_OK when the pair can be used together (same vocabulary size);
 * HYDRA_ERR_MISMATCH with a message naming both sizes otherwise. */
hydra_status hydra_spec_check_pair(const hydra_model *target, const hydra_model *draft);

/* Prefill the prompt (>= 1 token) into fresh states of both models, then
 * generate up to max_new_tokens tokens into out[cap] (cap >= max_new_tokens).
 * *n_out = tokens written; stats (optional) receives the counters. */
hydra_status hydra_spec_generate(const hydra_model *target, const hydra_model *draft,
                                 const int32_t *prompt, size_t n_prompt, const hydra_spec_opts *opts,
                                 int32_t *out, size_t cap, size_t *n_out, hydra_spec_stats *stats);

/* ---- Speed measurement (the benchmark and claim 7 share it) ----
 * Median wall time of one single-token step of m after a prefill of
 * prompt[n] (steps >= 1 timed, after 3 warm-up steps). */
hydra_status hydra_spec_step_seconds(const hydra_model *m, const int32_t *prompt, size_t n, int steps,
                                     double *seconds);
/* Leviathan et al.'s expected speedup (1 - a^(k+1)) / ((1 - a)(c k + 1)). */
double hydra_spec_predicted_speedup(double alpha, double c, int k);

typedef struct {
    double plain_tps;     /* plain target generation, tokens/s (median of reps, prompt prefill included) */
    double spec_tps;      /* speculative generation, tokens/s, same prompts and settings */
    double speedup;       /* end to end (the same prefill in both): the median over repetitions of
                             each repetition's paired ratio plain time / speculative time */
    /* Decode only: generated tokens / (time - prompt prefill), medians of reps.
     * The prefill (identical work in both: the target's, plus the draft's
     * for speculative) is timed separately and excluded. decode_speedup is
     * the median of the per-repetition paired ratios, which load drift
     * between repetitions does not bias. */
    double plain_decode_tps, spec_decode_tps, decode_speedup;
    double decode_speedup_min, decode_speedup_max; /* range of the paired ratios */
    double plain_prefill_seconds, spec_prefill_seconds; /* medians, per prompt */
    double alpha, acceptance_rate, tokens_per_target_forward; /* pooled over the last repetition's prompts */
    size_t tokens;        /* tokens generated per repetition (all prompts) */
    hydra_spec_stats stats; /* the last repetition's counters and per-phase seconds, summed over prompts */
} hydra_spec_speed;

/* Times plain generation (hydra_generate with opts' sampling and seed) and
 * speculative generation with opts, reps times, interleaved so that load
 * drift hits both alike: each repetition runs every prompt plain, then
 * speculatively, and is one paired ratio. */
hydra_status hydra_spec_measure_speed(const hydra_model *target, const hydra_model *draft, const int32_t *prompt,
                                      size_t n_prompt, const hydra_spec_opts *opts, int reps, hydra_spec_speed *out);
/* The same over n_prompts prompts (1..16): a less prompt-specific alpha and speed. */
hydra_status hydra_spec_measure_speed_prompts(const hydra_model *target, const hydra_model *draft,
                                              const int32_t *const *prompts, const size_t *n_prompts, int n,
                                              const hydra_spec_opts *opts, int reps, hydra_spec_speed *out);

/* ---- Lower level: one round at a time (for tests, custom loops). ----
 * A session owns both models' states, the RNG (seeded from opts->seed) and
 * the snapshots. Invariant between rounds: each model's state has consumed
 * every committed token except a pending suffix (the target: the last
 * committed token; the draft: the last one or two), which the next round's
 * first forward consumes together with the new work. */
typedef struct hydra_spec_session hydra_spec_session;

hydra_status hydra_spec_session_create(const hydra_model *target, const hydra_model *draft,
                                       const hydra_spec_opts *opts, hydra_spec_session **out);
void hydra_spec_session_free(hydra_spec_session *s);
/* Resets both states and consumes the prompt (n >= 1). */
hydra_status hydra_spec_prefill(hydra_spec_session *s, const int32_t *prompt, size_t n);
/* One round with k_round draft tokens (1..opts.k; 0 = opts.k): writes the
 * 1..k_round+1 committed tokens to out[k_round + 1], their count to *n_out. */
hydra_status hydra_spec_round(hydra_spec_session *s, int k_round, int32_t *out, int *n_out);
/* States after every committed token (prompt included): copies of the
 * session's states with the pending tokens fed in. Either may be NULL. */
hydra_status hydra_spec_session_states(const hydra_spec_session *s, hydra_state *target_out,
                                       hydra_state *draft_out);
void hydra_spec_session_stats(const hydra_spec_session *s, hydra_spec_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_SPEC_H */
