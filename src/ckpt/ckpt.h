/* ckpt: training checkpoints (docs/FORMATS.md). A checkpoint is a directory RUN/step_NNNNNNNN
 * holding model.safetensors (Hugging Face names), optimizer.safetensors (AdamW m, v and t),
 * trainer.json (step, run settings, data position, model config, data identity) and
 * manifest.json (written last: each file's size and CRC-32C). It is built in
 * RUN/.tmp-step_NNNNNNNN, every file fsync'd, renamed into place, RUN fsync'd, then RUN/latest
 * (the directory's name) replaced atomically: after a crash at any instant a checkpoint
 * directory is either complete or absent, and a damaged one fails its manifest.
 * Nothing here prints; messages go into base_err or the caller's warn callback. */
#ifndef HEARTH_CKPT_H
#define HEARTH_CKPT_H

#include "base/base.h"
#include "data/data.h"
#include "nn/nn.h"
#include "optim/optim.h"

#define CKPT_VERSION 1

/* The trainer's state and the settings a resumed run must share with the saved one. The
 * loop keeps no random state of its own across steps: the loader's shuffles are functions of
 * (seed, epoch, shard), so seed + pos are its whole state. */
typedef struct ckpt_trainer {
    long step; /* optimizer steps done */
    int steps, warmup, accum, batch, seq;
    float lr, min_lr, weight_decay, clip; /* as the schedule uses them (defaults resolved) */
    uint64_t seed;
    data_pos pos;                              /* the training loader's next window */
    char data_identity[DATA_IDENTITY_MAX + 1]; /* data_loader_identity */
    uint64_t data_windows;                     /* data_loader_windows: a guard against
                                                  other data of the same vocabulary */
} ckpt_trainer;

/* What a checkpoint holds of a model is what training updates (nn_trained_of, nn.h): every
 * parameter, or, when adapters are attached (m->lora, nn/lora.h: fine-tuning with the base
 * frozen), the adapters only — model.safetensors then holds
 * their tensors under their own names ("blk.L.attn_q.lora_a", metadata format "hearth-lora") and
 * optimizer.safetensors their moments. The config in trainer.json is the model's either way. */

/* Writes RUN/step_NNNNNNNN (N = t->step) as above. A leftover temporary from a crashed save
 * is removed first; an existing directory of the same step is replaced. */
int ckpt_save(const char *run_dir, const nn_model *m, const optim_adamw *o, const ckpt_trainer *t,
              base_err *e);

/* Checks the checkpoint directory dir: its manifest's format and version, and each file's
 * size and CRC-32C. */
int ckpt_verify(const char *dir, base_err *e);

typedef void (*ckpt_warn_fn)(const char *msg, void *user);
/* The newest checkpoint of run_dir that verifies: the one `latest` names, then every
 * step_NNNNNNNN newest first. Each one rejected is reported through warn (NULL: silent).
 * *dir gets a malloc'd path (caller frees), or NULL when there is none (not an error). */
int ckpt_find_latest_good(const char *run_dir, char **dir, ckpt_warn_fn warn, void *user,
                          base_err *e);

/* The checkpoint directory src names — src itself when it holds a manifest (then verified),
 * else the newest good checkpoint of the run directory src — and the run it belongs to (a
 * checkpoint directory's parent). *dir and *run are malloc'd (caller frees). No checkpoint
 * that verifies is BASE_EINVAL ("no checkpoint in SRC that verifies"). */
int ckpt_resolve(const char *src, char **dir, char **run, base_err *e);

/* The file in a run directory that holds the run's tokenizer (HTOK; `hearth train` copies the
 * shards' vocabulary there), and the name of a model file's tokenizer beside it: model_path
 * minus ".safetensors", plus ".htok" (`hearth export` writes it, the loader reads it). The
 * latter returns 0, or -1 when it does not fit cap bytes. */
#define CKPT_RUN_TOKENIZER "tokenizer.htok"
int ckpt_tokenizer_beside(const char *model_path, char *out, size_t cap);

/* Loads the checkpoint dir (verifying it first) into m and o, which were created for the
 * same config. t holds this run's settings: any difference from the saved ones (config
 * field, batch, seed, data, ...) is refused with a message naming the field and both
 * values; so is another format version. On success t->step and t->pos are the saved ones. */
int ckpt_load(const char *dir, nn_model *m, optim_adamw *o, ckpt_trainer *t, base_err *e);

/* The settings a resumed run must share (trainer.json's "run": batch, seq, accum, steps, warmup,
 * lr, min_lr, weight_decay, clip, seed, data_windows, data) as a new JSON object (caller
 * json_decref's it; NULL when out of memory). The floats are reals holding float32 values. */
struct json_t;
struct json_t *ckpt_run_json(const ckpt_trainer *t);

/* Compares saved settings (an object read from a file) with this run's (now), key by key over
 * now's keys: numbers by value, a real at float32 precision (every real setting is a float32).
 * The first difference, or a key saved lacks, is BASE_EINVAL "WHERE was made with a different
 * WHAT: KEY is A there, B in this run". ckpt_load uses it; so does `hearth train` for a run
 * directory's config.json. */
int ckpt_compare_settings(const char *where, const char *what, struct json_t *saved,
                          struct json_t *now, base_err *e);

/* Deletes step_NNNNNNNN directories of run_dir older than its newest keep_last good (verifying)
 * ones, except steps that are multiples of keep_every (kept forever; 0: none) and the one
 * `latest` names. keep_last 0: deletes nothing. Temporaries and damaged newer ones are left.
 * *removed (NULL-able) gets how many were deleted. */
int ckpt_prune(const char *run_dir, int keep_last, int keep_every, int *removed, base_err *e);

/* An asynchronous checkpoint writer: one background pthread snapshots the state (a memcpy of
 * the parameters, AdamW m and v into buffers the writer owns, allocated and pre-faulted once at
 * create) and then writes it with ckpt_save and ckpt_prune. The copy overlaps the caller's next
 * forward/backward: after a submit, the caller must call ckpt_writer_snapshot_wait before it
 * changes the parameters or the optimizer state (the optimizer step). At most one write is in
 * flight: ckpt_writer_submit first waits for the previous one, so a checkpoint is never skipped
 * and the newest state is always the one written. */
typedef struct ckpt_writer ckpt_writer;

/* The outcome of one background write. */
typedef struct ckpt_write_result {
    long step;          /* the checkpoint's step; -1: no write was pending */
    int rc;             /* BASE_OK, or why ckpt_save failed (err says more) */
    double snapshot_ms; /* the memcpy, on the writer thread */
    double wait_ms;     /* the caller's time in ckpt_writer_snapshot_wait for it */
    double write_ms;    /* ckpt_save + ckpt_prune on the writer thread */
    uint64_t bytes;     /* the checkpoint's files, manifest aside */
    int pruned;         /* directories ckpt_prune deleted */
    base_err err;
} ckpt_write_result;

/* A writer for models shaped like m (m->n_params parameters) into run_dir (copied). */
int ckpt_writer_create(ckpt_writer **w, const char *run_dir, const nn_model *m, int keep_last,
                       int keep_every, base_err *e);
/* Waits for the write in flight (its result into *prev, NULL-able: then it is dropped), copies
 * t and starts snapshotting and writing (m, o). Fails only if the thread cannot start. */
int ckpt_writer_submit(ckpt_writer *w, const nn_model *m, const optim_adamw *o,
                       const ckpt_trainer *t, ckpt_write_result *prev, base_err *e);
/* Waits until the snapshot of the write in flight is taken (at once if there is none); from
 * then on the parameters and optimizer state may change. Returns the milliseconds waited. */
double ckpt_writer_snapshot_wait(ckpt_writer *w);
/* 1 if a write was started and has finished (ckpt_writer_wait will not block), else 0. */
int ckpt_writer_done(ckpt_writer *w);
/* Waits for the write in flight and gives its result (r->step -1 if there was none). */
void ckpt_writer_wait(ckpt_writer *w, ckpt_write_result *r);
/* Waits for the write in flight (its result is dropped) and frees w. NULL: nothing. */
void ckpt_writer_free(ckpt_writer *w);

#endif
