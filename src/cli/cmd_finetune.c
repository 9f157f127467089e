/* cli/cmd_finetune.c: `hearth finetune` (LoRA or full fine-tuning of a GGUF base model,
 * src/train/finetune.c) and `hearth merge` (a base and a LoRA adapter GGUF -> one model file:
 * GGUF in F32 or any llama-quantize type, or safetensors). Chat examples are rendered with the
 * server's chat templates (server_chat_encode). */
#include "cli.h"

#include "ckpt/gguf_model.h"
#include "ckpt/lora_io.h"
#include "ckpt/safetensors.h"
#include "gguf/gguf.h"
#include "nn/lora.h"
#include "server/server.h"
#include "train/finetune.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct chat_cfg {
    const char *tmpl; /* --chat-template; NULL: the base GGUF's own, as serving it would pick */
    const char *text; /* the base's tokenizer.chat_template (ckpt_gguf_chat_template), or NULL */
    int picked;       /* t chosen */
    int quiet;        /* not rank 0: the choice is rank 0's to say */
    server_tmpl t;
} chat_cfg;

/* The template serving the tuned GGUF will use (server_tmpl_for_model on its chat_template,
 * which `hearth merge` and the adapter keep from the base): the examples are rendered with it. */
static int pick_template(chat_cfg *c, tok_vocab *v, nn_family fam, base_err *e) {
    if (c->picked) return BASE_OK;
    c->picked = 1;
    if (c->tmpl) {
        if (server_tmpl_parse(c->tmpl, &c->t))
            return base_fail(e, BASE_EINVAL, "unknown chat template '%s' (known: %s)", c->tmpl,
                             server_tmpl_names());
        return BASE_OK;
    }
    int unknown = 0;
    c->t = server_tmpl_for_model(c->text, 1, fam, tok_kind(v), &unknown);
    if (!c->quiet)
        fprintf(stderr, "hearth finetune: chat examples rendered with the %s template%s\n",
                server_tmpl_name(c->t),
                unknown
                    ? " (the base's template is not one hearth or llama.cpp recognizes: chatml, "
                      "llama.cpp's fallback; --chat-template NAME chooses another)"
                    : "");
    return BASE_OK;
}

static int chat(const data_msg *msgs, size_t n, tok_vocab *v, nn_family fam, tok_ids *out,
                void *user, base_err *e) {
    chat_cfg *c = user;
    int rc = pick_template(c, v, fam, e);
    if (rc) return rc;
    server_msg *m = malloc((n ? n : 1) * sizeof *m);
    if (!m) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        m[i] = (server_msg){(char *)msgs[i].role, (char *)msgs[i].content};
    /* the generation prompt after a last message that is not the assistant's */
    int add_ass = n == 0 || strcmp(msgs[n - 1].role, "assistant") != 0;
    rc = server_chat_encode_vocab(c->t, v, 0, m, n, add_ass, out, e);
    free(m);
    return rc;
}

int cli_finetune(int argc, char **argv) {
    ft_opts o;
    ft_opts_default(&o);
    train_opts *t = &o.t;
    const char *targets = "q,k,v,o";
    chat_cfg cc = {0};
    base_err e = {0};
    cli_train_run r = {.cmd = "finetune", .o = t, .timeout_s = 300};
    /* finetune's own options, then train's (cli_train_opts: one table for both commands) */
    cli_opt opts[11 + CLI_TRAIN_OPTS_MAX + 1] = {
        CLI_OPT_STR("base", 0, &o.base, "MODEL",
                    "the model to refine: a GGUF file (F32, F16, BF16 or a\n"
                    "quantized type; LoRA keeps it in that type, dequantizing\n"
                    "each matrix as used (QLoRA), so it costs about the file's\n"
                    "size; --full loads it in F32), or a hearth run, checkpoint\n"
                    "or safetensors export (made DIR/base.gguf)"),
        CLI_OPT_STR("data", 0, &t->data, "FILE",
                    "JSONL ({\"messages\": [...]} as OpenAI's fine-tuning API,\n"
                    "{\"prompt\", \"completion\"}, {\"text\"}) or plain text"),
        CLI_OPT_STR("out", 0, &t->out_dir, "DIR",
                    "run directory: metrics.jsonl, loss.svg, checkpoints and\n"
                    "adapter.gguf + adapter/ (PEFT), or model.gguf with --full"),
        CLI_OPT_STR("val", 0, &o.val, "FILE", "held-out examples (default: --val-frac of --data)"),
        CLI_OPT_FLOAT("val-frac", 0, &o.val_frac, 0, 0.99, "X",
                      "fraction of --data's examples held out (default 0.1);\n"
                      "evaluated before the first step and at every eval"),
        CLI_OPT_FLAG("full", 0, &o.full, "train every weight instead of LoRA adapters"),
        CLI_OPT_INT("lora-rank", 0, &o.lora_rank, 1, 4096, "R", "adapter rank (default 8)"),
        CLI_OPT_FLOAT("lora-alpha", 0, &o.lora_alpha, 1e-6, 1e6, "A",
                      "adapter scale alpha (scale alpha/rank; default 16)"),
        CLI_OPT_FLOAT("lora-dropout", 0, &o.lora_dropout, 0, 0.99, "P",
                      "dropout on the adapters' input (default 0.05)"),
        CLI_OPT_STR("lora-targets", 0, &targets, "LIST",
                    "adapted projections: q,k,v,o,gate,up,down or all\n(default q,k,v,o)"),
        CLI_OPT_STR("chat-template", 0, &cc.tmpl, "NAME",
                    "a template by llama.cpp's name (default: the base GGUF's\n"
                    "own, as serving it picks)"),
    };
    int n = cli_train_opts(&r, opts);
    opts[n] = (cli_opt)CLI_OPT_END;
    const cli_cmd cmd = {
        .name = "finetune",
        .usage = "usage: hearth finetune --base MODEL.gguf --data FILE --out DIR [options]",
        .opts = opts,
        .notes = "The loss counts assistant tokens (chat) or the completion (prompt/completion)\n"
                 "only. Checkpoints hold what is trained (the adapters, or every weight with\n"
                 "--full) and its AdamW state. SIGINT/SIGTERM: finish the step, write a\n"
                 "checkpoint, exit 130/143; rerun the same command to resume (bit-exact).\n"
                 "data parallel: mpirun -np N hearth finetune ... equals one process with\n"
                 "--accum N x accum, bit for bit. `hearth merge` makes one model of the base\n"
                 "and the adapter."};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (!o.base || !t->data || !t->out_dir)
        return cli_usage_error(&cmd, "--base MODEL, --data FILE and --out DIR are required");
    if (nn_lora_parse_targets(targets, &o.lora_targets, &e))
        return cli_usage_error(&cmd, "--lora-targets: %s", e.msg);
    o.chat = chat;
    o.chat_user = &cc;
    base_file_kind kind;
    if (base_file_kind_of(o.base, &kind, &e)) {
        fprintf(stderr, "hearth finetune: --base: %s\n", e.msg);
        return 1;
    }
    int st = cli_train_start(&r);
    if (st >= 0) return st;
    cc.quiet = r.rank != 0;
    /* a hearth run, checkpoint or safetensors export: made a GGUF file in the run directory
     * first (the inference loader reads all three; rank 0 makes it, the others wait for it),
     * then fine-tuned like any GGUF base */
    static char conv[4096];
    if (kind == BASE_FILE_RUN_DIR || kind == BASE_FILE_CKPT_DIR || kind == BASE_FILE_SAFETENSORS) {
        snprintf(conv, sizeof conv, "%s/base.gguf", t->out_dir);
        int rc = 0;
        if (r.rank == 0 && access(conv, F_OK) != 0) {
            if (base_mkdir_p(t->out_dir, &e)) {
                fprintf(stderr, "hearth finetune: %s\n", e.msg);
                rc = 1;
            } else if (cli_export_gguf(o.base, NULL, conv, NULL, 0)) {
                rc = 1;
            }
        }
        if (dist_agree(r.d, rc ? BASE_EIO : BASE_OK, &e)) {
            if (r.rank != 0) fprintf(stderr, "hearth finetune: rank 0 could not make %s\n", conv);
            dist_close(r.d);
            return 1;
        }
        o.base = conv;
    }
    char *base_template = ckpt_gguf_chat_template(o.base);
    cc.text = o.chat_template = base_template;
    printf("hearth finetune: %s, %s, batch %dx%d, %d steps, %d threads\n", o.base,
           o.full ? "every weight" : "LoRA", t->batch, t->seq, t->steps, t->threads);
    cli_train_banner(&r);
    ft_result res;
    int rc = ft_run(&o, cli_train_report, &r, &res, &e);
    free(base_template);
    /* a run that failed or stopped has no sample (train.h) */
    if ((st = cli_train_end(&r, rc, &res.run, &e)) >= 0) return st;
    if (res.run.complete) {
        printf("the run in %s is already complete (step %ld); nothing was written\n", t->out_dir,
               res.run.step);
        return 0;
    }
    printf("data: %zu train rows, %zu held out, %zu truncated; %zu trained parameters\n",
           res.n_train, res.n_val, res.n_truncated, res.n_trainable_params);
    if (!isnan(res.run.first_val) && !isnan(res.run.last_val))
        printf("held-out loss %.4f -> %.4f\n", (double)res.run.first_val, (double)res.run.last_val);
    printf("run written to %s (%s)\n", t->out_dir,
           o.full     ? "model.gguf"
           : res.peft ? "adapter.gguf, adapter/ (PEFT)"
                      : "adapter.gguf");
    cli_train_sample(res.run.sample);
    return 0;
}

int cli_merge(int argc, char **argv) {
    const char *base = NULL, *lora = NULL, *out = NULL, *type = NULL, *format = "gguf";
    int pure = 0;
    base_err e = {0};
    const cli_opt opts[] = {
        CLI_OPT_STR("base", 0, &base, "MODEL", "the base model (GGUF)"),
        CLI_OPT_STR("lora", 0, &lora, "ADAPTER", "a LoRA adapter GGUF (hearth finetune's)"),
        CLI_OPT_STR("out", 'o', &out, "FILE", "the merged model"),
        CLI_OPT_STR("format", 0, &format, "F", "gguf (default) or safetensors"),
        CLI_OPT_STR("type", 0, &type, "T", "GGUF file type: F32 (default), F16, Q8_0, Q4_K_M, ..."),
        CLI_OPT_FLAG("pure", 0, &pure, "every matrix in the type's base type"),
        CLI_OPT_END,
    };
    const cli_cmd cmd = {.name = "merge",
                         .usage = "usage: hearth merge --base MODEL.gguf --lora ADAPTER.gguf -o "
                                  "FILE [--type T] [--format gguf|safetensors]",
                         .opts = opts,
                         .notes = "W' = W + (alpha/rank) B A for every adapted matrix."};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (!base || !lora || !out) return cli_usage_error(&cmd, "--base, --lora and -o are required");
    int st = !strcmp(format, "safetensors");
    if (!st && strcmp(format, "gguf"))
        return cli_usage_error(&cmd, "--format: gguf or safetensors, not '%s'", format);
    if (st && type) return cli_usage_error(&cmd, "--type applies to --format gguf only");
    nn_model *m = NULL;
    tok_vocab *v = NULL;
    nn_lora *a = NULL;
    gguf_writer *w = NULL;
    ckpt_gguf_quant *q = NULL;
    float *scratch = NULL;
    int rank;
    float alpha;
    unsigned targets;
    int rc = ft_load_base(base, 1, 1, FT_BASE_F32, &m, &v, &e);
    if (!rc) rc = ckpt_lora_gguf_info(lora, &rank, &alpha, &targets, &e);
    if (!rc) rc = nn_lora_create(&a, m, rank, alpha, 0, targets, 0, &e);
    if (!rc) rc = ckpt_lora_read_gguf(lora, m, a, &e);
    if (!rc) nn_lora_merge(m, a);
    const nn_config *c = &m->cfg;
    if (!rc && st) {
        rc = ckpt_st_write_model(out, m, NULL, NULL, NULL, &e);
        if (!rc && v) {
            char tp[4096];
            snprintf(tp, sizeof tp, "%.*s.htok",
                     (int)(strlen(out) - (strstr(out, ".safetensors") ? 12 : 0)), out);
            rc = tok_save(v, tp, &e);
        }
    } else if (!rc) {
        if (type)
            rc = ckpt_gguf_quant_create(&q, type, pure, c->family == NN_LLAMA ? c->n_layer : 0,
                                        c->n_layer, c->n_head / c->n_kv_head,
                                        c->family == NN_GPT2 || !c->tied, stderr, &e);
        if (!rc) rc = gguf_writer_create(&w, &e);
        if (!rc) rc = ckpt_gguf_add_model(w, m, "hearth merged", q, &scratch, &e);
        if (!rc && v) rc = tok_gguf_set(v, w, &e);
        char *tmpl = rc ? NULL : ckpt_gguf_chat_template(base);
        if (tmpl) gguf_set_str(w, "tokenizer.chat_template", tmpl);
        free(tmpl);
        if (!rc) rc = gguf_writer_save(w, out, &e);
    }
    if (rc)
        fprintf(stderr, "hearth merge: %s\n", e.msg);
    else
        printf("merged %s + %s (rank %d, alpha %g) -> %s (%s)\n", base, lora, rank, (double)alpha,
               out,
               st  ? "safetensors"
               : q ? ckpt_gguf_quant_name(q)
                   : "GGUF F32");
    free(scratch);
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
    nn_lora_free(a);
    tok_free(v);
    nn_model_free(m);
    return rc ? 1 : 0;
}
