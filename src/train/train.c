/* train/train.c: a training run: options, where it starts (a checkpoint to resume, or a run
 * that is already complete), the loop with eval and background checkpoints, the final
 * checkpoint and the closing sample (train_exec), and pretraining's task: the data and a model
 * from its seed (train_run). The run directory's files are run_dir.c's and metrics.c's;
 * fine-tuning's task is finetune.c's. */
#include "train_int.h"

#include "data/data.h"
#include "nn/lora.h"
#include "optim/optim.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void train_opts_default(train_opts *o) {
    const char *data = o->data, *out = o->out_dir;
    nn_config cfg = o->cfg;
    memset(o, 0, sizeof *o);
    o->data = data;
    o->out_dir = out;
    o->cfg = cfg;
    o->batch = 8;
    o->seq = 128;
    o->steps = 100;
    o->accum = 1;
    o->eval_every = 0;
    o->eval_batches = 8;
    o->warmup = -1; /* default: 5% of steps */
    o->lr = 1e-3f;
    o->min_lr = -1; /* default: lr / 10 */
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->seed = 1337;
    o->threads = 2;
    o->sample_tokens = 200;
    o->overlap = 1;
    o->bucket_mb = 4;
}

static int check_opts(const train_opts *o, base_err *e) {
    if (!o->data) return base_fail(e, BASE_EINVAL, "no training data given (--data PATH)");
    if (!o->out_dir) return base_fail(e, BASE_EINVAL, "no run directory given (--out DIR)");
    if (o->steps < 1)
        return base_fail(e, BASE_EINVAL, "the number of steps must be at least 1, got %d",
                         o->steps);
    if (o->batch < 1)
        return base_fail(e, BASE_EINVAL, "the batch size must be at least 1, got %d", o->batch);
    if (o->seq < 1)
        return base_fail(e, BASE_EINVAL, "the sequence length must be at least 1, got %d", o->seq);
    if (o->accum < 1)
        return base_fail(e, BASE_EINVAL, "gradient accumulation must be at least 1, got %d",
                         o->accum);
    if (o->ckpt_every < 0 || !(o->ckpt_every_min >= 0) || o->keep_last < 0 || o->keep_every < 0)
        return base_fail(e, BASE_EINVAL,
                         "ckpt_every, ckpt_every_min, keep_last and keep_every must be >= 0");
    if (o->eval_every < 0 || o->eval_batches < 1)
        return base_fail(e, BASE_EINVAL, "eval needs eval_every >= 0 and eval_batches >= 1");
    if (!(o->lr > 0) || !isfinite(o->lr))
        return base_fail(e, BASE_EINVAL, "the learning rate must be a positive number");
    if (!(o->weight_decay >= 0) || !(o->clip >= 0))
        return base_fail(e, BASE_EINVAL, "weight decay and clipping must be non-negative");
    if (o->threads < 1 || o->threads > 1024)
        return base_fail(e, BASE_EINVAL, "threads must be in [1, 1024]");
    if (o->zero < 0 || o->zero > 1)
        return base_fail(e, BASE_EINVAL, "zero must be 0 or 1 (ZeRO-1), got %d", o->zero);
    if (!(o->bucket_mb >= 0) || o->bucket_mb > 65536)
        return base_fail(e, BASE_EINVAL, "the bucket size must be in [0, 65536] MiB");
    return BASE_OK;
}

/* The eval windows do not depend on the run's seed, so val losses compare across runs. */
#define EVAL_SEED 0

/* The held-out loss: the mean over the trained targets of the val stream's first val_batches
 * batches (each batch's mean weighted by its trained targets; token shards train every target,
 * so that is the mean of the batch losses). The stream goes back to its start each time, so
 * successive evals score the same windows. Batch i is rank i % N's (the others skip it); the
 * (loss, count) pairs are gathered and added in batch order, as one process adds them. */
static int evaluate(nn_model *m, train_task *t, const train_opts *o, dist *d, int *tok, int *tgt,
                    float *out, base_err *e) {
    int N = dist_size(d), r = dist_rank(d), E = t->val_batches, per = (E + N - 1) / N;
    float *mine = calloc((size_t)per * 2, sizeof(float)),
          *all = calloc((size_t)per * N * 2, sizeof(float));
    data_pos start = {0, 0, 0};
    int rc = mine && all ? t->val.seek(t->val.self, &start, e)
                         : base_fail(e, BASE_ENOMEM, "out of memory");
    if (m->lora) m->lora->training = 0; /* no dropout */
    for (int i = 0; i < E && !rc; i++) {
        if (i % N != r) {
            rc = t->val.next(t->val.self, NULL, tgt, e);
            continue;
        }
        if ((rc = t->val.next(t->val.self, tok, tgt, e)) ||
            (rc = nn_forward(m, tok, tgt, o->batch, o->seq, &mine[2 * (i / N)], e)))
            break;
        mine[2 * (i / N) + 1] = (float)m->n_valid;
    }
    if (m->lora) m->lora->training = 1;
    if (!rc)
        rc = dist_allgather(d, mine, all, (size_t)per * 2 * sizeof(float), "the eval losses", e);
    double sum = 0, cnt = 0;
    for (int i = 0; i < E && !rc; i++) {
        const float *x = &all[2 * ((i % N) * per + i / N)];
        sum += (double)x[0] * x[1];
        cnt += x[1];
    }
    *out = cnt > 0 ? (float)(sum / cnt) : NAN;
    free(mine);
    free(all);
    return rc;
}

/* The closing sample: n tokens from the task's prompt token, as text; a NUL byte cannot live in
 * a C string and becomes a space. vocab: the task's, NULL for bytes. */
static int sample_text(nn_model *m, const train_opts *o, const tok_vocab *vocab, int prompt,
                       char **sample, base_err *e) {
    int n = o->sample_tokens;
    int *out = malloc((size_t)n * sizeof(int));
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    base_rng sr;
    base_rng_seed(&sr, o->seed + 1);
    if (m->lora) m->lora->training = 0;
    int rc = out && ids ? train_generate(m, &prompt, 1, n, 0.8f, &sr, out, e)
                        : base_fail(e, BASE_ENOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    if (!rc && vocab) {
        /* a model wider than the vocabulary may pick an id no token has: dropped */
        size_t k = 0;
        for (int i = 0; i < n; i++)
            if (out[i] < tok_vocab_size(vocab)) ids[k++] = out[i];
        rc = tok_decode(vocab, ids, k, 0, &text, &len, e);
    } else if (!rc) {
        if (!(text = malloc((size_t)n + 1))) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < n; i++) text[i] = (char)out[i];
        len = (size_t)n;
    }
    if (!rc) {
        for (size_t i = 0; i < len; i++)
            if (!text[i]) text[i] = ' ';
        text[len] = 0;
        *sample = text;
    }
    free(out);
    free(ids);
    return rc;
}

int train_generate(nn_model *m, const int *prompt, int np, int n, float temperature, base_rng *r,
                   int *out, base_err *e) {
    int V = m->cfg.vocab_size, W = m->T, len = np;
    if (np < 1) return base_fail(e, BASE_EINVAL, "generation needs a prompt of at least one token");
    int *ctx = malloc((size_t)(np + n) * sizeof(int));
    double *p = malloc((size_t)V * sizeof(double));
    if (!ctx || !p) {
        free(ctx);
        free(p);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    memcpy(ctx, prompt, (size_t)np * sizeof(int));
    int rc = BASE_OK;
    for (int i = 0; i < n && rc == BASE_OK; i++) {
        int w = len < W ? len : W;
        rc = nn_forward(m, ctx + len - w, NULL, 1, w, NULL, e);
        if (rc) break;
        const float *lg = nn_logits_at(m, 0, w - 1);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, lg[v]);
        for (int v = 0; v < V; v++) sum += p[v] = exp((lg[v] - mx) / temperature);
        double u = base_rng_uniform(r) * sum, acc = 0;
        int pick = V - 1;
        for (int v = 0; v < V; v++)
            if ((acc += p[v]) > u) {
                pick = v;
                break;
            }
        ctx[len++] = pick;
        out[i] = pick;
    }
    free(ctx);
    free(p);
    return rc;
}

/* One run's state, from its task to its run directory. */
typedef struct run {
    const train_opts *o;
    train_task *t;
    train_report_fn report;
    void *user;
    nn_model *m;    /* t->m */
    nn_trained set; /* what is trained: m's parameters or its adapters (nn_trained_of) */
    optim_adamw opt;
    ckpt_trainer ck; /* the settings a checkpoint holds, and the state of the last one made */
    int *tok, *tgt;  /* (B,T) each */
    train_log log;
    ckpt_writer *w; /* the background writer (NULL: no periodic checkpoints) */
    int lock;       /* the run directory's lock, -1 until taken */
    /* data parallel */
    dist *d, *own_d;   /* the world (own_d: opened here when o->dist is NULL) */
    int N, rank, zero; /* zero: ZeRO-1 over more than one rank */
    dist_grads *g;
    optim_adamw full; /* ZeRO-1 on rank 0: the whole AdamW state, for checkpoints (m NULL: none) */
    double *comm, *stall; /* per step, from the run's first step here */
    double bytes;         /* sent, summed over the steps */
    int n_hist;
    int ckpt_on;         /* periodic checkpoints (rank 0 has the writer, every rank the gathers) */
    int same_everywhere; /* the error is every rank's (a non-finite loss or norm): no abort */
} run;

void train_note(const train_opts *o, void *user, const char *fmt, ...) {
    if (!o->note) return;
    char msg[TRAIN_PATH_MAX + 1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->note(msg, user);
}

static void note_skip(const char *msg, void *user) {
    const run *R = user;
    train_note(R->o, R->user, "%s", msg);
}

/* AdamW, the reducer, the batch buffers, and the settings a checkpoint holds, defaults
 * resolved; the task's model is built. */
static int build(run *R, base_err *e) {
    const train_opts *o = R->o;
    tensor_set_threads(o->threads);
    size_t N = (size_t)o->batch * o->seq;
    R->tok = malloc(N * sizeof(int)), R->tgt = malloc(N * sizeof(int));
    if (!R->tok || !R->tgt) return base_fail(e, BASE_ENOMEM, "out of memory");
    R->m = R->t->m;
    if (R->m->lora) R->m->lora->training = 1;
    nn_trained_of(R->m, &R->set);
    dist_grads_opts go = {.zero = o->zero,
                          .overlap = o->overlap,
                          .bucket_mb = o->bucket_mb,
                          .delay = o->delay,
                          .seed = o->seed};
    int rc;
    if ((rc = dist_grads_create(&R->g, R->d, R->m, &go, e)) ||
        (rc = optim_adamw_create(&R->opt, dist_grads_shard_size(R->g), e)))
        return rc;
    R->opt.weight_decay = o->weight_decay;
    if (R->zero && R->rank == 0) { /* rank 0 assembles the whole state for checkpoints */
        if ((rc = optim_adamw_create(&R->full, R->set.n, e))) return rc;
        R->full.weight_decay = o->weight_decay;
    }
    R->ck = (ckpt_trainer){.steps = o->steps,
                           .warmup = o->warmup >= 0 ? o->warmup : o->steps / 20,
                           .accum = o->accum * R->N, /* the global accumulation */
                           .batch = o->batch,
                           .seq = o->seq,
                           .lr = o->lr,
                           .min_lr = o->min_lr >= 0 ? o->min_lr : o->lr / 10,
                           .weight_decay = o->weight_decay,
                           .clip = o->clip,
                           .seed = o->seed};
    snprintf(R->ck.data_identity, sizeof R->ck.data_identity, "%s", R->t->identity);
    R->ck.data_windows = R->t->windows;
    return BASE_OK;
}

/* 1 if paths a and b name one directory. */
static int same_dir(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int train_extend(const train_opts *o, const json_t *saved, int *steps, int *warmup) {
    json_t *s = json_object_get(saved, "steps"), *w = json_object_get(saved, "warmup");
    if (!json_is_integer(s) || json_integer_value(s) >= o->steps) return 0;
    *steps = (int)json_integer_value(s);
    if (o->warmup < 0 && json_is_integer(w)) *warmup = (int)json_integer_value(w);
    return 1;
}

/* Loads the checkpoint dir (its settings checked against this run's) and seeks the loader. A
 * run given more steps than the checkpoint's is extended (train_extend: the checkpoint's
 * trainer.json, when it records both its total steps and its warmup), and the cosine schedule
 * runs to the new total. */
static int load(run *R, const char *dir, base_err *e) {
    char p[TRAIN_PATH_MAX];
    snprintf(p, sizeof p, "%s/trainer.json", dir);
    json_t *j = json_load_file(p, 0, NULL), *saved = json_object_get(j, "run");
    int extend = json_is_integer(json_object_get(saved, "warmup")) &&
                 train_extend(R->o, saved, &R->ck.steps, &R->ck.warmup);
    json_decref(j);
    long steps = R->ck.steps; /* the checkpoint's, when extended */
    int rc = ckpt_load(dir, R->m, R->zero ? &R->full : &R->opt, &R->ck, e);
    if (!rc && extend) {
        R->ck.steps = R->o->steps;
        train_note(R->o, R->user,
                   "extending the run from %ld to %d steps: the learning-rate schedule (warmup %d, "
                   "cosine decay to %g) is recomputed for the new total",
                   steps, R->o->steps, R->ck.warmup, (double)R->ck.min_lr);
    }
    return rc ? rc : R->t->train.seek(R->t->train.self, &R->ck.pos, e);
}

/* Where the run starts; the run directory made and locked:
 *  - o->resume: that checkpoint directory, or that run directory's newest good checkpoint,
 *    loaded before out_dir is made (a refusal leaves nothing behind);
 *  - out_dir is made if missing and locked before anything in it is read; the task's dir_open
 *    (fine-tuning: finetune.json compared or written);
 *  - no o->resume: out_dir's newest good checkpoint, if any;
 *  - unless the checkpoint is out_dir's own, the task's dir_check (pretraining: out_dir's
 *    config.json, if any, must hold this run's settings): a run that crashed before its first
 *    checkpoint starts again at step 0, another run's directory is refused;
 *  - a checkpoint at the last step: out_dir's own means the run is complete (*complete);
 *    another directory's has nothing to train and is refused (before out_dir is made).
 * Nothing but the lock file is written. */
static int choose_start(run *R, int *complete, base_err *e) {
    const train_opts *o = R->o;
    char *from = NULL, path[TRAIN_PATH_MAX];
    int rc = BASE_OK, own = 0, found = 0;
    *complete = 0;
    if (o->resume) {
        snprintf(path, sizeof path, "%s/manifest.json", o->resume);
        if (access(path, F_OK) == 0) { /* a checkpoint directory: its run is the parent */
            snprintf(path, sizeof path, "%s/..", o->resume);
            own = same_dir(path, o->out_dir);
            if (!(from = strdup(o->resume))) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        } else {
            own = same_dir(o->resume, o->out_dir);
            rc = ckpt_find_latest_good(o->resume, &from, note_skip, R, e);
            if (!rc && !from)
                rc = base_fail(e, BASE_EINVAL, "no checkpoint in %s verifies; nothing to resume",
                               o->resume);
        }
        if (!rc) rc = load(R, from, e);
        if (!rc && !own && R->ck.step == o->steps)
            rc = base_fail(e, BASE_EINVAL,
                           "%s is at the last step of its run (%d); resuming it has nothing to "
                           "train",
                           from, o->steps);
    }
    if (!rc) rc = base_mkdir_p(o->out_dir, e);
    if (!rc) rc = train_lock(o->out_dir, &R->lock, e);
    if (!rc && R->t->dir_open) rc = R->t->dir_open(R->t, &R->ck, e);
    if (!rc && !o->resume) {
        own = 1;
        rc = ckpt_find_latest_good(o->out_dir, &from, note_skip, R, e);
        if (!rc && from) rc = load(R, from, e);
    }
    if (!rc && !(from && own) && R->t->dir_check) rc = R->t->dir_check(R->t, &R->ck, &found, e);
    if (!rc && !from && found)
        train_note(R->o, R->user,
                   "%s holds no checkpoint that verifies: its run starts again from step 0",
                   o->out_dir);
    if (!rc && from && R->ck.step == o->steps) {
        *complete = 1; /* out_dir's own checkpoint: another's was refused above */
    } else if (!rc && from) {
        train_note(R->o, R->user, "resuming from %s (step %ld)", from, R->ck.step);
    }
    free(from);
    return rc;
}

/* A finished background write: its metrics line, and a note when it failed (training goes on;
 * the earlier checkpoints stay). */
static void log_write(run *R, const ckpt_write_result *r) {
    if (r->step < 0) return;
    train_log_ckpt(&R->log, r, 0);
    if (r->rc != BASE_OK)
        train_note(R->o, R->user,
                   "checkpoint step_%08ld failed, training goes on and the previous one stays: %s",
                   r->step, r->err.msg);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* p50, p99 and max of n values (nearest rank). */
static void percentiles(const double *v, int n, double out[3]) {
    out[0] = out[1] = out[2] = 0;
    if (n <= 0) return;
    double *s = malloc((size_t)n * sizeof(double));
    if (!s) return;
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    out[0] = s[(n - 1) / 2];
    out[1] = s[(int)ceil(0.99 * n) - 1];
    out[2] = s[n - 1];
    free(s);
}

/* A checkpoint of the state after step (background, rank 0's writer); under ZeRO-1 every
 * rank first sends its shard of the AdamW state to rank 0. */
static int submit_checkpoint(run *R, long step, base_err *e) {
    ckpt_write_result wr;
    int rc = BASE_OK;
    if (R->zero) {
        if (R->w) ckpt_writer_snapshot_wait(R->w); /* the last snapshot is done with full */
        if ((rc = dist_grads_gather_state(R->g, &R->opt, R->rank == 0 ? &R->full : NULL, e)))
            return rc;
    }
    if (R->rank != 0) return BASE_OK;
    R->ck.step = step;
    R->t->train.tell(R->t->train.self, &R->ck.pos);
    rc = ckpt_writer_submit(R->w, R->m, R->zero ? &R->full : &R->opt, &R->ck, &wr, e);
    log_write(R, &wr);
    return rc;
}

/* An eval after step (0: before the first): its metrics line, loss.svg, the report. */
static int eval_report(run *R, train_progress *p, int step, train_result *out, base_err *e) {
    int rc = evaluate(R->m, R->t, R->o, R->d, R->tok, R->tgt, &p->val_loss, e);
    if (rc) return rc;
    if (step == 0) out->first_val = p->val_loss;
    out->last_val = p->val_loss;
    train_progress q = *p;
    q.step = step;
    q.is_eval = 1;
    if (R->rank != 0) return BASE_OK;
    train_log_eval(&R->log, &q);
    if ((rc = train_log_plot(&R->log, e))) return rc;
    if (R->report) R->report(&q, R->user);
    return BASE_OK;
}

/* Trains from the checkpoint's step (R->ck.step) until the last step, or until *o->stop on
 * any rank (out->stopped). out->step gets the steps done, out->first_val the eval before the
 * first step (eval_first), out->last_val the last eval's.
 * Rank r runs micro-batches a * N + r of each step's N x accum; the reducer sums them in that
 * order (src/dist); adapters' dropout is keyed by that global micro-batch number. */
static int train_loop(run *R, train_result *out, base_err *e) {
    const train_opts *o = R->o;
    const ckpt_trainer *ck = &R->ck;
    int start = (int)ck->step, rc = BASE_OK, N = R->N, A = o->accum;
    size_t Ntok = (size_t)o->batch * o->seq;
    train_progress p = {.steps = o->steps, .n_params = R->set.n, .ranks = N};
    p.peak_gflops = tensor_sgemm_peak_gflops(1024, 3);
    double flops_step = 3.0 * nn_flops_per_token(&R->m->cfg, o->seq) * (double)Ntok * A * N;
    double t_start = base_now(), t_ckpt = t_start;
    /* per rank: A losses, the stop flag, rank 0's "a checkpoint is due by the clock" */
    int W = A + 2;
    float *mine = malloc((size_t)W * sizeof(float)), *all = malloc((size_t)W * N * sizeof(float));
    R->comm = calloc((size_t)(o->steps - start) + 1, sizeof(double));
    R->stall = calloc((size_t)(o->steps - start) + 1, sizeof(double));
    if (!mine || !all || !R->comm || !R->stall) {
        free(mine), free(all);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    out->stopped = 0;
    out->step = start;
    if (start == 0 && R->t->eval_first && R->t->val_batches && (rc = eval_report(R, &p, 0, out, e)))
        goto out;
    for (int step = start; step < o->steps; step++) {
        double t0 = base_now();
        float lr = optim_lr_at(step, ck->warmup, o->steps, o->lr, ck->min_lr), loss = 0;
        for (int a = 0; a < A; a++) {
            for (int j = 0; j < N && !rc; j++) /* one global order: this rank's, others skipped */
                rc = R->t->train.next(R->t->train.self, j == R->rank ? R->tok : NULL, R->tgt, e);
            if (rc) goto out;
            if (R->m->lora) R->m->lora->key = ((uint64_t)step * A + (uint64_t)a) * N + R->rank;
            if ((rc = nn_forward(R->m, R->tok, R->tgt, o->batch, o->seq, &mine[a], e))) goto out;
            nn_zero_grad(R->m);
            dist_grads_micro_begin(R->g, step, a, A);
            nn_backward(R->m, 1.0f / (float)(A * N));
            if ((rc = dist_grads_micro_end(R->g, e))) goto out;
        }
        mine[A] = o->stop && *o->stop ? 1.0f : 0.0f;
        mine[A + 1] = o->ckpt_every_min > 0 && base_now() - t_ckpt >= o->ckpt_every_min * 60;
        double t_gather = base_now(), gather_ms = 0;
        if (N > 1) {
            rc = dist_allgather(R->d, mine, all, (size_t)W * sizeof(float), "the step's losses", e);
            if (rc) goto out;
            gather_ms = (base_now() - t_gather) * 1e3;
        } else {
            memcpy(all, mine, (size_t)W * sizeof(float));
        }
        int stop_any = 0;
        for (int a = 0; a < A; a++) /* micro-batch a * N + j: one process's order */
            for (int j = 0; j < N; j++) loss += all[j * W + a] / (float)(A * N);
        for (int j = 0; j < N; j++) stop_any |= all[j * W + A] != 0;
        int due_by_clock = all[A + 1] != 0; /* rank 0's clock decides for all */
        float norm;
        if ((rc = dist_grads_norm(R->g, &norm, e))) goto out;
        if (!isfinite(loss) || !isfinite(norm)) { /* the same on every rank */
            R->same_everywhere = 1;
            rc = base_fail(e, BASE_ENUM,
                           "step %d: the %s is not finite (%g); stopping. Try a lower --lr.",
                           step + 1, isfinite(loss) ? "gradient norm" : "loss",
                           (double)(isfinite(loss) ? norm : loss));
            goto out;
        }
        if (o->clip > 0 && norm > o->clip) dist_grads_scale(R->g, o->clip / (norm + 1e-6f));
        if (R->w) ckpt_writer_snapshot_wait(R->w); /* a checkpoint's copy of the state is taken */
        if ((rc = dist_grads_step(R->g, &R->opt, lr, e))) goto out;
        double dt = base_now() - t0;
        dist_step_stats st;
        dist_grads_stats(R->g, &st);
        p.step = step + 1;
        p.is_eval = 0;
        p.loss = loss;
        p.lr = lr;
        p.grad_norm = norm;
        p.ms = dt * 1e3;
        p.tok_per_s = (double)Ntok * A * N / dt;
        p.peak_frac = p.peak_gflops > 0 ? flops_step / dt * 1e-9 / p.peak_gflops / N : 0;
        p.eta_s = (base_now() - t_start) / (step + 1 - start) * (o->steps - step - 1);
        /* the losses' all-gather: communication nothing overlaps (a few bytes: latency) */
        st.comm_ms += gather_ms;
        st.stall_ms += gather_ms;
        p.comm_ms = st.comm_ms;
        p.stall_ms = st.stall_ms;
        p.comm_bytes = st.bytes;
        R->comm[R->n_hist] = st.comm_ms;
        R->stall[R->n_hist++] = st.stall_ms;
        R->bytes += (double)st.bytes;
        if (N > 1) {
            int k = R->n_hist < 1000 ? R->n_hist : 1000;
            percentiles(R->comm + R->n_hist - k, k, p.comm_p);
            percentiles(R->stall + R->n_hist - k, k, p.stall_p);
        }
        out->step = p.step;
        if (R->rank == 0) {
            train_log_step(&R->log, &p);
            if (R->report) R->report(&p, R->user);
        }
        int last = p.step == o->steps;
        if (((o->eval_every && p.step % o->eval_every == 0) || last) && R->t->val_batches) {
            if ((rc = eval_report(R, &p, p.step, out, e))) goto out;
        } else if (last && R->rank == 0 && (rc = train_log_plot(&R->log, e))) {
            goto out; /* no evals: the plot of the training loss */
        }
        ckpt_write_result wr;
        if (R->w && ckpt_writer_done(R->w)) {
            ckpt_writer_wait(R->w, &wr);
            log_write(R, &wr);
        }
        if (last) break; /* the final checkpoint is the caller's */
        if (stop_any) {
            out->stopped = 1;
            break;
        }
        if (R->ckpt_on && ((o->ckpt_every && p.step % o->ckpt_every == 0) || due_by_clock)) {
            t_ckpt = base_now();
            if ((rc = submit_checkpoint(R, p.step, e))) goto out;
        }
    }
out:
    free(mine);
    free(all);
    return rc;
}

/* The checkpoint of the run's final state (step), written synchronously after the write in
 * flight: every run ends with one, so generate, export and serve have weights to read. Its
 * failure is the run's error, reported once (the caller prints it; no note). Under ZeRO-1
 * every rank first sends its shard of the AdamW state; the write is rank 0's. */
static int final_checkpoint(run *R, long step, base_err *e) {
    ckpt_write_result wr;
    if (R->w) {
        ckpt_writer_wait(R->w, &wr);
        log_write(R, &wr);
    }
    int rc = dist_grads_gather_state(R->g, &R->opt, R->rank == 0 ? &R->full : NULL, e);
    if (rc || R->rank != 0) return rc;
    R->ck.step = step;
    R->t->train.tell(R->t->train.self, &R->ck.pos);
    memset(&wr, 0, sizeof wr);
    wr.step = step;
    double t0 = base_now();
    wr.rc = ckpt_save(R->o->out_dir, R->m, R->zero ? &R->full : &R->opt, &R->ck, &wr.err);
    if (wr.rc == BASE_OK)
        wr.rc = ckpt_prune(R->o->out_dir, R->o->keep_last, R->o->keep_every, NULL, &wr.err);
    wr.write_ms = (base_now() - t0) * 1e3;
    train_log_ckpt(&R->log, &wr, 1);
    if (wr.rc != BASE_OK)
        return base_fail(e, wr.rc, "the final checkpoint step_%08ld could not be written: %s", step,
                         wr.err.msg);
    return BASE_OK;
}

/* Rank 0 chooses where the run starts and prepares the run directory (choose_start, then
 * config.json, the tokenizer, metrics.jsonl, the writer), exactly as one process does; the
 * ranks agree on its outcome, then rank 0 sends the others the start: the trainer's state and,
 * when resuming, the weights and AdamW's state (ZeRO-1: each rank its shard). Only rank 0
 * reads the run directory, so the other ranks need no shared file system for it. */
static int start_run(run *R, int *complete, base_err *e) {
    const train_opts *o = R->o;
    int rc = BASE_OK;
    *complete = 0;
    if (R->rank == 0) {
        rc = choose_start(R, complete, e);
        if (!rc && !*complete && R->t->dir_write) rc = R->t->dir_write(R->t, &R->ck, e);
        if (!rc && !*complete) rc = train_log_open(&R->log, o->out_dir, R->ck.step, o->steps, e);
        if (!rc && !*complete && R->ckpt_on)
            rc = ckpt_writer_create(&R->w, o->out_dir, R->m, o->keep_last, o->keep_every, e);
    }
    if (R->N == 1) return rc;
    if ((rc = dist_agree(R->d, rc, e))) return rc;
    struct {
        int complete;
        ckpt_trainer ck;
    } head = {*complete, R->ck};
    if ((rc = dist_bcast(R->d, &head, sizeof head, 0, "the run's start", e))) return rc;
    *complete = head.complete;
    R->ck = head.ck;
    if (*complete || R->ck.step == 0) return BASE_OK; /* a fresh start: every rank's init */
    if ((rc = dist_bcast(R->d, R->set.params, R->set.n * sizeof(float), 0,
                         "the checkpoint's weights", e)) ||
        (rc = dist_grads_scatter_state(R->g, R->rank == 0 ? &R->full : NULL, &R->opt, e)))
        return rc;
    return R->rank == 0 ? BASE_OK : R->t->train.seek(R->t->train.self, &R->ck.pos, e);
}

int train_exec(const train_opts *o, train_task *t, train_report_fn report, void *user,
               train_result *res, base_err *e) {
    train_result out = {0};
    out.first_val = out.last_val = NAN;
    if (res) *res = out;
    int rc = check_opts(o, e), complete = 0, fatal = 0;
    if (rc) return rc;
    run R = {.o = o, .t = t, .report = report, .user = user, .lock = -1, .d = o->dist};
    if (!R.d && (rc = dist_open(&R.own_d, 300, e))) return rc;
    if (!R.d) R.d = R.own_d;
    R.N = dist_size(R.d);
    R.rank = dist_rank(R.d);
    R.zero = o->zero && R.N > 1;
    R.ckpt_on = o->ckpt_every || o->ckpt_every_min > 0;
    out.ranks = R.N;
    t->want_sample = res && o->sample_tokens > 0 && R.rank == 0;
    if (!(rc = t->build(t, o, user, e))) rc = build(&R, e);
    if (!rc)
        rc = start_run(&R, &complete, e);
    else if (R.N > 1)
        rc = dist_agree(R.d, rc, e); /* the others must not wait for this one */
    if (rc) goto done;
    if (complete) { /* nothing to do: nothing is written */
        out.complete = 1;
        out.step = R.ck.step;
        goto done;
    }
    fatal = 1; /* from here a failure may be this rank's alone, the others in a collective */
    if ((rc = train_loop(&R, &out, e)) || (rc = final_checkpoint(&R, out.step, e))) goto done;
    if (!out.stopped && R.rank == 0 && t->finish && (rc = t->finish(t, e))) goto done;
    fatal = 0;
    if (R.N > 1 && (rc = dist_agree(R.d, rc, e))) goto done; /* rank 0's writes, for all */
    if (out.stopped && R.rank == 0)
        train_note(o, user, "stopped at step %ld of %d; checkpoint step_%08ld written", out.step,
                   o->steps, out.step);
    else if (t->want_sample && !out.stopped)
        rc = sample_text(R.m, o, t->vocab, t->prompt, &out.sample, e);
    percentiles(R.comm, R.n_hist, out.comm_p);
    percentiles(R.stall, R.n_hist, out.stall_p);
    out.bytes_per_step = R.n_hist ? R.bytes / R.n_hist : 0;
    out.buckets = dist_grads_buckets(R.g);
    /* the model's parameters (and gradients, when it has them), the adapters' */
    out.mem_model =
        (R.m->n_params * (R.m->grads ? 2 : 1) + (R.m->lora ? 2 * R.set.n : 0)) * sizeof(float);
    out.mem_optim = 2 * R.opt.n * sizeof(float);
    out.mem_comm = dist_grads_comm_bytes(R.g);
    out.mem_gather = 2 * R.full.n * sizeof(float);
done:
    ckpt_writer_free(R.w); /* after an error: waits for the write in flight */
    int lrc = train_log_close(&R.log, rc ? NULL : e);
    if (!rc) rc = lrc;
    train_unlock(R.lock);
    free(R.tok);
    free(R.tgt);
    free(R.comm);
    free(R.stall);
    dist_grads_free(R.g);
    optim_adamw_free(&R.opt);
    optim_adamw_free(&R.full);
    nn_model_free(t->m); /* before the task's adapters (t->free) */
    t->m = NULL;
    if (t->free) t->free(t);
    if (rc) {
        free(out.sample);
        out.sample = NULL;
        out.fatal = fatal && R.N > 1 && !R.same_everywhere;
    }
    if (!out.fatal) dist_close(R.own_d);
    if (res)
        *res = out;
    else
        free(out.sample);
    return rc;
}

/* ---- pretraining's task: token shards or bytes, a model from its seed */

typedef struct pretrain {
    const train_opts *o;
    data_loader *train, *val;
    tok_vocab *vocab; /* the shards' vocabulary, to decode the sample; NULL: bytes or none */
    nn_config cfg;    /* o->cfg with the data's vocabulary filled in */
} pretrain;

static int loader_next(void *l, int *tok, int *tgt, base_err *e) {
    return data_loader_next(l, tok, tgt, e);
}
static void loader_tell(void *l, data_pos *p) {
    data_loader_tell(l, p);
}
static int loader_seek(void *l, const data_pos *p, base_err *e) {
    return data_loader_seek(l, p, e);
}

/* The data (train and val loaders), the model's vocabulary from it, the shards' vocabulary for
 * the sample, and the model from the seed. Nothing is written. */
static int pretrain_build(train_task *t, const train_opts *o, void *user, base_err *e) {
    pretrain *P = t->user;
    int rc;
    if (o->seq > o->cfg.max_seq)
        return base_fail(e, BASE_EINVAL,
                         "sequence length %d is longer than the model's maximum (max_seq %d)",
                         o->seq, o->cfg.max_seq);
    if ((rc = data_loader_open(&P->train, o->data, DATA_TRAIN, o->batch, o->seq, o->seed, e)) ||
        (rc = data_loader_open(&P->val, o->data, DATA_VAL, o->batch, o->seq, EVAL_SEED, e)))
        return rc;
    int data_vocab = (int)data_loader_vocab_size(P->train);
    P->cfg = o->cfg;
    if (P->cfg.vocab_size == 0) P->cfg.vocab_size = data_vocab; /* the data's */
    if (P->cfg.vocab_size < data_vocab)
        return base_fail(e, BASE_EINVAL,
                         "the model's vocabulary (%d) is smaller than the data's (%d)",
                         P->cfg.vocab_size, data_vocab);
    if ((rc = nn_config_check(&P->cfg, e))) return rc;
    const char *identity = data_loader_identity(P->train);
    if (strcmp(identity, "bytes") == 0) {
        char why[256];
        if (data_file_looks_binary(o->data, why, sizeof why))
            train_note(o, user,
                       "warning: %s does not look like text (%s); it is trained on as bytes "
                       "anyway. Text data is a text file or a `hearth prepare` directory",
                       o->data, why);
    } else if (t->want_sample) {
        /* shards: the sample is decoded with the vocabulary prepare stored beside them */
        char vpath[TRAIN_PATH_MAX];
        snprintf(vpath, sizeof vpath, "%s/vocab.htok", o->data);
        if ((rc = tok_load(vpath, &P->vocab, e))) return rc;
        if (strcmp(tok_identity(P->vocab), identity) != 0)
            return base_fail(e, BASE_EFORMAT, "%s is not the shards' vocabulary (%s, %s)", vpath,
                             tok_identity(P->vocab), identity);
    }
    if ((rc = nn_model_create(&t->m, &P->cfg, o->batch, o->seq, e))) return rc;
    nn_model_init(t->m, o->seed);
    t->train = (train_batches){P->train, loader_next, loader_tell, loader_seek};
    t->val = (train_batches){P->val, loader_next, loader_tell, loader_seek};
    t->val_batches = o->eval_batches;
    snprintf(t->identity, sizeof t->identity, "%s", identity);
    t->windows = data_loader_windows(P->train);
    t->vocab = P->vocab;
    int32_t eot = data_loader_eot_id(P->train);
    t->prompt = P->vocab ? (eot >= 0 ? eot : 0) : '\n'; /* bytes: a newline */
    return BASE_OK;
}

static int pretrain_dir_check(train_task *t, const ckpt_trainer *ck, int *found, base_err *e) {
    pretrain *P = t->user;
    return train_config_check(P->o->out_dir, &P->cfg, ck, found, e);
}

/* config.json, and the run's tokenizer (RUN/tokenizer.htok) so `hearth generate` and `serve`
 * need only the run directory: the shards' vocab.htok, checked to be theirs. */
static int pretrain_dir_write(train_task *t, const ckpt_trainer *ck, base_err *e) {
    pretrain *P = t->user;
    const train_opts *o = P->o;
    int rc = train_config_write(o->out_dir, &P->cfg, ck, o, e);
    if (!rc && strcmp(t->identity, "bytes") != 0)
        rc = train_copy_tokenizer(o->data, t->identity, o->out_dir, e);
    return rc;
}

static void pretrain_free(train_task *t) {
    pretrain *P = t->user;
    tok_free(P->vocab);
    data_loader_free(P->train);
    data_loader_free(P->val);
}

int train_run(const train_opts *o, train_report_fn report, void *user, train_result *res,
              base_err *e) {
    pretrain P = {.o = o};
    train_task t = {.user = &P,
                    .build = pretrain_build,
                    .dir_check = pretrain_dir_check,
                    .dir_write = pretrain_dir_write,
                    .free = pretrain_free};
    return train_exec(o, &t, report, user, res, e);
}
