/* rag/ingest.c: files -> chunks in a collection, incrementally. The store is the only state:
 * each file's chunks carry its content hash, so a rerun reads the hashes back (the first chunk
 * of each document, metadata chunk = 0), skips unchanged files, replaces changed ones in one
 * transaction each, and removes documents whose files are gone. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rag/rag.h"

#define INGEST_MAX_FILE ((size_t)512 << 20) /* a larger file is reported and skipped */

/* ---- the file list */

typedef struct {
    char **paths;
    uint64_t *sizes;
    size_t n, cap, cap2;
} file_list;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_add(file_list *l, const char *path, uint64_t size) {
    size_t c2 = l->cap2;
    if (base_grow(&l->paths, &l->cap, l->n + 1, sizeof *l->paths, SIZE_MAX) ||
        base_grow(&l->sizes, &c2, l->n + 1, sizeof *l->sizes, SIZE_MAX))
        return BASE_ENOMEM;
    l->cap2 = c2;
    if (!(l->paths[l->n] = strdup(path))) return BASE_ENOMEM;
    l->sizes[l->n++] = size;
    return 0;
}

static void list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->sizes);
}

/* Adds path (a file, or a directory walked recursively in sorted order; hidden entries and
 * what is neither file nor directory skipped). */
static int walk(file_list *l, const char *path, const rag_ingest_opts *o, base_err *e) {
    struct stat st;
    if (stat(path, &st) != 0) return base_fail(e, BASE_EIO, "%s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) return list_add(l, path, (uint64_t)st.st_size) ? BASE_ENOMEM : 0;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return base_fail(e, BASE_EIO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (base_grow(&names, &cap, n + 1, sizeof *names, SIZE_MAX) ||
            !(names[n] = strdup(de->d_name))) {
            rc = BASE_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        char child[PATH_MAX];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, names[i]) >= sizeof child)
            continue;
        base_err ce = {0};
        int r = walk(l, child, o, &ce);
        if (r == BASE_ENOMEM)
            rc = r;
        else if (r && o->warn) /* an unreadable entry is reported, the walk goes on */
            o->warn(o->user, child, ce.msg);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc == BASE_ENOMEM ? base_fail(e, rc, "out of memory") : rc;
}

/* ---- what the store holds: (source, file_hash) of each document */

typedef struct {
    char *source, *hash;
    bool seen;
} stored_doc;

static int cmp_stored(const void *a, const void *b) {
    return strcmp(((const stored_doc *)a)->source, ((const stored_doc *)b)->source);
}

static int load_stored(vstore *db, const char *coll_id, stored_doc **out, size_t *n, base_err *e) {
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    for (size_t off = 0;; off += 5000) {
        vstore_get_req r = {.where = "{\"chunk\": 0}",
                            .limit = 5000,
                            .offset = off,
                            .include = VSTORE_INC_METADATAS};
        vstore_result res;
        int rc = vstore_get(db, coll_id, &r, &res, e);
        if (rc) return rc;
        for (size_t i = 0; i < res.n && !rc; i++) {
            json_t *m = res.metadatas[i] ? json_loads(res.metadatas[i], 0, NULL) : NULL;
            const char *src = json_string_value(json_object_get(m, "source"));
            const char *h = json_string_value(json_object_get(m, "file_hash"));
            if (src && h) {
                if (base_grow(out, &cap, *n + 1, sizeof **out, SIZE_MAX))
                    rc = base_fail(e, BASE_ENOMEM, "out of memory");
                else
                    (*out)[(*n)++] = (stored_doc){strdup(src), strdup(h), false};
            }
            json_decref(m);
        }
        size_t got = res.n;
        vstore_result_free(&res);
        if (rc) return rc;
        if (got < 5000) break;
    }
    qsort(*out, *n, sizeof **out, cmp_stored);
    return 0;
}

static stored_doc *find_stored(stored_doc *s, size_t n, const char *source) {
    stored_doc key = {(char *)source, NULL, false};
    return bsearch(&key, s, n, sizeof *s, cmp_stored);
}

/* ---- one document */

static void hex16(uint64_t h, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* {"source": source} as a where filter (malloc'd). */
static char *where_source(const char *source) {
    json_t *w = json_pack("{ss}", "source", source);
    char *s = w ? json_dumps(w, JSON_COMPACT) : NULL;
    json_decref(w);
    return s;
}

/* Parses, chunks and stores one document (replacing what source had). *nchunks: how many. */
static int ingest_doc(vstore *db, const rag_ingest_opts *o, const char *source, const char *data,
                      size_t len, const char *hash, char doc_id[17], size_t *nchunks, bool *fatal,
                      base_err *e) {
    *nchunks = 0;
    *fatal = false;
    hex16(base_fnv1a64(source, strlen(source), BASE_FNV64_BASIS), doc_id);
    rag_doc d;
    int rc = rag_parse(source, data, len, o->jsonl_field, &d, e);
    if (rc) return rc;
    rag_chunk *c = NULL;
    size_t n = 0;
    /* with an embedding model, chunks are counted in its tokens and fit its window */
    rag_chunk_opts co = o->chunk;
    if (o->embedder) {
        size_t win = o->embedder->max_tokens > 2 ? o->embedder->max_tokens - 2 : 1;
        if (co.max_tokens == 0 || co.max_tokens > win) co.max_tokens = win;
        co.count = o->embedder->count;
        co.ctx = o->embedder->ctx;
    }
    if ((rc = rag_chunk_doc(&d, &co, &c, &n, e))) {
        rag_doc_free(&d);
        return rc;
    }
    char *where = where_source(source);
    if (!where) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc && n == 0) { /* nothing to index: whatever was there goes */
        rc = vstore_delete(db, o->coll_id, NULL, 0, where, NULL, 0, NULL, e);
        *fatal = rc != 0;
        goto out;
    }
    if (!rc && n > VSTORE_MAX_BATCH)
        rc = base_fail(e, BASE_EINVAL, "%s: %zu chunks, above the %d a document may have", source,
                       n, VSTORE_MAX_BATCH);
    char **ids = calloc(n, sizeof *ids), **docs = calloc(n, sizeof *docs),
         **metas = calloc(n, sizeof *metas);
    size_t *lens = calloc(n, sizeof *lens);
    float *emb = NULL;
    if (!ids || !docs || !metas || !lens) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        char id[40];
        snprintf(id, sizeof id, "%s:%zu", doc_id, i);
        ids[i] = strdup(id);
        lens[i] = c[i].end - c[i].start;
        docs[i] = strndup(d.text.data + c[i].start, lens[i]);
        json_t *m = json_object();
        json_object_set_new(m, "source", json_string(source));
        json_object_set_new(m, "doc_id", json_string(doc_id));
        json_object_set_new(m, "file_hash", json_string(hash));
        json_object_set_new(m, "format", json_string(d.format));
        if (d.title) json_object_set_new(m, "title", json_string(d.title));
        if (c[i].heading) json_object_set_new(m, "heading", json_string(c[i].heading));
        if (c[i].page) json_object_set_new(m, "page", json_integer(c[i].page));
        json_object_set_new(m, "start", json_integer((json_int_t)c[i].start));
        json_object_set_new(m, "end", json_integer((json_int_t)c[i].end));
        json_object_set_new(m, "chunk", json_integer((json_int_t)i));
        json_object_set_new(m, "chunks", json_integer((json_int_t)n));
        metas[i] = json_dumps(m, JSON_COMPACT);
        json_decref(m);
        if (!ids[i] || !docs[i] || !metas[i]) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    const rag_embedder *em = o->embedder;
    if (!rc && em) {
        size_t bytes;
        if (base_mul_size(n, em->dim * sizeof(float), &bytes) || !(emb = malloc(bytes)))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else
            rc = em->embed(em->ctx, (const char *const *)docs, lens, n, emb, e);
        *fatal = rc != 0;
    }
    if (!rc) {
        vstore_batch b = {n, (const char *const *)ids, emb, (const char *const *)docs,
                          (const char *const *)metas};
        rc = vstore_replace(db, o->coll_id, where, &b, em ? em->dim : 0, NULL, e);
        *fatal = rc != 0;
    }
    if (!rc) *nchunks = n;
    for (size_t i = 0; i < n; i++) {
        if (ids) free(ids[i]);
        if (docs) free(docs[i]);
        if (metas) free(metas[i]);
    }
    free(ids);
    free(docs);
    free(metas);
    free(lens);
    free(emb);
out:
    free(where);
    rag_chunks_free(c, n);
    rag_doc_free(&d);
    return rc;
}

static void content_hash(const char *data, size_t len, char out[17]) {
    hex16(base_fnv1a64(data, len, BASE_FNV64_BASIS), out);
}

int rag_ingest_buffer(vstore *db, const rag_ingest_opts *o, const char *source, const char *data,
                      size_t len, char doc_id[17], size_t *chunks, base_err *e) {
    char hash[17];
    bool fatal;
    content_hash(data, len, hash);
    return ingest_doc(db, o, source, data, len, hash, doc_id, chunks, &fatal, e);
}

/* Is source the root itself or inside the directory root? */
static bool under(const char *source, const char *root) {
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--;
    return strncmp(source, root, n) == 0 && (source[n] == 0 || source[n] == '/');
}

int rag_ingest(vstore *db, const rag_ingest_opts *o, const char *const *paths, size_t np,
               rag_ingest_stats *st, base_err *e) {
    memset(st, 0, sizeof *st);
    file_list l = {0};
    char **roots = calloc(np ? np : 1, sizeof *roots);
    stored_doc *stored = NULL;
    size_t nstored = 0;
    int rc = roots ? 0 : base_fail(e, BASE_ENOMEM, "out of memory");
    /* sources are absolute paths, so a rerun from another directory finds the same documents */
    for (size_t i = 0; i < np && !rc; i++) {
        roots[i] = realpath(paths[i], NULL);
        if (!roots[i]) rc = base_fail(e, BASE_EIO, "%s: %s", paths[i], strerror(errno));
    }
    for (size_t i = 0; i < np && !rc; i++) rc = walk(&l, roots[i], o, e);
    if (!rc) rc = load_stored(db, o->coll_id, &stored, &nstored, e);
    rag_ingest_progress pg = {.files = l.n};
    for (size_t i = 0; i < l.n; i++) pg.bytes += l.sizes[i];
    st->files = l.n;
    for (size_t i = 0; i < l.n && !rc; i++) {
        const char *path = l.paths[i];
        pg.path = path;
        if (o->progress) o->progress(o->user, &pg);
        stored_doc *sd = find_stored(stored, nstored, path);
        if (sd) sd->seen = true;
        char *data = NULL;
        size_t len = 0;
        base_err fe = {0};
        int r = l.sizes[i] > INGEST_MAX_FILE
                    ? base_fail(&fe, BASE_EINVAL, "larger than %zu MiB", INGEST_MAX_FILE >> 20)
                    : base_read_file(path, &data, &len, &fe);
        char hash[17] = {0}, doc_id[17];
        bool fatal = false;
        if (!r) content_hash(data, len, hash);
        if (!r && sd && strcmp(sd->hash, hash) == 0) {
            st->unchanged++;
        } else if (!r) {
            size_t nc = 0;
            r = ingest_doc(db, o, path, data, len, hash, doc_id, &nc, &fatal, &fe);
            if (!r) {
                st->chunks += nc;
                st->bytes += len;
                if (sd)
                    st->updated++;
                else
                    st->added++;
            }
        }
        free(data);
        if (r && (fatal || r == BASE_ENOMEM)) {
            /* the store (or the embedder) failed, not the file: stop, naming the file */
            rc = base_fail(e, r, "%s: %s", path, fe.msg);
        } else if (r) {
            st->failed++;
            if (o->warn) o->warn(o->user, path, fe.msg);
        }
        pg.done++;
        pg.bytes_done += l.sizes[i];
    }
    if (o->progress && !rc) {
        pg.path = NULL;
        o->progress(o->user, &pg);
    }
    /* documents from under the paths whose files are gone */
    for (size_t i = 0; i < nstored && !rc; i++) {
        if (stored[i].seen) continue;
        bool in = false;
        for (size_t r = 0; r < np && !in; r++) in = under(stored[i].source, roots[r]);
        if (!in) continue;
        char *where = where_source(stored[i].source);
        size_t del = 0;
        rc = where ? vstore_delete(db, o->coll_id, NULL, 0, where, NULL, 0, &del, e)
                   : base_fail(e, BASE_ENOMEM, "out of memory");
        free(where);
        if (!rc) st->removed++;
    }
    for (size_t i = 0; i < nstored; i++) {
        free(stored[i].source);
        free(stored[i].hash);
    }
    free(stored);
    for (size_t i = 0; roots && i < np; i++) free(roots[i]);
    free(roots);
    list_free(&l);
    return rc;
}
