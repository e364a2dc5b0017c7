/* dist.c — data parallelism for the trainer over a hydra_comm (MPI on CPU
 * ranks in the CLI; NCCL for GPU ranks later): which rows of a batch a rank
 * trains on, gradient and loss averaging, the ZeRO-1 sharded update, and the
 * checks that every rank starts from the same config, data and weights.
 *
 * GPU ranks (hydra_dp_step_device): the gradient arena stays on the device;
 * the loss is scaled by the global count of scored positions (known on
 * every rank: each draws the whole batch), so each rank's gradients are its
 * share of the global mean and the ranks' sum is the step's gradient. Each
 * layer's sum across ranks is queued as soon as the backward finishes that
 * layer (the communicator's own stream), overlapping the layers still to
 * go. At world size 1 the scale is this rank's own count: the plain GPU
 * trainer's bits. ZeRO-1 on GPU ranks keeps those all-reduces (the summed
 * gradient everywhere, the overlap intact), updates this rank's range with
 * its moments only, and all-gathers the master weights on the device.
 *
 * Averaging: rank r's gradient is of its mean loss over n_r scored
 * positions; the global gradient of the mean over n = Σ n_r positions is
 * Σ (n_r / n) · g_r — each rank scales by n_r / n, then the sum is reduced.
 *
 * ZeRO-1: the arena is split into `size` contiguous ranges (Muon matrices
 * whole, hydra_optim_partition). A step reduce-scatters the gradients (each
 * rank gets the sum over its range), computes the global norm from the
 * per-range sums of squares, updates its range with its own moments, and
 * all-gathers the weights (for a Muon matrix that is the owner broadcasting
 * its orthogonalised update). Every update is element-wise or per whole
 * matrix, so the result equals the replicated update to rounding of the
 * norm. */
#include <math.h>

#include "core/internal.h"
#include "train/dist_internal.h"
#include "train/optim_internal.h"

/* Run one collective, time it, turn a failure into a status. */
#define COMM(dp, what, call)                                                                             \
    do {                                                                                                 \
        double t0_ = hydra_now_seconds();                                                                \
        int rc_ = (call);                                                                                \
        (dp)->comm_s += hydra_now_seconds() - t0_;                                                       \
        if (rc_ != 0) return comm_error(&(dp)->c, what);                                                 \
    } while (0)

static hydra_status comm_error(const hydra_comm *c, const char *what) {
    const char *why = c->error ? c->error(c->ctx) : NULL;
    return hydra_set_error(HYDRA_ERR_IO, "rank %d of %d: %s failed: %s", c->rank, c->size, what,
                           why && *why ? why : "communicator error");
}

int hydra_dp_comm_valid(const hydra_comm *c) {
    return c && c->size >= 1 && c->rank >= 0 && c->rank < c->size && c->allreduce_f32 && c->allreduce_f64 &&
           c->reduce_scatter_f32 && c->allgather_f32 && c->gather_f32 && c->bcast;
}

hydra_status hydra_dp_create(const hydra_dist_opts *d, const hydra_model *m, const hydra_train_opts *o,
                             hydra_dp **out) {
    *out = NULL;
    if (!hydra_dp_comm_valid(d->comm))
        return hydra_set_error(HYDRA_ERR_ARG, "data-parallel trainer: the communicator is incomplete or its rank/size invalid");
    const int size = d->comm->size;
    if (o->batch % size != 0)
        return hydra_set_error(HYDRA_ERR_ARG,
                               "data-parallel trainer: the global batch %d does not divide by %d ranks "
                               "(each rank trains on batch/ranks sequences)", o->batch, size);
    hydra_dp *dp = calloc(1, sizeof *dp);
    if (!dp) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    dp->c = *d->comm;
    dp->shard = d->shard_optimizer != 0;
    dp->data_id = d->data_id;
    dp->bounds = calloc((size_t)size + 1, sizeof *dp->bounds);
    dp->counts = calloc((size_t)size, sizeof *dp->counts);
    hydra_status st = (!dp->bounds || !dp->counts) ? hydra_set_error(HYDRA_ERR_NOMEM, "out of memory")
                                                   : hydra_optim_partition(m, &o->optim, size, dp->bounds);
    if (st != HYDRA_OK) {
        hydra_dp_free(dp);
        return st;
    }
    for (int r = 0; r < size; r++) dp->counts[r] = dp->bounds[r + 1] - dp->bounds[r];
    *out = dp;
    return HYDRA_OK;
}

void hydra_dp_free(hydra_dp *dp) {
    if (!dp) return;
    free(dp->bounds);
    free(dp->counts);
    free(dp);
}

void hydra_dp_rows(const hydra_dp *dp, int B, int *row0, int *b) {
    *b = B / dp->c.size;
    *row0 = dp->c.rank * *b;
}

hydra_status hydra_dp_sum(hydra_dp *dp, double *x, size_t n) {
    COMM(dp, "allreduce", dp->c.allreduce_f64(dp->c.ctx, x, n));
    return HYDRA_OK;
}

hydra_status hydra_dp_step(hydra_dp *dp, hydra_optimizer *opt, hydra_model *m, float *grads, double *loss,
                           int64_t *scored, float *grad_norm, float *lr) {
    const size_t N = m->n_params;
    double tot[2] = {*loss * (double)*scored, (double)*scored};
    HYDRA_CHECK(hydra_dp_sum(dp, tot, 2));
    const float w = tot[1] > 0 ? (float)((double)*scored / tot[1]) : 0.0f;
    *loss = tot[1] > 0 ? tot[0] / tot[1] : 0.0;
    *scored = (int64_t)tot[1];
#pragma omp parallel for schedule(dynamic, 8192) if (N > 32768)
    for (size_t i = 0; i < N; i++) grads[i] *= w;
    if (!dp->shard) {
        COMM(dp, "allreduce of the gradients", dp->c.allreduce_f32(dp->c.ctx, grads, N));
        return hydra_optimizer_step(opt, m, grads, grad_norm, lr);
    }
    COMM(dp, "reduce-scatter of the gradients", dp->c.reduce_scatter_f32(dp->c.ctx, grads, dp->counts));
    double sumsq = hydra_optimizer_grad_sumsq(opt, grads);
    HYDRA_CHECK(hydra_dp_sum(dp, &sumsq, 1));
    HYDRA_CHECK(hydra_optimizer_apply(opt, m, grads, sumsq, grad_norm, lr));
    COMM(dp, "all-gather of the weights", dp->c.allgather_f32(dp->c.ctx, m->params, dp->counts));
    return HYDRA_OK;
}

hydra_status hydra_dp_device_check(const hydra_comm *c, int shard, const hydra_model *m) {
    if (!c->dev_allreduce_f32 || !c->dev_wait)
        return hydra_set_error(HYDRA_ERR_DEVICE, "rank %d of %d: the model lives on %s, but the communicator has no "
                               "device collectives (GPU ranks need NCCL: docs/distributed.md)", c->rank, c->size,
                               hydra_model_device(m));
    if (shard && !c->dev_allgather_f32)
        return hydra_set_error(HYDRA_ERR_DEVICE, "rank %d of %d: --shard-optimizer on GPU ranks needs a communicator "
                               "with a device all-gather (NCCL's)", c->rank, c->size);
    return HYDRA_OK;
}

/* grad_ready of a GPU rank's backward: the range's sum across ranks is
 * queued beside the rest of the backward (hydra_dev_grad_opts). */
typedef struct {
    hydra_dp *dp;
    float *grads; /* the device gradient arena */
    void *stream;
} dev_ready_ctx;

static hydra_status dev_ready(void *ctx, size_t off, size_t n) {
    dev_ready_ctx *r = ctx;
    COMM(r->dp, "all-reduce of the gradients (device)",
         r->dp->c.dev_allreduce_f32(r->dp->c.ctx, r->grads + off, n, r->stream));
    return HYDRA_OK;
}

hydra_status hydra_dp_step_device(hydra_dp *dp, hydra_optimizer *opt, hydra_model *m, const int32_t *inputs,
                                  const int32_t *targets, const uint8_t *mask, int b, int T, int64_t n_total,
                                  double *loss, int64_t *scored, float *grad_norm, float *lr) {
    HYDRA_CHECK(hydra_dp_device_check(&dp->c, dp->shard, m));
    dev_ready_ctx r = {dp, NULL, hydra_dev_stream(m)};
    float *P;
    HYDRA_CHECK(hydra_dev_train_arenas(m, &P, &r.grads));
    const hydra_dev_grad_opts g = {n_total, dev_ready, &r};
    HYDRA_CHECK(hydra_model_loss_grad_dp(m, inputs, targets, mask, b, T, &g, loss, scored));
    COMM(dp, "the gradient sums (device)", dp->c.dev_wait(dp->c.ctx, r.stream));
    double tot[2] = {*loss * (double)*scored, (double)*scored};
    HYDRA_CHECK(hydra_dp_sum(dp, tot, 2));
    *loss = tot[1] > 0 ? tot[0] / tot[1] : 0.0;
    *scored = (int64_t)tot[1];
    if (!dp->shard) return hydra_optimizer_step(opt, m, NULL, grad_norm, lr);
    /* ZeRO-1: every rank holds the summed gradient (the layer sums above are
     * all-reduces, so the backward overlap stays); each updates its range
     * with its own moments, then the owners' ranges go to every rank. */
    double sumsq = 0;
    HYDRA_CHECK(hydra_optimizer_grad_sumsq_device(opt, m, &sumsq));
    HYDRA_CHECK(hydra_dp_sum(dp, &sumsq, 1));
    HYDRA_CHECK(hydra_optimizer_apply_device(opt, m, sumsq, grad_norm, lr));
    COMM(dp, "all-gather of the weights (device)", dp->c.dev_allgather_f32(dp->c.ctx, P, dp->counts, r.stream));
    COMM(dp, "all-gather of the weights (device)", dp->c.dev_wait(dp->c.ctx, r.stream));
    return hydra_dev_train_sync(m);
}

hydra_status hydra_dp_gather(hydra_dp *dp, const float *local, float *full) {
    COMM(dp, "gather of the optimizer state", dp->c.gather_f32(dp->c.ctx, local, full, dp->counts, 0));
    return HYDRA_OK;
}

hydra_status hydra_dist_agree(const hydra_comm *c, hydra_status st, const char *what) {
    double *bad = calloc((size_t)c->size, sizeof *bad);
    if (!bad) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    bad[c->rank] = st != HYDRA_OK;
    int rc = c->allreduce_f64(c->ctx, bad, (size_t)c->size);
    if (rc != 0) {
        free(bad);
        return comm_error(c, what);
    }
    char ranks[128] = "";
    size_t len = 0;
    int nbad = 0;
    for (int r = 0; r < c->size; r++)
        if (bad[r] != 0.0 && len + 16 < sizeof ranks) {
            len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", nbad ? ", " : "", r);
            nbad++;
        }
    free(bad);
    if (st != HYDRA_OK) return st; /* keep this rank's own message */
    if (nbad == 0) return HYDRA_OK;
    return hydra_set_error(HYDRA_ERR_IO, "rank %d of %d: %s failed on rank%s %s (see their message)", c->rank,
                           c->size, what, nbad > 1 ? "s" : "", ranks);
}

/* ------------------------------------------------------ start-up checks */
enum { CK_CONFIG, CK_OPTS, CK_WEIGHTS, CK_STEP, CK_DATA, CK_BATCH, CK_SHARD, CK_N };
static const char *const ck_name[CK_N] = {
    "the model config", "the training options", "the model weights (init seed or checkpoint)",
    "the step to start from", "the data (size)", "the data (first batch)", "--shard-optimizer"};

static uint64_t str_hash(const char *s) { return hydra_fnv1a(HYDRA_FNV_OFFSET, s, strlen(s)); }

hydra_status hydra_dp_check(hydra_dp *dp, const hydra_model *m, const char *opts_json, int64_t step,
                            uint64_t batch_hash) {
    char *cfg = NULL;
    HYDRA_CHECK(hydra_config_to_json(&m->cfg, &cfg));
    uint64_t mine[CK_N] = {str_hash(cfg), str_hash(opts_json), hydra_model_fingerprint(m), (uint64_t)step,
                           dp->data_id, batch_hash, (uint64_t)dp->shard};
    hydra_free(cfg);
    uint64_t root[CK_N];
    memcpy(root, mine, sizeof root);
    COMM(dp, "broadcast of the start-up check", dp->c.bcast(dp->c.ctx, root, sizeof root, 0));
    double differ[CK_N];
    for (int i = 0; i < CK_N; i++) differ[i] = mine[i] != root[i];
    HYDRA_CHECK(hydra_dp_sum(dp, differ, CK_N));
    char msg[768];
    size_t len = 0;
    for (int i = 0; i < CK_N && len + 160 < sizeof msg; i++) {
        if (differ[i] == 0.0) continue;
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s (%d rank%s from rank 0%s)",
                                len ? "; " : "", ck_name[i], (int)differ[i], differ[i] > 1 ? "s differ" : " differs",
                                mine[i] != root[i] ? ", this one among them" : "");
    }
    if (len == 0) return HYDRA_OK;
    return hydra_set_error(HYDRA_ERR_MISMATCH,
                           "rank %d of %d: the ranks disagree on %s; every rank must run the same command on the "
                           "same data and checkpoint", dp->c.rank, dp->c.size, msg);
}

hydra_status hydra_dp_check_weights(hydra_dp *dp, const hydra_model *m) {
    uint64_t fp = hydra_model_fingerprint(m), root = fp;
    COMM(dp, "broadcast of the weights' fingerprint", dp->c.bcast(dp->c.ctx, &root, sizeof root, 0));
    double differ = fp != root;
    HYDRA_CHECK(hydra_dp_sum(dp, &differ, 1));
    if (differ == 0.0) return HYDRA_OK;
    return hydra_set_error(HYDRA_ERR_MISMATCH,
                           "rank %d of %d: the weights differ between ranks (%d rank(s) from rank 0's): the "
                           "reductions did not give every rank the same bits", dp->c.rank, dp->c.size, (int)differ);
}
