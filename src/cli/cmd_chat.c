/* cli/cmd_chat.c: `hearth chat` — a conversation with a model in the terminal. Each line read
 * from stdin is a user turn; the whole history goes through the model's chat template (the
 * server's, src/server/chat.c) and the answer streams back through the inference scheduler
 * (one slot, as `hearth generate`). History that no longer fits the context loses its oldest
 * turns, with a note. Lines starting with '/' are commands (/help). Works on a pipe too. */
#include "cli.h"

#include "infer/infer.h"
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SIGINT while an answer streams stops that answer; at the prompt it ends the chat. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The conversation: messages[0] is the system prompt when there is one. */
typedef struct history {
    server_msg *m;
    size_t n, cap, first_turn; /* first_turn: 1 with a system prompt, else 0 */
} history;

static int history_add(history *h, const char *role, const char *content, size_t len) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 16;
        server_msg *m = realloc(h->m, nc * sizeof *m);
        if (!m) return -1;
        h->m = m;
        h->cap = nc;
    }
    char *r = strdup(role), *c = strndup(content, len);
    if (!r || !c) {
        free(r);
        free(c);
        return -1;
    }
    h->m[h->n++] = (server_msg){r, c};
    return 0;
}

/* Drops messages [from, from + k). */
static void history_drop(history *h, size_t from, size_t k) {
    if (k == 0) return; /* h->m may still be NULL */
    for (size_t i = from; i < from + k; i++) {
        free(h->m[i].role);
        free(h->m[i].content);
    }
    memmove(h->m + from, h->m + from + k, (h->n - from - k) * sizeof *h->m);
    h->n -= k;
}

static void history_free(history *h) {
    history_drop(h, 0, h->n);
    free(h->m);
}

/* The prompt of the whole history, as the server encodes a chat request. */
static int encode(server_tmpl t, infer_model *m, const history *h, tok_ids *ids, base_err *e) {
    ids->len = 0;
    return server_chat_encode(t, m, h->m, h->n, ids, e);
}

#define CHAT_COMMANDS                                                                              \
    "  /clear        forget the conversation (the system prompt stays)\n"                          \
    "  /history      show the conversation as the model reads it\n"                                \
    "  /bye, /quit   end the chat (so does end of input, Ctrl-D)\n"                                \
    "  /help         this list\n"                                                                  \
    "  //text        send a message that starts with '/'\n"                                        \
    "Ctrl-C stops an answer; at the prompt, it ends the chat."

int cli_chat(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL, *tmpl_name = NULL, *system = NULL,
               *lora_path = NULL;
    double lora_scale = 1;
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.max_tokens = 512;
    long threads = 2, ctx = 0;
    infer_kv_type kv_type = INFER_KV_F16;
    const cli_opt opts[] = {
        CLI_OPT_STR("model", 'm', &model, "PATH",
                    "a run directory, a checkpoint directory, or a file of\n"
                    "`hearth export` (safetensors or GGUF)"),
        CLI_OPT_STR("tokenizer", 0, &tokenizer, "F",
                    "an .htok or GGUF vocabulary (default: the model's own)"),
        CLI_OPT_STR("chat-template", 0, &tmpl_name, "T",
                    "a template by llama.cpp's name (llama3, chatml, phi3,\n"
                    "gemma, llama2, ...) or hearth (default: the model's own,\n"
                    "as `hearth serve` chooses it)"),
        CLI_OPT_STR("system", 0, &system, "TEXT", "a system prompt, first in the conversation"),
        CLI_OPT_INT("max-tokens", 'n', &sp.max_tokens, 0, 1 << 24, "N",
                    "tokens per answer at most (default 512; 0 = until the\n"
                    "context is full)"),
        CLI_SAMPLING_OPTS(sp),
        CLI_OPT_INT("ctx", 'c', &ctx, 2, 1 << 24, "N",
                    "context length (default: the model's max_seq, at most 4096)"),
        CLI_OPT_INT("threads", 't', &threads, 1, 1024, "N", "compute threads (default 2)"),
        CLI_KV_TYPE_OPT(&kv_type),
        CLI_LORA_OPTS(&lora_path, &lora_scale),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "chat",
        .usage = "usage: hearth chat --model PATH [options]",
        .about = "A conversation with the model: each line on stdin is your turn, the answer\n"
                 "streams to stdout. The history goes to the model through its chat template;\n"
                 "when it no longer fits the context the oldest turns are dropped (with a note).\n"
                 "Answer n uses seed S + n - 1.",
        .opts = opts,
        .notes = "Commands (a line that starts with '/'):\n" CHAT_COMMANDS};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0)
        return cli_usage_error(&cmd, "unexpected argument '%s' (type messages on stdin)", argv[1]);
    if (!model) return cli_usage_error(&cmd, "--model PATH is required");
    server_tmpl tmpl = SERVER_TMPL_HEARTH;
    if (tmpl_name && server_tmpl_parse(tmpl_name, &tmpl))
        return cli_usage_error(&cmd, "unknown chat template '%s' (known: %s)", tmpl_name,
                               server_tmpl_names());

    base_err e = {0};
    infer_model *m = NULL;
    infer_sched *s = NULL;
    infer_lora *lora = NULL;
    history h = {0};
    tok_ids ids = {0};
    char *line = NULL;
    size_t lcap = 0;
    int status = 1;
    if (cli_model_open("hearth chat", model, tokenizer, 1, ctx, threads, kv_type, &m, &s, &ctx,
                       NULL))
        return 1;
    if (cli_lora_load("hearth chat", m, lora_path, lora_scale, &lora)) goto out;
    if (!tmpl_name) tmpl = (server_tmpl)cli_model_template("hearth chat", m);
    const char *tstop = server_tmpl_stop(tmpl);
    if (tstop && sp.n_stop < INFER_MAX_STOP) sp.stop[sp.n_stop++] = tstop;
    if (system && history_add(&h, "system", system, strlen(system))) goto oom;
    h.first_turn = h.n;
    /* the answer needs room: what --max-tokens allows, else a quarter of the context */
    long reserve = sp.max_tokens > 0 && sp.max_tokens < ctx / 2 ? sp.max_tokens : ctx / 4;
    if (reserve < 1) reserve = 1;

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: Ctrl-C at the prompt ends the read */
    sigaction(SIGINT, &sa, NULL);
    int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    fprintf(stderr, "hearth chat: %s (template %s, context %ld tokens); /help lists commands\n",
            infer_model_name(m), server_tmpl_name(tmpl), ctx);
    uint64_t turn = 0;
    for (;;) {
        if (tty) {
            printf("> ");
            fflush(stdout);
        }
        interrupted = 0;
        errno = 0;
        ssize_t len = getline(&line, &lcap, stdin);
        if (len < 0) {
            if (tty) printf("\n");
            break; /* end of input, or Ctrl-C at the prompt */
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        const char *msg = line;
        if (line[0] == '/' && line[1] == '/') {
            msg = line + 1;
        } else if (line[0] == '/') {
            if (!strcmp(line, "/bye") || !strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
            if (!strcmp(line, "/clear")) {
                history_drop(&h, h.first_turn, h.n - h.first_turn);
                fprintf(stderr, "hearth chat: the conversation is cleared\n");
            } else if (!strcmp(line, "/help")) {
                printf("%s\n", CHAT_COMMANDS);
            } else if (!strcmp(line, "/history")) {
                base_buf b = {0};
                /* as the model reads it: the answer's turn open unless the answer is there */
                int open = h.n && strcmp(h.m[h.n - 1].role, "assistant") != 0;
                if (h.n && server_chat_render_ex(tmpl, h.m, h.n, open, &b)) goto oom;
                if (h.n) printf("%.*s\n", (int)b.len, b.data ? b.data : "");
                base_buf_free(&b);
            } else {
                fprintf(stderr, "hearth chat: unknown command '%s' (/help lists them)\n", line);
            }
            fflush(stdout);
            continue;
        }
        if (history_add(&h, "user", msg, strlen(msg))) goto oom;
        /* the oldest turns (a user message and its answer) go until the prompt leaves room */
        size_t dropped = 0;
        for (;;) {
            if (encode(tmpl, m, &h, &ids, &e)) {
                fprintf(stderr, "hearth chat: encoding the conversation: %s\n", e.msg);
                goto out;
            }
            if ((long)ids.len + reserve <= ctx || h.n - h.first_turn <= 1) break;
            size_t k = h.n - h.first_turn >= 3 ? 2 : 1;
            history_drop(&h, h.first_turn, k);
            dropped += k;
        }
        if (dropped)
            fprintf(stderr,
                    "hearth chat: note: the conversation no longer fits the context (%ld "
                    "tokens): its oldest %zu message%s dropped\n",
                    ctx, dropped, dropped == 1 ? " was" : "s were");
        if ((long)ids.len >= ctx) {
            fprintf(stderr,
                    "hearth chat: that message is too long: the prompt is %zu tokens and the "
                    "context holds %ld\n",
                    ids.len, ctx);
            history_drop(&h, h.n - 1, 1);
            continue;
        }
        cli_answer a = CLI_ANSWER_INIT;
        a.echo = 1, a.stop = &interrupted, a.lora = lora;
        infer_sampling spi = sp;
        spi.seed = sp.seed + turn++;
        if (cli_answer_run(s, ids.data, ids.len, &spi, &a, &e)) {
            fprintf(stderr, "hearth chat: %s\n", e.msg);
            goto out;
        }
        printf("\n");
        fflush(stdout);
        int failed = a.write_failed || a.text.failed || a.last.finish == INFER_FINISH_ERROR;
        if (a.write_failed)
            fprintf(stderr, "hearth chat: writing to stdout failed\n");
        else if (a.text.failed)
            fprintf(stderr, "hearth chat: out of memory\n");
        else if (a.last.finish == INFER_FINISH_ERROR)
            fprintf(stderr, "hearth chat: the answer failed inside the engine: %s\n", a.error);
        else if (a.last.finish == INFER_FINISH_CANCELLED)
            fprintf(stderr, "hearth chat: (stopped)\n");
        int rc =
            failed ? 0 : history_add(&h, "assistant", a.text.data ? a.text.data : "", a.text.len);
        base_buf_free(&a.text);
        if (failed) goto out;
        if (rc) goto oom;
    }
    status = 0;
    goto out;
oom:
    fprintf(stderr, "hearth chat: out of memory\n");
out:
    infer_sched_free(s);
    infer_lora_free(lora);
    free(line);
    tok_ids_free(&ids);
    history_free(&h);
    infer_model_free(m);
    return status;
}
