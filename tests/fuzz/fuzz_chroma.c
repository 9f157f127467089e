/* tests/fuzz/fuzz_chroma.c: a Chroma v2 API request (vstore_http) against a store in a private
 * temporary directory. The input is "METHOD PATH[?QUERY]\n" and then the body; "{cid}" in the
 * path stands for the id of the collection "fuzz" (3-dimensional, a few records), recreated
 * (with the default tenant and database) whenever a request deleted it. The store persists
 * across inputs, as a server's does. */
#include "fuzz.h"

#include "vstore/vstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vstore *db;
static char cid[40];

static void ensure_collection(void) {
    vstore_coll c;
    base_err e;
    if (vstore_coll_get(db, NULL, NULL, "fuzz", &c, &e) == 0) {
        memcpy(cid, c.id, sizeof cid);
        vstore_coll_free(&c);
        return;
    }
    vstore_coll_opts o = {.metric = VDIST_L2, .dim = 3};
    if (vstore_coll_create(db, NULL, NULL, "fuzz", &o, true, &c, &e)) {
        /* a request deleted the default database or tenant (the API allows it): back again */
        vstore_tenant_create(db, "default_tenant", &e);
        vstore_database_create(db, "default_tenant", "default_database", &e);
        if (vstore_coll_create(db, NULL, NULL, "fuzz", &o, true, &c, &e))
            fuzz_die("collection", e.msg);
    }
    memcpy(cid, c.id, sizeof cid);
    vstore_coll_free(&c);
    const char *ids[3] = {"a", "b", "c"};
    const char *docs[3] = {"the quick brown fox", "jumps over", NULL};
    const char *metas[3] = {"{\"k\":1,\"s\":\"x\"}", "{\"k\":2.5,\"b\":true}", NULL};
    float emb[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    vstore_batch b = {.n = 3, .ids = ids, .embeddings = emb, .documents = docs, .metadatas = metas};
    if (vstore_write(db, cid, VSTORE_UPSERT, &b, 3, &e)) fuzz_die("records", e.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) {
        base_err e;
        if (vstore_open(&db, fuzz_path("store"), &e)) fuzz_die("vstore_open", e.msg);
    }
    ensure_collection();
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl ? (size_t)(nl - data) : size;
    if (line > 4096) return 0;
    char req[4096 + 64], path[4096 + 64];
    memcpy(req, data, line);
    req[line] = 0;
    if (strlen(req) != line) return 0; /* a NUL inside: not an HTTP request line */
    char *sp = strchr(req, ' ');
    if (!sp) return 0;
    *sp = 0;
    const char *target = sp + 1, *hole = strstr(target, "{cid}");
    if (hole)
        snprintf(path, sizeof path, "%.*s%s%s", (int)(hole - target), target, cid, hole + 5);
    else
        snprintf(path, sizeof path, "%s", target);
    char *q = strchr(path, '?');
    if (q) *q++ = 0;
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t blen = nl ? size - line - 1 : 0;
    int status = 0;
    char *resp = NULL;
    vstore_http(db, req, path, q, body, blen, &status, &resp);
    base_err e = {0};
    if (status >= 400) snprintf(e.msg, sizeof e.msg, "%d %.400s", status, resp ? resp : "");
    fuzz_report(req, status >= 400, &e);
    if (status < 100 || status > 599) abort(); /* every request gets an HTTP status */
    free(resp);
    return 0;
}
