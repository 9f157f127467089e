/* tests/vstore/test_vstore.c: the vector store. Collections and namespaces; records (add,
 * upsert, update with metadata merge, delete by ids and filter, get with limit/offset/include);
 * bad input refused with nothing written; every where operator checked against a brute-force
 * evaluation; dense search against exact ground truth for each metric; the filtered-search rule
 * (both paths, recall >= 0.95 at 1% and 10% selectivity); durability (index caught up from
 * SQLite after a crash without a save, deletes included; a damaged or missing index rebuilt and
 * reported; a damaged database refused); BM25 and reciprocal rank fusion; the Chroma HTTP
 * function, also from several threads at once. */
#include "test.h"

#include "vstore/vstore.h"
#include "vstore/vstore_int.h" /* test_disk_full: the SQLite handle */

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[64];

static void dir_of(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", root, name);
}

static vstore *open_store(const char *name) {
    char d[256];
    dir_of(d, sizeof d, name);
    base_err e = {0};
    vstore *db = NULL;
    int rc = vstore_open(&db, d, &e);
    if (rc) fprintf(stderr, "vstore_open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return db;
}

static char *make_coll(vstore *db, const char *name, vdist_metric m, int efc) {
    vstore_coll_opts o = {.metric = m};
    o.hnsw.ef_construction = efc;
    vstore_coll c;
    base_err e = {0};
    int rc = vstore_coll_create(db, NULL, NULL, name, &o, false, &c, &e);
    if (rc) fprintf(stderr, "create: %s\n", e.msg);
    assert_int_equal(rc, 0);
    char *id = strdup(c.id);
    vstore_coll_free(&c);
    return id;
}

static uint64_t count_of(vstore *db, const char *cid) {
    uint64_t n = 0;
    base_err e = {0};
    assert_int_equal(vstore_count(db, cid, &n, &e), 0);
    return n;
}

/* Adds n records "p<i>" with vectors vecs (n x d), metadata from meta(i) and documents. */
static void add_n(vstore *db, const char *cid, size_t first, size_t n, size_t d, const float *vecs,
                  char **metas, char **docs) {
    char **ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = malloc(24);
        snprintf(ids[i], 24, "p%zu", first + i);
    }
    vstore_batch b = {n, (const char *const *)ids, vecs, (const char *const *)docs,
                      (const char *const *)metas};
    base_err e = {0};
    int rc = vstore_write(db, cid, VSTORE_ADD, &b, d, &e);
    if (rc) fprintf(stderr, "add: %s\n", e.msg);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

/* ---- collections and namespaces */

static void test_collections(void **state) {
    (void)state;
    vstore *db = open_store("colls");
    base_err e = {0};
    char *a = make_coll(db, "alpha", VDIST_COSINE, 0);
    vstore_coll c;
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "alpha", NULL, false, &c, &e),
                     BASE_EEXISTS);
    assert_non_null(strstr(e.msg, "already exists"));
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "alpha", NULL, true, &c, &e), 0);
    assert_string_equal(c.id, a);
    assert_int_equal(c.metric, VDIST_COSINE);
    assert_int_equal(c.hnsw.M, 16);
    vstore_coll_free(&c);
    /* names: Chroma's rule */
    const char *bad[] = {"ab", "-abc", "abc-", "a b c", "ab/c", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(vstore_coll_create(db, NULL, NULL, bad[i], NULL, false, NULL, &e),
                         BASE_EINVAL);
    vstore_coll_opts o = {.metadata = "[1]"};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "beta", &o, false, NULL, &e), BASE_EINVAL);
    o.metadata = "{\"topic\":\"x\"}";
    o.dim = 3;
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "beta", &o, false, &c, &e), 0);
    assert_int_equal(c.dim, 3);
    char *b = strdup(c.id);
    vstore_coll_free(&c);
    /* get by name and by id; unknown */
    assert_int_equal(vstore_coll_get(db, NULL, NULL, "beta", &c, &e), 0);
    assert_string_equal(c.metadata, "{\"topic\":\"x\"}");
    vstore_coll_free(&c);
    assert_int_equal(vstore_coll_get(db, NULL, NULL, b, &c, &e), 0);
    assert_string_equal(c.name, "beta");
    vstore_coll_free(&c);
    assert_int_equal(vstore_coll_get(db, NULL, NULL, "gamma", &c, &e), BASE_ENOTFOUND);
    assert_non_null(strstr(e.msg, "gamma"));
    /* list, count, paging */
    vstore_coll *cs;
    size_t n;
    assert_int_equal(vstore_coll_list(db, NULL, NULL, 0, 0, &cs, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(cs[0].name, "alpha");
    assert_string_equal(cs[1].name, "beta");
    for (size_t i = 0; i < n; i++) vstore_coll_free(&cs[i]);
    free(cs);
    assert_int_equal(vstore_coll_list(db, NULL, NULL, 1, 1, &cs, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(cs[0].name, "beta");
    vstore_coll_free(&cs[0]);
    free(cs);
    uint64_t cnt;
    assert_int_equal(vstore_coll_count(db, NULL, NULL, &cnt, &e), 0);
    assert_int_equal(cnt, 2);
    /* modify: rename, metadata, a taken name refused */
    assert_int_equal(vstore_coll_modify(db, b, "alpha", NULL, 0, &e), BASE_EEXISTS);
    assert_int_equal(vstore_coll_modify(db, b, "beta2", "{\"v\":2}", 0, &e), 0);
    assert_int_equal(vstore_coll_modify(db, b, NULL, NULL, 99, &e), 0);
    assert_int_equal(vstore_coll_modify(db, b, NULL, NULL, -1, &e), BASE_EINVAL);
    assert_int_equal(vstore_coll_get(db, NULL, NULL, "beta2", &c, &e), 0);
    assert_string_equal(c.metadata, "{\"v\":2}");
    assert_int_equal(c.hnsw.ef_search, 99);
    vstore_coll_free(&c);
    /* a dimension fixed at creation is checked at the first add */
    float v2[2] = {1, 2};
    const char *ids[] = {"x"};
    vstore_batch bt = {1, ids, v2, NULL, NULL};
    assert_int_equal(vstore_write(db, b, VSTORE_ADD, &bt, 2, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "dimension"));
    /* namespaces */
    assert_int_equal(vstore_coll_create(db, "acme", "prod", "alpha", NULL, false, NULL, &e),
                     BASE_ENOTFOUND);
    assert_int_equal(vstore_tenant_create(db, "acme", &e), 0);
    assert_int_equal(vstore_tenant_create(db, "acme", &e), BASE_EEXISTS);
    assert_int_equal(vstore_database_create(db, "acme", "prod", &e), 0);
    assert_int_equal(vstore_coll_create(db, "acme", "prod", "alpha", NULL, false, &c, &e), 0);
    assert_string_not_equal(c.id, a); /* same name, another database */
    vstore_coll_free(&c);
    assert_int_equal(vstore_coll_count(db, "acme", "prod", &cnt, &e), 0);
    assert_int_equal(cnt, 1);
    assert_int_equal(vstore_database_delete(db, "acme", "prod", &e), 0);
    assert_int_equal(vstore_database_get(db, "acme", "prod", NULL, &e), BASE_ENOTFOUND);
    /* delete */
    assert_int_equal(vstore_coll_delete(db, NULL, NULL, "alpha", &e), 0);
    assert_int_equal(vstore_coll_delete(db, NULL, NULL, "alpha", &e), BASE_ENOTFOUND);
    assert_int_equal(vstore_coll_count(db, NULL, NULL, &cnt, &e), 0);
    assert_int_equal(cnt, 1);
    vstore_close(db);
    free(a);
    free(b);
}

/* ---- records */

static void get_ids(vstore *db, const char *cid, const vstore_get_req *g, vstore_result *r) {
    base_err e = {0};
    int rc = vstore_get(db, cid, g, r, &e);
    if (rc) fprintf(stderr, "get: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

static void test_records(void **state) {
    (void)state;
    vstore *db = open_store("records");
    char *cid = make_coll(db, "recs", VDIST_L2, 0);
    base_err e = {0};
    float v[4 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
    const char *ids[] = {"a", "b", "c", "d"};
    const char *docs[] = {"the red fox", NULL, "a blue whale", "red red red"};
    const char *metas[] = {"{\"n\":1,\"s\":\"x\",\"f\":0.5,\"ok\":true}", "{\"n\":2}", NULL,
                           "{\"n\":4,\"gone\":null}"};
    vstore_batch b = {4, ids, v, docs, metas};
    assert_int_equal(vstore_write(db, cid, VSTORE_ADD, &b, 3, &e), 0);
    assert_int_equal(count_of(db, cid), 4);
    /* get by ids, with every field */
    const char *want[] = {"d", "a"};
    vstore_get_req g = {.ids = want,
                        .n_ids = 2,
                        .include =
                            VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS | VSTORE_INC_EMBEDDINGS};
    vstore_result r;
    get_ids(db, cid, &g, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ids[0], "a"); /* insertion order */
    assert_string_equal(r.ids[1], "d");
    assert_string_equal(r.documents[0], "the red fox");
    assert_string_equal(r.metadatas[0], "{\"f\":0.5,\"n\":1,\"ok\":true,\"s\":\"x\"}");
    assert_string_equal(r.metadatas[1], "{\"n\":4}"); /* null values are not stored */
    assert_true(r.embeddings[3] == 1 && r.embeddings[4] == 1 && r.embeddings[5] == 1);
    assert_null(r.distances);
    vstore_result_free(&r);
    /* limit / offset, include nothing but ids */
    vstore_get_req g2 = {.limit = 2, .offset = 1};
    get_ids(db, cid, &g2, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ids[0], "b");
    assert_string_equal(r.ids[1], "c");
    assert_null(r.documents);
    assert_null(r.embeddings);
    vstore_result_free(&r);
    /* update: metadata merged (null removes a key), document replaced, vector kept */
    const char *u_ids[] = {"a"};
    const char *u_meta[] = {"{\"n\":10,\"s\":null,\"new\":\"y\"}"};
    const char *u_doc[] = {"the green fox"};
    vstore_batch u = {1, u_ids, NULL, u_doc, u_meta};
    assert_int_equal(vstore_write(db, cid, VSTORE_UPDATE, &u, 0, &e), 0);
    vstore_get_req g3 = {.ids = u_ids,
                         .n_ids = 1,
                         .include =
                             VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS | VSTORE_INC_EMBEDDINGS};
    get_ids(db, cid, &g3, &r);
    assert_string_equal(r.metadatas[0], "{\"f\":0.5,\"n\":10,\"new\":\"y\",\"ok\":true}");
    assert_string_equal(r.documents[0], "the green fox");
    assert_true(r.embeddings[0] == 1 && r.embeddings[1] == 0);
    vstore_result_free(&r);
    /* the filter index follows the update */
    vstore_get_req g4 = {.where = "{\"n\":10}"};
    get_ids(db, cid, &g4, &r);
    assert_int_equal(r.n, 1);
    vstore_result_free(&r);
    vstore_get_req g5 = {.where = "{\"s\":\"x\"}"};
    get_ids(db, cid, &g5, &r);
    assert_int_equal(r.n, 0);
    vstore_result_free(&r);
    /* and the text index */
    vstore_result t;
    assert_int_equal(vstore_text_search(db, cid, "green", 5, NULL, 0, &t, &e), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.ids[0], "a");
    vstore_result_free(&t);
    assert_int_equal(vstore_text_search(db, cid, "fox", 5, NULL, 0, &t, &e), 0);
    assert_int_equal(t.n, 1);
    vstore_result_free(&t);
    /* upsert: one new, one existing (vector moves, so the query follows) */
    float uv[2 * 3] = {0, 0, 5, 9, 9, 9};
    const char *up_ids[] = {"c", "e"};
    vstore_batch up = {2, up_ids, uv, NULL, NULL};
    assert_int_equal(vstore_write(db, cid, VSTORE_UPSERT, &up, 3, &e), 0);
    assert_int_equal(count_of(db, cid), 5);
    float q[3] = {9, 9, 9};
    vstore_query_req qr = {.queries = q,
                           .nq = 1,
                           .dim = 3,
                           .k = 2,
                           .include = VSTORE_INC_DISTANCES | VSTORE_INC_DOCUMENTS};
    vstore_result *res;
    assert_int_equal(vstore_query(db, cid, &qr, &res, &e), 0);
    assert_int_equal(res[0].n, 2);
    assert_string_equal(res[0].ids[0], "e");
    assert_float_equal(res[0].distances[0], 0, 1e-6);
    assert_string_equal(res[0].ids[1], "c");
    assert_float_equal(res[0].distances[1], 81 + 81 + 16, 1e-3); /* squared l2 */
    assert_string_equal(res[0].documents[1], "a blue whale");    /* upsert kept it */
    vstore_result_free(&res[0]);
    free(res);
    /* delete by ids (an unknown id is fine), then by filter */
    const char *d_ids[] = {"b", "zzz"};
    size_t deleted;
    assert_int_equal(vstore_delete(db, cid, d_ids, 2, NULL, NULL, 0, &deleted, &e), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(vstore_delete(db, cid, NULL, 0, "{\"n\":{\"$gte\":4}}", NULL, 0, &deleted, &e),
                     0);
    assert_int_equal(deleted, 2); /* a (10) and d (4) */
    assert_int_equal(count_of(db, cid), 2);
    assert_int_equal(vstore_delete(db, cid, NULL, 0, NULL, NULL, 0, &deleted, &e), BASE_EINVAL);
    /* a deleted record is never returned by a query */
    float qa[3] = {1, 0, 0};
    qr.queries = qa;
    qr.k = 10;
    assert_int_equal(vstore_query(db, cid, &qr, &res, &e), 0);
    assert_int_equal(res[0].n, 2);
    for (size_t i = 0; i < res[0].n; i++) assert_string_not_equal(res[0].ids[i], "a");
    vstore_result_free(&res[0]);
    free(res);
    /* delete with a limit takes the oldest matches */
    assert_int_equal(
        vstore_delete(db, cid, NULL, 0, NULL, "{\"$not_contains\":\"zzz\"}", 1, &deleted, &e), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(count_of(db, cid), 1);
    vstore_close(db);
    free(cid);
}

/* The stored state of a collection as one string (ids, documents, metadata, vectors). */
static char *snapshot(vstore *db, const char *cid) {
    vstore_get_req g = {.include =
                            VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS | VSTORE_INC_EMBEDDINGS};
    vstore_result r;
    get_ids(db, cid, &g, &r);
    base_buf b = {0};
    for (size_t i = 0; i < r.n; i++) {
        base_buf_printf(&b, "%s|%s|%s|", r.ids[i], r.documents[i] ? r.documents[i] : "-",
                        r.metadatas[i] ? r.metadatas[i] : "-");
        for (size_t j = 0; j < r.dim; j++) base_buf_printf(&b, "%g,", r.embeddings[i * r.dim + j]);
        base_buf_printf(&b, "\n");
    }
    vstore_result_free(&r);
    return b.data ? b.data : strdup("");
}

static void expect_refused(vstore *db, const char *cid, vstore_mode mode, const vstore_batch *b,
                           size_t dim, int code, const char *msg_part) {
    char *before = snapshot(db, cid);
    base_err e = {0};
    int rc = vstore_write(db, cid, mode, b, dim, &e);
    if (rc != code || !strstr(e.msg, msg_part))
        fprintf(stderr, "expected %d '%s', got %d '%s'\n", code, msg_part, rc, e.msg);
    assert_int_equal(rc, code);
    assert_non_null(strstr(e.msg, msg_part));
    char *after = snapshot(db, cid);
    assert_string_equal(before, after); /* nothing written */
    free(before);
    free(after);
}

static void test_bad_input(void **state) {
    (void)state;
    vstore *db = open_store("bad");
    char *cid = make_coll(db, "bad", VDIST_L2, 0);
    base_err e = {0};
    float v[3 * 2] = {1, 2, 3, 4, 5, 6};
    const char *ids[] = {"a", "b", "c"};
    vstore_batch ok = {2, ids, v, NULL, NULL};
    assert_int_equal(vstore_write(db, cid, VSTORE_ADD, &ok, 2, &e), 0);

    /* the second record of each batch is bad; the first must not be written either */
    const char *ids2[] = {"n1", "n2"};
    float wrong[2 * 3] = {1, 2, 3, 4, 5, 6};
    vstore_batch b = {2, ids2, wrong, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &b, 3, BASE_EINVAL, "does not match collection");
    float nan_v[4] = {1, 2, 3, NAN};
    b.embeddings = nan_v;
    expect_refused(db, cid, VSTORE_ADD, &b, 2, BASE_EINVAL, "record 'n2': embedding[1] is NaN");
    float inf_v[4] = {1, 2, INFINITY, 0};
    b.embeddings = inf_v;
    expect_refused(db, cid, VSTORE_ADD, &b, 2, BASE_EINVAL, "infinite");
    const char *dup[] = {"n1", "n1"};
    vstore_batch bd = {2, dup, v, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &bd, 2, BASE_EINVAL, "'n1' appears more than once");
    const char *exists[] = {"n1", "a"};
    vstore_batch be = {2, exists, v, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &be, 2, BASE_EEXISTS, "record 'a' already exists");
    const char *missing[] = {"a", "nope"};
    vstore_batch bu = {2, missing, v, NULL, NULL};
    expect_refused(db, cid, VSTORE_UPDATE, &bu, 2, BASE_ENOTFOUND, "'nope' does not exist");
    const char *badmeta[] = {"{}", "{\"k\":[1,2]}"};
    vstore_batch bm = {2, ids2, v, NULL, badmeta};
    expect_refused(db, cid, VSTORE_ADD, &bm, 2, BASE_EINVAL, "'k' must be a string, number");
    const char *notjson[] = {"{}", "{\"k\":"};
    bm.metadatas = notjson;
    expect_refused(db, cid, VSTORE_ADD, &bm, 2, BASE_EINVAL, "metadata is not JSON");
    const char *empty_id[] = {"n1", ""};
    vstore_batch bi = {2, empty_id, v, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &bi, 2, BASE_EINVAL, "empty id");
    vstore_batch bn = {2, ids2, NULL, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &bn, 2, BASE_EINVAL, "embeddings are required");
    vstore_batch big = {VSTORE_MAX_BATCH + 1, ids2, v, NULL, NULL};
    expect_refused(db, cid, VSTORE_ADD, &big, 2, BASE_EINVAL, "above the limit");
    char *huge = malloc(VSTORE_MAX_DOC + 2);
    memset(huge, 'x', VSTORE_MAX_DOC + 1);
    huge[VSTORE_MAX_DOC + 1] = 0;
    const char *hdocs[] = {"fine", huge};
    vstore_batch bh = {2, ids2, v, hdocs, NULL};
    expect_refused(db, cid, VSTORE_ADD, &bh, 2, BASE_EINVAL, "document larger than");
    free(huge);
    assert_int_equal(vstore_write(db, "no-such-collection", VSTORE_ADD, &ok, 2, &e),
                     BASE_ENOTFOUND);

    /* malformed filters: a clear error, on get, query and delete alike */
    static const struct {
        const char *where, *wdoc, *msg;
    } bad[] = {
        {"{\"k\":", NULL, "where is not JSON"},
        {"[1]", NULL, "must be a non-empty object"},
        {"{\"k\":{\"$gt\":\"x\"}}", NULL, "$gt on 'k' needs a number"},
        {"{\"k\":{\"$foo\":1}}", NULL, "unknown operator '$foo'"},
        {"{\"k\":{\"$in\":5}}", NULL, "$in on 'k' needs an array"},
        {"{\"k\":{\"$in\":[{}]}}", NULL, "element 0"},
        {"{\"$and\":{}}", NULL, "$and needs a non-empty array"},
        {"{\"$xor\":[]}", NULL, "unknown operator '$xor'"},
        {"{\"k\":[1]}", NULL, "must be a string, number or bool"},
        {"{\"k\":{\"$eq\":1,\"$ne\":2}}", NULL, "one operator"},
        {NULL, "{\"$contains\":5}", "$contains needs a non-empty string"},
        {NULL, "{\"$regex\":\"a\"}", "unknown operator '$regex'"},
        {NULL, "\"x\"", "one operator"},
    };
    float q[2] = {1, 2};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vstore_get_req g = {.where = bad[i].where, .where_document = bad[i].wdoc};
        vstore_result r;
        int rc = vstore_get(db, cid, &g, &r, &e);
        if (rc != BASE_EINVAL || !strstr(e.msg, bad[i].msg))
            fprintf(stderr, "filter %zu: got %d '%s'\n", i, rc, e.msg);
        assert_int_equal(rc, BASE_EINVAL);
        assert_non_null(strstr(e.msg, bad[i].msg));
        vstore_query_req qr = {.queries = q,
                               .nq = 1,
                               .dim = 2,
                               .k = 1,
                               .where = bad[i].where,
                               .where_document = bad[i].wdoc};
        vstore_result *res;
        assert_int_equal(vstore_query(db, cid, &qr, &res, &e), BASE_EINVAL);
        size_t del;
        assert_int_equal(vstore_delete(db, cid, NULL, 0, bad[i].where, bad[i].wdoc, 0, &del, &e),
                         BASE_EINVAL);
    }
    /* filters too large for SQLite are bad input too, not storage failures */
    base_buf big_in = {0}, deep = {0};
    base_buf_printf(&big_in, "{\"k\":{\"$in\":[0");
    for (int i = 1; i < 10000; i++) base_buf_printf(&big_in, ",%d", i);
    base_buf_printf(&big_in, "]}}");
    vstore_get_req gin = {.where = big_in.data};
    vstore_result rin;
    assert_int_equal(vstore_get(db, cid, &gin, &rin, &e), 0); /* 10000 values: fine */
    vstore_result_free(&rin);
    for (int i = 0; i < 30; i++) base_buf_printf(&deep, "{\"$or\":[");
    base_buf_printf(&deep, "{\"k\":1}");
    for (int i = 0; i < 30; i++) {
        for (int j = 0; j < 60; j++) base_buf_printf(&deep, ",{\"k\":%d}", j);
        base_buf_printf(&deep, "]}");
    }
    vstore_get_req gdeep = {.where = deep.data};
    int drc = vstore_get(db, cid, &gdeep, &rin, &e);
    if (drc != BASE_EINVAL) fprintf(stderr, "deep filter: %d %s\n", drc, e.msg);
    assert_int_equal(drc, BASE_EINVAL);
    base_buf_free(&big_in);
    base_buf_free(&deep);
    /* queries: wrong dimension, NaN, bad k */
    float q3[3] = {1, 2, 3};
    vstore_query_req qr = {.queries = q3, .nq = 1, .dim = 3, .k = 1};
    vstore_result *res;
    assert_int_equal(vstore_query(db, cid, &qr, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "query dimension 3 does not match"));
    float qn[2] = {NAN, 0};
    qr.queries = qn;
    qr.dim = 2;
    assert_int_equal(vstore_query(db, cid, &qr, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "NaN"));
    qr.queries = q;
    qr.k = 0;
    assert_int_equal(vstore_query(db, cid, &qr, &res, &e), BASE_EINVAL);
    vstore_result t;
    assert_int_equal(vstore_text_search(db, cid, "?? !!", 3, NULL, 0, &t, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "no words"));
    assert_int_equal(count_of(db, cid), 2);
    vstore_close(db);
    free(cid);
}

/* ---- filters against a brute-force evaluation */

typedef struct {
    long n;    /* int, present when has_n */
    double f;  /* float */
    int color; /* string index, present when has_c */
    int flag;  /* bool */
    int has_n, has_c;
    int doc; /* which words the document holds: bit 0 "apple", bit 1 "pear" */
} fmeta;

static const char *COLORS[] = {"red", "green", "blue"};

static int eval_case(const fmeta *m, int which) {
    switch (which) {
    case 0:
        return m->has_n && m->n == 3; /* {"n":3} */
    case 1:
        return !(m->has_n && m->n == 3); /* $ne: absent too */
    case 2:
        return m->has_n && m->n > 5;
    case 3:
        return m->has_n && m->n >= 5;
    case 4:
        return m->f < 0.25;
    case 5:
        return m->f <= 0.5;
    case 6:
        return m->has_c && (m->color == 0 || m->color == 2); /* $in */
    case 7:
        return !(m->has_c && (m->color == 0 || m->color == 2)); /* $nin */
    case 8:
        return m->flag == 1; /* bool $eq */
    case 9:
        return (m->has_n && m->n < 3) || (m->has_c && m->color == 1 && m->flag == 0);
    case 10:
        return m->has_n && m->n == 2 && m->f > 0.5; /* float vs int */
    case 11:
        return (m->doc & 1) != 0; /* $contains */
    case 12:
        return (m->doc & 2) == 0; /* $not_contains */
    case 13:
        return (m->doc & 1) && (m->has_n && m->n <= 4);
    case 14:
        return m->has_n && (m->n == 1 || m->n == 7); /* $in on numbers */
    case 15:
        return m->has_n && m->n > 2 && m->f < 0.9; /* implicit $and */
    }
    return 0;
}

static const struct {
    const char *where, *wdoc;
} CASES[] = {
    {"{\"n\":3}", NULL},
    {"{\"n\":{\"$ne\":3}}", NULL},
    {"{\"n\":{\"$gt\":5}}", NULL},
    {"{\"n\":{\"$gte\":5.0}}", NULL},
    {"{\"f\":{\"$lt\":0.25}}", NULL},
    {"{\"f\":{\"$lte\":0.5}}", NULL},
    {"{\"color\":{\"$in\":[\"red\",\"blue\"]}}", NULL},
    {"{\"color\":{\"$nin\":[\"red\",\"blue\"]}}", NULL},
    {"{\"flag\":{\"$eq\":true}}", NULL},
    {"{\"$or\":[{\"n\":{\"$lt\":3}},{\"$and\":[{\"color\":\"green\"},{\"flag\":false}]}]}", NULL},
    {"{\"$and\":[{\"n\":2},{\"f\":{\"$gt\":0.5}}]}", NULL},
    {NULL, "{\"$contains\":\"apple\"}"},
    {NULL, "{\"$not_contains\":\"pear\"}"},
    {"{\"n\":{\"$lte\":4}}", "{\"$and\":[{\"$contains\":\"apple\"}]}"},
    {"{\"n\":{\"$in\":[1,7.0]}}", NULL},
    {"{\"n\":{\"$gt\":2},\"f\":{\"$lt\":0.9}}", NULL},
};

static void test_filters(void **state) {
    (void)state;
    vstore *db = open_store("filters");
    char *cid = make_coll(db, "filt", VDIST_L2, 0);
    enum { N = 400, D = 4 };
    base_rng r;
    base_rng_seed(&r, 7);
    fmeta *m = calloc(N, sizeof *m);
    char **metas = calloc(N, sizeof *metas), **docs = calloc(N, sizeof *docs);
    float *v = malloc(N * D * sizeof *v);
    test_fill(&r, v, N * D, -1, 1);
    for (int i = 0; i < N; i++) {
        m[i].has_n = base_rng_below(&r, 10) != 0;
        m[i].n = (long)base_rng_below(&r, 10);
        m[i].f = (double)base_rng_uniform(&r);
        m[i].has_c = base_rng_below(&r, 8) != 0;
        m[i].color = (int)base_rng_below(&r, 3);
        m[i].flag = (int)base_rng_below(&r, 2);
        m[i].doc = (int)base_rng_below(&r, 4);
        json_t *o = json_pack("{s:f,s:b}", "f", m[i].f, "flag", m[i].flag);
        if (m[i].has_n) json_object_set_new(o, "n", json_integer(m[i].n));
        if (m[i].has_c) json_object_set_new(o, "color", json_string(COLORS[m[i].color]));
        metas[i] = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        docs[i] = malloc(64);
        snprintf(docs[i], 64, "fruit %s %s", m[i].doc & 1 ? "apple" : "plum",
                 m[i].doc & 2 ? "pear" : "fig");
    }
    add_n(db, cid, 0, N, D, v, metas, docs);
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        vstore_get_req g = {.where = CASES[c].where, .where_document = CASES[c].wdoc};
        vstore_result res;
        get_ids(db, cid, &g, &res);
        int expect = 0;
        for (int i = 0; i < N; i++) expect += eval_case(&m[i], (int)c);
        if ((int)res.n != expect)
            fprintf(stderr, "case %zu (%s %s): %zu matches, expected %d\n", c,
                    CASES[c].where ? CASES[c].where : "", CASES[c].wdoc ? CASES[c].wdoc : "", res.n,
                    expect);
        assert_int_equal(res.n, expect);
        assert_true(expect > 0 && expect < N); /* each case discriminates */
        for (size_t i = 0; i < res.n; i++) {
            int idx = atoi(res.ids[i] + 1);
            assert_true(eval_case(&m[idx], (int)c));
        }
        vstore_result_free(&res);
    }
    for (int i = 0; i < N; i++) {
        free(metas[i]);
        free(docs[i]);
    }
    free(metas);
    free(docs);
    free(m);
    free(v);
    vstore_close(db);
    free(cid);
}

/* ---- dense search */

/* Exact top-k labels of q among n vectors (those with keep[i], if keep). */
static size_t brute_topk(vdist_metric mt, const float *v, size_t n, size_t d, const float *q,
                         size_t k, const unsigned char *keep, size_t *out) {
    float *best = malloc(k * sizeof *best);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep[i]) continue;
        float dd = vdist_ref(mt, v + i * d, q, d);
        size_t j = m < k ? m++ : k;
        if (j == k && dd >= best[k - 1]) continue;
        if (j == k) j = k - 1;
        while (j > 0 && best[j - 1] > dd) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = dd;
        out[j] = i;
    }
    free(best);
    return m;
}

static double recall_of(const vstore_result *r, const size_t *truth, size_t nt) {
    size_t hit = 0;
    for (size_t i = 0; i < nt; i++) {
        char id[24];
        snprintf(id, sizeof id, "p%zu", truth[i]);
        for (size_t j = 0; j < r->n; j++)
            if (!strcmp(r->ids[j], id)) {
                hit++;
                break;
            }
    }
    return nt ? (double)hit / (double)nt : 1.0;
}

static void test_metrics(void **state) {
    (void)state;
    vstore *db = open_store("metrics");
    enum { N = 600, D = 12, K = 10, Q = 20 };
    base_rng r;
    base_rng_seed(&r, 11);
    float *v = malloc(N * D * sizeof *v), *q = malloc(Q * D * sizeof *q);
    test_fill(&r, v, N * D, -1, 1);
    test_fill(&r, q, Q * D, -1, 1);
    vdist_metric ms[] = {VDIST_L2, VDIST_IP, VDIST_COSINE};
    const char *names[] = {"m-l2", "m-ip", "m-cos"};
    for (int mi = 0; mi < 3; mi++) {
        char *cid = make_coll(db, names[mi], ms[mi], 0);
        add_n(db, cid, 0, N, D, v, NULL, NULL);
        vstore_query_req qr = {.queries = q,
                               .nq = Q,
                               .dim = D,
                               .k = K,
                               .include = VSTORE_INC_DISTANCES | VSTORE_INC_EMBEDDINGS};
        vstore_result *res;
        base_err e = {0};
        assert_int_equal(vstore_query(db, cid, &qr, &res, &e), 0);
        double rec = 0;
        for (int i = 0; i < Q; i++) {
            size_t truth[K];
            brute_topk(ms[mi], v, N, D, q + i * D, K, NULL, truth);
            rec += recall_of(&res[i], truth, K);
            assert_int_equal(res[i].n, K);
            for (size_t j = 0; j < res[i].n; j++) { /* distances are the metric's, ascending */
                float want = vdist_ref(ms[mi], res[i].embeddings + j * D, q + i * D, D);
                assert_float_equal(res[i].distances[j], want, 1e-4);
                if (j) assert_true(res[i].distances[j] >= res[i].distances[j - 1] - 1e-6);
            }
            vstore_result_free(&res[i]);
        }
        free(res);
        rec /= Q;
        if (rec < 0.95) fprintf(stderr, "%s: recall %.3f\n", names[mi], rec);
        assert_true(rec >= 0.95);
        free(cid);
    }
    free(v);
    free(q);
    vstore_close(db);
}

/* The filtered-search rule: 1% and 10% selectivity keep recall >= 0.95, on the exact path and
 * on the graph path alike. */
static void test_filtered_recall(void **state) {
    (void)state;
    vstore *db = open_store("filtered");
    enum { N = 8000, D = 16, K = 10, Q = 30 };
    char *cid = make_coll(db, "filtered", VDIST_L2, 64);
    base_rng r;
    base_rng_seed(&r, 5);
    float *v = malloc(N * D * sizeof *v), *q = malloc(Q * D * sizeof *q);
    test_fill(&r, v, N * D, -1, 1);
    test_fill(&r, q, Q * D, -1, 1);
    char **metas = malloc(N * sizeof *metas);
    for (int i = 0; i < N; i++) {
        metas[i] = malloc(64);
        snprintf(metas[i], 64, "{\"b\":%d,\"x\":%.6f}", i % 100, (double)v[i * D]);
    }
    for (int s = 0; s < N; s += 2000)
        add_n(db, cid, (size_t)s, 2000, D, v + s * D, metas + s, NULL);
    unsigned char *keep = malloc(N);
    static const struct {
        const char *where;
        int lo, hi;       /* b in [lo, hi); -1: x0 > 0.8 */
        size_t exact_max; /* 0: default */
        int expect_exact;
    } runs[] = {
        {"{\"b\":7}", 7, 8, 0, 1},               /* 1%: 80 matches, exact */
        {"{\"b\":{\"$lt\":10}}", 0, 10, 0, 1},   /* 10%: 800 <= 2000, exact */
        {"{\"b\":{\"$lt\":10}}", 0, 10, 100, 0}, /* 10%, threshold lowered: the graph */
        {"{\"b\":7}", 7, 8, 50, 1},              /* 1%: below 1/20 of the collection, exact */
        {"{\"b\":{\"$lt\":30}}", 0, 30, 100, 0}, /* 30%: the graph */
        /* 10%, correlated with the vectors (a slab x0 > 0.8 that most queries lie outside):
         * the graph search has to walk away from the query to find matches */
        {"{\"x\":{\"$gt\":0.8}}", -1, -1, 100, 0},
    };
    for (size_t ri = 0; ri < sizeof runs / sizeof *runs; ri++) {
        for (int i = 0; i < N; i++)
            keep[i] =
                runs[ri].lo < 0 ? v[i * D] > 0.8f : i % 100 >= runs[ri].lo && i % 100 < runs[ri].hi;
        int used_exact = -1;
        vstore_query_req qr = {.queries = q,
                               .nq = Q,
                               .dim = D,
                               .k = K,
                               .where = runs[ri].where,
                               .exact_max = runs[ri].exact_max,
                               .used_exact = &used_exact};
        vstore_result *res;
        base_err e = {0};
        assert_int_equal(vstore_query(db, cid, &qr, &res, &e), 0);
        assert_int_equal(used_exact, runs[ri].expect_exact);
        double rec = 0;
        for (int i = 0; i < Q; i++) {
            size_t truth[K];
            size_t nt = brute_topk(VDIST_L2, v, N, D, q + i * D, K, keep, truth);
            rec += recall_of(&res[i], truth, nt);
            for (size_t j = 0; j < res[i].n; j++) /* every result matches the filter */
                assert_true(keep[atoi(res[i].ids[j] + 1)]);
            vstore_result_free(&res[i]);
        }
        free(res);
        rec /= Q;
        printf("    filtered search %-22s exact_max %4zu: %s, recall@10 %.3f\n", runs[ri].where,
               runs[ri].exact_max ? runs[ri].exact_max : (size_t)VSTORE_EXACT_MAX,
               used_exact ? "exact" : "graph", rec);
        assert_true(rec >= 0.95);
    }
    for (int i = 0; i < N; i++) free(metas[i]);
    free(metas);
    free(keep);
    free(v);
    free(q);
    vstore_close(db);
    free(cid);
}

/* ---- durability */

static int find_self(vstore *db, const char *cid, const float *vec, size_t d, const char *id) {
    vstore_query_req qr = {.queries = vec, .nq = 1, .dim = d, .k = 1};
    vstore_result *res;
    base_err e = {0};
    if (vstore_query(db, cid, &qr, &res, &e)) return 0;
    int ok = res[0].n == 1 && strcmp(res[0].ids[0], id) == 0;
    vstore_result_free(&res[0]);
    free(res);
    return ok;
}

static void corrupt_file(const char *path, long off, size_t n) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    for (size_t i = 0; i < n; i++) fputc(0xA5, f);
    fclose(f);
}

static void test_durability(void **state) {
    (void)state;
    enum { N = 300, D = 8 };
    base_rng r;
    base_rng_seed(&r, 3);
    float *v = malloc(2 * N * D * sizeof *v);
    test_fill(&r, v, 2 * N * D, -1, 1);
    vstore *db = open_store("durable");
    char *cid = make_coll(db, "dur", VDIST_L2, 0);
    add_n(db, cid, 0, N, D, v, NULL, NULL);
    vstore_close(db); /* saves the index */
    char idx[512], dbfile[512];
    snprintf(idx, sizeof idx, "%s/durable/index/%s.hnsw", root, cid);
    snprintf(dbfile, sizeof dbfile, "%s/durable/vstore.db", root);
    struct stat st;
    assert_int_equal(stat(idx, &st), 0);

    /* A crash after acknowledged writes: a child adds and deletes, then exits without closing
     * (no index save). The parent's reopen must catch the index up from SQLite. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        vstore *cdb = NULL;
        base_err ce = {0};
        char d[256];
        dir_of(d, sizeof d, "durable");
        if (vstore_open(&cdb, d, &ce)) _exit(1);
        char ids[N][16];
        const char *p[N];
        for (int i = 0; i < N; i++) {
            snprintf(ids[i], 16, "p%d", N + i);
            p[i] = ids[i];
        }
        vstore_batch b = {N, p, v + N * D, NULL, NULL};
        if (vstore_write(cdb, cid, VSTORE_ADD, &b, D, &ce)) _exit(2);
        const char *del[] = {"p0", "p1", "p2"};
        size_t nd;
        if (vstore_delete(cdb, cid, del, 3, NULL, NULL, 0, &nd, &ce) || nd != 3) _exit(3);
        _exit(0); /* like kill -9: no close, no save */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    db = open_store("durable");
    assert_int_equal(count_of(db, cid), 2 * N - 3);
    char id[16];
    for (int i = 3; i < 2 * N; i += 7) {
        snprintf(id, sizeof id, "p%d", i);
        assert_true(find_self(db, cid, v + i * D, D, id));
    }
    for (int i = 0; i < 3; i++) { /* deleted: never found, even by their own vector */
        vstore_query_req qr = {.queries = v + i * D, .nq = 1, .dim = D, .k = 5};
        vstore_result *res;
        base_err e = {0};
        assert_int_equal(vstore_query(db, cid, &qr, &res, &e), 0);
        snprintf(id, sizeof id, "p%d", i);
        for (size_t j = 0; j < res[0].n; j++) assert_string_not_equal(res[0].ids[j], id);
        vstore_result_free(&res[0]);
        free(res);
    }
    assert_string_equal(vstore_notes(db), ""); /* a catch-up is routine, not a repair */
    vstore_close(db);

    /* A damaged index file is reported and rebuilt; queries stay right. */
    assert_int_equal(stat(idx, &st), 0);
    corrupt_file(idx, st.st_size / 2, 64);
    db = open_store("durable");
    base_err we = {0};
    assert_int_equal(vstore_warm(db, &we), 0); /* found at start, not at the first query */
    assert_non_null(strstr(vstore_notes(db), "damaged"));
    assert_true(find_self(db, cid, v + 10 * D, D, "p10"));
    vstore_close(db);
    db = open_store("durable"); /* the rebuilt one was saved: nothing to report now */
    assert_true(find_self(db, cid, v + 11 * D, D, "p11"));
    assert_string_equal(vstore_notes(db), "");
    vstore_close(db);

    /* A missing one too. */
    assert_int_equal(unlink(idx), 0);
    db = open_store("durable");
    assert_true(find_self(db, cid, v + 12 * D, D, "p12"));
    assert_non_null(strstr(vstore_notes(db), "missing"));
    vstore_close(db);

    /* A damaged database is refused at open, never served. */
    assert_int_equal(stat(dbfile, &st), 0);
    assert_true(st.st_size > 3 * 4096);
    corrupt_file(dbfile, 4096, 4096); /* page 2 */
    char d[256];
    dir_of(d, sizeof d, "durable");
    base_err e = {0};
    vstore *bad = NULL;
    int rc = vstore_open(&bad, d, &e);
    assert_int_equal(rc, BASE_EFORMAT);
    assert_null(bad);
    assert_non_null(strstr(e.msg, "vstore.db"));
    /* and so is a file that is not a database at all */
    dir_of(d, sizeof d, "notadb");
    assert_int_equal(base_mkdir_p(d, &e), 0);
    char p[300];
    snprintf(p, sizeof p, "%s/vstore.db", d);
    assert_int_equal(base_write_atomic(p, "this is not sqlite, not at all, no.......", 41, &e), 0);
    rc = vstore_open(&bad, d, &e);
    assert_int_equal(rc, BASE_EFORMAT);
    free(v);
    free(cid);
}

/* ---- BM25 and hybrid */

static void test_text_hybrid(void **state) {
    (void)state;
    vstore *db = open_store("text");
    char *cid = make_coll(db, "text", VDIST_L2, 0);
    const char *docs[] = {
        "the lighthouse keeper lit the lamp",     /* p0 */
        "lighthouse lighthouse lighthouse storm", /* p1: most about lighthouse */
        "a quiet harbour at dawn",                /* p2 */
        "storm over the harbour",                 /* p3 */
        "bread and butter",                       /* p4 */
    };
    const char *metas[] = {"{\"k\":1}", "{\"k\":2}", "{\"k\":1}", "{\"k\":2}", "{\"k\":1}"};
    float v[5 * 2] = {0, 0, 1, 0, 2, 0, 3, 0, 4, 0};
    add_n(db, cid, 0, 5, 2, v, (char **)metas, (char **)docs);
    base_err e = {0};
    vstore_result t;
    assert_int_equal(
        vstore_text_search(db, cid, "Lighthouse!", 5, NULL, VSTORE_INC_DISTANCES, &t, &e), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ids[0], "p1"); /* more occurrences in a shorter document */
    assert_string_equal(t.ids[1], "p0");
    assert_true(t.distances[0] > t.distances[1] && t.distances[1] > 0);
    vstore_result_free(&t);
    assert_int_equal(vstore_text_search(db, cid, "storm harbour", 5, "{\"k\":2}", 0, &t, &e), 0);
    assert_int_equal(t.n, 2); /* p1, p3 (p2 filtered out) */
    assert_string_equal(t.ids[0], "p3");
    vstore_result_free(&t);
    /* hybrid: dense ranks p4 p3 p2 p1 p0 for q = (4, 0); text "storm": p1 p3 (or p3 p1). */
    float q[2] = {4, 0};
    vstore_hybrid_req h = {.query = q, .dim = 2, .text = "storm", .k = 5};
    assert_int_equal(vstore_hybrid(db, cid, &h, &t, &e), 0);
    assert_int_equal(t.n, 5);
    vstore_result dense_only, text_only;
    assert_int_equal(vstore_text_search(db, cid, "storm", 5, NULL, 0, &text_only, &e), 0);
    /* the fused score of each result is the formula's, from the two rankings */
    for (size_t i = 0; i < t.n; i++) {
        int idx = atoi(t.ids[i] + 1);
        double want = 1.0 / (60 + (4 - idx) + 1); /* dense rank of p<idx> is 4 - idx */
        for (size_t j = 0; j < text_only.n; j++)
            if (!strcmp(text_only.ids[j], t.ids[i])) want += 1.0 / (60 + (double)j + 1);
        assert_float_equal(t.distances[i], want, 1e-6);
        if (i) assert_true(t.distances[i] <= t.distances[i - 1]);
    }
    assert_string_equal(t.ids[0], "p3"); /* 2nd dense + 1st or 2nd text beats 1st dense alone */
    vstore_result_free(&t);
    /* weights: text weight 0 gives the dense order; dense weight 0 the text order */
    h.w_dense = 1;
    h.w_text = 0;
    assert_int_equal(vstore_hybrid(db, cid, &h, &dense_only, &e), 0);
    assert_string_equal(dense_only.ids[0], "p4");
    assert_string_equal(dense_only.ids[4], "p0");
    vstore_result_free(&dense_only);
    h.w_dense = 0;
    h.w_text = 1;
    h.rrf_k = 1;
    assert_int_equal(vstore_hybrid(db, cid, &h, &t, &e), 0);
    assert_string_equal(t.ids[0], text_only.ids[0]);
    assert_float_equal(t.distances[0], 1.0 / 2, 1e-6);
    vstore_result_free(&t);
    vstore_result_free(&text_only);
    vstore_close(db);
    free(cid);
}

/* ---- the Chroma HTTP function */

static json_t *http(vstore *db, const char *method, const char *path, const char *body,
                    int expect_status) {
    int status = 0;
    char *resp = NULL;
    vstore_http(db, method, path, NULL, body, body ? strlen(body) : 0, &status, &resp);
    if (status != expect_status)
        fprintf(stderr, "%s %s -> %d %s (expected %d)\n", method, path, status, resp,
                expect_status);
    assert_int_equal(status, expect_status);
    assert_non_null(resp);
    json_t *j = json_loads(resp, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    free(resp);
    return j;
}

static void test_http(void **state) {
    (void)state;
    vstore *db = open_store("http");
    json_t *j = http(db, "GET", "/api/v2/heartbeat", NULL, 200);
    assert_true(json_integer_value(json_object_get(j, "nanosecond heartbeat")) > 0);
    json_decref(j);
    j = http(db, "GET", "/api/v2/auth/identity", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "default_tenant");
    json_decref(j);
    j = http(db, "GET", "/api/v2/pre-flight-checks", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), VSTORE_MAX_BATCH);
    json_decref(j);
    /* max_batch_size follows the body limit: 64 KiB carries at most (65536 - 24) / 8 records
     * (a one-byte id and a one-value embedding each); a larger body is 413 in Chroma's shape */
    vstore_set_max_body(db, 64 << 10);
    j = http(db, "GET", "/api/v2/pre-flight-checks", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), (65536 - 24) / 8);
    json_decref(j);
    {
        size_t n = 8189; /* the advertised batch at its smallest: it fits */
        base_buf b = {0};
        base_buf_printf(&b, "{\"ids\":[");
        for (size_t i = 0; i < n; i++) base_buf_printf(&b, "%s\"%c\"", i ? "," : "", 'a');
        base_buf_printf(&b, "],\"embeddings\":[");
        for (size_t i = 0; i < n; i++) base_buf_printf(&b, "%s[0]", i ? "," : "");
        base_buf_printf(&b, "]}");
        assert_true(b.len <= 64 << 10);
        while (b.len <= 64 << 10) base_buf_append(&b, " ", 1); /* one byte over */
        j = http(db, "POST", "/api/v2/heartbeat", b.data, 413);
        assert_string_equal(json_string_value(json_object_get(j, "error")), "RequestTooLargeError");
        assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "65536"));
        json_decref(j);
        base_buf_free(&b);
    }
    vstore_set_max_body(db, VSTORE_HTTP_MAX_BODY);
    const char *C = "/api/v2/tenants/default_tenant/databases/default_database/collections";
    j = http(db, "POST", C,
             "{\"name\":\"docs\",\"configuration\":{\"hnsw\":{\"space\":\"ip\",\"ef_search\":50}},"
             "\"metadata\":{\"a\":1}}",
             200);
    const char *id = json_string_value(json_object_get(j, "id"));
    assert_non_null(id);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(j, "configuration_json"), "hnsw"), "space")),
        "ip");
    char base[256], p[400];
    snprintf(base, sizeof base, "%s/%s", C, id);
    json_decref(j);
    j = http(db, "POST", C, "{\"name\":\"docs\"}", 409);
    json_decref(j);
    j = http(db, "POST", C, "{\"name\":\"docs\",\"get_or_create\":true}", 200);
    json_decref(j);
    j = http(db, "GET",
             "/api/v2/tenants/default_tenant/databases/default_database/collections/docs", NULL,
             200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "docs");
    json_decref(j);
    snprintf(p, sizeof p, "%s/add", base);
    j = http(db, "POST", p,
             "{\"ids\":[\"a\",\"b\"],\"embeddings\":[[1,0],[0,1]],\"documents\":[\"x y\",null],"
             "\"metadatas\":[{\"t\":\"q\"},null]}",
             201);
    json_decref(j);
    /* bad input: 400 with the store's message, nothing written */
    j = http(db, "POST", p, "{\"ids\":[\"c\"],\"embeddings\":[[1,0,0]]}", 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "dimension"));
    json_decref(j);
    j = http(db, "POST", p, "{\"ids\":[\"c\",\"d\"],\"embeddings\":[[1,0]]}", 400);
    json_decref(j);
    j = http(db, "POST", p, "{\"ids\":[\"c\"],\"embeddings\":[[1e999,0]]}", 400);
    json_decref(j);
    j = http(db, "POST", p, "{\"ids\":[\"a\"],\"embeddings\":[[1,0]]}", 409);
    json_decref(j);
    j = http(db, "POST", p, "{not json", 400);
    json_decref(j);
    int status = 0;
    char *resp = NULL;
    vstore_http(db, "POST", p, NULL, "{}", (size_t)1 << 40, &status, &resp);
    assert_int_equal(status, 413);
    free(resp);
    snprintf(p, sizeof p, "%s/count", base);
    j = http(db, "GET", p, NULL, 200);
    assert_int_equal(json_integer_value(j), 2);
    json_decref(j);
    snprintf(p, sizeof p, "%s/get", base);
    j = http(db, "POST", p, "{\"where\":{\"t\":\"q\"},\"include\":[\"embeddings\",\"documents\"]}",
             200);
    assert_int_equal(json_array_size(json_object_get(j, "ids")), 1);
    assert_true(json_is_null(json_object_get(j, "metadatas")));
    assert_int_equal(json_array_size(json_object_get(j, "embeddings")), 1);
    json_decref(j);
    j = http(db, "POST", p, "{\"where\":{\"t\":{\"$bad\":1}}}", 400);
    json_decref(j);
    snprintf(p, sizeof p, "%s/query", base);
    j = http(db, "POST", p, "{\"query_embeddings\":[[1,0],[0,1]],\"n_results\":1}", 200);
    json_t *ids = json_object_get(j, "ids");
    assert_int_equal(json_array_size(ids), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(ids, 0), 0)), "a");
    assert_string_equal(json_string_value(json_array_get(json_array_get(ids, 1), 0)), "b");
    assert_float_equal(
        json_number_value(json_array_get(json_array_get(json_object_get(j, "distances"), 0), 0)), 0,
        1e-6); /* ip: 1 - <a,a> */
    json_decref(j);
    j = http(db, "POST", p,
             "{\"query_embeddings\":[[1,0]],\"n_results\":5,\"ids\":[\"b\"],"
             "\"include\":[\"uris\"]}",
             200);
    ids = json_array_get(json_object_get(j, "ids"), 0);
    assert_int_equal(json_array_size(ids), 1); /* only among the given ids */
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "b");
    assert_true(json_is_null(json_object_get(j, "distances")));
    assert_int_equal(json_array_size(json_array_get(json_object_get(j, "uris"), 0)), 1);
    json_decref(j);
    snprintf(p, sizeof p, "%s/update", base);
    j = http(db, "POST", p, "{\"ids\":[\"b\"],\"metadatas\":[{\"t\":\"r\"}]}", 200);
    json_decref(j);
    snprintf(p, sizeof p, "%s/delete", base);
    j = http(db, "POST", p, "{\"where\":{\"t\":\"r\"}}", 200);
    assert_int_equal(json_integer_value(json_object_get(j, "deleted")), 1);
    json_decref(j);
    j = http(db, "PUT", base, "{\"new_name\":\"docs2\",\"new_metadata\":{\"b\":2}}", 200);
    json_decref(j);
    j = http(db, "PUT", base, "{\"new_configuration\":{\"hnsw\":{\"space\":\"l2\"}}}", 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "hnsw.space"));
    json_decref(j);
    j = http(db, "PUT", base, "{\"new_configuration\":{\"hnsw\":{\"ef_search\":80}}}", 200);
    json_decref(j);
    j = http(db, "GET", base, NULL, 200);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(j, "configuration_json"), "hnsw"), "ef_search")),
        80);
    json_decref(j);
    j = http(db, "GET", C, NULL, 200);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "name")), "docs2");
    json_decref(j);
    j = http(db, "GET", "/api/v2/collections/default_tenant:default_database:docs2", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "docs2");
    json_decref(j);
    j = http(db, "GET", "/api/v2/collections/default_tenant:other:docs2", NULL, 404);
    json_decref(j);
    j = http(db, "GET",
             "/api/v2/tenants/default_tenant/databases/default_database/collections/nope", NULL,
             404);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/nobody/databases/x/collections", NULL, 404);
    json_decref(j);
    j = http(db, "POST", "/api/v2/tenants", "{\"name\":\"t2\"}", 200);
    json_decref(j);
    j = http(db, "POST", "/api/v2/tenants/t2/databases", "{\"name\":\"d2\"}", 200);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/t2/databases/d2", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "d2");
    json_decref(j);
    /* The path arrives decoded once (libmicrohttpd): it is not decoded again. /x%2541 on the
     * wire reaches here as /x%41 and names tenant "x%41", never "xA". */
    j = http(db, "POST", "/api/v2/tenants", "{\"name\":\"xA\"}", 200);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/x%41", NULL, 404);
    json_decref(j);
    j = http(db, "POST", "/api/v2/tenants", "{\"name\":\"x%41\"}", 200);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/x%41", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "x%41");
    json_decref(j);
    j = http(db, "DELETE", base, NULL, 200);
    json_decref(j);
    j = http(db, "GET",
             "/api/v2/tenants/default_tenant/databases/default_database/collections_count", NULL,
             200);
    assert_int_equal(json_integer_value(j), 0);
    json_decref(j);
    j = http(db, "GET", "/api/v2/nothing", NULL, 404);
    json_decref(j);
    /* a message quoting bytes that are not UTF-8 is still JSON (it was a 500) */
    j = http(db, "GET", "/api/v2/tenants/x\xffy", NULL, 404);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "x\xef\xbf\xbdy"));
    json_decref(j);
    /* the same shape for what the server refuses before vstore_http */
    char *et = vstore_http_error("AuthError", "missing \"token\"");
    assert_string_equal(et, "{\"error\":\"AuthError\",\"message\":\"missing \\\"token\\\"\"}");
    free(et);
    /* the route table: a known path with another method is 405 naming the methods it takes,
     * an unknown verb 404, what the path names must exist (404) */
    j = http(db, "POST", C, "{\"name\":\"routes\"}", 200);
    char rbase[256];
    snprintf(rbase, sizeof rbase, "%s/%s", C, json_string_value(json_object_get(j, "id")));
    json_decref(j);
    j = http(db, "PATCH", rbase, NULL, 405);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "use GET, PUT, DELETE");
    json_decref(j);
    snprintf(p, sizeof p, "%s/add", rbase);
    j = http(db, "GET", p, NULL, 405);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "use POST");
    json_decref(j);
    snprintf(p, sizeof p, "%s/frob", rbase);
    j = http(db, "POST", p, "{}", 404);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants", NULL, 405);
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/nobody/databases", NULL, 404);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "nobody"));
    json_decref(j);
    j = http(db, "GET", "/api/v2/tenants/default_tenant/databases/nodb/collections", NULL, 404);
    json_decref(j);
    snprintf(p, sizeof p, "%s/by-id/%s", C, rbase + strlen(C) + 1);
    j = http(db, "GET", p, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "routes");
    json_decref(j);
    snprintf(p, sizeof p, "%s/count/extra", rbase);
    j = http(db, "GET", p, NULL, 404);
    json_decref(j);
    vstore_close(db);
}

/* A full database (SQLITE_FULL, here from max_page_count; tests/cli/test_vstore.sh fills a real
 * tmpfs) is BASE_ENOSPC, 507 over HTTP in Chroma's error shape; a delete still commits. */
static void test_disk_full(void **state) {
    (void)state;
    vstore *db = open_store("full");
    char *cid = make_coll(db, "full", VDIST_L2, 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", sqlite3_column_int64(st, 0) + 40);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db->db, sql, NULL, NULL, NULL), SQLITE_OK);
    char url[256];
    snprintf(url, sizeof url,
             "/api/v2/tenants/default_tenant/databases/default_database/"
             "collections/%s/add",
             cid);
    base_buf b = {0};
    int status = 0, added = 0;
    for (int round = 0; round < 100 && status != 507; round++) {
        b.len = 0;
        base_buf_printf(&b, "{\"ids\":[");
        for (int i = 0; i < 20; i++) base_buf_printf(&b, "%s\"r%d_%d\"", i ? "," : "", round, i);
        base_buf_printf(&b, "],\"embeddings\":[");
        for (int i = 0; i < 20; i++) base_buf_printf(&b, "%s[%d,1]", i ? "," : "", i);
        base_buf_printf(&b, "],\"documents\":[");
        for (int i = 0; i < 20; i++) base_buf_printf(&b, "%s\"%0500d\"", i ? "," : "", i);
        base_buf_printf(&b, "]}");
        char *resp = NULL;
        vstore_http(db, "POST", url, NULL, b.data, b.len, &status, &resp);
        if (status == 201)
            added += 20;
        else {
            assert_int_equal(status, 507);
            json_t *j = json_loads(resp, 0, NULL);
            assert_string_equal(json_string_value(json_object_get(j, "error")),
                                "InsufficientStorageError");
            assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "full"));
            json_decref(j);
        }
        free(resp);
    }
    base_buf_free(&b);
    assert_int_equal(status, 507);
    assert_true(added > 0);
    assert_int_equal(count_of(db, cid), (uint64_t)added); /* the refused batch wrote nothing */
    memcpy(strstr(url, "/add"), "/del", 4);
    snprintf(url + strlen(url), sizeof url - strlen(url), "ete");
    json_t *j = http(db, "POST", url, "{\"ids\":[\"r0_0\",\"r0_1\",\"r1_5\"]}", 200);
    assert_int_equal(json_integer_value(json_object_get(j, "deleted")), 3);
    json_decref(j);
    assert_int_equal(count_of(db, cid), (uint64_t)added - 3);
    vstore_close(db);
    free(cid);
}

/* Peak resident memory since the last reset, in bytes, from /proc (0 when unavailable). */
static size_t peak_rss_reset(bool reset) {
    if (reset) {
        FILE *f = fopen("/proc/self/clear_refs", "w");
        if (!f) return 0;
        fputs("5", f); /* 5: reset the peak RSS to the current RSS */
        fclose(f);
    }
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* One answer is bounded: queries x n_results rows (a 50 x 20,000 query was 1e6 rows from a
 * 668-byte body), a get's rows, and its size (embeddings, documents); and an answer is printed
 * straight as text, in under 3 times its size (through a tree of json_t: 4.1 times a text 1.7 times
 * longer, floats printed with 17 digits). */
static void test_answer_bounds(void **state) {
    (void)state;
    vstore *db = open_store("bounds");
    char *cid = make_coll(db, "bounds", VDIST_L2, 10); /* a cheap graph: recall is not the point */
    char p[256];
    snprintf(p, sizeof p,
             "/api/v2/tenants/default_tenant/databases/default_database/"
             "collections/%s/",
             cid);
    size_t d = 512, n = 2000;
    float *v = malloc(n * d * sizeof *v);
    base_rng rng;
    base_rng_seed(&rng, 6);
    for (size_t i = 0; i < n * d; i++) v[i] = base_rng_normal(&rng);
    add_n(db, cid, 0, n, d, v, NULL, NULL);
    /* rows: the request, refused before any work; the most rows allowed pass */
    base_buf b = {0};
    char url[320];
    snprintf(url, sizeof url, "%squery", p);
    base_buf_printf(&b, "{\"n_results\":20000,\"include\":[],\"query_embeddings\":[");
    for (int q = 0; q < 50; q++) {
        base_buf_printf(&b, "%s[", q ? "," : "");
        for (size_t j = 0; j < d; j++) base_buf_printf(&b, "%s0", j ? "," : "");
        base_buf_printf(&b, "]");
    }
    base_buf_printf(&b, "]}");
    json_t *j = http(db, "POST", url, b.data, 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "1000000 rows"));
    json_decref(j);
    memcpy(strstr(b.data, "20000"), " 2000", 5); /* 50 x 2,000 = 100,000: the limit */
    j = http(db, "POST", url, b.data, 200);
    assert_int_equal(json_array_size(json_object_get(j, "ids")), 50);
    assert_true(json_array_size(json_array_get(json_object_get(j, "ids"), 49)) > n / 2);
    json_decref(j);
    base_buf_free(&b);
    /* a get: limit above the rows of one answer refused */
    snprintf(url, sizeof url, "%sget", p);
    j = http(db, "POST", url, "{\"limit\":100001}", 400);
    json_decref(j);
    /* size: 2,000 x 512 embedding values (12.5 MB of text) come back in about twice that */
    size_t peak0 = peak_rss_reset(true);
    int status = 0;
    char *resp = NULL;
    vstore_http(db, "POST", url, NULL, "{\"include\":[\"embeddings\"]}", 26, &status, &resp);
    size_t peak = peak_rss_reset(false);
    assert_int_equal(status, 200);
    size_t len = strlen(resp);
    json_t *g = json_loads(resp, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(g, "embeddings")), n);
    assert_float_equal(
        json_number_value(json_array_get(json_array_get(json_object_get(g, "embeddings"), 7), 3)),
        v[7 * d + 3], 0); /* 9 digits: the same float back */
    json_decref(g);
    free(resp);
    printf("    a get of %zu x %zu values: %.1f MB of JSON, peak memory +%.1f MB\n", n, d,
           (double)len / 1e6, (double)(peak - peak0) / 1e6);
#if !defined(__SANITIZE_ADDRESS__)
    if (peak0) assert_true(peak - peak0 < 3 * len); /* the json_t tree: 4.1x, 17 digits a float */
#endif
    free(v);
    /* an answer above VSTORE_MAX_ANSWER (64 MiB at 16 bytes an embedding value) is refused:
     * 65 records of 65,536 values with their embeddings; a page of them, or all of them without
     * the embeddings, are fine */
    char *big = make_coll(db, "bounds-wide", VDIST_L2, 10);
    size_t wd = VSTORE_MAX_DIM, wn = (VSTORE_MAX_ANSWER / (16 * wd)) + 1;
    float *w = calloc(wn * wd, sizeof *w);
    for (size_t i = 0; i < wn; i++) w[i * wd + i] = 1;
    add_n(db, big, 0, wn, wd, w, NULL, NULL);
    free(w);
    vstore_get_req gr = {.include = VSTORE_INC_EMBEDDINGS};
    vstore_result res;
    base_err e = {0};
    assert_int_equal(vstore_get(db, big, &gr, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "larger than 64 MiB"));
    gr.limit = wn / 2; /* a page of them fits */
    assert_int_equal(vstore_get(db, big, &gr, &res, &e), 0);
    assert_int_equal(res.n, wn / 2);
    vstore_result_free(&res);
    gr.include = VSTORE_INC_METADATAS; /* without the embeddings all of them fit */
    gr.limit = 0;
    assert_int_equal(vstore_get(db, big, &gr, &res, &e), 0);
    assert_int_equal(res.n, wn);
    vstore_result_free(&res);
    free(big);
    free(cid);
    vstore_close(db);
}

/* Mutated requests (bytes flipped, inserted, cut) never crash the API and always get a JSON
 * answer with a status from the documented set. Under SAN=1 this is a small fuzzer. */
static void test_http_fuzz(void **state) {
    (void)state;
    vstore *db = open_store("fuzz");
    char *cid = make_coll(db, "fuzz", VDIST_COSINE, 0);
    char base[256];
    snprintf(base, sizeof base,
             "/api/v2/tenants/default_tenant/databases/default_database/collections/%s", cid);
    static const struct {
        const char *verb, *body;
    } seeds[] = {
        {"add", "{\"ids\":[\"a\",\"b\"],\"embeddings\":[[1,2],[3,4]],\"documents\":[\"x\",null],"
                "\"metadatas\":[{\"k\":1,\"s\":\"t\",\"b\":true},null]}"},
        {"upsert", "{\"ids\":[\"c\"],\"embeddings\":[[0.5,-1e3]],\"metadatas\":[{\"k\":2.5}]}"},
        {"query",
         "{\"query_embeddings\":[[1,0]],\"n_results\":3,\"where\":{\"$or\":[{\"k\":"
         "{\"$gte\":1}},{\"s\":{\"$in\":[\"t\",\"u\"]}}]},\"where_document\":{\"$contains\":"
         "\"x\"},\"include\":[\"distances\",\"embeddings\"]}"},
        {"get", "{\"ids\":[\"a\"],\"where\":{\"b\":{\"$ne\":false}},\"limit\":5,\"offset\":0,"
                "\"include\":[\"metadatas\",\"documents\",\"uris\"]}"},
        {"delete", "{\"where\":{\"k\":{\"$lt\":0}},\"where_document\":{\"$not_contains\":\"q\"}}"},
        {"update", "{\"ids\":[\"a\"],\"metadatas\":[{\"k\":null}],\"documents\":[\"y\"]}"},
    };
    base_rng r;
    base_rng_seed(&r, 99);
    char buf[1024], path[400];
    for (int it = 0; it < 3000; it++) {
        size_t si = (size_t)base_rng_below(&r, sizeof seeds / sizeof *seeds);
        size_t n = strlen(seeds[si].body);
        memcpy(buf, seeds[si].body, n);
        int edits = 1 + (int)base_rng_below(&r, 4);
        for (int k = 0; k < edits && n > 0; k++) {
            size_t at = (size_t)base_rng_below(&r, n);
            static const char alphabet[] = "{}[]\":,-.0123456789eE$tfnul\\ \x80\xff";
            char ch = alphabet[base_rng_below(&r, sizeof alphabet - 1)];
            switch (base_rng_below(&r, 3)) {
            case 0:
                buf[at] = ch;
                break; /* flip */
            case 1:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = ch;
                    n++;
                }
                break;
            default:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break; /* cut */
            }
        }
        snprintf(path, sizeof path, "%s/%s", base, seeds[si].verb);
        int status = 0;
        char *resp = NULL;
        vstore_http(db, "POST", path, NULL, buf, n, &status, &resp);
        assert_non_null(resp);
        assert_true(status == 200 || status == 201 || status == 400 || status == 404 ||
                    status == 409);
        json_t *j = json_loads(resp, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        json_decref(j);
        free(resp);
    }
    vstore_close(db);
    free(cid);
}

/* Several threads through one handle (as the server calls it): every write lands, reads see
 * whole batches. */
typedef struct {
    vstore *db;
    const char *path;
    int t;
} thread_arg;

static void *http_thread(void *p) {
    thread_arg *a = p;
    for (int i = 0; i < 25; i++) {
        char body[160], path[400];
        snprintf(body, sizeof body,
                 "{\"ids\":[\"t%d_%d\",\"u%d_%d\"],\"embeddings\":[[%d,%d,1],[%d,%d,2]]}", a->t, i,
                 a->t, i, a->t, i, i, a->t);
        int status = 0;
        char *resp = NULL;
        snprintf(path, sizeof path, "%s/add", a->path);
        vstore_http(a->db, "POST", path, NULL, body, strlen(body), &status, &resp);
        free(resp);
        if (status != 201) return (void *)1;
        snprintf(path, sizeof path, "%s/query", a->path);
        const char *q = "{\"query_embeddings\":[[1,1,1]],\"n_results\":3}";
        vstore_http(a->db, "POST", path, NULL, q, strlen(q), &status, &resp);
        free(resp);
        if (status != 200) return (void *)2;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    vstore *db = open_store("threads");
    char *cid = make_coll(db, "threads", VDIST_L2, 0);
    char base[256];
    snprintf(base, sizeof base,
             "/api/v2/tenants/default_tenant/databases/default_database/collections/%s", cid);
    enum { T = 4 };
    pthread_t th[T];
    thread_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (thread_arg){db, base, t};
        assert_int_equal(pthread_create(&th[t], NULL, http_thread, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    assert_int_equal(count_of(db, cid), T * 25 * 2);
    float q[3] = {3, 24, 1};
    assert_true(find_self(db, cid, q, 3, "t3_24"));
    vstore_close(db);
    free(cid);
}

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/hearth_vstore_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return test_rm_rf(root);
}

int test_vstore(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collections), cmocka_unit_test(test_records),
        cmocka_unit_test(test_bad_input),   cmocka_unit_test(test_filters),
        cmocka_unit_test(test_metrics),     cmocka_unit_test(test_filtered_recall),
        cmocka_unit_test(test_durability),  cmocka_unit_test(test_text_hybrid),
        cmocka_unit_test(test_http),        cmocka_unit_test(test_answer_bounds),
        cmocka_unit_test(test_disk_full),   cmocka_unit_test(test_http_fuzz),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("vstore", tests, setup, teardown);
}
