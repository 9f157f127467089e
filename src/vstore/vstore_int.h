/* vstore/vstore_int.h: what vstore.c (the handle, schema, collections, index cache) shares with
 * records.c (writes, filters, searches) and chroma.c. Not for use outside src/vstore. */
#ifndef HEARTH_VSTORE_INT_H
#define HEARTH_VSTORE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#include "vstore/vstore.h"

/* One collection's graph in memory: it contains every write up to `seq` (the store's sequence
 * number); `unsaved` counts changes since the file was last written. */
typedef struct vstore_index {
    char id[40];
    hnsw *h;
    size_t dim;
    uint64_t seq;
    size_t unsaved;
    struct vstore_index *next;
} vstore_index;

struct vstore {
    sqlite3 *db;
    char *dir, *path, *index_dir;
    pthread_mutex_t mu;       /* every public call holds it */
    vstore_index *indexes;    /* loaded lazily, by collection */
    base_buf notes;           /* repairs, for vstore_notes */
    size_t max_body;          /* vstore_http's body limit (vstore_set_max_body) */
    vstore_embed_fn embed_fn; /* vstore_set_embedder: NULL, or set before any request */
    void *embed_ud;
    char *reserve; /* DIR/vstore.reserve */
    bool reserved; /* it holds VSTORE_RESERVE bytes */
};

/* SQLite helpers: status codes with the database path and SQLite's message. */
int vstore_sql_fail(vstore *db, base_err *e, const char *what);
int vstore_prepare(vstore *db, sqlite3_stmt **st, const char *sql, base_err *e);
int vstore_exec(vstore *db, const char *sql, base_err *e);
int vstore_begin(vstore *db, bool write, base_err *e);
int vstore_commit(vstore *db, base_err *e);
void vstore_rollback(vstore *db); /* no-op outside a transaction */
int vstore_seq_get(vstore *db, uint64_t *seq, base_err *e);
int vstore_seq_next(vstore *db, uint64_t *seq, base_err *e); /* in a write transaction */

/* The reserve: VSTORE_RESERVE bytes allocated in DIR/vstore.reserve (posix_fallocate) and
 * given back to the file system when a delete (or the open before it) meets a full disk, so the
 * delete that frees space still commits (in WAL mode even a delete needs room to write). A write
 * makes it again first and is refused (BASE_ENOSPC) when it cannot, so writes meet a full disk
 * while deletes still have room. With the mutex held. */
#define VSTORE_RESERVE (4u << 20)
int vstore_reserve_keep(vstore *db, base_err *e); /* makes it when missing; BASE_ENOSPC if full */
bool vstore_reserve_release(vstore *db);          /* removes it, checkpoints; false when none */
void vstore_reserve_done(vstore *db); /* after the retry: checkpoint the WAL, keep it again */

char *vstore_strdup(const char *s); /* NULL stays NULL */
void vstore_note(vstore *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vstore_check_meta_object(const char *json, const char *what, base_err *e);

/* ---- full text (fts.c) */
/* Registers the "hearth" FTS5 tokenizer and the hearth_bm25() ranking function on db. */
int vstore_fts_register(sqlite3 *db);
/* The FTS5 table of collection c: "fts" (shared, unicode61) or "fts_<hex of its id>". */
#define VSTORE_FTS_NAME 48
void vstore_fts_table(const vstore_coll *c, char out[VSTORE_FTS_NAME]);
/* A new collection's full-text settings from its metadata (NULL: none): "hearth:analyzer"
 * (english, english_all, standard, unicode61), "hearth:bm25_k1", "hearth:bm25_b" (numbers).
 * A wrong type or name is BASE_EINVAL naming the key; ranges are vstore_coll_create's. */
int vstore_text_from_meta(const json_t *meta, vstore_text *out, base_err *e);

/* With the mutex held. */
int vstore_coll_load(vstore *db, const char *id, vstore_coll *c, base_err *e);
int vstore_coll_delete_locked(vstore *db, const char *id, base_err *e);

/* ---- the index cache (index_cache.c), with the mutex held */
/* The collection's index, loaded (or rebuilt) and caught up with everything committed; c->dim
 * must be set. Valid until the next call that writes or drops indexes. */
int vstore_index_get(vstore *db, const vstore_coll *c, vstore_index **out, base_err *e);
/* Saves every index with unsaved changes: the first failure (e may be NULL), after all tried. */
int vstore_index_save_all(vstore *db, base_err *e);
/* Drops collection id's index from the cache and removes its file (a deleted collection). */
void vstore_index_forget(vstore *db, const char *id);
void vstore_index_free_all(vstore *db); /* at close, after the last save */

#endif
