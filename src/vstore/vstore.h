/* vstore/vstore.h: the vector store — collections of records (id, embedding, document, metadata)
 * kept in SQLite (WAL, FTS5), searched through an HNSW index derived from it. */
#ifndef HEARTH_VSTORE_H
#define HEARTH_VSTORE_H

#include <stddef.h>

#include "base/base.h"

typedef struct vstore vstore;

/* Opens (creating if absent) the store in directory dir. */
int vstore_open(vstore **out, const char *dir, base_err *e);
void vstore_close(vstore *db); /* NULL is fine */

/* The Chroma v2 HTTP API (/api/v2/...) as a function from request to response: the server hands
 * every /api/v2/ request here. path excludes the query string (query: after '?', or NULL).
 * *status is the HTTP status; *body a malloc'd JSON text the caller frees. Thread-safe. */
void vstore_http(vstore *db, const char *method, const char *path, const char *query,
                 const char *body, size_t len, int *status, char **resp);

#endif
