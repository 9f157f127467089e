/* server/chat.c: chat templates — a list of messages becomes one prompt. Each template is one
 * walk over the messages emitting text and special tokens; rendering writes the specials as
 * their text, encoding turns them into their ids so that a message containing "<s>" or
 * "<|im_end|>" stays text and cannot forge a turn. */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

static const char *const tmpl_names[] = {"hearth", "llama2", "chatml"};

int server_tmpl_parse(const char *name, server_tmpl *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, tmpl_names[i])) {
            *out = (server_tmpl)i;
            return 0;
        }
    return -1;
}

const char *server_tmpl_name(server_tmpl t) {
    return (unsigned)t < 3 ? tmpl_names[t] : "?";
}

server_tmpl server_tmpl_default(nn_family family, int tok_kind) {
    return family == NN_LLAMA && tok_kind == TOK_KIND_SPM ? SERVER_TMPL_LLAMA2 : SERVER_TMPL_HEARTH;
}

const char *server_tmpl_stop(server_tmpl t) {
    switch (t) {
    case SERVER_TMPL_HEARTH:
        return "\nUser:";
    case SERVER_TMPL_CHATML:
        return "<|im_end|>";
    default:
        return NULL; /* Llama 2 ends its turn with </s>, the end-of-text token */
    }
}

/* The walk's output: text runs are collected in `text` and flushed at each special token. */
typedef struct emitter {
    int (*special)(struct emitter *em, const char *name);
    int (*flush)(struct emitter *em);
    base_buf text;
    /* encoding */
    tok_vocab *v;
    tok_ids *out;
    base_err *e;
} emitter;

static void put(emitter *em, const char *s) {
    base_buf_printf(&em->text, "%s", s);
}

static int walk(server_tmpl t, const server_msg *m, size_t n, emitter *em) {
    int last_assistant = n > 0 && !strcmp(m[n - 1].role, "assistant");
    const char *sys = NULL; /* Llama 2 folds the system prompt into the first user turn */
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role, *c = m[i].content;
        int is_last = i + 1 == n;
        switch (t) {
        case SERVER_TMPL_HEARTH:
            put(em, !strcmp(role, "system") ? "System: "
                    : !strcmp(role, "user") ? "User: "
                                            : "Assistant: ");
            put(em, c);
            if (!(is_last && last_assistant)) put(em, "\n");
            break;
        case SERVER_TMPL_CHATML:
            if (em->special(em, "<|im_start|>")) return -1;
            put(em, role);
            put(em, "\n");
            put(em, c);
            if (!(is_last && last_assistant)) {
                if (em->special(em, "<|im_end|>")) return -1;
                put(em, "\n");
            }
            break;
        case SERVER_TMPL_LLAMA2:
            if (!strcmp(role, "system")) {
                sys = c;
                /* a system prompt with no user turn after it still reaches the model */
                if (!is_last) break;
                role = "user";
                c = "";
            }
            if (!strcmp(role, "user")) {
                if (em->special(em, "<s>")) return -1;
                put(em, "[INST] ");
                if (sys) {
                    put(em, "<<SYS>>\n");
                    put(em, sys);
                    put(em, "\n<</SYS>>\n\n");
                    sys = NULL;
                }
                put(em, c);
                put(em, " [/INST]");
            } else {
                put(em, " ");
                put(em, c);
                if (!(is_last && last_assistant)) {
                    put(em, " ");
                    if (em->special(em, "</s>")) return -1;
                }
            }
            break;
        }
    }
    if (!last_assistant) { /* the generation prompt */
        if (t == SERVER_TMPL_HEARTH)
            put(em, "Assistant:");
        else if (t == SERVER_TMPL_CHATML) {
            if (em->special(em, "<|im_start|>")) return -1;
            put(em, "assistant\n");
        }
    }
    if (em->flush(em)) return -1;
    return em->text.failed ? BASE_ENOMEM : 0;
}

/* ---- rendering as text */

static int render_special(emitter *em, const char *name) {
    put(em, name);
    return 0;
}
static int render_flush(emitter *em) {
    return 0;
}

int server_chat_render(server_tmpl t, const server_msg *m, size_t n, base_buf *out) {
    emitter em = {.special = render_special, .flush = render_flush, .text = *out};
    int rc = walk(t, m, n, &em);
    *out = em.text;
    return rc;
}

/* ---- encoding as ids */

static int encode_flush(emitter *em) {
    if (em->text.failed) return base_fail(em->e, BASE_ENOMEM, "out of memory in the chat template");
    if (em->text.len == 0) return 0;
    /* each run between special tokens is encoded afresh (SentencePiece's space prefix, as
     * Llama's own tokenizer does after <s>) */
    int rc = tok_encode(em->v, em->text.data, em->text.len, 0, em->out, em->e);
    em->text.len = 0;
    return rc;
}

static int encode_special(emitter *em, const char *name) {
    if (encode_flush(em)) return -1;
    int32_t id = -1;
    if (!strcmp(name, "<s>"))
        id = tok_bos_id(em->v);
    else if (!strcmp(name, "</s>"))
        id = tok_eot_id(em->v);
    else {
        id = tok_find(em->v, name, strlen(name));
        int type = id >= 0 ? tok_token_type(em->v, id) : -1;
        if (type != TOK_TYPE_CONTROL && type != TOK_TYPE_USER) {
            /* a vocabulary without this token reads the tag as plain text */
            put(em, name);
            return 0;
        }
    }
    if (id < 0) return 0; /* no BOS/EOS in this vocabulary: the tag is left out */
    return tok_ids_push(em->out, id) ? base_fail(em->e, BASE_ENOMEM, "out of memory") : 0;
}

int server_chat_encode(server_tmpl t, tok_vocab *v, const server_msg *m, size_t n, tok_ids *out,
                       base_err *e) {
    emitter em = {.special = encode_special, .flush = encode_flush, .v = v, .out = out, .e = e};
    int rc = walk(t, m, n, &em);
    base_buf_free(&em.text);
    if (rc == BASE_ENOMEM) return base_fail(e, rc, "out of memory in the chat template");
    return rc < 0 ? (e && e->code ? e->code : rc) : 0;
}

/* ---- a lower bound on a prompt's tokens */

size_t server_token_bytes_max(const tok_vocab *v) {
    size_t best = 1;
    int32_t n = tok_vocab_size(v);
    for (int32_t id = 0; id < n; id++) {
        const char *t;
        size_t len;
        if (tok_token_text(v, id, &t, &len, NULL) == 0 && len > best) best = len;
    }
    return best;
}
