/* rag/rag.h: answers from a company's own documents — evaluation of the retrieval (eval.c),
 * ingestion of files into a collection (parse.c, chunk.c, ingest.c), and retrieval + prompt
 * assembly with citations (answer.c). Built on src/vstore; library code: it prints nothing and
 * reports through base_err. */
#ifndef HEARTH_RAG_H
#define HEARTH_RAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "vstore/vstore.h"

/* ---- retrieval evaluation on a BEIR-format set (eval.c) */

typedef struct {
    size_t queries; /* judged queries scored */
    double ndcg10, map100, recall100;
} rag_eval_metrics;

typedef void (*rag_eval_progress)(void *user, size_t done, size_t total);

/* Adds every document of corpus (BEIR corpus.jsonl: {"_id", "title", "text"}) to the collection
 * as a text-only record whose document is title + " " + text; *docs gets the count. */
int rag_eval_load(vstore *db, const char *coll_id, const char *corpus, rag_eval_progress progress,
                  void *user, size_t *docs, base_err *e);
/* Runs each query of queries (BEIR queries.jsonl) that qrels (TSV: query-id, corpus-id, score)
 * judges through vstore_text_search (top 100) and averages nDCG@10 (gain = grade, log2
 * discount), average precision over the top 100 and recall@100. run_path: when not NULL, the
 * rankings are written there in TREC run format. */
int rag_eval_run(vstore *db, const char *coll_id, const char *queries, const char *qrels,
                 const char *run_path, rag_eval_metrics *m, base_err *e);

/* ---- documents (parse.c) */

enum { RAG_BLOCK_PARA = 0, RAG_BLOCK_HEADING = 1 };

/* A block of a document's text: [start, end) bytes of rag_doc.text; level 1-9 for headings;
 * page from 1 (PDF), 0 when the format has none. */
typedef struct {
    int kind, level, page;
    size_t start, end;
} rag_block;

/* A parsed document: its text (blocks separated by a blank line, white space collapsed), its
 * blocks in order, its title (metadata, the first level-1 heading, or NULL) and format ("txt",
 * "md", "html", "pdf", "docx", "jsonl"). */
typedef struct {
    char *title;
    base_buf text;
    rag_block *blocks;
    size_t n, cap;
    char format[8];
} rag_doc;

/* The format of a file by its first bytes and name, or NULL for an unsupported (binary) one. */
const char *rag_format_of(const char *path, const char *data, size_t len);
/* Parses data (len bytes, the file at path: named in messages and deciding the format).
 * jsonl_field: the text field of JSONL lines (NULL: "text"). BASE_EFORMAT naming the file when
 * it cannot be parsed. */
int rag_parse(const char *path, const char *data, size_t len, const char *jsonl_field, rag_doc *out,
              base_err *e);
void rag_doc_free(rag_doc *d);

/* ---- chunks (chunk.c) */

#define RAG_CHUNK_TOKENS 256 /* default budget without an embedding model */
#define RAG_CHUNK_OVERLAP 32

/* Tokens in text[0..n): the embedding model's count, or rag_count_default (bytes / 4, rounded
 * up: about 4 bytes per token of English). */
typedef size_t (*rag_count_fn)(void *ctx, const char *text, size_t n);
size_t rag_count_default(void *ctx, const char *text, size_t n);

typedef struct {
    size_t max_tokens;  /* 0: RAG_CHUNK_TOKENS */
    size_t overlap;     /* tokens repeated from the previous chunk of the same section */
    rag_count_fn count; /* NULL: rag_count_default */
    void *ctx;
} rag_chunk_opts;

/* A chunk: [start, end) of the document's text, the page it starts on (0: none), its heading
 * path ("H1 > H2", malloc'd, NULL when no heading precedes it), its token count. */
typedef struct {
    size_t start, end;
    int page;
    char *heading;
    size_t tokens;
} rag_chunk;

/* Cuts d into chunks (see chunk.c): headings and pages start a chunk, paragraphs stay whole
 * when they fit, else sentences, else word windows; overlap within a section. *out malloc'd. */
int rag_chunk_doc(const rag_doc *d, const rag_chunk_opts *o, rag_chunk **out, size_t *n,
                  base_err *e);
void rag_chunks_free(rag_chunk *c, size_t n);

/* ---- ingestion (ingest.c) */

/* Dense vectors for chunks: n texts -> n x dim floats (L2-normalized), and the model's token
 * count and window, which bound the chunks. NULL embedder: records are text-only (BM25). */
typedef struct {
    size_t dim, max_tokens;
    const char *name; /* the model's id: the collection's metadata "hearth:embedding_model" */
    int (*embed)(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out,
                 base_err *e);
    rag_count_fn count;
    void *ctx;
} rag_embedder;

/* An embedder over a loaded BERT model of src/embed (texts past its window are cut there). */
typedef struct embed_model embed_model;
void rag_embedder_of_model(const embed_model *m, rag_embedder *out);

/* The collection name, created when missing: with an embedder, cosine distance and its model
 * named in the metadata ("hearth:embedding_model", so the server embeds query_texts too);
 * analyzer: the full-text analyzer of a new collection (VSTORE_AN_*; 0: english). */
int rag_collection(vstore *db, const char *name, const rag_embedder *emb, int analyzer,
                   vstore_coll *out, base_err *e);
/* The question's vector when the collection holds vectors and emb can make them (*q malloc'd,
 * dim floats), else *q NULL: hybrid retrieval or BM25. */
int rag_query_vector(const vstore_coll *c, const rag_embedder *emb, const char *question, float **q,
                     base_err *e);

typedef struct {
    size_t files, done; /* files found, files handled so far */
    uint64_t bytes, bytes_done;
    const char *path; /* the file being handled */
} rag_ingest_progress;

typedef struct {
    const char *coll_id;
    rag_chunk_opts chunk;
    const char *jsonl_field; /* NULL: "text" */
    const rag_embedder *embedder;
    void (*progress)(void *user, const rag_ingest_progress *p);
    void (*warn)(void *user, const char *path, const char *msg); /* a file skipped, and why */
    void *user;
} rag_ingest_opts;

typedef struct {
    size_t files, added, updated, unchanged, removed, failed, chunks;
    uint64_t bytes; /* of the files parsed */
} rag_ingest_stats;

/* Ingests files and directories (recursively, sorted, hidden entries skipped) into the
 * collection. Each file: its content hash (FNV-1a 64) against the one stored with its chunks —
 * unchanged files are skipped, changed ones re-parsed and their chunks replaced in one
 * transaction (vstore_replace), files that fail to parse reported through warn and skipped (the
 * store keeps what it had). Files that were ingested before from under one of the paths and
 * are gone are removed. Chunk ids are "<doc_id>:<n>", doc_id the first 16 hex digits of the
 * source path's FNV-1a 64; each chunk's metadata: source (absolute path), doc_id, file_hash,
 * format, title, heading, page, start, end (byte offsets into the parsed text), chunk (its
 * index), chunks (the count). */
int rag_ingest(vstore *db, const rag_ingest_opts *o, const char *const *paths, size_t n,
               rag_ingest_stats *st, base_err *e);

/* Ingests one document given in memory under the name source (an upload): replaces what was
 * stored under that name. *doc_id (17 bytes) gets its id; *chunks its chunk count. */
int rag_ingest_buffer(vstore *db, const rag_ingest_opts *o, const char *source, const char *data,
                      size_t len, char doc_id[17], size_t *chunks, base_err *e);

/* ---- answering (answer.c) */

#define RAG_DEFAULT_K 4

typedef struct {
    size_t k;           /* chunks to retrieve (0: RAG_DEFAULT_K) */
    const char *where;  /* a metadata filter (Chroma's where), or NULL */
    double min_score;   /* the relevance floor: chunks scoring below it are dropped (BM25 score;
                           with hybrid, the fused reciprocal-rank score) */
    const float *query; /* the question's embedding (dim floats): hybrid retrieval; NULL: BM25 */
    size_t dim;
} rag_retrieve_opts;

/* A retrieved chunk and where it comes from (strings malloc'd; page 0: none). */
typedef struct {
    char *id, *text, *source, *title, *heading, *doc_id, *metadata;
    int page;
    double score;
} rag_source;

typedef struct {
    rag_source *s;
    size_t n;
    bool hybrid; /* the ranking was hybrid (dense + BM25) */
} rag_sources;

/* The best chunks for question, best first, those under the floor left out (none: n = 0). */
int rag_retrieve(vstore *db, const char *coll_id, const char *question, const rag_retrieve_opts *o,
                 rag_sources *out, base_err *e);
void rag_sources_free(rag_sources *s);
/* "path, page 3, "Heading > Sub"" appended to b. */
void rag_source_label(const rag_source *s, base_buf *b);

/* The answer when nothing relevant was found: said, not invented (no model call). */
extern const char *const RAG_NOTHING_FOUND;

typedef struct {
    base_buf system; /* instructions and the numbered sources */
    base_buf user;   /* the question */
    size_t used;     /* sources that fit (the first `used` of them, the last maybe cut) */
} rag_prompt_out;

/* The messages for the model: a system message with the sources numbered [1]..[n] (each with
 * its label) and the instruction to cite them and to say so when they do not hold the answer,
 * then the question. Sources are added best first while the count of both messages stays within
 * budget tokens (count: the model's tokenizer; NULL: rag_count_default). */
int rag_prompt(const rag_sources *s, const char *question, size_t budget, rag_count_fn count,
               void *ctx, rag_prompt_out *out, base_err *e);
void rag_prompt_free(rag_prompt_out *p);

/* Which sources the answer cites ([1], [2, 3], [1][2]): cited[i] for source i + 1; returns how
 * many distinct sources are cited. Numbers outside 1..n_sources are ignored. */
size_t rag_citations(const char *answer, size_t n_sources, bool *cited);

#endif
