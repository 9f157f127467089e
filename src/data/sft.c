/* data/sft.c: fine-tuning examples -> padded rows with a loss mask (sft.h). */
#include "data/sft.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int data_sft_encode_plain(const data_msg *msgs, size_t n, tok_ids *out, void *user, base_err *e) {
    tok_vocab *v = user;
    base_buf b = {0};
    int last_assistant = n > 0 && !strcmp(msgs[n - 1].role, "assistant");
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        base_buf_printf(&b, "%s%s",
                        !strcmp(r, "system") ? "System: "
                        : !strcmp(r, "user") ? "User: "
                                             : "Assistant: ",
                        msgs[i].content);
        if (!(i + 1 == n && last_assistant)) base_buf_printf(&b, "\n");
    }
    if (!last_assistant) base_buf_printf(&b, "Assistant:");
    int rc = b.failed ? base_fail(e, BASE_ENOMEM, "out of memory")
                      : tok_encode(v, b.data ? b.data : "", b.len, 0, out, e);
    base_buf_free(&b);
    return rc;
}

/* Rows being built. */
typedef struct rows {
    int seq;
    size_t n, cap;
    int32_t *tok, *tgt;
} rows;

static size_t common_prefix(const tok_ids *a, const tok_ids *b) {
    size_t n = a->len < b->len ? a->len : b->len, i = 0;
    while (i < n && a->data[i] == b->data[i]) i++;
    return i;
}

/* Adds the example ids (len) with trained[t] (token t is a target) as one row, cut to seq + 1
 * tokens. */
static int add_row(data_sft *d, rows *R, const int32_t *ids, const uint8_t *trained, size_t len,
                   base_err *e) {
    size_t S = (size_t)R->seq;
    d->n_examples++;
    if (len > S + 1) {
        d->n_truncated++;
        len = S + 1;
    }
    size_t k = 0;
    for (size_t t = 1; t < len; t++) k += trained[t];
    if (k == 0) {
        d->n_untrainable++;
        return BASE_OK;
    }
    if (R->n == R->cap) {
        size_t cap = R->cap ? 2 * R->cap : 64;
        int32_t *a = realloc(R->tok, cap * S * sizeof(int32_t));
        if (a) R->tok = a;
        int32_t *b = a ? realloc(R->tgt, cap * S * sizeof(int32_t)) : NULL;
        if (b) R->tgt = b;
        if (!a || !b) return base_fail(e, BASE_ENOMEM, "out of memory for the examples");
        R->cap = cap;
    }
    int32_t *tok = R->tok + R->n * S, *tgt = R->tgt + R->n * S;
    for (size_t t = 0; t < S; t++) {
        tok[t] = t + 1 < len ? ids[t] : 0;
        tgt[t] = t + 1 < len && trained[t + 1] ? ids[t + 1] : -1;
    }
    R->n++;
    d->n_tokens += len;
    d->n_trained += k;
    return BASE_OK;
}

/* The end of an assistant turn at b0 in full: through the first control token within the next
 * two (the template's end-of-turn), else one token. */
static size_t turn_end(const tok_vocab *v, const tok_ids *full, size_t b0) {
    for (size_t j = b0; j < full->len && j < b0 + 2; j++) {
        int ty = tok_token_type(v, full->data[j]);
        if (ty == TOK_TYPE_CONTROL || full->data[j] == tok_eot_id(v)) return j + 1;
    }
    return b0 + 1 <= full->len ? b0 + 1 : full->len;
}

static int chat_example(data_sft *d, rows *R, const data_sft_opts *o, data_msg *m, size_t n,
                        base_err *e) {
    data_chat_encode_fn enc = o->encode ? o->encode : data_sft_encode_plain;
    void *user = o->encode ? o->encode_user : o->vocab;
    tok_ids full = {0}, part = {0};
    uint8_t *trained = NULL;
    /* an assistant turn last gets its end of turn from an empty user turn after it, cut off */
    data_msg *mm = malloc((n + 1) * sizeof *mm);
    int rc = mm ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(mm, m, n * sizeof *mm);
        mm[n] = (data_msg){"user", "", 0};
        rc = enc(mm, n + 1, &full, user, e);
    }
    if (!rc && !(trained = calloc(full.len + 1, 1)))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    size_t end = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (strcmp(m[i].role, "assistant") || !m[i].weight) continue;
        part.len = 0;
        if ((rc = enc(m, i, &part, user, e))) break;
        size_t a = common_prefix(&full, &part);
        part.len = 0;
        if ((rc = enc(m, i + 1, &part, user, e))) break;
        size_t b = turn_end(o->vocab, &full, common_prefix(&full, &part));
        for (size_t t = a; t < b; t++) trained[t] = 1;
        if (b > end) end = b;
    }
    if (!rc) rc = add_row(d, R, full.data, trained, end ? end : full.len, e);
    free(mm);
    free(trained);
    tok_ids_free(&full);
    tok_ids_free(&part);
    return rc;
}

/* prompt + completion (trained) + end of text; text alone: all trained. */
static int text_example(data_sft *d, rows *R, const data_sft_opts *o, const char *prompt,
                        const char *completion, base_err *e) {
    tok_ids ids = {0}, p = {0};
    int rc = BASE_OK;
    int32_t bos = tok_bos_id(o->vocab), eot = tok_eot_id(o->vocab);
    if (o->add_bos && bos >= 0) rc = tok_ids_push(&ids, bos);
    if (!rc && prompt) { /* p: [bos] + the prompt alone, to find where the completion starts */
        if (o->add_bos && bos >= 0) rc = tok_ids_push(&p, bos);
        if (!rc) rc = tok_encode(o->vocab, prompt, strlen(prompt), 0, &p, e);
    }
    size_t plen = prompt ? strlen(prompt) : 0, clen = strlen(completion);
    char *joined = malloc(plen + clen + 1);
    if (!joined) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        if (plen) memcpy(joined, prompt, plen);
        memcpy(joined + plen, completion, clen + 1);
        rc = tok_encode(o->vocab, joined, plen + clen, 0, &ids, e);
    }
    if (!rc && eot >= 0) rc = tok_ids_push(&ids, eot);
    uint8_t *trained = rc ? NULL : calloc(ids.len + 1, 1);
    if (!rc && !trained) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        size_t a = prompt ? common_prefix(&ids, &p) : 1;
        for (size_t t = a; t < ids.len; t++) trained[t] = 1;
        rc = add_row(d, R, ids.data, trained, ids.len, e);
    }
    free(trained);
    free(joined);
    tok_ids_free(&ids);
    tok_ids_free(&p);
    return rc;
}

static int bad_line(base_err *e, const char *path, long line, const char *what) {
    return base_fail(e, BASE_EFORMAT, "%s:%ld: %s", path, line, what);
}

static int jsonl_line(data_sft *d, rows *R, const data_sft_opts *o, const char *path, long line,
                      const char *text, size_t len, base_err *e) {
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    char why[600];
    if (!j) {
        snprintf(why, sizeof why, "not JSON: %s (column %d)", je.text, je.column);
        return bad_line(e, path, line, why);
    }
    int rc = BASE_OK;
    json_t *msgs = json_object_get(j, "messages");
    json_t *prompt = json_object_get(j, "prompt"), *comp = json_object_get(j, "completion");
    json_t *txt = json_object_get(j, "text");
    if (!json_is_object(j)) {
        rc = bad_line(e, path, line, "an example is a JSON object");
    } else if (msgs) {
        size_t n = json_is_array(msgs) ? json_array_size(msgs) : 0;
        data_msg *m = n ? calloc(n, sizeof *m) : NULL;
        if (!n) rc = bad_line(e, path, line, "\"messages\" must be a non-empty array");
        if (n && !m) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < n; i++) {
            json_t *mi = json_array_get(msgs, i), *r = json_object_get(mi, "role");
            json_t *c = json_object_get(mi, "content"), *w = json_object_get(mi, "weight");
            const char *role = json_string_value(r);
            if (!role ||
                (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))) {
                snprintf(why, sizeof why,
                         "message %zu: \"role\" must be \"system\", \"user\" or \"assistant\"", i);
                rc = bad_line(e, path, line, why);
            } else if (!json_is_string(c)) {
                snprintf(why, sizeof why, "message %zu: \"content\" must be a string", i);
                rc = bad_line(e, path, line, why);
            } else if (w && !(json_is_integer(w) &&
                              (json_integer_value(w) == 0 || json_integer_value(w) == 1))) {
                snprintf(why, sizeof why, "message %zu: \"weight\" must be 0 or 1", i);
                rc = bad_line(e, path, line, why);
            } else {
                m[i] = (data_msg){role, json_string_value(c),
                                  !strcmp(role, "assistant") && (!w || json_integer_value(w))};
            }
        }
        if (!rc) {
            rc = chat_example(d, R, o, m, n, e);
            if (rc && rc != BASE_ENOMEM) {
                snprintf(why, sizeof why, "%s", e->msg);
                rc = bad_line(e, path, line, why);
            }
        }
        free(m);
    } else if (prompt || comp) {
        if (!json_is_string(prompt) || !json_is_string(comp))
            rc = bad_line(e, path, line, "\"prompt\" and \"completion\" must both be strings");
        else
            rc = text_example(d, R, o, json_string_value(prompt), json_string_value(comp), e);
    } else if (txt) {
        if (!json_is_string(txt))
            rc = bad_line(e, path, line, "\"text\" must be a string");
        else
            rc = text_example(d, R, o, NULL, json_string_value(txt), e);
    } else {
        rc =
            bad_line(e, path, line, "no \"messages\", \"prompt\"/\"completion\" or \"text\" field");
    }
    json_decref(j);
    return rc;
}

/* Plain text: [BOS] + the text's ids, rows of seq + 1 tokens every seq tokens, all trained. */
static int plain_text(data_sft *d, rows *R, const data_sft_opts *o, const char *text, size_t len,
                      base_err *e) {
    tok_ids ids = {0};
    int rc = BASE_OK;
    if (o->add_bos && tok_bos_id(o->vocab) >= 0) rc = tok_ids_push(&ids, tok_bos_id(o->vocab));
    if (!rc) rc = tok_encode(o->vocab, text, len, 0, &ids, e);
    uint8_t *trained = rc ? NULL : malloc(ids.len + 1);
    if (!rc && !trained) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) memset(trained, 1, ids.len + 1);
    size_t S = (size_t)R->seq;
    for (size_t s = 0; !rc && s + 1 < ids.len; s += S) {
        size_t n = ids.len - s < S + 1 ? ids.len - s : S + 1;
        rc = add_row(d, R, ids.data + s, trained + s, n, e);
    }
    free(trained);
    tok_ids_free(&ids);
    return rc;
}

int data_sft_load(const char *path, const data_sft_opts *o, data_sft **out, base_err *e) {
    *out = NULL;
    if (o->seq < 1) return base_fail(e, BASE_EINVAL, "seq must be at least 1");
    char *buf;
    size_t len;
    int rc = base_read_file(path, &buf, &len, e);
    if (rc) return rc;
    data_sft *d = calloc(1, sizeof *d);
    rows R = {.seq = o->seq};
    if (!d) {
        free(buf);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    d->seq = o->seq;
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')) i++;
    if (i < len && buf[i] == '{') { /* JSONL */
        long line = 1;
        for (size_t s = 0; !rc && s < len; line++) {
            size_t t = s;
            while (t < len && buf[t] != '\n') t++;
            size_t k = s;
            while (k < t && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r')) k++;
            if (k < t) rc = jsonl_line(d, &R, o, path, line, buf + s, t - s, e);
            s = t + 1;
        }
    } else {
        rc = plain_text(d, &R, o, buf, len, e);
    }
    free(buf);
    d->n = R.n;
    d->tok = R.tok;
    d->tgt = R.tgt;
    if (!rc && d->n == 0)
        rc = base_fail(e, BASE_EINVAL,
                       "%s holds no trainable token (%zu examples; %zu without an assistant or "
                       "completion token to learn)",
                       path, d->n_examples, d->n_untrainable);
    if (rc) {
        data_sft_free(d);
        return rc;
    }
    *out = d;
    return BASE_OK;
}

void data_sft_free(data_sft *d) {
    if (!d) return;
    free(d->tok);
    free(d->tgt);
    free(d);
}

int data_sft_split(data_sft *d, double frac, uint64_t seed, data_sft **val, base_err *e) {
    *val = NULL;
    data_sft *v = calloc(1, sizeof *v);
    size_t S = (size_t)d->seq;
    if (v) {
        v->seq = d->seq;
        v->tok = malloc((d->n ? d->n : 1) * S * sizeof(int32_t));
        v->tgt = malloc((d->n ? d->n : 1) * S * sizeof(int32_t));
    }
    if (!v || !v->tok || !v->tgt) {
        data_sft_free(v);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    size_t keep = 0;
    for (size_t i = 0; i < d->n; i++) {
        double u =
            (double)(base_mix64(seed ^ base_mix64(i + 1)) >> 11) * (1.0 / 9007199254740992.0);
        int to_val = u < frac && !(keep == 0 && i + 1 == d->n); /* one row stays for training */
        data_sft *dst = to_val ? v : d;
        size_t j = to_val ? v->n++ : keep++;
        memmove(dst->tok + j * S, d->tok + i * S, S * sizeof(int32_t));
        memmove(dst->tgt + j * S, d->tgt + i * S, S * sizeof(int32_t));
    }
    d->n = keep;
    *val = v;
    return BASE_OK;
}
