/* rag/embedder.c: src/embed's models as ingestion's and retrieval's embedder, the collection
 * that goes with one, and the question's vector for hybrid retrieval. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "embed/embed.h"
#include "rag/rag.h"

static int model_embed(void *ctx, const char *const *texts, const size_t *lens, size_t n,
                       float *out, base_err *e) {
    return embed_texts(ctx, texts, lens, n, 1, out, e);
}

static size_t model_count(void *ctx, const char *text, size_t n) {
    size_t k = 0;
    base_err e = {0};
    return embed_count_tokens(ctx, text, n, &k, &e) ? (n + 3) / 4 : k;
}

void rag_embedder_of_model(const embed_model *m, rag_embedder *out) {
    *out = (rag_embedder){.dim = (size_t)embed_dim(m),
                          .max_tokens = (size_t)embed_max_tokens(m),
                          .name = embed_model_name(m),
                          .embed = model_embed,
                          .count = model_count,
                          .ctx = (void *)m};
}

int rag_collection(vstore *db, const char *name, const rag_embedder *emb, int analyzer,
                   vstore_coll *out, base_err *e) {
    vstore_coll_opts o = {.text = {analyzer, 0, 0}};
    char *meta = NULL;
    if (emb) {
        json_t *m = json_pack("{s:s}", VSTORE_META_EMBED_MODEL, emb->name ? emb->name : "");
        meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        if (!meta) return base_fail(e, BASE_ENOMEM, "out of memory");
        o.metric = VDIST_COSINE;
        o.metadata = meta;
    }
    int rc = vstore_coll_create(db, NULL, NULL, name, &o, true, out, e);
    free(meta);
    return rc;
}

int rag_query_vector(const vstore_coll *c, const rag_embedder *emb, const char *question, float **q,
                     base_err *e) {
    *q = NULL;
    if (!emb || c->dim == 0) return 0;
    if (c->dim != emb->dim)
        return base_fail(e, BASE_EINVAL,
                         "collection '%s' holds vectors of dimension %zu; the embedding model's"
                         " have %zu",
                         c->name, c->dim, emb->dim);
    float *v = malloc(emb->dim * sizeof *v);
    if (!v) return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t len = strlen(question);
    int rc = emb->embed(emb->ctx, &question, &len, 1, v, e);
    if (rc) {
        free(v);
        return rc;
    }
    *q = v;
    return 0;
}
