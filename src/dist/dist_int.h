/* dist/dist_int.h: private to src/dist — the world's fields and the watchdog's wait, which the
 * reducer (grads.c) shares with the world's own collectives (dist.c). */
#ifndef HEARTH_DIST_INT_H
#define HEARTH_DIST_INT_H

#include "dist.h"

#include <mpi.h>

struct dist {
    int rank, size, mpi; /* mpi: MPI_Init was called */
    MPI_Comm comm;       /* a duplicate of MPI_COMM_WORLD whose errors return (not abort) */
    /* the reducer's (grads.c): its reduce-scatters and its all-gathers, each on its own
     * communicator (made here, at start, so no later step has a blocking collective) */
    MPI_Comm comm_rs, comm_ag;
    double timeout_s;
};

/* Fails with the MPI error's text, naming what. */
int dist_mpi_fail(const dist *d, int mpi_rc, const char *what, base_err *e);
/* Waits for n requests, testing them and sleeping a little between tests; fails when they have
 * not completed after the watchdog's timeout (a rank died or hangs), naming what. */
int dist_wait(dist *d, MPI_Request *reqs, int n, const char *what, base_err *e);

#endif
