/* cli/cmd_generate.c: `hearth generate` — one prompt through the inference engine (the same
 * scheduler the server drives, with one slot), the text streamed to stdout as it comes, the
 * timings to stderr at the end. */
#include "cli.h"

#include "infer/infer.h"
#include "server/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The completions in flight: all done once `done` reaches n. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, done, write_failed;
} waiter;

typedef struct completion {
    waiter *w;
    int stream;   /* written to stdout as it comes (the first one) */
    base_buf buf; /* the others' text, printed after */
    infer_event last;
    char error[512]; /* the engine's message when it failed */
} completion;

static int on_event(void *ud, const infer_event *ev) {
    completion *c = ud;
    if (ev->kind == INFER_EV_TEXT) {
        if (!c->stream) {
            base_buf_printf(&c->buf, "%.*s", (int)ev->len, ev->text);
            return c->buf.failed;
        }
        if (fwrite(ev->text, 1, ev->len, stdout) != ev->len || fflush(stdout) != 0) {
            c->w->write_failed = 1;
            return 1; /* stdout is gone (a closed pipe): stop generating */
        }
        return 0;
    }
    if (ev->error) snprintf(c->error, sizeof c->error, "%s", ev->error);
    pthread_mutex_lock(&c->w->mu);
    c->last = *ev;
    c->w->done++;
    pthread_cond_signal(&c->w->cv);
    pthread_mutex_unlock(&c->w->mu);
    return 0;
}

static int answer_event(void *ud, const infer_event *ev) {
    cli_answer *a = ud;
    int stop = a->stop && *a->stop;
    if (ev->kind == INFER_EV_TEXT) {
        const char *t = ev->text;
        size_t n = ev->len;
        while (a->text.len == 0 && n > 0 && (*t == ' ' || *t == '\n')) t++, n--;
        if (n == 0) return stop;
        base_buf_append(&a->text, t, n);
        if (a->echo && (fwrite(t, 1, n, stdout) != n || fflush(stdout) != 0)) {
            a->write_failed = 1;
            return 1;
        }
        return stop || a->text.failed;
    }
    if (ev->error) snprintf(a->error, sizeof a->error, "%s", ev->error);
    pthread_mutex_lock(&a->mu);
    a->last = *ev;
    a->done = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int cli_answer_run(struct infer_sched *s, const int32_t *ids, size_t n, const infer_sampling *sp,
                   cli_answer *a, base_err *e) {
    uint64_t id;
    int rc = infer_sched_submit(s, ids, n, sp, a->lora, answer_event, a, &id, e);
    if (rc) {
        base_buf_free(&a->text);
        return rc;
    }
    pthread_mutex_lock(&a->mu);
    while (!a->done) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int cli_lora_load(const char *who, const infer_model *m, const char *path, double scale,
                  infer_lora **out) {
    *out = NULL;
    if (!path) return 0;
    base_err e = {0};
    if (infer_lora_load(out, m, path, (float)scale, &e)) {
        fprintf(stderr, "%s: --lora: %s\n", who, e.msg);
        return 1;
    }
    return 0;
}

int cli_model_template(const char *who, const struct infer_model *m) {
    int unknown;
    server_tmpl t = server_tmpl_of_model(m, &unknown);
    if (unknown)
        fprintf(stderr,
                "%s: the model's chat template is not one hearth recognizes (nor would "
                "llama.cpp): using chatml, llama.cpp's fallback (--chat-template NAME "
                "chooses another)\n",
                who);
    return (int)t;
}

int cli_model_open(const char *who, const char *model, const char *tokenizer, int n_slots, long ctx,
                   long threads, int kv_type, infer_model **m, infer_sched **s, long *ctx_out,
                   double *load_s) {
    base_err e = {0};
    *m = NULL, *s = NULL;
    tensor_set_threads((int)threads);
    double t0 = base_now();
    if (infer_model_load(m, model, tokenizer, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        return 1;
    }
    if (load_s) *load_s = base_now() - t0;
    const nn_config *cfg = infer_model_config(*m);
    if (!ctx) ctx = cfg->max_seq < INFER_DEFAULT_CTX ? cfg->max_seq : INFER_DEFAULT_CTX;
    infer_sched_opts so = {.n_slots = n_slots,
                           .ctx = (int)ctx,
                           .max_queue = 0,
                           .prefill_chunk = 256,
                           .threads = (int)threads,
                           .kv_type = (infer_kv_type)kv_type};
    if (infer_sched_create(s, *m, &so, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        infer_model_free(*m);
        *m = NULL;
        return 1;
    }
    if (ctx_out) *ctx_out = ctx;
    return 0;
}

int cli_generate(int argc, char **argv) {
    const char *model = NULL, *tokenizer = NULL, *prompt = NULL, *lora_path = NULL;
    double lora_scale = 1;
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.max_tokens = 256;
    long threads = 2, ctx = 0, parallel = 1;
    infer_kv_type kv_type = INFER_KV_F16;
    const cli_opt opts[] = {
        CLI_OPT_STR("model", 'm', &model, "PATH",
                    "a run directory (its newest good checkpoint), a checkpoint\n"
                    "directory, or a file of `hearth export` (safetensors or GGUF)"),
        CLI_OPT_STR("tokenizer", 0, &tokenizer, "F",
                    "an .htok or GGUF vocabulary (default: the one stored with\n"
                    "the model; a byte-level model needs none). It must be the\n"
                    "model's: one the run or file records otherwise is refused"),
        CLI_OPT_STR("prompt", 'p', &prompt, "TEXT", "the prompt (or give it as the argument)"),
        CLI_OPT_INT("max-tokens", 'n', &sp.max_tokens, 0, 1 << 24, "N",
                    "tokens to generate at most (default 256; 0 = until the\n"
                    "context is full)"),
        CLI_SAMPLING_OPTS(sp),
        CLI_OPT_MULTI("stop", 0, sp.stop, &sp.n_stop, INFER_MAX_STOP, "STR",
                      "stop before this text"),
        CLI_OPT_INT("ctx", 'c', &ctx, 2, 1 << 24, "N",
                    "context length (default: the model's max_seq, at most 4096)"),
        CLI_OPT_INT("threads", 't', &threads, 1, 1024, "N", "compute threads (default 2)"),
        CLI_KV_TYPE_OPT(&kv_type),
        CLI_LORA_OPTS(&lora_path, &lora_scale),
        CLI_OPT_INT("parallel", 0, &parallel, 1, 256, "N",
                    "N completions of the prompt at once, batched in N slots\n"
                    "(seeds S, S+1, ...): the first streams, the others follow\n"
                    "it; the timing line gives the aggregate tokens/s"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "generate",
        .usage = "usage: hearth generate --model PATH [options] \"prompt\"",
        .opts = opts,
        .notes =
            "The prompt is encoded as the server encodes one (infer_prompt_encode): special-\n"
            "token text such as <|im_start|> becomes its token, as in llama.cpp; a GGUF model\n"
            "gets BOS as its file says, a hearth-trained one its documents' start token; an\n"
            "empty prompt is that start token alone. Generation ends at any end-of-generation\n"
            "token (</s>, <|eot_id|>, <|im_end|>, ...), which is not printed. The text goes to\n"
            "stdout as it comes, the timings to stderr at the end."};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos + (prompt != NULL) > 1)
        return cli_usage_error(&cmd, "one prompt only (quote it): '%s'", argv[npos]);
    if (npos == 1) prompt = argv[1];
    if (!model) {
        fprintf(stderr, "hearth: generate: --model PATH is required (see --help)\n");
        return 2;
    }
    if (!prompt) {
        fprintf(stderr, "hearth: generate: no prompt given (an empty one is \"\")\n");
        return 2;
    }
    base_err e = {0};
    infer_model *m = NULL;
    infer_sched *s = NULL;
    infer_lora *lora = NULL;
    tok_ids ids = {0};
    completion *cs = NULL;
    int status = 1;
    double t_load = 0;
    if (cli_model_open("hearth: generate", model, tokenizer, (int)parallel, ctx, threads, kv_type,
                       &m, &s, NULL, &t_load))
        return 1;
    if (cli_lora_load("hearth: generate", m, lora_path, lora_scale, &lora)) goto out;
    if (infer_prompt_encode(m, prompt, strlen(prompt), &ids, &e)) {
        fprintf(stderr, "hearth: generate: encoding the prompt: %s\n", e.msg);
        goto out;
    }
    waiter w = {
        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .n = (int)parallel};
    cs = calloc((size_t)parallel, sizeof *cs);
    if (!cs) {
        fprintf(stderr, "hearth: generate: out of memory\n");
        goto out;
    }
    double t_start = base_now();
    for (int i = 0; i < parallel; i++) {
        uint64_t id;
        cs[i].w = &w;
        cs[i].stream = i == 0;
        infer_sampling spi = sp;
        spi.seed = sp.seed + (uint64_t)i;
        if (infer_sched_submit(s, ids.data, ids.len, &spi, lora, on_event, &cs[i], &id, &e)) {
            fprintf(stderr, "hearth: generate: %s\n", e.msg);
            infer_sched_free(s); /* the ones submitted end cancelled */
            s = NULL;
            goto out;
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.done < w.n) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    double wall = base_now() - t_start;
    for (int i = 1; i < parallel; i++)
        printf("\n--- completion %d (seed %llu) ---\n%.*s", i + 1,
               (unsigned long long)(sp.seed + (uint64_t)i), (int)cs[i].buf.len,
               cs[i].buf.data ? cs[i].buf.data : "");
    fflush(stdout);
    static const char *const why[] = {"stop", "length", "cancelled", "error"};
    const infer_event *d = &cs[0].last;
    double decode_s = d->total_s - d->ttft_s;
    fprintf(stderr,
            "\n\nload %.2f s, prompt %d tokens, generated %d tokens (%s), TTFT %.1f ms, "
            "%.2f tokens/s decode (%.2f tokens/s overall)\n",
            t_load, d->prompt_tokens, d->completion_tokens, why[d->finish], d->ttft_s * 1e3,
            d->completion_tokens > 1 && decode_s > 0 ? (d->completion_tokens - 1) / decode_s : 0.0,
            d->total_s > 0 ? d->completion_tokens / d->total_s : 0.0);
    long total = 0;
    int failed = 0;
    for (int i = 0; i < parallel; i++) {
        total += cs[i].last.completion_tokens;
        failed |= cs[i].last.finish == INFER_FINISH_ERROR;
    }
    if (parallel > 1)
        fprintf(stderr,
                "%ld sequences batched: %ld tokens generated in %.2f s, %.2f tokens/s "
                "aggregate\n",
                parallel, total, wall, wall > 0 ? total / wall : 0.0);
    if (w.write_failed)
        fprintf(stderr, "hearth: generate: writing to stdout failed\n");
    else if (failed) {
        for (int i = 0; i < parallel; i++)
            if (cs[i].last.finish == INFER_FINISH_ERROR) {
                fprintf(stderr, "hearth: generate: generation %d failed inside the engine: %s\n",
                        i + 1, cs[i].error);
                break;
            }
    } else
        status = 0;
out:
    infer_sched_free(s);
    infer_lora_free(lora);
    for (long i = 0; cs && i < parallel; i++) base_buf_free(&cs[i].buf);
    free(cs);
    tok_ids_free(&ids);
    infer_model_free(m);
    return status;
}
