/* server/rag_api.c: PrivateGPT's API over src/rag (see rag_api.h): document ingestion by upload
 * or text, listing and deletion, chunk retrieval, and the use_context / context_filter /
 * include_sources fields of the completions routes. */
#define _GNU_SOURCE /* memmem */
#include "server/rag_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "embed/embed.h"
#include "rag/rag.h"

int rag_api_route(const char *url) {
    return !strcmp(url, "/v1/ingest/file") || !strcmp(url, "/v1/ingest/text") ||
           !strcmp(url, "/v1/ingest/list") || !strcmp(url, "/v1/chunks") ||
           (!strncmp(url, "/v1/ingest/", 11) && url[11]);
}

static char *err_json(int *status, int code, const char *param, const char *fmt, const char *a) {
    server_error er;
    server_fail(&er, code, param, NULL, fmt, a);
    *status = code;
    return server_error_json(&er);
}

static char *dump(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* The server's embedding model as rag's embedder (server_embedder_vstore: one request at a
 * time, texts past the window cut). */
static int se_embed(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out,
                    base_err *e) {
    float *v = NULL;
    size_t dim = 0;
    int rc = server_embedder_vstore(ctx, "", texts, n, &v, &dim, e);
    if (!rc) memcpy(out, v, n * dim * sizeof *v);
    free(v);
    return rc;
}

static size_t se_count(void *ctx, const char *text, size_t n) {
    size_t k = 0;
    base_err e = {0};
    return embed_count_tokens(server_embedder_model(ctx), text, n, &k, &e) ? (n + 3) / 4 : k;
}

static const rag_embedder *embedder_of(server_embedder *se, rag_embedder *out) {
    if (!se) return NULL;
    const embed_model *m = server_embedder_model(se);
    *out = (rag_embedder){.dim = (size_t)embed_dim(m),
                          .max_tokens = (size_t)embed_max_tokens(m),
                          .name = server_embedder_id(se),
                          .embed = se_embed,
                          .count = se_count,
                          .ctx = se};
    return out;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* {"object": "ingest.document", "doc_id", "doc_metadata": {file_name, ...}} from a chunk's
 * metadata (a JSON text). */
static json_t *doc_json(const char *meta) {
    json_t *m = meta ? json_loads(meta, 0, NULL) : NULL;
    const char *src = json_string_value(json_object_get(m, "source"));
    json_t *dm = json_object();
    json_object_set_new(dm, "file_name", json_string(src ? base_name(src) : ""));
    const char *keys[] = {"source", "title", "heading", "format"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(m, keys[i]);
        if (v) json_object_set(dm, keys[i], v);
    }
    json_int_t page = json_integer_value(json_object_get(m, "page"));
    if (page > 0) {
        char lbl[24];
        snprintf(lbl, sizeof lbl, "%lld", (long long)page);
        json_object_set_new(dm, "page_label", json_string(lbl));
    }
    json_t *d =
        json_pack("{s:s,s:O,s:o}", "object", "ingest.document", "doc_id",
                  json_object_get(m, "doc_id") ? json_object_get(m, "doc_id") : json_string(""),
                  "doc_metadata", dm);
    json_decref(m);
    return d;
}

static json_t *list_json(json_t *data) {
    return json_pack("{s:s,s:s,s:o}", "object", "list", "model", "private-gpt", "data", data);
}

/* ---- multipart/form-data: the part named "file" */

static int multipart_file(const char *ctype, const char *body, size_t len, const char **data,
                          size_t *n, char *name, size_t name_cap) {
    const char *b = ctype ? strstr(ctype, "boundary=") : NULL;
    if (!b) return -1;
    b += 9;
    char bound[256] = "--";
    size_t bl = 2;
    if (*b == '"') b++;
    while (*b && *b != '"' && *b != ';' && *b != ' ' && bl < sizeof bound - 1) bound[bl++] = *b++;
    bound[bl] = 0;
    const char *p = body, *end = body + len;
    while ((p = memmem(p, (size_t)(end - p), bound, bl))) {
        p += bl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; /* the closing boundary */
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) return -1;
        /* headers: Content-Disposition: form-data; name="file"; filename="x.pdf" */
        char hdr[1024];
        size_t hl = (size_t)(hend - p) < sizeof hdr - 1 ? (size_t)(hend - p) : sizeof hdr - 1;
        memcpy(hdr, p, hl);
        hdr[hl] = 0;
        const char *content = hend + 4;
        const char *next = memmem(content, (size_t)(end - content), bound, bl);
        if (!next) return -1;
        size_t clen = (size_t)(next - content);
        if (clen >= 2 && content[clen - 2] == '\r' && content[clen - 1] == '\n') clen -= 2;
        if (strstr(hdr, "name=\"file\"")) {
            const char *fn = strstr(hdr, "filename=\"");
            name[0] = 0;
            if (fn) {
                fn += 10;
                size_t k = 0;
                while (fn[k] && fn[k] != '"' && k < name_cap - 1) k++;
                memcpy(name, fn, k);
                name[k] = 0;
            }
            *data = content;
            *n = clen;
            return 0;
        }
        p = next;
    }
    return -1;
}

/* ---- the routes */

static char *ingest(vstore *db, const char *cid, const rag_embedder *emb, const char *name,
                    const char *data, size_t n, int *status) {
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return err_json(status, 400, "file_name", "a file name is required (no '/'): '%s'", name);
    rag_ingest_opts o = {.coll_id = cid,
                         .chunk = {RAG_CHUNK_TOKENS, RAG_CHUNK_OVERLAP, NULL, NULL},
                         .embedder = emb};
    char doc_id[17];
    size_t chunks = 0;
    base_err e = {0};
    int rc = rag_ingest_buffer(db, &o, name, data, n, doc_id, &chunks, &e);
    if (rc)
        return err_json(status, rc == BASE_EFORMAT || rc == BASE_EINVAL ? 422 : 500, "file", "%s",
                        e.msg);
    json_t *dm = json_pack("{s:s,s:I}", "file_name", name, "chunks", (json_int_t)chunks);
    json_t *doc = json_pack("{s:s,s:s,s:o}", "object", "ingest.document", "doc_id", doc_id,
                            "doc_metadata", dm);
    *status = 200;
    return dump(list_json(json_pack("[o]", doc)));
}

static char *list_docs(vstore *db, const char *cid, int *status) {
    json_t *data = json_array();
    base_err e = {0};
    for (size_t off = 0;; off += 5000) {
        vstore_get_req r = {.where = "{\"chunk\": 0}",
                            .limit = 5000,
                            .offset = off,
                            .include = VSTORE_INC_METADATAS};
        vstore_result res;
        if (vstore_get(db, cid, &r, &res, &e)) {
            json_decref(data);
            return err_json(status, 500, NULL, "%s", e.msg);
        }
        for (size_t i = 0; i < res.n; i++) json_array_append_new(data, doc_json(res.metadatas[i]));
        size_t got = res.n;
        vstore_result_free(&res);
        if (got < 5000) break;
    }
    *status = 200;
    return dump(list_json(data));
}

/* Texts of chunks doc_id:from .. doc_id:to (those that exist), in order. */
static json_t *neighbours(vstore *db, const char *cid, const char *doc_id, long from, long to) {
    if (to < from || from < 0) return json_null();
    char *ids[64];
    size_t n = 0;
    for (long i = from; i <= to && n < 64; i++) {
        char id[48];
        snprintf(id, sizeof id, "%s:%ld", doc_id, i);
        ids[n++] = strdup(id);
    }
    vstore_get_req r = {
        .ids = (const char *const *)ids, .n_ids = n, .include = VSTORE_INC_DOCUMENTS};
    vstore_result res;
    base_err e = {0};
    json_t *a = json_array();
    if (!vstore_get(db, cid, &r, &res, &e)) {
        for (size_t i = 0; i < res.n; i++)
            json_array_append_new(a, json_string(res.documents[i] ? res.documents[i] : ""));
        vstore_result_free(&res);
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
    return a;
}

/* context_filter {"docs_ids": [...]} as a where filter on doc_id (malloc'd; NULL: none). */
static int filter_where(json_t *cf, char **where, server_error *er) {
    *where = NULL;
    if (!cf || json_is_null(cf)) return 0;
    json_t *ids = json_object_get(cf, "docs_ids");
    if (!json_is_object(cf) || (ids && !json_is_null(ids) && !json_is_array(ids)))
        return server_fail(er, 400, "context_filter", "invalid_type",
                           "context_filter must be {\"docs_ids\": [doc ids]}");
    if (!ids || json_is_null(ids)) return 0;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (!json_is_string(v)) return server_fail(
        er, 400, "context_filter", "invalid_type", "context_filter.docs_ids must hold strings");
    *where = dump(json_pack("{s:{s:O}}", "doc_id", "$in", ids));
    return 0;
}

/* The chunks of a retrieval in PrivateGPT's shape (context.chunk objects). */
static json_t *chunks_json(vstore *db, const char *cid, const rag_sources *s, size_t n,
                           long prev_next) {
    json_t *a = json_array();
    for (size_t i = 0; i < n && i < s->n; i++) {
        json_t *m = s->s[i].metadata ? json_loads(s->s[i].metadata, 0, NULL) : NULL;
        long idx = (long)json_integer_value(json_object_get(m, "chunk"));
        json_decref(m);
        json_t *prev = json_null(), *next = json_null();
        if (prev_next > 0 && s->s[i].doc_id) {
            json_decref(prev);
            json_decref(next);
            prev = neighbours(db, cid, s->s[i].doc_id, idx - prev_next, idx - 1);
            next = neighbours(db, cid, s->s[i].doc_id, idx + 1, idx + prev_next);
        }
        json_array_append_new(a, json_pack("{s:s,s:f,s:o,s:s,s:o,s:o}", "object", "context.chunk",
                                           "score", s->s[i].score, "document",
                                           doc_json(s->s[i].metadata), "text", s->s[i].text,
                                           "previous_texts", prev, "next_texts", next));
    }
    return a;
}

static char *chunks_route(vstore *db, const vstore_coll *c, const rag_embedder *emb,
                          const char *body, size_t len, int *status) {
    const char *cid = c->id;
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return err_json(status, 400, NULL, "the body must be a JSON object: %s", je.text);
    }
    const char *text = json_string_value(json_object_get(o, "text"));
    json_t *lim = json_object_get(o, "limit"), *pn = json_object_get(o, "prev_next_chunks");
    long limit = json_is_integer(lim) ? (long)json_integer_value(lim) : 10;
    long prev_next = json_is_integer(pn) ? (long)json_integer_value(pn) : 0;
    server_error er;
    char *where = NULL;
    char *out = NULL;
    if (!text) {
        out = err_json(status, 400, "text", "%s", "\"text\" (a string) is required");
    } else if (limit < 1 || limit > 100 || prev_next < 0 || prev_next > 16 ||
               (lim && !json_is_integer(lim)) || (pn && !json_is_integer(pn))) {
        out = err_json(status, 400, "limit", "%s",
                       "limit must be an integer in 1..100 and prev_next_chunks in 0..16");
    } else if (filter_where(json_object_get(o, "context_filter"), &where, &er)) {
        *status = er.status;
        out = server_error_json(&er);
    } else {
        rag_sources s;
        base_err e = {0};
        float *qv = NULL;
        rag_retrieve_opts ro = {.k = (size_t)limit, .where = where};
        int rc = rag_query_vector(c, emb, text, &qv, &e);
        ro.query = qv;
        ro.dim = qv ? c->dim : 0;
        if (!rc) rc = rag_retrieve(db, cid, text, &ro, &s, &e);
        free(qv);
        if (rc) {
            out = err_json(status, 500, NULL, "%s", e.msg);
        } else {
            *status = 200;
            out = dump(list_json(chunks_json(db, cid, &s, s.n, prev_next)));
            rag_sources_free(&s);
        }
    }
    free(where);
    json_decref(o);
    return out;
}

void rag_api_http(vstore *db, const char *collection, server_embedder *se, const char *method,
                  const char *url, const char *content_type, const char *body, size_t len,
                  int *status, char **resp) {
    base_err e = {0};
    rag_embedder embs;
    const rag_embedder *emb = embedder_of(se, &embs);
    vstore_coll coll;
    *status = 500;
    if (rag_collection(db, collection, emb, 0, &coll, &e)) {
        *resp = err_json(status, 500, NULL, "%s", e.msg);
        return;
    }
    const char *cid = coll.id;
    const char *allow = NULL;
    if (!strcmp(url, "/v1/ingest/file")) {
        if (strcmp(method, "POST")) {
            allow = "POST";
        } else {
            const char *data;
            size_t n;
            char name[256];
            if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) ||
                multipart_file(content_type, body, len, &data, &n, name, sizeof name))
                *resp = err_json(status, 400, "file", "%s",
                                 "expected multipart/form-data with a part named \"file\"");
            else
                *resp = ingest(db, cid, emb, base_name(name), data, n, status);
        }
    } else if (!strcmp(url, "/v1/ingest/text")) {
        if (strcmp(method, "POST")) {
            allow = "POST";
        } else {
            json_t *o = json_loadb(body, len, 0, NULL);
            const char *fn = json_string_value(json_object_get(o, "file_name"));
            const char *text = json_string_value(json_object_get(o, "text"));
            if (!fn || !text)
                *resp = err_json(status, 400, fn ? "text" : "file_name", "%s",
                                 "{\"file_name\": string, \"text\": string} is required");
            else
                *resp = ingest(db, cid, emb, fn, text, strlen(text), status);
            json_decref(o);
        }
    } else if (!strcmp(url, "/v1/ingest/list")) {
        if (strcmp(method, "GET"))
            allow = "GET";
        else
            *resp = list_docs(db, cid, status);
    } else if (!strcmp(url, "/v1/chunks")) {
        if (strcmp(method, "POST"))
            allow = "POST";
        else
            *resp = chunks_route(db, &coll, emb, body, len, status);
    } else { /* /v1/ingest/{doc_id} */
        const char *id = url + 11;
        if (strcmp(method, "DELETE")) {
            allow = "DELETE";
        } else {
            char *where = dump(json_pack("{s:s}", "doc_id", id));
            size_t del = 0;
            int rc =
                where ? vstore_delete(db, cid, NULL, 0, where, NULL, 0, &del, &e) : BASE_ENOMEM;
            free(where);
            if (rc)
                *resp = err_json(status, 500, NULL, "%s", e.msg);
            else if (!del)
                *resp = err_json(status, 404, "doc_id", "no document with doc_id '%s'", id);
            else {
                *status = 200;
                *resp = strdup("{}");
            }
        }
    }
    if (allow) *resp = err_json(status, 405, NULL, "method not allowed here; use %s", allow);
    vstore_coll_free(&coll);
}

/* ---- use_context */

typedef struct {
    tok_vocab *v;
    pthread_mutex_t *mu;
} counter;

static size_t count_tokens(void *ctx, const char *text, size_t n) {
    counter *c = ctx;
    tok_ids ids = {0};
    base_err e = {0};
    pthread_mutex_lock(c->mu);
    int rc = tok_encode(c->v, text, n, 0, &ids, &e);
    pthread_mutex_unlock(c->mu);
    size_t k = rc ? n : ids.len;
    tok_ids_free(&ids);
    return k;
}

void rag_api_ctx_free(rag_api_ctx *c) {
    free(c->sources);
    memset(c, 0, sizeof *c);
}

int rag_api_context(vstore *db, const char *collection, server_embedder *se, const char *body,
                    size_t len, server_req *r, tok_vocab *v, pthread_mutex_t *mu, size_t budget,
                    rag_api_ctx *out, server_error *er) {
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *uc = json_object_get(o, "use_context"), *is = json_object_get(o, "include_sources");
    if ((uc && !json_is_boolean(uc)) || (is && !json_is_boolean(is))) {
        json_decref(o);
        return server_fail(er, 400, uc && !json_is_boolean(uc) ? "use_context" : "include_sources",
                           "invalid_type", "must be a boolean");
    }
    if (!json_is_true(uc)) {
        json_decref(o);
        return 0;
    }
    if (!db) {
        json_decref(o);
        return server_fail(er, 400, "use_context", "unsupported_parameter",
                           "use_context needs documents: start hearth serve with --vstore-dir");
    }
    char *where = NULL;
    if (filter_where(json_object_get(o, "context_filter"), &where, er)) {
        json_decref(o);
        return -1;
    }
    bool include = json_is_true(is);
    json_decref(o);
    /* the question: the last user message, or the prompt */
    const char *q = r->prompt;
    for (size_t i = r->n_msgs; i-- > 0;)
        if (!strcmp(r->msgs[i].role, "user")) {
            q = r->msgs[i].content;
            break;
        }
    if (!q) {
        free(where);
        return server_fail(er, 400, "messages", "invalid_value",
                           "use_context needs a user message (or a text prompt)");
    }
    base_err e = {0};
    rag_sources s = {0};
    rag_embedder embs;
    const rag_embedder *emb = embedder_of(se, &embs);
    vstore_coll coll = {0};
    float *qv = NULL;
    rag_retrieve_opts ro = {.k = RAG_DEFAULT_K, .where = where};
    int rc = rag_collection(db, collection, emb, 0, &coll, &e);
    if (!rc) rc = rag_query_vector(&coll, emb, q, &qv, &e);
    ro.query = qv;
    ro.dim = qv ? coll.dim : 0;
    if (!rc) rc = rag_retrieve(db, coll.id, q, &ro, &s, &e);
    char cid[40];
    snprintf(cid, sizeof cid, "%s", coll.id);
    vstore_coll_free(&coll);
    free(qv);
    free(where);
    if (rc) return server_fail(er, 500, NULL, NULL, "retrieval failed: %s", e.msg);
    out->used = 1;
    if (s.n == 0) {
        out->nothing = 1;
        if (include) out->sources = strdup("[]");
        rag_sources_free(&s);
        return 0;
    }
    counter cnt = {v, mu};
    rag_prompt_out p;
    if (rag_prompt(&s, q, budget, count_tokens, &cnt, &p, &e)) {
        rag_sources_free(&s);
        return server_fail(er, 500, NULL, NULL, "%s", e.msg);
    }
    rc = 0;
    if (r->ep == SERVER_EP_CHAT) {
        /* the sources lead the system message (one is added when the request has none) */
        server_msg *m = r->n_msgs && !strcmp(r->msgs[0].role, "system") ? &r->msgs[0] : NULL;
        if (m) {
            base_buf b = {0};
            base_buf_printf(&b, "%s\n\n%s", p.system.data, m->content);
            if (b.failed) rc = -1;
            free(m->content);
            m->content = b.data;
        } else {
            server_msg *nm = realloc(r->msgs, (r->n_msgs + 1) * sizeof *nm);
            if (!nm) {
                rc = -1;
            } else {
                memmove(nm + 1, nm, r->n_msgs * sizeof *nm);
                nm[0].role = strdup("system");
                nm[0].content = strdup(p.system.data);
                r->msgs = nm;
                r->n_msgs++;
                if (!nm[0].role || !nm[0].content) rc = -1;
            }
        }
    } else {
        base_buf b = {0};
        base_buf_printf(&b, "%s\nQuestion: %s\nAnswer:", p.system.data, r->prompt);
        if (b.failed) rc = -1;
        free(r->prompt);
        r->prompt = b.data;
    }
    if (!rc && include) {
        out->sources = dump(chunks_json(db, cid, &s, p.used, 0));
        if (!out->sources) rc = -1;
    }
    rag_prompt_free(&p);
    rag_sources_free(&s);
    if (rc) return server_fail(er, 500, NULL, NULL, "out of memory");
    return 0;
}

char *rag_api_with_sources(char *json, const char *sources) {
    if (!json || !sources) return json;
    json_t *o = json_loads(json, 0, NULL), *src = json_loads(sources, 0, NULL);
    free(json);
    json_t *ch = json_object_get(o, "choices");
    size_t i;
    json_t *c;
    json_array_foreach(ch, i, c) json_object_set(c, "sources", src);
    json_decref(src);
    return dump(o);
}

char *rag_api_nothing_found(const server_meta *m, int stream, int include_usage,
                            const char *sources) {
    const char *t = RAG_NOTHING_FOUND;
    if (!stream)
        return rag_api_with_sources(server_json_response(m, t, strlen(t), INFER_FINISH_STOP, 0, 0),
                                    sources);
    base_buf b = {0};
    char *parts[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    if (m->ep == SERVER_EP_CHAT) parts[n++] = server_json_chunk(m, 1, "", 0, NULL, include_usage);
    parts[n++] = server_json_chunk(m, 0, t, strlen(t), NULL, include_usage);
    parts[n++] =
        rag_api_with_sources(server_json_chunk(m, 0, NULL, 0, "stop", include_usage), sources);
    if (include_usage) parts[n++] = server_json_usage_chunk(m, 0, 0);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (!parts[i])
            failed = 1;
        else
            server_sse_event(&b, parts[i]);
        free(parts[i]);
    }
    server_sse_event(&b, "[DONE]");
    if (failed || b.failed) {
        base_buf_free(&b);
        return NULL;
    }
    return b.data;
}
