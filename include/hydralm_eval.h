/*
 * hydralm_eval.h — synthetic tasks and evaluations: MQAR (multi-query
 * associative recall, Zoology protocol).
 */
#ifndef HYDRALM_EVAL_H
#define HYDRALM_EVAL_H

#include "hydralm_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MQAR: a sequence opens with n_pairs key-value pairs (keys from the first
 * half of the vocabulary, token 0 excluded; values from the second half),
 * then each key is queried once at a random position of the rest of the
 * sequence (key, then the model must produce its value). Loss and accuracy
 * count only the answer positions. Other positions hold filler token 0.
 * Queries are spread uniformly over the whole tail so that many answers lie
 * far beyond a sliding window: only a recurrent state can carry them. */
typedef struct {
    int vocab;   /* V; keys in [1, V/2), values in [V/2, V) */
    int seq_len; /* T (>= 4 * n_pairs) */
    int n_pairs; /* N key-value pairs, each queried once */
} hydra_mqar_opts;

typedef struct hydra_mqar hydra_mqar;
hydra_status hydra_mqar_create(const hydra_mqar_opts *o, hydra_mqar **out);
void hydra_mqar_free(hydra_mqar *t);
/* The task for the trainer; B and T passed to sample must equal (any, seq_len). */
hydra_task hydra_mqar_task(hydra_mqar *t);

/* Generate one batch, also returning for every scored position the distance
 * (in tokens) from the query back to its key-value pair (0 elsewhere). */
hydra_status hydra_mqar_sample(const hydra_mqar *t, hydra_rng *rng, int B, int32_t *inputs,
                               int32_t *targets, uint8_t *mask, int32_t *distance);

typedef struct {
    double accuracy;        /* argmax == value over all answers */
    double accuracy_beyond; /* over answers whose pair is more than `window` tokens back */
    double loss;            /* mean cross-entropy over answers */
    int64_t answers, answers_beyond;
} hydra_mqar_result;

/* Accuracy of m on n_batches x B fresh sequences drawn from seed. */
hydra_status hydra_mqar_eval(const hydra_model *m, const hydra_mqar *t, uint64_t seed, int n_batches,
                             int B, int window, hydra_mqar_result *out);

/* ------------------------------------------ recurring-segment stream
 * A synthetic stream with long-range structure, for length generalisation
 * (claim 1). A dictionary of n_slots segments of seg_len tokens is drawn per
 * stream (token i of a segment from its own band of w = (vocab - 1) / seg_len
 * ids, [1 + i w, 1 + (i + 1) w): for seg_len 2, "keys" and "values" as in
 * MQAR); the stream is a sequence of emissions
 * "0 s_1 .. s_S": each picks a slot uniformly and emits its segment; every
 * new_every-th emission first replaces the picked slot's segment with a fresh
 * random one. So most segments recur, at distances of about
 * n_slots * (seg_len + 1) tokens (beyond a short attention window), and a
 * model that remembers them predicts all but their first token; the fixed
 * renewal rate keeps the stream stationary (same statistics at position 300
 * and at position 30,000) with low variance in the per-window loss. */
typedef struct {
    int vocab;     /* V >= 3 */
    int n_slots;   /* D >= 1 */
    int seg_len;   /* S >= 1 */
    int new_every; /* >= 1; 1 = every emission is fresh (nothing to remember) */
    int score_recall_only; /* the task scores only the recallable positions: predicting a segment's
                              2nd..S-th token (not the delimiter, not the slot's first token) */
} hydra_segstream_opts;

/* 1 if predicting the token after `cur` (= `next`) is a recall position:
 * both are segment tokens (non-zero). */
static inline int hydra_segstream_is_recall(int32_t cur, int32_t next) { return cur != 0 && next != 0; }

/* Ids per band, w = (vocab - 1) / seg_len. */
int hydra_segstream_band(const hydra_segstream_opts *o);
/* n tokens of one stream drawn from rng (the stream starts at an emission). */
hydra_status hydra_segstream_generate(const hydra_segstream_opts *o, hydra_rng *rng, int32_t *out, size_t n);
/* Trainer task over independent streams of T+1 tokens; o must outlive it. */
hydra_task hydra_segstream_task(hydra_segstream_opts *o);

/* ------------------------------------------ planted long-range facts
 * A segstream background (seg_len 2: emissions "0 k v") with facts planted at
 * chosen token distances, to measure recall beyond the training length
 * (claim 1). Planted emissions use ids after the background's vocabulary:
 * a write "W k v" or a query "Q k v" (W = base.vocab, Q = base.vocab + 1, k one
 * of n_keys reserved ids from base.vocab + 2), v from the background's value
 * band. The background continues around them as if they were not there.
 * Every reserved key carries its own chain of facts (a write, then one query
 * whose answer is the written value, then the next fact): one fact per key is
 * alive at a time, so a query's answer is the value of its key's last write.
 * A fact's distance is the token distance from the write's key to the
 * query's key (a multiple of 3) and falls in bucket b = (hi[b-1], hi[b]]
 * (bucket 0: [3, hi[0]]). Each chain starts in the largest bucket that fits
 * the stream (odd keys one bucket lower), then walks down the buckets and
 * wraps to the largest that still fits, resting gap_max/2 emissions on
 * average between facts: long streams get facts in every bucket, a stream of
 * the training length only its short ones. */
#define HYDRA_PLANT_MAX_BUCKETS 8
typedef struct {
    hydra_segstream_opts base; /* the background; seg_len must be 2 */
    int n_keys;                /* reserved keys, 1..256, every one used in every stream */
    int n_buckets;             /* 1..HYDRA_PLANT_MAX_BUCKETS */
    int bucket_hi[HYDRA_PLANT_MAX_BUCKETS]; /* strictly increasing upper bounds (tokens), hi[0] >= 3 */
    int gap_max;               /* emissions resting between a key's facts: uniform in [0, gap_max] */
} hydra_plant_opts;

typedef struct {
    int32_t key, value;            /* token ids */
    int64_t write_pos, query_pos;  /* positions of the key token of the write / of the query */
    int bucket;                    /* of query_pos - write_pos */
} hydra_plant_fact;

/* Vocabulary of the stream: base.vocab + 2 + n_keys. */
int hydra_plant_vocab(const hydra_plant_opts *o);
/* The bucket of a distance in tokens, -1 outside every bucket. */
int hydra_plant_bucket(const hydra_plant_opts *o, int64_t distance);
/* n tokens of one stream from rng; facts (optional, cap entries) receives the
 * facts whose query lies inside the n tokens, in query order; *n_facts (optional)
 * their number (refused with HYDRA_ERR_ARG if more than cap). */
hydra_status hydra_plant_generate(const hydra_plant_opts *o, hydra_rng *rng, int32_t *out, size_t n,
                                  hydra_plant_fact *facts, int cap, int *n_facts);
/* What predicting tok[t + 1] from position t is (seg_len-2 background):
 * 1 a background recall (tok[t] a background key), 2 the answer of a planted
 * query (tok[t] a reserved key after Q), 0 anything else (delimiters, markers,
 * the unpredictable value of a planted write). */
int hydra_plant_position_kind(const hydra_plant_opts *o, const int32_t *tok, size_t t);
/* Trainer task over independent streams of T+1 tokens, scoring the
 * background recalls and the planted answers; o must outlive it. */
hydra_task hydra_plant_task(hydra_plant_opts *o);

/* ------------------------------------------------------ Markov-2 text
 * A stationary order-2 Markov source over [0, vocab): every context (a, b)
 * has one preferred next token (drawn from `seed`), emitted with probability
 * p_top, else a uniform token. Low-entropy text whose next token a small
 * model learns as well as a large one: the source of the speculative
 * decoding speed claim (claim 7). */
typedef struct {
    int vocab;      /* V in [2, 1024] */
    double p_top;   /* in [0, 1] */
    uint64_t seed;  /* the transition table */
} hydra_markov_opts;
typedef struct hydra_markov hydra_markov;
hydra_status hydra_markov_create(const hydra_markov_opts *o, hydra_markov **out);
void hydra_markov_free(hydra_markov *mk);
/* n tokens of one stream from rng (the first two uniform). */
hydra_status hydra_markov_generate(const hydra_markov *mk, hydra_rng *rng, int32_t *out, size_t n);
/* The preferred next token after (a, b). */
int32_t hydra_markov_preferred(const hydra_markov *mk, int32_t a, int32_t b);
hydra_task hydra_markov_task(hydra_markov *mk);

/* ------------------------------------------------ MQAR training recipe
 * Train a fresh model on MQAR with the project's trainer and evaluate its
 * accuracy every eval_every steps on fixed held-out batches (eval_seed):
 * the recipe behind claim 2, `hydra mqar` and the claim-6 model. */
typedef struct {
    int step;                 /* steps done when evaluated */
    double train_loss;        /* mean training loss since the previous point */
    hydra_mqar_result eval;   /* held-out accuracy at this step */
    double seconds;           /* wall time since the start of training */
} hydra_mqar_point;

/* One curriculum stage: an easier MQAR task trained before the main one. */
typedef struct {
    hydra_mqar_opts task;
    int steps, batch;
} hydra_mqar_stage;

#define HYDRA_MQAR_MAX_STAGES 3

typedef struct {
    hydra_config cfg;         /* model shape; vocab_size >= task.vocab */
    uint64_t init_seed;       /* model init */
    hydra_mqar_opts task;
    hydra_train_opts train;   /* optimizer, batch, data seed; train.seq is set to task.seq_len */
    int steps;                /* optimisation steps (the schedule's total) */
    int eval_every;           /* 0 = evaluate only at the end */
    int eval_batches, eval_batch; /* held-out set: eval_batches x eval_batch sequences */
    uint64_t eval_seed;
    int window;               /* accuracy_beyond counts answers more than this far from their pair */
    /* optional curriculum: n_stages easier tasks trained first, in order, each
     * with a fresh optimizer of the same settings (its own warmup and decay
     * over its steps); evaluation points (on the main task) count their steps */
    hydra_mqar_stage stages[HYDRA_MQAR_MAX_STAGES];
    int n_stages;
    /* optional: called at every evaluation point; return non-zero to stop early */
    int (*on_point)(const hydra_mqar_point *p, void *user);
    void *user;
    /* NULL or "cpu": train on the CPU; "cuda" / "cuda:N": the fresh model is
     * placed there (hydra_model_to_device, default precision) before training */
    const char *device;
} hydra_mqar_train_opts;

/* Sensible defaults for a task (eval 8 x 64 sequences, eval every steps/10). */
hydra_mqar_train_opts hydra_mqar_train_opts_default(void);
/* Trains, evaluates; *model_out (optional) receives the trained model (the
 * caller frees it); *final (optional) the last evaluation. */
hydra_status hydra_mqar_train(const hydra_mqar_train_opts *o, hydra_model **model_out, hydra_mqar_point *final);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_EVAL_H */
