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

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_EVAL_H */
