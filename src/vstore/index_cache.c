/* vstore/index_cache.c: the index cache — each collection's HNSW graph, loaded from
 * DIR/index/<id>.hnsw at its first use, caught up from SQLite by sequence number (records with
 * a newer vseq re-added, newer tombstones removed), rebuilt when the file is missing, damaged or
 * newer than the database or when deleted nodes dominate, saved on flush, on close and every
 * VSTORE_SAVE_EVERY changes. Private to src/vstore (vstore_int.h); the caller holds the mutex
 * except in vstore_flush and vstore_warm, which take it. */
#include "vstore/vstore_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VSTORE_BUILD_THREADS 1 /* threads of index builds and catch-ups (see index_replay) */
/* Changes applied to an index since it was saved before a save is forced: bounds the replay
 * after a crash of a long-running server. */
#define VSTORE_SAVE_EVERY 50000

static void index_free(vstore_index *x) {
    hnsw_free(x->h);
    free(x);
}

static void index_path(vstore *db, const char *id, char *out, size_t n) {
    snprintf(out, n, "%s/%s.hnsw", db->index_dir, id);
}

static void index_drop(vstore *db, const char *id) {
    for (vstore_index **p = &db->indexes; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            vstore_index *x = *p;
            *p = x->next;
            index_free(x);
            return;
        }
}

void vstore_index_forget(vstore *db, const char *id) {
    index_drop(db, id);
    char p[1024];
    index_path(db, id, p, sizeof p);
    unlink(p);
}

void vstore_index_free_all(vstore *db) {
    while (db->indexes) {
        vstore_index *n = db->indexes->next;
        index_free(db->indexes);
        db->indexes = n;
    }
}

static int index_save(vstore *db, vstore_index *x, base_err *e) {
    char p[1024];
    index_path(db, x->id, p, sizeof p);
    int rc = hnsw_save(x->h, p, x->seq, e);
    if (rc) return rc;
    x->unsaved = 0;
    /* Tombstones at or below the saved seq are in the file now; a rebuild needs none. */
    static const char *const sqls[] = {
        "DELETE FROM tombstones WHERE coll=?1 AND seq<=?2",
        "UPDATE collections SET saved_seq=?2 WHERE id=?1",
    };
    base_err le = {0};
    rc = vstore_begin(db, true, &le);
    for (size_t i = 0; !rc && i < 2; i++) {
        sqlite3_stmt *st;
        if ((rc = vstore_prepare(db, &st, sqls[i], &le))) break;
        sqlite3_bind_text(st, 1, x->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)x->seq);
        if (sqlite3_step(st) != SQLITE_DONE) rc = vstore_sql_fail(db, &le, "record the index save");
        sqlite3_finalize(st);
    }
    if (!rc) rc = vstore_commit(db, &le);
    if (rc) vstore_rollback(db); /* the file is good; only old tombstones stay, harmlessly */
    return 0;
}

int vstore_index_save_all(vstore *db, base_err *e) {
    int rc = 0;
    for (vstore_index *x = db->indexes; x; x = x->next) {
        base_err le = {0};
        int r = x->unsaved ? index_save(db, x, &le) : 0;
        if (r && !rc) rc = base_fail(e, r, "%s", le.msg);
    }
    return rc;
}

int vstore_flush(vstore *db, base_err *e) {
    pthread_mutex_lock(&db->mu);
    int rc = vstore_index_save_all(db, e);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int index_replay(vstore *db, vstore_index *x, uint64_t after, size_t *applied, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st,
                            "SELECT rid, embedding FROM records WHERE coll=? AND vseq>?"
                            " ORDER BY rid",
                            e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, x->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
    enum { CHUNK = 4096 };
    uint64_t *labels = malloc(CHUNK * sizeof *labels);
    float *vecs = malloc(CHUNK * x->dim * sizeof *vecs);
    size_t n = 0;
    if (!labels || !vecs) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    int s = SQLITE_DONE;
    while (!rc) {
        s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            const void *b = sqlite3_column_blob(st, 1);
            if ((size_t)sqlite3_column_bytes(st, 1) != x->dim * sizeof(float) || !b) {
                rc = base_fail(e, BASE_EFORMAT,
                               "%s: record %lld has an embedding of %d bytes,"
                               " the collection's dimension is %zu",
                               db->path, (long long)sqlite3_column_int64(st, 0),
                               sqlite3_column_bytes(st, 1), x->dim);
                break;
            }
            labels[n] = (uint64_t)sqlite3_column_int64(st, 0);
            memcpy(vecs + n * x->dim, b, x->dim * sizeof(float));
            n++;
        } else if (s != SQLITE_DONE) {
            rc = vstore_sql_fail(db, e, "read records for the index");
        }
        if (!rc && n > 0 && (n == CHUNK || s == SQLITE_DONE)) {
            /* One thread: concurrent inserts still leave a rare node (about 1 in 10,000 in
             * tests/vstore's 2-thread builds; 0 with one thread) that a search for its own
             * vector misses, and a store must find every record it acknowledged. */
            rc = hnsw_add_batch(x->h, labels, vecs, n, VSTORE_BUILD_THREADS, e);
            *applied += n;
            n = 0;
        }
        if (s != SQLITE_ROW) break;
    }
    sqlite3_finalize(st);
    free(labels);
    free(vecs);
    if (rc) return rc;
    if ((rc = vstore_prepare(db, &st, "SELECT rid FROM tombstones WHERE coll=? AND seq>?", e)))
        return rc;
    sqlite3_bind_text(st, 1, x->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        /* A label the index never held (added and deleted between two saves) is fine. */
        hnsw_remove(x->h, (uint64_t)sqlite3_column_int64(st, 0), NULL);
        (*applied)++;
    }
    if (s != SQLITE_DONE) rc = vstore_sql_fail(db, e, "read tombstones");
    sqlite3_finalize(st);
    return rc;
}

static int index_build(vstore *db, vstore_index *x, const vstore_coll *c, uint64_t seq,
                       base_err *e) {
    hnsw_free(x->h);
    x->h = NULL;
    hnsw_params p = c->hnsw;
    p.seed = base_fnv1a64(c->id, strlen(c->id), BASE_FNV64_BASIS);
    int rc = hnsw_create(&x->h, c->dim, c->metric, &p, e);
    if (rc) return rc;
    size_t applied = 0;
    if ((rc = index_replay(db, x, 0, &applied, e))) return rc;
    x->seq = seq;
    x->unsaved = applied ? applied : 1;
    return 0;
}

/* The collection's index, loaded (or rebuilt) and caught up with everything committed. The
 * caller holds the mutex; c->dim must be set. */
int vstore_index_get(vstore *db, const vstore_coll *c, vstore_index **out, base_err *e) {
    vstore_index *x = db->indexes;
    while (x && strcmp(x->id, c->id) != 0) x = x->next;
    bool fresh = !x, rebuilt = false;
    if (fresh) {
        if (!(x = calloc(1, sizeof *x))) return base_fail(e, BASE_ENOMEM, "out of memory");
        snprintf(x->id, sizeof x->id, "%s", c->id);
        x->dim = c->dim;
    }
    /* One read transaction: the seq and the rows replayed are of the same snapshot. */
    int rc = vstore_begin(db, false, e);
    uint64_t seq = 0;
    if (!rc) rc = vstore_seq_get(db, &seq, e);
    if (!rc && fresh) {
        char p[1024];
        index_path(db, c->id, p, sizeof p);
        struct stat sb;
        base_err le = {0};
        uint64_t saved = 0;
        if (stat(p, &sb) != 0) {
            uint64_t nrec = 0, saved_seq = 0;
            sqlite3_stmt *st;
            if (!vstore_prepare(db, &st,
                                "SELECT (SELECT count(*) FROM records WHERE coll=?1),"
                                " (SELECT saved_seq FROM collections WHERE id=?1)",
                                NULL)) {
                sqlite3_bind_text(st, 1, c->id, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) == SQLITE_ROW) {
                    nrec = (uint64_t)sqlite3_column_int64(st, 0);
                    saved_seq = (uint64_t)sqlite3_column_int64(st, 1);
                }
                sqlite3_finalize(st);
            }
            /* Never saved: the first use of the collection, nothing to report. */
            rebuilt = saved_seq > 0;
            if (rebuilt)
                vstore_note(db, "collection '%s': index file %s missing; rebuilt from %llu records",
                            c->name, p, (unsigned long long)nrec);
            rc = index_build(db, x, c, seq, e);
        } else if (hnsw_load(&x->h, p, c->dim, c->metric, &saved, &le) != 0) {
            vstore_note(db, "collection '%s': index file damaged (%s); rebuilt from SQLite",
                        c->name, le.msg);
            rc = index_build(db, x, c, seq, e);
            rebuilt = true;
        } else if (saved > seq) {
            vstore_note(db,
                        "collection '%s': index file is newer (seq %llu) than the database (seq"
                        " %llu); rebuilt from SQLite",
                        c->name, (unsigned long long)saved, (unsigned long long)seq);
            rc = index_build(db, x, c, seq, e);
            rebuilt = true;
        } else {
            x->seq = saved;
        }
    }
    if (!rc && x->seq < seq) {
        size_t applied = 0;
        rc = index_replay(db, x, x->seq, &applied, e);
        if (!rc) {
            x->seq = seq;
            x->unsaved += applied;
        }
        /* Deletes and updates leave routing nodes behind; once they outnumber the live ones
         * the graph is rebuilt from SQLite, so memory and search time follow the live set. */
        if (!rc && hnsw_nodes(x->h) > 2 * hnsw_count(x->h) + 1024) {
            rc = index_build(db, x, c, seq, e);
            rebuilt = !rc;
        }
    }
    vstore_rollback(db); /* ends the read transaction */
    if (rc) {
        if (fresh)
            index_free(x);
        else
            index_drop(db, x->id); /* half caught up: next time from the file again */
        return rc;
    }
    if (fresh) {
        x->next = db->indexes;
        db->indexes = x;
    }
    /* A rebuilt index is saved at once, so the next open does not rebuild it again. */
    if (rebuilt || x->unsaved >= VSTORE_SAVE_EVERY) {
        base_err se = {0};
        if (index_save(db, x, &se)) vstore_note(db, "collection '%s': %s", c->name, se.msg);
    }
    *out = x;
    return 0;
}

int vstore_warm(vstore *db, base_err *e) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st;
    int rc =
        vstore_prepare(db, &st, "SELECT id FROM collections WHERE dim > 0 ORDER BY created", e);
    char(*ids)[40] = NULL;
    size_t n = 0, cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (base_grow(&ids, &cap, n + 1, sizeof *ids, SIZE_MAX)) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        snprintf(ids[n++], 40, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < n && !rc; i++) {
        vstore_coll c = {0};
        vstore_index *x;
        if (!(rc = vstore_coll_load(db, ids[i], &c, e))) rc = vstore_index_get(db, &c, &x, e);
        vstore_coll_free(&c);
    }
    free(ids);
    pthread_mutex_unlock(&db->mu);
    return rc;
}
