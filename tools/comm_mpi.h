/* comm_mpi.h — the CLI's MPI communicator for data-parallel training
 * (tools/comm_mpi.c): a hydra_comm over MPI_COMM_WORLD with a watchdog on
 * every collective. Built when CMake finds MPI (HYDRA_HAVE_MPI); without it
 * cli_mpi_init reports that the build has no MPI. */
#ifndef HYDRA_COMM_MPI_H
#define HYDRA_COMM_MPI_H

#include "hydralm_dist.h"

/* World size announced by an MPI launcher's environment (mpirun / mpiexec:
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX size), 0 when not launched by one. */
int cli_mpi_launched_size(void);
/* 1 if this hydra was built with MPI. */
int cli_mpi_built(void);
/* MPI_Init + communicator. timeout_s > 0: a collective that waits longer
 * than that ends this process with a message (exit 1, so the launcher ends
 * the job); a SIGTERM from the launcher (another rank failed) prints which
 * rank stopped and why. *local_size = ranks on this host. 0 on success;
 * otherwise a message is on stderr. */
int cli_mpi_init(int *argc, char ***argv, double timeout_s, hydra_comm *out, int *local_size);
void cli_mpi_finalize(void);

#endif
