/* train/finetune.c: `hearth finetune` (finetune.h) as a task of train's loop (train_int.h): the
 * base and what is trained (LoRA adapters attached to it, or every weight), the SFT rows as
 * batch streams, finetune.json, and the exports at the end. The loop, its evals, checkpoints,
 * resume and data parallelism are train.c's. */
#include "train/finetune.h"

#include "train_int.h"

#include "ckpt/crc32c.h"
#include "ckpt/gguf_model.h"
#include "ckpt/lora_io.h"
#include "nn/lora.h"

#include <math.h>
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
    int own = 1; /* 0: g is the held source's (the model's, closed by nn_model_free) */
    if (!(rc = ckpt_gguf_config(g, &c, e))) {
        if (T > c.max_seq)
            rc = base_fail(e, BASE_EINVAL, "--seq %d is longer than the base's context (%d)", T,
                           c.max_seq);
        else {
            nn_wsrc src = {0};
            if (mode == FT_BASE_STORED) rc = ckpt_gguf_wsrc(g, &c, &src, e);
            own = !src.held;
            if (!rc)
                rc = src.held                ? nn_model_create_held(&m, &c, B, T, &src, e)
                     : mode == FT_BASE_TRAIN ? nn_model_create(&m, &c, B, T, e)
                                             : nn_model_create_frozen(&m, &c, B, T, e);
            if (!rc) rc = ckpt_gguf_read_model(g, m, e);
        }
    }
    if (!rc && vocab) rc = tok_load_gguf(g, vocab, e);
    if (own) gguf_close(g);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return BASE_OK;
}

/* ---- SFT rows as train's batch streams */

/* The training rows: an endless stream, row k of it = epoch k / n's permutation (drawn from
 * (seed, epoch)) at k % n; the position is k (data_pos.window). Held-out rows: in order, a short
 * last batch padded with rows whose targets are all ignored. */
typedef struct sft_stream {
    const data_sft *d;
    int B, S;
    uint64_t seed, k;
    uint32_t *perm; /* the epoch's order (training rows); NULL: in order (held-out rows) */
    long perm_epoch;
} sft_stream;

static void sft_row(sft_stream *s, int *tok, int *tgt, int i) {
    size_t n = s->d->n, S = (size_t)s->S;
    uint64_t k = s->k + (uint64_t)i;
    if (!s->perm) {
        for (size_t j = 0; j < S; j++) {
            tok[i * S + j] = k < n ? s->d->tok[k * S + j] : 0;
            tgt[i * S + j] = k < n ? s->d->tgt[k * S + j] : -1;
        }
        return;
    }
    long ep = (long)(k / n);
    if (ep != s->perm_epoch) {
        base_rng r;
        base_rng_seed(&r, s->seed * 0x9e3779b97f4a7c15ull + (uint64_t)ep + 1);
        base_rng_permute(&r, s->perm, n);
        s->perm_epoch = ep;
    }
    size_t row = s->perm[k % n];
    memcpy(tok + i * S, s->d->tok + row * S, S * sizeof(int));
    memcpy(tgt + i * S, s->d->tgt + row * S, S * sizeof(int));
}

static int sft_next(void *self, int *tok, int *tgt, base_err *e) {
    sft_stream *s = self;
    (void)e;
    if (tok)
        for (int i = 0; i < s->B; i++) sft_row(s, tok, tgt, i);
    s->k += (uint64_t)s->B;
    return BASE_OK;
}
static void sft_tell(void *self, data_pos *p) {
    *p = (data_pos){0, 0, ((sft_stream *)self)->k};
}
static int sft_seek(void *self, const data_pos *p, base_err *e) {
    if (p->epoch || p->shard)
        return base_fail(e, BASE_EINVAL, "not a position in fine-tuning rows");
    ((sft_stream *)self)->k = p->window;
    return BASE_OK;
}

/* ---- the task */

typedef struct ftask {
    const ft_opts *o;
    void *user; /* train_exec's, for notes */
    nn_lora *lora;
    tok_vocab *vocab;
    data_sft *train, *val;
    sft_stream tr, va;
    ft_result *res;
} ftask;

typedef struct chat_ctx {
    const ft_opts *o;
    tok_vocab *v;
    nn_family fam;
} chat_ctx;

static int chat_encode(const data_msg *msgs, size_t n, tok_ids *out, void *user, base_err *e) {
    chat_ctx *c = user;
    return c->o->chat(msgs, n, c->v, c->fam, out, c->o->chat_user, e);
}

static int load_data(ftask *F, nn_family fam, base_err *e) {
    const ft_opts *o = F->o;
    chat_ctx cc = {o, F->vocab, fam};
    data_sft_opts so = {.vocab = F->vocab,
                        .seq = o->t.seq,
                        .encode = o->chat ? chat_encode : NULL,
                        .encode_user = &cc,
                        .add_bos = tok_kind(F->vocab) == TOK_KIND_SPM};
    int rc = data_sft_load(o->t.data, &so, &F->train, e);
    if (!rc && o->val) rc = data_sft_load(o->val, &so, &F->val, e);
    if (!rc && !o->val) rc = data_sft_split(F->train, o->val_frac, o->t.seed, &F->val, e);
    if (rc) return rc;
    size_t tr = F->train->n_truncated + (F->val && o->val ? F->val->n_truncated : 0);
    if (tr)
        train_note(
            &o->t, F->user,
            "warning: %zu example%s longer than --seq %d tokens were truncated to their first %d "
            "tokens",
            tr, tr == 1 ? "" : "s", o->t.seq, o->t.seq + 1);
    if (F->train->n_untrainable)
        train_note(
            &o->t, F->user,
            "warning: %zu example%s without a token to learn (no assistant turn of weight 1) "
            "left out",
            F->train->n_untrainable, F->train->n_untrainable == 1 ? "" : "s");
    if (F->val->n == 0)
        train_note(&o->t, F->user,
                   "no held-out rows (--val-frac %g of %zu rows): evals are skipped",
                   (double)o->val_frac, F->train->n);
    return BASE_OK;
}

/* finetune.json: every setting the result depends on, the schedule's total steps and warmup
 * as given, the rest as ck holds them (NULL when out of memory). */
static json_t *make_settings(const ftask *F, const ckpt_trainer *ck, int steps, int warmup) {
    const ft_opts *o = F->o;
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
    json_object_set_new(j, "steps", json_integer(steps));
    json_object_set_new(j, "batch", json_integer(t->batch));
    json_object_set_new(j, "seq", json_integer(t->seq));
    /* the global accumulation: a run resumes on any number of ranks with the same product */
    json_object_set_new(j, "accum", json_integer(ck->accum));
    json_object_set_new(j, "lr", json_real(t->lr));
    json_object_set_new(j, "min_lr", json_real(ck->min_lr));
    json_object_set_new(j, "warmup", json_integer(warmup));
    json_object_set_new(j, "weight_decay", json_real(t->weight_decay));
    json_object_set_new(j, "clip", json_real(t->clip));
    json_object_set_new(j, "seed", json_integer((json_int_t)t->seed));
    json_object_set_new(j, "threads", json_integer(t->threads));
    return j;
}

/* The base, what is trained, the rows as streams, the settings. */
static int ft_build(train_task *t, const train_opts *to, void *user, base_err *e) {
    ftask *F = t->user;
    const ft_opts *o = F->o;
    F->user = user;
    int rc = ft_load_base(o->base, to->batch, to->seq, o->full ? FT_BASE_TRAIN : FT_BASE_STORED,
                          &t->m, &F->vocab, e);
    if (!rc && t->m->wsrc.held)
        train_note(
            &o->t, F->user,
            "QLoRA: the base's matrices stay in the file's types, dequantized per product (%zu "
            "of its %zu parameters in F32)",
            t->m->n_params, nn_config_params(&t->m->cfg));
    if (!rc) rc = load_data(F, t->m->cfg.family, e);
    if (!rc && !o->full &&
        !(rc = nn_lora_create(&F->lora, t->m, o->lora_rank, o->lora_alpha, o->lora_dropout,
                              o->lora_targets, to->seed, e)))
        nn_lora_attach(t->m, F->lora);
    if (!rc && !(F->tr.perm = malloc(F->train->n * sizeof(uint32_t))))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (rc) return rc;
    ft_result *r = F->res;
    r->n_train = F->train->n, r->n_val = F->val->n;
    r->n_truncated = F->train->n_truncated, r->n_untrainable = F->train->n_untrainable;
    nn_trained trained;
    nn_trained_of(t->m, &trained); /* the adapters, or every weight */
    r->n_trainable_params = trained.n;
    F->tr = (sft_stream){F->train, to->batch, to->seq, to->seed, 0, F->tr.perm, -1};
    F->va = (sft_stream){F->val, to->batch, to->seq, 0, 0, NULL, -1};
    t->train = (train_batches){&F->tr, sft_next, sft_tell, sft_seek};
    t->val = (train_batches){&F->va, sft_next, sft_tell, sft_seek};
    size_t vb = (F->val->n + (size_t)to->batch - 1) / (size_t)to->batch;
    t->val_batches = vb < (size_t)to->eval_batches ? (int)vb : to->eval_batches;
    t->eval_first = 1;
    /* the rows' identity: a checkpoint of other rows is refused */
    uint32_t crc = ckpt_crc32c(0, F->train->tok, F->train->n * (size_t)to->seq * sizeof(int32_t));
    crc = ckpt_crc32c(crc, F->train->tgt, F->train->n * (size_t)to->seq * sizeof(int32_t));
    snprintf(t->identity, sizeof t->identity, "sft rows %08x", crc);
    t->windows = F->train->n;
    t->vocab = F->vocab;
    t->prompt = tok_bos_id(F->vocab) >= 0 ? tok_bos_id(F->vocab) : 0;
    return BASE_OK;
}

/* finetune.json compared with this run's settings (ckpt_compare_settings, as train's
 * config.json: a differing one refused by name). More steps than it records extend the run
 * (train_extend, as `hearth train --steps` does). */
static int ft_dir_open(train_task *t, const ckpt_trainer *ck, base_err *e) {
    ftask *F = t->user;
    const train_opts *o = &F->o->t;
    char path[TRAIN_PATH_MAX];
    snprintf(path, sizeof path, "%s/finetune.json", o->out_dir);
    if (access(path, F_OK) != 0) return BASE_OK; /* a new run: written by ft_dir_write */
    json_error_t je;
    json_t *saved = json_load_file(path, 0, &je);
    if (!saved) return base_fail(e, BASE_EFORMAT, "%s: unreadable (%s)", path, je.text);
    int steps = o->steps, warmup = o->warmup >= 0 ? o->warmup : o->steps / 20;
    train_extend(o, saved, &steps, &warmup);
    json_t *now = make_settings(F, ck, steps, warmup);
    char where[TRAIN_PATH_MAX + 64];
    snprintf(where, sizeof where, "the fine-tuning run in %s (finetune.json)", o->out_dir);
    int rc = now ? ckpt_compare_settings(where, "setting", saved, now, e)
                 : base_fail(e, BASE_ENOMEM, "out of memory");
    if (rc == BASE_EINVAL && e) { /* what to do about it */
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        base_fail(e, rc, "%s (use another --out, or the same settings to resume)", why);
    }
    json_decref(saved);
    json_decref(now);
    return rc;
}

/* finetune.json with the schedule the run follows (an extended run's new total), atomically. */
static int ft_dir_write(train_task *t, const ckpt_trainer *ck, base_err *e) {
    ftask *F = t->user;
    char path[TRAIN_PATH_MAX];
    snprintf(path, sizeof path, "%s/finetune.json", F->o->t.out_dir);
    json_t *j = make_settings(F, ck, ck->steps, ck->warmup);
    char *text = j ? json_dumps(j, TRAIN_JSON_FLAGS) : NULL;
    int rc = text ? base_write_atomic(path, text, strlen(text), e)
                  : base_fail(e, BASE_ENOMEM, "out of memory");
    free(text);
    json_decref(j);
    return rc;
}

/* adapter.gguf and adapter/ (PEFT, Llama family), or model.gguf (--full). */
static int ft_finish(train_task *t, base_err *e) {
    ftask *F = t->user;
    const char *dir = F->o->t.out_dir;
    char path[TRAIN_PATH_MAX];
    int rc;
    if (F->lora) {
        snprintf(path, sizeof path, "%s/adapter.gguf", dir);
        if ((rc = ckpt_lora_write_gguf(path, t->m, F->lora, e))) return rc;
        if (t->m->cfg.family == NN_LLAMA) {
            snprintf(path, sizeof path, "%s/adapter", dir);
            if ((rc = ckpt_lora_write_peft(path, t->m, F->lora, F->o->base, e))) return rc;
            F->res->peft = 1;
        }
        return BASE_OK;
    }
    gguf_writer *w;
    float *scratch = NULL;
    if ((rc = gguf_writer_create(&w, e))) return rc;
    rc = ckpt_gguf_add_model(w, t->m, "hearth finetune", NULL, &scratch, e);
    if (!rc) rc = tok_gguf_set(F->vocab, w, e);
    if (!rc && F->o->chat_template) gguf_set_str(w, "tokenizer.chat_template", F->o->chat_template);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    if (!rc) rc = gguf_writer_save(w, path, e);
    gguf_writer_free(w);
    free(scratch);
    return rc;
}

static void ft_free(train_task *t) {
    ftask *F = t->user;
    nn_lora_free(F->lora);
    tok_free(F->vocab);
    data_sft_free(F->train);
    data_sft_free(F->val);
    free(F->tr.perm);
}

int ft_run(const ft_opts *o, train_report_fn report, void *user, ft_result *res, base_err *e) {
    ft_result out = {0};
    out.run.first_val = out.run.last_val = NAN;
    if (res) *res = out;
    const train_opts *t = &o->t;
    if (!o->base) return base_fail(e, BASE_EINVAL, "no base model given (--base MODEL)");
    if (t->seq < 2)
        return base_fail(e, BASE_EINVAL, "the sequence length must be at least 2, got %d", t->seq);
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return base_fail(e, BASE_EINVAL, "val_frac must be in [0, 1), got %g", (double)o->val_frac);
    ftask F = {.o = o, .res = &out};
    train_task task = {.user = &F,
                       .build = ft_build,
                       .dir_open = ft_dir_open,
                       .dir_write = ft_dir_write,
                       .finish = ft_finish,
                       .free = ft_free};
    int rc = train_exec(t, &task, report, user, res ? &out.run : NULL, e);
    if (rc) out.peft = 0;
    if (res) *res = out;
    return rc;
}
