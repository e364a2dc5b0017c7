/* comm_nccl.h — the CLI's communicator for GPU ranks (tools/comm_nccl.c):
 * the host collectives of another hydra_comm (MPI's under mpirun, or the
 * one-process communicator below) plus the device gradient sums through
 * NCCL. Built when CMake finds CUDA with nccl.h (HYDRA_HAVE_NCCL); NCCL's
 * library (libnccl.so.2) is loaded at run time, so a hydra without it runs
 * everything else and says what is missing only when GPU ranks are asked for. */
#ifndef HYDRA_COMM_NCCL_H
#define HYDRA_COMM_NCCL_H

#include <stddef.h>

#include "hydralm_dist.h"

/* 1 if this hydra was built with the NCCL communicator. */
int cli_nccl_built(void);
/* A communicator of one process (rank 0 of 1): every collective leaves its
 * buffer as it is, which is the sum over one rank. */
hydra_comm cli_comm_self(void);
/* *out = host's collectives + NCCL device sums among host->size ranks, this
 * one on CUDA device `device` (rank 0 makes the NCCL id, host->bcast hands
 * it out). timeout_s > 0: a device sum that has not finished after that
 * many seconds aborts the NCCL communicator and fails (a rank died or
 * hung). Collective over host's ranks. 0, or -1 with a message in err. */
int cli_nccl_init(const hydra_comm *host, int device, double timeout_s, hydra_comm *out, char *err, size_t errn);
/* Releases what cli_nccl_init made (out's ctx); the host communicator stays. */
void cli_nccl_free(hydra_comm *c);

#endif
