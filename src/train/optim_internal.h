/* optim_internal.h — the optimizer pieces the data-parallel trainer
 * (dist.c) needs beyond the public API: an optimizer over one range of the
 * parameter arena (a ZeRO-1 shard), the split of the arena into such
 * ranges, and the update with a gradient norm computed across ranks. */
#ifndef HYDRA_OPTIM_INTERNAL_H
#define HYDRA_OPTIM_INTERNAL_H

#include "hydralm_train.h"

/* An optimizer that updates only the arena range [lo, hi) and keeps moment
 * buffers for that range only (hydra_optimizer_buffer then reports hi - lo
 * floats). A Muon matrix must lie wholly inside or outside the range. */
hydra_status hydra_optimizer_create_range(const hydra_model *m, const hydra_optim_opts *o, size_t lo,
                                          size_t hi, hydra_optimizer **out);
void hydra_optimizer_range(const hydra_optimizer *opt, size_t *lo, size_t *hi);
/* Bytes of optimizer state this optimizer holds (moments + Muon workspace). */
size_t hydra_optimizer_state_bytes(const hydra_optimizer *opt);
/* Sum of squares of grads over the optimizer's range (deterministic, double). */
double hydra_optimizer_grad_sumsq(const hydra_optimizer *opt, const float *grads);
/* hydra_optimizer_step with the squared global gradient norm given (the sum
 * over every range): clips and updates grads/params inside the range only. */
hydra_status hydra_optimizer_apply(hydra_optimizer *opt, hydra_model *m, float *grads, double grad_sumsq,
                                   float *grad_norm, float *lr_used);
/* The same two for a model on a GPU (ZeRO-1 on GPU ranks, dist.c): the
 * range's sum of squares of the device gradients, and the update of the
 * range's device master weights. The forward's copies are not refreshed:
 * the caller gathers every range first, then hydra_dev_train_sync. */
hydra_status hydra_optimizer_grad_sumsq_device(hydra_optimizer *opt, const hydra_model *m, double *sumsq);
hydra_status hydra_optimizer_apply_device(hydra_optimizer *opt, hydra_model *m, double grad_sumsq, float *grad_norm,
                                          float *lr_used);
/* Splits the arena into n ranges of about equal size, bounds[0] = 0 ...
 * bounds[n] = n_params; a bound that would cut a Muon matrix (under o) moves
 * to the matrix's nearer edge, so Muon matrices go whole to one rank while
 * AdamW tensors split anywhere. */
hydra_status hydra_optim_partition(const hydra_model *m, const hydra_optim_opts *o, int n, size_t *bounds);

#endif
