/* train/finetune.c: `hearth finetune` (finetune.h): the base, the data, the trainable set
 * (adapters or every weight), the loop with eval and checkpoints, the exports at the end. */
#include "train/finetune.h"

#include "train_int.h"

#include "ckpt/crc32c.h"
#include "ckpt/gguf_model.h"
#include "ckpt/lora_io.h"
#include "nn/lora.h"
#include "optim/optim.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ft_opts_default(ft_opts *o) {
    memset(o, 0, sizeof *o);
    train_opts_default(&o->t);
    o->t.lr = 2e-4f;
    o->t.weight_decay = 0;
    o->t.sample_tokens = 0;
    o->val_frac = 0.1f;
    o->lora_rank = 8;
    o->lora_alpha = 16;
    o->lora_dropout = 0.05f;
    o->lora_targets = (1u << NN_LORA_Q) | (1u << NN_LORA_K) | (1u << NN_LORA_V) | (1u << NN_LORA_O);
}

int ft_load_base(const char *path, int B, int T, int mode, nn_model **out, tok_vocab **vocab,
                 base_err *e) {
    *out = NULL;
    if (vocab) *vocab = NULL;
    base_file_kind kind;
    int rc = base_file_kind_of(path, &kind, e);
    if (rc) return rc;
    if (kind != BASE_FILE_GGUF)
        return base_fail(e, BASE_EINVAL,
                         "--base %s is not a GGUF file; a hearth run or safetensors export becomes "
                         "one with `hearth export RUN --format gguf -o base.gguf`",
                         path);
    gguf_file *g;
    if ((rc = gguf_open(path, &g, e))) return rc;
    nn_config c;
    nn_model *m = NULL;
    if (!(rc = ckpt_gguf_config(g, &c, e))) {
        if (T > c.max_seq)
            rc = base_fail(e, BASE_EINVAL, "--seq %d is longer than the base's context (%d)", T,
                           c.max_seq);
        else {
            nn_wsrc src = {0};
            if (mode == FT_BASE_STORED) rc = ckpt_gguf_wsrc(path, &c, &src, e);
            if (!rc)
                rc = src.held                ? nn_model_create_held(&m, &c, B, T, &src, e)
                     : mode == FT_BASE_TRAIN ? nn_model_create(&m, &c, B, T, e)
                                             : nn_model_create_frozen(&m, &c, B, T, e);
            if (!rc) rc = ckpt_gguf_read_model(g, m, e);
        }
    }
    if (!rc && vocab) rc = tok_load_gguf(g, vocab, e);
    gguf_close(g);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return BASE_OK;
}

/* ---- the run */

typedef struct ftrun {
    const ft_opts *o;
    train_report_fn report;
    void *user;
    nn_model *m;
    nn_lora *lora;
    tok_vocab *vocab;
    data_sft *train, *val;
    optim_adamw opt;
    float *P, *G; /* the trained floats and their gradients */
    size_t n;
    const nn_tensor *tensors;
    int n_tensors;
    int warmup;
    float min_lr;
    char *settings; /* finetune.json's text */
    uint32_t *perm;
    long perm_epoch;
    int *tok, *tgt;
    train_log log;
    int lock;
} ftrun;

static void note(const ftrun *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const ftrun *R, const char *fmt, ...) {
    if (!R->o->t.note) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    R->o->t.note(msg, R->user);
}

typedef struct chat_ctx {
    const ft_opts *o;
    tok_vocab *v;
    nn_family fam;
} chat_ctx;

static int chat_encode(const data_msg *msgs, size_t n, tok_ids *out, void *user, base_err *e) {
    chat_ctx *c = user;
    return c->o->chat(msgs, n, c->v, c->fam, out, c->o->chat_user, e);
}

static int load_data(ftrun *R, base_err *e) {
    const ft_opts *o = R->o;
    chat_ctx cc = {o, R->vocab, R->m->cfg.family};
    data_sft_opts so = {.vocab = R->vocab,
                        .seq = o->t.seq,
                        .encode = o->chat ? chat_encode : NULL,
                        .encode_user = &cc,
                        .add_bos = tok_kind(R->vocab) == TOK_KIND_SPM};
    int rc = data_sft_load(o->t.data, &so, &R->train, e);
    if (!rc && o->val) rc = data_sft_load(o->val, &so, &R->val, e);
    if (!rc && !o->val) rc = data_sft_split(R->train, o->val_frac, o->t.seed, &R->val, e);
    if (rc) return rc;
    size_t tr = R->train->n_truncated + (R->val && o->val ? R->val->n_truncated : 0);
    if (tr)
        note(R,
             "warning: %zu example%s longer than --seq %d tokens were truncated to their first %d "
             "tokens",
             tr, tr == 1 ? "" : "s", o->t.seq, o->t.seq + 1);
    if (R->train->n_untrainable)
        note(R,
             "warning: %zu example%s without a token to learn (no assistant turn of weight 1) "
             "left out",
             R->train->n_untrainable, R->train->n_untrainable == 1 ? "" : "s");
    if (R->val->n == 0)
        note(R, "no held-out rows (--val-frac %g of %zu rows): evals are skipped",
             (double)o->val_frac, R->train->n);
    return BASE_OK;
}

/* Rows of the step's micro-batch a: row k = (step * accum + a) * B + i of an endless stream,
 * epoch k / n permuted from (seed, epoch). */
static int fill_batch(ftrun *R, long step, int a, base_err *e) {
    const train_opts *t = &R->o->t;
    size_t n = R->train->n, S = (size_t)t->seq;
    for (int i = 0; i < t->batch; i++) {
        uint64_t k = ((uint64_t)step * t->accum + a) * t->batch + i;
        long ep = (long)(k / n);
        if (ep != R->perm_epoch) {
            base_rng r;
            base_rng_seed(&r, t->seed * 0x9e3779b97f4a7c15ull + (uint64_t)ep + 1);
            for (size_t j = 0; j < n; j++) R->perm[j] = (uint32_t)j;
            for (size_t j = n - 1; j > 0; j--) {
                size_t q = (size_t)base_rng_below(&r, j + 1);
                uint32_t x = R->perm[j];
                R->perm[j] = R->perm[q], R->perm[q] = x;
            }
            R->perm_epoch = ep;
        }
        size_t row = R->perm[k % n];
        memcpy(R->tok + i * S, R->train->tok + row * S, S * sizeof(int));
        memcpy(R->tgt + i * S, R->train->tgt + row * S, S * sizeof(int));
    }
    (void)e;
    return BASE_OK;
}

/* The held-out loss: the mean over every trained token of the first eval_batches batches of
 * val rows (a short last batch padded with ignored rows). */
static int evaluate(ftrun *R, float *out, base_err *e) {
    const train_opts *t = &R->o->t;
    size_t S = (size_t)t->seq, B = (size_t)t->batch;
    double sum = 0;
    long cnt = 0;
    if (R->lora) R->lora->training = 0;
    for (size_t b = 0; b < (size_t)t->eval_batches && b * B < R->val->n; b++) {
        for (size_t i = 0; i < B; i++) {
            size_t row = b * B + i;
            for (size_t j = 0; j < S; j++) {
                R->tok[i * S + j] = row < R->val->n ? R->val->tok[row * S + j] : 0;
                R->tgt[i * S + j] = row < R->val->n ? R->val->tgt[row * S + j] : -1;
            }
        }
        float l;
        int rc = nn_forward(R->m, R->tok, R->tgt, t->batch, t->seq, &l, e);
        if (rc) return rc;
        sum += (double)l * R->m->n_valid;
        cnt += R->m->n_valid;
    }
    if (R->lora) R->lora->training = 1;
    *out = cnt ? (float)(sum / cnt) : NAN;
    return BASE_OK;
}

/* ---- checkpoints: RUN/step_NNNNNNNN.ft = "HFT1", u32 version 1, u64 step, u64 adam t,
 * u64 n, u32 settings length, settings (finetune.json's text), params[n], m[n], v[n] (F32),
 * u32 CRC-32C of everything before it. */

#define FT_MAGIC "HFT1"

static int ckpt_write(ftrun *R, long step, base_err *e) {
    size_t sl = strlen(R->settings), n = R->n;
    size_t len = 4 + 4 + 8 + 8 + 8 + 4 + sl + 3 * n * sizeof(float) + 4;
    uint8_t *b = malloc(len), *p = b;
    if (!b) return base_fail(e, BASE_ENOMEM, "out of memory for a checkpoint");
    uint32_t ver = 1, sl32 = (uint32_t)sl;
    uint64_t st = (uint64_t)step, t = (uint64_t)R->opt.t, n64 = n;
    memcpy(p, FT_MAGIC, 4), p += 4;
    memcpy(p, &ver, 4), p += 4;
    memcpy(p, &st, 8), p += 8;
    memcpy(p, &t, 8), p += 8;
    memcpy(p, &n64, 8), p += 8;
    memcpy(p, &sl32, 4), p += 4;
    memcpy(p, R->settings, sl), p += sl;
    memcpy(p, R->P, n * 4), p += n * 4;
    memcpy(p, R->opt.m, n * 4), p += n * 4;
    memcpy(p, R->opt.v, n * 4), p += n * 4;
    uint32_t crc = ckpt_crc32c(0, b, (size_t)(p - b));
    memcpy(p, &crc, 4);
    char path[TRAIN_PATH_MAX];
    snprintf(path, sizeof path, "%s/step_%08ld.ft", R->o->t.out_dir, step);
    int rc = base_write_atomic(path, b, len, e);
    free(b);
    return rc;
}

/* Reads path into R (params, moments, t) when it verifies and holds these settings; *step. */
static int ckpt_read(ftrun *R, const char *path, long *step, base_err *e) {
    char *b;
    size_t len;
    int rc = base_read_file(path, &b, &len, e);
    if (rc) return rc;
    uint64_t st, t, n64;
    uint32_t ver, sl, crc;
    size_t head = 4 + 4 + 8 + 8 + 8 + 4;
    if (len < head + 4 || memcmp(b, FT_MAGIC, 4)) {
        rc = base_fail(e, BASE_EFORMAT, "%s is not a fine-tuning checkpoint", path);
        goto out;
    }
    memcpy(&ver, b + 4, 4), memcpy(&st, b + 8, 8), memcpy(&t, b + 16, 8);
    memcpy(&n64, b + 24, 8), memcpy(&sl, b + 32, 4);
    memcpy(&crc, b + len - 4, 4);
    if (ver != 1 || n64 != R->n || len != head + sl + 3 * n64 * 4 + 4 ||
        ckpt_crc32c(0, b, len - 4) != crc) {
        rc = base_fail(e, BASE_EFORMAT, "%s is damaged (size or CRC-32C)", path);
        goto out;
    }
    if (sl != strlen(R->settings) || memcmp(b + head, R->settings, sl)) {
        rc = base_fail(e, BASE_EINVAL, "%s was written with other settings", path);
        goto out;
    }
    const char *p = b + head + sl;
    memcpy(R->P, p, R->n * 4);
    memcpy(R->opt.m, p + R->n * 4, R->n * 4);
    memcpy(R->opt.v, p + 2 * R->n * 4, R->n * 4);
    R->opt.t = (long)t;
    *step = (long)st;
out:
    free(b);
    return rc;
}

/* Step numbers of RUN/step_*.ft, newest first (*n of them; malloc'd). */
static long *list_ckpts(const char *dir, int *n) {
    DIR *d = opendir(dir);
    long *s = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    *n = 0;
    if (!d) return NULL;
    while ((de = readdir(d))) {
        long st;
        char tail[8];
        if (sscanf(de->d_name, "step_%ld.%7s", &st, tail) != 2 || strcmp(tail, "ft")) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            long *x = realloc(s, (size_t)cap * sizeof *s);
            if (!x) break;
            s = x;
        }
        s[cnt++] = st;
    }
    closedir(d);
    for (int i = 1; i < cnt; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && s[j] > s[j - 1]; j--) {
            long x = s[j];
            s[j] = s[j - 1], s[j - 1] = x;
        }
    *n = cnt;
    return s;
}

static void prune(ftrun *R) {
    const train_opts *t = &R->o->t;
    if (!t->keep_last) return;
    int n;
    long *s = list_ckpts(t->out_dir, &n);
    for (int i = t->keep_last; i < n; i++) {
        if (t->keep_every && s[i] % t->keep_every == 0) continue;
        char path[TRAIN_PATH_MAX];
        snprintf(path, sizeof path, "%s/step_%08ld.ft", t->out_dir, s[i]);
        unlink(path);
    }
    free(s);
}

/* finetune.json: every setting the result depends on. */
static int make_settings(ftrun *R, base_err *e) {
    const ft_opts *o = R->o;
    const train_opts *t = &o->t;
    struct stat sb;
    long long base_size = stat(o->base, &sb) == 0 ? (long long)sb.st_size : -1;
    long long data_size = stat(t->data, &sb) == 0 ? (long long)sb.st_size : -1;
    json_t *j = json_object();
    json_object_set_new(j, "base", json_string(o->base));
    json_object_set_new(j, "base_bytes", json_integer(base_size));
    json_object_set_new(j, "data", json_string(t->data));
    json_object_set_new(j, "data_bytes", json_integer(data_size));
    json_object_set_new(j, "val", o->val ? json_string(o->val) : json_null());
    json_object_set_new(j, "val_frac", json_real(o->val_frac));
    json_object_set_new(j, "mode", json_string(o->full ? "full" : "lora"));
    if (!o->full) {
        json_object_set_new(j, "lora_rank", json_integer(o->lora_rank));
        json_object_set_new(j, "lora_alpha", json_real(o->lora_alpha));
        json_object_set_new(j, "lora_dropout", json_real(o->lora_dropout));
        json_object_set_new(j, "lora_targets", json_integer(o->lora_targets));
    }
    json_object_set_new(j, "steps", json_integer(t->steps));
    json_object_set_new(j, "batch", json_integer(t->batch));
    json_object_set_new(j, "seq", json_integer(t->seq));
    json_object_set_new(j, "accum", json_integer(t->accum));
    json_object_set_new(j, "lr", json_real(t->lr));
    json_object_set_new(j, "min_lr", json_real(R->min_lr));
    json_object_set_new(j, "warmup", json_integer(R->warmup));
    json_object_set_new(j, "weight_decay", json_real(t->weight_decay));
    json_object_set_new(j, "clip", json_real(t->clip));
    json_object_set_new(j, "seed", json_integer((json_int_t)t->seed));
    json_object_set_new(j, "threads", json_integer(t->threads));
    R->settings = json_dumps(j, TRAIN_JSON_FLAGS);
    json_decref(j);
    return R->settings ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
}

/* The run directory: made, locked; finetune.json compared (a differing setting refused by
 * name) or written; the newest checkpoint that verifies loaded (*start). */
static int open_run(ftrun *R, long *start, base_err *e) {
    const char *dir = R->o->t.out_dir;
    char path[TRAIN_PATH_MAX];
    int rc = base_mkdir_p(dir, e);
    if (!rc) rc = train_lock(dir, &R->lock, e);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/finetune.json", dir);
    char *old;
    size_t len;
    *start = 0;
    if (access(path, F_OK) == 0) {
        if ((rc = base_read_file(path, &old, &len, e))) return rc;
        json_t *a = json_loadb(old, len, 0, NULL), *b = json_loads(R->settings, 0, NULL);
        free(old);
        const char *key;
        json_t *v;
        json_object_foreach(b, key, v) {
            json_t *w = a ? json_object_get(a, key) : NULL;
            if (!w || !json_equal(v, w)) {
                char *x = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL,
                     *y = json_dumps(v, JSON_ENCODE_ANY);
                rc = base_fail(e, BASE_EINVAL,
                               "%s holds another fine-tuning run: %s was %s, now %s (use another "
                               "--out, or the same settings to resume)",
                               dir, key, x ? x : "absent", y ? y : "?");
                free(x);
                free(y);
                break;
            }
        }
        json_decref(a);
        json_decref(b);
        if (rc) return rc;
    } else if ((rc = base_write_atomic(path, R->settings, strlen(R->settings), e))) {
        return rc;
    }
    int n;
    long *s = list_ckpts(dir, &n);
    for (int i = 0; i < n; i++) {
        base_err ce = {0};
        snprintf(path, sizeof path, "%s/step_%08ld.ft", dir, s[i]);
        if (ckpt_read(R, path, start, &ce) == BASE_OK) {
            note(R, "resuming from %s (step %ld)", path, *start);
            break;
        }
        note(R, "skipping checkpoint %s: %s", path, ce.msg);
    }
    free(s);
    return BASE_OK;
}

static int write_results(ftrun *R, base_err *e) {
    const char *dir = R->o->t.out_dir;
    char path[TRAIN_PATH_MAX];
    int rc;
    if (R->lora) {
        snprintf(path, sizeof path, "%s/adapter.gguf", dir);
        if ((rc = ckpt_lora_write_gguf(path, R->m, R->lora, e))) return rc;
        if (R->m->cfg.family == NN_LLAMA) {
            snprintf(path, sizeof path, "%s/adapter", dir);
            if ((rc = ckpt_lora_write_peft(path, R->m, R->lora, R->o->base, e))) return rc;
        }
        return BASE_OK;
    }
    gguf_writer *w;
    float *scratch = NULL;
    if ((rc = gguf_writer_create(&w, e))) return rc;
    rc = ckpt_gguf_add_model(w, R->m, "hearth finetune", NULL, &scratch, e);
    if (!rc) rc = tok_gguf_set(R->vocab, w, e);
    if (!rc && R->o->chat_template) gguf_set_str(w, "tokenizer.chat_template", R->o->chat_template);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    if (!rc) rc = gguf_writer_save(w, path, e);
    gguf_writer_free(w);
    free(scratch);
    return rc;
}

static int loop(ftrun *R, long start, ft_result *out, base_err *e) {
    const train_opts *t = &R->o->t;
    size_t N = (size_t)t->batch * t->seq;
    train_progress p = {.steps = t->steps, .n_params = R->n};
    double t_start = base_now(), t_ckpt = t_start;
    int rc;
    out->step = start;
    if (start == 0 && R->val->n) {
        if ((rc = evaluate(R, &p.val_loss, e))) return rc;
        out->first_val = p.val_loss;
        p.step = 0, p.is_eval = 1;
        train_log_eval(&R->log, &p);
        if (R->report) R->report(&p, R->user);
    }
    for (long step = start; step < t->steps; step++) {
        double t0 = base_now();
        float lr = optim_lr_at(step, R->warmup, t->steps, t->lr, R->min_lr), loss = 0;
        memset(R->G, 0, R->n * sizeof(float));
        long valid = 0;
        for (int a = 0; a < t->accum; a++) {
            float l;
            fill_batch(R, step, a, e);
            if (R->lora) R->lora->key = (uint64_t)step * t->accum + a;
            if ((rc = nn_forward(R->m, R->tok, R->tgt, t->batch, t->seq, &l, e))) return rc;
            nn_backward(R->m, 1.0f / (float)t->accum);
            loss += l / (float)t->accum;
            valid += R->m->n_valid;
        }
        float norm = optim_clip_grad_norm(R->G, R->n, t->clip);
        if (!isfinite(loss) || !isfinite(norm))
            return base_fail(e, BASE_ENUM,
                             "step %ld: the %s is not finite; stopping. Try a lower --lr.",
                             step + 1, isfinite(loss) ? "gradient norm" : "loss");
        optim_adamw_step(&R->opt, R->P, R->G, R->tensors, R->n_tensors, lr);
        double dt = base_now() - t0;
        p.step = (int)step + 1, p.is_eval = 0, p.loss = loss, p.lr = lr, p.grad_norm = norm;
        p.ms = dt * 1e3;
        p.tok_per_s = (double)N * t->accum / dt;
        p.eta_s = (base_now() - t_start) / (double)(step + 1 - start) * (t->steps - step - 1);
        out->step = p.step;
        train_log_step(&R->log, &p);
        if (R->report) R->report(&p, R->user);
        int last = p.step == t->steps;
        if (((t->eval_every && p.step % t->eval_every == 0) || last) && R->val->n) {
            if ((rc = evaluate(R, &p.val_loss, e))) return rc;
            p.is_eval = 1;
            out->last_val = p.val_loss;
            train_log_eval(&R->log, &p);
            if (R->report) R->report(&p, R->user);
        }
        if ((rc = train_log_plot(&R->log, e))) return rc;
        if (last) break;
        if (t->stop && *t->stop) {
            out->stopped = 1;
            break;
        }
        if ((t->ckpt_every && p.step % t->ckpt_every == 0) ||
            (t->ckpt_every_min > 0 && base_now() - t_ckpt >= t->ckpt_every_min * 60)) {
            t_ckpt = base_now();
            ckpt_write_result wr = {.step = p.step};
            double c0 = base_now();
            wr.rc = ckpt_write(R, p.step, &wr.err);
            wr.write_ms = (base_now() - c0) * 1e3;
            wr.bytes = (uint64_t)R->n * 12;
            train_log_ckpt(&R->log, &wr, 0);
            if (wr.rc)
                note(R, "checkpoint step %d failed, training goes on: %s", p.step, wr.err.msg);
            else
                prune(R);
        }
    }
    return BASE_OK;
}

int ft_run(const ft_opts *o, train_report_fn report, void *user, ft_result *res, base_err *e) {
    ft_result out = {0};
    out.first_val = out.last_val = NAN;
    if (res) *res = out;
    const train_opts *t = &o->t;
    if (!o->base) return base_fail(e, BASE_EINVAL, "no base model given (--base MODEL)");
    if (!t->data) return base_fail(e, BASE_EINVAL, "no training data given (--data PATH)");
    if (!t->out_dir) return base_fail(e, BASE_EINVAL, "no run directory given (--out DIR)");
    if (t->steps < 1 || t->batch < 1 || t->seq < 2 || t->accum < 1 || t->eval_batches < 1 ||
        !(t->lr > 0) || !(o->val_frac >= 0 && o->val_frac < 1) || t->threads < 1)
        return base_fail(e, BASE_EINVAL,
                         "steps, batch, accum, eval batches, threads must be >= 1, seq >= 2, lr > "
                         "0 and val_frac in [0, 1)");
    ftrun R = {.o = o, .report = report, .user = user, .lock = -1, .perm_epoch = -1};
    tensor_set_threads(t->threads);
    int rc = ft_load_base(o->base, t->batch, t->seq, o->full ? FT_BASE_TRAIN : FT_BASE_STORED, &R.m,
                          &R.vocab, e);
    if (!rc && R.m->wsrc.held)
        note(&R,
             "QLoRA: the base's matrices stay in the file's types, dequantized per product (%zu "
             "of its %zu parameters in F32)",
             R.m->n_params, nn_config_params(&R.m->cfg));
    if (!rc) rc = load_data(&R, e);
    if (rc) goto done;
    out.n_train = R.train->n, out.n_val = R.val->n;
    out.n_truncated = R.train->n_truncated, out.n_untrainable = R.train->n_untrainable;
    if (o->full) {
        R.P = R.m->params, R.G = R.m->grads, R.n = R.m->n_params;
        R.tensors = R.m->tensors, R.n_tensors = R.m->n_tensors;
    } else {
        if ((rc = nn_lora_create(&R.lora, R.m, o->lora_rank, o->lora_alpha, o->lora_dropout,
                                 o->lora_targets, t->seed, e)))
            goto done;
        nn_lora_attach(R.m, R.lora);
        R.lora->training = 1;
        R.P = R.lora->params, R.G = R.lora->grads, R.n = R.lora->n_params;
        R.tensors = R.lora->tensors, R.n_tensors = R.lora->n_tensors;
    }
    out.n_trainable_params = R.n;
    R.warmup = t->warmup >= 0 ? t->warmup : t->steps / 20;
    R.min_lr = t->min_lr >= 0 ? t->min_lr : t->lr / 10;
    size_t N = (size_t)t->batch * t->seq;
    R.tok = malloc(N * sizeof(int)), R.tgt = malloc(N * sizeof(int));
    R.perm = malloc(R.train->n * sizeof(uint32_t));
    if (!R.tok || !R.tgt || !R.perm) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = optim_adamw_create(&R.opt, R.n, e))) goto done;
    R.opt.weight_decay = t->weight_decay;
    long start = 0;
    if ((rc = make_settings(&R, e)) || (rc = open_run(&R, &start, e))) goto done;
    if (start == t->steps) {
        out.complete = 1;
        out.step = start;
        goto done;
    }
    if ((rc = train_log_open(&R.log, t->out_dir, start, t->steps, e))) goto done;
    if ((rc = loop(&R, start, &out, e))) goto done;
    {
        ckpt_write_result wr = {.step = out.step};
        double c0 = base_now();
        wr.rc = ckpt_write(&R, out.step, &wr.err);
        wr.write_ms = (base_now() - c0) * 1e3;
        wr.bytes = (uint64_t)R.n * 12;
        train_log_ckpt(&R.log, &wr, 1);
        if (wr.rc) {
            rc = base_fail(e, wr.rc, "the final checkpoint could not be written: %s", wr.err.msg);
            goto done;
        }
        prune(&R);
    }
    if (!out.stopped) rc = write_results(&R, e);
    out.peft = !rc && R.lora && R.m->cfg.family == NN_LLAMA;
    if (!rc && !out.stopped && t->sample_tokens > 0 && res) {
        int n = t->sample_tokens, *ids = malloc((size_t)n * sizeof(int));
        int32_t *ids32 = malloc((size_t)n * sizeof(int32_t));
        int prompt = tok_bos_id(R.vocab) >= 0 ? tok_bos_id(R.vocab) : 0;
        base_rng sr;
        base_rng_seed(&sr, t->seed + 1);
        if (R.lora) R.lora->training = 0;
        if (!ids || !ids32)
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else if (!(rc = train_generate(R.m, &prompt, 1, n, 0.8f, &sr, ids, e))) {
            for (int i = 0; i < n; i++) ids32[i] = ids[i];
            size_t len;
            rc = tok_decode(R.vocab, ids32, (size_t)n, 0, &out.sample, &len, e);
        }
        free(ids);
        free(ids32);
    }
done:
    int lrc = train_log_close(&R.log, rc ? NULL : e);
    if (!rc) rc = lrc;
    train_unlock(R.lock);
    free(R.settings);
    free(R.tok);
    free(R.tgt);
    free(R.perm);
    optim_adamw_free(&R.opt);
    nn_lora_free(R.lora);
    nn_model_free(R.m);
    tok_free(R.vocab);
    data_sft_free(R.train);
    data_sft_free(R.val);
    if (rc) {
        free(out.sample);
        out.sample = NULL;
    }
    if (res)
        *res = out;
    else
        free(out.sample);
    return rc;
}
