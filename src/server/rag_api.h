/* server/rag_api.h: answers from documents over HTTP, in the shape of PrivateGPT's API. The
 * ingest routes (POST /v1/ingest/file as multipart/form-data with a "file" part, POST
 * /v1/ingest/text {"file_name", "text"}, GET /v1/ingest/list, DELETE /v1/ingest/{doc_id}) and
 * POST /v1/chunks {"text", "context_filter": {"docs_ids"}, "limit"} are a pure function of the
 * request (rag_api_http); /v1/chat/completions and /v1/completions take "use_context",
 * "context_filter" and "include_sources" through rag_api_context, which puts the retrieved
 * chunks before the model and keeps their sources for the answer (its choices' "sources", on
 * the closing chunk when streamed). Documents live in one collection of the server's vector
 * store (hearth serve --vstore-dir, --rag-collection, default "documents"). With an embedding
 * model (--embed-model, emb not NULL) uploads are embedded too and retrieval is hybrid. */
#ifndef HEARTH_SERVER_RAG_API_H
#define HEARTH_SERVER_RAG_API_H

#include <pthread.h>
#include <stddef.h>

#include "server/server.h"
#include "vstore/vstore.h"

#define RAG_API_COLLECTION "documents"

/* Is url one of the routes rag_api_http answers? */
int rag_api_route(const char *url);

/* The ingest and chunks routes. content_type: the request's Content-Type header (NULL if
 * none). *status the HTTP status, *resp a malloc'd JSON text (errors in OpenAI's shape). */
void rag_api_http(vstore *db, const char *collection, server_embedder *emb, const char *method,
                  const char *url, const char *content_type, const char *body, size_t len,
                  int *status, char **resp);

/* What use_context did to a request. */
typedef struct {
    int used;      /* use_context was true: r was rewritten */
    int nothing;   /* no chunk was relevant: answer RAG_NOTHING_FOUND without the model */
    char *sources; /* include_sources: the JSON array of chunks to attach (malloc'd), or NULL */
} rag_api_ctx;

/* Reads use_context / context_filter / include_sources from body; with use_context, retrieves
 * for the question (the last user message, or the prompt) and rewrites r: the sources go into
 * a system message (chat; merged into a system message already there) or before the prompt
 * (completions), sized to fit budget tokens counted with v under mu. 0, or -1 with *er. */
int rag_api_context(vstore *db, const char *collection, server_embedder *emb, const char *body,
                    size_t len, server_req *r, tok_vocab *v, pthread_mutex_t *mu, size_t budget,
                    rag_api_ctx *out, server_error *er);
void rag_api_ctx_free(rag_api_ctx *c);

/* json (an OpenAI response or chunk, malloc'd; NULL passes through) with "sources" set on each
 * choice; frees json and returns the new text (NULL when out of memory). */
char *rag_api_with_sources(char *json, const char *sources);

/* The whole answer when nothing relevant was found (RAG_NOTHING_FOUND): a response, or the
 * SSE stream of its chunks ending in [DONE]; sources attached when not NULL. malloc'd. */
char *rag_api_nothing_found(const server_meta *m, int stream, int include_usage,
                            const char *sources);

#endif
