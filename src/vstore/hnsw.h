/* vstore/hnsw.h: the approximate nearest-neighbour index (HNSW, Malkov & Yashunin 2016) and the
 * distance kernels under it. The index is derived data: the vector store's truth is SQLite, and
 * an index is rebuilt or caught up from it. Labels are the caller's ids (the store's rowids). */
#ifndef HEARTH_VSTORE_HNSW_H
#define HEARTH_VSTORE_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum { VDIST_L2 = 0, VDIST_IP = 1, VDIST_COSINE = 2 } vdist_metric; /* l2 is squared */

/* Distances of dimension d: the fast (SIMD, chosen at run time) and the scalar reference.
 * ip = 1 - <a,b>; cosine = 1 - <a,b>/(|a||b|) (0 when either is the zero vector's). */
float vdist(vdist_metric m, const float *a, const float *b, size_t d);
float vdist_ref(vdist_metric m, const float *a, const float *b, size_t d);
const char *vdist_metric_name(vdist_metric m);
int vdist_metric_parse(const char *s, vdist_metric *out); /* "l2" "ip" "cosine"; -1 if unknown */
/* The instruction set vdist runs on: "avx512", "avx2" or "scalar". */
const char *vdist_isa(void);
/* Tests: caps the instruction set at level (0 scalar, 1 AVX2, 2 AVX-512; -1 the best the CPU
 * has) and returns the level now in use (lower when the CPU lacks the one asked for). Not
 * thread-safe against running searches. */
int vdist_force_isa(int level);
/* The index's raw kernel: squared l2 for VDIST_L2, 1 - <a,b> otherwise (the index stores cosine
 * vectors normalized, so there cosine = ip). */
typedef float (*vdist_fn)(const float *a, const float *b, size_t d);
vdist_fn vdist_kernel(vdist_metric m);

typedef struct {
    int M;               /* neighbours per node on layers > 0 (2M on layer 0); default 16 */
    int ef_construction; /* default 200 */
    int ef_search;       /* default 10; a search may pass its own */
    uint64_t seed;       /* level generator */
} hnsw_params;

/* Threads: adds, removes and contains are safe against each other; searches are safe against
 * other searches; a search, save or free must not overlap an add or remove (a store holds a
 * read/write lock: searches shared, writes exclusive). */
typedef struct hnsw hnsw;

int hnsw_create(hnsw **out, size_t dim, vdist_metric metric, const hnsw_params *p, base_err *e);
void hnsw_free(hnsw *h); /* NULL is fine */

/* Adds (or, for a label already present, replaces) a vector. Thread-safe against other adds.
 * Re-adding a label's current vector unchanged leaves the graph as it is; NaN or infinite
 * values are BASE_EINVAL. */
int hnsw_add(hnsw *h, uint64_t label, const float *vec, base_err *e);
/* Adds n vectors with `threads` threads (multi-threaded build). */
int hnsw_add_batch(hnsw *h, const uint64_t *labels, const float *vecs, size_t n, int threads,
                   base_err *e);
/* Marks a label deleted: it is never returned again; its node still routes searches. Returns 0, or
 * BASE_EINVAL if the label is unknown. */
int hnsw_remove(hnsw *h, uint64_t label, base_err *e);
size_t hnsw_count(const hnsw *h); /* live (not deleted) labels */
/* Nodes in the graph, deleted ones included: deletes and updates leave a routing node behind
 * (an update is a delete plus an add), so a store may rebuild when this far exceeds count. */
size_t hnsw_nodes(const hnsw *h);
/* Whether label is live in the index. */
bool hnsw_contains(const hnsw *h, uint64_t label);

/* Keeps a label in a filtered search when it returns true. */
typedef bool (*hnsw_filter_fn)(uint64_t label, void *ud);

/* The k nearest live labels to q (fewer if the index holds fewer), nearest first, with their
 * distances. ef <= 0 uses the index's ef_search. filter may be NULL. Returns the number found. */
size_t hnsw_search(const hnsw *h, const float *q, size_t k, int ef, hnsw_filter_fn filter, void *ud,
                   uint64_t *labels, float *dists);

/* Persistence: one file written atomically (base_afile), with a checksum; `seq` is the last
 * store sequence number the index contains. A damaged or mismatched file is BASE_EFORMAT. */
int hnsw_save(const hnsw *h, const char *path, uint64_t seq, base_err *e);
int hnsw_load(hnsw **out, const char *path, size_t dim, vdist_metric metric, uint64_t *seq,
              base_err *e);

/* Exact search over n vectors (row-major, n x dim) with their labels; same output contract. */
size_t hnsw_exact_search(vdist_metric m, const float *vecs, const uint64_t *labels, size_t n,
                         size_t dim, const float *q, size_t k, hnsw_filter_fn filter, void *ud,
                         uint64_t *out_labels, float *out_dists);

#endif
