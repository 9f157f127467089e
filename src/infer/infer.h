/* infer/infer.h: the inference engine — a loaded model with its tokenizer, KV-cache generation,
 * sampling, and the continuous-batching scheduler the server drives. */
#ifndef HEARTH_INFER_H
#define HEARTH_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct infer_model infer_model;

/* Loads a run directory (its newest checkpoint whose manifest verifies) or an exported
 * .safetensors model. tokenizer: an .htok path, or NULL to use the one stored with the model.
 * Config mismatches, missing tensors and bad shapes are BASE_EFORMAT naming what is wrong. */
int infer_model_load(infer_model **out, const char *path, const char *tokenizer, base_err *e);
void infer_model_free(infer_model *m); /* NULL is fine */
const nn_config *infer_model_config(const infer_model *m);
tok_vocab *infer_model_vocab(const infer_model *m);
const char *infer_model_name(const infer_model *m); /* e.g. the run directory's base name */
nn_family infer_model_family(const infer_model *m); /* NN_GPT2 or NN_LLAMA: picks the chat template */

/* ---- sampling ------------------------------------------------------------------------------- */

#define INFER_MAX_STOP 4

typedef struct {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off (llama.cpp's: divides positive logits, multiplies negative) */
    int repeat_last_n;    /* window of the penalty; default 64 */
    uint64_t seed;        /* same seed, same prompt, same settings -> same text */
    int max_tokens;       /* generated tokens at most; 0: until the context is full */
    int n_stop;
    const char *stop[INFER_MAX_STOP]; /* stop sequences; the matched text is not emitted */
} infer_sampling;

void infer_sampling_default(infer_sampling *s);

/* ---- scheduler (continuous batching) -------------------------------------------------------- */

typedef struct {
    int n_slots;       /* concurrent sequences in the running batch */
    int ctx;           /* context per slot (tokens); <= the model's max_seq; 0: max_seq */
    int max_queue;     /* waiting requests beyond the slots; a full queue refuses */
    int prefill_chunk; /* prompt tokens prefilled per step per sequence */
    int threads;       /* compute threads */
} infer_sched_opts;

typedef enum { INFER_EV_TEXT, INFER_EV_DONE } infer_ev_kind;

typedef enum {
    INFER_FINISH_STOP,      /* end-of-text token or a stop sequence */
    INFER_FINISH_LENGTH,    /* max_tokens or the context is full */
    INFER_FINISH_CANCELLED, /* the client went away or cancelled */
    INFER_FINISH_ERROR
} infer_finish;

typedef struct {
    infer_ev_kind kind;
    const char *text; /* TEXT: new UTF-8 text (complete characters, stop sequences held back) */
    size_t len;
    /* DONE: */
    infer_finish finish;
    int prompt_tokens, completion_tokens;
    double queue_s, ttft_s, total_s; /* seconds: waiting for a slot, to the first token, overall */
} infer_event;

/* Called on the scheduler's thread; must not block for long. Returning nonzero cancels the
 * request (its slot is freed before the next step). A DONE event is always the last one. */
typedef int (*infer_event_fn)(void *ud, const infer_event *ev);

typedef struct infer_sched infer_sched;

int infer_sched_create(infer_sched **out, infer_model *m, const infer_sched_opts *o, base_err *e);
void infer_sched_free(infer_sched *s); /* finishes every request as cancelled, joins the thread */

/* Queues a request of n prompt tokens. BASE_EINVAL if the prompt does not fit the context
 * (message states both counts); INFER_EFULL if the queue is full. *id names it for cancel. */
#define INFER_EFULL (-100)
int infer_sched_submit(infer_sched *s, const int32_t *prompt, size_t n, const infer_sampling *sp,
                       infer_event_fn fn, void *ud, uint64_t *id, base_err *e);
void infer_sched_cancel(infer_sched *s, uint64_t id); /* unknown or finished ids are ignored */

typedef struct {
    int busy_slots, queued;
} infer_sched_stats;
void infer_sched_get_stats(infer_sched *s, infer_sched_stats *st);

#endif
