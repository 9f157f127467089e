/* vstore/vstore.c: the store — the handle, SQLite schema and transactions, collections,
 * namespaces, and the reserve that lets deletes commit on a full disk. The index cache is in
 * index_cache.c; records, filters and searches in records.c; the handle they share in
 * vstore_int.h. */
#include "vstore/analyzer.h"
#include "vstore/vstore_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The schema. records.rid is AUTOINCREMENT so a rid is never reused: a tombstone for a rid
 * then means "this label is gone for good", and catch-up can replay adds and deletes in any
 * order. seq is the store's write counter (vs_meta 'seq'); a record's seq is that of its last
 * write, vseq that of its last embedding change (what the index must replay). rmeta holds
 * metadata one typed value per row (t: 0 string, 1 number, 2 bool) so filters are indexed SQL.
 * collections.saved_seq is the seq of the index file last written (0: never), so a missing
 * file can be told from one not written yet. coll_text holds a collection's analyzer and BM25
 * parameters; a collection without a row (made before it existed) uses the shared table fts
 * (unicode61, bm25()), one with a row its own table fts_<id> (analyzer.h, fts.c). */
static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS vs_meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS tenants(name TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS databases(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
    "  name TEXT NOT NULL, UNIQUE(tenant, name));"
    "CREATE TABLE IF NOT EXISTS collections(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
    "  database TEXT NOT NULL, name TEXT NOT NULL, metadata TEXT, metric INTEGER NOT NULL,"
    "  dim INTEGER NOT NULL, m INTEGER NOT NULL, efc INTEGER NOT NULL, efs INTEGER NOT NULL,"
    "  created INTEGER NOT NULL, saved_seq INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(tenant, database, name));"
    "CREATE TABLE IF NOT EXISTS records(rid INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  coll TEXT NOT NULL, id TEXT NOT NULL, embedding BLOB NOT NULL, document TEXT,"
    "  metadata TEXT, seq INTEGER NOT NULL, vseq INTEGER NOT NULL, UNIQUE(coll, id));"
    "CREATE INDEX IF NOT EXISTS records_vseq ON records(coll, vseq);"
    "CREATE TABLE IF NOT EXISTS rmeta(rid INTEGER NOT NULL, key TEXT NOT NULL,"
    "  t INTEGER NOT NULL, v, PRIMARY KEY(rid, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS rmeta_kv ON rmeta(key, t, v);"
    "CREATE TABLE IF NOT EXISTS tombstones(coll TEXT NOT NULL, rid INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tombstones_cs ON tombstones(coll, seq);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(document);"
    "CREATE TABLE IF NOT EXISTS coll_text(coll TEXT PRIMARY KEY, analyzer INTEGER NOT NULL,"
    "  k1 REAL NOT NULL, b REAL NOT NULL);"
    "INSERT OR IGNORE INTO vs_meta VALUES('version', 1);"
    "INSERT OR IGNORE INTO vs_meta VALUES('seq', 0);"
    "INSERT OR IGNORE INTO tenants VALUES('default_tenant');";

#define VSTORE_SCHEMA_VERSION 1

/* ---- SQLite helpers */

/* The status of SQLite's last error: a damaged file, a full disk, or another I/O failure. */
static int sql_status(vstore *db) {
    int rc = sqlite3_errcode(db->db);
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return BASE_EFORMAT;
    return rc == SQLITE_FULL ? BASE_ENOSPC : BASE_EIO;
}

int vstore_sql_fail(vstore *db, base_err *e, const char *what) {
    return base_fail(e, sql_status(db), "%s: %s: %s", db->path, what, sqlite3_errmsg(db->db));
}

int vstore_prepare(vstore *db, sqlite3_stmt **st, const char *sql, base_err *e) {
    if (sqlite3_prepare_v2(db->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return vstore_sql_fail(db, e, "prepare");
    }
    return 0;
}

int vstore_exec(vstore *db, const char *sql, base_err *e) {
    char *msg = NULL;
    if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sql_status(db);
        base_fail(e, code, "%s: %s", db->path, msg ? msg : sqlite3_errmsg(db->db));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock up front, so a writer never fails half-way on
 * SQLITE_BUSY after its reads. */
int vstore_begin(vstore *db, bool write, base_err *e) {
    return vstore_exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN", e);
}
int vstore_commit(vstore *db, base_err *e) {
    return vstore_exec(db, "COMMIT", e);
}
void vstore_rollback(vstore *db) {
    if (!sqlite3_get_autocommit(db->db)) sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
}

int vstore_seq_get(vstore *db, uint64_t *seq, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "SELECT value FROM vs_meta WHERE key='seq'", e);
    if (rc) return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return base_fail(e, BASE_EFORMAT, "%s: the sequence number is missing", db->path);
    }
    *seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Inside a write transaction: the next sequence number, stored. */
int vstore_seq_next(vstore *db, uint64_t *seq, base_err *e) {
    int rc = vstore_seq_get(db, seq, e);
    if (rc) return rc;
    (*seq)++;
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE vs_meta SET value=%llu WHERE key='seq'",
             (unsigned long long)*seq);
    return vstore_exec(db, sql, e);
}

/* ---- small helpers shared with records.c */

char *vstore_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void gen_uuid(char out[40]) {
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof b) { /* no urandom: time and pid still make ids unique enough */
        base_rng r;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        base_rng_seed(&r, (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid());
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)base_rng_u64(&r);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void vstore_note(vstore *db, const char *fmt, ...) {
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    base_buf_printf(&db->notes, "%s\n", line);
}

const char *vstore_notes(vstore *db) {
    return db->notes.data && !db->notes.failed ? db->notes.data : "";
}

static const char *tenant_or_default(const char *t) {
    return t && *t ? t : "default_tenant";
}
static const char *database_or_default(const char *d) {
    return d && *d ? d : "default_database";
}

static int database_create(vstore *db, const char *tenant, const char *name, base_err *e);

/* ---- open / close */

static int check_integrity(vstore *db, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "PRAGMA quick_check", e);
    if (rc) return base_fail(e, BASE_EFORMAT, "%s: damaged (%s)", db->path, e ? e->msg : "");
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = base_fail(e, BASE_EFORMAT, "%s: damaged: %s", db->path, sqlite3_errmsg(db->db));
    } else {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") != 0)
            rc = base_fail(e, BASE_EFORMAT, "%s: damaged: quick_check says %s", db->path,
                           r ? r : "(nothing)");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Opens db->path and sets it up (WAL, synchronous=FULL, integrity, schema); on failure the
 * connection is closed again. */
static int sqlite_setup(vstore *db, base_err *e) {
    int rc;
    if (sqlite3_open_v2(db->path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = base_fail(e, BASE_EIO, "%s: cannot open: %s", db->path,
                       db->db ? sqlite3_errmsg(db->db) : "out of memory");
        sqlite3_close(db->db);
        db->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(db->db, 5000);
    if (vstore_fts_register(db->db) != SQLITE_OK) {
        rc = base_fail(e, BASE_EIO, "%s: cannot register the full-text analyzers: %s", db->path,
                       sqlite3_errmsg(db->db));
        sqlite3_close(db->db);
        db->db = NULL;
        return rc;
    }
    /* WAL + synchronous=FULL: a commit returns after the WAL is fsync'd, so an acknowledged
     * write survives a process kill and a power cut. */
    if ((rc = vstore_exec(db, "PRAGMA journal_mode=WAL", e)) ||
        (rc = vstore_exec(db, "PRAGMA synchronous=FULL", e)) || (rc = check_integrity(db, e)) ||
        (rc = vstore_exec(db, SCHEMA, e))) {
        if (rc == BASE_EIO && sqlite3_errcode(db->db) == SQLITE_NOTADB) rc = BASE_EFORMAT;
        if (e) e->code = rc;
        sqlite3_close(db->db);
        db->db = NULL;
    }
    return rc;
}

int vstore_open(vstore **out, const char *dir, base_err *e) {
    *out = NULL;
    int rc = base_mkdir_p(dir, e);
    if (rc) return rc;
    vstore *db = calloc(1, sizeof *db);
    if (!db) return base_fail(e, BASE_ENOMEM, "out of memory");
    pthread_mutex_init(&db->mu, NULL);
    db->max_body = VSTORE_HTTP_MAX_BODY;
    size_t dl = strlen(dir);
    db->dir = vstore_strdup(dir);
    db->path = malloc(dl + 16);
    db->index_dir = malloc(dl + 16);
    db->reserve = malloc(dl + 16);
    if (!db->dir || !db->path || !db->index_dir || !db->reserve) {
        vstore_close(db);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    snprintf(db->path, dl + 16, "%s/vstore.db", dir);
    snprintf(db->index_dir, dl + 16, "%s/index", dir);
    snprintf(db->reserve, dl + 16, "%s/vstore.reserve", dir);
    if ((rc = base_mkdir_p(db->index_dir, e))) {
        vstore_close(db);
        return rc;
    }
    rc = sqlite_setup(db, e);
    /* On a full disk SQLite cannot even make the WAL's shared-memory file: the reserve gives
     * the room (a store must open to be emptied), and is not made again before a write. */
    bool released = false;
    if ((rc == BASE_EIO || rc == BASE_ENOSPC) && (released = vstore_reserve_release(db)))
        rc = sqlite_setup(db, e);
    if (rc) {
        vstore_close(db);
        return rc;
    }
    sqlite3_stmt *st;
    if ((rc = vstore_prepare(db, &st, "SELECT value FROM vs_meta WHERE key='version'", e))) {
        vstore_close(db);
        return rc;
    }
    long long ver = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (ver != VSTORE_SCHEMA_VERSION) {
        rc = base_fail(e, BASE_EFORMAT, "%s: schema version %lld, this hearth reads %d", db->path,
                       ver, VSTORE_SCHEMA_VERSION);
        vstore_close(db);
        return rc;
    }
    /* The default namespace exists in every store, as in Chroma. */
    if ((rc = database_create(db, "default_tenant", "default_database", NULL)) &&
        rc != BASE_EEXISTS) {
        vstore_close(db);
        return rc;
    }
    if (!released) vstore_reserve_keep(db, NULL);
    if (e) e->code = 0;
    *out = db;
    return 0;
}

/* ---- the reserve (vstore_int.h) */

int vstore_reserve_keep(vstore *db, base_err *e) {
    if (db->reserved) return 0;
    int fd = open(db->reserve, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int err = fd < 0 ? errno : posix_fallocate(fd, 0, VSTORE_RESERVE);
    if (fd >= 0) close(fd);
    db->reserved = err == 0;
    if (err == ENOSPC || err == EDQUOT)
        return base_fail(e, BASE_ENOSPC,
                         "%s: the disk is full: no room for the %u MiB kept so that deletes work;"
                         " delete records or free space",
                         db->dir, VSTORE_RESERVE >> 20);
    return 0; /* another failure (a file system without the call): no reserve, no refusal */
}

bool vstore_reserve_release(vstore *db) {
    db->reserved = false;
    if (unlink(db->reserve) != 0) return false;
    vstore_note(db, "the disk is full: %s (%u MiB) given back to make room", db->reserve,
                VSTORE_RESERVE >> 20);
    /* Writes that filled the disk may have left the WAL full of pages that extend the database
     * (its checkpoints needed room too): with the reserve's room they go into the database now
     * and the WAL is truncated, which gives back as much as the database grew. */
    if (db->db) sqlite3_exec(db->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    return true;
}

void vstore_reserve_done(vstore *db) {
    /* The WAL holds the delete; copied into the database and truncated, it frees its blocks. */
    sqlite3_exec(db->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (vstore_reserve_keep(db, NULL) == 0 && db->reserved) return;
    /* Still full (the delete freed pages inside the database, not on the disk): keep what there
     * is room for, so the next delete has some room too; writes stay refused until all of it
     * can be kept again. */
    int fd = open(db->reserve, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    for (off_t n = VSTORE_RESERVE / 2; n >= 64 << 10; n /= 2)
        if (posix_fallocate(fd, 0, n) == 0) break;
    close(fd);
}

void vstore_close(vstore *db) {
    if (!db) return;
    if (db->db) {
        vstore_index_save_all(db, NULL); /* a failed save costs a replay, not data */
        sqlite3_close(db->db);
    }
    vstore_index_free_all(db);
    base_buf_free(&db->notes);
    pthread_mutex_destroy(&db->mu);
    free(db->dir);
    free(db->path);
    free(db->index_dir);
    free(db->reserve);
    free(db);
}

/* ---- tenants and databases */

static int check_ns_name(const char *what, const char *s, base_err *e) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 512) return base_fail(e, BASE_EINVAL, "%s name must be 1-512 bytes", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '/')
            return base_fail(e, BASE_EINVAL, "%s name '%s' has a control character or '/'", what,
                             s);
    return 0;
}

int vstore_tenant_create(vstore *db, const char *name, base_err *e) {
    int rc = check_ns_name("tenant", name, e);
    if (rc) return rc;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st;
    if (!(rc = vstore_prepare(db, &st, "INSERT OR IGNORE INTO tenants VALUES(?)", e))) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = vstore_sql_fail(db, e, "create tenant");
        else if (sqlite3_changes(db->db) == 0)
            rc = base_fail(e, BASE_EEXISTS, "tenant '%s' already exists", name);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int tenant_exists(vstore *db, const char *name, bool *yes, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "SELECT 1 FROM tenants WHERE name=?", e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *yes = true;
    else if (s == SQLITE_DONE)
        *yes = false;
    else
        rc = vstore_sql_fail(db, e, "read tenants");
    sqlite3_finalize(st);
    return rc;
}

int vstore_tenant_exists(vstore *db, const char *name, bool *yes, base_err *e) {
    pthread_mutex_lock(&db->mu);
    int rc = tenant_exists(db, tenant_or_default(name), yes, e);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int database_create(vstore *db, const char *tenant, const char *name, base_err *e) {
    tenant = tenant_or_default(tenant);
    int rc = check_ns_name("database", name, e);
    if (rc) return rc;
    bool yes = false;
    if ((rc = tenant_exists(db, tenant, &yes, e))) return rc;
    if (!yes) return base_fail(e, BASE_ENOTFOUND, "tenant '%s' does not exist", tenant);
    char id[40];
    gen_uuid(id);
    sqlite3_stmt *st;
    if ((rc = vstore_prepare(db, &st, "INSERT OR IGNORE INTO databases VALUES(?, ?, ?)", e)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = vstore_sql_fail(db, e, "create database");
    else if (sqlite3_changes(db->db) == 0)
        rc =
            base_fail(e, BASE_EEXISTS, "database '%s' already exists in tenant '%s'", name, tenant);
    sqlite3_finalize(st);
    return rc;
}

int vstore_database_create(vstore *db, const char *tenant, const char *name, base_err *e) {
    pthread_mutex_lock(&db->mu);
    int rc = database_create(db, tenant, name, e);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int database_get(vstore *db, const char *tenant, const char *name, char *id, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "SELECT id FROM databases WHERE tenant=? AND name=?", e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        if (id) snprintf(id, 40, "%s", (const char *)sqlite3_column_text(st, 0));
    } else if (s == SQLITE_DONE) {
        rc = base_fail(e, BASE_ENOTFOUND, "database '%s' does not exist in tenant '%s'", name,
                       tenant);
    } else {
        rc = vstore_sql_fail(db, e, "read databases");
    }
    sqlite3_finalize(st);
    return rc;
}

int vstore_database_get(vstore *db, const char *tenant, const char *name, char *id, base_err *e) {
    pthread_mutex_lock(&db->mu);
    int rc = database_get(db, tenant_or_default(tenant), database_or_default(name), id, e);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int vstore_database_list(vstore *db, const char *tenant, char ***names, size_t *n, base_err *e) {
    *names = NULL;
    *n = 0;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "SELECT name FROM databases WHERE tenant=? ORDER BY name", e);
    if (!rc) {
        sqlite3_bind_text(st, 1, tenant_or_default(tenant), -1, SQLITE_TRANSIENT);
        size_t cap = 0;
        int s;
        while ((s = sqlite3_step(st)) == SQLITE_ROW) {
            if (base_grow(names, &cap, *n + 1, sizeof **names, SIZE_MAX)) {
                rc = base_fail(e, BASE_ENOMEM, "out of memory");
                break;
            }
            (*names)[(*n)++] = vstore_strdup((const char *)sqlite3_column_text(st, 0));
        }
        if (!rc && s != SQLITE_DONE) rc = vstore_sql_fail(db, e, "list databases");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int vstore_database_delete(vstore *db, const char *tenant, const char *name, base_err *e) {
    tenant = tenant_or_default(tenant);
    pthread_mutex_lock(&db->mu);
    int rc = database_get(db, tenant, name, NULL, e);
    /* Its collections go with it, one by one (each removes its records and index file). */
    while (!rc) {
        sqlite3_stmt *st;
        if ((rc = vstore_prepare(
                 db, &st, "SELECT id FROM collections WHERE tenant=? AND database=? LIMIT 1", e)))
            break;
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        char id[40] = "";
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (!id[0]) break;
        rc = vstore_coll_delete_locked(db, id, e);
    }
    if (!rc) {
        sqlite3_stmt *st;
        if (!(rc = vstore_prepare(db, &st, "DELETE FROM databases WHERE tenant=? AND name=?", e))) {
            sqlite3_bind_text(st, 1, tenant, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE) rc = vstore_sql_fail(db, e, "delete database");
            sqlite3_finalize(st);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---- collections */

void vstore_coll_free(vstore_coll *c) {
    if (!c) return;
    free(c->name);
    free(c->metadata);
    free(c->tenant);
    free(c->database);
    memset(c, 0, sizeof *c);
}

#define COLL_COLS                                                                                  \
    "id, tenant, database, name, metadata, metric, dim, m, efc, efs, t.analyzer, t.k1, t.b"
#define COLL_FROM " FROM collections LEFT JOIN coll_text t ON t.coll=collections.id"

static int coll_from_row(sqlite3_stmt *st, vstore_coll *c, base_err *e) {
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", (const char *)sqlite3_column_text(st, 0));
    c->tenant = vstore_strdup((const char *)sqlite3_column_text(st, 1));
    c->database = vstore_strdup((const char *)sqlite3_column_text(st, 2));
    c->name = vstore_strdup((const char *)sqlite3_column_text(st, 3));
    c->metadata = vstore_strdup((const char *)sqlite3_column_text(st, 4));
    c->metric = (vdist_metric)sqlite3_column_int(st, 5);
    c->dim = (size_t)sqlite3_column_int64(st, 6);
    c->hnsw.M = sqlite3_column_int(st, 7);
    c->hnsw.ef_construction = sqlite3_column_int(st, 8);
    c->hnsw.ef_search = sqlite3_column_int(st, 9);
    c->hnsw.seed = 0;
    if (sqlite3_column_type(st, 10) == SQLITE_NULL) {
        c->text = (vstore_text){VSTORE_AN_UNICODE61, 0, 0};
    } else {
        c->text.analyzer = sqlite3_column_int(st, 10);
        c->text.k1 = sqlite3_column_double(st, 11);
        c->text.b = sqlite3_column_double(st, 12);
    }
    if (!c->tenant || !c->database || !c->name ||
        (sqlite3_column_type(st, 4) != SQLITE_NULL && !c->metadata)) {
        vstore_coll_free(c);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    return 0;
}

int vstore_coll_load(vstore *db, const char *id, vstore_coll *c, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st, "SELECT " COLL_COLS COLL_FROM " WHERE id=?", e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        rc = coll_from_row(st, c, e);
    else if (s == SQLITE_DONE)
        rc = base_fail(e, BASE_ENOTFOUND, "collection '%s' does not exist", id);
    else
        rc = vstore_sql_fail(db, e, "read collections");
    sqlite3_finalize(st);
    return rc;
}

static int coll_find(vstore *db, const char *tenant, const char *database, const char *name_or_id,
                     vstore_coll *c, base_err *e) {
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st,
                            "SELECT " COLL_COLS COLL_FROM " WHERE id=?1 OR "
                            "(tenant=?2 AND database=?3 AND name=?1) ORDER BY id=?1 DESC LIMIT 1",
                            e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, name_or_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, tenant_or_default(tenant), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, database_or_default(database), -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        rc = coll_from_row(st, c, e);
    else if (s == SQLITE_DONE)
        rc = base_fail(e, BASE_ENOTFOUND, "collection '%s' does not exist", name_or_id);
    else
        rc = vstore_sql_fail(db, e, "read collections");
    sqlite3_finalize(st);
    return rc;
}

int vstore_coll_get(vstore *db, const char *tenant, const char *database, const char *name_or_id,
                    vstore_coll *out, base_err *e) {
    if (!name_or_id) return base_fail(e, BASE_EINVAL, "no collection name given");
    pthread_mutex_lock(&db->mu);
    int rc = coll_find(db, tenant, database, name_or_id, out, e);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* Chroma's rule, so names move between the two: 3-512 characters of [A-Za-z0-9._-], starting
 * and ending with a letter or digit. */
static int check_coll_name(const char *s, base_err *e) {
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > 512)
        return base_fail(e, BASE_EINVAL, "collection name '%s' must be 3-512 characters",
                         s ? s : "");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '.' || c == '_' || c == '-') && i > 0 && i + 1 < n))
            return base_fail(e, BASE_EINVAL,
                             "collection name '%s': character %zu must be a letter or digit%s", s,
                             i + 1, i > 0 && i + 1 < n ? " or one of . _ -" : "");
    }
    return 0;
}

int vstore_check_meta_object(const char *json, const char *what, base_err *e) {
    if (!json) return 0;
    if (strlen(json) > VSTORE_MAX_META)
        return base_fail(e, BASE_EINVAL, "%s: metadata larger than %u bytes", what,
                         VSTORE_MAX_META);
    json_error_t je;
    json_t *m = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (!m) return base_fail(e, BASE_EINVAL, "%s: metadata is not JSON: %s", what, je.text);
    int rc = 0;
    if (!json_is_object(m)) rc = base_fail(e, BASE_EINVAL, "%s: metadata must be an object", what);
    json_decref(m);
    return rc;
}

/* The collection's full-text settings and its own FTS5 table, in the creating transaction. */
static int text_create(vstore *db, const vstore_coll *c, const vstore_text *tx, base_err *e) {
    vstore_coll with = *c;
    with.text = *tx;
    char table[VSTORE_FTS_NAME], sql[160];
    vstore_fts_table(&with, table);
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s USING fts5(document, tokenize='hearth %s')",
             table, vstore_analyzer_name(tx->analyzer));
    int rc = vstore_exec(db, sql, e);
    sqlite3_stmt *st = NULL;
    if (!rc && !(rc = vstore_prepare(db, &st, "INSERT INTO coll_text VALUES(?,?,?,?)", e))) {
        sqlite3_bind_text(st, 1, c->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, tx->analyzer);
        sqlite3_bind_double(st, 3, tx->k1);
        sqlite3_bind_double(st, 4, tx->b);
        if (sqlite3_step(st) != SQLITE_DONE) rc = vstore_sql_fail(db, e, "create collection");
    }
    sqlite3_finalize(st);
    return rc;
}

int vstore_coll_create(vstore *db, const char *tenant, const char *database, const char *name,
                       const vstore_coll_opts *o, bool get_or_create, vstore_coll *out,
                       base_err *e) {
    vstore_coll_opts def = {0};
    if (!o) o = &def;
    tenant = tenant_or_default(tenant);
    database = database_or_default(database);
    int rc = check_coll_name(name, e);
    if (rc) return rc;
    if (o->metric != VDIST_L2 && o->metric != VDIST_IP && o->metric != VDIST_COSINE)
        return base_fail(e, BASE_EINVAL, "unknown distance %d", (int)o->metric);
    if (o->dim > VSTORE_MAX_DIM)
        return base_fail(e, BASE_EINVAL, "dimension %zu is above the limit %d", o->dim,
                         VSTORE_MAX_DIM);
    hnsw_params p = o->hnsw;
    if (p.M == 0) p.M = 16;
    if (p.ef_construction == 0) p.ef_construction = 200;
    if (p.ef_search == 0) p.ef_search = 64;
    if (p.M < 2 || p.M > 256 || p.ef_construction < 1 || p.ef_construction > 10000 ||
        p.ef_search < 1 || p.ef_search > 10000)
        return base_fail(e, BASE_EINVAL,
                         "hnsw parameters out of range: M %d (2-256), ef_construction %d "
                         "(1-10000), ef_search %d (1-10000)",
                         p.M, p.ef_construction, p.ef_search);
    if ((rc = vstore_check_meta_object(o->metadata, "collection", e))) return rc;
    vstore_text tx = o->text;
    if (o->metadata && tx.analyzer == 0 && tx.k1 == 0 && tx.b == 0) {
        /* the metadata may name them (hearth:analyzer, hearth:bm25_k1, hearth:bm25_b) */
        json_t *m = json_loads(o->metadata, 0, NULL);
        rc = vstore_text_from_meta(m, &tx, e);
        json_decref(m);
        if (rc) return rc;
    }
    if (tx.analyzer == VSTORE_AN_DEFAULT) tx.analyzer = VSTORE_AN_ENGLISH;
    if (!vstore_analyzer_name(tx.analyzer))
        return base_fail(e, BASE_EINVAL, "unknown analyzer %d", tx.analyzer);
    if (tx.k1 == 0 && tx.b == 0) tx.k1 = 0.9, tx.b = 0.4;
    if (!(tx.k1 >= 0 && tx.k1 <= 10) || !(tx.b >= 0 && tx.b <= 1))
        return base_fail(e, BASE_EINVAL, "bm25 parameters out of range: k1 %g (0-10), b %g (0-1)",
                         tx.k1, tx.b);

    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    if (!(rc = database_get(db, tenant, database, NULL, e))) {
        rc = coll_find(db, tenant, database, name, &c, e);
        if (rc == 0 && strcmp(c.name, name) == 0) {
            if (!get_or_create)
                rc = base_fail(e, BASE_EEXISTS, "collection '%s' already exists", name);
        } else if (rc == 0 || rc == BASE_ENOTFOUND) {
            vstore_coll_free(&c);
            uint64_t seq;
            sqlite3_stmt *st = NULL;
            gen_uuid(c.id);
            if (!(rc = vstore_begin(db, true, e)) && !(rc = vstore_seq_next(db, &seq, e)) &&
                !(rc =
                      vstore_prepare(db, &st,
                                     "INSERT INTO collections(id, tenant, database, name, metadata,"
                                     " metric, dim, m, efc, efs, created)"
                                     " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                                     e))) {
                sqlite3_bind_text(st, 1, c.id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, tenant, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 3, database, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 4, name, -1, SQLITE_TRANSIENT);
                if (o->metadata) sqlite3_bind_text(st, 5, o->metadata, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(st, 6, (int)o->metric);
                sqlite3_bind_int64(st, 7, (sqlite3_int64)o->dim);
                sqlite3_bind_int(st, 8, p.M);
                sqlite3_bind_int(st, 9, p.ef_construction);
                sqlite3_bind_int(st, 10, p.ef_search);
                sqlite3_bind_int64(st, 11, (sqlite3_int64)seq);
                if (sqlite3_step(st) != SQLITE_DONE)
                    rc = vstore_sql_fail(db, e, "create collection");
            }
            sqlite3_finalize(st);
            if (!rc && tx.analyzer != VSTORE_AN_UNICODE61) rc = text_create(db, &c, &tx, e);
            if (!rc) rc = vstore_commit(db, e);
            if (rc) vstore_rollback(db);
            if (!rc) rc = vstore_coll_load(db, c.id, &c, e);
        }
    }
    if (!rc && out)
        *out = c;
    else
        vstore_coll_free(&c);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int vstore_coll_list(vstore *db, const char *tenant, const char *database, size_t limit,
                     size_t offset, vstore_coll **out, size_t *n, base_err *e) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st,
                            "SELECT " COLL_COLS COLL_FROM " WHERE tenant=? AND database=?"
                            " ORDER BY created LIMIT ? OFFSET ?",
                            e);
    if (!rc) {
        sqlite3_bind_text(st, 1, tenant_or_default(tenant), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, database_or_default(database), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit : -1);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)offset);
        size_t cap = 0;
        int s;
        while ((s = sqlite3_step(st)) == SQLITE_ROW) {
            if (base_grow(out, &cap, *n + 1, sizeof **out, SIZE_MAX)) {
                rc = base_fail(e, BASE_ENOMEM, "out of memory");
                break;
            }
            if ((rc = coll_from_row(st, &(*out)[*n], e))) break;
            (*n)++;
        }
        if (!rc && s != SQLITE_DONE) rc = vstore_sql_fail(db, e, "list collections");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->mu);
    if (rc) {
        for (size_t i = 0; i < *n; i++) vstore_coll_free(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int vstore_coll_count(vstore *db, const char *tenant, const char *database, uint64_t *n,
                      base_err *e) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *st;
    int rc = vstore_prepare(db, &st,
                            "SELECT count(*) FROM collections WHERE tenant=? AND database=?", e);
    if (!rc) {
        sqlite3_bind_text(st, 1, tenant_or_default(tenant), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, database_or_default(database), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            *n = (uint64_t)sqlite3_column_int64(st, 0);
        else
            rc = vstore_sql_fail(db, e, "count collections");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int vstore_coll_modify(vstore *db, const char *id, const char *new_name, const char *metadata,
                       int ef_search, base_err *e) {
    int rc;
    if (ef_search < 0 || ef_search > 10000)
        return base_fail(e, BASE_EINVAL, "ef_search %d is outside 1..10000", ef_search);
    if (new_name && (rc = check_coll_name(new_name, e))) return rc;
    if ((rc = vstore_check_meta_object(metadata, "collection", e))) return rc;
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    if (!(rc = vstore_coll_load(db, id, &c, e))) {
        vstore_coll other = {0};
        if (new_name && strcmp(new_name, c.name) != 0 &&
            coll_find(db, c.tenant, c.database, new_name, &other, NULL) == 0 &&
            strcmp(other.name, new_name) == 0)
            rc = base_fail(e, BASE_EEXISTS, "collection '%s' already exists", new_name);
        vstore_coll_free(&other);
        sqlite3_stmt *st = NULL;
        if (!rc && !(rc = vstore_prepare(
                         db, &st,
                         "UPDATE collections SET name=coalesce(?, name),"
                         " metadata=coalesce(?, metadata), efs=coalesce(?, efs) WHERE id=?",
                         e))) {
            if (new_name) sqlite3_bind_text(st, 1, new_name, -1, SQLITE_TRANSIENT);
            if (metadata) sqlite3_bind_text(st, 2, metadata, -1, SQLITE_TRANSIENT);
            if (ef_search) sqlite3_bind_int(st, 3, ef_search);
            sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE) rc = vstore_sql_fail(db, e, "modify collection");
        }
        sqlite3_finalize(st);
    }
    vstore_coll_free(&c);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int coll_delete_once(vstore *db, const char *id, base_err *e);

int vstore_coll_delete_locked(vstore *db, const char *id, base_err *e) {
    int rc = coll_delete_once(db, id, e);
    if (rc == BASE_ENOSPC && vstore_reserve_release(db)) { /* see vstore_reserve_keep */
        rc = coll_delete_once(db, id, e);
        vstore_reserve_done(db);
    }
    return rc;
}

static int coll_delete_once(vstore *db, const char *id, base_err *e) {
    vstore_coll c = {0};
    char table[VSTORE_FTS_NAME], drop[VSTORE_FTS_NAME + 40];
    int rc = vstore_coll_load(db, id, &c, e);
    if (rc) return rc;
    vstore_fts_table(&c, table);
    vstore_coll_free(&c);
    /* the shared table loses the collection's rows; an own table goes whole */
    if (strcmp(table, "fts") == 0)
        snprintf(drop, sizeof drop, "DELETE FROM coll_text WHERE 0"); /* nothing to drop */
    else
        snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS %s", table);
    const char *const sqls[] = {
        drop,
        "DELETE FROM coll_text WHERE coll=?1",
        "DELETE FROM fts WHERE rowid IN (SELECT rid FROM records WHERE coll=?1)",
        "DELETE FROM rmeta WHERE rid IN (SELECT rid FROM records WHERE coll=?1)",
        "DELETE FROM records WHERE coll=?1",
        "DELETE FROM tombstones WHERE coll=?1",
        "DELETE FROM collections WHERE id=?1",
    };
    rc = vstore_begin(db, true, e);
    for (size_t i = 0; !rc && i < sizeof sqls / sizeof *sqls; i++) {
        sqlite3_stmt *st;
        if ((rc = vstore_prepare(db, &st, sqls[i], e))) break;
        if (i > 0) sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) rc = vstore_sql_fail(db, e, "delete collection");
        sqlite3_finalize(st);
    }
    if (!rc) rc = vstore_commit(db, e);
    if (rc) {
        vstore_rollback(db);
        return rc;
    }
    /* after the commit: a crash in between leaves an orphan file, never a graph for a live
     * collection without its records */
    vstore_index_forget(db, id);
    return 0;
}

int vstore_coll_delete(vstore *db, const char *tenant, const char *database, const char *name_or_id,
                       base_err *e) {
    if (!name_or_id) return base_fail(e, BASE_EINVAL, "no collection name given");
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    int rc = coll_find(db, tenant, database, name_or_id, &c, e);
    if (!rc) rc = vstore_coll_delete_locked(db, c.id, e);
    vstore_coll_free(&c);
    pthread_mutex_unlock(&db->mu);
    return rc;
}
