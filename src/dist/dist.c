/* dist/dist.c: the MPI world of a data-parallel run — joining it only under mpirun, the
 * watchdog's wait, small collectives, agreeing on an error, and the simulated delay's spec. */
#include "dist_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int dist_open(dist **out, double timeout_s, base_err *e) {
    *out = NULL;
    if (!(timeout_s > 0))
        return base_fail(e, BASE_EINVAL, "the communication timeout must be > 0 s, got %g",
                         timeout_s);
    dist *d = calloc(1, sizeof *d);
    if (!d) return base_fail(e, BASE_ENOMEM, "out of memory");
    d->size = 1;
    d->timeout_s = timeout_s;
    d->comm = d->comm_rs = d->comm_ag = MPI_COMM_NULL;
    /* Only a process mpirun started joins MPI: a plain `hearth train` pays nothing for it
     * (Open MPI's singleton start forks a helper and takes ~0.4 s). */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK")) {
        /* Open MPI moves a non-blocking collective's bytes only inside MPI calls; hearth makes
         * one per backward stage, which over TCP left most of a bucket for the final wait.
         * The TCP transport's own progress thread (blocked in poll, not spinning) moves them
         * meanwhile: bench/dist_tail.sh's stall share 30-34% -> 19-21% with overlap. A value
         * the user set (environment, mpirun --mca) wins. */
        setenv("OMPI_MCA_btl_tcp_progress_thread", "1", 0);
        int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            free(d);
            return base_fail(e, BASE_EIO, "MPI_Init failed (code %d)", rc);
        }
        d->mpi = 1;
        MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
        MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
        MPI_Comm_dup(d->comm, &d->comm_rs); /* the error handler goes with the copy */
        MPI_Comm_dup(d->comm, &d->comm_ag);
        MPI_Comm_rank(d->comm, &d->rank);
        MPI_Comm_size(d->comm, &d->size);
    }
    *out = d;
    return BASE_OK;
}

void dist_close(dist *d) {
    if (!d) return;
    if (d->mpi) {
        MPI_Comm_free(&d->comm_rs);
        MPI_Comm_free(&d->comm_ag);
        MPI_Comm_free(&d->comm);
        MPI_Finalize();
    }
    free(d);
}

void dist_abort(dist *d, int code) {
    if (d && d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int dist_rank(const dist *d) {
    return d->rank;
}
int dist_size(const dist *d) {
    return d->size;
}
int dist_in_mpi(const dist *d) {
    return d->mpi;
}

int dist_mpi_fail(const dist *d, int mpi_rc, const char *what, base_err *e) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(mpi_rc, msg, &len);
    return base_fail(e, BASE_EIO,
                     "rank %d: %s failed: %s (another rank has probably died; every rank stops)",
                     d->rank, what, msg);
}

int dist_wait(dist *d, MPI_Request *reqs, int n, const char *what, base_err *e) {
    double t0 = base_now();
    struct timespec nap = {0, 20000}; /* 20 us: a waiting rank leaves the core to others */
    for (long spins = 0;; spins++) {
        int done = 0, rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(d, rc, what, e);
        if (done) return BASE_OK;
        if (base_now() - t0 > d->timeout_s)
            return base_fail(e, BASE_EIO,
                             "rank %d: %s has not completed after %.0f s: another rank has died "
                             "or hangs; stopping (--comm-timeout; rerun to resume from the newest "
                             "good checkpoint)",
                             d->rank, what, d->timeout_s);
        if (spins > 64) nanosleep(&nap, NULL);
    }
}

int dist_bcast(dist *d, void *buf, size_t bytes, int root, const char *what, base_err *e) {
    if (d->size == 1) return BASE_OK;
    /* in pieces of at most 1 GiB: MPI counts are ints */
    for (size_t at = 0; at < bytes;) {
        size_t k = bytes - at < (1u << 30) ? bytes - at : (1u << 30);
        MPI_Request r;
        int rc = MPI_Ibcast((char *)buf + at, (int)k, MPI_BYTE, root, d->comm, &r);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(d, rc, what, e);
        if ((rc = dist_wait(d, &r, 1, what, e))) return rc;
        at += k;
    }
    return BASE_OK;
}

int dist_allgather(dist *d, const void *send, void *recv, size_t bytes, const char *what,
                   base_err *e) {
    if (d->size == 1) {
        memmove(recv, send, bytes);
        return BASE_OK;
    }
    if (bytes > (1u << 30))
        return base_fail(e, BASE_EINVAL, "%s: %zu bytes is too many", what, bytes);
    MPI_Request r;
    int rc = MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, d->comm, &r);
    if (rc != MPI_SUCCESS) return dist_mpi_fail(d, rc, what, e);
    return dist_wait(d, &r, 1, what, e);
}

int dist_agree(dist *d, int rc, base_err *e) {
    if (d->size == 1) return rc;
    int *all = malloc((size_t)d->size * sizeof(int));
    if (!all) return base_fail(e, BASE_ENOMEM, "out of memory");
    base_err mine = *e;
    int arc = dist_allgather(d, &rc, all, sizeof rc, "agreeing on the ranks' status", e);
    int first = -1;
    for (int r = 0; !arc && r < d->size && first < 0; r++)
        if (all[r] != BASE_OK) first = r;
    if (!arc && first >= 0) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", mine.msg);
        arc = dist_bcast(d, msg, sizeof msg, first, "sending a rank's error", e);
        if (!arc) {
            if (first == d->rank)
                *e = mine;
            else
                base_fail(e, all[first], "rank %d: %s", first, msg);
            arc = all[first];
        }
    }
    free(all);
    return arc;
}

int dist_delay_parse(const char *s, dist_delay *out, base_err *e) {
    double v[4] = {0, 0, 0, 0};
    int n = 0;
    const char *p = s;
    while (n < 4) {
        char *end;
        errno = 0;
        v[n] = strtod(p, &end);
        if (end == p || errno || !(v[n] >= 0) || v[n] > 1e6) break;
        n++;
        p = end;
        if (*p != ':') break;
        p++;
    }
    if (*p || n == 0 || n == 3 || (n == 4 && v[2] > 1) || (p > s && p[-1] == ':'))
        return base_fail(e, BASE_EINVAL,
                         "simulated delay '%s': expected MEAN[:JITTER[:P:SPIKE]] in milliseconds, "
                         "non-negative, P a probability (e.g. 1:0.5 or 0:0:0.01:50)",
                         s);
    *out = (dist_delay){v[0], v[1], v[2], v[3]};
    return BASE_OK;
}
