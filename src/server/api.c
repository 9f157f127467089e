/* server/api.c: the OpenAI wire format — request bodies parsed and validated into server_req,
 * responses and stream chunks built in OpenAI's exact shapes, the error object, SSE framing.
 * Pure functions: no sockets, no model. */
#include "server/server.h"
#include "vstore/vstore.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors */

int server_fail(server_error *er, int status, const char *param, const char *code, const char *fmt,
                ...) {
    er->status = status;
    er->type = status == 401   ? "invalid_request_error"
               : status == 429 ? "rate_limit_error"
               : status >= 500 ? "server_error"
                               : "invalid_request_error";
    er->code = code;
    snprintf(er->param, sizeof er->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(er->message, sizeof er->message, fmt, ap);
    va_end(ap);
    return -1;
}

char *server_error_json(const server_error *er) {
    base_buf msg = {0};
    server_utf8_clean(&msg, er->message, strlen(er->message));
    json_t *o = json_pack("{s:{s:s?,s:s,s:s?,s:s?}}", "error", "message",
                          msg.failed ? "" : msg.data, "type", er->type ? er->type : "server_error",
                          "param", er->param[0] ? er->param : NULL, "code", er->code);
    base_buf_free(&msg);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *server_error_json_chroma(const server_error *er) {
    const char *kind = er->status == 400   ? "InvalidArgumentError"
                       : er->status == 401 ? "AuthorizationError"
                       : er->status == 404 ? "NotFoundError"
                       : er->status == 405 ? "MethodNotAllowed"
                       : er->status == 413 ? "RequestTooLargeError"
                       : er->status == 429 ? "RateLimitError"
                                           : "InternalError";
    return vstore_http_error(kind, er->message);
}

/* ---- UTF-8 */

void server_utf8_clean(base_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the valid stretch being copied */
    while (i < n) {
        size_t k = u[i] ? base_utf8_len(u + i, n - i) : 0; /* NUL would end the C string */
        if (k) {
            i += k;
            continue;
        }
        if (i > run) base_buf_printf(b, "%.*s", (int)(i - run), s + run);
        base_buf_printf(b, "\xEF\xBF\xBD");
        i++;
        run = i;
    }
    if (i > run) base_buf_printf(b, "%.*s", (int)(i - run), s + run);
    if (!b->data) base_buf_printf(b, "%s", "");
}

/* ---- request parsing */

void server_req_free(server_req *r) {
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_msgs; i++) {
        free(r->msgs[i].role);
        free(r->msgs[i].content);
    }
    free(r->msgs);
    for (int i = 0; i < INFER_MAX_STOP; i++) free(r->stops[i]);
    memset(r, 0, sizeof *r);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A number field in [lo, hi] (null or absent: *out unchanged). */
static int get_num(json_t *o, const char *key, double lo, double hi, double *out,
                   server_error *er) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v))
        return server_fail(er, 400, key, "invalid_type", "'%s' must be a number, got %s", key,
                           json_kind(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return server_fail(er, 400, key, "invalid_value", "'%s' must be in [%g, %g], got %g", key,
                           lo, hi, x);
    *out = x;
    return 0;
}

/* An integer field in [lo, hi]; *set becomes 1 when present. */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, int *set,
                   server_error *er) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v))
        return server_fail(er, 400, key, "invalid_type", "'%s' must be an integer, got %s", key,
                           json_kind(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return server_fail(er, 400, key, "invalid_value", "'%s' must be in [%lld, %lld], got %lld",
                           key, lo, hi, x);
    *out = x;
    if (set) *set = 1;
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, server_error *er) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return server_fail(er, 400, key, "invalid_type", "'%s' must be a boolean, got %s", key,
                           json_kind(v));
    *out = json_is_true(v);
    return 0;
}

static int oom(server_error *er) {
    return server_fail(er, 500, NULL, NULL, "out of memory while parsing the request");
}

/* stop: a string or an array of at most API_MAX_STOP non-empty strings. */
static int parse_stop(json_t *o, server_req *r, server_error *er) {
    json_t *v = json_object_get(o, "stop");
    if (!v || json_is_null(v)) return 0;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    json_t *arr[INFER_MAX_STOP];
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > API_MAX_STOP)
            return server_fail(er, 400, "stop", "invalid_value",
                               "'stop' holds %zu sequences; at most %d are supported", n,
                               API_MAX_STOP);
        for (size_t i = 0; i < n; i++) arr[i] = json_array_get(v, i);
        items = arr;
    }
    for (size_t i = 0; i < n; i++) {
        if (!json_is_string(items[i]))
            return server_fail(er, 400, "stop", "invalid_type",
                               "'stop' must be a string or an array of strings; item %zu is %s", i,
                               json_kind(items[i]));
        size_t len = json_string_length(items[i]);
        if (len == 0)
            return server_fail(er, 400, "stop", "invalid_value",
                               "'stop' sequences must not be empty (item %zu)", i);
        if (len > 256)
            return server_fail(er, 400, "stop", "invalid_value",
                               "'stop' sequence %zu is %zu bytes; at most 256", i, len);
        if (!(r->stops[i] = dupn(json_string_value(items[i]), len))) return oom(er);
        r->sp.stop[i] = r->stops[i];
    }
    r->sp.n_stop = (int)n;
    return 0;
}

/* The text of a chat message's content: a string, or an array of {"type":"text","text":...}
 * parts (joined), as OpenAI allows. */
static int parse_content(json_t *c, size_t idx, char **out, server_error *er) {
    if (json_is_string(c)) {
        *out = dupn(json_string_value(c), json_string_length(c));
        return *out ? 0 : oom(er);
    }
    if (!json_is_array(c))
        return server_fail(er, 400, "messages", "invalid_type",
                           "messages[%zu].content must be a string or an array of text parts, "
                           "got %s",
                           idx, json_kind(c));
    base_buf b = {0};
    for (size_t j = 0; j < json_array_size(c); j++) {
        json_t *p = json_array_get(c, j);
        const char *type = json_string_value(json_object_get(p, "type"));
        json_t *t = json_object_get(p, "text");
        if (!json_is_object(p) || !type || strcmp(type, "text") != 0 || !json_is_string(t)) {
            base_buf_free(&b);
            return server_fail(er, 400, "messages", "invalid_value",
                               "messages[%zu].content[%zu] must be {\"type\":\"text\",\"text\":"
                               "STRING}; this model reads text only",
                               idx, j);
        }
        base_buf_printf(&b, "%.*s", (int)json_string_length(t), json_string_value(t));
    }
    if (!b.data) base_buf_printf(&b, "%s", "");
    if (b.failed) {
        base_buf_free(&b);
        return oom(er);
    }
    *out = b.data;
    return 0;
}

static int parse_messages(json_t *o, server_req *r, server_error *er) {
    json_t *v = json_object_get(o, "messages");
    if (!v)
        return server_fail(er, 400, "messages", "missing_required_parameter",
                           "'messages' is required");
    if (!json_is_array(v))
        return server_fail(er, 400, "messages", "invalid_type",
                           "'messages' must be an array, got %s", json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return server_fail(er, 400, "messages", "invalid_value", "'messages' must not be empty");
    if (!(r->msgs = calloc(n, sizeof *r->msgs))) return oom(er);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i);
        if (!json_is_object(m))
            return server_fail(er, 400, "messages", "invalid_type",
                               "messages[%zu] must be an object, got %s", i, json_kind(m));
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return server_fail(er, 400, "messages", "invalid_value",
                               "messages[%zu].role must be a string", i);
        if (!strcmp(role, "developer")) role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return server_fail(er, 400, "messages", "invalid_value",
                               "messages[%zu].role '%.40s' is not one of system, developer, user, "
                               "assistant",
                               i, role);
        json_t *c = json_object_get(m, "content");
        if (!c || json_is_null(c))
            return server_fail(er, 400, "messages", "invalid_value",
                               "messages[%zu].content is required", i);
        r->n_msgs = i + 1;
        if (!(r->msgs[i].role = dupn(role, strlen(role)))) return oom(er);
        if (parse_content(c, i, &r->msgs[i].content, er)) return -1;
    }
    return 0;
}

/* prompt: a string, an array of one string, or an array of token ids. */
static int parse_prompt(json_t *o, server_req *r, server_error *er) {
    json_t *v = json_object_get(o, "prompt");
    if (!v)
        return server_fail(er, 400, "prompt", "missing_required_parameter", "'prompt' is required");
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)))
        v = json_array_get(v, 0);
    if (json_is_string(v)) {
        r->prompt = dupn(json_string_value(v), json_string_length(v));
        return r->prompt ? 0 : oom(er);
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t n = json_array_size(v);
        if (!(r->prompt_ids = malloc(n * sizeof *r->prompt_ids))) return oom(er);
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(v, i);
            if (!json_is_integer(t) || json_integer_value(t) < 0 ||
                json_integer_value(t) >= TOK_MAX_TOKENS)
                return server_fail(er, 400, "prompt", "invalid_value",
                                   "'prompt' must be a string, an array of one string or an array "
                                   "of token ids; item %zu is not a token id",
                                   i);
            r->prompt_ids[i] = (int32_t)json_integer_value(t);
        }
        r->n_prompt_ids = n;
        return 0;
    }
    return server_fail(er, 400, "prompt", "invalid_type",
                       "'prompt' must be a string, an array of one string or a non-empty array of "
                       "token ids, got %s",
                       json_kind(v));
}

/* Fields whose OpenAI meaning this engine cannot honour are refused rather than ignored. */
static int refuse_unsupported(json_t *o, server_error *er) {
    long long n = 1;
    int set = 0;
    if (get_int(o, "n", 1, 1, &n, &set, er))
        return server_fail(er, 400, "n", "invalid_value", "only n = 1 is supported");
    json_t *lp = json_object_get(o, "logprobs");
    if (lp && !json_is_null(lp) && !json_is_false(lp))
        return server_fail(er, 400, "logprobs", "unsupported_parameter",
                           "'logprobs' is not supported by this server");
    json_t *lb = json_object_get(o, "logit_bias");
    if (lb && !json_is_null(lb) && (!json_is_object(lb) || json_object_size(lb) > 0))
        return server_fail(er, 400, "logit_bias", "unsupported_parameter",
                           "'logit_bias' is not supported by this server");
    json_t *echo = json_object_get(o, "echo");
    if (echo && json_is_true(echo))
        return server_fail(er, 400, "echo", "unsupported_parameter",
                           "'echo' is not supported by this server");
    json_t *bo = json_object_get(o, "best_of");
    if (bo && !json_is_null(bo) && !(json_is_integer(bo) && json_integer_value(bo) == 1))
        return server_fail(er, 400, "best_of", "unsupported_parameter",
                           "only best_of = 1 is supported");
    /* OpenAI's penalties are additive and count-based; the engine's repeat_penalty is
     * llama.cpp's multiplicative one. Mapping one onto the other would change the meaning. */
    static const char *const additive[] = {"frequency_penalty", "presence_penalty"};
    for (int i = 0; i < 2; i++) {
        double x = 0;
        if (get_num(o, additive[i], -2, 2, &x, er)) return -1;
        if (x != 0)
            return server_fail(er, 400, additive[i], "unsupported_parameter",
                               "'%s' is not supported (it is additive in OpenAI's API); use "
                               "'repetition_penalty' (multiplicative, as llama.cpp's "
                               "repeat_penalty)",
                               additive[i]);
    }
    /* {"type": "text"} is what the engine does anyway; JSON modes would need constrained
     * sampling, and silently answering free text to a client that asked for JSON is worse than
     * a refusal */
    json_t *rf = json_object_get(o, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *type = json_object_get(rf, "type");
        if (!json_is_object(rf) || !json_is_string(type))
            return server_fail(er, 400, "response_format", "invalid_type",
                               "'response_format' must be an object with a string 'type'");
        if (strcmp(json_string_value(type), "text") != 0)
            return server_fail(er, 400, "response_format", "unsupported_parameter",
                               "'response_format' type '%.40s' is not supported by this server "
                               "(only 'text')",
                               json_string_value(type));
    }
    json_t *tools = json_object_get(o, "tools");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0))
        return server_fail(er, 400, "tools", "unsupported_parameter",
                           "'tools' is not supported by this server");
    return 0;
}

int server_req_parse(server_req *r, server_endpoint ep, const char *body, size_t len,
                     server_error *er) {
    memset(r, 0, sizeof *r);
    r->ep = ep;
    infer_sampling_default(&r->sp);
    /* OpenAI's defaults: no top-k or min-p filter (the engine's defaults are llama.cpp's) */
    r->sp.temperature = 1.0f;
    r->sp.top_p = 1.0f;
    r->sp.top_k = 0;
    r->sp.min_p = 0.0f;
    r->sp.repeat_penalty = 1.0f;
    r->sp.max_tokens = ep == SERVER_EP_COMPLETIONS ? 16 : 0;
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return server_fail(er, 400, NULL, "invalid_json",
                           "the request body is not valid JSON: %s (line %d, column %d)", je.text,
                           je.line, je.column);
    int rc = -1;
    if (!json_is_object(o)) {
        server_fail(er, 400, NULL, "invalid_json", "the request body must be a JSON object, got %s",
                    json_kind(o));
        goto done;
    }
    json_t *model = json_object_get(o, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            server_fail(er, 400, "model", "invalid_type", "'model' must be a string, got %s",
                        json_kind(model));
            goto done;
        }
        if (!(r->model = dupn(json_string_value(model), json_string_length(model)))) {
            oom(er);
            goto done;
        }
    }
    if (ep == SERVER_EP_CHAT ? parse_messages(o, r, er) : parse_prompt(o, r, er)) goto done;
    if (get_bool(o, "stream", &r->stream, er)) goto done;
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            server_fail(er, 400, "stream_options", "invalid_type",
                        "'stream_options' must be an object, got %s", json_kind(so));
            goto done;
        }
        if (!r->stream) {
            server_fail(er, 400, "stream_options", "invalid_value",
                        "'stream_options' is only allowed when 'stream' is true");
            goto done;
        }
        if (get_bool(so, "include_usage", &r->include_usage, er)) goto done;
    }
    double t = r->sp.temperature, p = r->sp.top_p, mp = r->sp.min_p, rp = r->sp.repeat_penalty;
    if (get_num(o, "temperature", 0, 2, &t, er) || get_num(o, "top_p", 0, 1, &p, er) ||
        get_num(o, "min_p", 0, 1, &mp, er) || get_num(o, "repetition_penalty", 0.01, 10, &rp, er) ||
        get_num(o, "repeat_penalty", 0.01, 10, &rp, er))
        goto done;
    if (p <= 0) {
        server_fail(er, 400, "top_p", "invalid_value", "'top_p' must be in (0, 1], got %g", p);
        goto done;
    }
    r->sp.temperature = (float)t;
    r->sp.top_p = (float)p;
    r->sp.min_p = (float)mp;
    r->sp.repeat_penalty = (float)rp;
    long long k = 0, mt = r->sp.max_tokens, seed = 0, rln = r->sp.repeat_last_n;
    int kset = 0, mt_set2 = 0;
    if (get_int(o, "top_k", 0, 1 << 24, &k, &kset, er) ||
        get_int(o, "repeat_last_n", -1, 1 << 20, &rln, NULL, er) ||
        get_int(o, "max_tokens", 1, 1 << 30, &mt, &r->max_tokens_set, er) ||
        get_int(o, "max_completion_tokens", 1, 1 << 30, &mt, &mt_set2, er) ||
        get_int(o, "seed", INT64_MIN, INT64_MAX, &seed, &r->seed_set, er))
        goto done;
    r->max_tokens_set |= mt_set2;
    r->sp.top_k = (int)k;
    r->sp.repeat_last_n = (int)rln;
    r->sp.max_tokens = (int)mt;
    r->sp.seed = (uint64_t)seed;
    if (parse_stop(o, r, er) || refuse_unsupported(o, er)) goto done;
    rc = 0;
done:
    json_decref(o);
    if (rc) server_req_free(r);
    return rc;
}

/* ---- responses */

const char *server_finish_name(infer_finish f) {
    switch (f) {
    case INFER_FINISH_STOP:
        return "stop";
    case INFER_FINISH_LENGTH:
        return "length";
    case INFER_FINISH_CANCELLED:
        return "cancelled";
    default:
        return "error";
    }
}

/* A JSON string of model text: invalid UTF-8 replaced, so jansson accepts it. */
static json_t *text_json(const char *s, size_t n) {
    base_buf b = {0};
    server_utf8_clean(&b, s, n);
    json_t *j = b.failed ? NULL : json_stringn(b.data, b.len);
    base_buf_free(&b);
    return j;
}

static char *dump(json_t *o) {
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *usage_json(int pt, int ct) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", pt, "completion_tokens", ct, "total_tokens",
                     pt + ct);
}

static json_t *envelope(const server_meta *m, int chunk) {
    const char *object = m->ep == SERVER_EP_CHAT
                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                             : "text_completion";
    return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", m->id, "object", object, "created",
                     (json_int_t)m->created, "model", m->model, "system_fingerprint", "hearth");
}

char *server_json_response(const server_meta *m, const char *text, size_t len, infer_finish f,
                           int prompt_tokens, int completion_tokens) {
    json_t *o = envelope(m, 0), *t = text_json(text, len), *choice;
    if (!o || !t) {
        json_decref(o);
        json_decref(t);
        return NULL;
    }
    if (m->ep == SERVER_EP_CHAT)
        choice =
            json_pack("{s:i,s:{s:s,s:o,s:n},s:n,s:s}", "index", 0, "message", "role", "assistant",
                      "content", t, "refusal", "logprobs", "finish_reason", server_finish_name(f));
    else
        choice = json_pack("{s:o,s:i,s:n,s:s}", "text", t, "index", 0, "logprobs", "finish_reason",
                           server_finish_name(f));
    if (!choice || json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
        json_object_set_new(o, "usage", usage_json(prompt_tokens, completion_tokens))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

char *server_json_chunk(const server_meta *m, int role_first, const char *text, size_t len,
                        const char *finish, int usage_null) {
    json_t *o = envelope(m, 1), *choice;
    if (!o) return NULL;
    json_t *t = text_json(text ? text : "", text ? len : 0);
    if (!t) {
        json_decref(o);
        return NULL;
    }
    if (m->ep == SERVER_EP_CHAT) {
        json_t *delta;
        if (finish) { /* the closing chunk's delta is empty */
            json_decref(t);
            delta = json_object();
        } else if (role_first) {
            delta = json_pack("{s:s,s:o}", "role", "assistant", "content", t);
        } else {
            delta = json_pack("{s:o}", "content", t);
        }
        choice = json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "delta", delta, "logprobs",
                           "finish_reason", finish);
    } else {
        choice = json_pack("{s:o,s:i,s:n,s:s?}", "text", t, "index", 0, "logprobs", "finish_reason",
                           finish);
    }
    if (!choice || json_object_set_new(o, "choices", json_pack("[o]", choice)) ||
        (usage_null && json_object_set_new(o, "usage", json_null()))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

char *server_json_usage_chunk(const server_meta *m, int prompt_tokens, int completion_tokens) {
    json_t *o = envelope(m, 1);
    if (!o || json_object_set_new(o, "choices", json_array()) ||
        json_object_set_new(o, "usage", usage_json(prompt_tokens, completion_tokens))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

void server_sse_event(base_buf *b, const char *payload) {
    base_buf_printf(b, "data: %s\n\n", payload);
}

void server_sse_comment(base_buf *b, const char *text) {
    base_buf_printf(b, ": %s\n\n", text);
}
