/* server/server.h: hearth's HTTP server — the OpenAI-compatible API (/v1/models, /v1/completions,
 * /v1/chat/completions, streamed as server-sent events), /health, /tokenize, /detokenize,
 * Prometheus /metrics, and the vector store's Chroma v2 API (/api/v2/...), on libmicrohttpd with
 * JSON through jansson. The continuous batching lives in src/infer; this module turns HTTP
 * requests into scheduler submissions and scheduler events into HTTP responses.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by server_opts.max_conns);
 * a request waiting for tokens blocks its own thread only. The model loads on a thread of its
 * own so /health answers (503) while it loads.
 *
 * The second half of this header is the pure part of the server (request parsing and
 * validation, chat templates, OpenAI JSON shapes, SSE framing, metrics), exposed for the unit
 * tests in tests/server. */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "embed/embed.h"
#include "infer/infer.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

/* OpenAI's limit on a request's stop sequences. The engine holds one more: the end of turn a
 * chat template adds (a request with all four keeps it). */
#define API_MAX_STOP (INFER_MAX_STOP - 1)

/* ---- the server ------------------------------------------------------------------------------ */

/* A LoRA adapter served over the model (`hearth serve --lora NAME=PATH`): requests whose
 * "model" is name get the base with the adapter (infer_lora_load with scale). */
typedef struct server_lora {
    const char *name, *path;
    float scale;
} server_lora;

typedef struct server_opts {
    const char *host;             /* address to bind; default "127.0.0.1" */
    int port;                     /* 0: any free port (server_port tells which) */
    const char *api_key;          /* NULL: no authentication; else "Authorization: Bearer KEY" */
    const char *model_path;       /* run directory or .safetensors; NULL: no model (vstore only) */
    const char *tokenizer;        /* .htok path, or NULL for the model's own */
    const char *model_name;       /* the id clients name; NULL: the model file's stem (a request
                                   * may also name the file: qwen2.5-0.5b-instruct.gguf) */
    const char *chat_template;    /* a template's name (server_tmpl_parse); NULL: the model's own
                                   * (its GGUF's tokenizer.chat_template), else by its family */
    const char *vstore_dir;       /* NULL: no /api/v2 routes */
    const char *embed_model_path; /* NULL: no /v1/embeddings (a GGUF bert file or HF dir) */
    const char *embed_model_name; /* the id clients name; NULL: the embedding model's name */
    const char *rag_collection;   /* the documents of /v1/ingest, /v1/chunks and use_context
                                     (rag_api.h); NULL: "documents" */
    int slots, ctx, queue, threads, prefill_chunk, max_rows; /* scheduler: infer_sched_opts */
    infer_kv_type kv_type;                                   /* the KV cache's elements */
    size_t body_limit;   /* request body bytes at most (413 beyond) */
    size_t header_limit; /* bytes of request line + headers per connection (libmicrohttpd pool) */
    unsigned timeout_s;  /* a connection idle this long (stalled client) is closed */
    unsigned max_conns;  /* simultaneous connections; more are refused at accept */
    unsigned max_conns_per_ip; /* simultaneous connections from one address; 0: no limit */
    /* A request's line and headers must arrive within header_timeout_s of the connection's
     * opening (or of the previous answer on a kept-alive connection), its body within
     * body_timeout_s of the headers; else the connection is closed. 0: no limit. Unlike
     * timeout_s these are not reset by each byte, so a client trickling bytes is bounded. */
    unsigned header_timeout_s, body_timeout_s;
    /* Where the server reports what an operator should see (a chat template it does not
     * recognize, a generation that failed in the engine, with the message): one line per call,
     * from any thread. NULL: nowhere. */
    void (*log)(void *ud, const char *line);
    void *log_ud;
    /* adapters over the model (`--lora NAME=PATH[:SCALE]`), loaded with it (one that fails fails
     * the load); their names are ids beside the model's */
    const server_lora *loras;
    int n_loras;
} server_opts;

void server_opts_default(server_opts *o);

typedef struct server server;

enum { SERVER_NO_MODEL = 0, SERVER_LOADING = 1, SERVER_READY = 2, SERVER_FAILED = 3 };

/* Binds and starts listening (the model, if any, starts loading in the background); returns
 * once connections are accepted. Errors: BASE_EINVAL (options), BASE_EIO (bind), and the
 * vector store's open errors. */
int server_start(server **out, const server_opts *o, base_err *e);
int server_port(const server *s); /* the bound port */
/* SERVER_NO_MODEL, SERVER_LOADING, SERVER_READY or SERVER_FAILED; after SERVER_FAILED, *e of
 * server_load_error holds why. */
int server_state(server *s);
const base_err *server_load_error(server *s);
/* What the vector store repaired when it was opened (vstore_notes), "" if nothing or no store. */
const char *server_vstore_notes(server *s);
/* Stops accepting, finishes every running request as cancelled, joins every thread, saves the
 * vector store's indexes and frees. Returns 0, or the first failed index save (a full disk)
 * with its message in *e: no record is lost (SQLite holds them; the next open catches up). */
int server_stop(server *s, base_err *e); /* NULL is fine */

/* ---- the pure part (exposed for tests) ------------------------------------------------------ */

/* An OpenAI-shaped error: {"error":{"message","type","param","code"}} with an HTTP status. */
typedef struct server_error {
    int status;
    const char *type; /* "invalid_request_error", "rate_limit_error", "server_error", ... */
    const char *code; /* "model_not_found", ... or NULL (JSON null) */
    char param[64];   /* the offending request field, "" for null */
    char message[512];
} server_error;
/* Fills er; returns -1 (so parsers can `return server_fail(...)`). type follows from status. */
int server_fail(server_error *er, int status, const char *param, const char *code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
/* The error's JSON text (malloc'd; NULL only when out of memory). */
char *server_error_json(const server_error *er);
/* The same error in Chroma's shape, for the /api/v2 routes: {"error": KIND, "message": TEXT},
 * KIND from the status (InvalidArgumentError, AuthorizationError, NotFoundError,
 * MethodNotAllowed, RequestTooLargeError, RateLimitError, InternalError). */
char *server_error_json_chroma(const server_error *er);

typedef enum { SERVER_EP_COMPLETIONS = 0, SERVER_EP_CHAT = 1 } server_endpoint;

typedef struct server_msg {
    char *role; /* "system", "user" or "assistant" ("developer" is read as "system") */
    char *content;
} server_msg;

/* A parsed and validated /v1/completions or /v1/chat/completions body. Strings are owned by the
 * request (freed by server_req_free); sp.stop[] points into stops[]. */
typedef struct server_req {
    server_endpoint ep;
    char *model; /* as sent; NULL if absent */
    int stream, include_usage;
    char *prompt;        /* completions: the text prompt, or NULL ... */
    int32_t *prompt_ids; /* ... the prompt as token ids (an array of integers) */
    size_t n_prompt_ids;
    server_msg *msgs; /* chat */
    size_t n_msgs;
    infer_sampling sp;
    char *stops[INFER_MAX_STOP];
    int max_tokens_set; /* max_tokens / max_completion_tokens was given */
    int seed_set;
} server_req;

/* Parses body (len bytes) as endpoint ep's request. 0, or -1 with a 400 in *er naming the field
 * (malformed JSON: its line and column). Defaults: OpenAI's (temperature 1, top_p 1, completions
 * max_tokens 16, chat until the context is full), seed random when absent (seed_set 0: the
 * caller picks one). */
int server_req_parse(server_req *r, server_endpoint ep, const char *body, size_t len,
                     server_error *er);
void server_req_free(server_req *r); /* zeroes; safe twice */

/* Chat templates (docs: ARCHITECTURE.md, "server"): llama.cpp's built-in ones under its names,
 * rendered byte for byte as its llama_chat_apply_template renders them, and hearth's own. */
typedef enum {
    SERVER_TMPL_HEARTH =
        0, /* "User: ...\nAssistant: ...": for hearth-trained (plain text) models */
    SERVER_TMPL_LLAMA2 = 1, /* "[INST] ... [/INST]...</s>" (BOS from the tokenizer) */
    SERVER_TMPL_CHATML = 2, /* "<|im_start|>role\n...<|im_end|>\n" (Qwen2, ...) */
    SERVER_TMPL_LLAMA2_SYS,
    SERVER_TMPL_LLAMA2_SYS_BOS,
    SERVER_TMPL_LLAMA2_SYS_STRIP,
    SERVER_TMPL_MISTRAL_V1,
    SERVER_TMPL_MISTRAL_V3,
    SERVER_TMPL_MISTRAL_V3_TEKKEN,
    SERVER_TMPL_MISTRAL_V7,
    SERVER_TMPL_PHI3,
    SERVER_TMPL_PHI4,
    SERVER_TMPL_FALCON3,
    SERVER_TMPL_ZEPHYR,
    SERVER_TMPL_MONARCH,
    SERVER_TMPL_GEMMA,
    SERVER_TMPL_ORION,
    SERVER_TMPL_OPENCHAT,
    SERVER_TMPL_VICUNA,
    SERVER_TMPL_VICUNA_ORCA,
    SERVER_TMPL_DEEPSEEK,
    SERVER_TMPL_DEEPSEEK2,
    SERVER_TMPL_DEEPSEEK3,
    SERVER_TMPL_COMMAND_R,
    SERVER_TMPL_LLAMA3,
    SERVER_TMPL_CHATGLM3,
    SERVER_TMPL_CHATGLM4,
    SERVER_TMPL_GLMEDGE,
    SERVER_TMPL_MINICPM,
    SERVER_TMPL_EXAONE3,
    SERVER_TMPL_RWKV_WORLD,
    SERVER_TMPL_GRANITE,
    SERVER_TMPL_GIGACHAT,
    SERVER_TMPL_MEGREZ,
    SERVER_TMPL_COUNT
} server_tmpl;
/* By name ("llama3", "chatml", "hearth", ... as llama.cpp's --chat-template names them): 0, or
 * -1 for an unknown name. */
int server_tmpl_parse(const char *name, server_tmpl *out);
const char *server_tmpl_name(server_tmpl t);
const char *server_tmpl_names(void); /* every name, comma-separated, for messages */
/* A template's text (a GGUF's tokenizer.chat_template, Jinja) recognized as llama.cpp's
 * llm_chat_detect_template recognizes it (a name is taken as that template): 0, or -1 when
 * llama.cpp would not know it either. */
int server_tmpl_detect(const char *tmpl, server_tmpl *out);
/* The template of a model without one: LLAMA2 for a hearth-trained Llama with a SentencePiece
 * vocabulary, HEARTH otherwise (hearth trains on plain text). */
server_tmpl server_tmpl_default(nn_family family, int tok_kind);
/* The template a model gets: its GGUF's chat_template (NULL: none) as detected; a GGUF model
 * whose template is unknown or absent gets ChatML, llama.cpp's fallback (*unknown = 1 when a
 * template was there but not recognized: the caller reports it once); a model of hearth's own
 * (from_gguf 0) without a template gets server_tmpl_default. */
server_tmpl server_tmpl_for_model(const char *chat_template, int from_gguf, nn_family family,
                                  int tok_kind, int *unknown);
/* server_tmpl_for_model for a loaded model (its GGUF's template, whether it came from one, its
 * family and tokenizer kind): what the server, `hearth chat` and `hearth ask` use. */
server_tmpl server_tmpl_of_model(const infer_model *m, int *unknown);
/* A stop sequence the template implies: hearth's "\nUser:" (it has no end-of-turn token); NULL
 * for the others, whose end-of-turn tokens end generation (tok_is_eog). */
const char *server_tmpl_stop(server_tmpl t);
/* The prompt text of the messages, APPENDED to *out, with llama-server's generation prompt
 * (the assistant's turn opened). System messages: in the templates that have a system turn as
 * such; merged into the first user turn where llama.cpp merges them (gemma, orion, llama2
 * without <<SYS>>, mistral); rendered as llama.cpp renders them elsewhere. BASE_ENOMEM. */
int server_chat_render(server_tmpl t, const server_msg *m, size_t n, base_buf *out);
/* The same with add_ass chosen (llama_chat_apply_template's add_ass): for the fixtures. */
int server_chat_render_ex(server_tmpl t, const server_msg *m, size_t n, int add_ass, base_buf *out);
/* The prompt as token ids, APPENDED to *out: the rendered text through infer_prompt_encode
 * (special-token text becomes its token, as llama.cpp parses a rendered template; BOS as the
 * model's tokenizer says). Not thread-safe on the model's vocabulary (tok_encode). */
int server_chat_encode(server_tmpl t, infer_model *model, const server_msg *m, size_t n,
                       tok_ids *out, base_err *e);
/* The same over a vocabulary (infer_prompt_encode_vocab's hearth_native), with add_ass chosen:
 * a training example ending in the assistant's message has no generation prompt after it. */
int server_chat_encode_vocab(server_tmpl t, tok_vocab *v, int hearth_native, const server_msg *m,
                             size_t n, int add_ass, tok_ids *out, base_err *e);

/* The most input bytes one token of v can stand for: its longest token text (tok_token_text),
 * at least 1. Every token of an encoding covers at most that many bytes of the text (a
 * byte-level token exactly its bytes; a SentencePiece token its text with U+2581 as one space,
 * a byte-fallback or unknown token one byte), so a text of n bytes encodes to at least
 * ceil(n / it) tokens: a bound that refuses an oversized prompt before tokenizing it. */
size_t server_token_bytes_max(const tok_vocab *v);

/* Response JSON (malloc'd strings). meta: the fields every chunk repeats. */
typedef struct server_meta {
    server_endpoint ep;
    const char *id, *model;
    long long created;
} server_meta;
const char *server_finish_name(infer_finish f); /* "stop", "length", ... */
/* A whole non-streaming response. */
char *server_json_response(const server_meta *m, const char *text, size_t len, infer_finish f,
                           int prompt_tokens, int completion_tokens);
/* One streamed chunk: the assistant role (chat, first chunk: role_first), a piece of text, or
 * (finish != NULL) the closing empty delta with its finish_reason. usage_null: add
 * "usage":null (when stream_options.include_usage asked for a usage chunk at the end). */
char *server_json_chunk(const server_meta *m, int role_first, const char *text, size_t len,
                        const char *finish, int usage_null);
/* The usage chunk: "choices":[] and the token counts. */
char *server_json_usage_chunk(const server_meta *m, int prompt_tokens, int completion_tokens);
/* Appends the SSE event "data: PAYLOAD\n\n" to b. */
void server_sse_event(base_buf *b, const char *payload);
/* Appends the SSE comment ": TEXT\n\n" (clients ignore it; it keeps an idle stream open). */
void server_sse_comment(base_buf *b, const char *text);
/* Appends s (n bytes) to b with every invalid UTF-8 sequence replaced by U+FFFD, so that JSON
 * strings can always be built from model output. */
void server_utf8_clean(base_buf *b, const char *s, size_t n);

/* ---- embeddings (embeddings.c): POST /v1/embeddings and the vector store's embedder */

typedef struct server_embedder server_embedder;
/* Loads the embedding model at path; name: the id clients use (NULL: the model's name). */
int server_embedder_open(server_embedder **out, const char *path, const char *name, base_err *e);
void server_embedder_free(server_embedder *s); /* NULL is fine */
const char *server_embedder_id(const server_embedder *s);
const embed_model *server_embedder_model(const server_embedder *s);
/* A /v1/embeddings body (len bytes) -> *status and *resp (malloc'd JSON: OpenAI's list of
 * embeddings with usage, or OpenAI's error naming the field and, for a too-long input, its
 * index). Thread-safe; one computation runs at a time. */
void server_embeddings(server_embedder *s, const char *body, size_t len, int *status, char **resp);
/* vstore_embed_fn over s (ud): a collection naming s's id or name, or "" (the default). */
int server_embedder_vstore(void *ud, const char *model, const char *const *texts, size_t n,
                           float **out, size_t *dim, base_err *e);

/* ---- metrics */

#define SERVER_HIST_MAX 24
typedef struct server_hist {
    const double *le; /* upper bounds, increasing (seconds) */
    int n;
    uint64_t counts[SERVER_HIST_MAX]; /* per bucket, not cumulative; counts[n]: above the last */
    uint64_t count;
    double sum;
} server_hist;
void server_hist_init(server_hist *h, const double *le, int n); /* n < SERVER_HIST_MAX */
void server_hist_observe(server_hist *h, double v);
/* Appends the Prometheus text of h: # HELP, # TYPE histogram, cumulative _bucket{le=...}
 * lines ending with le="+Inf", _sum and _count. */
void server_hist_text(const server_hist *h, const char *name, const char *help, base_buf *out);

/* Every metric of /metrics. Not locked: the server guards it with its own mutex. */
typedef struct server_metrics {
    server_hist ttft, itl, e2e, queue;
    uint64_t prompt_tokens, generation_tokens;
    uint64_t requests[600]; /* by HTTP status */
} server_metrics;
void server_metrics_init(server_metrics *m);
/* The whole exposition text; the gauges come from the caller (scheduler stats). */
void server_metrics_text(const server_metrics *m, int busy_slots, int queued, int n_slots,
                         base_buf *out);

#endif
