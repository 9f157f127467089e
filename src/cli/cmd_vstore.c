/* cli/cmd_vstore.c: `hearth vstore --dir DIR VERB ...` — collections and records of a vector
 * store on disk (src/vstore): create / list / info / modify / delete collections, add / upsert /
 * update records from JSONL, get, query, text (BM25) and hybrid search, count, remove. Results
 * are printed as JSON lines. */
#include "cli.h"

#include "vstore/analyzer.h"
#include "vstore/vstore.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *dir, *verb, *name, *metric, *metadata, *new_name, *file, *ids, *where, *where_doc,
        *include, *vector, *text;
    long dim, M, efc, efs, batch, limit, offset, k, ef;
    double rrf_k, w_dense, w_text;
    int get_or_create, print_ids;
} opts;

static const char vstore_usage[] =
    "usage: hearth vstore --dir DIR VERB [ARGS]\n\n"
    "Collections:\n"
    "  create NAME [--metric l2|ip|cosine] [--dim N] [--M N] [--ef-construction N]\n"
    "              [--ef-search N] [--metadata JSON] [--get-or-create]\n"
    "  list | info NAME | delete NAME\n"
    "  modify NAME [--name NEW] [--metadata JSON] [--ef-search N]\n"
    "Records (JSONL: one {\"id\", \"embedding\", \"document\", \"metadata\"} per line):\n"
    "  add|upsert|update NAME --file F.jsonl [--batch N] [--print-ids]\n"
    "      each batch (default 100) is one transaction; the whole file is checked\n"
    "      first, so a bad line writes nothing. --print-ids prints each id once its\n"
    "      batch is durable.\n"
    "  get NAME [--ids a,b] [--where JSON] [--where-document JSON] [--limit N]\n"
    "           [--offset N] [--include documents,metadatas,embeddings]\n"
    "  query NAME --vector JSON [-k N] [--where JSON] [--where-document JSON]\n"
    "             [--include ...] [--ef N]\n"
    "  query NAME --file Q.jsonl [-k N] [--where JSON] ...  (each line's embedding a\n"
    "             query; prints {\"query\": its id, \"ids\": [...], \"distances\": [...]})\n"
    "  text NAME TEXT [-k N] [--where JSON]                (BM25)\n"
    "  hybrid NAME --vector JSON --text TEXT [-k N] [--where JSON] [--rrf-k K]\n"
    "              [--w-dense W] [--w-text W]          (reciprocal rank fusion)\n"
    "  count NAME\n"
    "  remove NAME [--ids a,b] [--where JSON] [--where-document JSON]";

/* Every option of every verb, in one table (a verb ignores the ones it has no use for). */
static int parse(int argc, char **argv, opts *o) {
    const cli_opt table[] = {
        CLI_OPT_STR("dir", 0, &o->dir, "DIR", "the store's directory"),
        CLI_OPT_STR("metric", 0, &o->metric, "M", "create: l2, ip or cosine"),
        CLI_OPT_INT("dim", 0, &o->dim, 1, VSTORE_MAX_DIM, "N", "create: the embeddings' dimension"),
        CLI_OPT_INT("M", 0, &o->M, 2, 256, "N", "create: HNSW links per node"),
        CLI_OPT_INT("ef-construction", 0, &o->efc, 1, 10000, "N", "create: HNSW build beam"),
        CLI_OPT_INT("ef-search", 0, &o->efs, 1, 10000, "N", "create, modify: HNSW search beam"),
        CLI_OPT_STR("metadata", 0, &o->metadata, "JSON",
                    "create, modify: the collection's metadata"),
        CLI_OPT_FLAG("get-or-create", 0, &o->get_or_create, "create: an existing one is fine"),
        CLI_OPT_STR("name", 0, &o->new_name, "NEW", "modify: the new name"),
        CLI_OPT_STR("file", 0, &o->file, "F.jsonl", "add, upsert, update, query: the records"),
        CLI_OPT_INT("batch", 0, &o->batch, 1, VSTORE_MAX_BATCH, "N",
                    "add, upsert, update: records per transaction (default 100)"),
        CLI_OPT_FLAG("print-ids", 0, &o->print_ids, "add, upsert, update: each id once durable"),
        CLI_OPT_STR("ids", 0, &o->ids, "a,b", "get, remove: these ids"),
        CLI_OPT_STR("where", 0, &o->where, "JSON", "a metadata filter"),
        CLI_OPT_STR("where-document", 0, &o->where_doc, "JSON", "a document filter"),
        CLI_OPT_INT("limit", 0, &o->limit, 0, 1L << 40, "N", "get: records at most"),
        CLI_OPT_INT("offset", 0, &o->offset, 0, 1L << 40, "N", "get: records skipped"),
        CLI_OPT_STR("include", 0, &o->include, "LIST", "documents,metadatas,embeddings,distances"),
        CLI_OPT_STR("vector", 0, &o->vector, "JSON", "query, hybrid: the query embedding"),
        CLI_OPT_STR("text", 0, &o->text, "TEXT", "hybrid: the query text"),
        CLI_OPT_INT(NULL, 'k', &o->k, 1, VSTORE_MAX_RESULTS, "N", "results (default 10)"),
        CLI_OPT_INT("ef", 0, &o->ef, 1, 100000, "N", "query: HNSW search beam"),
        CLI_OPT_FLOAT("rrf-k", 0, &o->rrf_k, 0, 1e9, "K", "hybrid: reciprocal rank fusion's k"),
        CLI_OPT_FLOAT("w-dense", 0, &o->w_dense, 0, 1e9, "W", "hybrid: the dense ranking's weight"),
        CLI_OPT_FLOAT("w-text", 0, &o->w_text, 0, 1e9, "W", "hybrid: the text ranking's weight"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = "vstore", .usage = vstore_usage, .opts = table};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    /* VERB NAME, and `text NAME TEXT` */
    if (npos > 0) o->verb = argv[1];
    if (npos > 1) o->name = argv[2];
    if (npos > 2 && !o->text)
        o->text = argv[3];
    else if (npos > 2)
        return cli_usage_error(&cmd, "unexpected argument '%s'", argv[3]);
    if (npos > 3) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[4]);
    if (!o->dir || !o->verb) return cli_usage_error(&cmd, "--dir DIR and a VERB are required");
    return -1;
}

static int fail(const char *what, const base_err *e) {
    fprintf(stderr, "hearth: vstore: %s%s%s\n", what ? what : "", what ? ": " : "", e->msg);
    return 1;
}

static void print_notes(vstore *db) {
    const char *n = vstore_notes(db);
    while (n && *n) {
        const char *nl = strchr(n, '\n');
        int len = nl ? (int)(nl - n) : (int)strlen(n);
        fprintf(stderr, "hearth: vstore: note: %.*s\n", len, n);
        n = nl ? nl + 1 : NULL;
    }
}

/* "a,b,c" → a malloc'd array of pointers into a malloc'd copy. */
static char **split_ids(const char *s, size_t *n, char **copy) {
    *n = 0;
    *copy = strdup(s);
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    char **ids = calloc(cap, sizeof *ids);
    if (!*copy || !ids) {
        free(*copy);
        free(ids);
        return NULL;
    }
    char *save = NULL;
    for (char *t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) ids[(*n)++] = t;
    return ids;
}

static int parse_include(const char *s, unsigned def, unsigned *out) {
    if (!s) {
        *out = def;
        return 0;
    }
    *out = 0;
    char *c = strdup(s), *save = NULL;
    if (!c) return -1;
    int rc = 0;
    for (char *t = strtok_r(c, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "documents"))
            *out |= VSTORE_INC_DOCUMENTS;
        else if (!strcmp(t, "metadatas"))
            *out |= VSTORE_INC_METADATAS;
        else if (!strcmp(t, "embeddings"))
            *out |= VSTORE_INC_EMBEDDINGS;
        else if (!strcmp(t, "distances"))
            *out |= VSTORE_INC_DISTANCES;
        else {
            fprintf(stderr,
                    "hearth: vstore: --include: unknown field '%s' (known: documents, "
                    "metadatas, embeddings, distances)\n",
                    t);
            rc = -1;
        }
    }
    free(c);
    return rc;
}

/* A JSON array of numbers → floats (malloc'd). */
static float *parse_vector(const char *s, size_t *dim) {
    json_error_t je;
    json_t *a = json_loads(s, JSON_DECODE_ANY, &je);
    float *v = NULL;
    *dim = 0;
    if (!a || !json_is_array(a) || json_array_size(a) == 0) {
        fprintf(stderr, "hearth: vstore: --vector must be a JSON array of numbers%s%s\n",
                a ? "" : ": ", a ? "" : je.text);
        json_decref(a);
        return NULL;
    }
    *dim = json_array_size(a);
    v = malloc(*dim * sizeof *v);
    for (size_t i = 0; v && i < *dim; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_number(x)) {
            fprintf(stderr, "hearth: vstore: --vector: element %zu is not a number\n", i);
            free(v);
            v = NULL;
            break;
        }
        v[i] = (float)json_number_value(x);
    }
    json_decref(a);
    return v;
}

static void print_result(const vstore_result *r, const char *score_key) {
    for (size_t i = 0; i < r->n; i++) {
        json_t *o = json_pack("{s:s}", "id", r->ids[i]);
        if (r->distances) json_object_set_new(o, score_key, json_real(r->distances[i]));
        if (r->documents)
            json_object_set_new(o, "document",
                                r->documents[i] ? json_string(r->documents[i]) : json_null());
        if (r->metadatas) {
            json_t *m = r->metadatas[i] ? json_loads(r->metadatas[i], 0, NULL) : NULL;
            json_object_set_new(o, "metadata", m ? m : json_null());
        }
        if (r->embeddings) {
            json_t *a = json_array();
            for (size_t j = 0; j < r->dim; j++)
                json_array_append_new(a, json_real(r->embeddings[i * r->dim + j]));
            json_object_set_new(o, "embedding", a);
        }
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) printf("%s\n", s);
        free(s);
        json_decref(o);
    }
}

/* ---- JSONL records */

typedef struct {
    size_t n, cap, dim;
    char **ids, **docs, **metas;
    float *emb;
    int has_emb;
} recs;

static void recs_free(recs *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->ids[i]);
        free(r->docs[i]);
        free(r->metas[i]);
    }
    free(r->ids);
    free(r->docs);
    free(r->metas);
    free(r->emb);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every line first: a bad line is reported (FILE:LINE) before anything is written. */
static int read_jsonl(const char *path, recs *r, int need_emb) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
#define BAD(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "hearth: vstore: %s:%zu: ", path, lineno);                                 \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        rc = -1;                                                                                   \
        goto next;                                                                                 \
    } while (0)
        if (!o) BAD("not JSON: %s (column %d)", je.text, je.column);
        if (!json_is_object(o)) BAD("a record must be a JSON object");
        json_t *id = json_object_get(o, "id"), *emb = json_object_get(o, "embedding"),
               *doc = json_object_get(o, "document"), *meta = json_object_get(o, "metadata");
        if (!json_is_string(id)) BAD("\"id\" must be a string");
        if (emb && !json_is_null(emb)) {
            if (!json_is_array(emb) || json_array_size(emb) == 0)
                BAD("\"embedding\" must be a non-empty array of numbers");
            size_t d = json_array_size(emb);
            if (r->n == 0) r->dim = d;
            if (d != r->dim || (r->n > 0 && !r->has_emb))
                BAD("\"embedding\" has %zu values, earlier records %zu", d,
                    r->has_emb ? r->dim : 0);
            r->has_emb = 1;
        } else if (need_emb || r->has_emb) {
            BAD("\"embedding\" is required");
        }
        if (doc && !json_is_null(doc) && !json_is_string(doc)) BAD("\"document\" must be a string");
        if (meta && !json_is_null(meta) && !json_is_object(meta))
            BAD("\"metadata\" must be an object");
        /* parallel arrays grown from one capacity (one that grew before another failed is
         * merely larger than r->cap says); an embedding row is one element of r->emb */
        size_t ca = r->cap, cb = r->cap, cc = r->cap, ce = r->cap;
        if (base_grow(&r->ids, &ca, r->n + 1, sizeof *r->ids, SIZE_MAX) ||
            base_grow(&r->docs, &cb, r->n + 1, sizeof *r->docs, SIZE_MAX) ||
            base_grow(&r->metas, &cc, r->n + 1, sizeof *r->metas, SIZE_MAX) ||
            (r->has_emb && base_grow(&r->emb, &ce, r->n + 1, r->dim * sizeof *r->emb, SIZE_MAX)))
            BAD("out of memory");
        r->cap = ca;
        if (r->has_emb) {
            for (size_t j = 0; j < r->dim; j++) {
                json_t *x = json_array_get(emb, j);
                if (!json_is_number(x)) BAD("\"embedding\"[%zu] is not a number", j);
                r->emb[r->n * r->dim + j] = (float)json_number_value(x);
            }
        }
        r->ids[r->n] = strdup(json_string_value(id));
        r->docs[r->n] = json_is_string(doc) ? strdup(json_string_value(doc)) : NULL;
        r->metas[r->n] = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : NULL;
        r->n++;
    next:
        json_decref(o);
#undef BAD
    }
    free(line);
    fclose(f);
    if (!rc && r->n == 0) {
        fprintf(stderr, "hearth: vstore: %s: no records\n", path);
        rc = -1;
    }
    /* A repeated id would fail a later batch after earlier ones were written: refuse it now. */
    char **sorted = rc ? NULL : malloc(r->n * sizeof *sorted);
    if (!rc && !sorted) rc = -1;
    if (sorted) {
        memcpy(sorted, r->ids, r->n * sizeof *sorted);
        qsort(sorted, r->n, sizeof *sorted, cmp_str);
        for (size_t i = 1; i < r->n && !rc; i++)
            if (!strcmp(sorted[i - 1], sorted[i])) {
                fprintf(stderr, "hearth: vstore: %s: id '%s' appears more than once\n", path,
                        sorted[i]);
                rc = -1;
            }
        free(sorted);
    }
    return rc;
}

static int do_write(vstore *db, const vstore_coll *c, vstore_mode mode, const opts *o) {
    if (!o->file) {
        fprintf(stderr, "hearth: vstore: --file F.jsonl is required\n");
        return 2;
    }
    recs r = {0};
    if (read_jsonl(o->file, &r, mode != VSTORE_UPDATE)) {
        recs_free(&r);
        return 1;
    }
    size_t batch = o->batch ? (size_t)o->batch : 100, done = 0;
    base_err e = {0};
    int rc = 0;
    double t0 = base_now();
    for (size_t s = 0; s < r.n && !rc; s += batch) {
        size_t n = r.n - s < batch ? r.n - s : batch;
        vstore_batch b = {n, (const char *const *)r.ids + s, r.has_emb ? r.emb + s * r.dim : NULL,
                          (const char *const *)r.docs + s, (const char *const *)r.metas + s};
        if ((rc = vstore_write(db, c->id, mode, &b, r.dim, &e))) break;
        if (o->print_ids) {
            for (size_t i = 0; i < n; i++) printf("%s\n", r.ids[s + i]);
            fflush(stdout);
        }
        done += n;
    }
    if (rc) {
        fprintf(stderr, "hearth: vstore: %s: %s (%zu records written before, in earlier batches)\n",
                o->file, e.msg, done);
    } else if (!o->print_ids) {
        static const char *verbs[] = {"added", "upserted", "updated"};
        double dt = base_now() - t0;
        fprintf(stderr, "%s %zu records in '%s' (%.0f records/s)\n", verbs[mode], done, c->name,
                dt > 0 ? (double)done / dt : 0.0);
    }
    recs_free(&r);
    return rc ? 1 : 0;
}

/* query --file: every line's embedding is a query; one output line per query:
 * {"query": its id, "ids": [...], "distances": [...]}. The queries go in chunks of at most
 * VSTORE_MAX_RESULTS rows (queries x k), the most one answer holds. */
static int query_file(vstore *db, const vstore_coll *c, const opts *o) {
    recs r = {0};
    if (read_jsonl(o->file, &r, 1)) {
        recs_free(&r);
        return 1;
    }
    base_err e = {0};
    size_t k = o->k ? (size_t)o->k : 10,
           chunk = k < VSTORE_MAX_RESULTS ? VSTORE_MAX_RESULTS / k : 1;
    int rc = 0;
    for (size_t first = 0; first < r.n && !rc; first += chunk) {
        size_t nq = r.n - first < chunk ? r.n - first : chunk;
        vstore_query_req q = {.queries = r.emb + first * r.dim,
                              .nq = nq,
                              .dim = r.dim,
                              .k = k,
                              .where = o->where,
                              .where_document = o->where_doc,
                              .include = VSTORE_INC_DISTANCES,
                              .ef = (int)o->ef};
        vstore_result *res = NULL;
        if (vstore_query(db, c->id, &q, &res, &e)) {
            rc = fail("query", &e);
            break;
        }
        for (size_t i = 0; i < nq; i++) {
            json_t *ids = json_array(), *d = json_array();
            for (size_t j = 0; j < res[i].n; j++) {
                json_array_append_new(ids, json_string(res[i].ids[j]));
                json_array_append_new(d, json_real(res[i].distances[j]));
            }
            json_t *line =
                json_pack("{s:s,s:o,s:o}", "query", r.ids[first + i], "ids", ids, "distances", d);
            char *text = json_dumps(line, JSON_COMPACT);
            if (text) printf("%s\n", text);
            free(text);
            json_decref(line);
            vstore_result_free(&res[i]);
        }
        free(res);
    }
    recs_free(&r);
    return rc;
}

static int run(vstore *db, const char *verb, const opts *o) {
    base_err e = {0};
    int rc;
    if (!strcmp(verb, "list")) {
        vstore_coll *cs = NULL;
        size_t n = 0;
        if (vstore_coll_list(db, NULL, NULL, 0, 0, &cs, &n, &e)) return fail("list", &e);
        for (size_t i = 0; i < n; i++) {
            uint64_t cnt = 0;
            vstore_count(db, cs[i].id, &cnt, NULL);
            printf("%s\t%s\tdim=%zu\trecords=%llu\n", cs[i].name, vdist_metric_name(cs[i].metric),
                   cs[i].dim, (unsigned long long)cnt);
            vstore_coll_free(&cs[i]);
        }
        free(cs);
        return 0;
    }
    if (!o->name) {
        fprintf(stderr, "hearth: vstore: %s: a collection NAME is required\n", verb);
        return 2;
    }
    if (!strcmp(verb, "create")) {
        vstore_coll_opts co = {0};
        if (o->metric && vdist_metric_parse(o->metric, &co.metric) != 0) {
            fprintf(stderr, "hearth: vstore: --metric '%s': known: l2, ip, cosine\n", o->metric);
            return 2;
        }
        co.dim = (size_t)o->dim;
        co.hnsw.M = (int)o->M;
        co.hnsw.ef_construction = (int)o->efc;
        co.hnsw.ef_search = (int)o->efs;
        co.metadata = o->metadata;
        vstore_coll c = {0};
        if (vstore_coll_create(db, NULL, NULL, o->name, &co, o->get_or_create, &c, &e))
            return fail("create", &e);
        printf("%s\t%s\n", c.name, c.id);
        vstore_coll_free(&c);
        return 0;
    }
    if (!strcmp(verb, "delete")) {
        if (vstore_coll_delete(db, NULL, NULL, o->name, &e)) return fail("delete", &e);
        return 0;
    }
    vstore_coll c = {0};
    if (vstore_coll_get(db, NULL, NULL, o->name, &c, &e)) return fail(NULL, &e);
    rc = 0;
    if (!strcmp(verb, "info")) {
        uint64_t cnt = 0;
        if (vstore_count(db, c.id, &cnt, &e))
            rc = fail("info", &e);
        else
            printf("name %s\nid %s\nmetric %s\ndim %zu\nM %d\nef_construction %d\nef_search %d\n"
                   "records %llu\nmetadata %s\n",
                   c.name, c.id, vdist_metric_name(c.metric), c.dim, c.hnsw.M,
                   c.hnsw.ef_construction, c.hnsw.ef_search, (unsigned long long)cnt,
                   c.metadata ? c.metadata : "null");
        if (!rc && c.text.analyzer == VSTORE_AN_UNICODE61)
            printf("text unicode61 (FTS5's bm25)\n");
        else if (!rc)
            printf("text %s (BM25 k1 %g, b %g)\n", vstore_analyzer_name(c.text.analyzer), c.text.k1,
                   c.text.b);
    } else if (!strcmp(verb, "modify")) {
        if (!o->new_name && !o->metadata && !o->efs) {
            fprintf(stderr,
                    "hearth: vstore: modify: --name, --metadata or --ef-search is required\n");
            rc = 2;
        } else if (vstore_coll_modify(db, c.id, o->new_name, o->metadata, (int)o->efs, &e)) {
            rc = fail("modify", &e);
        }
    } else if (!strcmp(verb, "add") || !strcmp(verb, "upsert") || !strcmp(verb, "update")) {
        rc = do_write(db, &c,
                      verb[0] == 'a'                     ? VSTORE_ADD
                      : verb[1] == 'p' && verb[2] == 's' ? VSTORE_UPSERT
                                                         : VSTORE_UPDATE,
                      o);
    } else if (!strcmp(verb, "count")) {
        uint64_t cnt = 0;
        if (vstore_count(db, c.id, &cnt, &e))
            rc = fail("count", &e);
        else
            printf("%llu\n", (unsigned long long)cnt);
    } else if (!strcmp(verb, "get") || !strcmp(verb, "remove")) {
        size_t n = 0;
        char *copy = NULL, **ids = o->ids ? split_ids(o->ids, &n, &copy) : NULL;
        if (o->ids && !ids) {
            fprintf(stderr, "hearth: vstore: out of memory\n");
            rc = 1;
        } else if (verb[0] == 'r') {
            size_t deleted = 0;
            if (vstore_delete(db, c.id, (const char *const *)ids, n, o->where, o->where_doc, 0,
                              &deleted, &e))
                rc = fail("remove", &e);
            else
                printf("%zu\n", deleted);
        } else {
            vstore_get_req g = {
                (const char *const *)ids, n, o->where, o->where_doc, (size_t)o->limit,
                (size_t)o->offset,        0};
            vstore_result res = {0};
            if (parse_include(o->include, VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS, &g.include))
                rc = 2;
            else if (vstore_get(db, c.id, &g, &res, &e))
                rc = fail("get", &e);
            else
                print_result(&res, "distance");
            vstore_result_free(&res);
        }
        free(ids);
        free(copy);
    } else if (!strcmp(verb, "query") && o->file) {
        rc = query_file(db, &c, o);
    } else if (!strcmp(verb, "query") || !strcmp(verb, "hybrid")) {
        size_t dim = 0;
        float *v = o->vector ? parse_vector(o->vector, &dim) : NULL;
        unsigned inc;
        if (!o->vector) {
            fprintf(stderr, "hearth: vstore: %s: --vector JSON is required\n", verb);
            rc = 2;
        } else if (!v) {
            rc = 2;
        } else if (parse_include(o->include,
                                 VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS | VSTORE_INC_DISTANCES,
                                 &inc)) {
            rc = 2;
        } else if (verb[0] == 'q') {
            vstore_query_req q = {.queries = v,
                                  .nq = 1,
                                  .dim = dim,
                                  .k = o->k ? (size_t)o->k : 10,
                                  .where = o->where,
                                  .where_document = o->where_doc,
                                  .include = inc,
                                  .ef = (int)o->ef};
            vstore_result *res = NULL;
            if (vstore_query(db, c.id, &q, &res, &e))
                rc = fail("query", &e);
            else
                print_result(&res[0], "distance");
            if (res) vstore_result_free(&res[0]);
            free(res);
        } else if (!o->text) {
            fprintf(stderr, "hearth: vstore: hybrid: --text TEXT is required\n");
            rc = 2;
        } else {
            vstore_hybrid_req h = {v,        dim,
                                   o->text,  o->k ? (size_t)o->k : 10,
                                   o->where, inc | VSTORE_INC_DISTANCES,
                                   o->rrf_k, o->w_dense,
                                   o->w_text};
            vstore_result res = {0};
            if (vstore_hybrid(db, c.id, &h, &res, &e))
                rc = fail("hybrid", &e);
            else
                print_result(&res, "score");
            vstore_result_free(&res);
        }
        free(v);
    } else if (!strcmp(verb, "text")) {
        unsigned inc;
        if (!o->text) {
            fprintf(stderr, "hearth: vstore: text: TEXT is required\n");
            rc = 2;
        } else if (parse_include(o->include, VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS, &inc)) {
            rc = 2;
        } else {
            vstore_result res = {0};
            if (vstore_text_search(db, c.id, o->text, o->k ? (size_t)o->k : 10, o->where,
                                   inc | VSTORE_INC_DISTANCES, &res, &e))
                rc = fail("text", &e);
            else
                print_result(&res, "score");
            vstore_result_free(&res);
        }
    } else {
        fprintf(stderr, "hearth: vstore: unknown verb '%s' (see hearth vstore --help)\n", verb);
        rc = 2;
    }
    vstore_coll_free(&c);
    return rc;
}

int cli_vstore(int argc, char **argv) {
    opts o = {0};
    int st = parse(argc, argv, &o);
    if (st >= 0) return st;
    const char *dir = o.dir, *verb = o.verb;
    base_err e = {0};
    vstore *db = NULL;
    if (vstore_open(&db, dir, &e)) return fail(dir, &e);
    int rc = run(db, verb, &o);
    /* The indexes that changed are saved here, where a failure can be reported (vstore_close
     * cannot). The records are in SQLite either way: the next open replays them. */
    if (vstore_flush(db, &e)) fprintf(stderr, "hearth: vstore: warning: %s\n", e.msg);
    print_notes(db); /* indexes are loaded (and repaired) lazily, during the verb */
    vstore_close(db);
    return rc;
}
