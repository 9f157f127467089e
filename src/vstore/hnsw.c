/* vstore/hnsw.c: the HNSW graph (Malkov & Yashunin, "Efficient and robust approximate nearest
 * neighbor search using Hierarchical Navigable Small World graphs"), its construction with the
 * heuristic neighbour selection (their algorithm 4), deletes, updates, filtered search, a
 * multi-threaded build, and exact search for ground truth and small filtered sets.
 *
 * Layout, chosen for the query path: layer 0, where a search spends nearly all its time, is one
 * contiguous array of fixed-size records [count | links[2M] | pad | vector], so a node's links
 * and its vector share nearby cache lines and can be prefetched together. Upper layers are rare
 * (a node has level >= 1 with probability 1/M) and live in one small array per node. Visited
 * sets are epoch-tagged arrays, reused across searches without clearing. */
#include "vstore/hnsw.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONE UINT32_MAX
#define MAX_LEVEL 31 /* with M >= 2, level 31 needs ~2^31 nodes: never reached in practice */
#define MAX_M 2048   /* bounds the links per node (and so a record's size) */
#define MAX_NODES (UINT32_MAX - 1)
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)8 << 20) /* smaller arrays keep ordinary pages */

typedef struct {
    float d;
    uint32_t id;
} cand;

/* A binary heap of candidates; `max` orders it by largest distance first. Capacity grows (rarely:
 * the search contexts that own heaps are pooled and keep their capacity). */
typedef struct {
    cand *a;
    size_t n, cap;
} heap;

/* What one search needs besides the index: reused through a pool so a search allocates
 * nothing once the pool is warm. */
typedef struct search_ctx {
    uint16_t *tag; /* tag[id] == epoch: visited in this search */
    size_t ntag;
    uint16_t epoch;
    heap cands, top;
    cand *sel; /* scratch for neighbour selection */
    size_t selcap;
    float *qbuf;     /* the normalized query (cosine) */
    uint32_t *links; /* a copy of one node's links, read under its lock during construction */
    struct search_ctx *next;
} search_ctx;

struct hnsw {
    size_t dim;
    vdist_metric metric;
    hnsw_params p;
    int M, M0; /* link capacity on upper layers and on layer 0 */
    double level_mult;
    vdist_fn dist;

    size_t rec;     /* bytes per layer-0 record, a multiple of 64 */
    size_t vec_off; /* offset of the vector in a record, 64-byte aligned */
    uint8_t *l0;    /* cap records */
    uint64_t *labels;
    uint8_t *levels;
    uint8_t *deleted;
    uint32_t **upper;       /* upper[i]: levels[i] blocks of [count | links[M]], NULL at level 0 */
    pthread_mutex_t *locks; /* guard a node's links (all layers) during construction */
    size_t n, cap, live;

    uint32_t entry; /* NONE when empty */
    int maxlevel;
    base_rng rng;

    /* label -> node of its live version; open addressing, linear probing */
    uint64_t *hkey;
    uint32_t *hval; /* NONE = empty slot */
    size_t hcap, hn;

    pthread_mutex_t glock; /* n, live, entry, maxlevel, rng, the label map, deleted flags */
    pthread_rwlock_t grow; /* held shared by every add; exclusively to reallocate the arrays */
    pthread_mutex_t plock; /* the search context pool */
    search_ctx *pool;
};

/* ---- small helpers */

static inline uint32_t *links0(const hnsw *h, uint32_t id) {
    return (uint32_t *)(h->l0 + (size_t)id * h->rec);
}
static inline const float *vec_of(const hnsw *h, uint32_t id) {
    return (const float *)(h->l0 + (size_t)id * h->rec + h->vec_off);
}
/* The [count | links] block of node id at level l (0 included). */
static inline uint32_t *links_at(const hnsw *h, uint32_t id, int l) {
    return l == 0 ? links0(h, id) : h->upper[id] + (size_t)(l - 1) * (size_t)(h->M + 1);
}
static inline int maxlinks(const hnsw *h, int l) {
    return l == 0 ? h->M0 : h->M;
}

static size_t round64(size_t x) {
    return (x + 63) & ~(size_t)63;
}

/* ---- heaps */

static int heap_reserve(heap *hp, size_t n) {
    return base_grow(&hp->a, &hp->cap, n, sizeof *hp->a, SIZE_MAX) ? -1 : 0;
}

/* Max-heap (farthest on top) when max, else min-heap. Pushing needs room (heap_reserve). */
static inline void heap_push(heap *hp, cand c, int max) {
    size_t i = hp->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (max ? hp->a[p].d >= c.d : hp->a[p].d <= c.d) break;
        hp->a[i] = hp->a[p];
        i = p;
    }
    hp->a[i] = c;
}

static inline cand heap_pop(heap *hp, int max) {
    cand top = hp->a[0], last = hp->a[--hp->n];
    size_t i = 0, n = hp->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && (max ? hp->a[c + 1].d > hp->a[c].d : hp->a[c + 1].d < hp->a[c].d)) c++;
        if (max ? last.d >= hp->a[c].d : last.d <= hp->a[c].d) break;
        hp->a[i] = hp->a[c];
        i = c;
    }
    if (n) hp->a[i] = last;
    return top;
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->id > y->id) - (x->id < y->id);
}

/* ---- search contexts */

static void ctx_free(search_ctx *c) {
    if (!c) return;
    free(c->tag);
    free(c->cands.a);
    free(c->top.a);
    free(c->sel);
    free(c->qbuf);
    free(c->links);
    free(c);
}

/* A new search in c: a fresh epoch (so nothing counts as visited) and empty heaps. */
static void ctx_restart(search_ctx *c) {
    if (++c->epoch == 0) { /* wrapped: old tags could collide with the new epoch */
        memset(c->tag, 0, c->ntag * sizeof *c->tag);
        c->epoch = 1;
    }
    c->cands.n = c->top.n = 0;
}

/* A context sized for the index as it is now (the tag array follows its capacity). */
static search_ctx *ctx_get(const hnsw *hc) {
    hnsw *h = (hnsw *)hc; /* the pool is scratch state, not part of the index's value */
    pthread_mutex_lock(&h->plock);
    search_ctx *c = h->pool;
    if (c) h->pool = c->next;
    pthread_mutex_unlock(&h->plock);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->qbuf = malloc(h->dim * sizeof(float));
        c->links = malloc((size_t)(h->M0 + 1) * sizeof(uint32_t));
        if (!c->qbuf || !c->links) {
            ctx_free(c);
            return NULL;
        }
    }
    if (c->ntag < h->cap) {
        free(c->tag);
        c->tag = calloc(h->cap ? h->cap : 1, sizeof *c->tag);
        if (!c->tag) {
            c->ntag = 0;
            ctx_free(c);
            return NULL;
        }
        c->ntag = h->cap, c->epoch = 0;
    }
    ctx_restart(c);
    return c;
}

static void ctx_put(const hnsw *hc, search_ctx *c) {
    hnsw *h = (hnsw *)hc;
    pthread_mutex_lock(&h->plock);
    c->next = h->pool;
    h->pool = c;
    pthread_mutex_unlock(&h->plock);
}

/* ---- the label map */

static uint32_t map_get(const hnsw *h, uint64_t label) {
    if (!h->hcap) return NONE;
    size_t m = h->hcap - 1, i = base_splitmix64(label) & m;
    while (h->hval[i] != NONE) {
        if (h->hkey[i] == label) return h->hval[i];
        i = (i + 1) & m;
    }
    return NONE;
}

static int map_grow(hnsw *h) {
    size_t nc = h->hcap ? h->hcap * 2 : 1024;
    uint64_t *k = malloc(nc * sizeof *k);
    uint32_t *v = malloc(nc * sizeof *v);
    if (!k || !v) {
        free(k), free(v);
        return -1;
    }
    for (size_t i = 0; i < nc; i++) v[i] = NONE;
    for (size_t j = 0; j < h->hcap; j++) {
        if (h->hval[j] == NONE) continue;
        size_t i = base_splitmix64(h->hkey[j]) & (nc - 1);
        while (v[i] != NONE) i = (i + 1) & (nc - 1);
        k[i] = h->hkey[j], v[i] = h->hval[j];
    }
    free(h->hkey), free(h->hval);
    h->hkey = k, h->hval = v, h->hcap = nc;
    return 0;
}

/* Sets label -> id (inserting or overwriting). */
static int map_put(hnsw *h, uint64_t label, uint32_t id) {
    if ((h->hn + 1) * 2 > h->hcap && map_grow(h)) return -1;
    size_t m = h->hcap - 1, i = base_splitmix64(label) & m;
    while (h->hval[i] != NONE && h->hkey[i] != label) i = (i + 1) & m;
    if (h->hval[i] == NONE) h->hn++;
    h->hkey[i] = label, h->hval[i] = id;
    return 0;
}

/* Removes label; linear probing needs the following run shifted back over the hole. */
static void map_del(hnsw *h, uint64_t label) {
    if (!h->hcap) return;
    size_t m = h->hcap - 1, i = base_splitmix64(label) & m;
    while (h->hval[i] != NONE && h->hkey[i] != label) i = (i + 1) & m;
    if (h->hval[i] == NONE) return;
    h->hn--;
    for (size_t j = i;;) {
        h->hval[i] = NONE;
        for (;;) {
            j = (j + 1) & m;
            if (h->hval[j] == NONE) return;
            size_t home = base_splitmix64(h->hkey[j]) & m;
            /* j's entry may move to the hole i unless its home lies cyclically in (i, j] */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
        }
        h->hkey[i] = h->hkey[j], h->hval[i] = h->hval[j];
        i = j;
    }
}

/* ---- create / free */

static int alloc_arrays(hnsw *h, size_t cap) {
    size_t bytes;
    if (cap > MAX_NODES || base_mul_size(cap, h->rec, &bytes)) return -1;
    /* A large layer 0 goes on 2 MiB pages where the kernel allows it: a search touches nodes
     * all over it, and with 4 KiB pages most of those touches also miss the TLB. */
    size_t align = bytes >= HUGE_MIN ? HUGE_PAGE : 64;
    bytes = (bytes + align - 1) / align * align; /* aligned_alloc wants a multiple */
    uint8_t *l0 = aligned_alloc(align, bytes);
    if (!l0) return -1;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE) madvise(l0, bytes, MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
    if (h->n) memcpy(l0, h->l0, h->n * h->rec);
    uint64_t *labels = realloc(h->labels, cap * sizeof *labels);
    if (labels) h->labels = labels;
    uint8_t *levels = realloc(h->levels, cap);
    if (levels) h->levels = levels;
    uint8_t *del = realloc(h->deleted, cap);
    if (del) h->deleted = del;
    uint32_t **up = realloc(h->upper, cap * sizeof *up);
    if (up) h->upper = up;
    pthread_mutex_t *locks = realloc(h->locks, cap * sizeof *locks);
    if (locks) h->locks = locks;
    if (!labels || !levels || !del || !up || !locks) {
        free(l0);
        return -1;
    }
    /* realloc moved the mutexes: re-initialize them (no one holds one during a grow) */
    for (size_t i = 0; i < cap; i++) pthread_mutex_init(&h->locks[i], NULL);
    free(h->l0);
    h->l0 = l0;
    h->cap = cap;
    return 0;
}

/* Makes room for `extra` more nodes; called with `grow` held exclusively (or before any thread
 * shares the index). */
static int reserve(hnsw *h, size_t extra, base_err *e) {
    size_t need;
    if (base_add_size(h->n, extra, &need) || need > MAX_NODES)
        return base_fail(e, BASE_EINVAL, "hnsw: more than %u nodes", (unsigned)MAX_NODES);
    if (need <= h->cap) return 0;
    size_t c = h->cap ? h->cap : 256;
    while (c < need) c = c > MAX_NODES / 2 ? MAX_NODES : c * 2;
    if (alloc_arrays(h, c))
        return base_fail(e, BASE_ENOMEM, "hnsw: out of memory growing to %zu nodes", c);
    return 0;
}

void hnsw_free(hnsw *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) free(h->upper[i]);
    for (size_t i = 0; i < h->cap; i++) pthread_mutex_destroy(&h->locks[i]);
    while (h->pool) {
        search_ctx *c = h->pool;
        h->pool = c->next;
        ctx_free(c);
    }
    free(h->l0), free(h->labels), free(h->levels), free(h->deleted), free(h->upper);
    free(h->locks), free(h->hkey), free(h->hval);
    pthread_mutex_destroy(&h->glock);
    pthread_mutex_destroy(&h->plock);
    pthread_rwlock_destroy(&h->grow);
    free(h);
}

int hnsw_create(hnsw **out, size_t dim, vdist_metric metric, const hnsw_params *p, base_err *e) {
    *out = NULL;
    hnsw_params q = {16, 200, 10, 42};
    if (p) q = *p;
    if (dim == 0 || dim > (1u << 20))
        return base_fail(e, BASE_EINVAL, "hnsw: dimension %zu out of range [1, %u]", dim, 1u << 20);
    if (metric != VDIST_L2 && metric != VDIST_IP && metric != VDIST_COSINE)
        return base_fail(e, BASE_EINVAL, "hnsw: unknown metric %d", (int)metric);
    if (q.M < 2 || q.M > MAX_M / 2)
        return base_fail(e, BASE_EINVAL, "hnsw: M = %d out of range [2, %d]", q.M, MAX_M / 2);
    if (q.ef_construction < 1 || q.ef_construction > 100000)
        return base_fail(e, BASE_EINVAL, "hnsw: ef_construction = %d out of range [1, 100000]",
                         q.ef_construction);
    if (q.ef_search < 1 || q.ef_search > 100000)
        return base_fail(e, BASE_EINVAL, "hnsw: ef_search = %d out of range [1, 100000]",
                         q.ef_search);
    hnsw *h = calloc(1, sizeof *h);
    if (!h) return base_fail(e, BASE_ENOMEM, "hnsw: out of memory");
    h->dim = dim, h->metric = metric, h->p = q;
    h->M = q.M, h->M0 = 2 * q.M;
    h->level_mult = 1.0 / log((double)q.M);
    h->dist = vdist_kernel(metric);
    h->vec_off = round64((size_t)(1 + h->M0) * sizeof(uint32_t));
    h->rec = h->vec_off + round64(dim * sizeof(float));
    h->entry = NONE, h->maxlevel = -1;
    base_rng_seed(&h->rng, q.seed);
    pthread_mutex_init(&h->glock, NULL);
    pthread_mutex_init(&h->plock, NULL);
    pthread_rwlock_init(&h->grow, NULL);
    *out = h;
    return 0;
}

size_t hnsw_count(const hnsw *h) {
    return h ? h->live : 0;
}
size_t hnsw_nodes(const hnsw *h) {
    return h ? h->n : 0;
}

bool hnsw_contains(const hnsw *hc, uint64_t label) {
    hnsw *h = (hnsw *)hc;
    pthread_mutex_lock(&h->glock);
    bool r = map_get(h, label) != NONE;
    pthread_mutex_unlock(&h->glock);
    return r;
}

/* ---- graph search */

/* Copies the links of id at level l into buf (count first), under the node's lock when other
 * threads may be writing them. */
static inline const uint32_t *read_links(const hnsw *h, uint32_t id, int l, uint32_t *buf,
                                         int locked) {
    uint32_t *src = links_at(h, id, l);
    if (!locked) return src;
    pthread_mutex_lock(&h->locks[id]);
    memcpy(buf, src, (size_t)(src[0] + 1) * sizeof *buf);
    pthread_mutex_unlock(&h->locks[id]);
    return buf;
}

/* Greedy walk (ef = 1) from ep on levels top..bottom+1; returns the closest node found. */
static uint32_t descend(const hnsw *h, const float *q, uint32_t ep, int top, int bottom,
                        uint32_t *buf, int locked) {
    float best = h->dist(q, vec_of(h, ep), h->dim);
    for (int l = top; l > bottom; l--) {
        for (int changed = 1; changed;) {
            changed = 0;
            const uint32_t *ln = read_links(h, ep, l, buf, locked);
            for (uint32_t j = 1; j <= ln[0]; j++) {
                float d = h->dist(q, vec_of(h, ln[j]), h->dim);
                if (d < best) best = d, ep = ln[j], changed = 1;
            }
        }
    }
    return ep;
}

static inline bool passes(const hnsw *h, uint32_t id, hnsw_filter_fn f, void *ud) {
    return !h->deleted[id] && (!f || f(h->labels[id], ud));
}

/* Search of one layer from ep (the paper's algorithm 2) leaving the ef best in c->top (a
 * max-heap). While building (build = 1), every node counts and links are read under locks;
 * in a query (build = 0), only nodes that pass (live, and accepted by the filter) enter the
 * results, but all nodes route: a selective filter widens the walk instead of losing answers.
 * Returns -1 when out of memory. */
static int search_layer(const hnsw *h, search_ctx *c, const float *q, uint32_t ep, int l, size_t ef,
                        int build, hnsw_filter_fn f, void *ud) {
    uint16_t *tag = c->tag, epoch = c->epoch;
    heap *cands = &c->cands, *top = &c->top;
    if (heap_reserve(top, ef + 1) || heap_reserve(cands, ef + 64)) return -1;
    float d0 = h->dist(q, vec_of(h, ep), h->dim);
    float bound = INFINITY; /* distance of the worst kept result once top holds ef */
    heap_push(cands, (cand){d0, ep}, 0);
    if (build || passes(h, ep, f, ud)) {
        heap_push(top, (cand){d0, ep}, 1);
        if (top->n >= ef) bound = top->a[0].d;
    }
    tag[ep] = epoch;
    const size_t dim = h->dim;
    while (cands->n) {
        cand cur = cands->a[0];
        if (cur.d > bound) break;
        heap_pop(cands, 0);
        const uint32_t *ln = read_links(h, cur.id, l, c->links, build);
        uint32_t cnt = ln[0];
        if (cnt) {
            __builtin_prefetch(&tag[ln[1]]);
            __builtin_prefetch(vec_of(h, ln[1]));
        }
        if (heap_reserve(cands, cands->n + cnt)) return -1;
        for (uint32_t j = 1; j <= cnt; j++) {
            uint32_t nb = ln[j];
            if (j < cnt) {
                /* the next neighbour's tag and first vector lines arrive while this one runs */
                const char *nv = (const char *)vec_of(h, ln[j + 1]);
                __builtin_prefetch(&tag[ln[j + 1]]);
                __builtin_prefetch(nv);
                __builtin_prefetch(nv + 64);
                __builtin_prefetch(nv + 128);
            }
            if (tag[nb] == epoch) continue;
            tag[nb] = epoch;
            float d = h->dist(q, vec_of(h, nb), dim);
            if (top->n < ef || d < bound) {
                heap_push(cands, (cand){d, nb}, 0);
                if (build || passes(h, nb, f, ud)) {
                    heap_push(top, (cand){d, nb}, 1);
                    if (top->n > ef) heap_pop(top, 1);
                    if (top->n >= ef) bound = top->a[0].d;
                }
            }
        }
    }
    return 0;
}

/* ---- construction */

/* The heuristic of the paper's algorithm 4 (without extending or keeping pruned candidates):
 * from candidates sorted nearest first (distances to the base point), keep one only when it is
 * closer to the base than to every one already kept, up to m. This spreads links across
 * directions, which keeps clustered data navigable. Returns the number kept (in place). */
static size_t select_heuristic(const hnsw *h, cand *cs, size_t n, size_t m) {
    if (n <= m) return n;
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        const float *v = vec_of(h, cs[i].id);
        bool good = true;
        for (size_t j = 0; j < kept; j++)
            if (h->dist(v, vec_of(h, cs[j].id), h->dim) < cs[i].d) {
                good = false;
                break;
            }
        if (good) cs[kept++] = cs[i];
    }
    return kept;
}

static int sel_reserve(search_ctx *c, size_t n) {
    return base_grow(&c->sel, &c->selcap, n, sizeof *c->sel, SIZE_MAX) ? -1 : 0;
}

/* Adds a link nb -> id at level l, re-selecting nb's links with the heuristic when full. */
static int link_back(const hnsw *h, search_ctx *c, uint32_t nb, uint32_t id, int l) {
    int mx = maxlinks(h, l);
    if (sel_reserve(c, (size_t)mx + 1)) return -1;
    pthread_mutex_lock(&h->locks[nb]);
    uint32_t *ln = links_at(h, nb, l);
    uint32_t cnt = ln[0];
    if ((int)cnt < mx) {
        ln[++ln[0]] = id;
    } else {
        const float *v = vec_of(h, nb);
        size_t n = 0;
        c->sel[n++] = (cand){h->dist(v, vec_of(h, id), h->dim), id};
        for (uint32_t j = 1; j <= cnt; j++)
            c->sel[n++] = (cand){h->dist(v, vec_of(h, ln[j]), h->dim), ln[j]};
        qsort(c->sel, n, sizeof *c->sel, cand_cmp);
        size_t k = select_heuristic(h, c->sel, n, (size_t)mx);
        for (size_t j = 0; j < k; j++) ln[1 + j] = c->sel[j].id;
        ln[0] = (uint32_t)k;
    }
    pthread_mutex_unlock(&h->locks[nb]);
    return 0;
}

static int check_vec(const hnsw *h, const float *v, uint64_t label, base_err *e) {
    for (size_t i = 0; i < h->dim; i++)
        if (!isfinite(v[i]))
            return base_fail(e, BASE_EINVAL,
                             "hnsw: vector of label %llu has a non-finite value at "
                             "index %zu",
                             (unsigned long long)label, i);
    return 0;
}

/* Inserts one vector (or replaces the label's); the caller holds `grow` shared. When the arrays
 * are full, nothing changes and *full is set: the caller grows them and retries. */
static int add_one(hnsw *h, uint64_t label, const float *vec, int *full, base_err *e) {
    *full = 0;
    search_ctx *c = ctx_get(h);
    if (!c)
        return base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                         (unsigned long long)label);
    /* the vector as the index keeps it: unit length under cosine, where cosine = 1 - dot */
    float *nv = c->qbuf;
    memcpy(nv, vec, h->dim * sizeof *nv);
    if (h->metric == VDIST_COSINE) {
        double s = 0;
        for (size_t i = 0; i < h->dim; i++) s += (double)nv[i] * nv[i];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (size_t i = 0; i < h->dim; i++) nv[i] *= inv;
        }
    }
    /* the level is drawn first so the upper links can be allocated outside the lock */
    pthread_mutex_lock(&h->glock);
    double u = 1.0 - (double)base_rng_uniform(&h->rng);
    pthread_mutex_unlock(&h->glock);
    int level = (int)(-log(u) * h->level_mult);
    if (level > MAX_LEVEL) level = MAX_LEVEL;
    uint32_t *up = NULL;
    if (level > 0 && !(up = calloc((size_t)level * (size_t)(h->M + 1), sizeof *up))) {
        ctx_put(h, c);
        return base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                         (unsigned long long)label);
    }

    pthread_mutex_lock(&h->glock);
    uint32_t id = (uint32_t)h->n, old = map_get(h, label);
    /* re-adding the same vector (an upsert that changed only metadata) leaves the graph be */
    int same = old != NONE && !memcmp(vec_of(h, old), nv, h->dim * sizeof *nv);
    int err = 0;
    if (!same && h->n >= h->cap)
        *full = 1;
    else if (!same && map_put(h, label, id))
        err = 1;
    if (same || *full || err) {
        pthread_mutex_unlock(&h->glock);
        free(up);
        ctx_put(h, c);
        return err ? base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                               (unsigned long long)label)
                   : 0;
    }
    h->n++;
    /* an update: the old node stops being returned but keeps routing */
    if (old != NONE)
        h->deleted[old] = 1;
    else
        h->live++;
    h->labels[id] = label, h->levels[id] = (uint8_t)level, h->deleted[id] = 0, h->upper[id] = up;
    uint32_t *l0 = links0(h, id);
    l0[0] = 0;
    float *v = (float *)((uint8_t *)l0 + h->vec_off);
    memcpy(v, nv, h->dim * sizeof *v);
    uint32_t ep = h->entry;
    int maxl = h->maxlevel;
    if (ep == NONE) {
        h->entry = id, h->maxlevel = level;
        pthread_mutex_unlock(&h->glock);
        ctx_put(h, c);
        return 0;
    }
    /* a new top level: hold the global lock so no other insert starts from a stale entry */
    int hold = level > maxl;
    if (!hold) pthread_mutex_unlock(&h->glock);

    int rc = 0;
    ep = descend(h, v, ep, maxl, level, c->links, 1);
    for (int l = level < maxl ? level : maxl; l >= 0; l--) {
        if (l != (level < maxl ? level : maxl)) ctx_restart(c);
        if (search_layer(h, c, v, ep, l, (size_t)h->p.ef_construction, 1, NULL, NULL) ||
            sel_reserve(c, c->top.n)) {
            rc = base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                           (unsigned long long)label);
            break;
        }
        size_t n = c->top.n;
        for (size_t i = n; i > 0; i--) c->sel[i - 1] = heap_pop(&c->top, 1);
        ep = c->sel[0].id; /* the nearest: where the next layer starts */
        size_t k = select_heuristic(h, c->sel, n, (size_t)h->M);
        /* link_back reuses c->sel: the chosen ids wait in c->links */
        uint32_t *chosen = c->links;
        for (size_t j = 0; j < k; j++) chosen[j] = c->sel[j].id;
        int mx = maxlinks(h, l);
        if (sel_reserve(c, k + (size_t)mx)) {
            rc = base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                           (unsigned long long)label);
            break;
        }
        /* Since this node became reachable from the layers above, concurrent inserts may have
         * linked themselves into this list (link_back): overwriting it would leave them with
         * no way in. They join the chosen ones; past the list's capacity the heuristic picks. */
        pthread_mutex_lock(&h->locks[id]);
        uint32_t *mine = links_at(h, id, l);
        size_t m = k;
        for (uint32_t j = 1; j <= mine[0]; j++) {
            size_t q = 0;
            while (q < k && chosen[q] != mine[j]) q++;
            if (q == k) c->sel[m++] = (cand){h->dist(v, vec_of(h, mine[j]), h->dim), mine[j]};
        }
        if (m > (size_t)mx) {
            qsort(c->sel, m, sizeof *c->sel, cand_cmp);
            m = select_heuristic(h, c->sel, m, (size_t)mx);
        }
        for (size_t j = 0; j < m; j++) mine[1 + j] = c->sel[j].id;
        mine[0] = (uint32_t)m;
        pthread_mutex_unlock(&h->locks[id]);
        for (size_t j = 0; j < k && !rc; j++)
            if (link_back(h, c, chosen[j], id, l))
                rc = base_fail(e, BASE_ENOMEM, "hnsw: out of memory adding label %llu",
                               (unsigned long long)label);
        if (rc) break;
    }
    ctx_put(h, c);
    if (hold) {
        if (!rc) h->entry = id, h->maxlevel = level;
        pthread_mutex_unlock(&h->glock);
    }
    return rc;
}

static int add_locked(hnsw *h, uint64_t label, const float *vec, base_err *e) {
    for (;;) {
        int full;
        pthread_rwlock_rdlock(&h->grow);
        int rc = add_one(h, label, vec, &full, e);
        pthread_rwlock_unlock(&h->grow);
        if (rc || !full) return rc;
        pthread_rwlock_wrlock(&h->grow);
        rc = h->n < h->cap ? 0 : reserve(h, 1, e);
        pthread_rwlock_unlock(&h->grow);
        if (rc) return rc;
    }
}

int hnsw_add(hnsw *h, uint64_t label, const float *vec, base_err *e) {
    int rc = check_vec(h, vec, label, e);
    return rc ? rc : add_locked(h, label, vec, e);
}

typedef struct {
    hnsw *h;
    const uint64_t *labels;
    const float *vecs;
    size_t n;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t elock;
    base_err *e;
} batch_job;

static void *batch_worker(void *arg) {
    batch_job *j = arg;
    base_err le = {0};
    for (;;) {
        if (atomic_load(&j->failed)) break;
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        int rc = add_locked(j->h, j->labels[i], j->vecs + i * j->h->dim, &le);
        if (rc) {
            pthread_mutex_lock(&j->elock);
            if (!atomic_load(&j->failed)) {
                atomic_store(&j->failed, rc);
                if (j->e) *j->e = le;
            }
            pthread_mutex_unlock(&j->elock);
            break;
        }
    }
    return NULL;
}

int hnsw_add_batch(hnsw *h, const uint64_t *labels, const float *vecs, size_t n, int threads,
                   base_err *e) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_vec(h, vecs + i * h->dim, labels[i], e);
        if (rc) return rc;
    }
    pthread_rwlock_wrlock(&h->grow);
    int rc = reserve(h, n, e);
    pthread_rwlock_unlock(&h->grow);
    if (rc) return rc;
    if (threads < 1) threads = 1;
    if ((size_t)threads > n) threads = (int)n;
    if (threads > 256) threads = 256;
    batch_job j = {.h = h, .labels = labels, .vecs = vecs, .n = n, .e = e};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    pthread_mutex_init(&j.elock, NULL);
    pthread_t tid[256];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, batch_worker, &j)) break;
        started++;
    }
    batch_worker(&j); /* the calling thread works too; fewer threads if some failed to start */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.elock);
    return atomic_load(&j.failed);
}

int hnsw_remove(hnsw *h, uint64_t label, base_err *e) {
    pthread_mutex_lock(&h->glock);
    uint32_t id = map_get(h, label);
    if (id != NONE) {
        h->deleted[id] = 1;
        h->live--;
        map_del(h, label);
    }
    pthread_mutex_unlock(&h->glock);
    if (id == NONE)
        return base_fail(e, BASE_EINVAL, "hnsw: label %llu is not in the index",
                         (unsigned long long)label);
    return 0;
}

/* ---- queries */

size_t hnsw_search(const hnsw *h, const float *q, size_t k, int ef, hnsw_filter_fn filter, void *ud,
                   uint64_t *labels, float *dists) {
    if (!h || k == 0 || h->entry == NONE || h->live == 0) return 0;
    size_t efs = ef > 0 ? (size_t)ef : (size_t)h->p.ef_search;
    if (efs < k) efs = k;
    search_ctx *c = ctx_get(h);
    if (!c) return 0;
    if (h->metric == VDIST_COSINE) {
        double s = 0;
        for (size_t i = 0; i < h->dim; i++) s += (double)q[i] * q[i];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (size_t i = 0; i < h->dim; i++) c->qbuf[i] = q[i] * inv;
        q = c->qbuf;
    }
    uint32_t ep = descend(h, q, h->entry, h->maxlevel, 0, NULL, 0);
    size_t n = 0;
    if (search_layer(h, c, q, ep, 0, efs, 0, filter, ud) == 0) {
        while (c->top.n > k) heap_pop(&c->top, 1);
        n = c->top.n;
        for (size_t i = n; i > 0; i--) {
            cand x = heap_pop(&c->top, 1);
            labels[i - 1] = h->labels[x.id];
            if (dists) dists[i - 1] = x.d;
        }
    }
    ctx_put(h, c);
    return n;
}

size_t hnsw_exact_search(vdist_metric m, const float *vecs, const uint64_t *labels, size_t n,
                         size_t dim, const float *q, size_t k, hnsw_filter_fn filter, void *ud,
                         uint64_t *out_labels, float *out_dists) {
    if (k == 0 || n == 0) return 0;
    if (n > MAX_NODES) n = MAX_NODES; /* candidates carry 32-bit indices, as graph nodes do */
    /* a max-heap of the k best so far, on the stack for small k */
    cand stack_buf[256];
    cand *a = k <= 256 ? stack_buf : malloc(k * sizeof *a);
    if (!a) return 0;
    heap top = {a, 0, k};
    for (size_t i = 0; i < n; i++) {
        if (filter && !filter(labels[i], ud)) continue;
        float d = vdist(m, q, vecs + i * dim, dim);
        if (isnan(d)) continue;
        if (top.n < k)
            heap_push(&top, (cand){d, (uint32_t)i}, 1);
        else if (d < top.a[0].d) {
            heap_pop(&top, 1);
            heap_push(&top, (cand){d, (uint32_t)i}, 1);
        }
    }
    /* indices beyond 32 bits would not fit a cand: exact search is for sets far smaller */
    size_t r = top.n;
    for (size_t i = r; i > 0; i--) {
        cand x = heap_pop(&top, 1);
        out_labels[i - 1] = labels[x.id];
        if (out_dists) out_dists[i - 1] = x.d;
    }
    if (a != stack_buf) free(a);
    return r;
}

/* ---- persistence (docs/FORMATS.md, "HNSW index file"). All fields little-endian:
 *   header (80 bytes): magic "HRTHNSW1" | u32 version | u32 metric | u64 dim | u32 M |
 *     u32 ef_construction | u32 ef_search | u32 0 | u64 seed | u64 seq | u64 nodes | u64 live |
 *     u32 entry (0xffffffff: empty) | i32 maxlevel (-1: empty)
 *   per node: u64 label | u32 level | u32 flags (bit 0: deleted) | f32 vector[dim] |
 *     for each level 0..level: u32 count | u32 links[count]
 *   trailer: u64 FNV-1a 64 of every byte before it.
 * Vectors of a cosine index are stored normalized, as the index holds them. */

#define FILE_MAGIC "HRTHNSW1"
#define FILE_VERSION 1
#define HEADER_BYTES 80

typedef struct {
    base_afile *f;
    uint8_t *buf;
    size_t len, cap;
    uint64_t sum;
    int rc;
    base_err *e;
} writer;

static void w_flush(writer *w) {
    if (w->rc || !w->len) return;
    w->sum = base_fnv1a64(w->buf, w->len, w->sum);
    w->rc = base_afile_write(w->f, w->buf, w->len, w->e);
    w->len = 0;
}
static inline void w_u32(writer *w, uint32_t x) {
    if (w->len + 4 > w->cap) w_flush(w);
    base_put_le32(w->buf + w->len, x);
    w->len += 4;
}
static inline void w_u64(writer *w, uint64_t x) {
    w_u32(w, (uint32_t)x);
    w_u32(w, (uint32_t)(x >> 32));
}
static inline void w_f32(writer *w, float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    w_u32(w, x);
}

int hnsw_save(const hnsw *h, const char *path, uint64_t seq, base_err *e) {
    writer w = {.cap = 1 << 20, .sum = BASE_FNV64_BASIS, .e = e};
    w.buf = malloc(w.cap);
    if (!w.buf) return base_fail(e, BASE_ENOMEM, "hnsw: out of memory saving %s", path);
    int rc = base_afile_open(&w.f, path, e);
    if (rc) {
        free(w.buf);
        return rc;
    }
    memcpy(w.buf, FILE_MAGIC, 8);
    w.len = 8;
    w_u32(&w, FILE_VERSION);
    w_u32(&w, (uint32_t)h->metric);
    w_u64(&w, h->dim);
    w_u32(&w, (uint32_t)h->M);
    w_u32(&w, (uint32_t)h->p.ef_construction);
    w_u32(&w, (uint32_t)h->p.ef_search);
    w_u32(&w, 0);
    w_u64(&w, h->p.seed);
    w_u64(&w, seq);
    w_u64(&w, h->n);
    w_u64(&w, h->live);
    w_u32(&w, h->entry);
    w_u32(&w, (uint32_t)h->maxlevel);
    for (size_t i = 0; i < h->n && !w.rc; i++) {
        uint32_t id = (uint32_t)i;
        w_u64(&w, h->labels[i]);
        w_u32(&w, h->levels[i]);
        w_u32(&w, h->deleted[i] ? 1u : 0u);
        const float *v = vec_of(h, id);
        for (size_t j = 0; j < h->dim; j++) w_f32(&w, v[j]);
        for (int l = 0; l <= h->levels[i]; l++) {
            const uint32_t *ln = links_at(h, id, l);
            for (uint32_t j = 0; j <= ln[0]; j++) w_u32(&w, ln[j]);
        }
    }
    w_flush(&w);
    if (!w.rc) {
        uint8_t t[8];
        base_put_le64(t, w.sum);
        w.rc = base_afile_write(w.f, t, 8, e);
    }
    free(w.buf);
    if (w.rc) {
        base_afile_abort(w.f);
        return w.rc;
    }
    return base_afile_commit(w.f, e);
}

/* A bounds-checked cursor over the mapped file. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
} reader;

static inline int r_need(reader *r, size_t n) {
    return n <= r->len - r->off ? 0 : -1;
}
static inline uint32_t r_u32(reader *r) {
    uint32_t x = base_get_le32(r->p + r->off);
    r->off += 4;
    return x;
}
static inline uint64_t r_u64(reader *r) {
    uint64_t x = base_get_le64(r->p + r->off);
    r->off += 8;
    return x;
}

int hnsw_load(hnsw **out, const char *path, size_t dim, vdist_metric metric, uint64_t *seq,
              base_err *e) {
    *out = NULL;
    /* Mapped, not read: the pages are the page cache's, so loading needs the index's memory
     * once, not twice. Saves replace the file by rename, never truncate it, so the mapping
     * cannot shrink under us. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return base_fail(e, BASE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        int err = errno;
        close(fd);
        return base_fail(e, BASE_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return base_fail(e, BASE_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    const char *data = NULL;
    if (len > 0) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int err = errno;
            close(fd);
            return base_fail(e, BASE_EIO, "%s: cannot map: %s", path, strerror(err));
        }
        data = m;
    }
    close(fd);
    int rc = 0;
    hnsw *h = NULL;
    reader r = {(const uint8_t *)data, len, 0};
#define BAD(...)                                                                                   \
    do {                                                                                           \
        rc = base_fail(e, BASE_EFORMAT, __VA_ARGS__);                                              \
        goto fail;                                                                                 \
    } while (0)
    if (len < HEADER_BYTES + 8) BAD("%s: not an hnsw index (%zu bytes, too short)", path, len);
    if (memcmp(data, FILE_MAGIC, 8)) BAD("%s: not an hnsw index (bad magic)", path);
    uint64_t want = base_get_le64(r.p + len - 8);
    if (base_fnv1a64(data, len - 8, BASE_FNV64_BASIS) != want)
        BAD("%s: checksum mismatch (the file is damaged or truncated)", path);
    r.len = len - 8;
    r.off = 8;
    uint32_t version = r_u32(&r), fmetric = r_u32(&r);
    uint64_t fdim = r_u64(&r);
    uint32_t M = r_u32(&r), efc = r_u32(&r), efs = r_u32(&r);
    (void)r_u32(&r);
    uint64_t seed = r_u64(&r), fseq = r_u64(&r), n = r_u64(&r), live = r_u64(&r);
    uint32_t entry = r_u32(&r);
    int32_t maxlevel = (int32_t)r_u32(&r);
    if (version != FILE_VERSION)
        BAD("%s: hnsw index version %u, this build reads %u", path, version, FILE_VERSION);
    if (fmetric != (uint32_t)metric)
        BAD("%s: index metric is %s, the collection's is %s", path,
            fmetric <= 2 ? vdist_metric_name((vdist_metric)fmetric) : "unknown",
            vdist_metric_name(metric));
    if (fdim != dim)
        BAD("%s: index dimension is %llu, the collection's is %zu", path, (unsigned long long)fdim,
            dim);
    if (M < 2 || M > MAX_M / 2 || efc < 1 || efc > 100000 || efs < 1 || efs > 100000)
        BAD("%s: parameters out of range (M %u, ef_construction %u, ef_search %u)", path, M, efc,
            efs);
    /* every node takes at least label + level + flags + vector + one count */
    size_t min_node;
    if (base_mul_size(dim, 4, &min_node) || base_add_size(min_node, 20, &min_node) ||
        n > MAX_NODES || n > (len - HEADER_BYTES) / min_node || live > n)
        BAD("%s: node count %llu (live %llu) does not fit the file", path, (unsigned long long)n,
            (unsigned long long)live);
    if (n == 0 ? (entry != NONE || maxlevel != -1)
               : (entry >= n || maxlevel < 0 || maxlevel > MAX_LEVEL))
        BAD("%s: bad entry point %u / top level %d for %llu nodes", path, entry, (int)maxlevel,
            (unsigned long long)n);

    hnsw_params p = {(int)M, (int)efc, (int)efs, seed};
    rc = hnsw_create(&h, dim, metric, &p, e);
    if (rc) goto fail;
    rc = reserve(h, (size_t)n, e);
    if (rc) goto fail;
    base_rng_seed(&h->rng,
                  seed ^ base_splitmix64(n)); /* new levels independent of the saved ones */
    int toplevel = -1;
    size_t nlive = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (r_need(&r, 16 + dim * 4)) BAD("%s: truncated at node %u", path, i);
        uint64_t label = r_u64(&r);
        uint32_t level = r_u32(&r), flags = r_u32(&r);
        if (level > MAX_LEVEL || flags > 1)
            BAD("%s: node %u: level %u / flags %u out of range", path, i, level, flags);
        h->labels[i] = label, h->levels[i] = (uint8_t)level, h->deleted[i] = (uint8_t)flags;
        h->upper[i] = NULL;
        h->n = i + 1; /* from here hnsw_free releases this node's upper links */
        if (level > 0) {
            h->upper[i] = calloc((size_t)level * (size_t)(h->M + 1), sizeof(uint32_t));
            if (!h->upper[i]) {
                rc = base_fail(e, BASE_ENOMEM, "%s: out of memory loading node %u", path, i);
                goto fail;
            }
        }
        float *v = (float *)(h->l0 + (size_t)i * h->rec + h->vec_off);
        for (size_t j = 0; j < dim; j++) {
            uint32_t x = r_u32(&r);
            memcpy(&v[j], &x, 4);
            if (!isfinite(v[j])) BAD("%s: node %u: non-finite vector value at %zu", path, i, j);
        }
        for (uint32_t l = 0; l <= level; l++) {
            uint32_t *ln = links_at(h, i, (int)l);
            if (r_need(&r, 4)) BAD("%s: truncated at node %u level %u", path, i, l);
            uint32_t cnt = r_u32(&r);
            if (cnt > (uint32_t)maxlinks(h, (int)l))
                BAD("%s: node %u level %u: %u links, at most %d", path, i, l, cnt,
                    maxlinks(h, (int)l));
            if (r_need(&r, (size_t)cnt * 4)) BAD("%s: truncated at node %u level %u", path, i, l);
            ln[0] = cnt;
            for (uint32_t j = 1; j <= cnt; j++) {
                ln[j] = r_u32(&r);
                if (ln[j] >= n || ln[j] == i)
                    BAD("%s: node %u level %u: link to %u (of %llu nodes)", path, i, l, ln[j],
                        (unsigned long long)n);
            }
        }
        if ((int)level > toplevel) toplevel = (int)level;
        if (!flags) {
            if (map_get(h, label) != NONE)
                BAD("%s: label %llu is live twice", path, (unsigned long long)label);
            if (map_put(h, label, i)) {
                rc = base_fail(e, BASE_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            nlive++;
        }
    }
    if (r.off != r.len) BAD("%s: %zu unexpected bytes after the last node", path, r.len - r.off);
    if (nlive != live)
        BAD("%s: %zu live nodes, the header says %llu", path, nlive, (unsigned long long)live);
    /* links may point at higher levels only where the target has them */
    for (uint32_t i = 0; i < n; i++)
        for (int l = 1; l <= h->levels[i]; l++) {
            const uint32_t *ln = links_at(h, i, l);
            for (uint32_t j = 1; j <= ln[0]; j++)
                if (h->levels[ln[j]] < l)
                    BAD("%s: node %u level %d links to node %u, which has no level %d", path, i, l,
                        ln[j], l);
        }
    if (n && (toplevel != maxlevel || h->levels[entry] != maxlevel))
        BAD("%s: the entry point is not on the top level %d", path, (int)maxlevel);
    h->live = (size_t)live;
    h->entry = entry, h->maxlevel = maxlevel;
    if (data) munmap((void *)data, len);
    if (seq) *seq = fseq;
    *out = h;
    return 0;
#undef BAD
fail:
    hnsw_free(h);
    if (data) munmap((void *)data, len);
    return rc;
}
