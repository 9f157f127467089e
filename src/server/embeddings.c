/* server/embeddings.c: POST /v1/embeddings in OpenAI's shape, and the embedder the vector
 * store calls for collections that name their model (server-side embedding). One embedding
 * model per server (hearth serve --embed-model), computed one request at a time: each request
 * already runs on every OpenMP thread, so two at once would only share the cores. */
#include "server/server.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_MAX_INPUTS 2048 /* OpenAI's limit on one request's inputs */

struct server_embedder {
    embed_model *m;
    char *id;
    pthread_mutex_t mu; /* one computation at a time */
};

int server_embedder_open(server_embedder **out, const char *path, const char *name, base_err *e) {
    *out = NULL;
    server_embedder *s = calloc(1, sizeof *s);
    if (!s) return base_fail(e, BASE_ENOMEM, "out of memory");
    int rc = embed_model_load(&s->m, path, e);
    if (!rc && !(s->id = strdup(name ? name : embed_model_name(s->m))))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (rc) {
        embed_model_free(s->m);
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return BASE_OK;
}

void server_embedder_free(server_embedder *s) {
    if (!s) return;
    embed_model_free(s->m);
    free(s->id);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *server_embedder_id(const server_embedder *s) {
    return s->id;
}
const embed_model *server_embedder_model(const server_embedder *s) {
    return s->m;
}

static int embed_locked(server_embedder *s, const char *const *texts, const size_t *lens,
                        int32_t *const *ids, const size_t *nids, size_t n, int truncate, float *out,
                        base_err *e) {
    pthread_mutex_lock(&s->mu);
    int rc = texts ? embed_texts(s->m, texts, lens, n, truncate, out, e)
                   : embed_tokens(s->m, (const int32_t *const *)ids, nids, n, out, e);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int server_embedder_vstore(void *ud, const char *model, const char *const *texts, size_t n,
                           float **out, size_t *dim, base_err *e) {
    server_embedder *s = ud;
    if (model[0] && strcmp(model, s->id) && strcmp(model, embed_model_name(s->m)))
        return base_fail(e, BASE_EINVAL,
                         "the collection's embedding model is '%.200s'; this server embeds with "
                         "'%s'",
                         model, s->id);
    size_t C = (size_t)embed_dim(s->m), tot;
    if (base_mul_size(n ? n : 1, C * sizeof(float), &tot) || !(*out = malloc(tot)))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    *dim = C;
    /* documents longer than the model's window are cut there, as Chroma's default function
     * does; a chunker that wants whole documents counts tokens first */
    int rc = embed_locked(s, texts, NULL, NULL, NULL, n, 1, *out, e);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The floats' little-endian bytes in base64 (what the openai client decodes to Float32Array). */
static void put_base64(base_buf *b, const float *v, size_t n) {
    size_t nb = n * 4;
    unsigned char *p = malloc(nb ? nb : 1);
    if (!p) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        base_put_le32(p + 4 * i, u);
    }
    base_buf_append(b, "\"", 1);
    char q[4];
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < nb ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < nb ? p[i + 2] : 0);
        q[0] = b64[x >> 18 & 63];
        q[1] = b64[x >> 12 & 63];
        q[2] = i + 1 < nb ? b64[x >> 6 & 63] : '=';
        q[3] = i + 2 < nb ? b64[x & 63] : '=';
        base_buf_append(b, q, 4);
    }
    base_buf_append(b, "\"", 1);
    free(p);
}

/* The inputs of a request: texts (borrowed from the JSON) or token arrays (owned). */
typedef struct {
    size_t n;
    const char **texts;
    size_t *lens;
    int32_t **ids;
    size_t *nids;
} inputs;

static void inputs_free(inputs *in) {
    for (size_t i = 0; in->ids && i < in->n; i++) free(in->ids[i]);
    free(in->ids);
    free(in->nids);
    free(in->texts);
    free(in->lens);
}

/* One token array: integers within the vocabulary. */
static int token_array(const json_t *a, const char *where, int vocab, int32_t **out, size_t *n,
                       server_error *er) {
    *n = json_array_size(a);
    if (*n == 0) return server_fail(er, 400, "input", NULL, "%s is an empty token array", where);
    *out = malloc(*n * sizeof **out);
    if (!*out) return server_fail(er, 500, NULL, NULL, "out of memory");
    for (size_t k = 0; k < *n; k++) {
        json_t *t = json_array_get(a, k);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= vocab)
            return server_fail(er, 400, "input", NULL,
                               "%s[%zu] is not a token id of this model's vocabulary (0 to %d)",
                               where, k, vocab - 1);
        (*out)[k] = (int32_t)json_integer_value(t);
    }
    return 0;
}

/* input: a string, an array of strings, an array of integers, or an array of such arrays. */
static int parse_input(const json_t *v, int vocab, inputs *in, server_error *er) {
    if (!v || json_is_null(v))
        return server_fail(er, 400, "input", NULL, "'input' is a required property");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0)
        return server_fail(er, 400, "input", NULL, "'input' is an empty array");
    if (!json_is_array(v) && !json_is_string(v))
        return server_fail(er, 400, "input", "invalid_type",
                           "'input' must be a string, an array of strings, an array of token "
                           "ids or an array of token-id arrays");
    int tokens = json_is_array(v) && json_is_integer(json_array_get(v, 0));
    if (tokens) n = 1; /* one token array */
    if (n > EMBED_MAX_INPUTS)
        return server_fail(er, 400, "input", NULL, "'input' has %zu entries; at most %d", n,
                           EMBED_MAX_INPUTS);
    in->n = n;
    int as_ids = tokens || (json_is_array(v) && json_is_array(json_array_get(v, 0)));
    if (as_ids) {
        in->ids = calloc(n, sizeof *in->ids);
        in->nids = calloc(n, sizeof *in->nids);
        if (!in->ids || !in->nids) return server_fail(er, 500, NULL, NULL, "out of memory");
        if (tokens) return token_array(v, "input", vocab, &in->ids[0], &in->nids[0], er);
        char where[48];
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(v, i);
            snprintf(where, sizeof where, "input[%zu]", i);
            if (!json_is_array(a))
                return server_fail(er, 400, "input", "invalid_type",
                                   "%s must be an array of token ids like the others", where);
            if (token_array(a, where, vocab, &in->ids[i], &in->nids[i], er)) return -1;
        }
        return 0;
    }
    in->texts = calloc(n, sizeof *in->texts);
    in->lens = calloc(n, sizeof *in->lens);
    if (!in->texts || !in->lens) return server_fail(er, 500, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(t))
            return server_fail(er, 400, "input", "invalid_type",
                               "input[%zu] must be a string like the others", i);
        if (json_string_length(t) == 0 && json_is_array(v))
            return server_fail(er, 400, "input", NULL, "input[%zu] is an empty string", i);
        if (json_string_length(t) == 0)
            return server_fail(er, 400, "input", NULL, "'input' is an empty string");
        in->texts[i] = json_string_value(t);
        in->lens[i] = json_string_length(t);
    }
    return 0;
}

static void finish_error(const server_error *er, int *status, char **resp) {
    *status = er->status;
    *resp = server_error_json(er);
}

void server_embeddings(server_embedder *s, const char *body, size_t len, int *status, char **resp) {
    server_error er;
    *resp = NULL;
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    inputs in = {0};
    float *out = NULL;
    base_buf b = {0};
    if (!o) {
        server_fail(&er, 400, NULL, "invalid_json",
                    "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        goto fail;
    }
    if (!json_is_object(o)) {
        server_fail(&er, 400, NULL, "invalid_json", "the request body must be a JSON object");
        goto fail;
    }
    const char *k;
    json_t *v;
    int base64 = 0;
    json_object_foreach(o, k, v) {
        if (!strcmp(k, "input") || !strcmp(k, "user")) continue;
        if (!strcmp(k, "model")) {
            if (!json_is_string(v)) {
                server_fail(&er, 400, "model", "invalid_type", "'model' must be a string");
                goto fail;
            }
            if (strcmp(json_string_value(v), s->id) &&
                strcmp(json_string_value(v), embed_model_name(s->m))) {
                server_fail(&er, 404, "model", "model_not_found",
                            "The model '%.200s' does not exist; this server embeds with '%.200s'",
                            json_string_value(v), s->id);
                goto fail;
            }
        } else if (!strcmp(k, "encoding_format")) {
            const char *f = json_string_value(v);
            if (!f || (strcmp(f, "float") && strcmp(f, "base64"))) {
                server_fail(&er, 400, "encoding_format", "invalid_value",
                            "'encoding_format' must be \"float\" or \"base64\"");
                goto fail;
            }
            base64 = !strcmp(f, "base64");
        } else if (!strcmp(k, "dimensions")) {
            if (!json_is_null(v) &&
                (!json_is_integer(v) || json_integer_value(v) != embed_dim(s->m))) {
                server_fail(&er, 400, "dimensions", "invalid_value",
                            "this model's vectors have %d dimensions and cannot be shortened",
                            embed_dim(s->m));
                goto fail;
            }
        } else {
            server_fail(&er, 400, k, "unknown_parameter", "Unrecognized request argument: %.100s",
                        k);
            goto fail;
        }
    }
    if (parse_input(json_object_get(o, "input"), embed_vocab_size(s->m), &in, &er)) goto fail;
    /* count every input's tokens first: one too long is refused by its index, nothing run */
    int maxt = embed_max_tokens(s->m);
    size_t total = 0;
    for (size_t i = 0; i < in.n; i++) {
        size_t nt = 0;
        base_err e = {0};
        if (in.texts) {
            if (embed_count_tokens(s->m, in.texts[i], in.lens[i], &nt, &e)) {
                server_fail(&er, 500, NULL, NULL, "input[%zu]: %s", i, e.msg);
                goto fail;
            }
        } else {
            nt = in.nids[i];
        }
        if (nt > (size_t)maxt) {
            server_fail(&er, 400, "input", "context_length_exceeded",
                        "input[%zu] has %zu tokens; this model takes at most %d (its [CLS] and "
                        "[SEP] included)",
                        i, nt, maxt);
            goto fail;
        }
        total += nt;
    }
    size_t C = (size_t)embed_dim(s->m);
    out = malloc(in.n * C * sizeof *out);
    if (!out) {
        server_fail(&er, 500, NULL, NULL, "out of memory");
        goto fail;
    }
    base_err e = {0};
    if (embed_locked(s, in.texts, in.lens, in.ids, in.nids, in.n, 0, out, &e)) {
        server_fail(&er, 500, NULL, NULL, "embedding failed: %s", e.msg);
        goto fail;
    }
    base_buf_append(&b, "{\"object\":\"list\",\"data\":[", 25);
    for (size_t i = 0; i < in.n; i++) {
        base_buf_printf(
            &b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (base64) {
            put_base64(&b, out + i * C, C);
        } else {
            base_buf_append(&b, "[", 1);
            for (size_t j = 0; j < C; j++)
                base_buf_printf(&b, "%s%.9g", j ? "," : "", (double)out[i * C + j]);
            base_buf_append(&b, "]", 1);
        }
        base_buf_append(&b, "}", 1);
    }
    json_t *idj = json_string(s->id);
    char *ids = idj ? json_dumps(idj, JSON_ENCODE_ANY) : NULL;
    json_decref(idj);
    base_buf_printf(&b, "],\"model\":%s,\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}",
                    ids ? ids : "null", total, total);
    free(ids);
    if (b.failed) {
        base_buf_free(&b);
        server_fail(&er, 500, NULL, NULL, "out of memory");
        goto fail;
    }
    *status = 200;
    *resp = b.data;
    free(out);
    inputs_free(&in);
    json_decref(o);
    return;
fail:
    finish_error(&er, status, resp);
    free(out);
    inputs_free(&in);
    json_decref(o);
}
