/* rag/chunk.c: a parsed document -> chunks within a token budget that follow its structure.
 * The document is cut into units: a heading, a paragraph that fits the budget, else its
 * sentences, else (a sentence over the budget) windows of words. Units are packed in order
 * into chunks of at most max_tokens; a heading and a new page always start a new chunk (so a
 * chunk has one heading path and one page), and a chunk that continues a section starts with
 * the last units of the previous one, up to `overlap` tokens. A chunk is a byte range of the
 * document's text, so its offsets are exact. */
#include <stdlib.h>
#include <string.h>

#include "rag/rag.h"

size_t rag_count_default(void *ctx, const char *text, size_t n) {
    (void)ctx;
    return (n + 3) / 4; /* about 4 bytes per token in English (OpenAI's rule of thumb) */
}

typedef struct {
    size_t start, end, tokens;
    int page;
    bool boundary; /* a chunk must start here (a heading, a new page, a new block's section) */
    int heading;   /* the index of the heading block whose section this is, -1 none */
} unit;

typedef struct {
    unit *u;
    size_t n, cap;
} units;

static int push(units *us, unit x) {
    if (base_grow(&us->u, &us->cap, us->n + 1, sizeof *us->u, SIZE_MAX)) return BASE_ENOMEM;
    us->u[us->n++] = x;
    return 0;
}

/* The end of the sentence that starts at i (before end): after . ! ? (and closing quotes or
 * brackets) followed by white space, or end. */
static size_t sentence_end(const char *t, size_t i, size_t end) {
    for (; i < end; i++) {
        char c = t[i];
        if (c == '.' || c == '!' || c == '?') {
            size_t j = i + 1;
            while (j < end && (t[j] == '"' || t[j] == '\'' || t[j] == ')' || t[j] == ']')) j++;
            if (j >= end) return end;
            if (t[j] == ' ') return j;
        }
    }
    return end;
}

/* Splits [s, e) into units of at most max tokens: sentences, and word windows for longer ones. */
static int split_block(const rag_doc *d, const rag_chunk_opts *o, size_t s, size_t e, int page,
                       int heading, bool boundary, units *us) {
    const char *t = d->text.data;
    size_t i = s;
    while (i < e) {
        size_t j = sentence_end(t, i, e);
        size_t tok = o->count(o->ctx, t + i, j - i);
        if (tok <= o->max_tokens) {
            int rc = push(us, (unit){i, j, tok, page, boundary, heading});
            if (rc) return rc;
            boundary = false;
        } else { /* a sentence over the budget: words, greedily */
            size_t a = i;
            while (a < j) {
                size_t b = a, last = a;
                while (b < j) {
                    size_t w = b;
                    while (w < j && t[w] != ' ') w++;
                    if (last > a && o->count(o->ctx, t + a, w - a) > o->max_tokens) break;
                    last = w;
                    b = w < j ? w + 1 : w;
                }
                if (last == a) last = b; /* a single word over the budget stays whole */
                int rc = push(us, (unit){a, last, o->count(o->ctx, t + a, last - a), page, boundary,
                                         heading});
                if (rc) return rc;
                boundary = false;
                a = last;
                while (a < j && t[a] == ' ') a++;
            }
        }
        i = j;
        while (i < e && t[i] == ' ') i++;
    }
    return 0;
}

void rag_chunks_free(rag_chunk *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) free(c[i].heading);
    free(c);
}

/* "H1 > H2 > H3": the headings above block index b (the stack at that point). */
static char *heading_path(const rag_doc *d, int b) {
    if (b < 0) return NULL;
    int stack[10] = {0};
    int have[10] = {0};
    for (int i = 0; i <= b; i++) {
        const rag_block *k = &d->blocks[i];
        if (k->kind != RAG_BLOCK_HEADING) continue;
        int lv = k->level < 1 ? 1 : k->level > 9 ? 9 : k->level;
        stack[lv] = i;
        have[lv] = 1;
        for (int j = lv + 1; j < 10; j++) have[j] = 0;
    }
    base_buf p = {0};
    for (int lv = 1; lv < 10; lv++) {
        if (!have[lv]) continue;
        const rag_block *k = &d->blocks[stack[lv]];
        if (p.len) base_buf_append(&p, " > ", 3);
        base_buf_append(&p, d->text.data + k->start, k->end - k->start);
    }
    if (p.failed) {
        base_buf_free(&p);
        return NULL;
    }
    return p.data;
}

int rag_chunk_doc(const rag_doc *d, const rag_chunk_opts *opts, rag_chunk **out, size_t *nout,
                  base_err *e) {
    *out = NULL;
    *nout = 0;
    rag_chunk_opts o = *opts;
    if (!o.count) o.count = rag_count_default;
    if (o.max_tokens == 0) o.max_tokens = RAG_CHUNK_TOKENS;
    if (o.overlap >= o.max_tokens) o.overlap = o.max_tokens / 2;
    units us = {0};
    int rc = 0, heading = -1, page = -1;
    for (size_t b = 0; b < d->n && !rc; b++) {
        const rag_block *k = &d->blocks[b];
        bool boundary = k->page != page;
        page = k->page;
        if (k->kind == RAG_BLOCK_HEADING) {
            heading = (int)b;
            /* a heading right under another one ("# Guide" then "## Start") joins it: a
             * chunk of headings alone would hold nothing to find */
            bool under_heading = b > 0 && d->blocks[b - 1].kind == RAG_BLOCK_HEADING &&
                                 d->blocks[b - 1].page == k->page;
            boundary = boundary || !under_heading;
        }
        rc = split_block(d, &o, k->start, k->end, k->page, heading, boundary, &us);
    }
    rag_chunk *c = NULL;
    size_t nc = 0, cap = 0;
    size_t a = 0;
    while (!rc && a < us.n) {
        /* pack units [a, b) */
        size_t tok = us.u[a].tokens, b = a + 1;
        while (b < us.n && !us.u[b].boundary && tok + us.u[b].tokens <= o.max_tokens)
            tok += us.u[b++].tokens;
        if (base_grow(&c, &cap, nc + 1, sizeof *c, SIZE_MAX)) {
            rc = BASE_ENOMEM;
            break;
        }
        c[nc] = (rag_chunk){us.u[a].start, us.u[b - 1].end, us.u[a].page, NULL, tok};
        c[nc].heading = heading_path(d, us.u[b - 1].heading);
        nc++;
        if (b >= us.n) break;
        /* the next chunk: from b, or (within a section) back over the last units of this one
         * that fit the overlap, never back to a itself */
        size_t next = b;
        if (!us.u[b].boundary && o.overlap) {
            size_t ov = 0;
            while (next > a + 1 && ov + us.u[next - 1].tokens <= o.overlap &&
                   ov + us.u[next - 1].tokens + us.u[b].tokens <= o.max_tokens)
                ov += us.u[--next].tokens;
        }
        a = next;
    }
    free(us.u);
    if (rc) {
        rag_chunks_free(c, nc);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    *out = c;
    *nout = nc;
    return 0;
}
