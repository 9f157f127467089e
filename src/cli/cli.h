/* cli: the `hearth` command and its subcommands. The only place that prints and exits. */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include "base/base.h"
#include "infer/infer.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

/* `hearth --version` */
#define HEARTH_VERSION "hearth 0.3.0"

int cli_train(int argc, char **argv);
int cli_digits(int argc, char **argv);
int cli_tokenizer(int argc, char **argv);
/* Prints a vocabulary's kind, size, pre-tokenizer, special ids, prompt BOS/EOS rule,
 * end-of-generation ids and identity, one "name: value" line each (tokenizer info, inspect). */
struct tok_vocab;
void cli_print_vocab(const struct tok_vocab *v);
int cli_prepare(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_vstore(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_eval_retrieval(int argc, char **argv);
int cli_ingest(int argc, char **argv);
int cli_ask(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_finetune(int argc, char **argv); /* cmd_finetune.c */
int cli_merge(int argc, char **argv);    /* cmd_finetune.c */
/* `hearth export --format gguf` (cmd_export_gguf.c); returns the exit status. tokenizer NULL-able;
 * type NULL: F32, else a llama-quantize file type (ckpt_gguf_quant_create; pure as --pure). */
int cli_export_gguf(const char *src, const char *tokenizer, const char *out, const char *type,
                    int pure);

/* `hearth generate` and `hearth chat` (cmd_generate.c): the model loaded and its scheduler of
 * n_slots slots started (ctx 0: the model's max_seq, at most INFER_DEFAULT_CTX; *ctx_out gets
 * the context), threads and kv_type (an infer_kv_type) as given. Prints what failed, prefixed
 * "WHO: ", and returns 1 (with *m and *s freed and NULL); 0 on success. */
struct infer_model;
struct infer_sched;
/* The chat template of m, as the server picks it (server_tmpl_of_model); an unrecognized one is
 * reported on stderr under who's name. */
int cli_model_template(const char *who, const struct infer_model *m);
int cli_model_open(const char *who, const char *model, const char *tokenizer, int n_slots, long ctx,
                   long threads, int kv_type, struct infer_model **m, struct infer_sched **s,
                   long *ctx_out, double *load_s);

/* One answer of `hearth chat` or `hearth ask` (cmd_generate.c): its text from the first visible
 * character on (a template's "Assistant:" makes most models begin with a space), echoed to
 * stdout as it comes when echo is set, and how it ended. */
typedef struct cli_answer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, write_failed, echo;
    const volatile sig_atomic_t *stop; /* NULL-able: set (by a signal) to cancel the answer */
    base_buf text;
    infer_event last;
    char error[512];               /* the engine's message when it failed */
    const struct infer_lora *lora; /* the adapter the answer uses (--lora), or NULL */
} cli_answer;
#define CLI_ANSWER_INIT                                                                            \
    { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER }
/* Submits the prompt ids (n) with sp to s and waits for a's answer to end: 0, or the error of
 * the submission (a's text freed). */
int cli_answer_run(struct infer_sched *s, const int32_t *ids, size_t n, const infer_sampling *sp,
                   cli_answer *a, base_err *e);

/* --lora PATH and --lora-scale S (generate, chat, ask): the adapter read for m into *out (NULL
 * when path is NULL). Prints what failed, prefixed "WHO: ", and returns 1; 0 on success. */
int cli_lora_load(const char *who, const struct infer_model *m, const char *path, double scale,
                  struct infer_lora **out);
#define CLI_LORA_OPTS(path, scale)                                                                 \
    CLI_OPT_STR("lora", 0, path, "PATH",                                                           \
                "a LoRA adapter GGUF (llama.cpp's, or `hearth finetune`'s\n"                       \
                "adapter.gguf) applied over the model, unmerged"),                                 \
        CLI_OPT_FLOAT("lora-scale", 0, scale, -1e6, 1e6, "S",                                      \
                      "the adapter's strength (llama.cpp's --lora-scaled; default 1)")

/* ---- options (opts.c): one table per command says every option's name, short letter, kind,
 * destination, allowed range and help line. cli_parse reads argv against it and
 * cli_help prints --help from it, so a limit is stated once, where it is enforced. */

typedef enum {
    CLI_FLAG,  /* no value; sets the int at dst to 1 */
    CLI_INT,   /* an integer in [lo, hi] into the int or long at dst (size: sizeof it) */
    CLI_FLOAT, /* a number in [flo, fhi] into the float or double at dst */
    CLI_STR,   /* the value (argv's string, not copied) into the const char * at dst */
    CLI_MULTI, /* repeatable: values into the const char *[hi] at dst, *count of them; hi
                * LONG_MAX: no limit (dst has room for argc values: each takes an argument) */
    CLI_CALL,  /* the value to fn(dst, opt, value), in command-line order */
} cli_kind;

typedef struct cli_opt cli_opt;
/* A CALL option's handler: 0, or -1 after printing why the value is refused. */
typedef int (*cli_opt_fn)(void *ud, const cli_opt *o, const char *val);

struct cli_opt {
    const char *name; /* long name without "--" ("max-tokens"), or NULL for a short-only one */
    char short_name;  /* 'n' for -n, or 0. A table ends with an entry of neither. */
    cli_kind kind;
    void *dst;
    size_t size;      /* sizeof *dst (INT: 4 or 8 bytes, FLOAT: float or double) */
    long lo, hi;      /* INT: the allowed range; MULTI: hi is the capacity of dst */
    double flo, fhi;  /* FLOAT: the allowed range */
    int *count;       /* MULTI: how many values dst holds */
    cli_opt_fn fn;    /* CALL */
    const char *arg;  /* the value's name in --help ("N", "PATH") */
    const char *help; /* '\n' separates lines; NULL: not listed in --help */
};

#define CLI_OPT_FLAG(n, s, d, h)                                                                   \
    { .name = n, .short_name = s, .kind = CLI_FLAG, .dst = d, .size = sizeof *(d), .help = h }
#define CLI_OPT_INT(n, s, d, l, u, a, h)                                                           \
    {                                                                                              \
        .name = n, .short_name = s, .kind = CLI_INT, .dst = d, .size = sizeof *(d), .lo = l,       \
        .hi = u, .arg = a, .help = h                                                               \
    }
#define CLI_OPT_FLOAT(n, s, d, l, u, a, h)                                                         \
    {                                                                                              \
        .name = n, .short_name = s, .kind = CLI_FLOAT, .dst = d, .size = sizeof *(d), .flo = l,    \
        .fhi = u, .arg = a, .help = h                                                              \
    }
#define CLI_OPT_STR(n, s, d, a, h)                                                                 \
    {                                                                                              \
        .name = n, .short_name = s, .kind = CLI_STR, .dst = d, .size = sizeof *(d), .arg = a,      \
        .help = h                                                                                  \
    }
#define CLI_OPT_MULTI(n, s, d, cnt, cap, a, h)                                                     \
    {                                                                                              \
        .name = n, .short_name = s, .kind = CLI_MULTI, .dst = d, .count = cnt, .hi = cap,          \
        .arg = a, .help = h                                                                        \
    }
#define CLI_OPT_CALL(n, s, f, ud, a, h)                                                            \
    { .name = n, .short_name = s, .kind = CLI_CALL, .fn = f, .dst = ud, .arg = a, .help = h }
#define CLI_OPT_END                                                                                \
    { 0 }

/* --kv-type f16|f32 into an infer_kv_type (generate, chat, serve). */
int cli_opt_kv_type(void *ud, const cli_opt *o, const char *val);
#define CLI_KV_TYPE_OPT(d)                                                                         \
    CLI_OPT_CALL("kv-type", 0, cli_opt_kv_type, d, "f16|f32",                                      \
                 "the KV cache's element type (default f16, as llama.cpp's:\n"                     \
                 "half the memory of f32)")

/* The sampling options of generate and chat, into an infer_sampling sp (src/infer). */
#define CLI_SAMPLING_OPTS(sp)                                                                      \
    CLI_OPT_FLOAT("temperature", 0, &(sp).temperature, 0, 100, "T", "0 = greedy (default 0.8)"),   \
        CLI_OPT_INT("top-k", 0, &(sp).top_k, 0, 1 << 24, "K",                                      \
                    "keep the K most likely tokens (default 40, 0 = off)"),                        \
        CLI_OPT_FLOAT("top-p", 0, &(sp).top_p, 1e-9, 1, "P",                                       \
                      "keep the smallest set of probability >= P (default 0.95)"),                 \
        CLI_OPT_FLOAT("min-p", 0, &(sp).min_p, 0, 1, "P",                                          \
                      "drop tokens below P x the top probability (default 0.05)"),                 \
        CLI_OPT_FLOAT("repeat-penalty", 0, &(sp).repeat_penalty, 1e-6, 1e6, "R",                   \
                      "llama.cpp's repetition penalty (default 1 = off)"),                         \
        CLI_OPT_INT("repeat-last-n", 0, &(sp).repeat_last_n, -1, 1 << 24, "N",                     \
                    "tokens the penalty looks back on (default 64, -1 = all)"),                    \
        CLI_OPT_INT("seed", 's', &(sp).seed, 0, LONG_MAX, "S",                                     \
                    "sampling seed: the same seed gives the same text (default 0)")

typedef struct cli_cmd {
    const char *name;  /* "generate", "tokenizer train": messages say "hearth NAME: ..." */
    const char *usage; /* the synopsis, "usage: ..." lines */
    const char *about; /* text between the synopsis and the options, or NULL */
    const cli_opt *opts;
    const char *notes; /* text after the options, or NULL */
} cli_cmd;

/* Reads argv[1..argc) against c->opts: "--name VALUE", "--name=VALUE", "-s VALUE", flags, and
 * "-h"/"--help" (prints cli_help to stdout). Everything else is a positional argument ("-" is
 * one; after "--" all are): on success they are moved to argv[1..*npos], in order. Returns -1 to
 * go on, or the exit status: 0 after --help, 2 after an unknown option, a missing value or one
 * out of range (the message, naming the option and the allowed range, is on stderr). */
int cli_parse(const cli_cmd *c, int argc, char **argv, int *npos);
/* The --help text: c->usage, c->about, one line (or more) per option with its range, c->notes. */
void cli_help(const cli_cmd *c, FILE *f);
/* "hearth NAME: MSG (see hearth NAME --help)" on stderr; returns 2 (a usage error's status). */
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether s ends with suffix, ignoring ASCII case (".GGUF" is ".gguf"). */
int cli_ends_with(const char *s, const char *suffix);

/* ---- the commands that run train's loop, `hearth train` and `hearth finetune` (cmd_train.c):
 * train's options defined once, and the run around the loop — the world under mpirun (rank 0
 * the one voice), SIGINT/SIGTERM as a clean stop, the progress line with its ETA, the end. */
struct train_opts;
struct train_progress;
struct train_result;
struct dist;
#define CLI_TRAIN_OPTS_MAX 32 /* at least the options cli_train_opts appends */
typedef struct cli_train_run {
    const char *cmd;      /* "train", "finetune": messages say "hearth CMD: ..." */
    struct train_opts *o; /* its values when the table is made are the defaults --help shows */
    double timeout_s;     /* --comm-timeout (default 300) */
    const char *delay;    /* --sim-delay */
    char help[3][96];     /* help texts that name this command's defaults */
    struct dist *d;       /* the world (cli_train_start) */
    int tty, every, rank, ranks;
} cli_train_run;
/* Appends train's options (steps ... sim-delay; not --data, --out) to opts after the command's
 * own (up to the first entry of neither name nor short letter: the rest of the array is zero)
 * and returns the count of entries. */
int cli_train_opts(cli_train_run *r, cli_opt *opts);
/* After parsing: joins the world (mpirun), silences the other ranks' stdout, installs the
 * notes (r->o->note), the stop flag and its signal handlers. -1 to go on, else an exit status. */
int cli_train_start(cli_train_run *r);
/* After the command's header line: under mpirun, the world's line (ranks, micro-batches a step,
 * ZeRO-1); then stdout is flushed. */
void cli_train_banner(const cli_train_run *r);
/* The progress callback (user: the cli_train_run): a line per step (a live one on a tty), ETA. */
void cli_train_report(const struct train_progress *p, void *user);
/* After the run: prints its error (ending the job when one rank failed alone), the
 * data-parallel summary, the stop; closes the world. -1 to go on (done or complete), else the
 * exit status. */
int cli_train_end(cli_train_run *r, int rc, const struct train_result *res, const base_err *e);
/* Prints the closing sample (NULL: nothing), control bytes and broken UTF-8 as '?', and frees it.
 */
void cli_train_sample(char *sample);

#endif
