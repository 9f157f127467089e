/* vstore/fts.c: hearth's FTS5 extensions, registered on each connection the store opens: the
 * tokenizer "hearth" (tokenize='hearth english', see analyzer.h) and the ranking function
 * hearth_bm25(table, k1, b), Lucene's BM25 (Lucene 8+, without the constant (k1 + 1) factor):
 *   score = sum over query terms t of idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
 *   idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
 * N the documents in the table, n(t) those containing t, dl the document's length in terms,
 * avgdl the mean length. Each collection with an analyzer has its own table, so these are the
 * collection's statistics, as in a Lucene index per collection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstore/analyzer.h"
#include "vstore/vstore_int.h"

/* ---- the tokenizer */

typedef struct {
    int analyzer;
} hearth_tok;

static int tok_create(void *ud, const char **args, int nargs, Fts5Tokenizer **out) {
    int a = nargs >= 1 ? vstore_analyzer_parse(args[0]) : VSTORE_AN_ENGLISH;
    if (a < 0 || a == VSTORE_AN_UNICODE61) return SQLITE_ERROR;
    hearth_tok *t = sqlite3_malloc(sizeof *t);
    if (!t) return SQLITE_NOMEM;
    t->analyzer = a;
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *t) {
    sqlite3_free(t);
}

typedef struct {
    void *ctx;
    int (*x)(void *, int, const char *, int, int, int);
} tok_walk;

static int tok_term(void *ctx, const char *term, size_t n, size_t start, size_t end) {
    tok_walk *w = ctx;
    return w->x(w->ctx, 0, term, (int)n, (int)start, (int)end);
}

static int tok_tokenize(Fts5Tokenizer *tk, void *ctx, int flags, const char *text, int n,
                        int (*x)(void *, int, const char *, int, int, int)) {
    hearth_tok *t = (hearth_tok *)tk;
    tok_walk w = {ctx, x};
    return vstore_analyze(t->analyzer, text, n > 0 ? (size_t)n : 0, tok_term, &w);
}

/* ---- Lucene's BM25 */

typedef struct {
    int nphrase;
    double avgdl;
    double *idf; /* nphrase */
} bm25_data;

static void bm25_data_free(void *p) {
    bm25_data *d = p;
    if (d) sqlite3_free(d->idf);
    sqlite3_free(d);
}

static int count_row(const Fts5ExtensionApi *api, Fts5Context *fts, void *ud) {
    (*(sqlite3_int64 *)ud)++;
    return SQLITE_OK;
}

/* The statistics of the query (once per statement: FTS5 keeps them as the function's aux data). */
static int bm25_stats(const Fts5ExtensionApi *api, Fts5Context *fts, bm25_data **out) {
    bm25_data *d = api->xGetAuxdata(fts, 0);
    if (d) {
        *out = d;
        return SQLITE_OK;
    }
    d = sqlite3_malloc(sizeof *d);
    if (!d) return SQLITE_NOMEM;
    memset(d, 0, sizeof *d);
    d->nphrase = api->xPhraseCount(fts);
    d->idf = sqlite3_malloc64(sizeof(double) * (size_t)(d->nphrase > 0 ? d->nphrase : 1));
    sqlite3_int64 N = 0, total = 0;
    int rc = d->idf ? SQLITE_OK : SQLITE_NOMEM;
    if (rc == SQLITE_OK) rc = api->xRowCount(fts, &N);
    if (rc == SQLITE_OK) rc = api->xColumnTotalSize(fts, 0, &total);
    d->avgdl = N > 0 ? (double)total / (double)N : 1.0;
    if (d->avgdl <= 0) d->avgdl = 1.0;
    for (int i = 0; rc == SQLITE_OK && i < d->nphrase; i++) {
        sqlite3_int64 n = 0;
        rc = api->xQueryPhrase(fts, i, &n, count_row);
        d->idf[i] = log(1.0 + ((double)N - (double)n + 0.5) / ((double)n + 0.5));
    }
    if (rc == SQLITE_OK) rc = api->xSetAuxdata(fts, d, bm25_data_free);
    if (rc != SQLITE_OK) {
        if (rc != SQLITE_OK) bm25_data_free(d);
        return rc;
    }
    *out = d;
    return SQLITE_OK;
}

static void bm25_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nval,
                    sqlite3_value **val) {
    double k1 = nval >= 1 ? sqlite3_value_double(val[0]) : 0.9;
    double b = nval >= 2 ? sqlite3_value_double(val[1]) : 0.4;
    bm25_data *d;
    int rc = bm25_stats(api, fts, &d);
    int dl = 0, ninst = 0;
    if (rc == SQLITE_OK) rc = api->xColumnSize(fts, 0, &dl);
    if (rc == SQLITE_OK) rc = api->xInstCount(fts, &ninst);
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    /* term frequencies of this row, per phrase */
    double tfs[64];
    double *tf = d->nphrase <= 64 ? tfs : sqlite3_malloc64(sizeof(double) * (size_t)d->nphrase);
    if (!tf) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    for (int i = 0; i < d->nphrase; i++) tf[i] = 0;
    for (int i = 0; i < ninst; i++) {
        int ph, col, off;
        if (api->xInst(fts, i, &ph, &col, &off) == SQLITE_OK && ph >= 0 && ph < d->nphrase)
            tf[ph] += 1;
    }
    double norm = k1 * (1.0 - b + b * (double)dl / d->avgdl), score = 0;
    for (int i = 0; i < d->nphrase; i++)
        if (tf[i] > 0) score += d->idf[i] * tf[i] / (tf[i] + norm);
    if (tf != tfs) sqlite3_free(tf);
    sqlite3_result_double(ctx, score);
}

int vstore_fts_register(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK) return SQLITE_ERROR;
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
    sqlite3_finalize(st);
    if (!api || api->iVersion < 2) return SQLITE_ERROR;
    fts5_tokenizer tok = {tok_create, tok_delete, tok_tokenize};
    int rc = api->xCreateTokenizer(api, "hearth", NULL, &tok, NULL);
    if (rc == SQLITE_OK) rc = api->xCreateFunction(api, "hearth_bm25", NULL, bm25_fn, NULL);
    return rc;
}

void vstore_fts_table(const vstore_coll *c, char out[VSTORE_FTS_NAME]) {
    if (c->text.analyzer == VSTORE_AN_UNICODE61 || c->text.analyzer == VSTORE_AN_DEFAULT) {
        snprintf(out, VSTORE_FTS_NAME, "fts");
        return;
    }
    /* "fts_" and the UUID's hex digits: an identifier of our own making, safe in SQL text */
    size_t n = 0;
    n += (size_t)snprintf(out, VSTORE_FTS_NAME, "fts_");
    for (const char *s = c->id; *s && n + 1 < VSTORE_FTS_NAME; s++)
        if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))
            out[n++] = *s;
    out[n] = 0;
}

int vstore_text_from_meta(const json_t *meta, vstore_text *out, base_err *e) {
    json_t *a = json_object_get(meta, "hearth:analyzer"),
           *k1 = json_object_get(meta, "hearth:bm25_k1"),
           *b = json_object_get(meta, "hearth:bm25_b");
    if (a) {
        int an = vstore_analyzer_parse(json_string_value(a));
        if (an < 0)
            return base_fail(e, BASE_EINVAL,
                             "hearth:analyzer must be english, english_all, standard or unicode61");
        out->analyzer = an;
    }
    if ((k1 && !json_is_number(k1)) || (b && !json_is_number(b)))
        return base_fail(e, BASE_EINVAL, "hearth:bm25_k1 and hearth:bm25_b must be numbers");
    if (k1 || b) { /* one given: the other keeps Lucene's default */
        out->k1 = k1 ? json_number_value(k1) : 0.9;
        out->b = b ? json_number_value(b) : 0.4;
    }
    return 0;
}
