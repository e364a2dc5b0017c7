/*
 * hydralm_dist.h — data-parallel training across processes (and, later,
 * GPUs) without tying libhydralm to a transport.
 *
 * The library holds the data-parallel logic: which rows of every batch a
 * rank trains on, the averaging of gradients and losses, the ZeRO-1 split
 * of the optimizer state, the cross-rank checks at start and the gathering
 * of shards into one checkpoint. The transport is a hydra_comm: a table of
 * collective operations the caller supplies. The hydra CLI implements it
 * with MPI (tools/comm_mpi.c); a NCCL communicator for GPU ranks (device
 * pointers, the NCCL id broadcast through MPI) fills the same table. So the
 * library links neither MPI nor NCCL, and never exits or prints: a failed
 * collective becomes a status and a message.
 *
 * Every function below that takes a trainer with a communicator is
 * collective: every rank calls it, in the same order.
 */
#ifndef HYDRALM_DIST_H
#define HYDRALM_DIST_H

#include "hydralm_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator: rank in [0, size), and collectives over all ranks. Each
 * operation returns 0 on success, non-zero on failure (then error(ctx) says
 * why). Sums must give the same bits on every rank (MPI's and NCCL's
 * reductions do for commutative + on identical inputs order). The counts
 * arrays have `size` entries; rank r's block starts at the sum of the
 * counts before r. */
typedef struct {
    int rank, size;
    void *ctx;
    /* buf[n] = the element-wise sum of every rank's buf[n] */
    int (*allreduce_f32)(void *ctx, float *buf, size_t n);
    int (*allreduce_f64)(void *ctx, double *buf, size_t n);
    /* in: buf = this rank's full vector (sum of counts floats); out: this
     * rank's block of buf holds the element-wise sum over ranks of that
     * block (the rest of buf is undefined) */
    int (*reduce_scatter_f32)(void *ctx, float *buf, const size_t *counts);
    /* in: this rank's block of buf; out: every block, from its owner */
    int (*allgather_f32)(void *ctx, float *buf, const size_t *counts);
    /* every rank's block (counts[rank] floats) into full[] on root only
     * (full is unused elsewhere) */
    int (*gather_f32)(void *ctx, const float *block, float *full, const size_t *counts, int root);
    /* root's n bytes to every rank */
    int (*bcast)(void *ctx, void *buf, size_t n, int root);
    const char *(*error)(void *ctx);
    /* GPU ranks (optional; a CPU communicator such as MPI's leaves them NULL,
     * and a data-parallel trainer whose model lives on a GPU then refuses to
     * start). dbuf is a device array on the GPU of this rank's model; the
     * sum is queued after the work already on `stream` (the model's CUDA
     * stream, a cudaStream_t) and may run beside later work on it, so the
     * backward can go on while earlier layers' gradients are reduced.
     * dev_wait makes `stream` wait for every sum queued so far and returns
     * its failure, if any (within the communicator's timeout). The NCCL
     * communicator of the CLI fills these (tools/comm_nccl.c). */
    int (*dev_allreduce_f32)(void *ctx, float *dbuf, size_t n, void *stream);
    int (*dev_wait)(void *ctx, void *stream);
    /* in: this rank's block of dbuf (device); out: every block, from its
     * owner (counts as for allgather_f32). Only --shard-optimizer on GPU
     * ranks uses it (NULL: that combination is refused). */
    int (*dev_allgather_f32)(void *ctx, float *dbuf, const size_t *counts, void *stream);
} hydra_comm;

typedef struct {
    const hydra_comm *comm; /* NULL: one process (the plain trainer) */
    int shard_optimizer;    /* 1: ZeRO-1 — each rank keeps the optimizer state of its
                               range of the parameters (Muon matrices whole) */
    uint64_t data_id;       /* the caller's identity of the data (e.g. its size in bytes);
                               checked equal across ranks at start, 0 = not checked */
} hydra_dist_opts;

/* Data-parallel trainer. opts->batch is the GLOBAL batch: each of the
 * `size` ranks trains on batch/size rows of it (rank r: rows
 * [r·b, (r+1)·b)), so N ranks with --batch B compute the same step as one
 * process with --batch B, to rounding. Every rank draws the positions of the
 * whole batch from the shared data stream (cheap), so the stream's state —
 * and a checkpoint — does not depend on the number of ranks.
 * Checks across ranks before returning (all ranks fail alike, with a
 * message naming what differs): model config, training options, initial
 * weights, step, data_id and a hash of the first batch. */
hydra_status hydra_trainer_create_dist(hydra_model *m, hydra_task task, const hydra_train_opts *o,
                                       const hydra_dist_opts *d, hydra_trainer **out);
/* Every rank reads dir (a shared or copied directory), takes its shard of
 * the saved optimizer state (any number of ranks can resume any
 * checkpoint; the global batch must divide by it) and runs the same checks.
 * With the same number of ranks the continuation is bit-exact. */
hydra_status hydra_trainer_resume_dist(const char *dir, hydra_task task, const hydra_dist_opts *d,
                                       hydra_model **model_out, hydra_trainer **out);
/* hydra_trainer_step / _eval / _save are collective on a data-parallel
 * trainer: the step averages gradients (allreduce, or reduce-scatter +
 * all-gather of the weights when sharded), the eval averages losses, and
 * save gathers the optimizer shards on rank 0, which alone writes the usual
 * checkpoint (same files, atomic); the others only take part. */

/* Bytes this rank holds for training: parameters, gradients, optimizer
 * state (its shard when sharded), batch buffers. Activations not included. */
size_t hydra_trainer_memory_bytes(const hydra_trainer *t);
/* Seconds spent in communication (collectives) since the trainer was made. */
double hydra_trainer_comm_seconds(const hydra_trainer *t);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_DIST_H */
