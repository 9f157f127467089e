/* vstore/records.c: records — batch writes (validated whole, then one transaction), deletes,
 * get, the where / where_document filters compiled to SQL, dense search (exact or graph, by the
 * filtered-search rule), BM25 through FTS5, and reciprocal rank fusion. */
#include "vstore/analyzer.h"
#include "vstore/vstore_int.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL built with its bound values alongside: every value from outside goes through a
 * parameter, never into the SQL text. */
typedef struct {
    base_buf sql;
    json_t *binds; /* values in order of their '?' */
} vstore_q;

static void q_init(vstore_q *q) {
    memset(q, 0, sizeof *q);
    q->binds = json_array();
}
static void q_free(vstore_q *q) {
    base_buf_free(&q->sql);
    json_decref(q->binds);
}
static void q_val(vstore_q *q, json_t *v) { /* steals v */
    base_buf_printf(&q->sql, "?");
    json_array_append_new(q->binds, v);
}
static int q_prepare(vstore *db, vstore_q *q, sqlite3_stmt **st, base_err *e) {
    if (q->sql.failed || !q->binds) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (sqlite3_prepare_v2(db->db, q->sql.data, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        /* The statement's shape comes from the caller's filter: SQLite refusing it (too
         * deep, too many values) is bad input, not a storage failure. */
        if (sqlite3_errcode(db->db) == SQLITE_ERROR)
            return base_fail(e, BASE_EINVAL, "filter too complex: %s", sqlite3_errmsg(db->db));
        return vstore_sql_fail(db, e, "prepare");
    }
    size_t i;
    json_t *v;
    json_array_foreach(q->binds, i, v) {
        int k = (int)i + 1;
        if (json_is_string(v))
            sqlite3_bind_text(*st, k, json_string_value(v), -1, SQLITE_STATIC);
        else if (json_is_integer(v))
            sqlite3_bind_int64(*st, k, json_integer_value(v));
        else if (json_is_real(v))
            sqlite3_bind_double(*st, k, json_real_value(v));
        else if (json_is_boolean(v))
            sqlite3_bind_int(*st, k, json_is_true(v));
        else
            sqlite3_bind_null(*st, k);
    }
    return 0;
}

/* A statement over records r of collection coll: head, then "r.coll=?", then f's conditions
 * (and their values), then tail. */
static int q_coll_prepare(vstore *db, const char *head, const char *coll, const vstore_q *f,
                          const char *tail, sqlite3_stmt **st, base_err *e) {
    vstore_q q;
    q_init(&q);
    base_buf_printf(&q.sql, "%s WHERE r.coll=", head);
    q_val(&q, json_string(coll));
    base_buf_printf(&q.sql, "%s%s", f->sql.data ? f->sql.data : "", tail);
    json_array_extend(q.binds, f->binds);
    int rc = q_prepare(db, &q, st, e);
    /* the statement binds strings SQLITE_STATIC: copy them before q's values go */
    if (!rc) {
        size_t i;
        json_t *v;
        json_array_foreach(q.binds, i, v) if (json_is_string(v))
            sqlite3_bind_text(*st, (int)i + 1, json_string_value(v), -1, SQLITE_TRANSIENT);
    }
    q_free(&q);
    return rc;
}

static int isalnum_ascii(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ---- filters */

enum { T_STR = 0, T_NUM = 1, T_BOOL = 2 };
/* Bounds that keep a filter inside SQLite's limits (32766 parameters, expression depth 1000):
 * values of one $in / $nin, conditions of one $and / $or, and an object's keys. */
enum { VSTORE_MAX_IN = 10000, VSTORE_MAX_TERMS = 100 };

static int scalar_type(const json_t *v) {
    if (json_is_string(v)) return T_STR;
    if (json_is_integer(v) || json_is_real(v)) return T_NUM;
    if (json_is_boolean(v)) return T_BOOL;
    return -1;
}

/* rid IN (records whose `key` holds a value of v's type equal to v / ordered against v). */
static void cond_cmp(vstore_q *q, const char *key, const char *op, const json_t *v) {
    base_buf_printf(&q->sql, "r.rid IN (SELECT rid FROM rmeta WHERE key=");
    q_val(q, json_string(key));
    base_buf_printf(&q->sql, " AND t=%d AND v%s", scalar_type(v), op);
    q_val(q, json_deep_copy(v));
    base_buf_printf(&q->sql, ")");
}

static int where_expr(vstore_q *q, json_t *w, int depth, base_err *e);

static int where_list(vstore_q *q, const char *op, json_t *arr, int depth, base_err *e) {
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return base_fail(e, BASE_EINVAL, "where: %s needs a non-empty array of conditions", op);
    if (json_array_size(arr) > VSTORE_MAX_TERMS)
        return base_fail(e, BASE_EINVAL, "where: %s has more than %d conditions", op,
                         VSTORE_MAX_TERMS);
    base_buf_printf(&q->sql, "(");
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        if (i) base_buf_printf(&q->sql, strcmp(op, "$and") == 0 ? " AND " : " OR ");
        int rc = where_expr(q, c, depth + 1, e);
        if (rc) return rc;
    }
    base_buf_printf(&q->sql, ")");
    return 0;
}

static int where_field(vstore_q *q, const char *key, json_t *v, base_err *e) {
    if (key[0] == '\0') return base_fail(e, BASE_EINVAL, "where: empty metadata key");
    if (scalar_type(v) >= 0) {
        cond_cmp(q, key, "=", v);
        return 0;
    }
    if (!json_is_object(v) || json_object_size(v) != 1)
        return base_fail(e, BASE_EINVAL,
                         "where: '%s' must be a string, number or bool, or an object with one "
                         "operator",
                         key);
    const char *op = json_object_iter_key(json_object_iter(v));
    json_t *a = json_object_iter_value(json_object_iter(v));
    static const struct {
        const char *name, *sql;
    } cmp[] = {{"$gt", ">"}, {"$gte", ">="}, {"$lt", "<"}, {"$lte", "<="}};
    for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++)
        if (strcmp(op, cmp[i].name) == 0) {
            if (scalar_type(a) != T_NUM)
                return base_fail(e, BASE_EINVAL, "where: %s on '%s' needs a number", op, key);
            cond_cmp(q, key, cmp[i].sql, a);
            return 0;
        }
    bool eq = strcmp(op, "$eq") == 0, ne = strcmp(op, "$ne") == 0;
    if (eq || ne) {
        if (scalar_type(a) < 0)
            return base_fail(e, BASE_EINVAL, "where: %s on '%s' needs a string, number or bool", op,
                             key);
        /* $ne is the complement of $eq: records without the key match it too. */
        if (ne) base_buf_printf(&q->sql, "NOT ");
        cond_cmp(q, key, "=", a);
        return 0;
    }
    bool in = strcmp(op, "$in") == 0, nin = strcmp(op, "$nin") == 0;
    if (in || nin) {
        if (!json_is_array(a))
            return base_fail(e, BASE_EINVAL, "where: %s on '%s' needs an array", op, key);
        size_t i;
        json_t *x;
        json_array_foreach(a, i, x) if (scalar_type(x) < 0) return base_fail(
            e, BASE_EINVAL, "where: %s on '%s': element %zu is not a string, number or bool", op,
            key, i);
        if (json_array_size(a) == 0) { /* in nothing: false; not in nothing: true */
            base_buf_printf(&q->sql, in ? "0" : "1");
            return 0;
        }
        if (json_array_size(a) > VSTORE_MAX_IN)
            return base_fail(e, BASE_EINVAL, "where: %s on '%s' has more than %d values", op, key,
                             VSTORE_MAX_IN);
        /* One IN list per type, not an OR per value: SQLite's expression depth stays small. */
        base_buf_printf(&q->sql, "%sr.rid IN (SELECT rid FROM rmeta WHERE key=", nin ? "NOT " : "");
        q_val(q, json_string(key));
        base_buf_printf(&q->sql, " AND (");
        int groups = 0;
        for (int t = T_STR; t <= T_BOOL; t++) {
            int any = 0;
            json_array_foreach(a, i, x) {
                if (scalar_type(x) != t) continue;
                if (!any++)
                    base_buf_printf(&q->sql, "%s(t=%d AND v IN (", groups++ ? " OR " : "", t);
                else
                    base_buf_printf(&q->sql, ",");
                q_val(q, json_deep_copy(x));
            }
            if (any) base_buf_printf(&q->sql, "))");
        }
        base_buf_printf(&q->sql, "))");
        return 0;
    }
    return base_fail(e, BASE_EINVAL,
                     "where: unknown operator '%s' on '%s' (known: $eq $ne $gt $gte $lt $lte $in "
                     "$nin)",
                     op, key);
}

static int where_expr(vstore_q *q, json_t *w, int depth, base_err *e) {
    if (depth > 32) return base_fail(e, BASE_EINVAL, "where: nested deeper than 32");
    if (!json_is_object(w) || json_object_size(w) == 0)
        return base_fail(e, BASE_EINVAL, "where: each condition must be a non-empty object");
    if (json_object_size(w) > VSTORE_MAX_TERMS)
        return base_fail(e, BASE_EINVAL, "where: an object has more than %d keys",
                         VSTORE_MAX_TERMS);
    /* Several keys in one object are all required (an implicit $and). */
    base_buf_printf(&q->sql, "(");
    const char *k;
    json_t *v;
    int i = 0, rc = 0;
    json_object_foreach(w, k, v) {
        if (i++) base_buf_printf(&q->sql, " AND ");
        if (strcmp(k, "$and") == 0 || strcmp(k, "$or") == 0)
            rc = where_list(q, k, v, depth, e);
        else if (k[0] == '$')
            rc = base_fail(e, BASE_EINVAL, "where: unknown operator '%s' (known: $and $or)", k);
        else
            rc = where_field(q, k, v, e);
        if (rc) return rc;
    }
    base_buf_printf(&q->sql, ")");
    return 0;
}

static int doc_expr(vstore_q *q, json_t *w, int depth, base_err *e) {
    if (depth > 32) return base_fail(e, BASE_EINVAL, "where_document: nested deeper than 32");
    if (!json_is_object(w) || json_object_size(w) != 1)
        return base_fail(e, BASE_EINVAL,
                         "where_document: each condition must be an object with "
                         "one operator");
    const char *op = json_object_iter_key(json_object_iter(w));
    json_t *a = json_object_iter_value(json_object_iter(w));
    if (strcmp(op, "$and") == 0 || strcmp(op, "$or") == 0) {
        if (!json_is_array(a) || json_array_size(a) == 0)
            return base_fail(e, BASE_EINVAL, "where_document: %s needs a non-empty array", op);
        if (json_array_size(a) > VSTORE_MAX_TERMS)
            return base_fail(e, BASE_EINVAL, "where_document: %s has more than %d conditions", op,
                             VSTORE_MAX_TERMS);
        base_buf_printf(&q->sql, "(");
        size_t i;
        json_t *c;
        json_array_foreach(a, i, c) {
            if (i) base_buf_printf(&q->sql, op[1] == 'a' ? " AND " : " OR ");
            int rc = doc_expr(q, c, depth + 1, e);
            if (rc) return rc;
        }
        base_buf_printf(&q->sql, ")");
        return 0;
    }
    bool has = strcmp(op, "$contains") == 0, hasnt = strcmp(op, "$not_contains") == 0;
    if (!has && !hasnt)
        return base_fail(e, BASE_EINVAL,
                         "where_document: unknown operator '%s' (known: $contains "
                         "$not_contains $and $or)",
                         op);
    if (!json_is_string(a) || json_string_length(a) == 0)
        return base_fail(e, BASE_EINVAL, "where_document: %s needs a non-empty string", op);
    /* A case-sensitive substring, as Chroma's; instr() works on characters of UTF-8 text. */
    base_buf_printf(&q->sql, has ? "(r.document IS NOT NULL AND instr(r.document, "
                                 : "(r.document IS NULL OR instr(r.document, ");
    q_val(q, json_deep_copy(a));
    base_buf_printf(&q->sql, has ? ") > 0)" : ") = 0)");
    return 0;
}

static json_t *parse_filter(const char *what, const char *text, base_err *e, int *rc) {
    *rc = 0;
    if (!text) return NULL;
    if (strlen(text) > VSTORE_MAX_FILTER) {
        *rc = base_fail(e, BASE_EINVAL, "%s is larger than %u bytes", what, VSTORE_MAX_FILTER);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) {
        *rc = base_fail(e, BASE_EINVAL, "%s is not JSON: %s (column %d)", what, je.text, je.column);
        return NULL;
    }
    if (json_is_null(j) || (json_is_object(j) && json_object_size(j) == 0)) {
        json_decref(j); /* {} and null: no filter */
        return NULL;
    }
    return j;
}

/* Appends " AND (where) AND (where_document)" for records aliased r; *any says whether there
 * was a filter at all. */
static int filter_append(vstore_q *q, const char *where, const char *where_doc, bool *any,
                         base_err *e) {
    int rc;
    if (any) *any = false;
    json_t *w = parse_filter("where", where, e, &rc);
    if (rc) return rc;
    if (w) {
        base_buf_printf(&q->sql, " AND ");
        rc = where_expr(q, w, 0, e);
        json_decref(w);
        if (rc) return rc;
        if (any) *any = true;
    }
    json_t *d = parse_filter("where_document", where_doc, e, &rc);
    if (rc) return rc;
    if (d) {
        base_buf_printf(&q->sql, " AND ");
        rc = doc_expr(q, d, 0, e);
        json_decref(d);
        if (rc) return rc;
        if (any) *any = true;
    }
    if (json_array_size(q->binds) > 30000)
        return base_fail(e, BASE_EINVAL, "filter has %zu values, more than 30000",
                         json_array_size(q->binds));
    return 0;
}

/* ---- metadata values */

/* Parses one record's metadata; null values are kept (an update removes those keys). */
static int meta_parse(const char *text, const char *id, json_t **out, base_err *e) {
    *out = NULL;
    if (!text) return 0;
    if (strlen(text) > VSTORE_MAX_META)
        return base_fail(e, BASE_EINVAL, "record '%s': metadata larger than %u bytes", id,
                         VSTORE_MAX_META);
    json_error_t je;
    json_t *m = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!m) return base_fail(e, BASE_EINVAL, "record '%s': metadata is not JSON: %s", id, je.text);
    if (!json_is_object(m)) {
        json_decref(m);
        return base_fail(e, BASE_EINVAL, "record '%s': metadata must be an object", id);
    }
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (k[0] == '\0' || (scalar_type(v) < 0 && !json_is_null(v))) {
            int rc = base_fail(e, BASE_EINVAL,
                               k[0] ? "record '%s': metadata '%s' must be a string, number, "
                                      "bool or null"
                                    : "record '%s': metadata has an empty key%s",
                               id, k);
            json_decref(m); /* after the message: k lives in m */
            return rc;
        }
    }
    *out = m;
    return 0;
}

/* ---- writes */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_batch(vstore_mode mode, const vstore_batch *b, bool text_only, size_t dim,
                       json_t **metas, base_err *e) {
    if (b->n == 0) return base_fail(e, BASE_EINVAL, "empty batch: no ids");
    if (b->n > VSTORE_MAX_BATCH)
        return base_fail(e, BASE_EINVAL, "batch of %zu records is above the limit %d", b->n,
                         VSTORE_MAX_BATCH);
    if (!b->ids) return base_fail(e, BASE_EINVAL, "ids are required");
    if (mode != VSTORE_UPDATE && !b->embeddings && !text_only)
        return base_fail(e, BASE_EINVAL, "embeddings are required to %s",
                         mode == VSTORE_ADD ? "add" : "upsert");
    if (text_only && b->embeddings)
        return base_fail(e, BASE_EINVAL, "a text-only batch carries no embeddings");
    if (b->embeddings && (dim == 0 || dim > VSTORE_MAX_DIM))
        return base_fail(e, BASE_EINVAL, "embedding dimension %zu is outside 1..%d", dim,
                         VSTORE_MAX_DIM);
    for (size_t i = 0; i < b->n; i++) {
        const char *id = b->ids[i];
        size_t l = id ? strlen(id) : 0;
        if (l == 0) return base_fail(e, BASE_EINVAL, "record %zu: empty id", i);
        if (l > VSTORE_MAX_ID)
            return base_fail(e, BASE_EINVAL, "record %zu: id longer than %d bytes", i,
                             VSTORE_MAX_ID);
        if (b->embeddings)
            for (size_t j = 0; j < dim; j++) {
                float x = b->embeddings[i * dim + j];
                if (!isfinite(x))
                    return base_fail(e, BASE_EINVAL, "record '%s': embedding[%zu] is %s", id, j,
                                     isnan(x) ? "NaN" : "infinite");
            }
        if (b->documents && b->documents[i] && strlen(b->documents[i]) > VSTORE_MAX_DOC)
            return base_fail(e, BASE_EINVAL, "record '%s': document larger than %u bytes", id,
                             VSTORE_MAX_DOC);
        if (b->metadatas) {
            int rc = meta_parse(b->metadatas[i], id, &metas[i], e);
            if (rc) return rc;
        }
    }
    const char **sorted = malloc(b->n * sizeof *sorted);
    if (!sorted) return base_fail(e, BASE_ENOMEM, "out of memory");
    memcpy(sorted, b->ids, b->n * sizeof *sorted);
    qsort(sorted, b->n, sizeof *sorted, cmp_str_ptr);
    int rc = 0;
    for (size_t i = 1; i < b->n && !rc; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            rc =
                base_fail(e, BASE_EINVAL, "id '%s' appears more than once in the batch", sorted[i]);
    free(sorted);
    return rc;
}

typedef struct {
    sqlite3_stmt *sel, *ins, *upd, *meta_del, *meta_ins, *fts_del, *fts_ins;
} write_stmts;

static void write_stmts_free(write_stmts *w) {
    sqlite3_finalize(w->sel);
    sqlite3_finalize(w->ins);
    sqlite3_finalize(w->upd);
    sqlite3_finalize(w->meta_del);
    sqlite3_finalize(w->meta_ins);
    sqlite3_finalize(w->fts_del);
    sqlite3_finalize(w->fts_ins);
}

static int write_stmts_prepare(vstore *db, const vstore_coll *c, write_stmts *w, base_err *e) {
    int rc;
    char table[VSTORE_FTS_NAME], del[VSTORE_FTS_NAME + 40], ins[VSTORE_FTS_NAME + 60];
    vstore_fts_table(c, table);
    snprintf(del, sizeof del, "DELETE FROM %s WHERE rowid=?", table);
    snprintf(ins, sizeof ins, "INSERT INTO %s(rowid, document) VALUES(?, ?)", table);
    if ((rc = vstore_prepare(db, &w->sel, "SELECT rid, metadata FROM records WHERE coll=? AND id=?",
                             e)) ||
        (rc = vstore_prepare(
             db, &w->ins,
             "INSERT INTO records(coll, id, embedding, document, metadata, seq, vseq)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
             e)) ||
        (rc =
             vstore_prepare(db, &w->upd,
                            "UPDATE records SET embedding=coalesce(?1, embedding),"
                            " document=CASE WHEN ?2 THEN ?3 ELSE document END, metadata=?4,"
                            " seq=?5, vseq=CASE WHEN ?1 IS NULL THEN vseq ELSE ?5 END WHERE rid=?6",
                            e)) ||
        (rc = vstore_prepare(db, &w->meta_del, "DELETE FROM rmeta WHERE rid=?", e)) ||
        (rc = vstore_prepare(db, &w->meta_ins, "INSERT INTO rmeta VALUES(?, ?, ?, ?)", e)) ||
        (rc = vstore_prepare(db, &w->fts_del, del, e)) ||
        (rc = vstore_prepare(db, &w->fts_ins, ins, e)))
        return rc;
    return 0;
}

static int step_done(vstore *db, sqlite3_stmt *st, const char *what, base_err *e) {
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return s == SQLITE_DONE ? 0 : vstore_sql_fail(db, e, what);
}

static int meta_index(vstore *db, write_stmts *w, sqlite3_int64 rid, json_t *m, base_err *e) {
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        int t = scalar_type(v);
        if (t < 0) continue;
        sqlite3_bind_int64(w->meta_ins, 1, rid);
        sqlite3_bind_text(w->meta_ins, 2, k, -1, SQLITE_STATIC);
        sqlite3_bind_int(w->meta_ins, 3, t);
        if (t == T_STR)
            sqlite3_bind_text(w->meta_ins, 4, json_string_value(v), -1, SQLITE_STATIC);
        else if (json_is_integer(v))
            sqlite3_bind_int64(w->meta_ins, 4, json_integer_value(v));
        else if (json_is_real(v))
            sqlite3_bind_double(w->meta_ins, 4, json_real_value(v));
        else
            sqlite3_bind_int(w->meta_ins, 4, json_is_true(v));
        int rc = step_done(db, w->meta_ins, "index metadata", e);
        if (rc) return rc;
    }
    return 0;
}

/* Drops null values (a merge's deletions) and dumps compactly; NULL for an empty object. */
static char *meta_dump(json_t *m) {
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(m, tmp, k, v) if (json_is_null(v)) json_object_del(m, k);
    if (json_object_size(m) == 0) return NULL;
    return json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
}

static int write_one(vstore *db, write_stmts *w, const char *coll, const vstore_batch *b, size_t i,
                     size_t dim, sqlite3_int64 rid, json_t *meta, uint64_t seq, base_err *e) {
    const char *doc = b->documents ? b->documents[i] : NULL;
    const float *vec = b->embeddings ? b->embeddings + i * dim : NULL;
    int rc = 0;
    char *mtext = NULL;
    if (rid == 0) { /* a new record */
        if (meta) mtext = meta_dump(meta);
        sqlite3_bind_text(w->ins, 1, coll, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->ins, 2, b->ids[i], -1, SQLITE_STATIC);
        if (vec)
            sqlite3_bind_blob(w->ins, 3, vec, (int)(dim * sizeof(float)), SQLITE_STATIC);
        else /* a text-only record: an empty vector */
            sqlite3_bind_zeroblob(w->ins, 3, 0);
        if (doc) sqlite3_bind_text(w->ins, 4, doc, -1, SQLITE_STATIC);
        if (mtext) sqlite3_bind_text(w->ins, 5, mtext, -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->ins, 6, (sqlite3_int64)seq);
        if ((rc = step_done(db, w->ins, "insert record", e))) goto out;
        rid = sqlite3_last_insert_rowid(db->db);
    } else { /* an existing one: metadata merged key by key, null removing a key */
        json_t *old = NULL;
        sqlite3_bind_text(w->sel, 1, coll, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->sel, 2, b->ids[i], -1, SQLITE_STATIC);
        if (sqlite3_step(w->sel) == SQLITE_ROW && sqlite3_column_type(w->sel, 1) == SQLITE_TEXT)
            old = json_loads((const char *)sqlite3_column_text(w->sel, 1), 0, NULL);
        sqlite3_reset(w->sel);
        if (!old) old = json_object();
        if (meta) json_object_update(old, meta);
        mtext = meta_dump(old);
        json_decref(old);
        if (vec) sqlite3_bind_blob(w->upd, 1, vec, (int)(dim * sizeof(float)), SQLITE_STATIC);
        sqlite3_bind_int(w->upd, 2, doc != NULL);
        if (doc) sqlite3_bind_text(w->upd, 3, doc, -1, SQLITE_STATIC);
        if (mtext) sqlite3_bind_text(w->upd, 4, mtext, -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->upd, 5, (sqlite3_int64)seq);
        sqlite3_bind_int64(w->upd, 6, rid);
        if ((rc = step_done(db, w->upd, "update record", e))) goto out;
        if (meta) {
            sqlite3_bind_int64(w->meta_del, 1, rid);
            if ((rc = step_done(db, w->meta_del, "update metadata", e))) goto out;
        }
        if (doc) {
            sqlite3_bind_int64(w->fts_del, 1, rid);
            if ((rc = step_done(db, w->fts_del, "update text index", e))) goto out;
        }
    }
    if (meta && mtext) {
        json_t *m = json_loads(mtext, 0, NULL);
        if (!m) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            goto out;
        }
        rc = meta_index(db, w, rid, m, e);
        json_decref(m);
        if (rc) goto out;
    }
    if (doc) {
        sqlite3_bind_int64(w->fts_ins, 1, rid);
        sqlite3_bind_text(w->fts_ins, 2, doc, -1, SQLITE_STATIC);
        rc = step_done(db, w->fts_ins, "index text", e);
    }
out:
    free(mtext);
    return rc;
}

/* Brings the collection's index up to date after a commit. The write is durable already; an
 * index that cannot follow (out of memory) is noted and caught up on a later call. */
static void sync_index(vstore *db, const vstore_coll *c) {
    if (c->dim == 0) return;
    vstore_index *x;
    base_err e = {0};
    if (vstore_index_get(db, c, &x, &e))
        vstore_note(db, "collection '%s': index: %s", c->name, e.msg);
}

static int select_rids(vstore *db, vstore_q *q, sqlite3_int64 **rids, size_t *n, base_err *e);
static int delete_rids(vstore *db, const vstore_coll *c, const sqlite3_int64 *rids, size_t n,
                       uint64_t seq, base_err *e);

static int write_batch(vstore *db, const char *coll_id, vstore_mode mode, const vstore_batch *b,
                       bool text_only, size_t dim, vstore_q *replace, size_t *replaced,
                       base_err *e) {
    json_t **metas = b->n && b->n <= VSTORE_MAX_BATCH ? calloc(b->n, sizeof *metas) : NULL;
    if (b->n && b->n <= VSTORE_MAX_BATCH && !metas)
        return base_fail(e, BASE_ENOMEM, "out of memory");
    int rc = check_batch(mode, b, text_only, dim, metas, e);
    sqlite3_int64 *rids = NULL;
    write_stmts w = {0};
    vstore_coll c = {0};
    bool locked = false;
    if (rc) goto out;
    if (!(rids = calloc(b->n, sizeof *rids))) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&db->mu);
    locked = true;
    /* a write meets a full disk before a delete does */
    if ((rc = vstore_reserve_keep(db, e)) || (rc = vstore_coll_load(db, coll_id, &c, e))) goto out;
    if (b->embeddings && c.dim && c.dim != dim) {
        rc = base_fail(e, BASE_EINVAL,
                       "embedding dimension %zu does not match collection '%s' (dimension %zu)",
                       dim, c.name, c.dim);
        goto out;
    }
    if (text_only && c.dim) {
        rc = base_fail(e, BASE_EINVAL,
                       "collection '%s' holds embeddings (dimension %zu): records without one"
                       " cannot be added",
                       c.name, c.dim);
        goto out;
    }
    if ((rc = write_stmts_prepare(db, &c, &w, e)) || (rc = vstore_begin(db, true, e))) goto out;
    if (b->embeddings && c.dim == 0) { /* the first vectors: none of the records may lack one */
        sqlite3_stmt *st = NULL;
        if (!(rc = vstore_prepare(db, &st,
                                  "SELECT 1 FROM records WHERE coll=? AND length(embedding)=0"
                                  " LIMIT 1",
                                  e))) {
            sqlite3_bind_text(st, 1, coll_id, -1, SQLITE_STATIC);
            int s = sqlite3_step(st);
            if (s == SQLITE_ROW)
                rc = base_fail(e, BASE_EINVAL,
                               "collection '%s' holds records without embeddings (text only):"
                               " embeddings cannot be added to it",
                               c.name);
            else if (s != SQLITE_DONE)
                rc = vstore_sql_fail(db, e, "read records");
        }
        sqlite3_finalize(st);
        if (rc) {
            vstore_rollback(db);
            goto out;
        }
    }
    uint64_t seq = 0;
    if (replace) { /* the records that the batch replaces go first, in the same transaction */
        sqlite3_int64 *old = NULL;
        size_t nold = 0;
        if (!(rc = vstore_seq_next(db, &seq, e)) &&
            !(rc = select_rids(db, replace, &old, &nold, e)))
            rc = delete_rids(db, &c, old, nold, seq, e);
        free(old);
        if (replaced) *replaced = nold;
        if (rc) {
            vstore_rollback(db);
            goto out;
        }
    }
    /* Everything is checked before the first row is written, so a refusal writes nothing. */
    for (size_t i = 0; i < b->n && !rc; i++) {
        sqlite3_bind_text(w.sel, 1, coll_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(w.sel, 2, b->ids[i], -1, SQLITE_STATIC);
        int s = sqlite3_step(w.sel);
        if (s == SQLITE_ROW)
            rids[i] = sqlite3_column_int64(w.sel, 0);
        else if (s != SQLITE_DONE)
            rc = vstore_sql_fail(db, e, "read records");
        sqlite3_reset(w.sel);
        if (rc) break;
        if (mode == VSTORE_ADD && rids[i])
            rc = base_fail(e, BASE_EEXISTS, "record '%s' already exists in collection '%s'",
                           b->ids[i], c.name);
        else if (mode == VSTORE_UPDATE && !rids[i])
            rc = base_fail(e, BASE_ENOTFOUND, "record '%s' does not exist in collection '%s'",
                           b->ids[i], c.name);
    }
    if (!rc && !replace) rc = vstore_seq_next(db, &seq, e);
    for (size_t i = 0; i < b->n && !rc; i++)
        rc = write_one(db, &w, coll_id, b, i, dim, rids[i], metas[i], seq, e);
    if (!rc && b->embeddings && c.dim == 0) {
        char sql[160];
        snprintf(sql, sizeof sql, "UPDATE collections SET dim=%zu WHERE id='%s'", dim, c.id);
        rc = vstore_exec(db, sql, e); /* c.id is our own UUID text */
        c.dim = dim;
    }
    if (!rc) rc = vstore_commit(db, e);
    if (rc)
        vstore_rollback(db);
    else if (b->embeddings || replace)
        sync_index(db, &c);
out:
    write_stmts_free(&w);
    if (locked) pthread_mutex_unlock(&db->mu);
    vstore_coll_free(&c);
    if (metas)
        for (size_t i = 0; i < b->n; i++) json_decref(metas[i]);
    free(metas);
    free(rids);
    return rc;
}

int vstore_write(vstore *db, const char *coll_id, vstore_mode mode, const vstore_batch *b,
                 size_t dim, base_err *e) {
    return write_batch(db, coll_id, mode, b, false, dim, NULL, NULL, e);
}

int vstore_write_text(vstore *db, const char *coll_id, vstore_mode mode, const vstore_batch *b,
                      base_err *e) {
    return write_batch(db, coll_id, mode, b, true, 0, NULL, NULL, e);
}

int vstore_replace(vstore *db, const char *coll_id, const char *where, const vstore_batch *b,
                   size_t dim, size_t *replaced, base_err *e) {
    if (replaced) *replaced = 0;
    if (!where) return base_fail(e, BASE_EINVAL, "replace needs a where filter");
    vstore_q q;
    q_init(&q);
    base_buf_printf(&q.sql, "SELECT r.rid FROM records r WHERE r.coll=");
    q_val(&q, json_string(coll_id));
    bool any = false;
    int rc = filter_append(&q, where, NULL, &any, e);
    if (!rc && !any) rc = base_fail(e, BASE_EINVAL, "replace needs a non-empty where filter");
    if (!rc)
        rc =
            write_batch(db, coll_id, VSTORE_UPSERT, b, b->embeddings == NULL, dim, &q, replaced, e);
    q_free(&q);
    return rc;
}

/* " AND r.id IN (ids)" through json_each, so any number of ids is one parameter. */
static int ids_append(vstore_q *q, const char *const *ids, size_t n, base_err *e) {
    if (n > VSTORE_MAX_BATCH)
        return base_fail(e, BASE_EINVAL, "%zu ids is above the limit %d", n, VSTORE_MAX_BATCH);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!ids[i]) {
            json_decref(a);
            return base_fail(e, BASE_EINVAL, "id %zu is missing", i);
        }
        json_array_append_new(a, json_string(ids[i]));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!text) return base_fail(e, BASE_EINVAL, "ids are not valid UTF-8");
    base_buf_printf(&q->sql, " AND r.id IN (SELECT value FROM json_each(");
    q_val(q, json_string(text));
    base_buf_printf(&q->sql, "))");
    free(text);
    return 0;
}

static int delete_locked(vstore *db, const char *coll_id, vstore_q *q, size_t *deleted,
                         base_err *e);

int vstore_delete(vstore *db, const char *coll_id, const char *const *ids, size_t n_ids,
                  const char *where, const char *where_document, size_t limit, size_t *deleted,
                  base_err *e) {
    if (deleted) *deleted = 0;
    vstore_q q;
    q_init(&q);
    base_buf_printf(&q.sql, "SELECT r.rid FROM records r WHERE r.coll=");
    q_val(&q, json_string(coll_id));
    bool any = false;
    int rc = 0;
    if (ids) rc = ids_append(&q, ids, n_ids, e);
    if (!rc) rc = filter_append(&q, where, where_document, &any, e);
    if (!rc && !ids && !any)
        rc = base_fail(e, BASE_EINVAL, "delete needs ids or a where / where_document filter");
    if (limit) base_buf_printf(&q.sql, " ORDER BY r.rid LIMIT %zu", limit);
    if (rc) {
        q_free(&q);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    rc = delete_locked(db, coll_id, &q, deleted, e);
    /* A full disk: the reserve goes back to the file system and the delete runs again. */
    if (rc == BASE_ENOSPC && vstore_reserve_release(db)) {
        rc = delete_locked(db, coll_id, &q, deleted, e);
        vstore_reserve_done(db);
    }
    pthread_mutex_unlock(&db->mu);
    q_free(&q);
    return rc;
}

/* The rids q selects (in a transaction, with the mutex held); *rids malloc'd. */
static int select_rids(vstore *db, vstore_q *q, sqlite3_int64 **rids, size_t *n, base_err *e) {
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    *rids = NULL;
    *n = 0;
    int rc = q_prepare(db, q, &st, e), s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        if (base_grow(rids, &cap, *n + 1, sizeof **rids, SIZE_MAX)) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        (*rids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (!rc && s != SQLITE_DONE) rc = vstore_sql_fail(db, e, "select records to delete");
    sqlite3_finalize(st);
    return rc;
}

/* Deletes records rids of collection c (text index, metadata, row) and leaves their tombstones
 * at seq, in the caller's transaction. */
static int delete_rids(vstore *db, const vstore_coll *c, const sqlite3_int64 *rids, size_t n,
                       uint64_t seq, base_err *e) {
    sqlite3_stmt *del[4] = {0};
    char table[VSTORE_FTS_NAME], fts_del[VSTORE_FTS_NAME + 40];
    vstore_fts_table(c, table);
    snprintf(fts_del, sizeof fts_del, "DELETE FROM %s WHERE rowid=?1", table);
    int rc;
    if (!(rc = vstore_prepare(db, &del[0], fts_del, e)) &&
        !(rc = vstore_prepare(db, &del[1], "DELETE FROM rmeta WHERE rid=?1", e)) &&
        !(rc = vstore_prepare(db, &del[2], "DELETE FROM records WHERE rid=?1", e)) &&
        !(rc = vstore_prepare(db, &del[3], "INSERT INTO tombstones VALUES(?2, ?1, ?3)", e)))
        for (size_t i = 0; i < n && !rc; i++)
            for (int k = 0; k < 4 && !rc; k++) {
                sqlite3_bind_int64(del[k], 1, rids[i]);
                if (k == 3) {
                    sqlite3_bind_text(del[k], 2, c->id, -1, SQLITE_STATIC);
                    sqlite3_bind_int64(del[k], 3, (sqlite3_int64)seq);
                }
                rc = step_done(db, del[k], "delete record", e);
            }
    for (int k = 0; k < 4; k++) sqlite3_finalize(del[k]);
    return rc;
}

/* One try of vstore_delete, with the mutex held. */
static int delete_locked(vstore *db, const char *coll_id, vstore_q *q, size_t *deleted,
                         base_err *e) {
    vstore_coll c = {0};
    sqlite3_int64 *rids = NULL;
    size_t n = 0;
    uint64_t seq = 0;
    int rc;
    if ((rc = vstore_coll_load(db, coll_id, &c, e)) || (rc = vstore_begin(db, true, e)) ||
        (rc = select_rids(db, q, &rids, &n, e)))
        goto out;
    if (n == 0) goto out;
    if (!(rc = vstore_seq_next(db, &seq, e))) rc = delete_rids(db, &c, rids, n, seq, e);
out:
    if (!rc && n) rc = vstore_commit(db, e);
    if (rc || !n) vstore_rollback(db);
    if (!rc && n) {
        if (deleted) *deleted = n;
        sync_index(db, &c);
    }
    vstore_coll_free(&c);
    free(rids);
    return rc;
}

int vstore_count(vstore *db, const char *coll_id, uint64_t *n, base_err *e) {
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    sqlite3_stmt *st = NULL;
    int rc = vstore_coll_load(db, coll_id, &c, e);
    if (!rc && !(rc = vstore_prepare(db, &st, "SELECT count(*) FROM records WHERE coll=?", e))) {
        sqlite3_bind_text(st, 1, coll_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            *n = (uint64_t)sqlite3_column_int64(st, 0);
        else
            rc = vstore_sql_fail(db, e, "count records");
    }
    sqlite3_finalize(st);
    vstore_coll_free(&c);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---- results */

void vstore_result_free(vstore_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->ids ? r->ids[i] : NULL);
        free(r->documents ? r->documents[i] : NULL);
        free(r->metadatas ? r->metadatas[i] : NULL);
    }
    free(r->ids);
    free(r->embeddings);
    free(r->documents);
    free(r->metadatas);
    free(r->distances);
    memset(r, 0, sizeof *r);
}

static int result_alloc(vstore_result *r, size_t n, size_t dim, unsigned inc, base_err *e) {
    memset(r, 0, sizeof *r);
    r->dim = dim;
    size_t m = n ? n : 1, ed;
    if (base_mul_size(m, dim ? dim : 1, &ed)) return base_fail(e, BASE_ENOMEM, "out of memory");
    r->ids = calloc(m, sizeof *r->ids);
    if (inc & VSTORE_INC_EMBEDDINGS) r->embeddings = calloc(ed, sizeof(float));
    if (inc & VSTORE_INC_DOCUMENTS) r->documents = calloc(m, sizeof(char *));
    if (inc & VSTORE_INC_METADATAS) r->metadatas = calloc(m, sizeof(char *));
    if (inc & VSTORE_INC_DISTANCES) r->distances = calloc(m, sizeof(float));
    if (!r->ids || (inc & VSTORE_INC_EMBEDDINGS && !r->embeddings) ||
        (inc & VSTORE_INC_DOCUMENTS && !r->documents) ||
        (inc & VSTORE_INC_METADATAS && !r->metadatas) ||
        (inc & VSTORE_INC_DISTANCES && !r->distances)) {
        vstore_result_free(r);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    return 0;
}

/* What is left of one answer's VSTORE_MAX_ANSWER bytes: the size of its JSON text, about (the
 * id, document and metadata as stored, 16 bytes per embedding value, 32 per row for the rest).
 * Otherwise a query of a few hundred bytes could make the store read (holding the handle) and
 * the server print gigabytes. */
typedef struct {
    size_t left;
} answer_budget;

static void answer_budget_init(answer_budget *b) {
    b->left = VSTORE_MAX_ANSWER;
}

static int answer_charge(answer_budget *b, size_t bytes, base_err *e) {
    if (bytes <= b->left) {
        b->left -= bytes;
        return 0;
    }
    return base_fail(e, BASE_EINVAL,
                     "the answer would be larger than %u MiB: ask for fewer results or fields"
                     " (embeddings, documents), or page with limit and offset",
                     VSTORE_MAX_ANSWER >> 20);
}

/* Row i of r from columns (id, embedding, document, metadata) of st, charged to budget. */
static int result_row(vstore_result *r, size_t i, sqlite3_stmt *st, int col, answer_budget *budget,
                      base_err *e) {
    size_t bytes = 32 + (size_t)sqlite3_column_bytes(st, col);
    if (r->embeddings) bytes += 16 * r->dim;
    if (r->documents) bytes += (size_t)sqlite3_column_bytes(st, col + 2);
    if (r->metadatas) bytes += (size_t)sqlite3_column_bytes(st, col + 3);
    int rc = answer_charge(budget, bytes, e);
    if (rc) return rc;
    r->ids[i] = vstore_strdup((const char *)sqlite3_column_text(st, col));
    if (!r->ids[i]) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (r->embeddings) {
        const void *b = sqlite3_column_blob(st, col + 1);
        if ((size_t)sqlite3_column_bytes(st, col + 1) != r->dim * sizeof(float) || !b)
            return base_fail(e, BASE_EFORMAT, "record '%s': stored embedding has %d bytes, not %zu",
                             r->ids[i], sqlite3_column_bytes(st, col + 1), r->dim * sizeof(float));
        memcpy(r->embeddings + i * r->dim, b, r->dim * sizeof(float));
    }
    if (r->documents)
        r->documents[i] = vstore_strdup((const char *)sqlite3_column_text(st, col + 2));
    if (r->metadatas)
        r->metadatas[i] = vstore_strdup((const char *)sqlite3_column_text(st, col + 3));
    return 0;
}

/* Fills r with the records of rids (in that order), scores as distances. */
static int result_fill(vstore *db, const vstore_coll *c, const uint64_t *rids, const float *scores,
                       size_t n, unsigned inc, answer_budget *budget, vstore_result *r,
                       base_err *e) {
    int rc = result_alloc(r, n, c->dim, inc, e);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = vstore_prepare(
             db, &st, "SELECT id, embedding, document, metadata FROM records WHERE rid=?", e))) {
        vstore_result_free(r);
        return rc;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)rids[i]);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) { /* a label the index returned but SQLite lacks is skipped */
            if (!(rc = result_row(r, o, st, 0, budget, e))) {
                if (r->distances) r->distances[o] = scores[i];
                r->n = ++o;
            }
        } else if (s != SQLITE_DONE) {
            rc = vstore_sql_fail(db, e, "read records");
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc) vstore_result_free(r);
    return rc;
}

int vstore_get(vstore *db, const char *coll_id, const vstore_get_req *req, vstore_result *out,
               base_err *e) {
    memset(out, 0, sizeof *out);
    if (req->limit > VSTORE_MAX_RESULTS)
        return base_fail(e, BASE_EINVAL, "limit %zu is above the limit %d of one answer",
                         req->limit, VSTORE_MAX_RESULTS);
    vstore_q q;
    q_init(&q);
    base_buf_printf(&q.sql, "SELECT r.id, r.embedding, r.document, r.metadata FROM records r"
                            " WHERE r.coll=");
    q_val(&q, json_string(coll_id));
    int rc = 0;
    if (req->ids) rc = ids_append(&q, req->ids, req->n_ids, e);
    if (!rc) rc = filter_append(&q, req->where, req->where_document, NULL, e);
    if (rc) {
        q_free(&q);
        return rc;
    }
    /* Without a limit, one row more than an answer may hold tells "too many" from "all" */
    base_buf_printf(&q.sql, " ORDER BY r.rid LIMIT %zu OFFSET %llu",
                    req->limit ? req->limit : (size_t)VSTORE_MAX_RESULTS + 1,
                    (unsigned long long)req->offset);
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    answer_budget budget;
    answer_budget_init(&budget);
    if ((rc = vstore_coll_load(db, coll_id, &c, e)) || (rc = q_prepare(db, &q, &st, e))) goto out;
    unsigned inc = req->include & ~(unsigned)VSTORE_INC_DISTANCES;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == VSTORE_MAX_RESULTS) {
            rc = base_fail(e, BASE_EINVAL,
                           "more than %d records match, the most one answer holds: page with"
                           " limit and offset",
                           VSTORE_MAX_RESULTS);
            goto out;
        }
        if (out->n == cap) { /* grow by rebuilding: results are usually one allocation */
            size_t ncap = cap ? 2 * cap : 64;
            vstore_result g;
            if ((rc = result_alloc(&g, ncap, c.dim, inc, e))) goto out;
            for (size_t i = 0; i < out->n; i++) {
                g.ids[i] = out->ids[i];
                if (g.documents) g.documents[i] = out->documents[i];
                if (g.metadatas) g.metadatas[i] = out->metadatas[i];
            }
            if (g.embeddings && out->n)
                memcpy(g.embeddings, out->embeddings, out->n * c.dim * sizeof(float));
            g.n = out->n;
            free(out->ids);
            free(out->documents);
            free(out->metadatas);
            free(out->embeddings);
            *out = g;
            cap = ncap;
        }
        if ((rc = result_row(out, out->n, st, 0, &budget, e))) goto out;
        out->n++;
    }
    if (s != SQLITE_DONE) rc = vstore_sql_fail(db, e, "get records");
    if (!rc && cap == 0) rc = result_alloc(out, 0, c.dim, inc, e);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    vstore_coll_free(&c);
    q_free(&q);
    if (rc) vstore_result_free(out);
    return rc;
}

/* ---- dense search */

typedef struct {
    const uint64_t *rids; /* sorted */
    size_t n;
} rid_set;

static bool rid_set_has(uint64_t label, void *ud) {
    const rid_set *s = ud;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->rids[mid] < label)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->rids[lo] == label;
}

/* The filtered-search plan for one call: either the matching vectors (exact) or the matching
 * rids (graph with a predicate), read once for all the queries of the call. */
typedef struct {
    bool filtered, exact;
    size_t n;       /* matching records */
    uint64_t *rids; /* n, ascending */
    float *vecs;    /* exact: n x dim */
    int ef;         /* graph: the raised ef */
} plan;

static void plan_free(plan *p) {
    free(p->rids);
    free(p->vecs);
}

static int plan_make(vstore *db, const vstore_coll *c, vstore_index *x, vstore_q *filter, size_t k,
                     int ef, size_t exact_max, plan *p, base_err *e) {
    memset(p, 0, sizeof *p);
    size_t total = hnsw_count(x->h);
    size_t base_ef = (size_t)(ef > 0 ? ef : c->hnsw.ef_search);
    if (base_ef < k) base_ef = k;
    p->ef = base_ef > (1u << 20) ? 1 << 20 : (int)base_ef;
    if (!filter) return 0;
    p->filtered = true;
    /* Count first: the size of the matching set picks the path. */
    sqlite3_stmt *st;
    int rc = q_coll_prepare(db, "SELECT count(*) FROM records r", c->id, filter, "", &st, e);
    if (rc) return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        p->n = (size_t)sqlite3_column_int64(st, 0);
    else
        rc = vstore_sql_fail(db, e, "count matches");
    sqlite3_finalize(st);
    if (rc || p->n == 0) return rc;
    p->exact = p->n <= exact_max || p->n * 20 <= total;
    rc = q_coll_prepare(
        db, p->exact ? "SELECT r.rid, r.embedding FROM records r" : "SELECT r.rid FROM records r",
        c->id, filter, " ORDER BY r.rid", &st, e);
    if (rc) return rc;
    size_t m = 0, nd;
    p->rids = malloc(p->n * sizeof *p->rids);
    if (p->exact && !base_mul_size(p->n, c->dim, &nd)) p->vecs = malloc(nd * sizeof(float));
    if (!p->rids || (p->exact && !p->vecs)) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    int s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW && m < p->n) {
        p->rids[m] = (uint64_t)sqlite3_column_int64(st, 0);
        if (p->exact) {
            const void *b = sqlite3_column_blob(st, 1);
            if (!b || (size_t)sqlite3_column_bytes(st, 1) != c->dim * sizeof(float)) {
                rc = base_fail(e, BASE_EFORMAT,
                               "%s: a record of collection '%s' has an embedding"
                               " of %d bytes",
                               db->path, c->name, sqlite3_column_bytes(st, 1));
                break;
            }
            memcpy(p->vecs + m * c->dim, b, c->dim * sizeof(float));
        }
        m++;
    }
    if (!rc && s != SQLITE_DONE && s != SQLITE_ROW) rc = vstore_sql_fail(db, e, "read matches");
    sqlite3_finalize(st);
    p->n = m;
    if (!p->exact) {
        /* Raise ef by the inverse selectivity: the graph search then still meets about ef
         * matching nodes before it stops. At most 20x: below 1/20 the exact path runs. */
        size_t f = (total + m - 1) / (m ? m : 1);
        if (f > 20) f = 20;
        size_t ef2 = base_ef * (f ? f : 1);
        p->ef = ef2 > (1u << 20) ? 1 << 20 : (int)ef2;
    }
    return rc;
}

static size_t plan_search(const plan *p, vstore_index *x, const vstore_coll *c, const float *q,
                          size_t k, uint64_t *labels, float *dists) {
    if (!p->filtered) return hnsw_search(x->h, q, k, p->ef, NULL, NULL, labels, dists);
    if (p->n == 0) return 0;
    if (p->exact)
        return hnsw_exact_search(c->metric, p->vecs, p->rids, p->n, c->dim, q, k, NULL, NULL,
                                 labels, dists);
    rid_set s = {p->rids, p->n};
    return hnsw_search(x->h, q, k, p->ef, rid_set_has, &s, labels, dists);
}

static int check_queries(const float *q, size_t nq, size_t dim, base_err *e) {
    if (!q) return base_fail(e, BASE_EINVAL, "query embeddings are required");
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < dim; j++)
            if (!isfinite(q[i * dim + j]))
                return base_fail(e, BASE_EINVAL, "query %zu: embedding[%zu] is %s", i, j,
                                 isnan(q[i * dim + j]) ? "NaN" : "infinite");
    return 0;
}

/* The dense ranking of one query vector: up to k (rid, distance), nearest first. */
static int dense_rank(vstore *db, const vstore_coll *c, const float *q, size_t k, const char *where,
                      const char *where_doc, int ef, size_t exact_max, uint64_t *rids, float *dists,
                      size_t *n, int *used_exact, base_err *e) {
    *n = 0;
    if (c->dim == 0) return 0;
    vstore_q f;
    q_init(&f);
    bool any = false;
    int rc = filter_append(&f, where, where_doc, &any, e);
    vstore_index *x = NULL;
    plan p = {0};
    if (!rc) rc = vstore_index_get(db, c, &x, e);
    if (!rc) rc = plan_make(db, c, x, any ? &f : NULL, k, ef, exact_max, &p, e);
    if (!rc) {
        *n = plan_search(&p, x, c, q, k, rids, dists);
        if (used_exact) *used_exact = p.exact;
    }
    plan_free(&p);
    q_free(&f);
    return rc;
}

int vstore_query(vstore *db, const char *coll_id, const vstore_query_req *r, vstore_result **out,
                 base_err *e) {
    *out = NULL;
    if (r->nq == 0) return base_fail(e, BASE_EINVAL, "no query embeddings");
    if (r->nq > VSTORE_MAX_BATCH)
        return base_fail(e, BASE_EINVAL, "%zu queries is above the limit %d", r->nq,
                         VSTORE_MAX_BATCH);
    if (r->k == 0 || r->k > VSTORE_MAX_RESULTS)
        return base_fail(e, BASE_EINVAL, "n_results %zu is outside 1..%d", r->k,
                         VSTORE_MAX_RESULTS);
    /* nq <= VSTORE_MAX_BATCH and k <= VSTORE_MAX_RESULTS: the product cannot overflow */
    if (r->nq * r->k > VSTORE_MAX_RESULTS)
        return base_fail(e, BASE_EINVAL,
                         "%zu queries x %zu results is %zu rows, above the limit %d of one answer:"
                         " send fewer queries per request or ask for fewer results",
                         r->nq, r->k, r->nq * r->k, VSTORE_MAX_RESULTS);
    if (r->dim == 0 || r->dim > VSTORE_MAX_DIM)
        return base_fail(e, BASE_EINVAL, "query dimension %zu is outside 1..%d", r->dim,
                         VSTORE_MAX_DIM);
    int rc = check_queries(r->queries, r->nq, r->dim, e);
    if (rc) return rc;
    vstore_q f;
    q_init(&f);
    bool any = false;
    if (r->ids) rc = ids_append(&f, r->ids, r->n_ids, e);
    if (!rc) rc = filter_append(&f, r->where, r->where_document, &any, e);
    any = any || r->ids;
    if (rc) {
        q_free(&f);
        return rc;
    }
    vstore_result *res = calloc(r->nq, sizeof *res);
    uint64_t *labels = malloc(r->k * sizeof *labels);
    float *dists = malloc(r->k * sizeof *dists);
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    vstore_index *x = NULL;
    plan p = {0};
    size_t done = 0;
    answer_budget budget;
    answer_budget_init(&budget);
    if (!res || !labels || !dists) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = vstore_coll_load(db, coll_id, &c, e))) goto out;
    if (c.dim && c.dim != r->dim) {
        rc = base_fail(e, BASE_EINVAL,
                       "query dimension %zu does not match collection '%s' (dimension %zu)", r->dim,
                       c.name, c.dim);
        goto out;
    }
    if (c.dim && !(rc = vstore_index_get(db, &c, &x, e)))
        rc = plan_make(db, &c, x, any ? &f : NULL, r->k, r->ef,
                       r->exact_max ? r->exact_max : VSTORE_EXACT_MAX, &p, e);
    if (rc) goto out;
    if (r->used_exact) *r->used_exact = p.exact;
    for (; done < r->nq && !rc; done++) {
        size_t n =
            c.dim ? plan_search(&p, x, &c, r->queries + done * r->dim, r->k, labels, dists) : 0;
        rc = result_fill(db, &c, labels, dists, n, r->include, &budget, &res[done], e);
    }
out:
    pthread_mutex_unlock(&db->mu);
    plan_free(&p);
    vstore_coll_free(&c);
    q_free(&f);
    free(labels);
    free(dists);
    if (rc && res) {
        for (size_t i = 0; i < done; i++) vstore_result_free(&res[i]);
        free(res);
        res = NULL;
    }
    *out = res;
    return rc;
}

/* ---- full text */

/* The words of text as an FTS5 query: each a quoted string, any of them (OR), so the user's
 * punctuation is never FTS5 syntax. Words: runs of letters, digits and non-ASCII bytes, as the
 * unicode61 tokenizer splits them. */
static int fts_query(const char *text, base_buf *out, base_err *e) {
    size_t words = 0;
    for (const unsigned char *s = (const unsigned char *)text; *s;) {
        while (*s && !(isalnum_ascii(*s) || *s >= 0x80)) s++;
        const unsigned char *w = s;
        while (*s && (isalnum_ascii(*s) || *s >= 0x80)) s++;
        if (s > w) {
            base_buf_printf(out, "%s\"%.*s\"", words++ ? " OR " : "", (int)(s - w),
                            (const char *)w);
        }
    }
    if (words == 0) return base_fail(e, BASE_EINVAL, "text query has no words");
    if (out->failed) return base_fail(e, BASE_ENOMEM, "out of memory");
    return 0;
}

typedef struct {
    const char *text;
    base_buf *out;
    size_t words;
} analyzed_query;

/* A term of the query: its word as written (FTS5 analyzes it again, to the same term), quoted
 * with inner quotes doubled, OR'd to the others. */
static int query_term(void *ctx, const char *term, size_t n, size_t start, size_t end) {
    analyzed_query *q = ctx;
    if (q->words++) base_buf_printf(q->out, " OR ");
    base_buf_append(q->out, "\"", 1);
    for (size_t i = start; i < end; i++) {
        if (q->text[i] == '"') base_buf_append(q->out, "\"", 1);
        base_buf_append(q->out, q->text + i, 1);
    }
    base_buf_append(q->out, "\"", 1);
    return 0;
}

static int text_rank(vstore *db, const vstore_coll *c, const char *text, size_t k,
                     const char *where, uint64_t *rids, float *scores, size_t *n, base_err *e) {
    *n = 0;
    base_buf fq = {0};
    int rc = 0;
    bool legacy = c->text.analyzer == VSTORE_AN_UNICODE61;
    if (legacy) {
        rc = fts_query(text, &fq, e);
    } else {
        analyzed_query aq = {text, &fq, 0};
        vstore_analyze(c->text.analyzer, text, strlen(text), query_term, &aq);
        if (fq.failed) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        /* only stop words (or no words): nothing can match, which is an empty answer, not an
         * error, unless there were no words at all */
        if (!rc && aq.words == 0) {
            analyzed_query any = {text, &fq, 0};
            vstore_analyze(VSTORE_AN_STANDARD, text, strlen(text), query_term, &any);
            base_buf_free(&fq);
            return any.words ? 0 : base_fail(e, BASE_EINVAL, "text query has no words");
        }
    }
    char table[VSTORE_FTS_NAME];
    vstore_fts_table(c, table);
    vstore_q q;
    q_init(&q);
    if (legacy) /* FTS5's bm25() is negative, better when lower; reported negated */
        base_buf_printf(&q.sql,
                        "SELECT r.rid, -bm25(fts) AS s FROM fts JOIN records r ON r.rid=fts.rowid"
                        " WHERE fts MATCH ");
    else
        base_buf_printf(&q.sql,
                        "SELECT r.rid, hearth_bm25(%s, %.17g, %.17g) AS s FROM %s JOIN records r"
                        " ON r.rid=%s.rowid WHERE %s MATCH ",
                        table, c->text.k1, c->text.b, table, table, table);
    if (!rc) {
        q_val(&q, json_string(fq.data));
        base_buf_printf(&q.sql, " AND r.coll=");
        q_val(&q, json_string(c->id));
        rc = filter_append(&q, where, NULL, NULL, e);
    }
    base_buf_printf(&q.sql, " ORDER BY s DESC, r.rid LIMIT %zu", k);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = q_prepare(db, &q, &st, e);
    int s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW && *n < k) {
        rids[*n] = (uint64_t)sqlite3_column_int64(st, 0);
        scores[*n] = (float)sqlite3_column_double(st, 1);
        (*n)++;
    }
    if (!rc && s != SQLITE_DONE && s != SQLITE_ROW) rc = vstore_sql_fail(db, e, "full-text search");
    sqlite3_finalize(st);
    q_free(&q);
    base_buf_free(&fq);
    return rc;
}

int vstore_text_search(vstore *db, const char *coll_id, const char *text, size_t k,
                       const char *where, unsigned include, vstore_result *out, base_err *e) {
    memset(out, 0, sizeof *out);
    if (!text) return base_fail(e, BASE_EINVAL, "no text given");
    if (k == 0 || k > VSTORE_MAX_RESULTS)
        return base_fail(e, BASE_EINVAL, "n_results %zu is outside 1..%d", k, VSTORE_MAX_RESULTS);
    uint64_t *rids = malloc(k * sizeof *rids);
    float *scores = malloc(k * sizeof *scores);
    if (!rids || !scores) {
        free(rids);
        free(scores);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    size_t n = 0;
    int rc = vstore_coll_load(db, coll_id, &c, e);
    if (!rc) rc = text_rank(db, &c, text, k, where, rids, scores, &n, e);
    answer_budget budget;
    answer_budget_init(&budget);
    if (!rc)
        rc = result_fill(db, &c, rids, scores, n, include | VSTORE_INC_DISTANCES, &budget, out, e);
    pthread_mutex_unlock(&db->mu);
    vstore_coll_free(&c);
    free(rids);
    free(scores);
    return rc;
}

/* ---- hybrid */

typedef struct {
    uint64_t rid;
    float score;
} fused;

static int cmp_fused_rid(const void *a, const void *b) {
    const fused *x = a, *y = b;
    return x->rid < y->rid ? -1 : x->rid > y->rid;
}

static int cmp_fused(const void *a, const void *b) {
    const fused *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->rid < y->rid ? -1 : x->rid > y->rid; /* ties: older record first */
}

int vstore_hybrid(vstore *db, const char *coll_id, const vstore_hybrid_req *r, vstore_result *out,
                  base_err *e) {
    memset(out, 0, sizeof *out);
    if (!r->text) return base_fail(e, BASE_EINVAL, "hybrid search needs a text");
    if (r->k == 0 || r->k > VSTORE_MAX_RESULTS)
        return base_fail(e, BASE_EINVAL, "n_results %zu is outside 1..%d", r->k,
                         VSTORE_MAX_RESULTS);
    if (r->dim == 0 || r->dim > VSTORE_MAX_DIM)
        return base_fail(e, BASE_EINVAL, "query dimension %zu is outside 1..%d", r->dim,
                         VSTORE_MAX_DIM);
    double rk = r->rrf_k > 0 ? r->rrf_k : 60.0;
    double wd = r->w_dense, wt = r->w_text;
    if (wd == 0 && wt == 0) wd = wt = 1;
    if (!(wd >= 0) || !(wt >= 0) || !isfinite(wd) || !isfinite(wt) || !isfinite(rk))
        return base_fail(e, BASE_EINVAL, "hybrid weights and k must be finite and >= 0");
    int rc = check_queries(r->query, 1, r->dim, e);
    if (rc) return rc;
    size_t depth = r->k > 50 ? r->k : 50; /* each ranking's length */
    uint64_t *rids = malloc(2 * depth * sizeof *rids);
    float *sc = malloc(2 * depth * sizeof *sc);
    fused *f = malloc(2 * depth * sizeof *f);
    uint64_t *top = malloc(r->k * sizeof *top);
    float *tops = malloc(r->k * sizeof *tops);
    if (!rids || !sc || !f || !top || !tops) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto out_free;
    }
    pthread_mutex_lock(&db->mu);
    vstore_coll c = {0};
    size_t nd = 0, nt = 0, nf = 0;
    if ((rc = vstore_coll_load(db, coll_id, &c, e))) goto out;
    if (c.dim && c.dim != r->dim) {
        rc = base_fail(e, BASE_EINVAL,
                       "query dimension %zu does not match collection '%s' (dimension %zu)", r->dim,
                       c.name, c.dim);
        goto out;
    }
    if ((rc = dense_rank(db, &c, r->query, depth, r->where, NULL, 0, VSTORE_EXACT_MAX, rids, sc,
                         &nd, NULL, e)) ||
        (rc = text_rank(db, &c, r->text, depth, r->where, rids + depth, sc + depth, &nt, e)))
        goto out;
    /* Fuse: each ranking adds w / (k + rank); a record in both gets both. The dense entries,
     * sorted by rid, are found by binary search (rankings can hold 100,000 entries each). */
    for (size_t i = 0; i < nd; i++) f[nf++] = (fused){rids[i], (float)(wd / (rk + (double)i + 1))};
    qsort(f, nd, sizeof *f, cmp_fused_rid);
    for (size_t i = 0; i < nt; i++) {
        float add = (float)(wt / (rk + (double)i + 1));
        fused key = {rids[depth + i], 0}, *hit = bsearch(&key, f, nd, sizeof *f, cmp_fused_rid);
        if (hit)
            hit->score += add;
        else
            f[nf++] = (fused){key.rid, add};
    }
    qsort(f, nf, sizeof *f, cmp_fused);
    if (nf > r->k) nf = r->k;
    for (size_t i = 0; i < nf; i++) {
        top[i] = f[i].rid;
        tops[i] = f[i].score;
    }
    answer_budget budget;
    answer_budget_init(&budget);
    rc = result_fill(db, &c, top, tops, nf, r->include | VSTORE_INC_DISTANCES, &budget, out, e);
out:
    pthread_mutex_unlock(&db->mu);
    vstore_coll_free(&c);
out_free:
    free(rids);
    free(sc);
    free(f);
    free(top);
    free(tops);
    return rc;
}
