/* server/http.c: the HTTP side of `hearth serve` — libmicrohttpd daemon, routing, API keys,
 * bounded request bodies, deadlines for a request's arrival (a reaper thread closes connections
 * that trickle), the background model load, and the bridge between a request and the
 * scheduler: a `gen` per generation that the scheduler's callback fills and the connection's
 * thread drains (whole, or as server-sent events), cancelling the sequence as soon as the
 * client's socket hangs up. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "server/rag_api.h"
#include "server/server.h"
#include "tensor/tensor.h"

#include "vstore/vstore.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* How often a waiting connection thread looks at its socket and at shutdown: the bound on how
 * long a vanished client keeps its slot. */
#define WAIT_TICK_MS 20
#define STREAM_BLOCK 4096
/* How often the reaper looks for connections past their headers or body deadline. */
#define REAP_TICK_MS 100
/* A refused request's body is read and thrown away up to this many bytes, so that the client
 * (which sends its whole body before reading) gets the answer: closing a socket with unread
 * data resets the connection, and the client sees "connection reset" instead of the 413. */
#define DISCARD_MAX ((uint64_t)64 << 20)

/* One TCP connection (libmicrohttpd's socket context), listed so the reaper can close one whose
 * request takes too long to arrive. Guarded by server.sock_mu; the fd is shut down only under
 * that mutex, and the entry leaves the list (NOTIFY_CLOSED) before libmicrohttpd closes the fd,
 * so the reaper never touches a reused descriptor. */
enum { SOCK_HEADERS, SOCK_BODY, SOCK_BUSY };
typedef struct sock {
    struct sock *prev, *next;
    int fd;
    int phase;    /* SOCK_HEADERS: waiting for a request's line and headers; SOCK_BODY: for its
                     body; SOCK_BUSY: answering (no deadline of ours) */
    double since; /* base_now() when the phase began */
    int cut;      /* shut down by the reaper */
} sock;

/* An adapter served over the model (--lora NAME=PATH[:SCALE]). */
typedef struct served_lora {
    server_lora o; /* its name and path are copies, ours */
    infer_lora *a; /* once the model is loaded */
} served_lora;

struct server {
    server_opts o;
    char *host, *api_key, *model_path, *tokenizer, *model_id, *tmpl_name, *vstore_dir;
    char *rag_coll;   /* rag_api's collection */
    char *model_file; /* the model path's last component: a request may name it too */
    struct MHD_Daemon *d;
    int port;
    atomic_int state, stopping;
    pthread_t loader;
    int loader_started;
    base_err load_err;
    infer_model *model; /* set before state becomes SERVER_READY; constant after */
    int n_lora;         /* --lora NAME=PATH[:SCALE] */
    served_lora *lora;  /* (n_lora) */
    infer_sched *sched;
    server_tmpl tmpl;
    int ctx, n_vocab;
    size_t tok_bytes_max;   /* server_token_bytes_max of the model's vocabulary */
    pthread_mutex_t tok_mu; /* tok_encode uses scratch inside the vocabulary */
    vstore *vs;
    server_embedder *emb; /* --embed-model: /v1/embeddings, the vector store's embedder */
    pthread_mutex_t met_mu;
    server_metrics met;
    pthread_mutex_t sock_mu; /* guards socks; reap_cv wakes the reaper to stop */
    pthread_cond_t reap_cv;
    sock *socks;
    pthread_t reaper;
    int reaper_started;
    atomic_ullong next_id;
    uint64_t salt;
    long long created;
};

/* One line to the operator's log (server_opts.log), if there is one. */
static void server_log(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void server_log(server *s, const char *fmt, ...) {
    if (!s->o.log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_ud, line);
}

void server_opts_default(server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->slots = 4;
    o->queue = 64;
    o->prefill_chunk = 64;
    o->body_limit = 1 << 20;
    o->header_limit = 32 << 10;
    o->timeout_s = 30;
    o->max_conns = 256;
    o->max_conns_per_ip = 64;
    o->header_timeout_s = 10;
    o->body_timeout_s = 60;
}

/* ---- per-request state */

enum route {
    R_NONE,
    R_HEALTH,
    R_METRICS,
    R_MODELS,
    R_MODEL,
    R_COMPLETIONS,
    R_CHAT,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_VSTORE,
    R_RAG,
    R_EMBEDDINGS
};

/* One HTTP request (libmicrohttpd's per-request context). */
typedef struct conn {
    char *query; /* raw query string after '?', or NULL */
    int started, responded;
    int chroma; /* under /api/v2: errors in Chroma's shape */
    enum route route;
    char *body;
    size_t len, cap;
    /* an error decided before the body was read (401, 404, 405, 413): answered once the body
     * has been read and thrown away (dropped bytes, at most DISCARD_MAX) */
    int refused;
    server_error refusal;
    const char *allow; /* 405: the methods the path accepts */
    uint64_t dropped;
} conn;

/* One generation, shared by the connection thread and the scheduler thread: refs counts the
 * two sides; the last to let go frees it. */
typedef struct gen {
    server *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    base_buf pending; /* text not yet taken by the connection (valid UTF-8) */
    int done;
    infer_finish finish;
    char error[512]; /* INFER_FINISH_ERROR: the engine's message */
    int prompt_tokens, completion_tokens;
    atomic_int cancel; /* returned to the scheduler from the callback */
    uint64_t sched_id;
    /* scheduler thread only */
    double t_arrival, t_last;
    int n_text;
    /* connection thread only */
    int fd;
    server_req req;
    tok_ids ids;
    char id[48];
    server_meta meta;
    int role_sent, finished_sent;
    base_buf out;
    size_t out_off;
    rag_api_ctx rag; /* use_context: what retrieval gave (rag_api.h) */
} gen;

static void count_status(server *s, int status) {
    pthread_mutex_lock(&s->met_mu);
    if (status >= 0 && status < (int)(sizeof s->met.requests / sizeof s->met.requests[0]))
        s->met.requests[status]++;
    pthread_mutex_unlock(&s->met_mu);
}

/* ---- replies */

static enum MHD_Result reply(server *s, struct MHD_Connection *c, conn *k, int status,
                             const char *ctype, char *body, const char *extra_name,
                             const char *extra_value) {
    static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                        "\"param\":null,\"code\":null}}";
    struct MHD_Response *r;
    if (body) {
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    } else {
        status = 500;
        ctype = "application/json";
        r = MHD_create_response_from_buffer(strlen(oom), oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (extra_name) MHD_add_response_header(r, extra_name, extra_value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (k) k->responded = 1;
    count_status(s, status);
    return ok;
}

static enum MHD_Result reply_json(server *s, struct MHD_Connection *c, conn *k, int status,
                                  json_t *o) {
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return reply(s, c, k, status, "application/json", body, NULL, NULL);
}

/* An error in the shape of the route's API: Chroma's under /api/v2, else OpenAI's. */
static enum MHD_Result reply_error(server *s, struct MHD_Connection *c, conn *k,
                                   const server_error *er) {
    const char *hname = NULL, *hval = NULL;
    if (er->status == 429 || er->status == 503) hname = MHD_HTTP_HEADER_RETRY_AFTER, hval = "1";
    if (er->status == 405 && k && k->allow) hname = MHD_HTTP_HEADER_ALLOW, hval = k->allow;
    char *body = k && k->chroma ? server_error_json_chroma(er) : server_error_json(er);
    return reply(s, c, k, er->status, "application/json", body, hname, hval);
}

/* ---- model state */

/* 0 if the model can serve; else -1 with the error to answer. */
static int need_model(server *s, server_error *er) {
    switch (atomic_load(&s->state)) {
    case SERVER_READY:
        return 0;
    case SERVER_LOADING:
        return server_fail(er, 503, NULL, "model_loading",
                           "the model is still loading; retry shortly");
    case SERVER_FAILED:
        return server_fail(er, 503, NULL, "model_load_failed", "the model failed to load: %s",
                           s->load_err.msg);
    default:
        return server_fail(er, 404, NULL, "model_not_found",
                           "this server has no model (start hearth serve with --model)");
    }
}

static void *load_main(void *arg) {
    server *s = arg;
    infer_model *m = NULL;
    infer_sched *sc = NULL;
    base_err *e = &s->load_err;
    if (infer_model_load(&m, s->model_path, s->tokenizer, e)) goto fail;
    const nn_config *cfg = infer_model_config(m);
    int ctx = s->o.ctx                           ? s->o.ctx
              : cfg->max_seq < INFER_DEFAULT_CTX ? cfg->max_seq
                                                 : INFER_DEFAULT_CTX;
    if (ctx > cfg->max_seq) {
        base_fail(e, BASE_EINVAL, "--ctx %d is longer than the model's maximum sequence (%d)", ctx,
                  cfg->max_seq);
        goto fail;
    }
    int unknown = 0;
    server_tmpl t = server_tmpl_of_model(m, &unknown);
    if (s->tmpl_name && server_tmpl_parse(s->tmpl_name, &t)) {
        base_fail(e, BASE_EINVAL, "unknown chat template '%s' (%s)", s->tmpl_name,
                  server_tmpl_names());
        goto fail;
    }
    if (unknown && !s->tmpl_name)
        server_log(s, "the model's chat template (tokenizer.chat_template) is not one hearth "
                      "recognizes (nor would llama.cpp): chats use chatml, llama.cpp's fallback; "
                      "--chat-template NAME chooses another");
    for (int i = 0; i < s->n_lora; i++) {
        base_err le;
        if (infer_lora_load(&s->lora[i].a, m, s->lora[i].o.path, s->lora[i].o.scale, &le)) {
            base_fail(e, le.code, "adapter '%s': %s", s->lora[i].o.name, le.msg);
            goto fail;
        }
        int rank;
        float alpha;
        int n_mats;
        size_t bytes;
        infer_lora_info(s->lora[i].a, &rank, &alpha, &n_mats, &bytes);
        server_log(s, "adapter '%s': %s (rank %d, alpha %g, scale %g, %d matrices, %.1f MB)",
                   s->lora[i].o.name, s->lora[i].o.path, rank, (double)alpha,
                   (double)s->lora[i].o.scale, n_mats, (double)bytes / 1e6);
    }
    infer_sched_opts so = {.n_slots = s->o.slots,
                           .ctx = ctx,
                           .max_queue = s->o.queue,
                           .prefill_chunk = s->o.prefill_chunk,
                           .threads = s->o.threads,
                           .max_rows = s->o.max_rows,
                           .kv_type = s->o.kv_type};
    if (infer_sched_create(&sc, m, &so, e)) goto fail;
    s->model = m;
    s->sched = sc;
    s->tmpl = t;
    s->ctx = ctx;
    s->n_vocab = tok_vocab_size(infer_model_vocab(m));
    s->tok_bytes_max = server_token_bytes_max(infer_model_vocab(m));
    atomic_store(&s->state, SERVER_READY);
    return NULL;
fail:
    for (int i = 0; i < s->n_lora; i++) infer_lora_free(s->lora[i].a), s->lora[i].a = NULL;
    infer_model_free(m);
    atomic_store(&s->state, SERVER_FAILED);
    return NULL;
}

/* ---- generation */

static void gen_unref(gen *g) {
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    base_buf_free(&g->pending);
    base_buf_free(&g->out);
    server_req_free(&g->req);
    tok_ids_free(&g->ids);
    rag_api_ctx_free(&g->rag);
    free(g);
}

/* The scheduler's callback (its thread): text is queued for the connection, DONE records the
 * outcome and the latency metrics. */
static int on_event(void *ud, const infer_event *ev) {
    gen *g = ud;
    server *s = g->s;
    double now = base_now();
    if (ev->kind == INFER_EV_TEXT) {
        if (g->n_text++ > 0) {
            pthread_mutex_lock(&s->met_mu);
            server_hist_observe(&s->met.itl, now - g->t_last);
            pthread_mutex_unlock(&s->met_mu);
        }
        g->t_last = now;
        pthread_mutex_lock(&g->mu);
        server_utf8_clean(&g->pending, ev->text, ev->len);
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        return atomic_load(&g->cancel);
    }
    pthread_mutex_lock(&s->met_mu);
    if (ev->finish != INFER_FINISH_CANCELLED && ev->finish != INFER_FINISH_ERROR) {
        if (ev->completion_tokens > 0) server_hist_observe(&s->met.ttft, ev->ttft_s);
        server_hist_observe(&s->met.queue, ev->queue_s);
        server_hist_observe(&s->met.e2e, now - g->t_arrival);
    }
    s->met.prompt_tokens += (uint64_t)(ev->prompt_tokens > 0 ? ev->prompt_tokens : 0);
    s->met.generation_tokens += (uint64_t)(ev->completion_tokens > 0 ? ev->completion_tokens : 0);
    pthread_mutex_unlock(&s->met_mu);
    if (ev->finish == INFER_FINISH_ERROR) {
        snprintf(g->error, sizeof g->error, "%s", ev->error ? ev->error : "unknown error");
        server_log(s, "generation %s failed inside the engine: %s", g->id, g->error);
    }
    pthread_mutex_lock(&g->mu);
    g->done = 1;
    g->finish = ev->finish;
    g->prompt_tokens = ev->prompt_tokens;
    g->completion_tokens = ev->completion_tokens;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gen_unref(g);
    return 0;
}

/* The peer closed its end (or the socket failed): nobody will read the answer. */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void gen_cancel(gen *g) {
    atomic_store(&g->cancel, 1);
    infer_sched_cancel(g->s->sched, g->sched_id);
}

/* Waits until g has text or is done: 0, or -1 (after cancelling it) if the client went away or
 * the server is stopping, or 1 when max_s seconds passed without news (max_s <= 0: no limit).
 * Called with g->mu held; returns with it held. */
static int gen_wait_locked(gen *g, double max_s) {
    double t0 = base_now();
    while (!g->pending.len && !g->done) {
        if (max_s > 0 && base_now() - t0 >= max_s) return 1;
        if (atomic_load(&g->s->stopping) || client_gone(g->fd)) {
            pthread_mutex_unlock(&g->mu);
            gen_cancel(g);
            pthread_mutex_lock(&g->mu);
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WAIT_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    return 0;
}

static void add_event(gen *g, char *json) {
    if (!json) {
        g->out.failed = 1;
        return;
    }
    server_sse_event(&g->out, json);
    free(json);
}

/* libmicrohttpd's content reader for a streamed answer: SSE events built from the text the
 * scheduler queued; blocks (this connection's thread only) while none is there. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    gen *g = cls;
    if (g->out_off >= g->out.len) {
        if (g->finished_sent) return MHD_CONTENT_READER_END_OF_STREAM;
        g->out.len = g->out_off = 0;
        pthread_mutex_lock(&g->mu);
        /* A request waiting in the queue sends nothing for a while; libmicrohttpd would close
         * the connection as idle after --timeout. An SSE comment (ignored by clients) keeps it
         * alive, at half the timeout and at least every 10 s for proxies. */
        double keepalive = g->s->o.timeout_s / 2.0;
        if (keepalive > 10) keepalive = 10;
        int w = gen_wait_locked(g, keepalive);
        if (w < 0) {
            pthread_mutex_unlock(&g->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (w > 0) {
            pthread_mutex_unlock(&g->mu);
            server_sse_comment(&g->out, "keep-alive");
            if (g->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
            return stream_read(cls, pos, buf, max);
        }
        base_buf text = g->pending;
        memset(&g->pending, 0, sizeof g->pending);
        int done = g->done;
        pthread_mutex_unlock(&g->mu);
        const server_meta *m = &g->meta;
        int usage_null = g->req.include_usage;
        if (m->ep == SERVER_EP_CHAT && !g->role_sent) {
            add_event(g, server_json_chunk(m, 1, "", 0, NULL, usage_null));
            g->role_sent = 1;
        }
        if (text.len) add_event(g, server_json_chunk(m, 0, text.data, text.len, NULL, usage_null));
        base_buf_free(&text);
        if (done) {
            if (g->finish == INFER_FINISH_ERROR) {
                server_error er;
                server_fail(&er, 500, NULL, NULL, "generation failed inside the engine: %s",
                            g->error);
                add_event(g, server_error_json(&er));
            } else {
                add_event(g, rag_api_with_sources(server_json_chunk(m, 0, NULL, 0,
                                                                    server_finish_name(g->finish),
                                                                    usage_null),
                                                  g->rag.sources));
                if (g->req.include_usage)
                    add_event(g,
                              server_json_usage_chunk(m, g->prompt_tokens, g->completion_tokens));
            }
            server_sse_event(&g->out, "[DONE]");
            g->finished_sent = 1;
        }
        if (g->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = g->out.len - g->out_off;
    if (n > max) n = max;
    memcpy(buf, g->out.data + g->out_off, n);
    g->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    gen *g = cls;
    pthread_mutex_lock(&g->mu);
    int done = g->done;
    pthread_mutex_unlock(&g->mu);
    if (!done) gen_cancel(g);
    gen_unref(g);
}

/* What a request's model names: 0 this server's model (its id — the file stem, or
 * --model-name — or the model path's last component, qwen2.5-0.5b-instruct.gguf), i + 1 its
 * adapter i (--lora NAME=PATH), -1 nothing served here. */
static int serves(const server *s, const char *name) {
    if (!strcmp(name, s->model_id) || (s->model_file && !strcmp(name, s->model_file))) return 0;
    for (int i = 0; i < s->n_lora; i++)
        if (!strcmp(name, s->lora[i].o.name)) return i + 1;
    return -1;
}

/* 404 model_not_found naming what this server serves (the model, then its adapters). */
static int no_such_model(server *s, server_error *er, const char *name) {
    char list[512];
    size_t n = (size_t)snprintf(list, sizeof list, "'%.200s'", s->model_id);
    for (int i = 0; i < s->n_lora && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, ", '%.100s'", s->lora[i].o.name);
    return server_fail(er, 404, "model", "model_not_found",
                       "The model '%.200s' does not exist; this server serves %s", name, list);
}

static int encode_prompt(server *s, gen *g, server_error *er) {
    server_req *r = &g->req;
    base_err e = {0};
    int rc = 0;
    if (r->prompt_ids) {
        for (size_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= s->n_vocab)
                return server_fail(er, 400, "prompt", "invalid_value",
                                   "prompt token %zu is %d, outside the vocabulary (%d tokens)", i,
                                   r->prompt_ids[i], s->n_vocab);
        for (size_t i = 0; i < r->n_prompt_ids && !rc; i++)
            rc = tok_ids_push(&g->ids, r->prompt_ids[i]);
    } else {
        /* No token covers more than tok_bytes_max bytes of the text, so a prompt that cannot
         * fit even at that best is refused without tokenizing it (a 900 KB prompt would hold
         * the tokenizer's lock for every other request meanwhile). */
        size_t bytes = 0;
        if (r->ep == SERVER_EP_CHAT)
            for (size_t i = 0; i < r->n_msgs; i++) bytes += strlen(r->msgs[i].content);
        else
            bytes = strlen(r->prompt);
        size_t least = g->ids.len + (bytes + s->tok_bytes_max - 1) / s->tok_bytes_max;
        if (least >= (size_t)s->ctx)
            return server_fail(er, 400, r->ep == SERVER_EP_CHAT ? "messages" : "prompt",
                               "context_length_exceeded",
                               "This model's maximum context length is %d tokens. However, your "
                               "prompt is at least %zu tokens (%zu bytes of text; no token of "
                               "this model is longer than %zu bytes), leaving no room for the "
                               "completion.",
                               s->ctx, least, bytes, s->tok_bytes_max);
        pthread_mutex_lock(&s->tok_mu);
        if (!rc) {
            /* one prompt path (infer_prompt_encode) for both: BOS as the model's tokenizer says,
             * special-token text parsed as llama.cpp's server does */
            if (r->ep == SERVER_EP_CHAT)
                rc = server_chat_encode(s->tmpl, s->model, r->msgs, r->n_msgs, &g->ids, &e);
            else
                rc = infer_prompt_encode(s->model, r->prompt, strlen(r->prompt), &g->ids, &e);
        }
        pthread_mutex_unlock(&s->tok_mu);
    }
    if (rc) return server_fail(er, 500, NULL, NULL, "tokenizing the prompt failed: %s", e.msg);
    if (g->ids.len == 0)
        return server_fail(er, 400, "prompt", "invalid_value", "the prompt is empty");
    size_t n = g->ids.len;
    if (n >= (size_t)s->ctx)
        return server_fail(er, 400, r->ep == SERVER_EP_CHAT ? "messages" : "prompt",
                           "context_length_exceeded",
                           "This model's maximum context length is %d tokens. However, your "
                           "prompt is %zu tokens, leaving no room for the completion.",
                           s->ctx, n);
    if (r->max_tokens_set && n + (size_t)r->sp.max_tokens > (size_t)s->ctx)
        return server_fail(er, 400, "max_tokens", "context_length_exceeded",
                           "This model's maximum context length is %d tokens. However, you "
                           "requested %zu tokens (%zu in the prompt, %d for the completion).",
                           s->ctx, n + (size_t)r->sp.max_tokens, n, r->sp.max_tokens);
    return 0;
}

static enum MHD_Result handle_generate(server *s, struct MHD_Connection *c, conn *k,
                                       server_endpoint ep, double t_arrival) {
    server_error er;
    if (need_model(s, &er)) return reply_error(s, c, k, &er);
    gen *g = calloc(1, sizeof *g);
    if (!g) return reply(s, c, k, 500, "application/json", NULL, NULL, NULL);
    pthread_mutex_init(&g->mu, NULL);
    /* waits are timed on the monotonic clock: a wall-clock step must not stall them */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->s = s;
    g->refs = 1;
    g->t_arrival = t_arrival;
    enum MHD_Result res;
    if (server_req_parse(&g->req, ep, k->body ? k->body : "", k->len, &er)) goto fail;
    server_req *r = &g->req;
    int which = r->model ? serves(s, r->model) : 0;
    if (which < 0) {
        no_such_model(s, &er, r->model);
        goto fail;
    }
    const infer_lora *lora = which > 0 ? s->lora[which - 1].a : NULL; /* NULL: the base */
    /* use_context: retrieved sources go before the model (within what the answer leaves) */
    size_t room = (size_t)s->ctx - (r->max_tokens_set && r->sp.max_tokens < s->ctx / 2
                                        ? (size_t)r->sp.max_tokens
                                        : (size_t)s->ctx / 4);
    if (rag_api_context(s->vs, s->rag_coll, s->emb, k->body ? k->body : "", k->len, r,
                        infer_model_vocab(s->model), &s->tok_mu, room > 64 ? room - 64 : 0, &g->rag,
                        &er))
        goto fail;
    if (!g->rag.nothing && encode_prompt(s, g, &er)) goto fail;
    const char *ts = ep == SERVER_EP_CHAT ? server_tmpl_stop(s->tmpl) : NULL;
    _Static_assert(API_MAX_STOP < INFER_MAX_STOP, "room for the template's stop");
    if (ts) r->sp.stop[r->sp.n_stop++] = ts;
    if (!r->seed_set) {
        base_rng rng;
        base_rng_seed(&rng, s->salt ^ atomic_fetch_add(&s->next_id, 1) * 0x9E3779B97F4A7C15ull);
        r->sp.seed = base_rng_u64(&rng);
    }
    unsigned long long n = atomic_fetch_add(&s->next_id, 1);
    snprintf(g->id, sizeof g->id, "%s-%08llx%012llx", ep == SERVER_EP_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)(s->salt & 0xffffffffu), n);
    g->meta = (server_meta){.ep = ep,
                            .id = g->id,
                            .model = which > 0 ? s->lora[which - 1].o.name : s->model_id,
                            .created = time(NULL)};
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->fd = ci ? ci->connect_fd : -1;
    if (g->rag.nothing) { /* nothing relevant: said so, without the model */
        res = reply(s, c, k, 200, r->stream ? "text/event-stream" : "application/json",
                    rag_api_nothing_found(&g->meta, r->stream, r->include_usage, g->rag.sources),
                    NULL, NULL);
        gen_unref(g);
        return res;
    }
    base_err e = {0};
    g->refs = 2; /* the scheduler's callback may run before submit returns */
    int rc = infer_sched_submit(s->sched, g->ids.data, g->ids.len, &r->sp, lora, on_event, g,
                                &g->sched_id, &e);
    if (rc) {
        g->refs = 1;
        if (rc == INFER_EFULL)
            server_fail(&er, 429, NULL, "queue_full",
                        "the server is at capacity (every slot busy and the queue full); retry "
                        "shortly");
        else if (rc == BASE_EINVAL) /* the context was checked above: a sampling setting */
            server_fail(&er, 400, NULL, "invalid_value", "%s", e.msg);
        else
            server_fail(&er, 500, NULL, NULL, "the scheduler refused the request: %s", e.msg);
        goto fail;
    }
    if (r->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, g, stream_free);
        if (!resp) {
            gen_cancel(g);
            gen_unref(g);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        res = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        k->responded = 1;
        count_status(s, 200);
        return res;
    }
    /* non-streaming: this connection's thread waits for the whole answer */
    base_buf text = {0};
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (gen_wait_locked(g, 0)) break;
        if (g->pending.len) { /* already clean: the event callback cleaned it */
            base_buf_append(&text, g->pending.data, g->pending.len);
            g->pending.len = 0;
        }
        if (g->done) break;
    }
    int done = g->done;
    infer_finish fin = g->finish;
    int pt = g->prompt_tokens, ct = g->completion_tokens;
    pthread_mutex_unlock(&g->mu);
    if (!done) { /* the client left or the server stops: nobody to answer */
        base_buf_free(&text);
        gen_unref(g);
        return MHD_NO;
    }
    if (fin == INFER_FINISH_ERROR || text.failed) {
        base_buf_free(&text);
        server_fail(&er, 500, NULL, NULL, "generation failed inside the engine: %s",
                    text.failed ? "out of memory for the answer" : g->error);
        goto fail;
    }
    char *body = rag_api_with_sources(
        server_json_response(&g->meta, text.data ? text.data : "", text.len, fin, pt, ct),
        g->rag.sources);
    base_buf_free(&text);
    gen_unref(g);
    return reply(s, c, k, 200, "application/json", body, NULL, NULL);
fail:
    res = reply_error(s, c, k, &er);
    gen_unref(g);
    return res;
}

/* ---- the other routes */

static json_t *model_json(server *s) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model", "created",
                          (json_int_t)s->created, "owned_by", "hearth");
    if (o && atomic_load(&s->state) == SERVER_READY) {
        json_object_set_new(o, "meta",
                            json_pack("{s:s,s:i,s:i,s:s}", "family",
                                      infer_model_weights(s->model)->hp.arch, "n_ctx", s->ctx,
                                      "n_vocab", s->n_vocab, "chat_template",
                                      server_tmpl_name(s->tmpl)));
    }
    return o;
}

/* Adapter i's entry of /v1/models: vLLM's fields for a LoRA module (parent: the base's id,
 * root: the adapter's path), and what it is. */
static json_t *lora_json(server *s, int i) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "id", s->lora[i].o.name, "object", "model",
                          "created", (json_int_t)s->created, "owned_by", "hearth", "parent",
                          s->model_id, "root", s->lora[i].o.path);
    if (o && atomic_load(&s->state) == SERVER_READY) {
        int rank, n_mats;
        float alpha;
        infer_lora_info(s->lora[i].a, &rank, &alpha, &n_mats, NULL);
        json_object_set_new(o, "meta",
                            json_pack("{s:s,s:s,s:i,s:f,s:f,s:i}", "kind", "lora", "base",
                                      s->model_id, "rank", rank, "alpha", (double)alpha, "scale",
                                      (double)s->lora[i].o.scale, "n_matrices", n_mats));
    }
    return o;
}

/* The model and its adapters, as /v1/models lists them. */
static json_t *models_json(server *s) {
    json_t *list = json_array();
    json_array_append_new(list, model_json(s));
    for (int i = 0; i < s->n_lora; i++) json_array_append_new(list, lora_json(s, i));
    return list;
}

/* The embedding model's entry of /v1/models. */
static json_t *embed_model_json(server *s) {
    const embed_model *m = server_embedder_model(s->emb);
    return json_pack("{s:s,s:s,s:I,s:s,s:{s:s,s:i,s:i}}", "id", server_embedder_id(s->emb),
                     "object", "model", "created", (json_int_t)s->created, "owned_by", "hearth",
                     "meta", "kind", "embedding", "n_embd", embed_dim(m), "n_ctx",
                     embed_max_tokens(m));
}

static enum MHD_Result handle_models(server *s, struct MHD_Connection *c, conn *k,
                                     const char *url) {
    server_error er;
    if (s->emb) { /* the embedding model beside the generation model (if any) */
        const char *id = url + strlen("/v1/models/");
        if (k->route == R_MODEL && !strcmp(id, server_embedder_id(s->emb)))
            return reply_json(s, c, k, 200, embed_model_json(s));
        if (k->route == R_MODELS) {
            json_t *list = s->model_id ? models_json(s) : json_array();
            json_array_append_new(list, embed_model_json(s));
            return reply_json(s, c, k, 200, json_pack("{s:s,s:o}", "object", "list", "data", list));
        }
    }
    if (!s->model_id) {
        if (k->route == R_MODELS)
            return reply_json(s, c, k, 200, json_pack("{s:s,s:[]}", "object", "list", "data"));
        server_fail(&er, 404, "model", "model_not_found", "this server has no model");
        return reply_error(s, c, k, &er);
    }
    if (k->route == R_MODELS)
        return reply_json(s, c, k, 200,
                          json_pack("{s:s,s:o}", "object", "list", "data", models_json(s)));
    const char *id = url + strlen("/v1/models/");
    int which = serves(s, id);
    if (which < 0) {
        no_such_model(s, &er, id);
        return reply_error(s, c, k, &er);
    }
    return reply_json(s, c, k, 200, which > 0 ? lora_json(s, which - 1) : model_json(s));
}

static enum MHD_Result handle_health(server *s, struct MHD_Connection *c, conn *k) {
    server_error er;
    int st = atomic_load(&s->state);
    if (st == SERVER_READY || st == SERVER_NO_MODEL)
        return reply_json(s, c, k, 200, json_pack("{s:s}", "status", "ok"));
    need_model(s, &er);
    return reply_error(s, c, k, &er);
}

static enum MHD_Result handle_metrics(server *s, struct MHD_Connection *c, conn *k) {
    infer_sched_stats st = {0};
    int n_slots = 0;
    if (atomic_load(&s->state) == SERVER_READY) {
        infer_sched_get_stats(s->sched, &st);
        n_slots = s->o.slots;
    }
    base_buf b = {0};
    pthread_mutex_lock(&s->met_mu);
    server_metrics_text(&s->met, st.busy_slots, st.queued, n_slots, &b);
    pthread_mutex_unlock(&s->met_mu);
    if (b.failed) base_buf_free(&b);
    return reply(s, c, k, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, NULL, NULL);
}

static json_t *parse_body(conn *k, server_error *er) {
    json_error_t je;
    json_t *o = json_loadb(k->body ? k->body : "", k->len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        server_fail(er, 400, NULL, "invalid_json",
                    "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        server_fail(er, 400, NULL, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

static enum MHD_Result handle_tokenize(server *s, struct MHD_Connection *c, conn *k) {
    server_error er;
    if (need_model(s, &er)) return reply_error(s, c, k, &er);
    json_t *o = parse_body(k, &er), *content = o ? json_object_get(o, "content") : NULL;
    if (!o) return reply_error(s, c, k, &er);
    json_t *as = json_object_get(o, "add_special"), *wp = json_object_get(o, "with_pieces"),
           *ps = json_object_get(o, "parse_special");
    if (!json_is_string(content) || (as && !json_is_boolean(as)) || (wp && !json_is_boolean(wp)) ||
        (ps && !json_is_boolean(ps))) {
        json_decref(o);
        server_fail(&er, 400, "content", "invalid_type",
                    "/tokenize takes {\"content\": STRING, \"add_special\": BOOL, "
                    "\"with_pieces\": BOOL, \"parse_special\": BOOL}");
        return reply_error(s, c, k, &er);
    }
    tok_vocab *v = infer_model_vocab(s->model);
    tok_ids ids = {0};
    base_err e = {0};
    int rc = 0;
    /* add_special: a GGUF model's BOS/EOS as its file says (llama-server's /tokenize); a
     * hearth-trained model's document start (BOS, else the end-of-text token) */
    int32_t start = tok_bos_id(v) >= 0 ? tok_bos_id(v) : tok_eot_id(v);
    int hearth = infer_model_nn(s->model) != NULL;
    if (json_is_true(as) && hearth && start >= 0) rc = tok_ids_push(&ids, start);
    pthread_mutex_lock(&s->tok_mu);
    if (!rc)
        rc = tok_encode(v, json_string_value(content), json_string_length(content),
                        (json_is_true(ps) ? TOK_ENCODE_SPECIAL : 0) |
                            (json_is_true(as) && !hearth ? TOK_ENCODE_ADD_SPECIAL : 0),
                        &ids, &e);
    pthread_mutex_unlock(&s->tok_mu);
    json_decref(o);
    json_t *arr = json_array();
    for (size_t i = 0; !rc && arr && i < ids.len; i++) {
        json_t *item = json_integer(ids.data[i]);
        if (json_is_true(wp)) {
            const char *t;
            size_t len;
            base_buf piece = {0};
            if (tok_token_text(v, ids.data[i], &t, &len, &e) == 0)
                server_utf8_clean(&piece, t, len);
            item = json_pack("{s:o,s:s}", "id", item, "piece", piece.data ? piece.data : "");
            base_buf_free(&piece);
        }
        json_array_append_new(arr, item);
    }
    tok_ids_free(&ids);
    if (rc) {
        json_decref(arr);
        server_fail(&er, 500, NULL, NULL, "tokenizing failed: %s", e.msg);
        return reply_error(s, c, k, &er);
    }
    return reply_json(s, c, k, 200, json_pack("{s:o}", "tokens", arr));
}

static enum MHD_Result handle_detokenize(server *s, struct MHD_Connection *c, conn *k) {
    server_error er;
    if (need_model(s, &er)) return reply_error(s, c, k, &er);
    json_t *o = parse_body(k, &er);
    if (!o) return reply_error(s, c, k, &er);
    json_t *arr = json_object_get(o, "tokens");
    if (!json_is_array(arr)) {
        json_decref(o);
        server_fail(&er, 400, "tokens", "invalid_type",
                    "/detokenize takes {\"tokens\": [INTEGER, ...]}");
        return reply_error(s, c, k, &er);
    }
    size_t n = json_array_size(arr);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; ids && i < n; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) >= s->n_vocab) {
            free(ids);
            json_decref(o);
            server_fail(&er, 400, "tokens", "invalid_value",
                        "tokens[%zu] is not a token id of this vocabulary (0 to %d)", i,
                        s->n_vocab - 1);
            return reply_error(s, c, k, &er);
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    json_decref(o);
    char *text = NULL;
    size_t len = 0;
    base_err e = {0};
    int rc =
        ids ? tok_decode(infer_model_vocab(s->model), ids, n, 0, &text, &len, &e) : BASE_ENOMEM;
    free(ids);
    if (rc) {
        server_fail(&er, 500, NULL, NULL, "detokenizing failed: %s", e.msg);
        return reply_error(s, c, k, &er);
    }
    base_buf b = {0};
    server_utf8_clean(&b, text, len);
    free(text);
    json_t *out = b.failed ? NULL : json_pack("{s:s}", "content", b.data);
    base_buf_free(&b);
    return reply_json(s, c, k, 200, out);
}

static enum MHD_Result handle_vstore(server *s, struct MHD_Connection *c, conn *k, const char *url,
                                     const char *method) {
    int status = 500;
    char *resp = NULL;
    vstore_http(s->vs, method, url, k->query, k->body ? k->body : "", k->len, &status, &resp);
    if (status < 100 || status > 599) status = 500;
    if (!resp) {
        server_error er;
        server_fail(&er, 500, NULL, NULL, "the vector store gave no answer");
        return reply_error(s, c, k, &er);
    }
    return reply(s, c, k, status, "application/json", resp, NULL, NULL);
}

static enum MHD_Result handle_embeddings(server *s, struct MHD_Connection *c, conn *k) {
    server_error er;
    if (!s->emb) {
        server_fail(&er, 404, "model", "model_not_found",
                    "this server has no embedding model (hearth serve --embed-model PATH)");
        return reply_error(s, c, k, &er);
    }
    int status = 500;
    char *resp = NULL;
    server_embeddings(s->emb, k->body, k->len, &status, &resp);
    return reply(s, c, k, status, "application/json", resp, NULL, NULL);
}

/* ---- routing */

static int is_chroma_path(const char *url) {
    return !strcmp(url, "/api/v2") || !strncmp(url, "/api/v2/", 8);
}

/* The route of (url, method); *allow gets the methods the path accepts when the method is
 * wrong (R_NONE with *allow set: 405; R_NONE without: 404). */
static enum route route_of(server *s, const char *url, const char *method, const char **allow) {
    static const struct {
        const char *path, *method;
        enum route r;
    } table[] = {{"/health", "GET", R_HEALTH},
                 {"/v1/health", "GET", R_HEALTH},
                 {"/metrics", "GET", R_METRICS},
                 {"/v1/models", "GET", R_MODELS},
                 {"/v1/completions", "POST", R_COMPLETIONS},
                 {"/v1/chat/completions", "POST", R_CHAT},
                 {"/tokenize", "POST", R_TOKENIZE},
                 {"/detokenize", "POST", R_DETOKENIZE},
                 {"/v1/embeddings", "POST", R_EMBEDDINGS},
                 {"/embeddings", "POST", R_EMBEDDINGS}};
    *allow = NULL;
    if (s->vs && is_chroma_path(url)) return R_VSTORE;
    if (s->vs && rag_api_route(url)) return R_RAG;
    if (!strncmp(url, "/v1/models/", 11) && url[11]) {
        if (!strcmp(method, "GET")) return R_MODEL;
        *allow = "GET";
        return R_NONE;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(url, table[i].path) != 0) continue;
        if (!strcmp(method, table[i].method)) return table[i].r;
        *allow = table[i].method;
        return R_NONE;
    }
    return R_NONE;
}

/* Constant-time comparison: the key's bytes must not leak through response timing. */
static int key_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < nb; i++) d |= (unsigned char)(a[i % (na ? na : 1)] ^ b[i]);
    return d == 0;
}

/* By path alone, before routing: without the key, no route or method is told apart (a 404 or
 * 405 would say which exist). /health is open to probes. */
static int authorized(server *s, struct MHD_Connection *c, const char *url) {
    if (!s->api_key || !strcmp(url, "/health") || !strcmp(url, "/v1/health")) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && !strncasecmp(h, "Bearer ", 7) && key_equal(h + 7, s->api_key)) return 1;
    /* Chroma's clients send their token in this header */
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Chroma-Token");
    return is_chroma_path(url) && t && key_equal(t, s->api_key);
}

/* Content-Length headers: libmicrohttpd reads the body by the first one. Two that differ, or one
 * beside Transfer-Encoding, frame the body ambiguously (request smuggling through a proxy that
 * reads the other one). */
typedef struct framing {
    int n_cl, conflict, te;
    uint64_t cl;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    framing *f = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) f->te = 1;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0) return MHD_YES;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value ? value : "", &end, 10);
    int ok = value && value[0] >= '0' && value[0] <= '9' && !*end && errno == 0;
    if (!ok || (f->n_cl && v != f->cl)) f->conflict = 1;
    f->cl = v;
    f->n_cl++;
    return MHD_YES;
}

/* 1 when the client sent `Expect: 100-continue`: it waits for a go-ahead before its body, so a
 * refusal is best answered at once. */
static int expects_continue(struct MHD_Connection *c) {
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return x && !strcasecmp(x, "100-continue");
}

/* The connection's entry for the reaper, moved to a new phase. */
static void sock_phase(server *s, struct MHD_Connection *c, int phase) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    sock *q = ci ? ci->socket_context : NULL;
    if (!q) return;
    pthread_mutex_lock(&s->sock_mu);
    q->phase = phase;
    q->since = base_now();
    pthread_mutex_unlock(&s->sock_mu);
}

/* The first call, with the headers: framing, the key, the route and the declared size, in that
 * order. A refusal waits for the body to be read (and thrown away) unless the client waits for
 * 100-continue or declared more than DISCARD_MAX bytes; ambiguous framing is answered at once
 * (where the body ends is unknown), and libmicrohttpd closes the connection after an answer
 * given before the body. */
static enum MHD_Result on_headers(server *s, struct MHD_Connection *c, conn *k, const char *url,
                                  const char *method) {
    server_error *er = &k->refusal;
    framing f = {0};
    k->chroma = is_chroma_path(url);
    MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header, &f);
    if (f.conflict || (f.n_cl && f.te)) {
        server_fail(er, 400, NULL, "invalid_request",
                    f.conflict ? "the request has Content-Length headers that disagree"
                               : "the request has both Content-Length and Transfer-Encoding");
        return reply_error(s, c, k, er);
    }
    const char *allow = NULL;
    if (!authorized(s, c, url)) {
        server_fail(er, 401, NULL, "invalid_api_key",
                    "missing or incorrect API key: send 'Authorization: Bearer KEY'");
    } else if ((k->route = route_of(s, url, method, &allow)) == R_NONE) {
        if (!allow)
            server_fail(er, 404, NULL, "not_found", "no route %s %.200s", method, url);
        else
            server_fail(er, 405, NULL, "method_not_allowed", "%s %.200s is not allowed (use %s)",
                        method, url, allow);
        k->allow = allow;
    } else if (f.n_cl && f.cl > s->o.body_limit) {
        server_fail(er, 413, NULL, "request_too_large",
                    "the request body is %llu bytes; this server accepts at most %zu",
                    (unsigned long long)f.cl, s->o.body_limit);
    } else {
        return MHD_YES;
    }
    k->refused = 1;
    if (expects_continue(c) || (f.n_cl && f.cl > DISCARD_MAX)) return reply_error(s, c, k, er);
    return MHD_YES;
}

/* A piece of the body: kept, or thrown away once refused. 0, or -1 to drop the connection (a
 * refused body beyond DISCARD_MAX: an answer cannot be queued in the middle of an upload). */
static int on_body(server *s, conn *k, const char *p, size_t n) {
    if (!k->refused && n > s->o.body_limit - k->len) { /* chunked, and now over the limit */
        server_fail(&k->refusal, 413, NULL, "request_too_large",
                    "the request body is over %zu bytes; this server accepts at most %zu",
                    s->o.body_limit, s->o.body_limit);
        k->refused = 1;
        k->dropped = k->len;
        free(k->body);
        k->body = NULL;
        k->len = k->cap = 0;
    }
    if (k->refused) {
        k->dropped += n;
        return k->dropped <= DISCARD_MAX ? 0 : -1;
    }
    if (base_grow(&k->body, &k->cap, k->len + n + 1, 1, s->o.body_limit + 1)) /* +1: NUL */
        return -1;
    memcpy(k->body + k->len, p, n);
    k->len += n;
    k->body[k->len] = 0;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    server *s = cls;
    conn *k = *con_cls;
    if (!k) return MHD_NO; /* the URI callback could not allocate */
    if (k->responded) {    /* answered before the body (e.g. ambiguous framing): drop the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (!k->started) {
        k->started = 1;
        sock_phase(s, c, SOCK_BODY);
        return on_headers(s, c, k, url, method);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return on_body(s, k, upload, n) ? MHD_NO : MHD_YES;
    }
    sock_phase(s, c, SOCK_BUSY);
    if (k->refused) return reply_error(s, c, k, &k->refusal);
    double t_arrival = base_now();
    switch (k->route) {
    case R_HEALTH:
        return handle_health(s, c, k);
    case R_METRICS:
        return handle_metrics(s, c, k);
    case R_MODELS:
    case R_MODEL:
        return handle_models(s, c, k, url);
    case R_COMPLETIONS:
        return handle_generate(s, c, k, SERVER_EP_COMPLETIONS, t_arrival);
    case R_CHAT:
        return handle_generate(s, c, k, SERVER_EP_CHAT, t_arrival);
    case R_TOKENIZE:
        return handle_tokenize(s, c, k);
    case R_DETOKENIZE:
        return handle_detokenize(s, c, k);
    case R_VSTORE:
        return handle_vstore(s, c, k, url, method);
    case R_RAG: {
        int status = 500;
        char *resp = NULL;
        rag_api_http(s->vs, s->rag_coll, s->emb, method, url,
                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
                     k->body ? k->body : "", k->len, &status, &resp);
        return reply(s, c, k, status, "application/json", resp, NULL, NULL);
    }
    case R_EMBEDDINGS:
        return handle_embeddings(s, c, k);
    default:
        return MHD_NO;
    }
}

/* Called with the raw request line's URI before anything else: keeps the undecoded query
 * string (the vector store parses its own), and creates the per-request context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    conn *k = calloc(1, sizeof *k);
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (k && q) k->query = strdup(q + 1);
    return k;
}

/* The request is over (answered, or the connection failed): a kept-alive connection waits for
 * its next request's headers, under the headers deadline again. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    sock_phase(cls, c, SOCK_HEADERS);
    conn *k = *con_cls;
    if (!k) return;
    free(k->query);
    free(k->body);
    free(k);
    *con_cls = NULL;
}

/* ---- connection deadlines */

/* libmicrohttpd's connection notifications: every connection is listed from accept to close. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        sock *q = ci ? calloc(1, sizeof *q) : NULL;
        if (!q) return; /* out of memory: this connection has the idle timeout only */
        q->fd = ci->connect_fd;
        q->phase = SOCK_HEADERS;
        q->since = base_now();
        pthread_mutex_lock(&s->sock_mu);
        q->next = s->socks;
        if (s->socks) s->socks->prev = q;
        s->socks = q;
        pthread_mutex_unlock(&s->sock_mu);
        *socket_context = q;
        return;
    }
    sock *q = *socket_context; /* MHD_CONNECTION_NOTIFY_CLOSED: before the fd is closed */
    if (!q) return;
    pthread_mutex_lock(&s->sock_mu);
    if (q->prev)
        q->prev->next = q->next;
    else
        s->socks = q->next;
    if (q->next) q->next->prev = q->prev;
    pthread_mutex_unlock(&s->sock_mu);
    free(q);
    *socket_context = NULL;
}

/* The reaper: closes a connection whose request line and headers, or body, take longer than
 * their deadline. libmicrohttpd's own timeout restarts with every byte, so a client sending a
 * header line every few seconds would hold its connection (and, many times over, every
 * connection) forever. shutdown() wakes the connection's thread, which sees the end of input
 * and closes it. */
static void *reap_main(void *arg) {
    server *s = arg;
    pthread_mutex_lock(&s->sock_mu);
    while (!atomic_load(&s->stopping)) {
        double now = base_now();
        for (sock *q = s->socks; q; q = q->next) {
            unsigned limit = q->phase == SOCK_HEADERS ? s->o.header_timeout_s
                             : q->phase == SOCK_BODY  ? s->o.body_timeout_s
                                                      : 0;
            if (limit && !q->cut && now - q->since >= limit) {
                shutdown(q->fd, SHUT_RDWR);
                q->cut = 1;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += REAP_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->reap_cv, &s->sock_mu, &ts);
    }
    pthread_mutex_unlock(&s->sock_mu);
    return NULL;
}

/* ---- lifecycle */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* The id clients name: --model-name, else the path's last component without .safetensors or
 * .gguf (the file stem, as Ollama and llama-server list it); stem 0: the component whole. */
static char *model_id_of(const char *path, int stem) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t len = n - b;
    if (stem && len > 12 && !strncmp(path + n - 12, ".safetensors", 12)) len -= 12;
    if (stem && len > 5 && !strncmp(path + n - 5, ".gguf", 5)) len -= 5;
    char *id = malloc(len + 1);
    if (id) {
        memcpy(id, path + b, len);
        id[len] = 0;
    }
    return id;
}

int server_start(server **out, const server_opts *o, base_err *e) {
    *out = NULL;
    if (o->slots < 1 || o->queue < 0 || o->ctx < 0 || o->body_limit < 64 || o->max_conns < 1 ||
        o->port < 0 || o->port > 65535)
        return base_fail(e, BASE_EINVAL, "bad server options (slots %d, queue %d, ctx %d, port %d)",
                         o->slots, o->queue, o->ctx, o->port);
    if (!o->model_path && !o->vstore_dir && !o->embed_model_path)
        return base_fail(e, BASE_EINVAL,
                         "nothing to serve: give a model, a vector store or an embedding model");
    if (o->n_loras > 0 && !o->model_path)
        return base_fail(e, BASE_EINVAL, "adapters (--lora) need the model they adapt (--model)");
    server_tmpl t;
    if (o->chat_template && server_tmpl_parse(o->chat_template, &t))
        return base_fail(e, BASE_EINVAL, "unknown chat template '%s' (%s)", o->chat_template,
                         server_tmpl_names());
    server *s = calloc(1, sizeof *s);
    if (!s) return base_fail(e, BASE_ENOMEM, "out of memory");
    s->o = *o;
    s->host = dup_or_null(o->host ? o->host : "127.0.0.1");
    s->api_key = o->api_key && o->api_key[0] ? strdup(o->api_key) : NULL;
    s->model_path = dup_or_null(o->model_path);
    s->tokenizer = dup_or_null(o->tokenizer);
    s->tmpl_name = dup_or_null(o->chat_template);
    s->vstore_dir = dup_or_null(o->vstore_dir);
    s->rag_coll = dup_or_null(o->rag_collection ? o->rag_collection : RAG_API_COLLECTION);
    if (o->model_path)
        s->model_id = o->model_name ? strdup(o->model_name) : model_id_of(o->model_path, 1);
    if (o->model_path && !o->model_name) s->model_file = model_id_of(o->model_path, 0);
    if (o->n_loras > 0) {
        size_t n = (size_t)o->n_loras;
        if ((s->lora = calloc(n, sizeof *s->lora)))
            for (; s->n_lora < o->n_loras; s->n_lora++) {
                const server_lora *l = &o->loras[s->n_lora];
                s->lora[s->n_lora].o = (server_lora){
                    .name = strdup(l->name), .path = strdup(l->path), .scale = l->scale};
            }
    }
    pthread_mutex_init(&s->tok_mu, NULL);
    pthread_mutex_init(&s->met_mu, NULL);
    pthread_mutex_init(&s->sock_mu, NULL);
    pthread_condattr_t ca; /* the reaper's waits are timed on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->reap_cv, &ca);
    pthread_condattr_destroy(&ca);
    server_metrics_init(&s->met);
    s->created = time(NULL);
    s->salt = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s ^ ((uint64_t)base_now() << 20);
    atomic_store(&s->state, o->model_path ? SERVER_LOADING : SERVER_NO_MODEL);
    int rc = 0;
    if (!s->host || (o->model_path && !s->model_id) || (o->n_loras > 0 && !s->lora)) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->n_lora && !rc; i++) {
        if (!s->lora[i].o.name || !s->lora[i].o.path)
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else if (!s->lora[i].o.name[0])
            rc =
                base_fail(e, BASE_EINVAL, "adapter %d has an empty name (--lora NAME=PATH)", i + 1);
        else if (serves(s, s->lora[i].o.name) != i + 1)
            rc = base_fail(e, BASE_EINVAL,
                           "adapter name '%s' is taken (by the model or another adapter): each "
                           "--lora NAME must be unique",
                           s->lora[i].o.name);
        else if (!isfinite(s->lora[i].o.scale))
            rc = base_fail(e, BASE_EINVAL, "adapter '%s': the scale must be a number",
                           s->lora[i].o.name);
    }
    if (rc) goto fail;
    /* the indexes are loaded (and repaired if need be) now, not by the first request */
    if (s->vstore_dir &&
        ((rc = vstore_open(&s->vs, s->vstore_dir, e)) || (rc = vstore_warm(s->vs, e))))
        goto fail;
    if (s->vs) vstore_set_max_body(s->vs, s->o.body_limit);
    /* the embedding model loads before the server listens: it is small next to a generation
     * model, and the vector store's documents need it from the first request */
    if (o->embed_model_path &&
        (rc = server_embedder_open(&s->emb, o->embed_model_path, o->embed_model_name, e)))
        goto fail;
    if (s->vs && s->emb) vstore_set_embedder(s->vs, server_embedder_vstore, s->emb);
    if (s->emb && o->threads > 0) tensor_set_threads(o->threads);

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
                    *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(s->host, port, &hints, &ai);
    if (gai) {
        rc = base_fail(e, BASE_EINVAL, "cannot resolve host '%s': %s", s->host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_LIMIT, o->max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_conns_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        o->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->header_limit,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20), MHD_OPTION_END);
    int err = errno;
    freeaddrinfo(ai);
    if (!s->d) {
        rc = base_fail(e, BASE_EIO, "cannot listen on %s:%d: %s", s->host, o->port,
                       err ? strerror(err) : "libmicrohttpd refused to start");
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    if (pthread_create(&s->reaper, NULL, reap_main, s)) {
        rc = base_fail(e, BASE_ENOMEM, "cannot start the connection-deadline thread");
        goto fail;
    }
    s->reaper_started = 1;
    if (o->model_path) {
        if (pthread_create(&s->loader, NULL, load_main, s)) {
            rc = base_fail(e, BASE_ENOMEM, "cannot start the model-loading thread");
            goto fail;
        }
        s->loader_started = 1;
    }
    *out = s;
    return 0;
fail:
    server_stop(s, NULL);
    return rc;
}

int server_port(const server *s) {
    return s->port;
}

int server_state(server *s) {
    return atomic_load(&s->state);
}

const base_err *server_load_error(server *s) {
    return &s->load_err;
}

const char *server_vstore_notes(server *s) {
    return s->vs ? vstore_notes(s->vs) : "";
}

int server_stop(server *s, base_err *e) {
    if (!s) return 0;
    atomic_store(&s->stopping, 1); /* waiting connection threads cancel and return */
    if (s->reaper_started) {
        pthread_mutex_lock(&s->sock_mu);
        pthread_cond_signal(&s->reap_cv);
        pthread_mutex_unlock(&s->sock_mu);
        pthread_join(s->reaper, NULL);
    }
    if (s->d) MHD_stop_daemon(s->d); /* closes every connection: the sock list empties */
    if (s->loader_started) pthread_join(s->loader, NULL);
    infer_sched_free(s->sched); /* every request left finishes as cancelled */
    for (int i = 0; i < s->n_lora; i++) {
        infer_lora_free(s->lora[i].a);
        free((char *)s->lora[i].o.name);
        free((char *)s->lora[i].o.path);
    }
    free(s->lora);
    infer_model_free(s->model);
    int rc = s->vs ? vstore_flush(s->vs, e) : 0;
    vstore_close(s->vs);
    server_embedder_free(s->emb);
    pthread_mutex_destroy(&s->tok_mu);
    pthread_mutex_destroy(&s->met_mu);
    pthread_mutex_destroy(&s->sock_mu);
    pthread_cond_destroy(&s->reap_cv);
    free(s->host);
    free(s->api_key);
    free(s->model_path);
    free(s->tokenizer);
    free(s->model_id);
    free(s->model_file);
    free(s->tmpl_name);
    free(s->vstore_dir);
    free(s->rag_coll);
    free(s);
    return rc;
}
