/* comm_mpi.c — hydra_comm over MPI for CPU ranks (`mpirun -np N hydra train`).
 *
 * Why MPI: it starts the ranks on one or many hosts, and its collectives
 * (OpenMPI's tuned allreduce, reduce-scatter, all-gather) are what the field
 * uses; the library only sees the hydra_comm table, so a NCCL communicator
 * for GPU ranks can replace this one without touching the trainer.
 *
 * Failure behaviour: MPI_ERRORS_RETURN turns a failed call into an error the
 * trainer reports; a rank that dies makes mpirun end the job (its SIGTERM to
 * the survivors is reported by a handler here); a rank that hangs is caught
 * by a watchdog thread: a collective waiting longer than the timeout ends
 * this process with a message and exit 1, and mpirun ends the rest. MPI has
 * no portable timeout on a blocking collective, hence the watchdog. */
#include "comm_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_mpi_launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 0;
}

#ifndef HYDRA_HAVE_MPI
int cli_mpi_built(void) { return 0; }
int cli_mpi_init(int *argc, char ***argv, double timeout_s, hydra_comm *out, int *local_size) {
    (void)argc, (void)argv, (void)timeout_s, (void)out, (void)local_size;
    fprintf(stderr, "hydra: this build has no MPI (install libopenmpi-dev and rebuild; docs/distributed.md)\n");
    return -1;
}
void cli_mpi_finalize(void) {}
#else

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static char g_err[MPI_MAX_ERROR_STRING + 64];
static int g_rank, g_size;
static double g_timeout;
static _Atomic(double) g_since;           /* start of the collective in progress, 0 = none */
static const char *_Atomic g_op = "";     /* its name */
static char g_term_msg[160];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void enter(const char *op) {
    atomic_store(&g_op, op);
    atomic_store(&g_since, now());
}

/* Ends a collective: 0, or -1 with the MPI error text kept for error(). */
static int leave(int rc) {
    atomic_store(&g_since, 0.0);
    if (rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    snprintf(g_err, sizeof g_err, "MPI: %s", s);
    return -1;
}

static const char *mpi_error(void *ctx) {
    (void)ctx;
    return g_err;
}

static int too_big(size_t n) {
    if (n <= (size_t)INT_MAX) return 0;
    snprintf(g_err, sizeof g_err, "a block of %zu elements exceeds MPI's int counts", n);
    return 1;
}

#define CHUNK ((size_t)1 << 30)
static int allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, const char *op) {
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        enter(op);
        if (leave(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * elem, (int)k, type, MPI_SUM, MPI_COMM_WORLD)))
            return -1;
    }
    return 0;
}
static int mpi_allreduce_f32(void *ctx, float *buf, size_t n) {
    (void)ctx;
    return allreduce(buf, n, MPI_FLOAT, sizeof(float), "MPI_Allreduce (float)");
}
static int mpi_allreduce_f64(void *ctx, double *buf, size_t n) {
    (void)ctx;
    return allreduce(buf, n, MPI_DOUBLE, sizeof(double), "MPI_Allreduce (double)");
}

/* int counts and displacements for the v-collectives; NULL on overflow. */
static int *int_counts(const size_t *counts, int **displs) {
    int *c = malloc(2 * (size_t)g_size * sizeof(int));
    if (!c) {
        snprintf(g_err, sizeof g_err, "out of memory");
        return NULL;
    }
    size_t off = 0;
    *displs = c + g_size;
    for (int r = 0; r < g_size; r++) {
        if (too_big(counts[r]) || too_big(off)) {
            free(c);
            return NULL;
        }
        c[r] = (int)counts[r];
        (*displs)[r] = (int)off;
        off += counts[r];
    }
    return c;
}

/* The two v-collectives over the rank blocks of buf: a reduce-scatter
 * (sum; in place MPI leaves this rank's block at the start of buf, so it
 * is moved to its place) or an all-gather. */
static int blocks(float *buf, const size_t *counts, int gather) {
    int *displs, *c = int_counts(counts, &displs);
    if (!c) return -1;
    int rc;
    if (gather) {
        enter("MPI_Allgatherv (weights)");
        rc = leave(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, c, displs, MPI_FLOAT, MPI_COMM_WORLD));
    } else {
        enter("MPI_Reduce_scatter (gradients)");
        rc = leave(MPI_Reduce_scatter(MPI_IN_PLACE, buf, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        if (rc == 0 && displs[g_rank] > 0) memmove(buf + displs[g_rank], buf, counts[g_rank] * sizeof(float));
    }
    free(c);
    return rc;
}
static int mpi_reduce_scatter_f32(void *ctx, float *buf, const size_t *counts) {
    (void)ctx;
    return blocks(buf, counts, 0);
}
static int mpi_allgather_f32(void *ctx, float *buf, const size_t *counts) {
    (void)ctx;
    return blocks(buf, counts, 1);
}

static int mpi_gather_f32(void *ctx, const float *block, float *full, const size_t *counts, int root) {
    (void)ctx;
    int *displs, *c = int_counts(counts, &displs);
    if (!c) return -1;
    enter("MPI_Gatherv (optimizer state)");
    int rc = leave(MPI_Gatherv(block, c[g_rank], MPI_FLOAT, full, c, displs, MPI_FLOAT, root, MPI_COMM_WORLD));
    free(c);
    return rc;
}

static int mpi_bcast(void *ctx, void *buf, size_t n, int root) {
    (void)ctx;
    if (too_big(n)) return -1;
    enter("MPI_Bcast");
    return leave(MPI_Bcast(buf, (int)n, MPI_BYTE, root, MPI_COMM_WORLD));
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        usleep(200 * 1000);
        double since = atomic_load(&g_since);
        if (since > 0 && now() - since > g_timeout) {
            char msg[400];
            int n = snprintf(msg, sizeof msg,
                             "hydra (rank %d of %d): %s has waited more than %.0f s for the other ranks "
                             "(--comm-timeout): a rank has died or hung; ending this rank so mpirun ends the job\n",
                             g_rank, g_size, atomic_load(&g_op), g_timeout);
            if (write(2, msg, (size_t)n) < 0) { /* nothing more to do */ }
            _exit(1);
        }
    }
    return NULL;
}

static void on_term(int sig) {
    (void)sig;
    if (write(2, g_term_msg, strlen(g_term_msg)) < 0) { /* exiting anyway */ }
    _exit(143);
}

int cli_mpi_built(void) { return 1; }

int cli_mpi_init(int *argc, char ***argv, double timeout_s, hydra_comm *out, int *local_size) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "hydra: MPI_Init failed\n");
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    *local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, local_size);
        MPI_Comm_free(&node);
    }
    snprintf(g_term_msg, sizeof g_term_msg,
             "hydra (rank %d of %d): stopped by the launcher (another rank failed or the job was cancelled)\n",
             g_rank, g_size);
    signal(SIGTERM, on_term);
    g_timeout = timeout_s;
    if (timeout_s > 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, watchdog, NULL) == 0) pthread_detach(th);
    }
    hydra_comm c = {g_rank, g_size, NULL, mpi_allreduce_f32, mpi_allreduce_f64, mpi_reduce_scatter_f32,
                    mpi_allgather_f32, mpi_gather_f32, mpi_bcast, mpi_error,
                    NULL, NULL, NULL}; /* no device collectives: CPU ranks (GPU ranks add NCCL's, comm_nccl.c) */
    *out = c;
    return 0;
}

void cli_mpi_finalize(void) {
    g_timeout = 0;
    atomic_store(&g_since, 0.0);
    MPI_Finalize();
}
#endif
