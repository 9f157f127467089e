/* train/train_int.h: private to src/train — the run directory (its lock, config.json, the copy
 * of the tokenizer) and the metrics log, which train.c's run uses. */
#ifndef HEARTH_TRAIN_INT_H
#define HEARTH_TRAIN_INT_H

#include "train.h"

#include "ckpt/ckpt.h"

#include <jansson.h>

/* How the training side writes JSON: compact, keys in insertion order, reals with 9 significant
 * digits. Every real it writes holds a float32 value, which 9 digits read back exactly. */
#define TRAIN_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
#define TRAIN_PATH_MAX 4096

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
