/* dist: data-parallel training's communication, over MPI (Open MPI from Debian). The only module
 * that includes mpi.h. Two parts:
 *  - the world (dist.c): a process launched by mpirun joins MPI_COMM_WORLD; any other process is
 *    a world of one that never touches MPI (no singleton start-up cost). Small collectives
 *    (broadcast, all-gather, agreeing on an error) run non-blocking under a watchdog: one that
 *    has not completed after the timeout fails with a message naming it, so a rank that died or
 *    hangs stops every other rank in bounded time instead of leaving them waiting for ever.
 *  - the gradient reducer (grads.c): the model's gradients cut into buckets that become final in
 *    backward order (head, layer L-1 ... layer 0, embeddings); each bucket's reduction starts as
 *    soon as the backward hook says it is final (non-blocking, progressed at each later hook,
 *    overlapping the rest of the backward) as an all-to-all of pieces: rank j receives piece j
 *    of the bucket from every rank and sums them in rank order (a reduce-scatter whose order
 *    is fixed, unlike MPI_SUM's), then an all-gather returns the sums (plain data parallel) or,
 *    with ZeRO-1, each rank updates its pieces' parameters with its shard of the AdamW state and
 *    the parameters are all-gathered. Rank-order sums of micro-batch gradients are what
 *    one process's gradient accumulation does, so N ranks equal one process with N times the
 *    accumulation, bit for bit. The gradient norm is summed over fixed chunks in a fixed order
 *    (dist_grads_norm), the same for any rank count and thread count.
 * Handles are opaque; dist_open/dist_close and dist_grads_create/dist_grads_free pair up. */
#ifndef HEARTH_DIST_H
#define HEARTH_DIST_H

#include "base/base.h"
#include "nn/nn.h"
#include "optim/optim.h"

typedef struct dist dist;

/* Joins the MPI world when the process was started by mpirun (OMPI_COMM_WORLD_SIZE or
 * PMIX_RANK set), else makes a world of one without MPI. timeout_s: the watchdog on every
 * collective (> 0). */
int dist_open(dist **out, double timeout_s, base_err *e);
void dist_close(dist *d); /* MPI_Finalize when in MPI; NULL is fine */
/* Ends every rank of the job now (MPI_Abort) when in MPI with more than one rank; returns
 * otherwise. For a rank that failed alone: the others must not wait for it. */
void dist_abort(dist *d, int code);
int dist_rank(const dist *d);
int dist_size(const dist *d);
int dist_in_mpi(const dist *d);

/* Blocking collectives under the watchdog. what names the collective in a timeout message. */
int dist_bcast(dist *d, void *buf, size_t bytes, int root, const char *what, base_err *e);
/* recv gets every rank's `bytes` bytes in rank order. */
int dist_allgather(dist *d, const void *send, void *recv, size_t bytes, const char *what,
                   base_err *e);
/* Agrees on a status: every rank passes its rc (and e holding its message when rc != 0); all
 * return the lowest failing rank's rc, with its message in e (prefixed with its rank when it is
 * not this rank's own); BASE_OK when none failed. A failure of the agreement itself is that. */
int dist_agree(dist *d, int rc, base_err *e);

/* The simulated delay of the tail-latency experiment (a test option, not the network): each
 * collective of the reducer counts as complete no earlier than a drawn delay after it started:
 * mean_ms + jitter_ms * u (u uniform in [-1, 1], clamped at 0), plus spike_ms with probability
 * spike_p. Drawn from (seed, step, the collective's number), so every rank holds a collective
 * for the same time, as a slow link would. All zero: none. */
typedef struct dist_delay {
    double mean_ms, jitter_ms, spike_p, spike_ms;
} dist_delay;
/* Parses "MEAN[:JITTER[:P:SPIKE]]" (milliseconds; P a probability). */
int dist_delay_parse(const char *s, dist_delay *out, base_err *e);

typedef struct dist_grads_opts {
    int zero;         /* 1: ZeRO-1 (optimizer state sharded) */
    int overlap;      /* start a bucket's reduction when the backward hook says it is final;
                         0: all after the backward (the experiment's "overlap off") */
    double bucket_mb; /* the least size of a bucket (stages are merged up to it) */
    dist_delay delay; /* simulated delay (all zero: none) */
    uint64_t seed;    /* the delay's draws */
} dist_grads_opts;

/* What one step's communication cost this rank. */
typedef struct dist_step_stats {
    double comm_ms;  /* wall time with at least one of the step's collectives in flight */
    double stall_ms; /* time the training thread waited for communication: what the backward
                        did not hide, plus the collectives that nothing overlaps */
    uint64_t bytes;  /* bytes this rank sent */
} dist_step_stats;

typedef struct dist_grads dist_grads;

/* A reducer for m's gradients over d's world (a world of one: no communication, the fixed-order
 * norm and accumulation still apply). With adapters attached (m->lora, the base frozen) the
 * gradients, parameters and the AdamW state are the adapters' (one bucket, reduced after the
 * backward: they are small). With o->zero the optimizer state is this rank's shard:
 * create it with dist_grads_shard_size floats. m's bwd_hook is set while a micro-batch runs. */
int dist_grads_create(dist_grads **out, dist *d, nn_model *m, const dist_grads_opts *o,
                      base_err *e);
void dist_grads_free(dist_grads *g);
size_t dist_grads_shard_size(const dist_grads *g); /* floats of AdamW state per moment */
int dist_grads_buckets(const dist_grads *g);
size_t dist_grads_comm_bytes(const dist_grads *g); /* the reducer's buffers */

/* One step: for each micro-batch a (0 <= a < A): dist_grads_micro_begin, nn_backward (the
 * hook starts the buckets), dist_grads_micro_end; then dist_grads_norm, dist_grads_scale (when
 * clipping), dist_grads_step (AdamW), dist_grads_stats. Micro-batch gradients are summed in
 * (a, rank) order, which is the order of one process accumulating ranks x A micro-batches
 * whose k-th is a * ranks + rank. step: the 0-based optimizer step (the delay's draws). */
void dist_grads_micro_begin(dist_grads *g, long step, int a, int A);
int dist_grads_micro_end(dist_grads *g, base_err *e);
/* The global L2 norm of the summed gradient: double sums over fixed chunks of each parameter
 * tensor's layer slices, added in offset order. */
int dist_grads_norm(dist_grads *g, float *norm, base_err *e);
void dist_grads_scale(dist_grads *g, float s);
/* AdamW on the summed gradient (plain: every parameter; ZeRO-1: this rank's pieces, then the
 * parameters all-gathered). opt was created for dist_grads_shard_size floats under ZeRO-1. */
int dist_grads_step(dist_grads *g, optim_adamw *opt, float lr, base_err *e);
void dist_grads_stats(dist_grads *g, dist_step_stats *s); /* this step's, then reset */

/* ZeRO-1 state to and from the full layout (a checkpoint holds it whole): gather every rank's
 * shard of opt into full (n_params floats per moment, rank 0 only; NULL elsewhere), or scatter
 * full (rank 0) into every rank's shard. Plain data parallel: full is opt's own state, and
 * scatter broadcasts it. */
int dist_grads_gather_state(dist_grads *g, const optim_adamw *opt, optim_adamw *full, base_err *e);
int dist_grads_scatter_state(dist_grads *g, const optim_adamw *full, optim_adamw *opt, base_err *e);

#endif
