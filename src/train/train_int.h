/* train/train_int.h: private to src/train — the loop's parameters (train_task: what pretraining
 * and fine-tuning do differently), the run directory (its lock, config.json, the copy of the
 * tokenizer) and the metrics log, which train.c's run uses. */
#ifndef HEARTH_TRAIN_INT_H
#define HEARTH_TRAIN_INT_H

#include "train.h"

#include "ckpt/ckpt.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>

/* How the training side writes JSON: compact, keys in insertion order, reals with 9 significant
 * digits. Every real it writes holds a float32 value, which 9 digits read back exactly. */
#define TRAIN_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
#define TRAIN_PATH_MAX 4096

/* ---- the loop's parameters (train.c). One loop runs `hearth train` (train_run: a model from
 * its seed, token shards or bytes) and `hearth finetune` (finetune.c: a base model, LoRA
 * adapters or every weight, SFT rows with loss masks); a train_task says what differs. */

/* A stream of (B,T) batches: tok gets B*T input tokens, tgt B*T targets (-1: not trained). */
typedef struct train_batches {
    void *self;
    int (*next)(void *self, int *tok, int *tgt, base_err *e); /* tok NULL: skip one batch */
    void (*tell)(void *self, data_pos *p);                    /* where the next batch starts */
    int (*seek)(void *self, const data_pos *p, base_err *e);
} train_batches;

typedef struct train_task train_task;
struct train_task {
    void *user;      /* the task's own state */
    int want_sample; /* set before build: this rank returns the closing sample */
    /* set by build */
    nn_model *m; /* the model for (batch, seq); with adapters attached (m->lora) only they are
                    trained: AdamW, the reducer and checkpoints see them (nn_trained_of).
                    train_exec frees it, before free */
    train_batches train, val;             /* val: read from its start (window 0) at each eval */
    int val_batches;                      /* batches an eval reads (0: no evals) */
    int eval_first;                       /* also evaluate before the first step of a fresh run */
    char identity[DATA_IDENTITY_MAX + 1]; /* the data, as checkpoints record and compare it */
    uint64_t windows;
    const tok_vocab *vocab; /* decodes the closing sample; NULL: bytes */
    int prompt;             /* the sample's first token */
    /* Makes the model and opens the data; user is train_exec's (for o->note). Every rank. */
    int (*build)(train_task *t, const train_opts *o, void *user, base_err *e);
    /* Rank 0, the run directory made and locked, before its checkpoints are looked at (ck: this
     * run's settings, defaults resolved; with o->resume, that checkpoint loaded). NULL-able. */
    int (*dir_open)(train_task *t, const ckpt_trainer *ck, base_err *e);
    /* Rank 0, when the run does not resume the directory's own checkpoint: *found when the
     * directory holds this run's settings (a refusal names the first difference). NULL-able. */
    int (*dir_check)(train_task *t, const ckpt_trainer *ck, int *found, base_err *e);
    /* Rank 0, before the first step (not for a complete run). NULL-able. */
    int (*dir_write)(train_task *t, const ckpt_trainer *ck, base_err *e);
    /* Rank 0, after the final checkpoint of a run that reached its last step. NULL-able. */
    int (*finish)(train_task *t, base_err *e);
    void (*free)(train_task *t); /* what build made but m; NULL-able */
};

/* Runs the task: o's schedule, clipping, accumulation, evals, checkpoints (background, resume,
 * pruning), metrics.jsonl and loss.svg, data parallel over o->dist — train_run's contract
 * (train.h), with the model, data and run-directory files of t. */
int train_exec(const train_opts *o, train_task *t, train_report_fn report, void *user,
               train_result *res, base_err *e);

/* A note for the caller (o->note, called with user: train_exec's): fmt's text, up to
 * TRAIN_PATH_MAX + 1023 bytes. Nothing when o->note is NULL. */
void train_note(const train_opts *o, void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The rule for a run given more steps (o->steps) than its saved schedule, saved's "steps" and
 * "warmup" (a checkpoint's trainer.json "run", finetune.json): it extends the run. Then *steps
 * (this run's total) becomes the saved total and *warmup (this run's, its default resolved) the
 * saved warmup unless o->warmup was given or none is saved: the settings the saved ones were
 * made with, to compare. Returns 1 for an extension, else 0 (nothing changed). */
int train_extend(const train_opts *o, const json_t *saved, int *steps, int *warmup);

/* ---- the run directory (run_dir.c) */

/* Takes dir's lock: dir/lock, created if missing, locked with flock (exclusive, not waiting),
 * this process's pid written in it. *fd holds it until train_unlock. A lock another process
 * holds is BASE_EINVAL naming that pid. The lock dies with its process (kill -9 included), so
 * the file a dead trainer leaves never blocks the next one. */
int train_lock(const char *dir, int *fd, base_err *e);
void train_unlock(int fd); /* -1: nothing */

/* config.json: line 1 the model config (nn_config_json), line 2 the run settings
 * (ckpt_run_json's, then threads and data_path), written atomically. */
int train_config_write(const char *dir, const nn_config *cfg, const ckpt_trainer *ck,
                       const train_opts *o, base_err *e);
/* Compares dir/config.json, when there is one (*found), with this run's config and settings
 * (ckpt_compare_settings: the first difference is BASE_EINVAL naming it). */
int train_config_check(const char *dir, const nn_config *cfg, const ckpt_trainer *ck, int *found,
                       base_err *e);
/* Copies the shards' vocabulary (data/vocab.htok, checked to carry identity) to
 * dir/tokenizer.htok, atomically. */
int train_copy_tokenizer(const char *data, const char *identity, const char *dir, base_err *e);

/* ---- metrics.jsonl and loss.svg (metrics.c) */

typedef struct train_log {
    FILE *f;                 /* metrics.jsonl, appended */
    double *x, *y, *vx, *vy; /* the plot's points: (step, loss) and (step, val_loss) */
    size_t n, nv, cap;
    int failed; /* a line could not be made (out of memory) */
    char path[TRAIN_PATH_MAX], svg[TRAIN_PATH_MAX];
} train_log;

/* Opens dir/metrics.jsonl for a run starting at step start: the lines of steps <= start are kept
 * (a crashed run may have logged past its last checkpoint; start 0 keeps none), rewritten
 * atomically, and their points go back on the plot; room for steps + 2 points per curve. */
int train_log_open(train_log *g, const char *dir, long start, int steps, base_err *e);
void train_log_step(train_log *g, const train_progress *p);
void train_log_eval(train_log *g, const train_progress *p);
/* A checkpoint written (or failed): r from ckpt_writer, or made by the caller for a write of
 * its own (final: the run's final checkpoint, written synchronously). */
void train_log_ckpt(train_log *g, const ckpt_write_result *r, int final);
int train_log_plot(train_log *g, base_err *e); /* loss.svg, atomically */
/* Closes the log and frees g; a write that failed on the way is BASE_EIO. */
int train_log_close(train_log *g, base_err *e);

#endif
