/* rag/answer.c: retrieval for a question (hybrid when the collection has vectors and a query
 * vector is given, BM25 otherwise; where filter, k, a relevance floor), the prompt that puts the
 * retrieved chunks before the model as numbered sources [1], [2], ... within a token budget, and
 * the citations an answer makes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag/rag.h"

void rag_sources_free(rag_sources *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        rag_source *x = &s->s[i];
        free(x->id);
        free(x->text);
        free(x->source);
        free(x->title);
        free(x->heading);
        free(x->doc_id);
        free(x->metadata);
    }
    free(s->s);
    memset(s, 0, sizeof *s);
}

static char *dup_str(json_t *m, const char *key) {
    const char *v = json_string_value(json_object_get(m, key));
    return v ? strdup(v) : NULL;
}

int rag_retrieve(vstore *db, const char *coll_id, const char *question, const rag_retrieve_opts *o,
                 rag_sources *out, base_err *e) {
    memset(out, 0, sizeof *out);
    size_t k = o->k ? o->k : RAG_DEFAULT_K;
    vstore_result r;
    int rc;
    unsigned inc = VSTORE_INC_DOCUMENTS | VSTORE_INC_METADATAS;
    if (o->query && o->dim) {
        vstore_hybrid_req h = {.query = o->query,
                               .dim = o->dim,
                               .text = question,
                               .k = k,
                               .where = o->where,
                               .include = inc};
        rc = vstore_hybrid(db, coll_id, &h, &r, e);
        out->hybrid = true;
    } else {
        rc = vstore_text_search(db, coll_id, question, k, o->where, inc, &r, e);
        /* a question without searchable words finds nothing; that is an answer, not an error */
        if (rc == BASE_EINVAL && strstr(e->msg, "no words")) {
            memset(&r, 0, sizeof r);
            rc = 0;
        }
    }
    if (rc) return rc;
    out->s = calloc(r.n ? r.n : 1, sizeof *out->s);
    if (!out->s) {
        vstore_result_free(&r);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r.n; i++) {
        if (r.distances[i] < o->min_score) continue; /* the relevance floor */
        rag_source *x = &out->s[out->n++];
        json_t *m = r.metadatas[i] ? json_loads(r.metadatas[i], 0, NULL) : NULL;
        x->id = strdup(r.ids[i]);
        x->text = strdup(r.documents[i] ? r.documents[i] : "");
        x->source = dup_str(m, "source");
        x->title = dup_str(m, "title");
        x->heading = dup_str(m, "heading");
        x->doc_id = dup_str(m, "doc_id");
        x->page = (int)json_integer_value(json_object_get(m, "page"));
        x->score = r.distances[i];
        x->metadata = r.metadatas[i] ? strdup(r.metadatas[i]) : NULL;
        json_decref(m);
        if (!x->id || !x->text || (r.metadatas[i] && !x->metadata)) {
            vstore_result_free(&r);
            rag_sources_free(out);
            return base_fail(e, BASE_ENOMEM, "out of memory");
        }
    }
    vstore_result_free(&r);
    return 0;
}

void rag_source_label(const rag_source *s, base_buf *b) {
    base_buf_printf(b, "%s", s->source ? s->source : s->id);
    if (s->page) base_buf_printf(b, ", page %d", s->page);
    if (s->heading) base_buf_printf(b, ", \"%s\"", s->heading);
}

const char *const RAG_NOTHING_FOUND =
    "I could not find anything about this in the documents, so I cannot answer from them.";

int rag_prompt(const rag_sources *s, const char *question, size_t budget, rag_count_fn count,
               void *ctx, rag_prompt_out *out, base_err *e) {
    memset(out, 0, sizeof *out);
    if (!count) count = rag_count_default;
    static const char head[] =
        "Answer the question using only the numbered sources below. After each statement, "
        "cite the sources it comes from as [1], [2]. If the sources do not contain the answer, "
        "say that you do not know; do not make one up.\n\nSources:\n";
    base_buf *sys = &out->system;
    base_buf_append(sys, head, sizeof head - 1);
    size_t used = count(ctx, head, sizeof head - 1) + count(ctx, question, strlen(question));
    for (size_t i = 0; i < s->n; i++) {
        base_buf one = {0};
        base_buf_printf(&one, "\n[%zu] (", i + 1);
        rag_source_label(&s->s[i], &one);
        base_buf_printf(&one, ")\n");
        size_t lt = count(ctx, one.data, one.len),
               tt = count(ctx, s->s[i].text, strlen(s->s[i].text));
        if (used + lt + tt > budget) {
            /* what room is left takes the head of this source (cut at a space), then stop */
            size_t room = budget > used + lt ? budget - used - lt : 0;
            size_t n = strlen(s->s[i].text);
            size_t keep = room >= 16 ? n * room / (tt ? tt : 1) : 0;
            while (keep > 0 && keep < n && s->s[i].text[keep] != ' ') keep--;
            if (keep > 0) {
                base_buf_append(sys, one.data, one.len);
                base_buf_append(sys, s->s[i].text, keep);
                base_buf_append(sys, " ...\n", 5);
                out->used++;
            }
            base_buf_free(&one);
            break;
        }
        base_buf_append(sys, one.data, one.len);
        base_buf_append(sys, s->s[i].text, strlen(s->s[i].text));
        base_buf_append(sys, "\n", 1);
        used += lt + tt;
        out->used++;
        base_buf_free(&one);
    }
    base_buf_printf(&out->user, "%s", question);
    if (sys->failed || out->user.failed) {
        rag_prompt_free(out);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    return 0;
}

void rag_prompt_free(rag_prompt_out *p) {
    base_buf_free(&p->system);
    base_buf_free(&p->user);
    memset(p, 0, sizeof *p);
}

size_t rag_citations(const char *answer, size_t n_sources, bool *cited) {
    size_t count = 0;
    for (size_t i = 0; i < n_sources; i++) cited[i] = false;
    for (const char *p = answer; (p = strchr(p, '[')); p++) {
        /* [1], [2, 3], [1][2] */
        const char *q = p + 1;
        for (;;) {
            size_t v = 0, digits = 0;
            while (*q >= '0' && *q <= '9' && digits < 6)
                v = v * 10 + (size_t)(*q++ - '0'), digits++;
            if (!digits) break;
            if (v >= 1 && v <= n_sources && !cited[v - 1]) {
                cited[v - 1] = true;
                count++;
            }
            while (*q == ' ') q++;
            if (*q != ',') break;
            q++;
            while (*q == ' ') q++;
        }
    }
    return count;
}
