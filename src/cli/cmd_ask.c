/* cli/cmd_ask.c: `hearth ask` — a question answered from a collection: retrieval (src/rag), the
 * sources put before the model as [1], [2], ... within its context, the answer streamed, then
 * the sources listed (path, page, heading) with those the answer cites marked. Nothing relevant
 * found: it says so, without asking the model. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "embed/embed.h"
#include "infer/infer.h"
#include "rag/rag.h"
#include "server/server.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

/* Tokens of text under the model's vocabulary (rag_count_fn). */
static size_t count_tokens(void *ctx, const char *text, size_t n) {
    tok_ids ids = {0};
    base_err e = {0};
    size_t c = tok_encode(ctx, text, n, 0, &ids, &e) ? (n + 3) / 4 : ids.len;
    tok_ids_free(&ids);
    return c;
}

static void print_sources(const rag_sources *s, size_t used, const bool *cited, int json) {
    if (json) return;
    printf("\nSources:\n");
    if (used == 0) printf("  (none)\n");
    for (size_t i = 0; i < used; i++) {
        base_buf b = {0};
        rag_source_label(&s->s[i], &b);
        printf("[%zu] %s%s\n", i + 1, b.data ? b.data : "", cited && cited[i] ? " (cited)" : "");
        base_buf_free(&b);
    }
}

/* {"answer": ..., "sources": [{"n", "id", "source", "page", "heading", "score", "cited"}]} */
/* Seconds spent embedding the question, retrieving, and to the answer's first token (-1: not
 * done), for --json's "timings". */
typedef struct {
    double embed_s, retrieve_s, ttft_s, total_s;
} timings;

static void print_json(const char *text, const rag_sources *s, size_t used, const bool *cited,
                       const timings *tm) {
    json_t *o = json_object(), *a = json_array();
    if (tm)
        json_object_set_new(o, "timings",
                            json_pack("{s:f,s:f,s:f,s:f}", "embed_ms", 1000 * tm->embed_s,
                                      "retrieve_ms", 1000 * tm->retrieve_s, "first_token_ms",
                                      1000 * tm->ttft_s, "total_ms", 1000 * tm->total_s));
    json_object_set_new(o, "answer", json_string(text));
    for (size_t i = 0; i < used; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "n", json_integer((json_int_t)i + 1));
        json_object_set_new(x, "id", json_string(s->s[i].id));
        if (s->s[i].source) json_object_set_new(x, "source", json_string(s->s[i].source));
        if (s->s[i].page) json_object_set_new(x, "page", json_integer(s->s[i].page));
        if (s->s[i].heading) json_object_set_new(x, "heading", json_string(s->s[i].heading));
        json_object_set_new(x, "score", json_real(s->s[i].score));
        json_object_set_new(x, "cited", json_boolean(cited && cited[i]));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "sources", a);
    char *t = json_dumps(o, JSON_COMPACT);
    printf("%s\n", t ? t : "{}");
    free(t);
    json_decref(o);
}

int cli_ask(int argc, char **argv) {
    const char *store = NULL, *coll = NULL, *model = NULL, *where = NULL, *tmpl_name = NULL,
               *emb_path = NULL, *lora_path = NULL;
    double lora_scale = 1;
    long k = RAG_DEFAULT_K, threads = 2, ctx = 0;
    double min_score = 0;
    int json = 0;
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.max_tokens = 256;
    const cli_opt opts[] = {
        CLI_OPT_STR("store", 0, &store, "DIR", "the vector store"),
        CLI_OPT_STR("collection", 'c', &coll, "NAME", "the collection to answer from"),
        CLI_OPT_STR("model", 'm', &model, "PATH", "the model that answers (as hearth chat)"),
        CLI_OPT_INT("top-k", 'k', &k, 1, 100, "K", "chunks retrieved (default 4)"),
        CLI_OPT_STR("where", 'w', &where, "JSON", "a metadata filter (Chroma's where)"),
        CLI_OPT_STR("embed-model", 'e', &emb_path, "PATH",
                    "the collection's embedding model: hybrid retrieval\n"
                    "(dense + BM25, reciprocal rank fusion) when it holds vectors"),
        CLI_OPT_FLOAT("min-score", 0, &min_score, -1e9, 1e9, "S",
                      "the relevance floor: chunks scoring below S are not\n"
                      "used (BM25 score, or the fused score when hybrid;\n"
                      "default 0)"),
        CLI_OPT_STR("chat-template", 0, &tmpl_name, "T",
                    "a template by llama.cpp's name (default: the model's own)"),
        CLI_OPT_INT("max-tokens", 'n', &sp.max_tokens, 1, 1 << 24, "N",
                    "tokens of the answer at most (default 256)"),
        CLI_SAMPLING_OPTS(sp),
        CLI_OPT_INT("ctx", 0, &ctx, 16, 1 << 24, "N", "context length (default: the model's)"),
        CLI_OPT_INT("threads", 't', &threads, 1, 1024, "N", "compute threads (default 2)"),
        CLI_OPT_FLAG("json", 0, &json, "print the answer and its sources as one JSON object"),
        CLI_LORA_OPTS(&lora_path, &lora_scale),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "ask",
        .usage = "usage: hearth ask --store DIR --collection C --model M [options] QUESTION",
        .about = "Answers QUESTION from the collection's documents (see hearth ingest): the best\n"
                 "chunks (BM25) go before the model as numbered sources, the answer streams,\n"
                 "and the sources follow (path, page, heading; those the answer cites as [n]\n"
                 "are marked). When nothing relevant is found it says so.",
        .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (!store || !coll || !model || npos != 1)
        return cli_usage_error(&cmd,
                               "--store, --collection, --model and one QUESTION are required");
    const char *question = argv[1];
    server_tmpl tmpl = SERVER_TMPL_HEARTH;
    if (tmpl_name && server_tmpl_parse(tmpl_name, &tmpl))
        return cli_usage_error(&cmd, "unknown chat template '%s' (known: %s)", tmpl_name,
                               server_tmpl_names());
    tensor_set_threads((int)threads);
    base_err e = {0};
    vstore *db = NULL;
    vstore_coll c = {0};
    rag_sources src = {0};
    rag_prompt_out pr = {0};
    infer_model *m = NULL;
    infer_sched *s = NULL;
    infer_lora *lora = NULL;
    tok_ids ids = {0};
    bool *cited = NULL;
    embed_model *em = NULL;
    float *qv = NULL;
    int status = 1;
    if (vstore_open(&db, store, &e) || vstore_coll_get(db, NULL, NULL, coll, &c, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    timings tm = {0, 0, -1, 0};
    double t_start = base_now(), t0;
    rag_embedder emb;
    if (emb_path) {
        if (embed_model_load(&em, emb_path, &e)) {
            fprintf(stderr, "hearth ask: %s\n", e.msg);
            goto out;
        }
        rag_embedder_of_model(em, &emb);
    } else if (c.dim) {
        fprintf(stderr,
                "hearth ask: note: '%s' holds vectors; --embed-model PATH makes the"
                " retrieval hybrid (BM25 alone now)\n",
                c.name);
    }
    t0 = base_now();
    if (rag_query_vector(&c, em ? &emb : NULL, question, &qv, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    tm.embed_s = qv ? base_now() - t0 : 0;
    t0 = base_now();
    rag_retrieve_opts ro = {
        .k = (size_t)k, .where = where, .min_score = min_score, .query = qv, .dim = qv ? c.dim : 0};
    if (rag_retrieve(db, c.id, question, &ro, &src, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    tm.retrieve_s = base_now() - t0;
    if (src.n == 0) { /* nothing relevant: said, not invented */
        if (json)
            print_json(RAG_NOTHING_FOUND, &src, 0, NULL, NULL);
        else {
            printf("%s\n", RAG_NOTHING_FOUND);
            print_sources(&src, 0, NULL, json);
        }
        status = 0;
        goto out;
    }
    if (infer_model_load(&m, model, NULL, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    if (cli_lora_load("hearth ask", m, lora_path, lora_scale, &lora)) goto out;
    tok_vocab *v = infer_model_vocab(m);
    if (!tmpl_name) tmpl = (server_tmpl)cli_model_template("hearth ask", m);
    const nn_config *cfg = infer_model_config(m);
    if (!ctx) ctx = cfg->max_seq < INFER_DEFAULT_CTX ? cfg->max_seq : INFER_DEFAULT_CTX;
    if (ctx > cfg->max_seq) ctx = cfg->max_seq;
    long reserve = sp.max_tokens < ctx / 2 ? sp.max_tokens : ctx / 4;
    /* the sources fill what the answer and the template leave; shrunk until the prompt fits */
    long budget = ctx - reserve - 16;
    for (int tries = 0; tries < 8; tries++) {
        rag_prompt_free(&pr);
        if (rag_prompt(&src, question, budget > 0 ? (size_t)budget : 0, count_tokens, v, &pr, &e)) {
            fprintf(stderr, "hearth ask: %s\n", e.msg);
            goto out;
        }
        server_msg msgs[2] = {{"system", pr.system.data}, {"user", pr.user.data}};
        /* the one prompt path of the server and hearth chat */
        ids.len = 0;
        if (server_chat_encode(tmpl, m, msgs, 2, &ids, &e)) {
            fprintf(stderr, "hearth ask: %s\n", e.msg);
            goto out;
        }
        if ((long)ids.len + reserve <= ctx) break;
        budget -= (long)ids.len + reserve - ctx + 8;
    }
    if ((long)ids.len + reserve > ctx || pr.used == 0) {
        fprintf(stderr,
                "hearth ask: the question and its sources do not fit the context (%ld tokens);"
                " a shorter question or --max-tokens may\n",
                ctx);
        goto out;
    }
    infer_sched_opts so = {
        .n_slots = 1, .ctx = (int)ctx, .prefill_chunk = 256, .threads = (int)threads};
    if (infer_sched_create(&s, m, &so, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    const char *tstop = server_tmpl_stop(tmpl);
    if (tstop && sp.n_stop < INFER_MAX_STOP) sp.stop[sp.n_stop++] = tstop;
    /* the JSON answer is printed whole at the end */
    cli_answer a = CLI_ANSWER_INIT;
    a.echo = !json, a.lora = lora;
    if (cli_answer_run(s, ids.data, ids.len, &sp, &a, &e)) {
        fprintf(stderr, "hearth ask: %s\n", e.msg);
        goto out;
    }
    if (a.write_failed || a.last.finish == INFER_FINISH_ERROR) {
        fprintf(stderr, "hearth ask: %s\n",
                a.write_failed ? "writing to stdout failed" : "the forward failed");
        base_buf_free(&a.text);
        goto out;
    }
    cited = calloc(pr.used ? pr.used : 1, sizeof *cited);
    const char *text = a.text.data ? a.text.data : "";
    if (cited) rag_citations(text, pr.used, cited);
    if (json) {
        tm.ttft_s = a.last.ttft_s;
        tm.total_s = base_now() - t_start;
        print_json(text, &src, pr.used, cited, &tm);
    } else {
        printf("\n");
        print_sources(&src, pr.used, cited, json);
    }
    base_buf_free(&a.text);
    status = 0;
out:
    free(cited);
    free(qv);
    embed_model_free(em);
    infer_sched_free(s);
    infer_lora_free(lora);
    infer_model_free(m);
    tok_ids_free(&ids);
    rag_prompt_free(&pr);
    rag_sources_free(&src);
    vstore_coll_free(&c);
    vstore_close(db);
    return status;
}
