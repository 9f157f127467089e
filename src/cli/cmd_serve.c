/* cli/cmd_serve.c: `hearth serve` — the OpenAI-compatible HTTP server (src/server) on a model,
 * and/or the vector store's Chroma API on a directory. Prints the URL once listening, reports
 * when the model is loaded, and shuts down cleanly on SIGINT/SIGTERM. */
#include "cli.h"

#include "server/server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

/* The server's operator log: stderr, one line each. */
static void log_line(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "hearth serve: %s\n", line);
}

/* --lora NAME=PATH[:SCALE], repeatable: one adapter over the model (cli_opt_fn). */
#define SERVE_MAX_LORAS 64
typedef struct lora_list {
    server_lora l[SERVE_MAX_LORAS];
    int n;
} lora_list;

static int opt_lora(void *ud, const cli_opt *o, const char *val) {
    lora_list *ls = ud;
    const char *eq = strchr(val, '=');
    if (!eq || eq == val || !eq[1]) {
        fprintf(stderr, "hearth: serve: --lora wants NAME=PATH[:SCALE], got '%s'\n", val);
        return -1;
    }
    if (ls->n == SERVE_MAX_LORAS) {
        fprintf(stderr, "hearth: serve: at most %d adapters (--lora)\n", SERVE_MAX_LORAS);
        return -1;
    }
    /* the name and the path as their own strings (argv's are not cut); kept for the process */
    size_t nlen = (size_t)(eq - val);
    char *name = strndup(val, nlen), *path = strdup(eq + 1);
    if (!name || !path) {
        free(name), free(path);
        fprintf(stderr, "hearth: serve: out of memory\n");
        return -1;
    }
    float scale = 1;
    char *colon = strrchr(path, ':'), *end;
    if (colon && colon[1]) { /* ":SCALE" when what follows the last ':' is a number */
        double v = strtod(colon + 1, &end);
        if (!*end) {
            if (!(v > -1e6 && v < 1e6)) {
                fprintf(stderr, "hearth: serve: --lora %s: the scale must be in (-1e6, 1e6)\n",
                        val);
                free(name), free(path);
                return -1;
            }
            scale = (float)v;
            *colon = 0;
        }
    }
    (void)o;
    ls->l[ls->n++] = (server_lora){.name = name, .path = path, .scale = scale};
    return 0;
}

static int serve(int argc, char **argv, lora_list *ls) {
    server_opts o;
    server_opts_default(&o);
    const cli_opt opts[] = {
        CLI_OPT_STR("model", 'm', &o.model_path, "PATH",
                    "a run directory (its newest good checkpoint), a checkpoint\n"
                    "directory, an exported .safetensors or a GGUF file"),
        CLI_OPT_STR("tokenizer", 0, &o.tokenizer, "F",
                    "an .htok or GGUF vocabulary (default: the model's own)"),
        CLI_OPT_STR("model-name", 0, &o.model_name, "ID",
                    "the id clients send as \"model\" (default: PATH's stem,\n"
                    "qwen2.5-0.5b-instruct for qwen2.5-0.5b-instruct.gguf;\n"
                    "the file name is accepted too)"),
        CLI_OPT_CALL("lora", 0, opt_lora, ls, "NAME=PATH[:SCALE]",
                     "serve a LoRA adapter GGUF over the model as model NAME\n"
                     "(repeatable): the base stays one, each request's \"model\"\n"
                     "picks the base or an adapter, and sequences of different\n"
                     "adapters decode in one batch. SCALE: its strength\n"
                     "(llama.cpp's --lora-scaled; default 1)"),
        CLI_OPT_STR("chat-template", 0, &o.chat_template, "T",
                    "a template by llama.cpp's name: llama3, chatml, phi3,\n"
                    "gemma, llama2, mistral-v7, zephyr, ... or hearth\n"
                    "(default: the GGUF's tokenizer.chat_template as llama.cpp\n"
                    "recognizes it; chatml when unknown; by family otherwise)"),
        CLI_OPT_STR("vstore-dir", 0, &o.vstore_dir, "DIR",
                    "also serve the vector store (Chroma v2 API under /api/v2)"),
        CLI_OPT_STR("rag-collection", 0, &o.rag_collection, "NAME",
                    "the collection of PrivateGPT's routes (/v1/ingest,\n"
                    "/v1/chunks, use_context; default documents)"),
        CLI_OPT_STR("embed-model", 0, &o.embed_model_path, "PATH",
                    "serve POST /v1/embeddings with a BERT embedding model (a GGUF\n"
                    "bert file or a Hugging Face directory); the vector store\n"
                    "embeds documents and query_texts of collections that name it"),
        CLI_OPT_STR("embed-model-name", 0, &o.embed_model_name, "ID",
                    "the id clients send as \"model\" for embeddings (default: its name)"),
        CLI_OPT_STR("host", 0, &o.host, "ADDR", "address to bind (default 127.0.0.1)"),
        CLI_OPT_INT("port", 0, &o.port, 0, 65535, "N", "port (default 8080; 0 picks a free one)"),
        CLI_OPT_STR("api-key", 0, &o.api_key, "KEY",
                    "require 'Authorization: Bearer KEY' (not on /health);\n"
                    "default: $HEARTH_API_KEY (keeps the key out of `ps`)"),
        CLI_OPT_INT("slots", 0, &o.slots, 1, 256, "N", "sequences decoded together (default 4)"),
        CLI_OPT_INT("ctx", 'c', &o.ctx, 1, 1 << 20, "N",
                    "context per slot in tokens (default: the model's maximum,\n"
                    "at most 4096)"),
        CLI_OPT_INT("queue", 0, &o.queue, 0, 1 << 16, "N",
                    "requests waiting beyond the slots; more get 429 (default 64)"),
        CLI_OPT_INT("threads", 't', &o.threads, 1, 1024, "N",
                    "compute threads (default: OpenMP's)"),
        CLI_KV_TYPE_OPT(&o.kv_type),
        CLI_OPT_INT("prefill-chunk", 0, &o.prefill_chunk, 1, 1 << 16, "N",
                    "prompt tokens prefilled per step (default 64)"),
        CLI_OPT_INT("max-rows", 0, &o.max_rows, 0, 1 << 20, "N",
                    "rows one step computes at most, decode rows first, so\n"
                    "long prompts do not stall running streams (0: no limit)"),
        CLI_OPT_INT("max-body", 0, &o.body_limit, 64, 1L << 30, "BYTES",
                    "request body limit; larger gets 413 (default 1048576)"),
        CLI_OPT_INT("max-conns", 0, &o.max_conns, 1, 65536, "N",
                    "simultaneous connections (default 256)"),
        CLI_OPT_INT("timeout", 0, &o.timeout_s, 1, 86400, "S",
                    "close connections idle this long (default 30)"),
        CLI_OPT_INT("max-conns-per-ip", 0, &o.max_conns_per_ip, 0, 65536, "N",
                    "simultaneous connections from one address (default 64;\n"
                    "0: no limit, e.g. behind a reverse proxy)"),
        CLI_OPT_INT("header-timeout", 0, &o.header_timeout_s, 0, 86400, "S",
                    "a request's line and headers must arrive within S seconds\n"
                    "(default 10; 0: no limit)"),
        CLI_OPT_INT("body-timeout", 0, &o.body_timeout_s, 0, 86400, "S",
                    "a request's body must arrive within S seconds of its\n"
                    "headers (default 60; 0: no limit)"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = "serve",
                         .usage = "usage: hearth serve --model PATH [options]\n"
                                  "       hearth serve --vstore-dir DIR [options]\n"
                                  "       hearth serve --embed-model PATH [options]",
                         .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (!o.api_key) o.api_key = getenv("HEARTH_API_KEY");
    o.loras = ls->l, o.n_loras = ls->n;
    o.log = log_line;
    if (!o.model_path && !o.vstore_dir && !o.embed_model_path) {
        return cli_usage_error(&cmd, "--model PATH or --vstore-dir DIR is required (or "
                                     "--embed-model PATH)");
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second signal kills (e.g. a model load that hangs) */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not a kill */

    server *s;
    base_err e = {0};
    if (server_start(&s, &o, &e)) {
        fprintf(stderr, "hearth serve: %s\n", e.msg);
        return 1;
    }
    int v6 = strchr(o.host, ':') != NULL;
    printf("hearth serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", o.host, v6 ? "]" : "",
           server_port(s));
    if (o.vstore_dir) {
        printf("hearth serve: vector store %s under /api/v2\n", o.vstore_dir);
        const char *notes = server_vstore_notes(s);
        if (notes[0]) printf("hearth serve: vector store repairs:\n%s\n", notes);
    }
    if (o.embed_model_path)
        printf("hearth serve: embedding model %s at /v1/embeddings\n", o.embed_model_path);
    if (o.model_path) printf("hearth serve: loading %s ...\n", o.model_path);
    for (int i = 0; i < o.n_loras; i++)
        printf("hearth serve: adapter %s: %s (scale %g)\n", o.loras[i].name, o.loras[i].path,
               (double)o.loras[i].scale);
    fflush(stdout);
    int rc = 0, last = -1; /* the load may have finished already: report it */
    while (!stop_signal) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        int st = server_state(s);
        if (st == last) continue;
        last = st;
        if (st == SERVER_READY && o.model_path) {
            printf("hearth serve: model loaded; ready\n");
            fflush(stdout);
        } else if (st == SERVER_FAILED) {
            fprintf(stderr, "hearth serve: %s\n", server_load_error(s)->msg);
            rc = 1;
            break;
        }
    }
    if (stop_signal) {
        printf("hearth serve: stopping (%s)\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
        fflush(stdout);
    }
    base_err se = {0};
    if (server_stop(s, &se))
        fprintf(stderr,
                "hearth serve: warning: %s (no record is lost: the next start catches"
                " the index up from the database)\n",
                se.msg);
    return rc;
}

int cli_serve(int argc, char **argv) {
    lora_list ls = {0}; /* --lora's names and paths, copied out of argv */
    int rc = serve(argc, argv, &ls);
    for (int i = 0; i < ls.n; i++) free((char *)ls.l[i].name), free((char *)ls.l[i].path);
    return rc;
}
