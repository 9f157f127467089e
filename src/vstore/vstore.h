/* vstore/vstore.h: the vector store — collections of records (id, embedding, document, metadata)
 * kept in SQLite (WAL, FTS5), searched through an HNSW index derived from it.
 *
 * A store is a directory: DIR/vstore.db (SQLite: the truth) and DIR/index/<collection id>.hnsw
 * (each collection's graph, a cache that is caught up from SQLite by sequence number, and rebuilt
 * when missing or damaged). Every write is one SQLite transaction, validated whole before
 * anything is written; when it returns 0 it is durable (synchronous=FULL).
 *
 * Ownership: strings and arrays passed in are borrowed for the call. Results (vstore_coll,
 * vstore_result) are filled by the store and released with their _free function. A handle is
 * thread-safe (one mutex per handle serializes calls). JSON arguments (metadata, where,
 * where_document) are JSON texts; NULL means none. */
#ifndef HEARTH_VSTORE_H
#define HEARTH_VSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "vstore/hnsw.h"

typedef struct vstore vstore;

/* Limits on what one request may carry (oversized requests are refused, nothing written). */
#define VSTORE_MAX_BATCH 50000         /* records per write */
#define VSTORE_MAX_DIM 65536           /* embedding dimension */
#define VSTORE_MAX_ID 1024             /* bytes of a record id */
#define VSTORE_MAX_DOC (4u << 20)      /* bytes of a document */
#define VSTORE_MAX_META (256u << 10)   /* bytes of one metadata object as JSON */
#define VSTORE_MAX_FILTER (256u << 10) /* bytes of a where / where_document */
#define VSTORE_MAX_RESULTS 100000      /* rows of one answer: queries x n_results, or a get's */
#define VSTORE_MAX_ANSWER (64u << 20)  /* bytes of one answer's JSON text, about (see records.c) */
#define VSTORE_EXACT_MAX 2000          /* filtered search: exact at or below this many matches */

/* Opens (creating if absent) the store in directory dir. A damaged database is BASE_EFORMAT. */
int vstore_open(vstore **out, const char *dir, base_err *e);
/* Saves every index that has changes since it was last saved, then closes. NULL is fine. It
 * cannot report a failed save: a caller that must (the CLI, a server shutting down) calls
 * vstore_flush first. A failed save loses no record (SQLite holds them; the next open
 * replays what the file lacks). */
void vstore_close(vstore *db);
/* Saves the changed indexes now (vstore_close does it too): the first failure (a full disk:
 * the message names the file and the reason), after trying every index. */
int vstore_flush(vstore *db, base_err *e);
/* Loads every collection's index now and catches it up (otherwise each is loaded at its first
 * use): a server calls it after vstore_open so repairs are reported, and paid for, at start. */
int vstore_warm(vstore *db, base_err *e);
/* What the store had to repair since it was opened (an index rebuilt, and why), one line each;
 * "" when nothing. Valid until the next call on db. */
const char *vstore_notes(vstore *db);

/* ---- collections. tenant / database NULL mean "default_tenant" / "default_database". */

/* A collection's full-text settings (analyzer.h): the analyzer (a vstore_analyzer) and Lucene
 * BM25's k1 and b. Collections made before analyzers existed read as VSTORE_AN_UNICODE61 (FTS5's
 * tokenizer and bm25() over the store's shared index); new ones default to english, k1 0.9,
 * b 0.4. Fixed at creation. */
typedef struct {
    int analyzer;
    double k1, b;
} vstore_text;

typedef struct {
    char id[40];    /* UUID text */
    char *name;     /* malloc'd */
    char *metadata; /* JSON object text (malloc'd) or NULL */
    char *tenant, *database;
    vdist_metric metric;
    size_t dim;       /* 0 until fixed (at creation, or by the first add) */
    hnsw_params hnsw; /* M, ef_construction, ef_search */
    vstore_text text;
} vstore_coll;
void vstore_coll_free(vstore_coll *c); /* frees the strings; NULL is fine */

typedef struct {
    vdist_metric metric;  /* default VDIST_L2 */
    size_t dim;           /* 0: fixed by the first add */
    hnsw_params hnsw;     /* zeros: defaults (16, 200, 64) */
    const char *metadata; /* JSON object or NULL */
    vstore_text text;     /* zeros: the metadata's "hearth:analyzer" (english, english_all,
                         standard, unicode61), "hearth:bm25_k1", "hearth:bm25_b" where it
                         has them, else english, k1 0.9, b 0.4; k1 in [0, 10], b in [0, 1] */
} vstore_coll_opts;

/* Creates a collection (get_or_create: returns the existing one if the name is taken, else
 * a name taken is BASE_EEXISTS). Names: 3-512 of [A-Za-z0-9._-], starting and
 * ending with a letter or digit. out may be NULL. */
int vstore_coll_create(vstore *db, const char *tenant, const char *database, const char *name,
                       const vstore_coll_opts *o, bool get_or_create, vstore_coll *out,
                       base_err *e);
/* Finds a collection by id, or by name in (tenant, database). Unknown: BASE_ENOTFOUND. */
int vstore_coll_get(vstore *db, const char *tenant, const char *database, const char *name_or_id,
                    vstore_coll *out, base_err *e);
/* Collections of a database ordered by creation; *out is a malloc'd array of *n (free each with
 * vstore_coll_free, then the array). limit 0: all. */
int vstore_coll_list(vstore *db, const char *tenant, const char *database, size_t limit,
                     size_t offset, vstore_coll **out, size_t *n, base_err *e);
int vstore_coll_count(vstore *db, const char *tenant, const char *database, uint64_t *n,
                      base_err *e);
/* Renames (new_name may be NULL), replaces the metadata (NULL: unchanged) and/or sets the
 * search-time ef (ef_search 0: unchanged) of collection id. */
int vstore_coll_modify(vstore *db, const char *id, const char *new_name, const char *metadata,
                       int ef_search, base_err *e);
/* Deletes a collection by name or id, its records and its index file. */
int vstore_coll_delete(vstore *db, const char *tenant, const char *database, const char *name_or_id,
                       base_err *e);

/* ---- tenants and databases (the Chroma namespaces) */
int vstore_tenant_create(vstore *db, const char *name, base_err *e);
int vstore_tenant_exists(vstore *db, const char *name, bool *yes, base_err *e);
int vstore_database_create(vstore *db, const char *tenant, const char *name, base_err *e);
/* *id receives the database's UUID text (40 bytes) when not NULL. */
int vstore_database_get(vstore *db, const char *tenant, const char *name, char *id, base_err *e);
int vstore_database_list(vstore *db, const char *tenant, char ***names, size_t *n, base_err *e);
int vstore_database_delete(vstore *db, const char *tenant, const char *name, base_err *e);

/* ---- records */
typedef enum { VSTORE_ADD, VSTORE_UPSERT, VSTORE_UPDATE } vstore_mode;

/* One batch. ADD: ids must be new and distinct, embeddings required. UPSERT: embeddings
 * required; an existing id is updated. UPDATE: ids must exist; NULL arrays (or NULL entries of
 * documents / metadatas) leave the field as it was. Metadata of an update or upsert is merged
 * into the stored one key by key; a key set to null is removed. */
typedef struct {
    size_t n;
    const char *const *ids;       /* n */
    const float *embeddings;      /* n x dim, or NULL */
    const char *const *documents; /* n or NULL */
    const char *const *metadatas; /* n JSON objects or NULL */
} vstore_batch;

/* dim: the embeddings' dimension (checked against the collection's; the first add fixes it). */
int vstore_write(vstore *db, const char *coll_id, vstore_mode mode, const vstore_batch *b,
                 size_t dim, base_err *e);

/* vstore_write for records without embeddings (b->embeddings must be NULL): ADD / UPSERT /
 * UPDATE of records found by text (BM25) only. A collection holds either such records or
 * embedded ones (its dim stays 0 while text-only); mixing them is BASE_EINVAL. */
int vstore_write_text(vstore *db, const char *coll_id, vstore_mode mode, const vstore_batch *b,
                      base_err *e);

/* Deletes every record of the collection that matches where (a non-empty filter) and upserts b
 * (with embeddings of dimension dim, or text-only when b->embeddings is NULL), in one
 * transaction: a reader sees the old records or the new ones, never a mix (a document
 * re-ingested). *replaced (may be NULL) gets the number deleted. */
int vstore_replace(vstore *db, const char *coll_id, const char *where, const vstore_batch *b,
                   size_t dim, size_t *replaced, base_err *e);

/* Deletes the records with the given ids (those that exist) that also match where /
 * where_document; with no ids, every match of the filters (at least one filter required).
 * limit > 0 deletes at most that many (the oldest first). *deleted (may be NULL) gets the
 * number removed. */
int vstore_delete(vstore *db, const char *coll_id, const char *const *ids, size_t n_ids,
                  const char *where, const char *where_document, size_t limit, size_t *deleted,
                  base_err *e);
int vstore_count(vstore *db, const char *coll_id, uint64_t *n, base_err *e);

enum {
    VSTORE_INC_EMBEDDINGS = 1,
    VSTORE_INC_DOCUMENTS = 2,
    VSTORE_INC_METADATAS = 4,
    VSTORE_INC_DISTANCES = 8,
};

/* Records of a get, or of one query. Arrays hold n entries; those not included are NULL, as
 * are the documents / metadatas of records that have none. */
typedef struct {
    size_t n, dim;
    char **ids;
    float *embeddings; /* n x dim */
    char **documents;
    char **metadatas; /* JSON object texts */
    float *distances; /* query: the metric's distance; text: BM25 (higher is better); hybrid:
                         the fused score (higher is better). Text and hybrid always fill it. */
} vstore_result;
void vstore_result_free(vstore_result *r); /* frees its arrays; NULL is fine */

typedef struct {
    const char *const *ids; /* NULL: no id restriction */
    size_t n_ids;
    const char *where, *where_document;
    size_t limit, offset; /* limit 0: all */
    unsigned include;     /* VSTORE_INC_* (distances ignored) */
} vstore_get_req;
/* Records in insertion order (by id list order when ids are given and no filter). At most
 * VSTORE_MAX_RESULTS records and VSTORE_MAX_ANSWER bytes: more is BASE_EINVAL (page with limit
 * and offset). */
int vstore_get(vstore *db, const char *coll_id, const vstore_get_req *r, vstore_result *out,
               base_err *e);

typedef struct {
    const float *queries; /* nq x dim */
    size_t nq, dim, k;
    const char *const *ids; /* NULL, or search among these records only */
    size_t n_ids;
    const char *where, *where_document;
    unsigned include;
    int ef;           /* 0: the collection's ef_search */
    size_t exact_max; /* 0: VSTORE_EXACT_MAX (the filtered-search rule below) */
    int *used_exact;  /* OUT, optional: 1 if the exact path ran, 0 for the graph */
} vstore_query_req;
/* k nearest records to each query (out: nq results, nearest first; the caller frees each and
 * the array). nq x k is at most VSTORE_MAX_RESULTS and the answer at most VSTORE_MAX_ANSWER
 * bytes (BASE_EINVAL beyond). The filtered-search rule: with a filter, the matching set is counted
 * in SQLite first; at most exact_max matches, or at most 1/20 of the collection, are searched
 * exactly (their vectors read from SQLite); a larger set is searched in the graph with the filter
 * as a predicate and ef raised by the inverse selectivity (at most 20x), so the graph search still
 * visits about ef matching nodes. Either way recall stays near that of an unfiltered search. */
int vstore_query(vstore *db, const char *coll_id, const vstore_query_req *r, vstore_result **out,
                 base_err *e);

/* BM25 full-text search (FTS5) over documents: the words of text, any of them, best first;
 * distances = BM25 score (higher is better). */
int vstore_text_search(vstore *db, const char *coll_id, const char *text, size_t k,
                       const char *where, unsigned include, vstore_result *out, base_err *e);

typedef struct {
    const float *query; /* dim */
    size_t dim;
    const char *text;
    size_t k;
    const char *where;
    unsigned include;
    double rrf_k;           /* 0: 60 */
    double w_dense, w_text; /* weights of each ranking (0 and 0: 1 and 1) */
} vstore_hybrid_req;
/* Reciprocal rank fusion of the dense ranking and the BM25 ranking (each the top
 * max(k, 50)): score(d) = w_dense / (rrf_k + rank_dense(d)) + w_text / (rrf_k + rank_text(d)),
 * ranks from 1, a ranking that misses d contributing 0. Best first; distances = the score. */
int vstore_hybrid(vstore *db, const char *coll_id, const vstore_hybrid_req *r, vstore_result *out,
                  base_err *e);

/* The Chroma v2 HTTP API (/api/v2/...) as a function from request to response: the server hands
 * every /api/v2/ request here. path is already percent-decoded (as libmicrohttpd hands it to
 * its handler) and is not decoded again: /tenants/x%2541 on the wire is tenant "x%41". query is
 * the raw query string after '?' (still encoded), or NULL.
 * *status is the HTTP status; *body a malloc'd JSON text the caller frees. Thread-safe. */
void vstore_http(vstore *db, const char *method, const char *path, const char *query,
                 const char *body, size_t len, int *status, char **resp);

/* The largest request body vstore_http accepts (413 beyond); pre-flight-checks' max_batch_size
 * is the most records such a body can carry. The server passes its own body limit (hearth
 * serve's --max-body) after vstore_open; until then it is VSTORE_HTTP_MAX_BODY, hearth serve's
 * default. */
#define VSTORE_HTTP_MAX_BODY ((size_t)1 << 20)
void vstore_set_max_body(vstore *db, size_t bytes);

/* Server-side embedding (the vector store depends on base alone, so the model comes from the
 * caller): fn embeds n texts with the model a collection names and returns *out (malloc'd,
 * n x *dim floats, the caller frees) or an error in *e (BASE_EINVAL: an unknown model, a bad
 * text). model is the collection's metadata "hearth:embedding_model", or its configuration's
 * embedding_function (name "hearth": config.model; name "default", Chroma's default function:
 * "", the server's default model). With an embedder set, vstore_http's add, upsert and update
 * with documents but no embeddings embed the documents, and query takes query_texts
 * (docs/API.md, "Server-side embedding"). Set once, before requests; fn must be thread-safe. */
typedef int (*vstore_embed_fn)(void *ud, const char *model, const char *const *texts, size_t n,
                               float **out, size_t *dim, base_err *e);
void vstore_set_embedder(vstore *db, vstore_embed_fn fn, void *ud);
/* The metadata key naming a collection's embedding model, and the one keeping the
 * configuration's embedding_function (hidden from the metadata the API returns). */
#define VSTORE_META_EMBED_MODEL "hearth:embedding_model"
#define VSTORE_META_EMBED_FN "hearth:embedding_function"

/* Chroma's error body, {"error": kind, "message": message}, as a malloc'd JSON text (NULL when
 * out of memory): what the server answers to /api/v2 requests it refuses before vstore_http
 * (401, 404, 405, 413), so the client reads them as it reads vstore_http's. The client shows
 * message. kinds as vstore_http uses them: "InvalidArgumentError", "NotFoundError",
 * "MethodNotAllowed", "RequestTooLargeError", "InsufficientStorageError", "InternalError"; for
 * 401 "AuthorizationError". */
char *vstore_http_error(const char *kind, const char *message);

#endif
