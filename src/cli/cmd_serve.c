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

static void usage(FILE *f) {
    fprintf(f,
            "usage: hearth serve --model PATH [options]\n"
            "       hearth serve --vstore-dir DIR [options]\n\n"
            "  --model PATH         a run directory (its newest good checkpoint), a checkpoint\n"
            "                       directory, an exported .safetensors or a GGUF file\n"
            "  --tokenizer F        an .htok or GGUF vocabulary (default: the model's own)\n"
            "  --model-name ID      the id clients send as \"model\" (default: PATH's name)\n"
            "  --chat-template T    hearth | llama2 | chatml (default: by model family)\n"
            "  --vstore-dir DIR     also serve the vector store (Chroma v2 API under /api/v2)\n"
            "  --host ADDR          address to bind (default 127.0.0.1)\n"
            "  --port N             port (default 8080; 0 picks a free one)\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' (not on /health);\n"
            "                       default: $HEARTH_API_KEY (keeps the key out of `ps`)\n"
            "  --slots N            sequences decoded together (default 4)\n"
            "  --ctx N              context per slot in tokens (default: the model's maximum, at most\n"
            "                       4096)\n"
            "  --queue N            requests waiting beyond the slots; more get 429 (default 64)\n"
            "  --threads N          compute threads (default: OpenMP's)\n"
            "  --prefill-chunk N    prompt tokens prefilled per step (default 64)\n"
            "  --max-rows N         rows one step computes at most, decode rows first, so\n"
            "                       long prompts do not stall running streams (0: no limit)\n"
            "  --max-body BYTES     request body limit; larger gets 413 (default 1048576)\n"
            "  --max-conns N        simultaneous connections (default 256)\n"
            "  --max-conns-per-ip N simultaneous connections from one address (default 64;\n"
            "                       0: no limit, e.g. behind a reverse proxy)\n"
            "  --timeout S          close connections idle this long (default 30)\n"
            "  --header-timeout S   a request's line and headers must arrive within S seconds\n"
            "                       (default 10; 0: no limit)\n"
            "  --body-timeout S     a request's body must arrive within S seconds of its\n"
            "                       headers (default 60; 0: no limit)\n");
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

int cli_serve(int argc, char **argv) {
    server_opts o;
    server_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        struct {
            const char *flag;
            const char **dst;
        } strs[] = {{"--model", &o.model_path},      {"--tokenizer", &o.tokenizer},
                    {"--model-name", &o.model_name}, {"--chat-template", &o.chat_template},
                    {"--vstore-dir", &o.vstore_dir}, {"--host", &o.host},
                    {"--api-key", &o.api_key}};
        struct {
            const char *flag;
            long lo, hi;
            int *dst;
        } ints[] = {{"--port", 0, 65535, &o.port},
                    {"--slots", 1, 256, &o.slots},
                    {"--ctx", 1, 1 << 20, &o.ctx},
                    {"--queue", 0, 1 << 16, &o.queue},
                    {"--threads", 1, 1024, &o.threads},
                    {"--prefill-chunk", 1, 1 << 16, &o.prefill_chunk},
                    {"--max-rows", 0, 1 << 20, &o.max_rows}};
        int found = 0;
        for (size_t j = 0; j < sizeof strs / sizeof strs[0] && !found; j++) {
            if (strcmp(a, strs[j].flag)) continue;
            if (!(v = cli_value(argc, argv, &i))) return 2;
            *strs[j].dst = v;
            found = 1;
        }
        for (size_t j = 0; j < sizeof ints / sizeof ints[0] && !found; j++) {
            if (strcmp(a, ints[j].flag)) continue;
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, ints[j].lo, ints[j].hi, &x))
                return 2;
            *ints[j].dst = (int)x;
            found = 1;
        }
        if (found) continue;
        if (!strcmp(a, "--max-body")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 64, 1L << 30, &x)) return 2;
            o.body_limit = (size_t)x;
        } else if (!strcmp(a, "--max-conns")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 1, 65536, &x)) return 2;
            o.max_conns = (unsigned)x;
        } else if (!strcmp(a, "--timeout")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 1, 86400, &x)) return 2;
            o.timeout_s = (unsigned)x;
        } else if (!strcmp(a, "--max-conns-per-ip")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 0, 65536, &x)) return 2;
            o.max_conns_per_ip = (unsigned)x;
        } else if (!strcmp(a, "--header-timeout") || !strcmp(a, "--body-timeout")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 0, 86400, &x)) return 2;
            *(a[2] == 'h' ? &o.header_timeout_s : &o.body_timeout_s) = (unsigned)x;
        } else {
            fprintf(stderr, "hearth serve: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.api_key) o.api_key = getenv("HEARTH_API_KEY");
    if (!o.model_path && !o.vstore_dir) {
        fprintf(stderr, "hearth serve: --model PATH or --vstore-dir DIR is required\n\n");
        usage(stderr);
        return 2;
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
    if (o.model_path) printf("hearth serve: loading %s ...\n", o.model_path);
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
    server_stop(s);
    return rc;
}
