/* rag/eval.c: retrieval evaluation on a BEIR-format set (corpus.jsonl, queries.jsonl,
 * qrels/test.tsv): load the corpus into a collection, run every judged query through the store's
 * BM25 ranking, and score the rankings as trec_eval does (nDCG@10 with the qrels grades as
 * gains, MAP over the top 100, recall@100). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag/rag.h"

typedef struct {
    char *qid, *did;
    int grade;
} qrel;

static int cmp_qrel(const void *a, const void *b) {
    const qrel *x = a, *y = b;
    int c = strcmp(x->qid, y->qid);
    return c ? c : strcmp(x->did, y->did);
}

/* Reads the qrels TSV (query-id, corpus-id, score; an optional header line). */
static int read_qrels(const char *path, qrel **out, size_t *n, base_err *e) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return base_fail(e, BASE_EIO, "%s: cannot open", path);
    char line[4096];
    size_t cap = 0, lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *q = strtok(line, "\t\r\n"), *d = strtok(NULL, "\t\r\n"), *g = strtok(NULL, "\t\r\n");
        if (!q) continue;
        if (lineno == 1 && strcmp(q, "query-id") == 0) continue;
        char *end = NULL;
        long grade = g ? strtol(g, &end, 10) : 0;
        if (!d || !g || *end) {
            rc = base_fail(e, BASE_EFORMAT, "%s:%zu: expected query-id<TAB>corpus-id<TAB>score",
                           path, lineno);
            break;
        }
        if (base_grow(out, &cap, *n + 1, sizeof **out, SIZE_MAX)) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        (*out)[*n] = (qrel){strdup(q), strdup(d), (int)grade};
        if (!(*out)[*n].qid || !(*out)[*n].did) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        (*n)++;
    }
    fclose(f);
    if (!rc) qsort(*out, *n, sizeof **out, cmp_qrel);
    return rc;
}

static void free_qrels(qrel *q, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(q[i].qid);
        free(q[i].did);
    }
    free(q);
}

/* The grade of (qid, did), 0 when not judged. */
static int grade_of(const qrel *q, size_t n, const char *qid, const char *did) {
    qrel key = {(char *)qid, (char *)did, 0};
    const qrel *h = bsearch(&key, q, n, sizeof *q, cmp_qrel);
    return h ? h->grade : 0;
}

static int cmp_int_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int rag_eval_load(vstore *db, const char *coll_id, const char *corpus, rag_eval_progress progress,
                  void *user, size_t *docs, base_err *e) {
    *docs = 0;
    FILE *f = fopen(corpus, "r");
    if (!f) return base_fail(e, BASE_EIO, "%s: cannot open", corpus);
    enum { BATCH = 512 };
    char *ids[BATCH], *texts[BATCH];
    size_t nb = 0, lineno = 0;
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    fseek(f, 0, SEEK_END);
    long total = ftell(f);
    fseek(f, 0, SEEK_SET);
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len <= 1) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        json_t *id = o ? json_object_get(o, "_id") : NULL;
        const char *title = o ? json_string_value(json_object_get(o, "title")) : NULL;
        const char *text = o ? json_string_value(json_object_get(o, "text")) : NULL;
        if (!o || !json_is_object(o) || !(json_is_string(id) || json_is_integer(id)) || !text) {
            rc = base_fail(e, BASE_EFORMAT, "%s:%zu: %s", corpus, lineno,
                           o ? "expected an object with \"_id\" and \"text\"" : je.text);
            json_decref(o);
            break;
        }
        char idbuf[32];
        if (json_is_integer(id))
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
        ids[nb] = strdup(json_is_string(id) ? json_string_value(id) : idbuf);
        size_t tl = title ? strlen(title) : 0, xl = strlen(text);
        texts[nb] = malloc(tl + xl + 2);
        if (!ids[nb] || !texts[nb]) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        if (texts[nb]) { /* a document is its title and its text, as BEIR's BM25 baseline */
            memcpy(texts[nb], title ? title : "", tl);
            texts[nb][tl] = ' ';
            memcpy(texts[nb] + tl + 1, text, xl + 1);
        }
        nb++;
        json_decref(o);
        if (nb == BATCH || rc) {
            vstore_batch b = {
                .n = nb, .ids = (const char *const *)ids, .documents = (const char *const *)texts};
            if (!rc) rc = vstore_write_text(db, coll_id, VSTORE_UPSERT, &b, e);
            if (!rc) *docs += nb;
            for (size_t i = 0; i < nb; i++) free(ids[i]), free(texts[i]);
            nb = 0;
            if (progress) progress(user, (size_t)ftell(f), (size_t)total);
        }
    }
    if (!rc && nb) {
        vstore_batch b = {
            .n = nb, .ids = (const char *const *)ids, .documents = (const char *const *)texts};
        rc = vstore_write_text(db, coll_id, VSTORE_UPSERT, &b, e);
        if (!rc) *docs += nb;
    }
    if (nb)
        for (size_t i = 0; i < nb; i++) free(ids[i]), free(texts[i]);
    free(line);
    fclose(f);
    return rc;
}

int rag_eval_run(vstore *db, const char *coll_id, const char *queries, const char *qrels_path,
                 const char *run_path, rag_eval_metrics *m, base_err *e) {
    memset(m, 0, sizeof *m);
    qrel *qr = NULL;
    size_t nq = 0;
    int rc = read_qrels(qrels_path, &qr, &nq, e);
    if (rc) return rc;
    FILE *f = fopen(queries, "r");
    FILE *run = run_path ? fopen(run_path, "w") : NULL;
    if (!f || (run_path && !run)) {
        rc = base_fail(e, BASE_EIO, "%s: cannot open", !f ? queries : run_path);
        goto out;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int *ideal = NULL;
    size_t ideal_cap = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len <= 1) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        json_t *id = o ? json_object_get(o, "_id") : NULL;
        const char *text = o ? json_string_value(json_object_get(o, "text")) : NULL;
        char qid[256];
        if (json_is_integer(id))
            snprintf(qid, sizeof qid, "%lld", (long long)json_integer_value(id));
        else
            snprintf(qid, sizeof qid, "%s", json_is_string(id) ? json_string_value(id) : "");
        if (!o || !qid[0] || !text) {
            rc = base_fail(e, BASE_EFORMAT, "%s:%zu: %s", queries, lineno,
                           o ? "expected an object with \"_id\" and \"text\"" : je.text);
            json_decref(o);
            break;
        }
        /* the judged documents of the query, grades > 0, best first: the ideal ranking */
        size_t nrel = 0;
        qrel key = {qid, "", 0};
        size_t lo = 0, hi = nq;
        while (lo < hi) { /* first qrel of qid */
            size_t mid = (lo + hi) / 2;
            if (strcmp(qr[mid].qid, key.qid) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo; i < nq && strcmp(qr[i].qid, qid) == 0; i++)
            if (qr[i].grade > 0) {
                if (base_grow(&ideal, &ideal_cap, nrel + 1, sizeof *ideal, SIZE_MAX)) {
                    rc = base_fail(e, BASE_ENOMEM, "out of memory");
                    break;
                }
                ideal[nrel++] = qr[i].grade;
            }
        if (rc || nrel == 0) { /* unjudged queries are not scored (trec_eval's rule) */
            json_decref(o);
            continue;
        }
        qsort(ideal, nrel, sizeof *ideal, cmp_int_desc);
        vstore_result res;
        base_err qe = {0};
        int qrc = vstore_text_search(db, coll_id, text, 100, NULL, 0, &res, &qe);
        if (qrc && qrc != BASE_EINVAL) {
            rc = base_fail(e, qrc, "query %s: %s", qid, qe.msg);
            json_decref(o);
            break;
        }
        if (qrc) memset(&res, 0, sizeof res); /* a query without words: an empty ranking */
        double dcg = 0, idcg = 0, ap = 0;
        size_t hits = 0;
        for (size_t i = 0; i < res.n; i++) {
            int g = grade_of(qr, nq, qid, res.ids[i]);
            if (i < 10 && g > 0) dcg += g / log2((double)i + 2);
            if (g > 0) ap += (double)++hits / (double)(i + 1);
            if (run)
                fprintf(run, "%s Q0 %s %zu %.6f hearth\n", qid, res.ids[i], i + 1,
                        res.distances[i]);
        }
        for (size_t i = 0; i < nrel && i < 10; i++) idcg += ideal[i] / log2((double)i + 2);
        m->ndcg10 += idcg > 0 ? dcg / idcg : 0;
        m->map100 += ap / (double)nrel;
        m->recall100 += (double)hits / (double)nrel;
        m->queries++;
        vstore_result_free(&res);
        json_decref(o);
    }
    free(ideal);
    free(line);
    if (m->queries) {
        m->ndcg10 /= (double)m->queries;
        m->map100 /= (double)m->queries;
        m->recall100 /= (double)m->queries;
    }
out:
    if (f) fclose(f);
    if (run && fclose(run) != 0 && !rc) rc = base_fail(e, BASE_EIO, "%s: write failed", run_path);
    free_qrels(qr, nq);
    return rc;
}
