/* train/train.c: the training loop, eval, metrics log, loss plot and the closing sample. */
#include "train.h"

#include "ckpt/ckpt.h"
#include "data/data.h"
#include "optim/optim.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    if (o->seq > o->cfg.max_seq)
        return base_fail(e, BASE_EINVAL,
                         "sequence length %d is longer than the model's maximum (max_seq %d)",
                         o->seq, o->cfg.max_seq);
    return BASE_OK;
}

/* The eval windows do not depend on the run's seed, so val losses compare across runs. */
#define EVAL_SEED 0

/* Mean loss over eval_batches held-out batches. The val loader goes back to its start each
 * time, so successive evals score the same windows. */
static int evaluate(nn_model *m, data_loader *val, const train_opts *o, int *tok, int *tgt,
                    float *out, base_err *e) {
    data_pos start = {0, 0, 0};
    int rc = data_loader_seek(val, &start, e);
    double sum = 0;
    for (int i = 0; i < o->eval_batches && !rc; i++) {
        float l;
        if ((rc = data_loader_next(val, tok, tgt, e)) ||
            (rc = nn_forward(m, tok, tgt, o->batch, o->seq, &l, e)))
            break;
        sum += l;
    }
    *out = (float)(sum / o->eval_batches);
    return rc;
}

/* The closing sample: n tokens from the prompt (the end-of-text token for shards, a newline
 * for bytes), as text; a NUL byte cannot live in a C string and becomes a space. vocab: the
 * shards' vocabulary, NULL for bytes. */
static int sample_text(nn_model *m, const train_opts *o, const tok_vocab *vocab, int32_t eot,
                       char **sample, base_err *e) {
    int n = o->sample_tokens, prompt = vocab ? (eot >= 0 ? eot : 0) : '\n';
    int *out = malloc((size_t)n * sizeof(int));
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    base_rng sr;
    base_rng_seed(&sr, o->seed + 1);
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

typedef struct run_log {
    FILE *metrics;
    double *x, *y, *vx, *vy; /* loss curve points: (step, loss) and (step, val_loss) */
    size_t n, nv;
    char svg[4096];
} run_log;

static void log_point(run_log *g, int eval, double step, double v) {
    if (eval)
        g->vx[g->nv] = step, g->vy[g->nv++] = v;
    else
        g->x[g->n] = step, g->y[g->n++] = v;
}

/* Resuming at step k: metrics.jsonl keeps its lines of steps <= k (a crashed run may have
 * logged past its last checkpoint), rewritten atomically; their points go back on the plot. */
static int trim_metrics(run_log *g, const char *path, long k, size_t npts, base_err *e) {
    char *buf;
    size_t len;
    base_err ignored;
    if (base_read_file(path, &buf, &len, &ignored) != BASE_OK) return BASE_OK; /* none yet */
    size_t keep = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (!nl) break; /* a torn last line goes */
        *nl = 0;
        int step;
        float v;
        if (sscanf(buf + at, "{\"step\":%d", &step) != 1 || step > k) break;
        if (sscanf(buf + at, "{\"step\":%d,\"loss\":%f", &step, &v) == 2 && g->n < npts)
            log_point(g, 0, step, v);
        else if (sscanf(buf + at, "{\"step\":%d,\"val_loss\":%f", &step, &v) == 2 && g->nv < npts)
            log_point(g, 1, step, v);
        *nl = '\n';
        at = keep = (size_t)(nl - buf) + 1;
    }
    int rc = base_write_atomic(path, buf, keep, e);
    free(buf);
    return rc;
}

static void note(const train_opts *o, void *user, const char *msg) {
    if (o->note) o->note(msg, user);
}

static void note_skip(const char *msg, void *user) {
    void **ctx = user; /* (opts, user) */
    note(ctx[0], ctx[1], msg);
}

/* A finished checkpoint write: a metrics.jsonl line with its costs; a failure is noted too. */
static void log_write(const train_opts *o, void *user, run_log *g, const ckpt_write_result *r) {
    if (r->step < 0) return;
    if (r->rc == BASE_OK) {
        fprintf(g->metrics,
                "{\"step\":%ld,\"ckpt\":\"step_%08ld\",\"snapshot_ms\":%.3f,\"wait_ms\":%.3f,"
                "\"write_ms\":%.3f,\"bytes\":%llu}\n",
                r->step, r->step, r->snapshot_ms, r->wait_ms, r->write_ms,
                (unsigned long long)r->bytes);
        fflush(g->metrics);
        return;
    }
    fprintf(g->metrics, "{\"step\":%ld,\"ckpt\":\"step_%08ld\",\"failed\":true}\n", r->step,
            r->step);
    fflush(g->metrics);
    char msg[sizeof r->err.msg + 200];
    snprintf(msg, sizeof msg,
             "checkpoint step_%08ld failed, training goes on and the previous one stays: %s",
             r->step, r->err.msg);
    note(o, user, msg);
}

static int write_plot(run_log *g, base_err *e) {
    base_series s[2] = {{"train", g->x, g->y, g->n}, {"val", g->vx, g->vy, g->nv}};
    return base_plot_svg(g->svg, "hearth train: loss", "step", "loss (nats/token)", s,
                         g->nv ? 2 : 1, e);
}

int train_run(const train_opts *o, train_report_fn report, void *user, char **sample, base_err *e) {
    if (sample) *sample = NULL;
    int rc = check_opts(o, e);
    if (rc) return rc;
    data_loader *train = NULL, *val = NULL;
    tok_vocab *vocab = NULL;
    nn_model *m = NULL;
    optim_adamw opt = {0};
    run_log g = {0};
    int *tok = NULL, *tgt = NULL, stopping = 0;
    ckpt_writer *w = NULL;
    nn_config cfg = o->cfg;
    if ((rc = data_loader_open(&train, o->data, DATA_TRAIN, o->batch, o->seq, o->seed, e)) ||
        (rc = data_loader_open(&val, o->data, DATA_VAL, o->batch, o->seq, EVAL_SEED, e)))
        goto done;
    int data_vocab = (int)data_loader_vocab_size(train);
    if (cfg.vocab_size == 0) cfg.vocab_size = data_vocab; /* the data's */
    if (cfg.vocab_size < data_vocab) {
        rc =
            base_fail(e, BASE_EINVAL, "the model's vocabulary (%d) is smaller than the data's (%d)",
                      cfg.vocab_size, data_vocab);
        goto done;
    }
    if ((rc = nn_config_check(&cfg, e))) goto done;
    if (strcmp(data_loader_identity(train), "bytes") != 0 && sample && o->sample_tokens > 0) {
        /* shards: the sample is decoded with the vocabulary prepare stored beside them */
        char vpath[4096];
        snprintf(vpath, sizeof vpath, "%s/vocab.htok", o->data);
        if ((rc = tok_load(vpath, &vocab, e))) goto done;
        if (strcmp(tok_identity(vocab), data_loader_identity(train)) != 0) {
            rc = base_fail(e, BASE_EFORMAT, "%s is not the shards' vocabulary (%s, %s)", vpath,
                           tok_identity(vocab), data_loader_identity(train));
            goto done;
        }
    }
    tensor_set_threads(o->threads);
    size_t N = (size_t)o->batch * o->seq;
    tok = malloc(N * sizeof(int)), tgt = malloc(N * sizeof(int));
    size_t npts = (size_t)o->steps + 2;
    g.x = malloc(npts * sizeof(double)), g.y = malloc(npts * sizeof(double));
    g.vx = malloc(npts * sizeof(double)), g.vy = malloc(npts * sizeof(double));
    if (!tok || !tgt || !g.x || !g.y || !g.vx || !g.vy) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = nn_model_create(&m, &cfg, o->batch, o->seq, e))) goto done;
    if ((rc = optim_adamw_create(&opt, m->n_params, e))) goto done;
    opt.weight_decay = o->weight_decay;
    nn_model_init(m, o->seed);

    /* A checkpoint to resume from (checked against these settings before anything is
     * written), then the run directory. */
    char path[4096];
    int warmup = o->warmup >= 0 ? o->warmup : o->steps / 20;
    float min_lr = o->min_lr >= 0 ? o->min_lr : o->lr / 10;
    /* the state a checkpoint holds, and the settings a resume must share */
    ckpt_trainer ck = {.steps = o->steps,
                       .warmup = warmup,
                       .accum = o->accum,
                       .batch = o->batch,
                       .seq = o->seq,
                       .lr = o->lr,
                       .min_lr = min_lr,
                       .weight_decay = o->weight_decay,
                       .clip = o->clip,
                       .seed = o->seed};
    snprintf(ck.data_identity, sizeof ck.data_identity, "%s", data_loader_identity(train));
    ck.data_windows = data_loader_windows(train);
    char *from = NULL;
    void *ctx[2] = {(void *)o, user};
    int resume_ckpt = 0; /* o->resume names a checkpoint itself, not a run directory */
    if (o->resume) {
        snprintf(path, sizeof path, "%s/manifest.json", o->resume);
        resume_ckpt = access(path, F_OK) == 0;
    }
    if (resume_ckpt) {
        if (!(from = strdup(o->resume))) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    } else {
        rc = ckpt_find_latest_good(o->resume ? o->resume : o->out_dir, &from, note_skip, ctx, e);
        if (!rc && !from && o->resume)
            rc = base_fail(e, BASE_EINVAL, "no checkpoint in %s verifies; nothing to resume",
                           o->resume);
    }
    if (!rc && from) rc = ckpt_load(from, m, &opt, &ck, e);
    if (!rc && from) rc = data_loader_seek(train, &ck.pos, e);
    if (!rc && from) {
        char msg[4200];
        snprintf(msg, sizeof msg, "resuming from %s (step %ld)", from, ck.step);
        note(o, user, msg);
    }
    free(from);
    if (rc || (rc = base_mkdir_p(o->out_dir, e))) goto done;
    snprintf(path, sizeof path, "%s/config.json", o->out_dir);
    base_buf cj = {0};
    nn_config_json(&cfg, &cj);
    base_buf_printf(&cj,
                    "\n{\"batch\":%d,\"seq\":%d,\"steps\":%d,\"accum\":%d,\"lr\":%g,\"min_lr\":%g,"
                    "\"warmup\":%d,\"weight_decay\":%g,\"clip\":%g,\"seed\":%llu,\"threads\":%d,"
                    "\"data\":\"%s\"}\n",
                    o->batch, o->seq, o->steps, o->accum, (double)o->lr, (double)o->min_lr,
                    o->warmup, (double)o->weight_decay, (double)o->clip,
                    (unsigned long long)o->seed, o->threads, o->data);
    rc = cj.failed ? base_fail(e, BASE_ENOMEM, "out of memory")
                   : base_write_atomic(path, cj.data, cj.len, e);
    base_buf_free(&cj);
    if (rc) goto done;
    if (strcmp(data_loader_identity(train), "bytes") != 0) {
        /* The run keeps its tokenizer (RUN/tokenizer.htok) so `hearth generate` and `serve`
         * need only the run directory: the shards' vocab.htok, checked to be theirs. */
        char *vb = NULL;
        size_t vlen = 0;
        tok_vocab *tv = NULL;
        snprintf(path, sizeof path, "%s/vocab.htok", o->data);
        if (!(rc = base_read_file(path, &vb, &vlen, e)) && !(rc = tok_parse(vb, vlen, &tv, e))) {
            if (strcmp(tok_identity(tv), data_loader_identity(train)) != 0)
                rc = base_fail(e, BASE_EFORMAT, "%s is not the shards' vocabulary (%s, %s)", path,
                               tok_identity(tv), data_loader_identity(train));
            snprintf(path, sizeof path, "%s/" CKPT_RUN_TOKENIZER, o->out_dir);
            if (!rc) rc = base_write_atomic(path, vb, vlen, e);
        }
        tok_free(tv);
        free(vb);
        if (rc) goto done;
    }

    int start = (int)ck.step;
    snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
    if (start > 0 && (rc = trim_metrics(&g, path, start, npts, e))) goto done;
    if (!(g.metrics = fopen(path, start > 0 ? "a" : "w"))) {
        rc = base_fail(e, BASE_EIO, "cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    snprintf(g.svg, sizeof g.svg, "%s/loss.svg", o->out_dir);

    train_progress p = {.steps = o->steps, .n_params = m->n_params};
    p.peak_gflops = tensor_sgemm_peak_gflops(1024, 3);
    double flops_step = 3.0 * nn_flops_per_token(&cfg, o->seq) * (double)N * o->accum;
    double t_start = base_now(), t_ckpt = t_start;
    if ((o->ckpt_every || o->ckpt_every_min > 0) &&
        (rc = ckpt_writer_create(&w, o->out_dir, m, o->keep_last, o->keep_every, e)))
        goto done;
    for (int step = start; step < o->steps; step++) {
        double t0 = base_now();
        float lr = optim_lr_at(step, warmup, o->steps, o->lr, min_lr), loss = 0;
        nn_zero_grad(m);
        for (int a = 0; a < o->accum; a++) {
            float l;
            if ((rc = data_loader_next(train, tok, tgt, e))) goto done;
            if ((rc = nn_forward(m, tok, tgt, o->batch, o->seq, &l, e))) goto done;
            nn_backward(m, 1.0f / (float)o->accum);
            loss += l / (float)o->accum;
        }
        float norm = optim_clip_grad_norm(m->grads, m->n_params, o->clip);
        if (!isfinite(loss) || !isfinite(norm)) {
            rc = base_fail(e, BASE_ENUM,
                           "step %d: the %s is not finite (%g); stopping. Try a lower --lr.",
                           step + 1, isfinite(loss) ? "gradient norm" : "loss",
                           (double)(isfinite(loss) ? norm : loss));
            goto done;
        }
        if (w) ckpt_writer_snapshot_wait(w); /* a checkpoint's copy of the state is taken */
        optim_adamw_step(&opt, m->params, m->grads, m->tensors, m->n_tensors, lr);
        double dt = base_now() - t0;
        p.step = step + 1;
        p.is_eval = 0;
        p.loss = loss;
        p.lr = lr;
        p.grad_norm = norm;
        p.ms = dt * 1e3;
        p.tok_per_s = (double)N * o->accum / dt;
        p.peak_frac = p.peak_gflops > 0 ? flops_step / dt * 1e-9 / p.peak_gflops : 0;
        p.eta_s = (base_now() - t_start) / (step + 1 - start) * (o->steps - step - 1);
        fprintf(g.metrics,
                "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"ms\":%.3f,"
                "\"tokens_per_s\":%.1f,\"peak_frac\":%.4f}\n",
                p.step, (double)loss, (double)lr, (double)norm, p.ms, p.tok_per_s, p.peak_frac);
        log_point(&g, 0, p.step, loss);
        if (report) report(&p, user);
        int last = step + 1 == o->steps;
        if ((o->eval_every && p.step % o->eval_every == 0) || last) {
            if ((rc = evaluate(m, val, o, tok, tgt, &p.val_loss, e))) goto done;
            p.is_eval = 1;
            fprintf(g.metrics, "{\"step\":%d,\"val_loss\":%.6f}\n", p.step, (double)p.val_loss);
            log_point(&g, 1, p.step, p.val_loss);
            if ((rc = write_plot(&g, e))) goto done;
            if (report) report(&p, user);
        }
        fflush(g.metrics);
        ckpt_write_result wr;
        if (w && ckpt_writer_done(w)) {
            ckpt_writer_wait(w, &wr);
            log_write(o, user, &g, &wr);
        }
        int due = (o->ckpt_every && p.step % o->ckpt_every == 0) ||
                  (o->ckpt_every_min > 0 && base_now() - t_ckpt >= o->ckpt_every_min * 60);
        stopping = o->stop && *o->stop && !last;
        if (due || stopping) {
            ck.step = p.step;
            data_loader_tell(train, &ck.pos);
        }
        if (due && !stopping) {
            t_ckpt = base_now();
            rc = ckpt_writer_submit(w, m, &opt, &ck, &wr, e);
            log_write(o, user, &g, &wr);
            if (rc) goto done;
        }
        if (stopping) {
            /* the final checkpoint, synchronously, after the write in flight */
            if (w) {
                ckpt_writer_wait(w, &wr);
                log_write(o, user, &g, &wr);
            }
            if (!(rc = ckpt_save(o->out_dir, m, &opt, &ck, e)))
                rc = ckpt_prune(o->out_dir, o->keep_last, o->keep_every, NULL, e);
            if (rc) goto done;
            char msg[200];
            snprintf(msg, sizeof msg, "stopped at step %d of %d; checkpoint step_%08d written",
                     p.step, o->steps, p.step);
            note(o, user, msg);
            break;
        }
    }
    if (w) {
        ckpt_write_result wr;
        ckpt_writer_wait(w, &wr);
        log_write(o, user, &g, &wr);
    }
    if (sample && o->sample_tokens > 0 && !stopping)
        rc = sample_text(m, o, vocab, data_loader_eot_id(train), sample, e);
done:
    ckpt_writer_free(w); /* after an error: waits for the write in flight */
    if (g.metrics && fclose(g.metrics) != 0 && rc == BASE_OK)
        rc = base_fail(e, BASE_EIO, "cannot write the metrics log in %s", o->out_dir);
    free(g.x), free(g.y), free(g.vx), free(g.vy);
    free(tok);
    free(tgt);
    optim_adamw_free(&opt);
    nn_model_free(m);
    tok_free(vocab);
    data_loader_free(train);
    data_loader_free(val);
    return rc;
}
