/* comm_nccl.c — hydra_comm for GPU ranks: NCCL sums the gradients on the
 * devices, another communicator (MPI under mpirun; cli_comm_self in one
 * process) does the small host collectives (losses, start-up checks, the
 * checkpoint gather) and hands out the NCCL id.
 *
 * Why NCCL: it is the engine the field uses between GPUs (NVLink, PCIe,
 * InfiniBand), its sums give every rank the same bits, and CUDA 13 ships it.
 * It is loaded with dlopen (libnccl.so.2) rather than linked: the library is
 * 200 MB and only GPU ranks need it, so a hydra without it still runs
 * everything else and names what is missing when GPU ranks are asked for.
 *
 * Overlap: each device sum is queued on this communicator's own stream
 * after an event recorded on the model's stream, so layer l's gradients are
 * summed while the backward computes layer l-1's; dev_wait makes the model's
 * stream wait for all of them and polls for completion with a timeout, since
 * a NCCL collective whose peer died would otherwise wait forever. */
#include "comm_nccl.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------- one-process communicator */
static int self_f32(void *ctx, float *buf, size_t n) { return (void)ctx, (void)buf, (void)n, 0; }
static int self_f64(void *ctx, double *buf, size_t n) { return (void)ctx, (void)buf, (void)n, 0; }
static int self_blocks(void *ctx, float *buf, const size_t *counts) { return (void)ctx, (void)buf, (void)counts, 0; }
static int self_gather(void *ctx, const float *block, float *full, const size_t *counts, int root) {
    (void)ctx, (void)root;
    if (full != block) memmove(full, block, counts[0] * sizeof(float));
    return 0;
}
static int self_bcast(void *ctx, void *buf, size_t n, int root) { return (void)ctx, (void)buf, (void)n, (void)root, 0; }
static const char *self_error(void *ctx) { return (void)ctx, ""; }

hydra_comm cli_comm_self(void) {
    hydra_comm c = {0, 1, NULL, self_f32, self_f64, self_blocks, self_blocks, self_gather, self_bcast, self_error,
                    NULL, NULL, NULL};
    return c;
}

#ifndef HYDRA_HAVE_NCCL
int cli_nccl_built(void) { return 0; }
int cli_nccl_init(const hydra_comm *host, int device, double timeout_s, hydra_comm *out, char *err, size_t errn) {
    (void)host, (void)device, (void)timeout_s, (void)out;
    snprintf(err, errn, "this hydra was built without CUDA/NCCL: GPU ranks need a build with CUDA (docs/gpu.md)");
    return -1;
}
void cli_nccl_free(hydra_comm *c) { (void)c; }
#else

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The NCCL entry points used, resolved from libnccl.so.2 once. */
static struct {
    void *lib;
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*async_error)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*abort)(ncclComm_t);
    ncclResult_t (*destroy)(ncclComm_t);
    const char *(*error_string)(ncclResult_t);
    ncclResult_t (*version)(int *);
} N;

static int load_nccl(char *err, size_t errn) {
    if (N.lib) return 0;
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errn, "cannot load NCCL (libnccl.so.2: %s); GPU ranks need it: put CUDA's lib64 (or a NCCL "
                            "install) on LD_LIBRARY_PATH", dlerror());
        return -1;
    }
#define SYM(f, name)                                                                           \
    if (!(*(void **)&N.f = dlsym(lib, name))) {                                                \
        snprintf(err, errn, "libnccl.so.2 lacks %s (NCCL too old?)", name);                    \
        dlclose(lib);                                                                          \
        return -1;                                                                             \
    }
    SYM(get_unique_id, "ncclGetUniqueId");
    SYM(init_rank, "ncclCommInitRank");
    SYM(all_reduce, "ncclAllReduce");
    SYM(broadcast, "ncclBroadcast");
    SYM(group_start, "ncclGroupStart");
    SYM(group_end, "ncclGroupEnd");
    SYM(async_error, "ncclCommGetAsyncError");
    SYM(abort, "ncclCommAbort");
    SYM(destroy, "ncclCommDestroy");
    SYM(error_string, "ncclGetErrorString");
    SYM(version, "ncclGetVersion");
#undef SYM
    N.lib = lib;
    return 0;
}

typedef struct {
    hydra_comm host;      /* the host collectives */
    ncclComm_t comm;
    int device;
    cudaStream_t side;    /* the sums run here, beside the model's stream */
    cudaEvent_t ready, done;
    double timeout;
    char err[320];
} nccl_ctx;

static int fail(nccl_ctx *c, const char *what, const char *why) {
    snprintf(c->err, sizeof c->err, "%s: %s", what, why);
    return -1;
}
/* After an abort (a timeout or a failed rank) every later collective fails with the reason kept in err. */
#define LIVE_OR_FAIL(c) \
    do { \
        if (!(c)->comm) return -1; \
    } while (0)
#define CUDA_OR_FAIL(c, what, call)                                   \
    do {                                                              \
        cudaError_t e_ = (call);                                      \
        if (e_ != cudaSuccess) return fail(c, what, cudaGetErrorString(e_)); \
    } while (0)

static int dev_allreduce(void *ctx, float *dbuf, size_t n, void *stream) {
    nccl_ctx *c = ctx;
    LIVE_OR_FAIL(c);
    CUDA_OR_FAIL(c, "NCCL all-reduce", cudaSetDevice(c->device));
    CUDA_OR_FAIL(c, "NCCL all-reduce", cudaEventRecord(c->ready, (cudaStream_t)stream));
    CUDA_OR_FAIL(c, "NCCL all-reduce", cudaStreamWaitEvent(c->side, c->ready, 0));
    ncclResult_t r = N.all_reduce(dbuf, dbuf, n, ncclFloat32, ncclSum, c->comm, c->side);
    return r == ncclSuccess ? 0 : fail(c, "ncclAllReduce", N.error_string(r));
}

/* The weights' all-gather of ZeRO-1 on GPU ranks: the ranks' blocks differ
 * in size (Muon matrices stay whole), and ncclAllGather wants equal ones, so
 * each owner broadcasts its block, the broadcasts grouped into one launch. */
static int dev_allgather(void *ctx, float *dbuf, const size_t *counts, void *stream) {
    nccl_ctx *c = ctx;
    LIVE_OR_FAIL(c);
    CUDA_OR_FAIL(c, "NCCL all-gather", cudaSetDevice(c->device));
    CUDA_OR_FAIL(c, "NCCL all-gather", cudaEventRecord(c->ready, (cudaStream_t)stream));
    CUDA_OR_FAIL(c, "NCCL all-gather", cudaStreamWaitEvent(c->side, c->ready, 0));
    ncclResult_t r = N.group_start();
    size_t off = 0;
    for (int k = 0; r == ncclSuccess && k < c->host.size; k++) {
        if (counts[k]) r = N.broadcast(dbuf + off, dbuf + off, counts[k], ncclFloat32, k, c->comm, c->side);
        off += counts[k];
    }
    ncclResult_t e = N.group_end();
    if (r == ncclSuccess) r = e;
    return r == ncclSuccess ? 0 : fail(c, "NCCL all-gather (ncclBroadcast)", N.error_string(r));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dev_wait(void *ctx, void *stream) {
    nccl_ctx *c = ctx;
    LIVE_OR_FAIL(c);
    CUDA_OR_FAIL(c, "NCCL wait", cudaSetDevice(c->device));
    CUDA_OR_FAIL(c, "NCCL wait", cudaEventRecord(c->done, c->side));
    CUDA_OR_FAIL(c, "NCCL wait", cudaStreamWaitEvent((cudaStream_t)stream, c->done, 0));
    const double t0 = now();
    for (long spin = 0;; spin++) {
        cudaError_t e = cudaEventQuery(c->done);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) return fail(c, "NCCL wait", cudaGetErrorString(e));
        ncclResult_t ar = ncclSuccess;
        if (N.async_error(c->comm, &ar) == ncclSuccess && ar != ncclSuccess && ar != ncclInProgress) {
            N.abort(c->comm);
            c->comm = NULL;
            return fail(c, "NCCL (a rank failed?)", N.error_string(ar));
        }
        if (c->timeout > 0 && now() - t0 > c->timeout) {
            char why[128];
            snprintf(why, sizeof why, "no result after %.0f s (--comm-timeout): a rank has died or hung", c->timeout);
            N.abort(c->comm);
            c->comm = NULL;
            return fail(c, "NCCL gradient sum", why);
        }
        if (spin > 1000) usleep(50); /* spin briefly: the last layers' sums end soon after the backward */
    }
}

/* The host collectives go to the wrapped communicator. */
#define HOST(c) (&((nccl_ctx *)(c))->host)
static int h_allreduce_f32(void *ctx, float *b, size_t n) { return HOST(ctx)->allreduce_f32(HOST(ctx)->ctx, b, n); }
static int h_allreduce_f64(void *ctx, double *b, size_t n) { return HOST(ctx)->allreduce_f64(HOST(ctx)->ctx, b, n); }
static int h_reduce_scatter(void *ctx, float *b, const size_t *k) {
    return HOST(ctx)->reduce_scatter_f32(HOST(ctx)->ctx, b, k);
}
static int h_allgather(void *ctx, float *b, const size_t *k) { return HOST(ctx)->allgather_f32(HOST(ctx)->ctx, b, k); }
static int h_gather(void *ctx, const float *b, float *f, const size_t *k, int root) {
    return HOST(ctx)->gather_f32(HOST(ctx)->ctx, b, f, k, root);
}
static int h_bcast(void *ctx, void *b, size_t n, int root) { return HOST(ctx)->bcast(HOST(ctx)->ctx, b, n, root); }
static const char *h_error(void *ctx) {
    nccl_ctx *c = ctx;
    return c->err[0] ? c->err : c->host.error ? c->host.error(c->host.ctx) : "";
}

int cli_nccl_built(void) { return 1; }

int cli_nccl_init(const hydra_comm *host, int device, double timeout_s, hydra_comm *out, char *err, size_t errn) {
    memset(out, 0, sizeof *out);
    /* NVLink multicast (NVLS) off unless the caller asked for it: on shared GPU hosts a program using it
     * can take the host's GPUs out of service (the lent machines require it off); NCCL reads it at init */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    if (load_nccl(err, errn)) return -1;
    nccl_ctx *c = calloc(1, sizeof *c);
    if (!c) return snprintf(err, errn, "out of memory"), -1;
    c->host = *host;
    c->device = device;
    c->timeout = timeout_s;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = ncclSuccess;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming);
    if (e == cudaSuccess && host->rank == 0) r = N.get_unique_id(&id);
    /* every rank takes part in the broadcast, even one whose set-up failed (it then fails below) */
    int brc = host->bcast(host->ctx, &id, sizeof id, 0);
    if (e == cudaSuccess && r == ncclSuccess && brc == 0) r = N.init_rank(&c->comm, host->size, id, host->rank);
    if (e != cudaSuccess || r != ncclSuccess || brc != 0) {
        snprintf(err, errn, "NCCL set-up on cuda:%d (rank %d of %d) failed: %s", device, host->rank, host->size,
                 e != cudaSuccess ? cudaGetErrorString(e)
                 : brc != 0       ? "broadcast of the NCCL id failed"
                                  : N.error_string(r));
        hydra_comm tmp = {0};
        tmp.ctx = c;
        cli_nccl_free(&tmp);
        return -1;
    }
    hydra_comm o = {host->rank, host->size, c, h_allreduce_f32, h_allreduce_f64, h_reduce_scatter, h_allgather,
                    h_gather, h_bcast, h_error, dev_allreduce, dev_wait, dev_allgather};
    *out = o;
    return 0;
}

void cli_nccl_free(hydra_comm *comm) {
    nccl_ctx *c = comm ? comm->ctx : NULL;
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->side) cudaStreamSynchronize(c->side);
    if (c->comm) N.destroy(c->comm);
    if (c->ready) cudaEventDestroy(c->ready);
    if (c->done) cudaEventDestroy(c->done);
    if (c->side) cudaStreamDestroy(c->side);
    free(c);
    comm->ctx = NULL;
}
#endif
