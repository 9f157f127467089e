/* tests/vstore/test_vstore_embed.c: server-side embedding in the vector store's Chroma function
 * (vstore_set_embedder) with a stand-in embedder (a deterministic vector per text, the model
 * name it was asked for recorded): collections naming their model by metadata or by
 * configuration.embedding_function, documents without embeddings on add / upsert / update,
 * query_texts, the hidden metadata key, BM25 and hybrid over HTTP, and the refusals. */
#include "test.h"

#include "vstore/vstore.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D 8
static char last_model[64];
static int calls;

/* A unit vector from the text's hash: the same text, the same vector. "fail" fails. */
static int fake_embed(void *ud, const char *model, const char *const *texts, size_t n, float **out,
                      size_t *dim, base_err *e) {
    (void)ud;
    snprintf(last_model, sizeof last_model, "%s", model);
    calls++;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(texts[i], "fail")) return base_fail(e, BASE_EINVAL, "text %zu: refused", i);
    *out = malloc(n * D * sizeof **out);
    *dim = D;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = base_fnv1a64(texts[i], strlen(texts[i]), BASE_FNV64_BASIS);
        double nn = 0;
        for (int k = 0; k < D; k++) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            (*out)[i * D + k] = (float)((h >> 40) & 0xffff) / 65536.0f - 0.5f;
            nn += (double)(*out)[i * D + k] * (*out)[i * D + k];
        }
        for (int k = 0; k < D; k++) (*out)[i * D + k] /= (float)sqrt(nn);
    }
    return 0;
}

static json_t *call(vstore *db, const char *method, const char *path, const char *body, int want) {
    int status = 0;
    char *resp = NULL;
    vstore_http(db, method, path, NULL, body, body ? strlen(body) : 0, &status, &resp);
    if (status != want) fprintf(stderr, "%s %s %s -> %d %s\n", method, path, body, status, resp);
    assert_int_equal(status, want);
    json_t *j = json_loads(resp, JSON_DECODE_ANY, NULL);
    free(resp);
    assert_non_null(j);
    return j;
}

#define COLLS "/api/v2/tenants/default_tenant/databases/default_database/collections"

/* Creates a collection from body; its records path (COLLS/ID) into path. */
static void create(vstore *db, const char *body, char *path, size_t cap) {
    json_t *j = call(db, "POST", COLLS, body, 200);
    snprintf(path, cap, COLLS "/%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
}

static void expect_msg(vstore *db, const char *path, const char *body, const char *msg) {
    json_t *j = call(db, "POST", path, body, 400);
    const char *m = json_string_value(json_object_get(j, "message"));
    if (!m || !strstr(m, msg)) fail_msg("%s: message %s, expected %s", body, m, msg);
    json_decref(j);
}

static void test_embedder(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth_vsembed_XXXXXX", p[256], q[300];
    assert_non_null(mkdtemp(dir));
    base_err e = {0};
    vstore *db;
    assert_int_equal(vstore_open(&db, dir, &e), 0);

    /* no embedder yet: documents alone are refused, saying why */
    create(db, "{\"name\": \"coll1\", \"metadata\": {\"hearth:embedding_model\": \"mini\"}}", p,
           sizeof p);
    snprintf(q, sizeof q, "%s/add", p);
    expect_msg(db, q, "{\"ids\": [\"a\"], \"documents\": [\"x\"]}", "no embedding model");
    vstore_set_embedder(db, fake_embed, NULL);

    /* by metadata: add embeds with the named model; the stored vectors are the embedder's */
    json_t *j = call(db, "POST", q,
                     "{\"ids\": [\"a\", \"b\", \"c\"], \"documents\": [\"the cat sat\", \"a dog "
                     "barked\", \"cats and dogs\"]}",
                     201);
    json_decref(j);
    assert_string_equal(last_model, "mini");
    snprintf(q, sizeof q, "%s/get", p);
    j = call(db, "POST", q, "{\"ids\": [\"b\"], \"include\": [\"embeddings\"]}", 200);
    float *want;
    size_t dim;
    const char *t = "a dog barked";
    fake_embed(NULL, "", &t, 1, &want, &dim, &e);
    json_t *emb = json_array_get(json_object_get(j, "embeddings"), 0);
    assert_int_equal(json_array_size(emb), D);
    for (int k = 0; k < D; k++)
        assert_true(fabs(json_number_value(json_array_get(emb, (size_t)k)) - want[k]) < 1e-6);
    free(want);
    json_decref(j);
    /* query_texts: embedded the same way, so a document's own text is at distance 0 */
    snprintf(q, sizeof q, "%s/query", p);
    j = call(db, "POST", q, "{\"query_texts\": [\"cats and dogs\"], \"n_results\": 1}", 200);
    assert_string_equal(
        json_string_value(json_array_get(json_array_get(json_object_get(j, "ids"), 0), 0)), "c");
    assert_true(json_number_value(
                    json_array_get(json_array_get(json_object_get(j, "distances"), 0), 0)) < 1e-5);
    json_decref(j);
    /* update and upsert with documents only re-embed them */
    snprintf(q, sizeof q, "%s/update", p);
    json_decref(call(db, "POST", q, "{\"ids\": [\"a\"], \"documents\": [\"a bird sang\"]}", 200));
    snprintf(q, sizeof q, "%s/upsert", p);
    json_decref(call(db, "POST", q, "{\"ids\": [\"d\"], \"documents\": [\"fish swim\"]}", 200));
    snprintf(q, sizeof q, "%s/query", p);
    j = call(db, "POST", q, "{\"query_texts\": [\"a bird sang\", \"fish swim\"], \"n_results\": 1}",
             200);
    json_t *ids = json_object_get(j, "ids");
    assert_string_equal(json_string_value(json_array_get(json_array_get(ids, 0), 0)), "a");
    assert_string_equal(json_string_value(json_array_get(json_array_get(ids, 1), 0)), "d");
    json_decref(j);
    /* BM25 and hybrid over HTTP (the collection's english analyzer stems: "dogs" matches "dog"
     * too, at the same score, so the older record comes first) */
    j = call(db, "POST", q,
             "{\"query_texts\": [\"dog\"], \"n_results\": 5, \"hearth\": {\"mode\": \"bm25\"}}",
             200);
    assert_int_equal(json_array_size(json_array_get(json_object_get(j, "ids"), 0)), 2);
    assert_string_equal(
        json_string_value(json_array_get(json_array_get(json_object_get(j, "ids"), 0), 0)), "b");
    json_decref(j);
    int before = calls;
    j = call(db, "POST", q,
             "{\"query_texts\": [\"cats and dogs\"], \"n_results\": 2, \"hearth\": {\"mode\": "
             "\"hybrid\", \"rrf_k\": 10, \"dense_weight\": 2}}",
             200);
    assert_string_equal(
        json_string_value(json_array_get(json_array_get(json_object_get(j, "ids"), 0), 0)), "c");
    /* ranked first by both: 2 / (10 + 1) + 1 / (10 + 1) */
    assert_true(fabs(json_number_value(
                         json_array_get(json_array_get(json_object_get(j, "distances"), 0), 0)) -
                     3.0 / 11) < 1e-6);
    json_decref(j);
    assert_int_equal(calls, before + 1);
    expect_msg(db, q, "{\"query_texts\": [\"x\"], \"hearth\": {\"mode\": \"sparse\"}}",
               "hearth.mode must be dense, bm25 or hybrid");
    expect_msg(db, q,
               "{\"query_embeddings\": [[1,0,0,0,0,0,0,0]], \"hearth\": {\"mode\": \"bm25\"}}",
               "needs query_texts");
    expect_msg(db, q,
               "{\"query_texts\": [\"x\"], \"ids\": [\"a\"], \"hearth\": {\"mode\": \"hybrid\"}}",
               "not ids or where_document");
    expect_msg(db, q, "{\"query_texts\": [\"x\"], \"hearth\": {\"rrf_k\": 0}}", "hearth.rrf_k");
    expect_msg(db, q, "{\"query_texts\": [\"x\"], \"hearth\": {\"k1\": 1}}", "not a query option");
    expect_msg(db, q,
               "{\"query_texts\": [\"x\", \"y\"], \"query_embeddings\": [[1,0,0,0,0,0,0,0]]}",
               "query_texts has 2 entries");
    expect_msg(db, q, "{}", "query_embeddings (or query_texts) are required");
    /* the embedder's refusal reaches the client; a null document cannot be embedded; nothing
     * is written either way */
    snprintf(q, sizeof q, "%s/add", p);
    expect_msg(db, q, "{\"ids\": [\"x\", \"y\"], \"documents\": [\"ok\", \"fail\"]}",
               "text 1: refused");
    expect_msg(db, q, "{\"ids\": [\"x\", \"y\"], \"documents\": [\"ok\", null]}",
               "documents[1] is null");
    snprintf(q, sizeof q, "%s/count", p);
    j = call(db, "GET", q, NULL, 200);
    assert_int_equal(json_integer_value(j), 4);
    json_decref(j);

    /* by configuration.embedding_function: kept beside the metadata, shown in the configuration */
    create(db,
           "{\"name\": \"coll2\", \"configuration\": {\"embedding_function\": {\"type\": "
           "\"known\", \"name\": \"hearth\", \"config\": {\"model\": \"bge\"}}}}",
           p, sizeof p);
    j = call(db, "GET", COLLS "/coll2", NULL, 200);
    assert_true(json_is_null(json_object_get(j, "metadata")));
    json_t *ef = json_object_get(json_object_get(j, "configuration_json"), "embedding_function");
    assert_string_equal(json_string_value(json_object_get(ef, "name")), "hearth");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ef, "config"), "model")),
                        "bge");
    json_decref(j);
    snprintf(q, sizeof q, "%s", p);
    json_decref(call(db, "PUT", q, "{\"new_metadata\": {\"team\": \"docs\"}}", 200));
    j = call(db, "GET", COLLS "/coll2", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"), "team")),
                        "docs");
    assert_null(json_object_get(json_object_get(j, "metadata"), VSTORE_META_EMBED_FN));
    ef = json_object_get(json_object_get(j, "configuration_json"), "embedding_function");
    assert_string_equal(json_string_value(json_object_get(ef, "name")), "hearth");
    json_decref(j);
    snprintf(q, sizeof q, "%s/add", p);
    json_decref(call(db, "POST", q, "{\"ids\": [\"a\"], \"documents\": [\"x\"]}", 201));
    assert_string_equal(last_model, "bge");
    /* Chroma's default function: the server's model ("") */
    create(db,
           "{\"name\": \"coll3\", \"configuration\": {\"embedding_function\": {\"type\": "
           "\"known\", \"name\": \"default\", \"config\": {}}}}",
           p, sizeof p);
    snprintf(q, sizeof q, "%s/add", p);
    json_decref(call(db, "POST", q, "{\"ids\": [\"a\"], \"documents\": [\"x\"]}", 201));
    assert_string_equal(last_model, "");
    /* a collection naming none: documents alone are refused */
    create(db, "{\"name\": \"coll4\"}", p, sizeof p);
    snprintf(q, sizeof q, "%s/add", p);
    expect_msg(db, q, "{\"ids\": [\"a\"], \"documents\": [\"x\"]}", "names no embedding model");
    snprintf(q, sizeof q, "%s/query", p);
    expect_msg(db, q, "{\"query_texts\": [\"x\"]}", "names no embedding model");
    vstore_close(db);
    test_rm_rf(dir);
}

int test_vstore_embedding(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_embedder)};
    return cmocka_run_group_tests_name("vstore_embed", tests, NULL, NULL);
}
