/* tests/fuzz/fuzz_docs.c: the document parsers of hearth ingest and the chunker after them, and
 * the English analyzer: the input's first byte picks the format by name (txt, md, html, jsonl,
 * docx, pdf), the rest is the file; a parsed document is chunked with a small budget (its
 * chunks must lie inside the text, in order) and every text through vstore_analyze (each term
 * stemmed again, as FTS5 would see a query term). */
#include "fuzz.h"

#include "rag/rag.h"
#include "vstore/analyzer.h"

#include <stdlib.h>
#include <string.h>

static int term(void *ctx, const char *t, size_t n, size_t start, size_t end) {
    size_t len = *(size_t *)ctx;
    if (n == 0 || n > VSTORE_TERM_MAX || start >= end || end > len) abort();
    char w[VSTORE_TERM_MAX + 1];
    memcpy(w, t, n);
    if (vstore_porter_stem(w, n) > n) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"a.txt", "a.md", "a.html", "a.jsonl", "a.docx", "a.pdf"};
    if (size < 1) return 0;
    const char *name = names[data[0] % 6];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    vstore_analyze(VSTORE_AN_ENGLISH, s, n, term, &n);
    rag_doc d;
    base_err e = {0};
    if (rag_parse(name, s, n, NULL, &d, &e)) return 0;
    for (size_t i = 0; i < d.n; i++)
        if (d.blocks[i].start > d.blocks[i].end || d.blocks[i].end > d.text.len) abort();
    rag_chunk_opts o = {24, 6, NULL, NULL};
    rag_chunk *c = NULL;
    size_t nc = 0;
    if (!rag_chunk_doc(&d, &o, &c, &nc, &e)) {
        for (size_t i = 0; i < nc; i++)
            if (c[i].start >= c[i].end || c[i].end > d.text.len ||
                (i && c[i].start < c[i - 1].start))
                abort();
        rag_chunks_free(c, nc);
    }
    size_t tl = d.text.len;
    vstore_analyze(VSTORE_AN_ENGLISH_ALL, d.text.data ? d.text.data : "", tl, term, &tl);
    rag_doc_free(&d);
    return 0;
}
