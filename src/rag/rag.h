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

#endif
