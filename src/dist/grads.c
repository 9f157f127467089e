/* dist/grads.c: the gradient reducer of data-parallel training — the layout (spans of each
 * parameter tensor's layer slices, cut into chunks; buckets of stages in backward order; each
 * bucket's pieces, one a rank), the buckets' non-blocking reductions started from the backward
 * hook, the fixed-order norm, AdamW over a ZeRO-1 shard, and the measured cost. */
#include "dist_int.h"

#include "nn/lora.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Chunks of at most this many floats: the norm's unit (one double sum each, added in offset
 * order) and the grain of the pieces, so no chunk is split between ranks. */
#define CHUNK 16384

typedef struct chunk {
    size_t goff, len; /* in params / grads */
    size_t poff;      /* in the bucket's packed buffer */
    int id;           /* the chunk's place in offset order: the norm adds partial sums so */
    int decay;
} chunk;

/* A bucket's life in a micro-batch: its reduce-scatter in flight, then its sum made; on the
 * last micro-batch of plain data parallel, its all-gather. */
enum { IDLE, RS, SUMMED, AG, DONE };

typedef struct bucket {
    int ci_last; /* the bucket is final after the stage whose completion index this is */
    int c0, c1;  /* its chunks, g->ch[c0..c1), in packed order */
    size_t S;    /* packed floats */
    int *pc;     /* (N+1) piece j is chunks pc[j]..pc[j+1] (relative to c0) */
    int *cnt, *dsp, *rcnt, *rdsp; /* (N) MPI counts and displacements, floats */
    size_t P;                     /* this rank's piece: floats */
    size_t shard_off;
    float *send; /* (S) the packed gradient; then the all-gather's result */
    float *recv; /* (N * P) every rank's copy of this rank's piece */
    float *acc;  /* (P) the piece summed over ranks and micro-batches (ZeRO-1: the shard's grads) */
    MPI_Request req;
    int state, mpi_done;
    double ready_at; /* the simulated delay: not complete before this */
} bucket;

struct dist_grads {
    dist *d;
    nn_model *m;
    /* what is trained: m's parameters, or its adapters' when m->lora is attached (then one
     * stage, reduced after the backward) */
    float *params, *grads;
    size_t n_params;
    const nn_tensor *tensors;
    int n_tensors;
    dist_grads_opts o;
    int N, rank, zero; /* zero: ZeRO-1 across more than one rank */
    /* Non-blocking collectives on one communicator must start in the same order on every
     * rank: reduce-scatters go on d->comm_rs, started in bucket order by the hook; all-gathers
     * on d->comm_ag, started in bucket order (next_ag) as their sums become ready — whichever
     * reduce-scatter a rank sees finish first. */
    int next_ag;
    chunk *ch;
    int nch;
    bucket *b;
    int nb;
    size_t shard;                   /* floats of this rank's shard (ZeRO-1), else n_params */
    double *partial;                /* (nch) the norm's chunk sums, by id */
    int *own_n, *own_dsp, *own_ids; /* ZeRO-1 norm: chunks each rank holds, their ids */
    double *own_vals;
    float *accfull; /* one process, accumulation > 1: (n_params) the running sum */
    /* the step in progress */
    long step;
    int a, A, coll;
    int inflight;
    double busy_since;
    dist_step_stats st;
    base_err herr; /* an MPI failure seen in the hook, reported by micro_end */
    int hrc;
};

/* ---- layout */

typedef struct span {
    size_t off, len;
    int decay;
} span;

static const nn_tensor *tensor_at(const nn_model *m, size_t off) {
    for (int i = 0; i < m->n_tensors; i++)
        if (off >= m->tensors[i].offset && off < m->tensors[i].offset + m->tensors[i].numel)
            return &m->tensors[i];
    return NULL;
}

/* The spans of stage ci (completion index: 0 head and final norm, 1 + (L-1-l) layer l, L+1
 * the embeddings) into sp; returns their number. */
static int stage_spans(const dist_grads *gr, int ci, span *sp) {
    const nn_model *m = gr->m;
    const nn_config *c = &m->cfg;
    if (m->lora) { /* the adapters: every tensor in one stage (the last) */
        if (ci != c->n_layer + 1) return 0;
        for (int i = 0; i < gr->n_tensors; i++) {
            const nn_tensor *t = &gr->tensors[i];
            sp[i] = (span){t->offset, t->numel, t->decay};
        }
        return gr->n_tensors;
    }
    int L = c->n_layer, n = 0;
    float *base = m->grads;
    const nn_params *g = &m->gt;
    float *whole[3] = {NULL, NULL, NULL};
    if (ci == 0)
        whole[0] = g->lnfw, whole[1] = g->lnfb, whole[2] = g->lm_head;
    else if (ci == L + 1)
        whole[0] = g->wte, whole[1] = g->wpe;
    if (ci == 0 || ci == L + 1) {
        for (int i = 0; i < 3; i++)
            if (whole[i]) {
                const nn_tensor *t = tensor_at(m, (size_t)(whole[i] - base));
                sp[n++] = (span){t->offset, t->numel, t->decay};
            }
        return n;
    }
    int l = L - ci;
    nn_layer w = nn_params_layer(g, c, l);
    float *f[] = {w.ln1w, w.ln1b, w.qkvw, w.qkvb, w.attprojw, w.attprojb,
                  w.ln2w, w.ln2b, w.fcw,  w.fcb,  w.fcprojw,  w.fcprojb};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i]) {
            size_t off = (size_t)(f[i] - base);
            const nn_tensor *t = tensor_at(m, off);
            sp[n++] = (span){off, t->numel / (size_t)L, t->decay};
        }
    return n;
}

static int cmp_goff(const void *x, const void *y) {
    const chunk *a = *(const chunk *const *)x, *b = *(const chunk *const *)y;
    return a->goff < b->goff ? -1 : a->goff > b->goff;
}

static int layout(dist_grads *g, base_err *e) {
    const nn_model *m = g->m;
    int L = m->cfg.n_layer, N = g->N, r = g->rank;
    span sp[sizeof m->lora->tensors / sizeof m->lora->tensors[0]];
    /* chunks in completion order, stage by stage; buckets of stages up to bucket_mb */
    size_t cap = g->n_params / CHUNK + (size_t)(L + 2) * 16 + 1, total = 0;
    if (m->lora) cap += (size_t)g->n_tensors;
    g->ch = calloc(cap, sizeof *g->ch);
    g->b = calloc((size_t)L + 2, sizeof *g->b);
    if (!g->ch || !g->b) return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t min_floats = (size_t)(g->o.bucket_mb * 1048576.0 / sizeof(float));
    bucket *cur = NULL;
    for (int ci = 0; ci <= L + 1; ci++) {
        if (!cur) {
            cur = &g->b[g->nb++];
            cur->c0 = g->nch;
        }
        int ns = stage_spans(g, ci, sp);
        for (int s = 0; s < ns; s++) {
            total += sp[s].len;
            for (size_t at = 0; at < sp[s].len; at += CHUNK) {
                chunk *c = &g->ch[g->nch++];
                c->goff = sp[s].off + at;
                c->len = sp[s].len - at < CHUNK ? sp[s].len - at : CHUNK;
                c->poff = cur->S;
                c->decay = sp[s].decay;
                cur->S += c->len;
            }
        }
        cur->ci_last = ci;
        cur->c1 = g->nch;
        /* the embeddings always end a bucket; so does a bucket of bucket_mb */
        if ((cur->S >= min_floats && cur->S > 0) || ci == L + 1) cur = NULL;
    }
    if (total != g->n_params)
        return base_fail(e, BASE_EINVAL, "dist: the gradient layout covers %zu of %zu parameters",
                         total, g->n_params);
    /* ids: offset order */
    chunk **by = malloc((size_t)g->nch * sizeof *by);
    if (!by) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (int i = 0; i < g->nch; i++) by[i] = &g->ch[i];
    qsort(by, (size_t)g->nch, sizeof *by, cmp_goff);
    for (int i = 0; i < g->nch; i++) by[i]->id = i;
    free(by);
    g->partial = calloc((size_t)g->nch, sizeof(double));
    g->own_n = calloc((size_t)N, sizeof(int));
    g->own_dsp = calloc((size_t)N, sizeof(int));
    g->own_ids = calloc((size_t)g->nch, sizeof(int));
    g->own_vals = calloc((size_t)g->nch, sizeof(double));
    if (!g->partial || !g->own_n || !g->own_dsp || !g->own_ids || !g->own_vals)
        return base_fail(e, BASE_ENOMEM, "out of memory");
    if (N == 1) {
        g->shard = g->n_params;
        return BASE_OK;
    }
    /* pieces: piece j starts at the first chunk whose packed start is at least j S / N */
    g->shard = 0;
    for (int k = 0; k < g->nb; k++) {
        bucket *b = &g->b[k];
        if (b->S > INT_MAX)
            return base_fail(e, BASE_EINVAL, "dist: a bucket of %zu floats is too large", b->S);
        int nc = b->c1 - b->c0;
        b->pc = calloc((size_t)N + 1, sizeof(int));
        b->cnt = calloc((size_t)N, sizeof(int)), b->dsp = calloc((size_t)N, sizeof(int));
        b->rcnt = calloc((size_t)N, sizeof(int)), b->rdsp = calloc((size_t)N, sizeof(int));
        if (!b->pc || !b->cnt || !b->dsp || !b->rcnt || !b->rdsp)
            return base_fail(e, BASE_ENOMEM, "out of memory");
        int c = 0;
        for (int j = 0; j <= N; j++) {
            if (j == N) {
                c = nc;
            } else {
                while (c < nc && (double)g->ch[b->c0 + c].poff * N < (double)j * (double)b->S) c++;
            }
            b->pc[j] = c;
        }
        for (int j = 0; j < N; j++) {
            size_t lo = b->pc[j] < nc ? g->ch[b->c0 + b->pc[j]].poff : b->S;
            size_t hi = b->pc[j + 1] < nc ? g->ch[b->c0 + b->pc[j + 1]].poff : b->S;
            b->cnt[j] = (int)(hi - lo);
            b->dsp[j] = (int)lo;
        }
        b->P = (size_t)b->cnt[r];
        for (int j = 0; j < N; j++) b->rcnt[j] = (int)b->P, b->rdsp[j] = (int)(b->P * (size_t)j);
        b->shard_off = g->shard;
        g->shard += b->P;
        b->send = base_alloc_floats(b->S ? b->S : 1);
        b->recv = base_alloc_floats(b->P * (size_t)N + 1);
        b->acc = base_alloc_floats(b->P + 1);
        if (!b->send || !b->recv || !b->acc) return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    /* the ZeRO-1 norm's gather: rank j's chunk ids, bucket by bucket */
    int at = 0;
    for (int j = 0; j < N; j++) {
        g->own_dsp[j] = at;
        int n = 0;
        for (int k = 0; k < g->nb; k++) {
            const bucket *b = &g->b[k];
            for (int q = b->pc[j]; q < b->pc[j + 1]; q++)
                g->own_ids[at + n++] = g->ch[b->c0 + q].id;
        }
        g->own_n[j] = n;
        at += n;
    }
    return BASE_OK;
}

int dist_grads_create(dist_grads **out, dist *d, nn_model *m, const dist_grads_opts *o,
                      base_err *e) {
    *out = NULL;
    dist_grads *g = calloc(1, sizeof *g);
    if (!g) return base_fail(e, BASE_ENOMEM, "out of memory");
    g->d = d, g->m = m, g->o = *o;
    nn_trained tr;
    nn_trained_of(m, &tr);
    g->params = tr.params, g->grads = tr.grads, g->n_params = tr.n;
    g->tensors = tr.tensors, g->n_tensors = tr.n_tensors;
    g->N = d->size, g->rank = d->rank;
    g->zero = o->zero && g->N > 1;
    if (!(g->o.bucket_mb >= 0)) g->o.bucket_mb = 0;
    int rc = layout(g, e);
    if (rc) {
        dist_grads_free(g);
        return rc;
    }
    *out = g;
    return BASE_OK;
}

void dist_grads_free(dist_grads *g) {
    if (!g) return;
    for (int k = 0; k < g->nb; k++) {
        bucket *b = &g->b[k];
        free(b->pc), free(b->cnt), free(b->dsp), free(b->rcnt), free(b->rdsp);
        free(b->send), free(b->recv), free(b->acc);
    }
    free(g->b), free(g->ch), free(g->partial);
    free(g->own_n), free(g->own_dsp), free(g->own_ids), free(g->own_vals);
    free(g->accfull);
    free(g);
}

size_t dist_grads_shard_size(const dist_grads *g) {
    return g->zero ? g->shard : g->n_params;
}
int dist_grads_buckets(const dist_grads *g) {
    return g->nb;
}
size_t dist_grads_comm_bytes(const dist_grads *g) {
    size_t f = 0;
    if (g->N > 1)
        for (int k = 0; k < g->nb; k++) f += g->b[k].S + g->b[k].P * (size_t)(g->N + 1);
    if (g->accfull) f += g->n_params;
    return f * sizeof(float);
}

/* ---- the buckets' collectives */

/* The simulated delay of the step's collective number coll, in seconds: the same on every rank. */
static double drawn_delay(const dist_grads *g, int coll) {
    const dist_delay *dl = &g->o.delay;
    if (dl->mean_ms == 0 && dl->jitter_ms == 0 && dl->spike_p == 0) return 0;
    uint64_t h = base_mix64(g->o.seed ^
                            base_mix64((uint64_t)g->step * 0x9e3779b97f4a7c15ULL + (uint64_t)coll));
    double u1 = (double)(h >> 11) / 9007199254740992.0,
           u2 = (double)(base_mix64(h) >> 11) / 9007199254740992.0;
    double ms = dl->mean_ms + dl->jitter_ms * (2 * u1 - 1);
    if (ms < 0) ms = 0;
    if (u2 < dl->spike_p) ms += dl->spike_ms;
    return ms * 1e-3;
}

static void flight_start(dist_grads *g, bucket *b) {
    double now = base_now();
    if (g->inflight++ == 0) g->busy_since = now;
    b->mpi_done = 0;
    b->ready_at = now + drawn_delay(g, g->coll++);
}

static void flight_end(dist_grads *g) {
    if (--g->inflight == 0) g->st.comm_ms += (base_now() - g->busy_since) * 1e3;
}

static int start_rs(dist_grads *g, bucket *b) {
    const float *grads = g->grads;
    for (int q = b->c0; q < b->c1; q++)
        memcpy(b->send + g->ch[q].poff, grads + g->ch[q].goff, g->ch[q].len * sizeof(float));
    flight_start(g, b);
    b->state = RS;
    g->st.bytes += (uint64_t)(b->S - b->P) * sizeof(float);
    int rc = MPI_Ialltoallv(b->send, b->cnt, b->dsp, MPI_FLOAT, b->recv, b->rcnt, b->rdsp,
                            MPI_FLOAT, g->d->comm_rs, &b->req);
    return rc == MPI_SUCCESS ? BASE_OK
                             : dist_mpi_fail(g->d, rc, "a gradient reduce-scatter", &g->herr);
}

static int start_ag(dist_grads *g, bucket *b, const float *mine) {
    flight_start(g, b);
    b->state = AG;
    g->st.bytes += (uint64_t)b->P * (uint64_t)(g->N - 1) * sizeof(float);
    int rc = MPI_Iallgatherv(mine, (int)b->P, MPI_FLOAT, b->send, b->cnt, b->dsp, MPI_FLOAT,
                             g->d->comm_ag, &b->req);
    return rc == MPI_SUCCESS ? BASE_OK : dist_mpi_fail(g->d, rc, "an all-gather", &g->herr);
}

/* Every rank's copy of this rank's piece, added into acc in rank order (the first of a step
 * copied): the order one process accumulates micro-batches in. */
static void sum_pieces(dist_grads *g, bucket *b) {
    size_t P = b->P;
    for (int j = 0; j < g->N; j++) {
        const float *x = b->recv + (size_t)j * P;
        if (g->a == 0 && j == 0) {
            memcpy(b->acc, x, P * sizeof(float));
        } else {
            float *y = b->acc;
#pragma omp parallel for simd schedule(static) if (P > 65536)
            for (size_t i = 0; i < P; i++) y[i] += x[i];
        }
    }
}

static void unpack(const dist_grads *g, const bucket *b, float *dst) {
    for (int q = b->c0; q < b->c1; q++)
        memcpy(dst + g->ch[q].goff, b->send + g->ch[q].poff, g->ch[q].len * sizeof(float));
}

/* Tests the bucket's collective; on completion moves it on (RS -> sums -> AG on the last
 * micro-batch of plain data parallel -> unpacked). zero_params: the all-gather carries
 * parameters (ZeRO-1's step). Returns 1 while it is in flight. */
static int advance(dist_grads *g, bucket *b, int params_ag) {
    if (b->state == SUMMED) return 1;
    if (b->state != RS && b->state != AG) return 0;
    if (!b->mpi_done) {
        int done = 0, rc = MPI_Test(&b->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            if (!g->hrc) g->hrc = dist_mpi_fail(g->d, rc, "a gradient collective", &g->herr);
            b->state = DONE;
            flight_end(g);
            return 0;
        }
        b->mpi_done = done;
    }
    if (!b->mpi_done || base_now() < b->ready_at) return 1;
    flight_end(g);
    if (b->state == RS) {
        sum_pieces(g, b);
        if (g->a == g->A - 1 && !g->zero) {
            b->state = SUMMED; /* its all-gather starts in bucket order (progress) */
            return 1;
        }
    } else {
        unpack(g, b, params_ag ? g->params : g->grads);
    }
    b->state = DONE;
    return 0;
}

static int progress(dist_grads *g, int params_ag) {
    int n = 0;
    for (int k = 0; k < g->nb; k++) n += advance(g, &g->b[k], params_ag);
    while (g->next_ag < g->nb && g->b[g->next_ag].state == SUMMED && !g->hrc) {
        bucket *b = &g->b[g->next_ag++];
        int rc = start_ag(g, b, b->acc);
        if (rc) g->hrc = rc;
    }
    return n;
}

static void on_stage(void *user, int stage) {
    dist_grads *g = user;
    int ci = g->m->cfg.n_layer - stage;
    if (g->o.overlap)
        for (int k = 0; k < g->nb; k++)
            if (g->b[k].ci_last == ci && g->b[k].state == IDLE && !g->hrc) {
                int rc = start_rs(g, &g->b[k]);
                if (rc) g->hrc = rc;
            }
    progress(g, 0);
}

/* Waits (the stall) until no bucket is in flight, under the watchdog. */
static int wait_all(dist_grads *g, int params_ag, const char *what, base_err *e) {
    double t0 = base_now();
    struct timespec nap = {0, 20000};
    for (long spins = 0;; spins++) {
        int n = progress(g, params_ag);
        if (g->hrc) break;
        if (!n) break;
        if (base_now() - t0 > g->d->timeout_s) {
            g->st.stall_ms += (base_now() - t0) * 1e3;
            return base_fail(e, BASE_EIO,
                             "rank %d: step %ld: %s has not completed after %.0f s: another rank "
                             "has died or hangs; stopping (--comm-timeout; rerun to resume from "
                             "the newest good checkpoint)",
                             g->rank, g->step + 1, what, g->d->timeout_s);
        }
        if (spins > 64) nanosleep(&nap, NULL);
    }
    g->st.stall_ms += (base_now() - t0) * 1e3;
    if (g->hrc) {
        *e = g->herr;
        return g->hrc;
    }
    return BASE_OK;
}

void dist_grads_micro_begin(dist_grads *g, long step, int a, int A) {
    g->step = step, g->a = a, g->A = A;
    if (a == 0) g->coll = 0;
    if (g->N == 1) return;
    for (int k = 0; k < g->nb; k++) g->b[k].state = IDLE;
    g->next_ag = 0;
    if (g->m->lora) return; /* the adapters' one bucket is reduced after the backward */
    g->m->bwd_hook = on_stage;
    g->m->bwd_hook_user = g;
}

int dist_grads_micro_end(dist_grads *g, base_err *e) {
    size_t n = g->n_params;
    float *grads = g->grads;
    if (g->N == 1) { /* one process: accumulate micro-batch gradients in order */
        if (g->A == 1) return BASE_OK;
        if (!g->accfull && !(g->accfull = base_alloc_floats(n)))
            return base_fail(e, BASE_ENOMEM, "out of memory for gradient accumulation");
        float *acc = g->accfull;
        if (g->a == 0) {
            memcpy(acc, grads, n * sizeof(float));
        } else if (g->a < g->A - 1) {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) acc[i] += grads[i];
        } else {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) grads[i] = acc[i] + grads[i];
        }
        return BASE_OK;
    }
    g->m->bwd_hook = NULL;
    /* buckets the hook did not start (overlap off, or a backward with nothing to do) */
    for (int k = 0; k < g->nb && !g->hrc; k++)
        if (g->b[k].state == IDLE) {
            int rc = start_rs(g, &g->b[k]);
            if (rc) g->hrc = rc;
        }
    return wait_all(g, 0, "the gradient reduction", e);
}

/* Sum of squares of n floats in a fixed order: eight lanes by index, added pairwise. The same
 * double for the same floats wherever they sit in memory. */
static double sumsq(const float *x, size_t n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    for (int k = 0; i < n; i++, k++) s[k] += (double)x[i] * (double)x[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

int dist_grads_norm(dist_grads *g, float *norm, base_err *e) {
    if (!g->zero) {
        const float *grads = g->grads;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < g->nch; i++)
            g->partial[g->ch[i].id] = sumsq(grads + g->ch[i].goff, g->ch[i].len);
    } else {
        int n = 0;
        for (int k = 0; k < g->nb; k++) {
            const bucket *b = &g->b[k];
            size_t lo = (size_t)b->dsp[g->rank];
            for (int q = b->pc[g->rank]; q < b->pc[g->rank + 1]; q++) {
                const chunk *c = &g->ch[b->c0 + q];
                g->own_vals[g->own_dsp[g->rank] + n++] = sumsq(b->acc + (c->poff - lo), c->len);
            }
        }
        double t0 = base_now();
        MPI_Request r;
        int rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DOUBLE, g->own_vals, g->own_n, g->own_dsp,
                                 MPI_DOUBLE, g->d->comm, &r);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(g->d, rc, "the gradient norm's all-gather", e);
        rc = dist_wait(g->d, &r, 1, "the gradient norm's all-gather", e);
        g->st.stall_ms += (base_now() - t0) * 1e3;
        g->st.bytes += (uint64_t)g->own_n[g->rank] * (uint64_t)(g->N - 1) * sizeof(double);
        if (rc) return rc;
        for (int i = 0; i < g->nch; i++) g->partial[g->own_ids[i]] = g->own_vals[i];
    }
    double total = 0;
    for (int i = 0; i < g->nch; i++) total += g->partial[i];
    *norm = (float)sqrt(total);
    return BASE_OK;
}

void dist_grads_scale(dist_grads *g, float s) {
    if (!g->zero) {
        float *x = g->grads;
        size_t n = g->n_params;
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) x[i] *= s;
        return;
    }
    for (int k = 0; k < g->nb; k++) {
        float *x = g->b[k].acc;
        size_t n = g->b[k].P;
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) x[i] *= s;
    }
}

int dist_grads_step(dist_grads *g, optim_adamw *opt, float lr, base_err *e) {
    if (!g->zero) {
        optim_adamw_step(opt, g->params, g->grads, g->tensors, g->n_tensors, lr);
        return BASE_OK;
    }
    optim_adamw_begin(opt);
    for (int k = 0; k < g->nb; k++) {
        bucket *b = &g->b[k];
        size_t lo = (size_t)b->dsp[g->rank];
        for (int q = b->pc[g->rank]; q < b->pc[g->rank + 1]; q++) {
            const chunk *c = &g->ch[b->c0 + q];
            size_t at = c->poff - lo;
            optim_adamw_span(opt, g->params + c->goff, b->acc + at, opt->m + b->shard_off + at,
                             opt->v + b->shard_off + at, c->len, c->decay, lr);
            /* the updated parameters, packed, go out in the all-gather below */
            memcpy(b->acc + at, g->params + c->goff, c->len * sizeof(float));
        }
    }
    g->next_ag = g->nb; /* all started here, in bucket order */
    for (int k = 0; k < g->nb && !g->hrc; k++) {
        int rc = start_ag(g, &g->b[k], g->b[k].acc);
        if (rc) g->hrc = rc;
    }
    return wait_all(g, 1, "the parameters' all-gather (ZeRO-1)", e);
}

void dist_grads_stats(dist_grads *g, dist_step_stats *s) {
    *s = g->st;
    memset(&g->st, 0, sizeof g->st);
}

/* ---- ZeRO-1 state for checkpoints */

static int gather_one(dist_grads *g, const float *shard, float *full, base_err *e) {
    for (int k = 0; k < g->nb; k++) {
        bucket *b = &g->b[k];
        MPI_Request r;
        int rc = MPI_Igatherv(shard + b->shard_off, (int)b->P, MPI_FLOAT, b->send, b->cnt, b->dsp,
                              MPI_FLOAT, 0, g->d->comm, &r);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(g->d, rc, "gathering the optimizer state", e);
        if ((rc = dist_wait(g->d, &r, 1, "gathering the optimizer state for a checkpoint", e)))
            return rc;
        if (g->rank == 0) unpack(g, b, full);
    }
    return BASE_OK;
}

static int scatter_one(dist_grads *g, const float *full, float *shard, base_err *e) {
    for (int k = 0; k < g->nb; k++) {
        bucket *b = &g->b[k];
        if (g->rank == 0)
            for (int q = b->c0; q < b->c1; q++)
                memcpy(b->send + g->ch[q].poff, full + g->ch[q].goff, g->ch[q].len * sizeof(float));
        MPI_Request r;
        int rc = MPI_Iscatterv(b->send, b->cnt, b->dsp, MPI_FLOAT, shard + b->shard_off, (int)b->P,
                               MPI_FLOAT, 0, g->d->comm, &r);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(g->d, rc, "scattering the optimizer state", e);
        if ((rc = dist_wait(g->d, &r, 1, "scattering the optimizer state", e))) return rc;
    }
    return BASE_OK;
}

int dist_grads_gather_state(dist_grads *g, const optim_adamw *opt, optim_adamw *full, base_err *e) {
    int rc;
    if (!g->zero) return BASE_OK;
    if ((rc = gather_one(g, opt->m, full ? full->m : NULL, e)) ||
        (rc = gather_one(g, opt->v, full ? full->v : NULL, e)))
        return rc;
    if (full) full->t = opt->t;
    return BASE_OK;
}

int dist_grads_scatter_state(dist_grads *g, const optim_adamw *full, optim_adamw *opt,
                             base_err *e) {
    int rc;
    if (!g->zero) {
        if ((rc = dist_bcast(g->d, opt->m, opt->n * sizeof(float), 0, "broadcasting AdamW's m",
                             e)) ||
            (rc = dist_bcast(g->d, opt->v, opt->n * sizeof(float), 0, "broadcasting AdamW's v", e)))
            return rc;
    } else if ((rc = scatter_one(g, full ? full->m : NULL, opt->m, e)) ||
               (rc = scatter_one(g, full ? full->v : NULL, opt->v, e))) {
        return rc;
    } else if (full) {
        opt->t = full->t; /* rank 0's, broadcast below */
    }
    return dist_bcast(g->d, &opt->t, sizeof opt->t, 0, "broadcasting AdamW's step", e);
}
