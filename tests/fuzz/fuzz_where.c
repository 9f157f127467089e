/* tests/fuzz/fuzz_where.c: the `where` and `where_document` filters, compiled to SQL and run:
 * the input's first line is where, the rest where_document (each empty: none), through
 * vstore_get, vstore_query (the filtered-search rule) and vstore_delete on an id that does not
 * exist (so the store, in a private temporary directory, keeps its records). */
#include "fuzz.h"

#include "vstore/vstore.h"

#include <stdlib.h>
#include <string.h>

static vstore *db;
static char cid[40];

static void init(void) {
    base_err e;
    if (vstore_open(&db, fuzz_path("store"), &e)) fuzz_die("vstore_open", e.msg);
    vstore_coll c;
    vstore_coll_opts o = {.metric = VDIST_COSINE, .dim = 2};
    if (vstore_coll_create(db, NULL, NULL, "where", &o, true, &c, &e)) fuzz_die("coll", e.msg);
    memcpy(cid, c.id, sizeof cid);
    vstore_coll_free(&c);
    const char *ids[4] = {"a", "b", "c", "d"};
    const char *docs[4] = {"alpha beta", "gamma", NULL, "beta delta"};
    const char *metas[4] = {"{\"n\":1,\"s\":\"x\",\"b\":true}", "{\"n\":2.5,\"s\":\"y\"}", NULL,
                            "{\"n\":-3,\"t\":\"q\"}"};
    float emb[8] = {1, 0, 0, 1, 1, 1, -1, 0};
    vstore_batch b = {.n = 4, .ids = ids, .embeddings = emb, .documents = docs, .metadatas = metas};
    if (vstore_write(db, cid, VSTORE_UPSERT, &b, 2, &e)) fuzz_die("records", e.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) init();
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char *nl = strchr(s, '\n'), *where = s, *doc = NULL;
    if (nl) *nl = 0, doc = nl + 1;
    if (!*where) where = NULL;
    if (doc && !*doc) doc = NULL;
    base_err e;
    vstore_result r = {0};
    vstore_get_req g = {.where = where, .where_document = doc, .include = VSTORE_INC_METADATAS};
    if (fuzz_report("vstore_get", vstore_get(db, cid, &g, &r, &e), &e) == 0) vstore_result_free(&r);
    float qv[2] = {1, 0.5f};
    vstore_query_req q = {.queries = qv,
                          .nq = 1,
                          .dim = 2,
                          .k = 3,
                          .where = where,
                          .where_document = doc,
                          .include = VSTORE_INC_DISTANCES};
    vstore_result *qr = NULL;
    if (vstore_query(db, cid, &q, &qr, &e) == 0) {
        vstore_result_free(&qr[0]);
        free(qr);
    }
    const char *none = "no-such-id";
    size_t deleted = 0;
    vstore_delete(db, cid, &none, 1, where, doc, 0, &deleted, &e);
    if (deleted) abort(); /* the id does not exist: nothing may go */
    free(s);
    return 0;
}
