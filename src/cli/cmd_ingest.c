/* cli/cmd_ingest.c: `hearth ingest` — files and directories into a collection of a vector
 * store (src/rag's rag_ingest): options, the progress bar, warnings for skipped files, the
 * summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "embed/embed.h"
#include "rag/rag.h"
#include "tensor/tensor.h"
#include "vstore/analyzer.h"

typedef struct {
    int tty, bar_shown;
    double t0;
    size_t warnings;
} ui;

static void clear_bar(ui *u) {
    if (u->tty && u->bar_shown) fprintf(stderr, "\r\033[K");
    u->bar_shown = 0;
}

static void on_warn(void *user, const char *path, const char *msg) {
    ui *u = user;
    u->warnings++;
    clear_bar(u);
    fprintf(stderr, "hearth ingest: skipped: %s\n", msg);
}

static void on_progress(void *user, const rag_ingest_progress *p) {
    ui *u = user;
    if (!u->tty) return;
    double frac = p->bytes ? (double)p->bytes_done / (double)p->bytes : 1;
    double s = base_now() - u->t0;
    double mbs = s > 0 ? (double)p->bytes_done / 1e6 / s : 0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r\033[K[%s] %5.1f%% %zu/%zu files %.1f/%.1f MB %6.1f MB/s", bar, 100 * frac,
            p->done, p->files, (double)p->bytes_done / 1e6, (double)p->bytes / 1e6, mbs);
    u->bar_shown = 1;
}

int cli_ingest(int argc, char **argv) {
    const char *store = NULL, *coll = NULL, *field = NULL, *analyzer = "english", *emb_path = NULL;
    long threads = 2;
    long max_tokens = RAG_CHUNK_TOKENS, overlap = RAG_CHUNK_OVERLAP;
    int json = 0;
    const cli_opt opts[] = {
        CLI_OPT_STR("store", 0, &store, "DIR", "the vector store (created when missing)"),
        CLI_OPT_STR("collection", 'c', &coll, "NAME", "the collection (created when missing)"),
        CLI_OPT_INT("max-tokens", 0, &max_tokens, 16, 1 << 20, "N",
                    "tokens per chunk (default 256; counted as bytes / 4)"),
        CLI_OPT_INT("overlap", 0, &overlap, 0, 1 << 20, "N",
                    "tokens repeated from the previous chunk of a section\n(default 32)"),
        CLI_OPT_STR("field", 0, &field, "NAME", "the text field of JSONL lines (default text)"),
        CLI_OPT_STR("analyzer", 0, &analyzer, "NAME",
                    "full-text analyzer of a new collection: english\n"
                    "(default), english_all, standard, unicode61"),
        CLI_OPT_STR("embed-model", 'e', &emb_path, "PATH",
                    "embed the chunks with this BERT model (GGUF bert or a\n"
                    "Hugging Face directory): dense + BM25 (hybrid) retrieval;\n"
                    "chunks are counted in its tokens and fit its window"),
        CLI_OPT_INT("threads", 't', &threads, 1, 1024, "N", "embedding threads (default 2)"),
        CLI_OPT_FLAG("json", 0, &json, "print the summary as one JSON object"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "ingest",
        .usage = "usage: hearth ingest --store DIR --collection NAME [options] PATH...",
        .about = "Parses documents and stores their chunks for retrieval (hearth ask, hearth\n"
                 "serve's /v1/chunks and use_context). PATH: files and directories (recursively;\n"
                 "hidden entries skipped). Formats: plain text, Markdown, HTML, PDF (page\n"
                 "numbers kept), DOCX, JSONL. Chunks follow headings, paragraphs and sentences\n"
                 "within --max-tokens, and keep their source, title, heading path, page and\n"
                 "offsets as metadata.",
        .opts = opts,
        .notes = "Incremental: a file whose content is unchanged is skipped, a changed one has\n"
                 "its chunks replaced (one transaction per file), and documents ingested before\n"
                 "from under PATH whose files are gone are removed. A file that cannot be parsed\n"
                 "is reported and skipped."};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (!store || !coll || npos == 0)
        return cli_usage_error(&cmd, "--store, --collection and at least one PATH are required");
    int an = vstore_analyzer_parse(analyzer);
    if (an < 0) return cli_usage_error(&cmd, "--analyzer: unknown '%s'", analyzer);
    base_err e = {0};
    vstore *db = NULL;
    embed_model *em = NULL;
    rag_embedder emb;
    tensor_set_threads((int)threads);
    if (emb_path && embed_model_load(&em, emb_path, &e)) {
        fprintf(stderr, "hearth ingest: %s\n", e.msg);
        return 1;
    }
    if (em) rag_embedder_of_model(em, &emb);
    if (vstore_open(&db, store, &e)) {
        fprintf(stderr, "hearth ingest: %s\n", e.msg);
        embed_model_free(em);
        return 1;
    }
    int rc = 1;
    vstore_coll c = {0};
    if (rag_collection(db, coll, em ? &emb : NULL, an, &c, &e)) {
        fprintf(stderr, "hearth ingest: %s\n", e.msg);
        goto out;
    }
    ui u = {.tty = isatty(STDERR_FILENO), .t0 = base_now()};
    rag_ingest_opts o = {.coll_id = c.id,
                         .chunk = {(size_t)max_tokens, (size_t)overlap, NULL, NULL},
                         .jsonl_field = field,
                         .embedder = em ? &emb : NULL,
                         .progress = on_progress,
                         .warn = on_warn,
                         .user = &u};
    rag_ingest_stats st;
    int r = rag_ingest(db, &o, (const char *const *)argv + 1, (size_t)npos, &st, &e);
    clear_bar(&u);
    double secs = base_now() - u.t0;
    if (r) {
        fprintf(stderr, "hearth ingest: %s\n", e.msg);
    } else {
        if (json)
            printf("{\"files\":%zu,\"added\":%zu,\"updated\":%zu,\"unchanged\":%zu,\"removed\":%zu,"
                   "\"failed\":%zu,\"chunks\":%zu,\"bytes\":%llu,\"seconds\":%.3f}\n",
                   st.files, st.added, st.updated, st.unchanged, st.removed, st.failed, st.chunks,
                   (unsigned long long)st.bytes, secs);
        else
            printf("%zu files: %zu added, %zu updated, %zu unchanged, %zu removed, %zu failed;"
                   " %zu chunks from %.2f MB in %.2f s (%.2f MB/s)\n",
                   st.files, st.added, st.updated, st.unchanged, st.removed, st.failed, st.chunks,
                   (double)st.bytes / 1e6, secs, secs > 0 ? (double)st.bytes / 1e6 / secs : 0);
        rc = 0;
    }
    if (vstore_flush(db, &e)) fprintf(stderr, "hearth ingest: warning: %s\n", e.msg);
out:
    vstore_coll_free(&c);
    vstore_close(db);
    embed_model_free(em);
    return rc;
}
