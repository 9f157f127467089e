/* vstore/chroma.c: the Chroma v2 HTTP API (the paths, JSON shapes and status codes the chromadb
 * clients use) as a pure function from request to response over the library API. Errors are
 * {"error": kind, "message": text} with 400 (bad input), 404 (unknown), 409 (exists), 413
 * (too large), 507 (the disk is full) or 500. */
#include "vstore/vstore_int.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "uris" in include: the store keeps none, so they come back as nulls; a bit of our own beside
 * the library's VSTORE_INC_* bits. */
#define INC_URIS 0x100u

typedef struct {
    int status;
    json_t *body; /* owned */
    char *text;   /* owned: the body already as text (record answers), else NULL */
} reply;

/* A request matched to a route: the path's parameters (borrowed from the split path), the
 * collection it names (loaded by the dispatcher), the raw query string and the JSON body. */
typedef struct {
    const char *t, *d; /* tenant, database: {t} and {d} of the route, else NULL */
    const char *param; /* {p}: a parameter no lookup goes with (a collection resource name) */
    vstore_coll c;     /* {c}: the collection, by name or id */
    const char *query;
    json_t *in;
    int arg; /* the route's own argument (a write's vstore_mode) */
} req;

static void put_str(base_buf *b, const char *s);

/* Written as text, so a message quoting invalid UTF-8 from a path still makes valid JSON. */
char *vstore_http_error(const char *kind, const char *message) {
    base_buf b = {0};
    base_buf_append(&b, "{\"error\":", 9);
    put_str(&b, kind ? kind : "InternalError");
    base_buf_append(&b, ",\"message\":", 11);
    put_str(&b, message ? message : "");
    base_buf_append(&b, "}", 1);
    if (!b.failed) return b.data;
    base_buf_free(&b);
    return NULL;
}

static void set_err(reply *r, int status, const char *kind, const char *msg) {
    json_decref(r->body);
    free(r->text);
    r->body = NULL;
    r->status = status;
    r->text = vstore_http_error(kind, msg);
}

static void set_fail(reply *r, int code, const base_err *e) {
    switch (code) {
    case BASE_ENOTFOUND:
        set_err(r, 404, "NotFoundError", e->msg);
        break;
    case BASE_EEXISTS:
        set_err(r, 409, "UniqueConstraintError", e->msg);
        break;
    case BASE_EINVAL:
        set_err(r, 400, "InvalidArgumentError", e->msg);
        break;
    case BASE_ENOSPC:
        set_err(r, 507, "InsufficientStorageError", e->msg);
        break;
    default:
        set_err(r, 500, "InternalError", e->msg);
        break;
    }
}

static void set_ok(reply *r, int status, json_t *body) {
    json_decref(r->body);
    free(r->text);
    r->text = NULL;
    r->status = status;
    r->body = body ? body : json_null();
}

/* text: a JSON text (owned), or NULL when it could not be made (out of memory: 500). */
static void set_text(reply *r, int status, char *text) {
    if (!text) {
        set_err(r, 500, "InternalError", "out of memory for the answer");
        return;
    }
    json_decref(r->body);
    free(r->text);
    r->body = NULL;
    r->status = status;
    r->text = text;
}

/* ---- JSON → library arguments */

/* A JSON text of v, or NULL for absent / null. */
static char *dump_opt(const json_t *v) {
    if (!v || json_is_null(v)) return NULL;
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* An array of strings (ids): *out borrows from v. */
static int str_array(const json_t *v, const char *what, const char ***out, size_t *n, base_err *e) {
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return base_fail(e, BASE_EINVAL, "%s must be an array", what);
    *n = json_array_size(v);
    if (*n > VSTORE_MAX_BATCH)
        return base_fail(e, BASE_EINVAL, "%s has %zu entries, above the limit %d", what, *n,
                         VSTORE_MAX_BATCH);
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            free(*out);
            *out = NULL;
            return base_fail(e, BASE_EINVAL, "%s[%zu] must be a string", what, i);
        }
        (*out)[i] = json_string_value(s);
    }
    return 0;
}

/* An array of n_expected (0: any) equal-length number arrays → a malloc'd n x dim matrix. */
static int float_matrix(const json_t *v, const char *what, size_t n_expected, float **out,
                        size_t *n, size_t *dim, base_err *e) {
    *out = NULL;
    *n = *dim = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return base_fail(e, BASE_EINVAL, "%s must be an array of arrays", what);
    *n = json_array_size(v);
    if (n_expected && *n != n_expected)
        return base_fail(e, BASE_EINVAL, "%s has %zu entries, ids has %zu", what, *n, n_expected);
    if (*n == 0) return base_fail(e, BASE_EINVAL, "%s is empty", what);
    if (*n > VSTORE_MAX_BATCH)
        return base_fail(e, BASE_EINVAL, "%s has %zu entries, above the limit %d", what, *n,
                         VSTORE_MAX_BATCH);
    const json_t *row0 = json_array_get(v, 0);
    if (!json_is_array(row0)) return base_fail(e, BASE_EINVAL, "%s[0] must be an array", what);
    *dim = json_array_size(row0);
    if (*dim == 0 || *dim > VSTORE_MAX_DIM)
        return base_fail(e, BASE_EINVAL, "%s[0] has %zu values (1..%d allowed)", what, *dim,
                         VSTORE_MAX_DIM);
    size_t total;
    if (base_mul_size(*n, *dim, &total) || !(*out = malloc(total * sizeof(float))))
        return base_fail(e, BASE_ENOMEM, "out of memory for %s", what);
    for (size_t i = 0; i < *n; i++) {
        const json_t *row = json_array_get(v, i);
        if (!json_is_array(row) || json_array_size(row) != *dim) {
            free(*out);
            *out = NULL;
            return base_fail(e, BASE_EINVAL, "%s[%zu] must be an array of %zu numbers", what, i,
                             *dim);
        }
        for (size_t j = 0; j < *dim; j++) {
            const json_t *x = json_array_get(row, j);
            if (!json_is_number(x)) {
                free(*out);
                *out = NULL;
                return base_fail(e, BASE_EINVAL, "%s[%zu][%zu] is not a number", what, i, j);
            }
            (*out)[i * *dim + j] = (float)json_number_value(x); /* out of float range: inf,
                                                                   refused by the store */
        }
    }
    return 0;
}

static int parse_include(const json_t *v, unsigned def, unsigned *inc, json_t **echo, base_err *e) {
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"documents", VSTORE_INC_DOCUMENTS},
                 {"embeddings", VSTORE_INC_EMBEDDINGS},
                 {"metadatas", VSTORE_INC_METADATAS},
                 {"distances", VSTORE_INC_DISTANCES},
                 {"uris", INC_URIS}};
    *inc = 0;
    *echo = json_array();
    if (!v || json_is_null(v)) {
        for (size_t k = 0; k < 5; k++)
            if (def & names[k].bit) json_array_append_new(*echo, json_string(names[k].name));
        *inc = def;
        return 0;
    }
    if (!json_is_array(v)) return base_fail(e, BASE_EINVAL, "include must be an array");
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        const char *s = json_string_value(x);
        size_t k = 0;
        while (k < 5 && !(s && strcmp(s, names[k].name) == 0)) k++;
        if (k == 5)
            return base_fail(e, BASE_EINVAL,
                             "include[%zu]: unknown field (known: documents embeddings metadatas "
                             "distances uris)",
                             i);
        *inc |= names[k].bit;
        json_array_append_new(*echo, json_string(s));
    }
    return 0;
}

/* ---- library results → JSON */

static json_t *json_meta_or_null(const char *s) {
    json_t *m = s ? json_loads(s, 0, NULL) : NULL;
    return m ? m : json_null();
}

/* Record answers are written straight as text: a tree of json_t costs about ten times the
 * text it prints (a 16 MB answer took 208 MB). */

/* s as a JSON string (null for NULL); bytes that are not UTF-8 become U+FFFD. */
static void put_str(base_buf *b, const char *s) {
    if (!s) {
        base_buf_append(b, "null", 4);
        return;
    }
    size_t n = strlen(s), run = 0;
    base_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : base_utf8_len((const unsigned char *)s + i, n - i);
        if (len > 0 && c >= 0x20 && c != '"' && c != '\\') {
            i += len;
            continue;
        }
        base_buf_append(b, s + run, i - run);
        if (len == 0)
            base_buf_append(b, "\xef\xbf\xbd", 3);
        else if (c == '"' || c == '\\')
            base_buf_printf(b, "\\%c", c);
        else
            base_buf_printf(b, "\\u%04x", c);
        i += len ? len : 1;
        run = i;
    }
    base_buf_append(b, s + run, n - run);
    base_buf_append(b, "\"", 1);
}

/* Stored metadata is JSON text the store wrote; anything that does not parse is null. */
static void put_meta(base_buf *b, const char *s) {
    json_t *m = s ? json_loads(s, 0, NULL) : NULL;
    if (json_is_object(m))
        base_buf_append(b, s, strlen(s));
    else
        base_buf_append(b, "null", 4);
    json_decref(m);
}

/* Floats print with 9 significant digits, enough to read back the same float. */
static void put_float(base_buf *b, float x) {
    base_buf_printf(b, "%.9g", (double)x);
}

enum { COL_IDS, COL_DOCS, COL_METAS, COL_EMBS, COL_DISTS, COL_URIS, N_COLS };
static const struct {
    const char *key;
    unsigned bit; /* 0: always */
} cols[N_COLS] = {{"ids", 0},
                  {"documents", VSTORE_INC_DOCUMENTS},
                  {"metadatas", VSTORE_INC_METADATAS},
                  {"embeddings", VSTORE_INC_EMBEDDINGS},
                  {"distances", VSTORE_INC_DISTANCES},
                  {"uris", INC_URIS}};

/* One column of r as a JSON array. */
static void put_col(base_buf *b, const vstore_result *r, int col) {
    base_buf_append(b, "[", 1);
    for (size_t i = 0; i < r->n; i++) {
        if (i) base_buf_append(b, ",", 1);
        switch (col) {
        case COL_IDS:
            put_str(b, r->ids[i]);
            break;
        case COL_DOCS:
            put_str(b, r->documents ? r->documents[i] : NULL);
            break;
        case COL_METAS:
            put_meta(b, r->metadatas ? r->metadatas[i] : NULL);
            break;
        case COL_EMBS:
            base_buf_append(b, "[", 1);
            for (size_t j = 0; r->embeddings && j < r->dim; j++) {
                if (j) base_buf_append(b, ",", 1);
                put_float(b, r->embeddings[i * r->dim + j]);
            }
            base_buf_append(b, "]", 1);
            break;
        case COL_DISTS:
            if (r->distances)
                put_float(b, r->distances[i]);
            else
                base_buf_append(b, "null", 4);
            break;
        default:
            base_buf_append(b, "null", 4);
            break;
        }
    }
    base_buf_append(b, "]", 1);
}

/* A GetResponse (one result, nested false) or a QueryResponse (one array per query) with the
 * include list echo: its text (malloc'd), or NULL when out of memory. */
static char *answer_text(const vstore_result *res, size_t nres, bool nested, unsigned inc,
                         const json_t *echo) {
    base_buf b = {0};
    base_buf_append(&b, "{", 1);
    for (int k = 0; k < N_COLS; k++) {
        base_buf_printf(&b, "%s\"%s\":", k ? "," : "", cols[k].key);
        if (cols[k].bit && !(inc & cols[k].bit)) {
            base_buf_append(&b, "null", 4);
        } else if (!nested) {
            put_col(&b, &res[0], k);
        } else {
            base_buf_append(&b, "[", 1);
            for (size_t q = 0; q < nres; q++) {
                if (q) base_buf_append(&b, ",", 1);
                put_col(&b, &res[q], k);
            }
            base_buf_append(&b, "]", 1);
        }
    }
    char *e = json_dumps(echo, JSON_COMPACT);
    if (e) base_buf_printf(&b, ",\"include\":%s}", e);
    free(e);
    if (!e || b.failed) {
        base_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* The collection's metadata as the API shows it (without VSTORE_META_EMBED_FN; an object left
 * empty by that is null) and the embedding_function it keeps (or null). */
static json_t *coll_meta_split(const vstore_coll *c, json_t **ef) {
    json_t *m = json_meta_or_null(c->metadata), *k = json_object_get(m, VSTORE_META_EMBED_FN);
    json_t *v = json_is_string(k) ? json_loads(json_string_value(k), 0, NULL) : NULL;
    *ef = v ? v : json_null();
    if (k) {
        json_object_del(m, VSTORE_META_EMBED_FN);
        if (!json_object_size(m)) {
            json_decref(m);
            m = json_null();
        }
    }
    return m;
}

static json_t *coll_json(const vstore_coll *c) {
    json_t *hc = json_pack("{s:s,s:i,s:i,s:i}", "space", vdist_metric_name(c->metric),
                           "ef_construction", c->hnsw.ef_construction, "ef_search",
                           c->hnsw.ef_search, "max_neighbors", c->hnsw.M);
    json_t *ef, *meta = coll_meta_split(c, &ef);
    json_t *conf = json_pack("{s:o,s:n,s:o}", "hnsw", hc, "spann", "embedding_function", ef);
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:s,s:i,s:i,s:n}", "id", c->id, "name", c->name,
                     "configuration_json", conf, "metadata", meta, "dimension",
                     c->dim ? json_integer((json_int_t)c->dim) : json_null(), "tenant", c->tenant,
                     "database", c->database, "log_position", 0, "version", 0, "schema");
}

/* ---- routes */

static long query_long(const char *query, const char *key, long def) {
    if (!query) return def;
    size_t kl = strlen(key);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end;
            long v = strtol(p + kl + 1, &end, 10);
            if (end != p + kl + 1 && v >= 0) return v;
            return -1;
        }
    }
    return def;
}

static const char *jstr(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static bool jnum_size(const json_t *o, const char *k, size_t *out, base_err *e) {
    const json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        base_fail(e, BASE_EINVAL, "%s must be a non-negative integer", k);
        return false;
    }
    *out = (size_t)json_integer_value(v);
    return true;
}

static void do_create_collection(vstore *db, req *q, reply *r) {
    const char *t = q->t, *d = q->d;
    json_t *in = q->in;
    base_err e = {0};
    const char *name = jstr(in, "name");
    if (!name) {
        set_err(r, 400, "InvalidArgumentError", "name is required");
        return;
    }
    vstore_coll_opts o = {0};
    json_t *meta = json_object_get(in, "metadata");
    /* Chroma's legacy metadata keys, then the configuration (which wins). */
    const char *space = jstr(meta, "hnsw:space");
    json_t *h = json_object_get(json_object_get(in, "configuration"), "hnsw");
    if (jstr(h, "space")) space = jstr(h, "space");
    if (space && vdist_metric_parse(space, &o.metric) != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown space '%.40s' (known: l2 ip cosine)", space);
        set_err(r, 400, "InvalidArgumentError", msg);
        return;
    }
    static const struct {
        const char *meta_key, *conf_key;
        size_t off;
    } ints[] = {{"hnsw:M", "max_neighbors", offsetof(hnsw_params, M)},
                {"hnsw:construction_ef", "ef_construction", offsetof(hnsw_params, ef_construction)},
                {"hnsw:search_ef", "ef_search", offsetof(hnsw_params, ef_search)}};
    for (size_t k = 0; k < 3; k++) {
        json_t *v = json_object_get(h, ints[k].conf_key);
        if (!v || json_is_null(v)) v = json_object_get(meta, ints[k].meta_key);
        if (!v || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 10000) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s must be an integer in 1..10000", ints[k].conf_key);
            set_err(r, 400, "InvalidArgumentError", msg);
            return;
        }
        *(int *)((char *)&o.hnsw + ints[k].off) = (int)json_integer_value(v);
    }
    /* the configuration's embedding_function (what the chromadb clients send: {"type":
     * "known", "name": ..., "config": {...}}) is kept in the metadata under a hidden key */
    json_t *ef = json_object_get(json_object_get(in, "configuration"), "embedding_function");
    json_t *mcopy = NULL;
    if (json_is_object(ef) && json_is_string(json_object_get(ef, "name"))) {
        char *eft = json_dumps(ef, JSON_COMPACT | JSON_SORT_KEYS);
        mcopy = json_is_object(meta) ? json_deep_copy(meta) : json_object();
        if (eft && mcopy) json_object_set_new(mcopy, VSTORE_META_EMBED_FN, json_string(eft));
        free(eft);
        meta = mcopy;
    }
    char *mtext = dump_opt(meta);
    json_decref(mcopy);
    o.metadata = mtext;
    vstore_coll c = {0};
    int rc = vstore_coll_create(db, t, d, name, &o,
                                json_is_true(json_object_get(in, "get_or_create")), &c, &e);
    free(mtext);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, coll_json(&c));
    vstore_coll_free(&c);
}

/* ---- server-side embedding */

void vstore_set_embedder(vstore *db, vstore_embed_fn fn, void *ud) {
    pthread_mutex_lock(&db->mu);
    db->embed_fn = fn;
    db->embed_ud = ud;
    pthread_mutex_unlock(&db->mu);
}

/* The model collection c names (malloc'd; "" for the server's default), or NULL for none. */
static char *coll_model(const vstore_coll *c) {
    json_t *m = json_meta_or_null(c->metadata), *ef = NULL;
    char *out = NULL;
    const char *name = jstr(m, VSTORE_META_EMBED_MODEL);
    if (name) {
        out = vstore_strdup(name);
    } else if (jstr(m, VSTORE_META_EMBED_FN) &&
               (ef = json_loads(jstr(m, VSTORE_META_EMBED_FN), 0, NULL))) {
        const char *n = jstr(ef, "name"), *cm = jstr(json_object_get(ef, "config"), "model");
        if (!cm) cm = jstr(json_object_get(ef, "config"), "model_name");
        if (n && !strcmp(n, "default")) out = vstore_strdup("");
        if (n && !strcmp(n, "hearth")) out = vstore_strdup(cm ? cm : "");
    }
    json_decref(ef);
    json_decref(m);
    return out;
}

/* Embeds n texts (none NULL) with c's model: *out n x *dim floats (malloc'd). */
static int embed_for(vstore *db, const vstore_coll *c, const char *const *texts, size_t n,
                     const char *what, float **out, size_t *dim, base_err *e) {
    pthread_mutex_lock(&db->mu);
    vstore_embed_fn fn = db->embed_fn;
    void *ud = db->embed_ud;
    pthread_mutex_unlock(&db->mu);
    char *model = coll_model(c);
    int rc;
    if (!model)
        rc = base_fail(e, BASE_EINVAL,
                       "%s: collection '%s' names no embedding model (set metadata \"%s\" or "
                       "configuration.embedding_function), so embeddings are required",
                       what, c->name, VSTORE_META_EMBED_MODEL);
    else if (!fn)
        rc = base_fail(e, BASE_EINVAL,
                       "%s: this server has no embedding model (hearth serve --embed-model), so "
                       "embeddings are required",
                       what);
    else
        rc = fn(ud, model, texts, n, out, dim, e);
    free(model);
    return rc;
}

static void do_write(vstore *db, req *rq, reply *r) {
    const vstore_coll *c = &rq->c;
    vstore_mode mode = (vstore_mode)rq->arg;
    json_t *in = rq->in;
    base_err e = {0};
    const char **ids = NULL, **docs = NULL;
    char **metas = NULL;
    float *emb = NULL;
    size_t n = 0, ne = 0, dim = 0;
    int rc = str_array(json_object_get(in, "ids"), "ids", &ids, &n, &e);
    if (!rc && !ids) rc = base_fail(&e, BASE_EINVAL, "ids are required");
    if (!rc)
        rc = float_matrix(json_object_get(in, "embeddings"), "embeddings", n, &emb, &ne, &dim, &e);
    json_t *jd = json_object_get(in, "documents"), *jm = json_object_get(in, "metadatas");
    if (!rc && jd && !json_is_null(jd)) {
        if (!json_is_array(jd) || json_array_size(jd) != n)
            rc = base_fail(&e, BASE_EINVAL, "documents must be an array of %zu entries", n);
        else if (!(docs = calloc(n ? n : 1, sizeof *docs)))
            rc = base_fail(&e, BASE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < n; i++) {
            json_t *x = json_array_get(jd, i);
            if (json_is_string(x))
                docs[i] = json_string_value(x);
            else if (!json_is_null(x))
                rc = base_fail(&e, BASE_EINVAL, "documents[%zu] must be a string or null", i);
        }
    }
    if (!rc && jm && !json_is_null(jm)) {
        if (!json_is_array(jm) || json_array_size(jm) != n)
            rc = base_fail(&e, BASE_EINVAL, "metadatas must be an array of %zu entries", n);
        else if (!(metas = calloc(n ? n : 1, sizeof *metas)))
            rc = base_fail(&e, BASE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < n; i++) {
            json_t *x = json_array_get(jm, i);
            if (json_is_object(x))
                metas[i] = json_dumps(x, JSON_COMPACT);
            else if (!json_is_null(x))
                rc = base_fail(&e, BASE_EINVAL, "metadatas[%zu] must be an object or null", i);
        }
    }
    if (!rc && !emb && docs && n) { /* documents without embeddings: embed them here */
        for (size_t i = 0; !rc && i < n; i++)
            if (!docs[i])
                rc = base_fail(&e, BASE_EINVAL,
                               "documents[%zu] is null and there are no embeddings to go with it",
                               i);
        if (!rc) rc = embed_for(db, c, docs, n, "documents", &emb, &dim, &e);
    }
    if (!rc) {
        vstore_batch b = {n, ids, emb, docs, (const char *const *)metas};
        rc = vstore_write(db, c->id, mode, &b, dim, &e);
    }
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, mode == VSTORE_ADD ? 201 : 200, json_object());
    if (metas)
        for (size_t i = 0; i < n; i++) free(metas[i]);
    free(metas);
    free(docs);
    free(ids);
    free(emb);
}

static void do_get(vstore *db, req *rq, reply *r) {
    const vstore_coll *c = &rq->c;
    json_t *in = rq->in;
    base_err e = {0};
    unsigned inc_all = 0;
    vstore_get_req q = {0};
    json_t *echo = NULL;
    const char **ids = NULL;
    char *where = dump_opt(json_object_get(in, "where"));
    char *wdoc = dump_opt(json_object_get(in, "where_document"));
    int rc = str_array(json_object_get(in, "ids"), "ids", &ids, &q.n_ids, &e);
    if (!rc && !(jnum_size(in, "limit", &q.limit, &e) && jnum_size(in, "offset", &q.offset, &e)))
        rc = BASE_EINVAL;
    if (!rc)
        rc = parse_include(json_object_get(in, "include"),
                           VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS, &inc_all, &echo, &e);
    if (!rc && (inc_all & VSTORE_INC_DISTANCES))
        rc = base_fail(&e, BASE_EINVAL, "include: distances is only for queries");
    q.include = inc_all & ~INC_URIS;
    q.ids = ids;
    q.where = where;
    q.where_document = wdoc;
    vstore_result res = {0};
    if (!rc) rc = vstore_get(db, c->id, &q, &res, &e);
    if (rc) {
        set_fail(r, rc, &e);
    } else {
        set_text(r, 200, answer_text(&res, 1, false, inc_all, echo));
    }
    vstore_result_free(&res);
    json_decref(echo);
    free(ids);
    free(where);
    free(wdoc);
}

/* The query's search mode: Chroma's dense search, or (hearth's extension, the body's "hearth"
 * object: {"mode": "dense" | "bm25" | "hybrid", "rrf_k": K, "dense_weight": W, "text_weight":
 * W}) BM25 over the documents or the fusion of both. */
typedef enum { Q_DENSE, Q_BM25, Q_HYBRID } qmode;

static int query_mode(const json_t *h, qmode *mode, vstore_hybrid_req *hy, base_err *e) {
    *mode = Q_DENSE;
    if (!h || json_is_null(h)) return 0;
    if (!json_is_object(h))
        return base_fail(e, BASE_EINVAL,
                         "hearth must be an object: {\"mode\": \"dense\" | "
                         "\"bm25\" | \"hybrid\", \"rrf_k\", "
                         "\"dense_weight\", \"text_weight\"}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)h, k, v) {
        if (!strcmp(k, "mode")) {
            const char *m = json_string_value(v);
            if (m && !strcmp(m, "dense"))
                *mode = Q_DENSE;
            else if (m && (!strcmp(m, "bm25") || !strcmp(m, "text")))
                *mode = Q_BM25;
            else if (m && !strcmp(m, "hybrid"))
                *mode = Q_HYBRID;
            else
                return base_fail(e, BASE_EINVAL, "hearth.mode must be dense, bm25 or hybrid");
        } else if (!strcmp(k, "rrf_k") || !strcmp(k, "dense_weight") || !strcmp(k, "text_weight")) {
            double x = json_number_value(v);
            if (!json_is_number(v) || !isfinite(x) || x < 0 || x > 1e6 ||
                (!strcmp(k, "rrf_k") && x <= 0))
                return base_fail(e, BASE_EINVAL, "hearth.%s must be a number in %s..1e6", k,
                                 strcmp(k, "rrf_k") ? "0" : "(0");
            if (!strcmp(k, "rrf_k")) hy->rrf_k = x;
            if (!strcmp(k, "dense_weight")) hy->w_dense = x;
            if (!strcmp(k, "text_weight")) hy->w_text = x;
        } else {
            return base_fail(e, BASE_EINVAL,
                             "hearth.%s is not a query option (mode, rrf_k, dense_weight, "
                             "text_weight)",
                             k);
        }
    }
    return 0;
}

static void do_query(vstore *db, req *rq, reply *r) {
    const vstore_coll *c = &rq->c;
    json_t *in = rq->in;
    base_err e = {0};
    unsigned inc_all = 0;
    vstore_query_req q = {0};
    vstore_hybrid_req hy = {.w_dense = 1, .w_text = 1}; /* a weight not given stays 1 */
    qmode mode = Q_DENSE;
    json_t *echo = NULL;
    const char **ids = NULL, **texts = NULL;
    size_t nt = 0;
    float *qv = NULL;
    char *where = dump_opt(json_object_get(in, "where"));
    char *wdoc = dump_opt(json_object_get(in, "where_document"));
    q.k = 10;
    int rc = str_array(json_object_get(in, "ids"), "ids", &ids, &q.n_ids, &e);
    if (!rc && !jnum_size(in, "n_results", &q.k, &e)) rc = BASE_EINVAL;
    if (!rc)
        rc = float_matrix(json_object_get(in, "query_embeddings"), "query_embeddings", 0, &qv,
                          &q.nq, &q.dim, &e);
    if (!rc) rc = str_array(json_object_get(in, "query_texts"), "query_texts", &texts, &nt, &e);
    if (!rc) rc = query_mode(json_object_get(in, "hearth"), &mode, &hy, &e);
    if (!rc && qv && texts && nt != q.nq)
        rc = base_fail(&e, BASE_EINVAL, "query_texts has %zu entries, query_embeddings %zu", nt,
                       q.nq);
    if (!rc && mode != Q_DENSE && !texts)
        rc = base_fail(&e, BASE_EINVAL, "hearth.mode %s needs query_texts",
                       mode == Q_BM25 ? "bm25" : "hybrid");
    if (!rc && mode != Q_DENSE && (ids || wdoc))
        rc = base_fail(&e, BASE_EINVAL,
                       "hearth.mode %s takes where but not ids or "
                       "where_document",
                       mode == Q_BM25 ? "bm25" : "hybrid");
    if (!rc && !qv && !texts)
        rc = base_fail(&e, BASE_EINVAL, "query_embeddings (or query_texts) are required");
    if (!rc && !qv && mode != Q_BM25) { /* texts: embedded with the collection's model */
        rc = embed_for(db, c, texts, nt, "query_texts", &qv, &q.dim, &e);
        q.nq = nt;
    }
    if (!rc)
        rc = parse_include(json_object_get(in, "include"),
                           VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS | VSTORE_INC_DISTANCES,
                           &inc_all, &echo, &e);
    q.include = inc_all & ~INC_URIS;
    q.queries = qv;
    q.ids = ids;
    q.where = where;
    q.where_document = wdoc;
    if (mode != Q_DENSE) q.nq = nt;
    vstore_result *res = NULL;
    if (!rc && mode == Q_DENSE) {
        rc = vstore_query(db, c->id, &q, &res, &e);
    } else if (!rc) {
        if (q.k == 0 || (q.nq && q.k > VSTORE_MAX_RESULTS / q.nq))
            rc = base_fail(&e, BASE_EINVAL, "n_results must be in 1..%zu for %zu queries",
                           (size_t)VSTORE_MAX_RESULTS / (q.nq ? q.nq : 1), q.nq);
        else if (!(res = calloc(q.nq ? q.nq : 1, sizeof *res)))
            rc = base_fail(&e, BASE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < q.nq; i++) {
            if (mode == Q_BM25) {
                rc = vstore_text_search(db, c->id, texts[i], q.k, where, q.include, &res[i], &e);
            } else {
                hy.query = qv + i * q.dim;
                hy.dim = q.dim;
                hy.text = texts[i];
                hy.k = q.k;
                hy.where = where;
                hy.include = q.include;
                rc = vstore_hybrid(db, c->id, &hy, &res[i], &e);
            }
        }
    }
    if (rc) {
        set_fail(r, rc, &e);
    } else {
        set_text(r, 200, answer_text(res, q.nq, true, inc_all, echo));
    }
    if (res)
        for (size_t i = 0; i < q.nq; i++) vstore_result_free(&res[i]);
    free(res);
    json_decref(echo);
    free(ids);
    free(texts);
    free(qv);
    free(where);
    free(wdoc);
}

static void do_delete(vstore *db, req *rq, reply *r) {
    const vstore_coll *c = &rq->c;
    json_t *in = rq->in;
    base_err e = {0};
    const char **ids = NULL;
    size_t n = 0, limit = 0, deleted = 0;
    char *where = dump_opt(json_object_get(in, "where"));
    char *wdoc = dump_opt(json_object_get(in, "where_document"));
    int rc = str_array(json_object_get(in, "ids"), "ids", &ids, &n, &e);
    if (!rc && !jnum_size(in, "limit", &limit, &e)) rc = BASE_EINVAL;
    if (!rc) rc = vstore_delete(db, c->id, ids, n, where, wdoc, limit, &deleted, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_pack("{s:I}", "deleted", (json_int_t)deleted));
    free(ids);
    free(where);
    free(wdoc);
}

/* new_configuration of a collection update: hnsw.ef_search may change (it is read per query);
 * what the graph was built with (space, max_neighbors, ef_construction) may not. */
static int modify_config(const json_t *conf, int *ef_search, base_err *e) {
    *ef_search = 0;
    if (!conf || json_is_null(conf)) return 0;
    if (!json_is_object(conf))
        return base_fail(e, BASE_EINVAL, "new_configuration must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)conf, k, v) {
        if (json_is_null(v)) continue;
        if (strcmp(k, "hnsw") != 0 || !json_is_object(v))
            return base_fail(e, BASE_EINVAL, "new_configuration: '%s' cannot be changed", k);
        const char *hk;
        json_t *hv;
        json_object_foreach(v, hk, hv) {
            if (json_is_null(hv)) continue;
            if (strcmp(hk, "ef_search") != 0)
                return base_fail(e, BASE_EINVAL,
                                 "new_configuration: hnsw.%s cannot be changed after creation "
                                 "(only ef_search can)",
                                 hk);
            if (!json_is_integer(hv) || json_integer_value(hv) < 1 ||
                json_integer_value(hv) > 10000)
                return base_fail(e, BASE_EINVAL, "hnsw.ef_search must be an integer in 1..10000");
            *ef_search = (int)json_integer_value(hv);
        }
    }
    return 0;
}

void vstore_set_max_body(vstore *db, size_t bytes) {
    pthread_mutex_lock(&db->mu);
    db->max_body = bytes;
    pthread_mutex_unlock(&db->mu);
}

static size_t max_body(vstore *db) {
    pthread_mutex_lock(&db->mu);
    size_t n = db->max_body;
    pthread_mutex_unlock(&db->mu);
    return n;
}

/* The most records one add can carry within the body limit: {"ids":["a"],"embeddings":[[0]]}
 * is 32 bytes and each further record adds at least 8 (,"b" and ,[0]); at most the store's
 * VSTORE_MAX_BATCH. The client refuses a larger batch before sending it. */
static size_t max_batch(vstore *db) {
    size_t b = max_body(db), n = b >= 32 ? (b - 24) / 8 : 0;
    return n < VSTORE_MAX_BATCH ? n : VSTORE_MAX_BATCH;
}

/* ---- the routes: one handler each */

static void h_heartbeat(vstore *db, req *q, reply *r) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    set_ok(r, 200,
           json_pack("{s:I}", "nanosecond heartbeat",
                     (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec));
}

static void h_version(vstore *db, req *q, reply *r) {
    set_ok(r, 200, json_string("1.0.0"));
}

static void h_healthcheck(vstore *db, req *q, reply *r) {
    set_ok(r, 200, json_string("ok"));
}

static void h_preflight(vstore *db, req *q, reply *r) {
    set_ok(r, 200,
           json_pack("{s:I,s:b}", "max_batch_size", (json_int_t)max_batch(db),
                     "supports_base64_encoding", 0));
}

static void h_identity(vstore *db, req *q, reply *r) {
    set_ok(r, 200,
           json_pack("{s:s,s:s,s:[s]}", "user_id", "", "tenant", "default_tenant", "databases",
                     "default_database"));
}

static void h_reset(vstore *db, req *q, reply *r) {
    set_err(r, 403, "ForbiddenError", "reset is disabled: delete collections one by one");
}

/* A Chroma resource name: tenant:database:collection. */
static void h_crn(vstore *db, req *q, reply *r) {
    char crn[1600];
    snprintf(crn, sizeof crn, "%s", q->param);
    char *c1 = strchr(crn, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (strlen(q->param) >= sizeof crn || !c1 || !c2 || strchr(c2 + 1, ':')) {
        set_err(r, 400, "InvalidArgumentError",
                "a collection resource name is tenant:database:collection");
        return;
    }
    *c1 = *c2 = 0;
    base_err e = {0};
    vstore_coll c = {0};
    int rc = vstore_coll_get(db, crn, c1 + 1, c2 + 1, &c, &e);
    if (rc)
        set_fail(r, rc, &e);
    else if (strcmp(c.tenant, crn) || strcmp(c.database, c1 + 1))
        set_err(r, 404, "NotFoundError", "no such collection in that tenant and database");
    else
        set_ok(r, 200, coll_json(&c));
    vstore_coll_free(&c);
}

static void h_tenant_create(vstore *db, req *q, reply *r) {
    base_err e = {0};
    const char *name = jstr(q->in, "name");
    int rc;
    if (!name)
        set_err(r, 400, "InvalidArgumentError", "name is required");
    else if ((rc = vstore_tenant_create(db, name, &e)))
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_object());
}

static void h_tenant_get(vstore *db, req *q, reply *r) {
    set_ok(r, 200, json_pack("{s:s}", "name", q->t));
}

static void h_db_list(vstore *db, req *q, reply *r) {
    base_err e = {0};
    char **names = NULL;
    size_t n = 0;
    int rc = vstore_database_list(db, q->t, &names, &n, &e);
    if (rc) {
        set_fail(r, rc, &e);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[40] = "";
        vstore_database_get(db, q->t, names[i], id, NULL);
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s}", "id", id, "name", names[i], "tenant", q->t));
        free(names[i]);
    }
    free(names);
    set_ok(r, 200, a);
}

static void h_db_create(vstore *db, req *q, reply *r) {
    base_err e = {0};
    const char *name = jstr(q->in, "name");
    int rc;
    if (!name)
        set_err(r, 400, "InvalidArgumentError", "name is required");
    else if ((rc = vstore_database_create(db, q->t, name, &e)))
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_object());
}

static void h_db_get(vstore *db, req *q, reply *r) {
    base_err e = {0};
    char id[40];
    int rc = vstore_database_get(db, q->t, q->d, id, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_pack("{s:s,s:s,s:s}", "id", id, "name", q->d, "tenant", q->t));
}

static void h_db_delete(vstore *db, req *q, reply *r) {
    base_err e = {0};
    int rc = vstore_database_delete(db, q->t, q->d, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_object());
}

static void h_coll_count(vstore *db, req *q, reply *r) {
    base_err e = {0};
    uint64_t n = 0;
    int rc = vstore_coll_count(db, q->t, q->d, &n, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_integer((json_int_t)n));
}

static void h_coll_list(vstore *db, req *q, reply *r) {
    base_err e = {0};
    long limit = query_long(q->query, "limit", 0), offset = query_long(q->query, "offset", 0);
    if (limit < 0 || offset < 0) {
        set_err(r, 400, "InvalidArgumentError", "limit and offset must be integers >= 0");
        return;
    }
    vstore_coll *cs = NULL;
    size_t n = 0;
    int rc = vstore_coll_list(db, q->t, q->d, (size_t)limit, (size_t)offset, &cs, &n, &e);
    if (rc) {
        set_fail(r, rc, &e);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, coll_json(&cs[i]));
        vstore_coll_free(&cs[i]);
    }
    free(cs);
    set_ok(r, 200, a);
}

static void h_coll_get(vstore *db, req *q, reply *r) {
    set_ok(r, 200, coll_json(&q->c));
}

static void h_coll_delete(vstore *db, req *q, reply *r) {
    base_err e = {0};
    int rc = vstore_coll_delete(db, q->t, q->d, q->c.id, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_object());
}

static void h_coll_modify(vstore *db, req *q, reply *r) {
    base_err e = {0};
    json_t *nm = json_object_get(q->in, "new_name"), *md = json_object_get(q->in, "new_metadata");
    char *mtext = dump_opt(md);
    int efs = 0, rc;
    if (nm && !json_is_null(nm) && !json_is_string(nm))
        rc = base_fail(&e, BASE_EINVAL, "new_name must be a string");
    else if (md && !json_is_null(md) && !json_is_object(md))
        rc = base_fail(&e, BASE_EINVAL, "new_metadata must be an object");
    else
        rc = modify_config(json_object_get(q->in, "new_configuration"), &efs, &e);
    /* new metadata replaces the old, but the embedding function kept beside it stays */
    json_t *old = json_meta_or_null(q->c.metadata);
    if (!rc && mtext && jstr(old, VSTORE_META_EMBED_FN) &&
        !json_object_get(md, VSTORE_META_EMBED_FN)) {
        json_t *m2 = json_deep_copy(md);
        if (m2)
            json_object_set(m2, VSTORE_META_EMBED_FN, json_object_get(old, VSTORE_META_EMBED_FN));
        free(mtext);
        mtext = dump_opt(m2);
        json_decref(m2);
    }
    json_decref(old);
    if (!rc) rc = vstore_coll_modify(db, q->c.id, json_string_value(nm), mtext, efs, &e);
    free(mtext);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_object());
}

static void h_count(vstore *db, req *q, reply *r) {
    base_err e = {0};
    uint64_t n = 0;
    int rc = vstore_count(db, q->c.id, &n, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        set_ok(r, 200, json_integer((json_int_t)n));
}

/* The route table, as http.c's: a path is the segments after /api/v2, each literal or one of
 * {t} (a tenant: 404 unless it exists), {d} (a database of {t}: 404 unless it exists), {c} (a
 * collection of {t}/{d} by name or id: 404 unless it exists, loaded for the handler) and {p}
 * (any segment, no lookup). The first route whose path and method match runs; a path that
 * matches with another method is 405. */
#define COLLS "tenants/{t}/databases/{d}/collections"
static const struct route {
    const char *method, *path;
    void (*fn)(vstore *db, req *q, reply *r);
    int arg;
} routes[] = {
    {"GET", "heartbeat", h_heartbeat, 0},
    {"GET", "version", h_version, 0},
    {"GET", "healthcheck", h_healthcheck, 0},
    {"GET", "pre-flight-checks", h_preflight, 0},
    {"GET", "auth/identity", h_identity, 0},
    {"POST", "reset", h_reset, 0},
    {"GET", "collections/{p}", h_crn, 0},
    {"POST", "tenants", h_tenant_create, 0},
    {"GET", "tenants/{t}", h_tenant_get, 0},
    {"GET", "tenants/{t}/databases", h_db_list, 0},
    {"POST", "tenants/{t}/databases", h_db_create, 0},
    {"GET", "tenants/{t}/databases/{d}", h_db_get, 0},
    {"DELETE", "tenants/{t}/databases/{d}", h_db_delete, 0},
    {"GET", "tenants/{t}/databases/{d}/collections_count", h_coll_count, 0},
    {"GET", COLLS, h_coll_list, 0},
    {"POST", COLLS, do_create_collection, 0},
    {"GET", COLLS "/by-id/{c}", h_coll_get, 0},
    {"PUT", COLLS "/by-id/{c}", h_coll_modify, 0},
    {"DELETE", COLLS "/by-id/{c}", h_coll_delete, 0},
    {"GET", COLLS "/{c}", h_coll_get, 0},
    {"PUT", COLLS "/{c}", h_coll_modify, 0},
    {"DELETE", COLLS "/{c}", h_coll_delete, 0},
    {"GET", COLLS "/{c}/count", h_count, 0},
    {"POST", COLLS "/{c}/add", do_write, VSTORE_ADD},
    {"POST", COLLS "/{c}/upsert", do_write, VSTORE_UPSERT},
    {"POST", COLLS "/{c}/update", do_write, VSTORE_UPDATE},
    {"POST", COLLS "/{c}/delete", do_delete, 0},
    {"POST", COLLS "/{c}/get", do_get, 0},
    {"POST", COLLS "/{c}/query", do_query, 0},
};
#undef COLLS

/* Whether the path pattern matches the segments; the parameters go into q. */
static bool route_match(const char *path, char **seg, int nseg, req *q) {
    int i = 0;
    for (const char *p = path; *p; i++) {
        size_t len = strcspn(p, "/");
        if (i == nseg) return false;
        if (p[0] == '{' && len == 3) {
            if (p[1] == 't')
                q->t = seg[i];
            else if (p[1] == 'd')
                q->d = seg[i];
            else
                q->param = seg[i]; /* {c} and {p} */
        } else if (strlen(seg[i]) != len || strncmp(p, seg[i], len) != 0) {
            return false;
        }
        p += len + (p[len] == '/');
    }
    return i == nseg;
}

static void route(vstore *db, const char *method, char **seg, int nseg, const char *query,
                  json_t *in, reply *r) {
    const struct route *hit = NULL;
    char allow[64] = "";
    req q = {0};
    for (size_t k = 0; k < sizeof routes / sizeof *routes && !hit; k++) {
        req m = {.query = query, .in = in, .arg = routes[k].arg};
        if (!route_match(routes[k].path, seg, nseg, &m)) continue;
        if (!strcmp(method, routes[k].method)) {
            hit = &routes[k];
            q = m;
        } else if (!strstr(allow, routes[k].method) && strlen(allow) + 8 < sizeof allow) {
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", routes[k].method);
        }
    }
    if (!hit) {
        char msg[128];
        snprintf(msg, sizeof msg, "use %s", allow);
        if (allow[0])
            set_err(r, 405, "MethodNotAllowed", msg);
        else
            set_err(r, 404, "NotFoundError", "unknown route");
        return;
    }
    /* What the path names must exist: its tenant, its database, its collection. */
    base_err e = {0};
    int rc = 0;
    bool coll = strstr(hit->path, "{c}") != NULL;
    if (q.t) {
        bool yes = false;
        if ((rc = vstore_tenant_exists(db, q.t, &yes, &e)) == 0 && !yes)
            rc = base_fail(&e, BASE_ENOTFOUND, "tenant '%.500s' does not exist", q.t);
    }
    if (!rc && q.d) rc = vstore_database_get(db, q.t, q.d, NULL, &e);
    if (!rc && coll) rc = vstore_coll_get(db, q.t, q.d, q.param, &q.c, &e);
    if (rc)
        set_fail(r, rc, &e);
    else
        hit->fn(db, &q, r);
    vstore_coll_free(&q.c);
}

void vstore_http(vstore *db, const char *method, const char *path, const char *query,
                 const char *body, size_t len, int *status, char **resp) {
    reply r = {500, NULL, NULL};
    json_t *in = NULL;
    char *copy = NULL;
    enum { MAX_SEG = 12 };
    char *seg[MAX_SEG];
    int nseg = 0;
    static const char prefix[] = "/api/v2";
    if (!method || !path || strncmp(path, prefix, sizeof prefix - 1) != 0) {
        set_err(&r, 404, "NotFoundError", "not a /api/v2 path");
        goto out;
    }
    size_t limit = max_body(db);
    if (len > limit) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body of %zu bytes is above the limit of %zu", len,
                 limit);
        set_err(&r, 413, "RequestTooLargeError", msg);
        goto out;
    }
    if (body && len > 0) {
        json_error_t je;
        in = json_loadb(body, len, 0, &je);
        if (!in || !json_is_object(in)) {
            char msg[300];
            snprintf(msg, sizeof msg, "request body is not a JSON object%s%s", in ? "" : ": ",
                     in ? "" : je.text);
            set_err(&r, 400, "InvalidArgumentError", msg);
            goto out;
        }
    } else {
        in = json_object();
    }
    if (!(copy = vstore_strdup(path + sizeof prefix - 1))) {
        set_err(&r, 500, "InternalError", "out of memory");
        goto out;
    }
    char *save = NULL;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (nseg == MAX_SEG) {
            set_err(&r, 404, "NotFoundError", "bad path");
            goto out;
        }
        seg[nseg++] = p;
    }
    route(db, method, seg, nseg, query, in, &r);
out:
    *status = r.status;
    *resp = r.text ? r.text : r.body ? json_dumps(r.body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!*resp) {
        *status = 500;
        *resp = vstore_strdup("{\"error\":\"InternalError\",\"message\":\"out of memory\"}");
    }
    json_decref(r.body);
    json_decref(in);
    free(copy);
}
