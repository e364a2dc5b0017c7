/* dist_internal.h — the data-parallel half of the trainer (dist.c): rows
 * per rank, gradient/loss averaging, the ZeRO-1 update, cross-rank checks.
 * trainer.c holds one hydra_dp per data-parallel trainer (NULL otherwise). */
#ifndef HYDRA_DIST_INTERNAL_H
#define HYDRA_DIST_INTERNAL_H

#include "backend/backend.h"
#include "hydralm_dist.h"

typedef struct {
    hydra_comm c;
    int shard;         /* ZeRO-1 on */
    uint64_t data_id;
    size_t *bounds;    /* [size+1]: rank r's shard is [bounds[r], bounds[r+1]) of the arena */
    size_t *counts;    /* [size]: bounds[r+1] - bounds[r] */
    double comm_s;     /* seconds inside collectives */
} hydra_dp;

/* Validates d and the global batch (divisible by the world size) and
 * computes the shard bounds. */
hydra_status hydra_dp_create(const hydra_dist_opts *d, const hydra_model *m, const hydra_train_opts *o,
                             hydra_dp **out);
void hydra_dp_free(hydra_dp *dp);
/* This rank's rows [*row0, *row0 + *b) of a global batch of B rows. */
void hydra_dp_rows(const hydra_dp *dp, int B, int *row0, int *b);
/* After this rank's loss_grad: global loss and scored count, gradients
 * averaged (weighted by scored positions), then the optimizer update —
 * replicated, or on this rank's shard followed by an all-gather of weights. */
hydra_status hydra_dp_step(hydra_dp *dp, hydra_optimizer *opt, hydra_model *m, float *grads, double *loss,
                           int64_t *scored, float *grad_norm, float *lr);
/* GPU ranks: this rank's loss and gradients of its b rows (n_total scored
 * positions in the global batch), each layer's gradients summed across ranks
 * on the device (hydra_comm's dev_allreduce_f32) while the backward goes on,
 * then the global loss and the optimizer update on the device. */
hydra_status hydra_dp_step_device(hydra_dp *dp, hydra_optimizer *opt, hydra_model *m, const int32_t *inputs,
                                  const int32_t *targets, const uint8_t *mask, int b, int T, int64_t n_total,
                                  double *loss, int64_t *scored, float *grad_norm, float *lr);
/* A GPU rank's communicator must have the device collectives (and, with
 * ZeRO-1, the device all-gather): checked when the trainer is made with the
 * model on a GPU, and at each step (the model may move there later). */
hydra_status hydra_dp_device_check(const hydra_comm *c, int shard, const hydra_model *m);
/* hydra_model_loss_grad on a GPU with a data-parallel rank's options
 * (backend.h): gradients stay on the device (model/train.c). */
hydra_status hydra_model_loss_grad_dp(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                      const uint8_t *mask, int B, int T, const hydra_dev_grad_opts *dp,
                                      double *loss, int64_t *n_scored);
/* Element-wise sum of x[n] over ranks. */
hydra_status hydra_dp_sum(hydra_dp *dp, double *x, size_t n);
/* full[n_params] on rank 0 (NULL elsewhere) from each rank's shard local[count]. */
hydra_status hydra_dp_gather(hydra_dp *dp, const float *local, float *full);
/* The start-up checks (see hydra_trainer_create_dist). */
hydra_status hydra_dp_check(hydra_dp *dp, const hydra_model *m, const char *opts_json, int64_t step,
                            uint64_t batch_hash);
/* 1 if the weights are bit-identical on every rank, else an error. */
hydra_status hydra_dp_check_weights(hydra_dp *dp, const hydra_model *m);
/* 1 if every operation is set and 0 <= rank < size. */
int hydra_dp_comm_valid(const hydra_comm *c);
/* Collective agreement on a local status: if any rank's st failed, every
 * rank returns an error (its own message, or one naming the failed ranks). */
hydra_status hydra_dist_agree(const hydra_comm *c, hydra_status st, const char *what);

#endif
