/* cli/cmd_train.c: `hearth train` — options, the live progress line, the closing sample. */
#include "cli.h"

#include "data/data.h"
#include "train/train.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The signal that asked the run to stop (0: none); train_run polls it after each step. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

static void fmt_eta(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

/* Checkpoint notes (one skipped as damaged, resuming from step N) go to stderr. */
static void note(const char *msg, void *user) {
    cli_train_run *r = user;
    if (r->rank != 0) return; /* the run's notes are rank 0's */
    fprintf(stderr, "%shearth %s: %s\n", r->tty ? "\r\033[K" : "", r->cmd, msg);
}

void cli_train_report(const train_progress *p, void *user) {
    cli_train_run *r = user;
    char eta[32];
    fmt_eta(p->eta_s, eta, sizeof eta);
    if (p->is_eval) {
        printf("%sstep %d/%d | val loss %.4f\n", r->tty ? "\r\033[K" : "", p->step, p->steps,
               (double)p->val_loss);
        fflush(stdout);
        return;
    }
    if (!r->tty && p->step % r->every != 0 && p->step != 1 && p->step != p->steps) return;
    char comm[160] = "";
    if (p->ranks > 1)
        snprintf(comm, sizeof comm,
                 " | comm p50/p99/max %.1f/%.1f/%.1f ms, stall %.1f/%.1f/%.1f ms, %.1f MB sent",
                 p->comm_p[0], p->comm_p[1], p->comm_p[2], p->stall_p[0], p->stall_p[1],
                 p->stall_p[2], (double)p->comm_bytes / 1e6);
    printf("%sstep %d/%d | loss %.4f | lr %.2e | %.0f tok/s | %.1f%% of sgemm peak%s | ETA %s%s",
           r->tty ? "\r\033[K" : "", p->step, p->steps, (double)p->loss, (double)p->lr,
           p->tok_per_s, 100.0 * p->peak_frac, comm, eta, r->tty ? "" : "\n");
    fflush(stdout);
}

int cli_train_opts(cli_train_run *r, cli_opt *opts) {
    int n = 0;
    while (opts[n].name || opts[n].short_name) n++;
    train_opts *o = r->o;
    snprintf(r->help[0], sizeof r->help[0], "peak learning rate (default %g)", (double)o->lr);
    snprintf(r->help[1], sizeof r->help[1], "AdamW decoupled weight decay on matrices (default %g)",
             (double)o->weight_decay);
    snprintf(r->help[2], sizeof r->help[2], "tokens to generate at the end (default %d, 0 = none)",
             o->sample_tokens);
    const cli_opt t[] = {
        CLI_OPT_INT("steps", 0, &o->steps, 1, 1L << 30, "N", "optimizer steps (default 100)"),
        CLI_OPT_INT("batch", 0, &o->batch, 1, 1 << 16, "B",
                    "sequences (examples) per micro-batch (default 8)"),
        CLI_OPT_INT("seq", 0, &o->seq, 1, 1 << 20, "T",
                    "tokens per sequence (default 128, at most the model's context)"),
        CLI_OPT_INT("accum", 0, &o->accum, 1, 1 << 16, "K",
                    "micro-batches per step, gradient accumulation (default 1)"),
        CLI_OPT_FLOAT("lr", 0, &o->lr, 1e-12, 10, "X", r->help[0]),
        CLI_OPT_FLOAT("min-lr", 0, &o->min_lr, 0, 10, "X",
                      "final learning rate of the cosine decay (default lr/10)"),
        CLI_OPT_INT("warmup", 0, &o->warmup, 0, 1L << 30, "N",
                    "linear warmup steps (default 5% of steps)"),
        CLI_OPT_FLOAT("weight-decay", 0, &o->weight_decay, 0, 10, "X", r->help[1]),
        CLI_OPT_FLOAT("clip", 0, &o->clip, 0, 1e9, "X",
                      "global gradient-norm clipping, 0 = off (default 1.0)"),
        CLI_OPT_INT("eval-every", 0, &o->eval_every, 0, 1L << 30, "N",
                    "held-out eval every N steps, and always at the end"),
        CLI_OPT_INT("eval-batches", 0, &o->eval_batches, 1, 1 << 20, "N",
                    "batches per eval (default 8)"),
        CLI_OPT_INT("seed", 0, &o->seed, 0, LONG_MAX, "S",
                    "seed of init, batches, dropout and sampling (default 1337)"),
        CLI_OPT_INT("threads", 't', &o->threads, 1, 1024, "N",
                    "threads for OpenMP and OpenBLAS (default 2)"),
        CLI_OPT_INT("sample", 0, &o->sample_tokens, 0, 1 << 20, "N", r->help[2]),
        CLI_OPT_INT("ckpt-every", 0, &o->ckpt_every, 0, 1L << 30, "N",
                    "write a checkpoint DIR/step_NNNNNNNN every N steps\n"
                    "(default 0: only the final one, which every run writes).\n"
                    "Written in the background: the state\n"
                    "is copied while the next step computes, then written; one\n"
                    "due while the last is still being written waits for it (none\n"
                    "is skipped). Costs (snapshot_ms, wait_ms, write_ms, bytes) go\n"
                    "to metrics.jsonl; a failed write is reported and training\n"
                    "goes on"),
        CLI_OPT_FLOAT("ckpt-every-min", 0, &o->ckpt_every_min, 0, 1e9, "M",
                      "also a checkpoint every M minutes of wall clock (fractions\n"
                      "allowed; default 0 = never)"),
        CLI_OPT_INT("keep-last", 0, &o->keep_last, 0, 1L << 30, "K",
                    "after each checkpoint, delete those older than the newest K\n"
                    "good ones (default 0 = keep all; `latest` is never deleted)"),
        CLI_OPT_INT("keep-every", 0, &o->keep_every, 0, 1L << 30, "N",
                    "never delete checkpoints of steps that are multiples of N"),
        CLI_OPT_STR("resume", 0, &o->resume, "PATH",
                    "resume from a checkpoint directory, or from the newest good\n"
                    "checkpoint of a run directory; without it, a --out DIR\n"
                    "holding checkpoints resumes from its newest good one"),
        CLI_OPT_INT("zero", 0, &o->zero, 0, 1, "0|1",
                    "under mpirun: 1 = ZeRO-1, AdamW state sharded across ranks\n"
                    "(default 0: replicated)"),
        CLI_OPT_INT("overlap", 0, &o->overlap, 0, 1, "0|1",
                    "under mpirun: start each bucket's reduction as its backward\n"
                    "ends (default 1); 0 = all after the backward"),
        CLI_OPT_FLOAT("bucket-mb", 0, &o->bucket_mb, 0, 65536, "MB",
                      "under mpirun: least gradient bucket size (default 4)"),
        CLI_OPT_FLOAT("comm-timeout", 0, &r->timeout_s, 1, 1e6, "S",
                      "under mpirun: a collective not done after S seconds (a rank\n"
                      "died or hangs) stops every rank (default 300)"),
        CLI_OPT_STR("sim-delay", 0, &r->delay, "MS[:J[:P:SPIKE]]",
                    "TEST OPTION, simulated: hold each gradient collective's\n"
                    "completion for MS +- J ms (uniform), plus SPIKE ms with\n"
                    "probability P; the same draw on every rank (the tail-latency\n"
                    "experiment, bench/dist_tail.sh). Not the network's own delay"),
    };
    _Static_assert(sizeof t / sizeof t[0] <= CLI_TRAIN_OPTS_MAX, "CLI_TRAIN_OPTS_MAX (cli.h)");
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) opts[n++] = t[k];
    return n;
}

int cli_train_start(cli_train_run *r) {
    base_err e = {0};
    if (r->delay && dist_delay_parse(r->delay, &r->o->delay, &e)) {
        fprintf(stderr, "hearth %s: --sim-delay: %s\n", r->cmd, e.msg);
        return 2;
    }
    if (dist_open(&r->d, r->timeout_s > 0 ? r->timeout_s : 300, &e)) {
        fprintf(stderr, "hearth %s: %s\n", r->cmd, e.msg);
        return 1;
    }
    r->o->dist = r->d;
    r->rank = dist_rank(r->d), r->ranks = dist_size(r->d);
    /* under mpirun stdout is Open MPI's forwarding pty, whatever mpirun's own is: lines */
    r->tty = r->rank == 0 && isatty(STDOUT_FILENO) && !dist_in_mpi(r->d);
    r->every = r->o->steps / 20 > 0 ? r->o->steps / 20 : 1;
    if (r->rank != 0) { /* one voice: rank 0 prints the run; the others only their own errors */
        if (!freopen("/dev/null", "w", stdout)) return 1;
    }
    r->o->note = note;
    /* SIGINT/SIGTERM ask for a clean stop; SA_RESETHAND: a second one kills at once */
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    r->o->stop = &stop_signal;
    return -1;
}

void cli_train_banner(const cli_train_run *r) {
    const train_opts *o = r->o;
    if (r->ranks > 1)
        printf(
            "data parallel over %d ranks (Open MPI): a step is %d x %d micro-batches of %dx%d%s\n",
            r->ranks, r->ranks, o->accum, o->batch, o->seq, o->zero ? ", ZeRO-1" : "");
    fflush(stdout);
}

/* The end-of-run summary of a data-parallel run: rank 0's communication per step and the
 * memory each rank holds. */
static void print_dist_summary(const train_opts *o, const train_result *res) {
    char gather[96] = "";
    if (res->mem_gather)
        snprintf(gather, sizeof gather, "; rank 0 also %.1f MB to gather AdamW for checkpoints",
                 res->mem_gather / 1e6);
    printf("data parallel: %d ranks x %d threads, %s, %d buckets%s\n"
           "  comm per step  p50 %.1f ms  p99 %.1f ms  max %.1f ms\n"
           "  stall per step p50 %.1f ms  p99 %.1f ms  max %.1f ms (not hidden by the backward)\n"
           "  sent per step  %.2f MB (rank 0)\n"
           "  memory per rank: parameters + gradients %.1f MB, AdamW state %.1f MB%s, "
           "reducer buffers %.1f MB%s\n",
           res->ranks, o->threads, o->zero ? "ZeRO-1" : "plain (replicated AdamW state)",
           res->buckets, o->overlap ? ", reductions overlapped with the backward" : ", no overlap",
           res->comm_p[0], res->comm_p[1], res->comm_p[2], res->stall_p[0], res->stall_p[1],
           res->stall_p[2], res->bytes_per_step / 1e6, res->mem_model / 1e6, res->mem_optim / 1e6,
           o->zero ? " (this rank's shard)" : "", res->mem_comm / 1e6, gather);
}

void cli_train_sample(char *sample) {
    if (!sample) return;
    /* control bytes and bytes that are not UTF-8 (a byte model may emit half a character) are
     * shown as '?' */
    for (unsigned char *c = (unsigned char *)sample; *c;) {
        size_t k = base_utf8_len(c, strnlen((const char *)c, 4));
        if (k > 1) {
            c += k;
            continue;
        }
        if (!isprint(*c) && *c != '\n' && *c != '\t') *c = '?';
        c++;
    }
    printf("--- sample ---\n%s\n--------------\n", sample);
    free(sample);
}

int cli_train_end(cli_train_run *r, int rc, const train_result *res, const base_err *e) {
    if (r->tty && !res->complete) printf("\n");
    if (rc) {
        /* an error all ranks agreed on is printed once; one rank's own, by that rank, which
         * then ends the job so no rank waits for it */
        if (r->rank == 0 || res->fatal) fprintf(stderr, "hearth %s: %s\n", r->cmd, e->msg);
        if (res->fatal) dist_abort(r->d, 1);
        dist_close(r->d);
        return 1;
    }
    if (r->ranks > 1 && !res->complete && r->rank == 0) print_dist_summary(r->o, res);
    dist_close(r->d);
    r->d = NULL;
    if (res->stopped) {
        int sig = stop_signal;
        fprintf(stderr,
                "hearth %s: stopped by %s at step %ld; the run in %s has a final checkpoint, "
                "rerun the same command to resume\n",
                r->cmd, sig == SIGINT ? "SIGINT" : "SIGTERM", res->step, r->o->out_dir);
        return 128 + sig;
    }
    return -1;
}

/* The model fields given on the command line (--n-layer 6 -> "n_layer", "6"), applied after
 * the preset in command-line order through nn_config_set, which checks them. */
typedef struct overrides {
    const char *key[32], *val[32];
    int n, kv_set;
} overrides;

static int add_override(void *ud, const cli_opt *o, const char *val) {
    overrides *ov = ud;
    if (ov->n == 32) {
        fprintf(stderr, "hearth train: more than 32 model fields given\n");
        return -1;
    }
    ov->key[ov->n] = o->arg; /* the field's name, "n_layer" (see below) */
    ov->val[ov->n++] = val;
    ov->kv_set |= !strcmp(o->arg, "n_kv_head");
    return 0;
}

int cli_train(int argc, char **argv) {
    train_opts o = {0};
    const char *preset = "tiny";
    overrides ov = {0};
    base_err e = {0};
    train_opts_default(&o);
    cli_train_run r = {.cmd = "train", .o = &o, .timeout_s = 300};
    /* the table: data, out and the preset, train's options (cli_train_opts), then one per model
     * field (nn_config_fields, the one list of them), hidden from the generated list and summed
     * up in the notes */
    cli_opt opts[3 + CLI_TRAIN_OPTS_MAX + 32 + 1] = {
        CLI_OPT_STR("data", 0, &o.data, "PATH",
                    "a `hearth prepare` directory (train and val shards), or a\n"
                    "text file read as bytes (the last 10% is held out)"),
        CLI_OPT_STR("out", 0, &o.out_dir, "DIR",
                    "run directory: metrics.jsonl, loss.svg, config.json and\n"
                    "a final checkpoint; one trainer at a time (DIR/lock)"),
        CLI_OPT_STR("preset", 0, &preset, "NAME",
                    "tiny, small, gpt2-124m, llama-tiny, llama-small, llama-124m\n"
                    "(default tiny)"),
    };
    char names[32][64];
    int n = cli_train_opts(&r, opts);
    for (int j = 0; nn_config_fields[j] && j < 32; j++) {
        snprintf(names[j], sizeof names[j], "%s", nn_config_fields[j]);
        for (char *c = names[j]; *c; c++) *c = *c == '_' ? '-' : *c;
        opts[n++] =
            (cli_opt)CLI_OPT_CALL(names[j], 0, add_override, &ov, nn_config_fields[j], NULL);
    }
    opts[n] = (cli_opt)CLI_OPT_END;
    const cli_cmd cmd = {
        .name = "train",
        .usage = "usage: hearth train --data PATH --out DIR [options]",
        .opts = opts,
        .notes = "SIGINT/SIGTERM: finish the step, write a final checkpoint, exit 130/143; rerun\n"
                 "the same command to resume (a second signal kills).\n"
                 "data parallel: mpirun -np N --bind-to core --map-by slot:PE=T hearth train\n"
                 "  --threads T ...: each rank runs --accum micro-batches of --batch a step, the\n"
                 "  same as one process with --accum N x accum (bit for bit); rank 0 writes the\n"
                 "  run directory. A checkpoint resumes on any N with the same N x accum.\n"
                 "model fields (override the preset): --family gpt2|llama --vocab-size (default:\n"
                 "  the data's) --max-seq\n"
                 "  --n-layer --n-head --n-kv-head --d-model --d-ff --tied 0|1 --bias 0|1\n"
                 "  --norm-eps --rope-theta"};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    int kv_set = ov.kv_set;
    if (!o.data || !o.out_dir) {
        fprintf(stderr, "hearth train: --data PATH and --out DIR are required (see --help)\n");
        return 2;
    }
    if (nn_config_preset(&o.cfg, preset, &e)) {
        fprintf(stderr, "hearth train: %s\n", e.msg);
        return 2;
    }
    /* The vocabulary is the data's (256 for bytes, the shards' otherwise) unless set. */
    uint32_t data_vocab;
    if (data_vocab_size(o.data, &data_vocab, &e)) {
        fprintf(stderr, "hearth train: %s\n", e.msg);
        return 1;
    }
    o.cfg.vocab_size = (int)data_vocab;
    for (int j = 0; j < ov.n; j++)
        if (nn_config_set(&o.cfg, ov.key[j], ov.val[j], &e)) {
            fprintf(stderr, "hearth train: %s\n", e.msg);
            return 2;
        }
    if (o.cfg.family == NN_GPT2 && !kv_set) o.cfg.n_kv_head = o.cfg.n_head; /* GPT-2: no GQA */
    if (o.seq > o.cfg.max_seq && o.seq == 128) o.seq = o.cfg.max_seq; /* the default, shortened */

    int st = cli_train_start(&r);
    if (st >= 0) return st;
    printf("hearth train: %s (%s family), %zu parameters, batch %dx%d, %d steps, %d threads\n",
           preset, o.cfg.family == NN_GPT2 ? "GPT-2" : "Llama", nn_config_params(&o.cfg), o.batch,
           o.seq, o.steps, o.threads);
    cli_train_banner(&r);
    train_result res;
    int rc = train_run(&o, cli_train_report, &r, &res, &e);
    /* a run that failed or stopped has no sample (train.h) */
    if ((st = cli_train_end(&r, rc, &res, &e)) >= 0) return st;
    if (res.complete) {
        printf("the run in %s is already complete (step %ld of %d, checkpoint step_%08ld); "
               "nothing was written. `hearth generate --model %s` uses it; a new run needs "
               "another --out\n",
               o.out_dir, res.step, o.steps, res.step, o.out_dir);
        return 0;
    }
    printf("run written to %s (metrics.jsonl, loss.svg, config.json, final checkpoint "
           "step_%08ld)\n",
           o.out_dir, res.step);
    cli_train_sample(res.sample);
    return 0;
}
