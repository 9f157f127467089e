/* train: the training loop. Builds the model, opens the data (src/data's loader), runs AdamW with
 * warmup + cosine decay, clipping and gradient accumulation, evaluates on held-out data, and writes
 * the run directory: metrics.jsonl (one JSON object per step or eval), loss.svg (the loss
 * curves), config.json, checkpoints (src/ckpt) and always a final one, under a lock (RUN/lock)
 * that keeps a second trainer out. Progress goes to a caller-supplied callback; nothing is
 * printed. Files: train.c (the run and its loop), run_dir.c (lock, config.json, tokenizer),
 * metrics.c (metrics.jsonl, loss.svg); train_int.h is private to them. */
#ifndef HEARTH_TRAIN_H
#define HEARTH_TRAIN_H

#include "base/base.h"
#include "dist/dist.h"
#include "nn/nn.h"

#include <signal.h>

typedef struct train_opts {
    const char *data;    /* a `hearth prepare` directory (its train and val shards), or any
                            other file read as bytes (vocabulary 256, the last 10% for val) */
    const char *out_dir; /* run directory, created if missing */
    nn_config cfg;       /* vocab_size 0: the data's; otherwise at least the data's */
    int batch, seq, steps, accum;
    int eval_every, eval_batches; /* eval_every 0: only at the end */
    int warmup;                   /* LR warmup steps */
    float lr, min_lr, weight_decay, clip;
    uint64_t seed;
    int threads;
    int sample_tokens;  /* length of the sample generated at the end (0: none) */
    const char *resume; /* a checkpoint directory, or a run directory whose newest good
                           checkpoint to resume from; NULL: out_dir's newest good one, if any */
    /* Checkpoints (src/ckpt) are written in the background (ckpt_writer): the state is copied
     * and a thread writes it while training goes on. One due while the previous one is still
     * being written waits for it (none is skipped). A failed write is reported through note
     * and metrics.jsonl, and training goes on; the earlier checkpoints stay valid. Whatever
     * these say, a run ends with a checkpoint of its final state, written synchronously; when
     * that one fails, train_run fails. */
    int ckpt_every;        /* a checkpoint every N steps; 0: never */
    double ckpt_every_min; /* also one when this many minutes (wall clock) have passed since
                              the last one was started; 0: never */
    /* after each written checkpoint, delete step_ directories older than the newest
     * keep_last good ones (ckpt_prune; 0: keep all), except multiples of keep_every */
    int keep_last, keep_every;
    /* optional: when *stop becomes non-zero (the caller's signal handler sets it), the current
     * step finishes, the write in flight is waited for, the final checkpoint is written,
     * and train_run returns BASE_OK (res->stopped) without the sample. */
    volatile sig_atomic_t *stop;
    /* optional: notes the caller should show (a checkpoint skipped as damaged, resuming
     * from step N, data that does not look like text: "warning: ..."); called with
     * train_run's user pointer. */
    void (*note)(const char *msg, void *user);
    /* Data parallel (src/dist): the world the run trains over (NULL: one process). Each of
     * its N ranks runs `accum` micro-batches of `batch` sequences a step, micro-batch k of the
     * step's N x accum going to rank k % N (the loader's one order, each rank skipping the
     * others'), and every rank applies the same update: the run equals one process with
     * accum N x accum, bit for bit (the checkpoint's accum is that product). Rank 0 owns the
     * run directory (lock, config.json, metrics.jsonl, checkpoints, the sample); a rank that
     * fails makes train_run return with res->fatal: the caller must end the job
     * (dist_abort), the others may be waiting in a collective. */
    dist *dist;
    int zero;         /* 1: ZeRO-1, AdamW state sharded across the ranks */
    int overlap;      /* start bucket reductions during the backward (default 1) */
    double bucket_mb; /* least bucket size (default 4) */
    dist_delay delay; /* simulated delay of the reductions (test option; zero: none) */
} train_opts;

/* Fills o with defaults (everything but data, out_dir and cfg). */
void train_opts_default(train_opts *o);

typedef struct train_progress {
    int step, steps; /* step is 1-based */
    int is_eval;     /* an eval report: val_loss is set, the rest of the step's fields too */
    float loss, val_loss, lr, grad_norm;
    double ms;          /* this step's wall time */
    double tok_per_s;   /* tokens per second of this step */
    double peak_frac;   /* achieved FLOP/s as a fraction of measured sgemm peak */
    double eta_s;       /* estimated seconds left */
    double peak_gflops; /* the sgemm peak measured at start */
    size_t n_params;
    /* data parallel (ranks > 1): this step's communication on rank 0 (dist_step_stats) and
     * p50 / p99 / max over the last (at most 1000) steps */
    int ranks;
    double comm_ms, stall_ms;
    uint64_t comm_bytes;
    double comm_p[3], stall_p[3];
} train_progress;

typedef void (*train_report_fn)(const train_progress *p, void *user);

/* What a train_run did. */
typedef struct train_result {
    char *sample; /* the closing sample, malloc'd NUL-terminated text (caller frees); NULL: none */
    long step;    /* optimizer steps done: the step of the run's final checkpoint */
    int stopped;  /* stopped on request (o->stop) before the last step */
    int complete; /* out_dir already held this run's final checkpoint (same settings): nothing
                     was trained or written */
    int fatal;    /* data parallel: this rank failed alone (the caller ends the job) */
    /* the held-out loss before the first step (fine-tuning evaluates there; NaN: not
     * evaluated, or a resumed run) and at the last eval of this call (NaN: none) */
    float first_val, last_val;
    /* data parallel: rank 0's communication over the run's steps (p50, p99, max), mean bytes
     * sent a step, and memory per rank (bytes): parameters + gradients, AdamW state (this
     * rank's shard under ZeRO-1), the reducer's buffers */
    int ranks, buckets;
    double comm_p[3], stall_p[3], bytes_per_step;
    size_t mem_model, mem_optim, mem_comm;
    size_t mem_gather; /* ZeRO-1, rank 0: the whole AdamW state, gathered for checkpoints */
} train_result;

/* Runs training. Validates everything (config, data, sizes) before creating out_dir, then
 * takes out_dir's lock: a run directory another process is training in is refused
 * (BASE_EINVAL naming its pid). Batches come from the data loader (src/data): every epoch
 * visits each window of seq + 1 tokens once, in an order drawn from the seed; evals read the
 * val split's first eval_batches batches in an order fixed for every run. The run ends with
 * a checkpoint of its final state (RUN/step_NNNNNNNN, NNNNNNNN = steps, or the step it stopped
 * at), which `hearth generate`, `export` and `serve` read.
 * res (NULL-able) gets what was done; res->sample a generated text (decoded with the shards'
 * vocab.htok, or bytes) when o->sample_tokens > 0.
 * Resume: a run resumed from a checkpoint (o->resume, or out_dir holding one that verifies)
 * continues at its step with its weights, AdamW state and data position, so its losses and
 * final weights are bit-identical to an uninterrupted run's; metrics.jsonl keeps the lines
 * up to that step and continues. A larger o->steps than the checkpoint's extends the run (its
 * warmup kept unless given, the cosine schedule recomputed for the new total, a note says so).
 * Other settings that differ from the checkpoint's are refused, by name; so are settings that
 * differ from out_dir's config.json when it has no checkpoint. A run directory whose newest good
 * checkpoint is at the last step is complete: res->complete, BASE_OK, nothing written. Resuming
 * another directory's checkpoint at its last step has nothing to train and is refused. Fails with
 * BASE_ENUM if the loss or gradient becomes non-finite. */
int train_run(const train_opts *o, train_report_fn report, void *user, train_result *res,
              base_err *e);

/* Generates n tokens after the prompt (np tokens) by temperature sampling from the model's
 * last-position logits over a sliding window of at most m->T tokens. out gets the n tokens. */
int train_generate(nn_model *m, const int *prompt, int np, int n, float temperature, base_rng *r,
                   int *out, base_err *e);

#endif
