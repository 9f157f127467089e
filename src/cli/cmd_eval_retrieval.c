/* cli/cmd_eval_retrieval.c: `hearth eval-retrieval` — BM25 quality on a BEIR-format set: the
 * corpus goes into a collection with the chosen analyzer and BM25 parameters, every judged query
 * is ranked, nDCG@10, MAP@100 and recall@100 printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "rag/rag.h"
#include "vstore/analyzer.h"

static void on_progress(void *user, size_t done, size_t total) {
    if (!*(int *)user || total == 0) return;
    fprintf(stderr, "\rloading corpus %5.1f%%", 100.0 * (double)done / (double)total);
    fflush(stderr);
}

/* Removes the temporary store (its files and index/). */
static void remove_store(const char *dir) {
    char p[4200];
    const char *files[] = {"vstore.db", "vstore.db-wal", "vstore.db-shm", "vstore.reserve"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/index", dir);
    rmdir(p);
    rmdir(dir);
}

int cli_eval_retrieval(int argc, char **argv) {
    const char *corpus = NULL, *queries = NULL, *qrels = NULL, *store = NULL, *analyzer = "english",
               *run = NULL;
    double k1 = 0.9, b = 0.4;
    int json = 0;
    const cli_opt opts[] = {
        CLI_OPT_STR("corpus", 0, &corpus, "FILE",
                    "BEIR corpus.jsonl ({\"_id\", \"title\", \"text\"})"),
        CLI_OPT_STR("queries", 0, &queries, "FILE", "BEIR queries.jsonl ({\"_id\", \"text\"})"),
        CLI_OPT_STR("qrels", 0, &qrels, "FILE",
                    "judgements, TSV: query-id, corpus-id, score (qrels/test.tsv)"),
        CLI_OPT_STR("analyzer", 'a', &analyzer, "NAME",
                    "english (default: Lucene's EnglishAnalyzer), english_all\n"
                    "(stop words kept), standard (lower case only), unicode61\n"
                    "(FTS5's own tokenizer and bm25(), as before analyzers)"),
        CLI_OPT_FLOAT("k1", 0, &k1, 0, 10, "K1", "BM25 k1 (default 0.9, Lucene's)"),
        CLI_OPT_FLOAT("b", 0, &b, 0, 1, "B", "BM25 b (default 0.4, Lucene's)"),
        CLI_OPT_STR("store", 0, &store, "DIR",
                    "keep the store in DIR (default: a temporary one, removed)"),
        CLI_OPT_STR("run", 0, &run, "FILE", "write the rankings as a TREC run file"),
        CLI_OPT_FLAG("json", 0, &json, "print the figures as one JSON object"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "eval-retrieval",
        .usage = "usage: hearth eval-retrieval --corpus FILE --queries FILE --qrels FILE [options]",
        .about = "Measures full-text (BM25) retrieval on a BEIR-format test collection: each\n"
                 "document (title + text) is indexed with the analyzer, each judged query takes\n"
                 "the top 100, and nDCG@10, MAP@100 and recall@100 are printed (trec_eval's\n"
                 "definitions; queries without a relevant judgement are not scored).",
        .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (!corpus || !queries || !qrels)
        return cli_usage_error(&cmd, "--corpus, --queries and --qrels are required");
    int an = vstore_analyzer_parse(analyzer);
    if (an < 0)
        return cli_usage_error(
            &cmd, "--analyzer: unknown '%s' (english, english_all, standard, unicode61)", analyzer);
    char tmp[] = "/tmp/hearth-eval-XXXXXX";
    if (!store) {
        if (!mkdtemp(tmp)) {
            perror("hearth eval-retrieval: mkdtemp");
            return 1;
        }
    }
    const char *dir = store ? store : tmp;
    base_err e = {0};
    vstore *db = NULL;
    int rc = 1;
    if (vstore_open(&db, dir, &e)) {
        fprintf(stderr, "hearth eval-retrieval: %s\n", e.msg);
        goto out;
    }
    char name[64];
    snprintf(name, sizeof name, "eval-%s", vstore_analyzer_name(an));
    vstore_coll c = {0};
    vstore_coll_delete(db, NULL, NULL, name, NULL); /* a rerun in the same store starts afresh */
    vstore_coll_opts co = {.text = {an, k1, b}};
    if (vstore_coll_create(db, NULL, NULL, name, &co, false, &c, &e)) {
        fprintf(stderr, "hearth eval-retrieval: %s\n", e.msg);
        goto out;
    }
    int tty = isatty(STDERR_FILENO);
    size_t docs = 0;
    double t0 = base_now();
    int r = rag_eval_load(db, c.id, corpus, on_progress, &tty, &docs, &e);
    if (tty) fprintf(stderr, "\r\033[K");
    double t1 = base_now();
    rag_eval_metrics m;
    if (!r) r = rag_eval_run(db, c.id, queries, qrels, run, &m, &e);
    double t2 = base_now();
    vstore_coll_free(&c);
    if (r) {
        fprintf(stderr, "hearth eval-retrieval: %s\n", e.msg);
        goto out;
    }
    if (json)
        printf("{\"analyzer\":\"%s\",\"k1\":%g,\"b\":%g,\"documents\":%zu,\"queries\":%zu,"
               "\"ndcg@10\":%.4f,\"map@100\":%.4f,\"recall@100\":%.4f,\"index_s\":%.3f,"
               "\"query_ms\":%.3f}\n",
               vstore_analyzer_name(an), k1, b, docs, m.queries, m.ndcg10, m.map100, m.recall100,
               t1 - t0, m.queries ? 1000 * (t2 - t1) / (double)m.queries : 0);
    else
        printf("analyzer %s (k1 %g, b %g): %zu documents, %zu queries\n"
               "nDCG@10 %.4f  MAP@100 %.4f  recall@100 %.4f\n"
               "indexing %.2f s, %.2f ms per query\n",
               vstore_analyzer_name(an), k1, b, docs, m.queries, m.ndcg10, m.map100, m.recall100,
               t1 - t0, m.queries ? 1000 * (t2 - t1) / (double)m.queries : 0);
    rc = 0;
out:
    vstore_close(db);
    if (!store) remove_store(tmp);
    return rc;
}
