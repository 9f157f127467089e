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

static void help(void) {
    printf("usage: hearth train --data PATH --out DIR [options]\n\n"
           "  --data PATH         a `hearth prepare` directory (train and val shards), or a\n"
           "                      text file read as bytes (the last 10%% is held out)\n"
           "  --out DIR           run directory: metrics.jsonl, loss.svg, config.json and\n"
           "                      a final checkpoint; one trainer at a time (DIR/lock)\n"
           "  --preset NAME       tiny, small, gpt2-124m, llama-tiny, llama-small, llama-124m"
           " (default tiny)\n"
           "  --steps N           optimizer steps (default 100)\n"
           "  --batch B           sequences per micro-batch (default 8)\n"
           "  --seq T             tokens per sequence (default 128, at most max_seq)\n"
           "  --accum K           micro-batches per step, gradient accumulation (default 1)\n"
           "  --lr X              peak learning rate (default 1e-3)\n"
           "  --min-lr X          final learning rate of the cosine decay (default lr/10)\n"
           "  --warmup N          linear warmup steps (default 5%% of steps)\n"
           "  --weight-decay X    AdamW decoupled weight decay on matrices (default 0.1)\n"
           "  --clip X            global gradient-norm clipping, 0 = off (default 1.0)\n"
           "  --eval-every N      held-out eval every N steps, and always at the end\n"
           "  --eval-batches N    batches per eval (default 8)\n"
           "  --seed S            seed of init, batches and sampling (default 1337)\n"
           "  --threads N         threads for OpenMP and OpenBLAS (default 2)\n"
           "  --sample N          tokens to generate at the end (default 200, 0 = none)\n"
           "  --ckpt-every N      write a checkpoint DIR/step_NNNNNNNN every N steps\n"
           "                      (default 0: only the final one, which every run writes).\n"
           "                      Written in the background: the state\n"
           "                      is copied while the next step computes, then written; one\n"
           "                      due while the last is still being written waits for it (none\n"
           "                      is skipped). Costs (snapshot_ms, wait_ms, write_ms, bytes) go\n"
           "                      to metrics.jsonl; a failed write is reported and training\n"
           "                      goes on\n"
           "  --ckpt-every-min M  also a checkpoint every M minutes of wall clock (fractions\n"
           "                      allowed; default 0 = never)\n"
           "  --keep-last K       after each checkpoint, delete those older than the newest K\n"
           "                      good ones (default 0 = keep all; `latest` is never deleted)\n"
           "  --keep-every N      never delete checkpoints of steps that are multiples of N\n"
           "  SIGINT/SIGTERM      finish the step, write a final checkpoint, exit 130/143;\n"
           "                      rerun the same command to resume (a second signal kills)\n"
           "  --resume PATH       resume from a checkpoint directory, or from the newest good\n"
           "                      checkpoint of a run directory; without it, a --out DIR\n"
           "                      holding checkpoints resumes from its newest good one\n"
           "model fields (override the preset): --family gpt2|llama --vocab-size (default:\n"
           "  the data's) --max-seq\n"
           "  --n-layer --n-head --n-kv-head --d-model --d-ff --tied 0|1 --bias 0|1\n"
           "  --norm-eps --rope-theta\n");
}

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

typedef struct reporter {
    int tty, every;
} reporter;

/* Checkpoint notes (one skipped as damaged, resuming from step N) go to stderr. */
static void note(const char *msg, void *user) {
    reporter *r = user;
    fprintf(stderr, "%shearth train: %s\n", r->tty ? "\r\033[K" : "", msg);
}

static void report(const train_progress *p, void *user) {
    reporter *r = user;
    char eta[32];
    fmt_eta(p->eta_s, eta, sizeof eta);
    if (p->is_eval) {
        printf("%sstep %d/%d | val loss %.4f\n", r->tty ? "\r\033[K" : "", p->step, p->steps,
               (double)p->val_loss);
        fflush(stdout);
        return;
    }
    if (!r->tty && p->step % r->every != 0 && p->step != 1 && p->step != p->steps) return;
    printf("%sstep %d/%d | loss %.4f | lr %.2e | %.0f tok/s | %.1f%% of sgemm peak | ETA %s%s",
           r->tty ? "\r\033[K" : "", p->step, p->steps, (double)p->loss, (double)p->lr,
           p->tok_per_s, 100.0 * p->peak_frac, eta, r->tty ? "" : "\n");
    fflush(stdout);
}

int cli_train(int argc, char **argv) {
    train_opts o = {0};
    const char *preset = "tiny";
    /* model overrides are applied after the preset, in order */
    const char *ovk[32], *ovv[32];
    int nov = 0, kv_set = 0;
    long v;
    double x;
    base_err e = {0};
    train_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "hearth train: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        if (!(val = cli_value(argc, argv, &i))) return 2;
        if (!strcmp(a, "--data"))
            o.data = val;
        else if (!strcmp(a, "--out"))
            o.out_dir = val;
        else if (!strcmp(a, "--preset"))
            preset = val;
        else if (!strcmp(a, "--steps")) {
            if (cli_int(a, val, 1, 1L << 30, &v)) return 2;
            o.steps = (int)v;
        } else if (!strcmp(a, "--batch")) {
            if (cli_int(a, val, 1, 1 << 16, &v)) return 2;
            o.batch = (int)v;
        } else if (!strcmp(a, "--seq")) {
            if (cli_int(a, val, 1, 1 << 20, &v)) return 2;
            o.seq = (int)v;
        } else if (!strcmp(a, "--accum")) {
            if (cli_int(a, val, 1, 1 << 16, &v)) return 2;
            o.accum = (int)v;
        } else if (!strcmp(a, "--warmup")) {
            if (cli_int(a, val, 0, 1L << 30, &v)) return 2;
            o.warmup = (int)v;
        } else if (!strcmp(a, "--eval-every")) {
            if (cli_int(a, val, 0, 1L << 30, &v)) return 2;
            o.eval_every = (int)v;
        } else if (!strcmp(a, "--eval-batches")) {
            if (cli_int(a, val, 1, 1 << 20, &v)) return 2;
            o.eval_batches = (int)v;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int(a, val, 1, 1024, &v)) return 2;
            o.threads = (int)v;
        } else if (!strcmp(a, "--sample")) {
            if (cli_int(a, val, 0, 1 << 20, &v)) return 2;
            o.sample_tokens = (int)v;
        } else if (!strcmp(a, "--ckpt-every")) {
            if (cli_int(a, val, 0, 1L << 30, &v)) return 2;
            o.ckpt_every = (int)v;
        } else if (!strcmp(a, "--ckpt-every-min")) {
            if (cli_float(a, val, 0, 1e9, &x)) return 2;
            o.ckpt_every_min = x;
        } else if (!strcmp(a, "--keep-last")) {
            if (cli_int(a, val, 0, 1L << 30, &v)) return 2;
            o.keep_last = (int)v;
        } else if (!strcmp(a, "--keep-every")) {
            if (cli_int(a, val, 0, 1L << 30, &v)) return 2;
            o.keep_every = (int)v;
        } else if (!strcmp(a, "--resume")) {
            o.resume = val;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, val, 0, 0x7fffffffffffffffL, &v)) return 2;
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--lr")) {
            if (cli_float(a, val, 1e-12, 10, &x)) return 2;
            o.lr = (float)x;
        } else if (!strcmp(a, "--min-lr")) {
            if (cli_float(a, val, 0, 10, &x)) return 2;
            o.min_lr = (float)x;
        } else if (!strcmp(a, "--weight-decay")) {
            if (cli_float(a, val, 0, 10, &x)) return 2;
            o.weight_decay = (float)x;
        } else if (!strcmp(a, "--clip")) {
            if (cli_float(a, val, 0, 1e9, &x)) return 2;
            o.clip = (float)x;
        } else {
            /* a model field: --n-layer -> n_layer */
            static char keys[32][64];
            const char *k = a + 2;
            size_t n = strlen(k);
            if (n >= sizeof keys[0] || nov == 32) {
                fprintf(stderr, "hearth train: unknown option '%s' (see --help)\n", a);
                return 2;
            }
            for (size_t j = 0; j <= n; j++) keys[nov][j] = k[j] == '-' ? '_' : k[j];
            int known = 0;
            for (int j = 0; nn_config_fields[j]; j++)
                known |= !strcmp(nn_config_fields[j], keys[nov]);
            if (!known) {
                fprintf(stderr, "hearth train: unknown option '%s' (see --help)\n", a);
                return 2;
            }
            kv_set |= !strcmp(keys[nov], "n_kv_head");
            ovk[nov] = keys[nov];
            ovv[nov++] = val;
        }
    }
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
    for (int j = 0; j < nov; j++)
        if (nn_config_set(&o.cfg, ovk[j], ovv[j], &e)) {
            fprintf(stderr, "hearth train: %s\n", e.msg);
            return 2;
        }
    if (o.cfg.family == NN_GPT2 && !kv_set) o.cfg.n_kv_head = o.cfg.n_head; /* GPT-2: no GQA */
    if (o.seq > o.cfg.max_seq && o.seq == 128) o.seq = o.cfg.max_seq; /* the default, shortened */

    reporter r = {isatty(STDOUT_FILENO), o.steps / 20 > 0 ? o.steps / 20 : 1};
    printf("hearth train: %s (%s family), %zu parameters, batch %dx%d, %d steps, %d threads\n",
           preset, o.cfg.family == NN_GPT2 ? "GPT-2" : "Llama", nn_config_params(&o.cfg), o.batch,
           o.seq, o.steps, o.threads);
    fflush(stdout);
    o.note = note;
    /* SIGINT/SIGTERM ask for a clean stop; SA_RESETHAND: a second one kills at once */
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_signal;
    train_result res;
    int rc = train_run(&o, report, &r, &res, &e);
    char *sample = res.sample;
    if (r.tty && !res.complete) printf("\n");
    if (rc) {
        fprintf(stderr, "hearth train: %s\n", e.msg);
        return 1;
    }
    if (res.complete) {
        printf("the run in %s is already complete (step %ld of %d, checkpoint step_%08ld); "
               "nothing was written. `hearth generate --model %s` uses it; a new run needs "
               "another --out\n",
               o.out_dir, res.step, o.steps, res.step, o.out_dir);
        return 0;
    }
    if (res.stopped) {
        int sig = stop_signal;
        fprintf(stderr,
                "hearth train: stopped by %s; the run in %s has a final checkpoint, rerun the "
                "same command to resume\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", o.out_dir);
        free(sample);
        return 128 + sig;
    }
    printf("run written to %s (metrics.jsonl, loss.svg, config.json, final checkpoint "
           "step_%08ld)\n",
           o.out_dir, res.step);
    if (sample) {
        /* control bytes and bytes that are not UTF-8 (a byte model may emit half a
         * character) are shown as '?' */
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
    return 0;
}
