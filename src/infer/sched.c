/* infer/sched.c: the continuous-batching scheduler. One thread owns the KV cache and runs
 * steps: between two steps requests join (a free slot takes the oldest queued request) and
 * leave (finished or cancelled); each step is ONE forward over every active sequence's rows --
 * one row for a decoding sequence, a chunk of up to prefill_chunk prompt tokens for a
 * prefilling one -- so running streams keep flowing while new prompts are read. Other threads
 * only submit, cancel and read counts, under one mutex; callbacks run on the scheduler thread
 * with the mutex released (a callback may call infer_sched_cancel). */
#include "infer.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct req {
    uint64_t id;
    struct req *next; /* queue link */
    int32_t *toks;    /* (ctx): the prompt, then the generated tokens */
    int n_prompt, n_toks, n_past, n_gen;
    infer_sampling sp;
    const infer_lora *lora;      /* the adapter its rows use, or NULL */
    char *stops[INFER_MAX_STOP]; /* sp.stop points at these copies */
    infer_event_fn fn;
    void *ud;
    int slot;
    int step_rows; /* prompt rows given in the step being built */
    int cancel;    /* set under the mutex by infer_sched_cancel */
    base_rng rng;
    double t_submit, t_admit, t_first;
    infer_text text;
    base_err admit_err; /* why its adapter could not be set on its slot */
} req;

struct infer_sched {
    infer_model *m;
    infer_engine *g;
    infer_sched_opts o;
    int V, vocab_n;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    req *qhead, *qtail;
    int nq, busy, shutdown;
    int n_cancel_queued; /* queued requests marked cancelled since the last step */
    uint64_t next_id;
    req **slot; /* (n_slots); written by the scheduler thread under mu */
    /* the scheduler thread's step buffers */
    int32_t *btok;
    int *bslot, *bpos, *orow;
    req **oreq;
    float *logits; /* (n_slots, V) */
    infer_sampler_scratch ss;
};

static void req_free(req *r) {
    if (!r) return;
    free(r->toks);
    for (int i = 0; i < INFER_MAX_STOP; i++) free(r->stops[i]);
    infer_text_free(&r->text);
    free(r);
}

/* Sends one event; nonzero when the callback asks to cancel. */
static int emit(req *r, const infer_event *ev) {
    return r->fn ? r->fn(r->ud, ev) : 0;
}

static int emit_text(req *r, const char *p, size_t n) {
    if (!n) return 0;
    infer_event ev = {.kind = INFER_EV_TEXT, .text = p, .len = n};
    return emit(r, &ev);
}

/* The last event of a request; then it is freed. Text still held back goes out first, unless
 * the request was cancelled or failed (error: why, for INFER_FINISH_ERROR). */
static void finish_err(req *r, infer_finish why, const char *error) {
    if (why == INFER_FINISH_STOP || why == INFER_FINISH_LENGTH) {
        const char *p;
        size_t n;
        if (!infer_text_flush(&r->text, &p, &n) && emit_text(r, p, n)) why = INFER_FINISH_CANCELLED;
    }
    double now = base_now();
    infer_event ev = {.kind = INFER_EV_DONE,
                      .finish = why,
                      .prompt_tokens = r->n_prompt,
                      .completion_tokens = r->n_gen,
                      .queue_s = (r->t_admit > 0 ? r->t_admit : now) - r->t_submit,
                      .ttft_s = r->t_first > 0 ? r->t_first - r->t_submit : 0,
                      .total_s = now - r->t_submit,
                      .error = why == INFER_FINISH_ERROR ? error : NULL};
    emit(r, &ev);
    req_free(r);
}

static void finish(req *r, infer_finish why) {
    finish_err(r, why, why == INFER_FINISH_ERROR ? "out of memory for the generated text" : NULL);
}

/* Takes r out of its slot (under mu). */
static void release_slot(infer_sched *s, req *r) {
    pthread_mutex_lock(&s->mu);
    s->slot[r->slot] = NULL;
    s->busy--;
    pthread_mutex_unlock(&s->mu);
}

/* A sampled token: appended, its text emitted, the finish conditions checked. Returns 1 when
 * the request finished (and was freed). */
static int take_token(infer_sched *s, req *r, int32_t tok) {
    if (r->t_first == 0) r->t_first = base_now();
    r->toks[r->n_toks++] = tok;
    r->n_gen++;
    infer_finish why = (infer_finish)-1;
    if (tok_is_eog(infer_model_vocab(s->m), tok)) { /* ends the turn; never printed */
        why = INFER_FINISH_STOP;
    } else {
        const char *bytes = NULL, *out;
        size_t nb = 0, n;
        int stopped = 0,
            type = tok < s->vocab_n ? tok_token_type(infer_model_vocab(s->m), tok) : -1;
        /* control tokens (BOS, ...) and ids the tokenizer lacks have no text */
        if (type >= 0 && type != TOK_TYPE_CONTROL && type != TOK_TYPE_UNUSED &&
            tok_token_text(infer_model_vocab(s->m), tok, &bytes, &nb, NULL))
            nb = 0;
        if (infer_text_push(&r->text, bytes ? bytes : "", nb, &out, &n, &stopped))
            why = INFER_FINISH_ERROR;
        else if (emit_text(r, out, n))
            why = INFER_FINISH_CANCELLED;
        else if (stopped)
            why = INFER_FINISH_STOP;
    }
    if ((int)why < 0 &&
        ((r->sp.max_tokens > 0 && r->n_gen >= r->sp.max_tokens) || r->n_toks >= s->o.ctx))
        why = INFER_FINISH_LENGTH;
    if ((int)why < 0) return 0;
    release_slot(s, r);
    finish(r, why);
    return 1;
}

/* Adds the rows of r for this step: its next prompt chunk (at most k rows), or its last sampled
 * token. The row whose logits are wanted (the prompt's last, or the decode row) goes to the
 * output list. */
static int add_rows(infer_sched *s, req *r, int n, int *nout, int k) {
    if (r->n_past < r->n_prompt) {
        if (k > r->n_prompt - r->n_past) k = r->n_prompt - r->n_past;
        for (int j = 0; j < k; j++, n++) {
            s->btok[n] = r->toks[r->n_past + j];
            s->bslot[n] = r->slot;
            s->bpos[n] = r->n_past + j;
        }
        if (k > 0 && r->n_past + k == r->n_prompt) s->orow[*nout] = n - 1, s->oreq[(*nout)++] = r;
        return n;
    }
    s->btok[n] = r->toks[r->n_toks - 1];
    s->bslot[n] = r->slot;
    s->bpos[n] = r->n_toks - 1;
    s->orow[*nout] = n, s->oreq[(*nout)++] = r;
    return n + 1;
}

/* One step over every active sequence: every decoding sequence's row first, then prompt chunks
 * of the prefilling ones, oldest request first, within the step's row budget (max_rows). */
static void step(infer_sched *s) {
    int n = 0, nout = 0, S = s->o.n_slots;
    for (int i = 0; i < S; i++)
        if (s->slot[i] && s->slot[i]->n_past >= s->slot[i]->n_prompt)
            n = add_rows(s, s->slot[i], n, &nout, 1);
    int n_decode = n;
    for (;;) {
        req *oldest = NULL; /* the oldest prefilling request not yet given rows this step */
        for (int i = 0; i < S; i++) {
            req *r = s->slot[i];
            if (r && r->n_past < r->n_prompt && r->step_rows == 0 &&
                (!oldest || r->id < oldest->id))
                oldest = r;
        }
        if (!oldest || n >= s->o.max_rows) break;
        int k = s->o.prefill_chunk < s->o.max_rows - n ? s->o.prefill_chunk : s->o.max_rows - n;
        int n0 = n;
        n = add_rows(s, oldest, n, &nout, k);
        oldest->step_rows = n - n0;
    }
    for (int i = 0; i < S; i++)
        if (s->slot[i]) s->slot[i]->step_rows = 0;
    if (!n) return;
    base_err e;
    if (infer_forward(s->g, s->btok, s->bslot, s->bpos, n, n_decode, s->orow, nout, s->logits,
                      &e)) {
        for (int i = 0; i < S; i++)
            if (s->slot[i]) {
                req *r = s->slot[i];
                release_slot(s, r);
                finish_err(r, INFER_FINISH_ERROR, e.msg);
            }
        return;
    }
    for (int i = 0; i < n; i++) { /* what entered the cache */
        req *r = s->slot[s->bslot[i]];
        if (r->n_past <= s->bpos[i]) r->n_past = s->bpos[i] + 1;
    }
    for (int j = 0; j < nout; j++) {
        req *r = s->oreq[j];
        int32_t tok = infer_sample(s->logits + (size_t)j * s->V, s->V, &r->sp, r->toks, r->n_toks,
                                   &r->rng, &s->ss);
        take_token(s, r, tok);
    }
}

static void *sched_main(void *arg) {
    infer_sched *s = arg;
    tensor_set_threads(s->o.threads);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->shutdown && s->busy == 0 && s->nq == 0) pthread_cond_wait(&s->cv, &s->mu);
        req *cancelled = NULL, *failed = NULL; /* lists through ->next */
        if (s->shutdown) {
            for (int i = 0; i < s->o.n_slots; i++)
                if (s->slot[i]) {
                    s->slot[i]->next = cancelled, cancelled = s->slot[i];
                    s->slot[i] = NULL;
                }
            s->busy = 0;
            for (req *r = s->qhead, *nx; r; r = nx)
                nx = r->next, r->next = cancelled, cancelled = r;
            s->qhead = s->qtail = NULL, s->nq = 0;
            pthread_mutex_unlock(&s->mu);
            for (req *r = cancelled, *nx; r; r = nx)
                nx = r->next, finish(r, INFER_FINISH_CANCELLED);
            break;
        }
        /* cancellations free their slots before this step */
        for (int i = 0; i < s->o.n_slots; i++)
            if (s->slot[i] && s->slot[i]->cancel) {
                s->slot[i]->next = cancelled, cancelled = s->slot[i];
                s->slot[i] = NULL;
                s->busy--;
            }
        if (s->n_cancel_queued) { /* only then is the queue walked */
            s->qtail = NULL;
            for (req **pp = &s->qhead; *pp;) {
                req *r = *pp;
                if (r->cancel) {
                    *pp = r->next;
                    s->nq--;
                    r->next = cancelled, cancelled = r;
                } else {
                    s->qtail = r;
                    pp = &r->next;
                }
            }
            s->n_cancel_queued = 0;
        }
        /* the oldest queued requests join the batch */
        double now = base_now();
        for (int i = 0; i < s->o.n_slots && s->qhead; i++)
            if (!s->slot[i]) {
                req *r = s->qhead;
                s->qhead = r->next;
                if (!s->qhead) s->qtail = NULL;
                s->nq--;
                r->next = NULL;
                r->slot = i;
                r->t_admit = now;
                /* the slot's adapter (the engine is this thread's): refused for an adapter of
                 * another model, or when the scratch for a higher rank cannot be had */
                if (infer_engine_set_lora(s->g, i, r->lora, &r->admit_err)) {
                    r->next = failed, failed = r;
                    continue;
                }
                s->slot[i] = r;
                s->busy++;
            }
        pthread_mutex_unlock(&s->mu);
        for (req *r = cancelled, *nx; r; r = nx) nx = r->next, finish(r, INFER_FINISH_CANCELLED);
        for (req *r = failed, *nx; r; r = nx)
            nx = r->next, finish_err(r, INFER_FINISH_ERROR, r->admit_err.msg);
        step(s);
    }
    return NULL;
}

int infer_sched_create(infer_sched **out, infer_model *m, const infer_sched_opts *o, base_err *e) {
    *out = NULL;
    const nn_config *c = infer_model_config(m);
    infer_sched_opts op = *o;
    if (op.ctx == 0) op.ctx = c->max_seq < INFER_DEFAULT_CTX ? c->max_seq : INFER_DEFAULT_CTX;
    if (op.n_slots < 1 || op.n_slots > 1024)
        return base_fail(e, BASE_EINVAL, "slots must be in [1, 1024], got %d", op.n_slots);
    if (op.ctx < 2 || op.ctx > c->max_seq)
        return base_fail(e, BASE_EINVAL, "context must be in [2, %d] (the model's max_seq), got %d",
                         c->max_seq, op.ctx);
    if (op.max_queue < 0 || op.max_queue > 1 << 20)
        return base_fail(e, BASE_EINVAL, "queue length must be in [0, 2^20], got %d", op.max_queue);
    if (op.prefill_chunk == 0) op.prefill_chunk = 64;
    if (op.prefill_chunk < 1 || op.prefill_chunk > 65536)
        return base_fail(e, BASE_EINVAL, "prefill chunk must be in [1, 65536], got %d",
                         op.prefill_chunk);
    if (op.prefill_chunk > op.ctx) op.prefill_chunk = op.ctx;
    if (op.max_rows == 0 || op.max_rows > op.n_slots * op.prefill_chunk)
        op.max_rows = op.n_slots * op.prefill_chunk;
    if (op.max_rows < op.n_slots)
        return base_fail(e, BASE_EINVAL, "rows per step (%d) must be at least the slots (%d)",
                         op.max_rows, op.n_slots);
    if (op.threads < 1) op.threads = tensor_threads();
    infer_sched *s = calloc(1, sizeof *s);
    if (!s) return base_fail(e, BASE_ENOMEM, "out of memory");
    s->m = m;
    s->o = op;
    s->V = c->vocab_size;
    s->vocab_n = tok_vocab_size(infer_model_vocab(m));
    s->next_id = 1;
    int rows = op.max_rows;
    int rc = infer_engine_create(&s->g, m, op.n_slots, op.ctx, rows, op.kv_type, e);
    if (rc) {
        free(s);
        return rc;
    }
    s->slot = calloc((size_t)op.n_slots, sizeof *s->slot);
    s->btok = calloc((size_t)rows, sizeof *s->btok);
    s->bslot = calloc((size_t)rows, sizeof(int));
    s->bpos = calloc((size_t)rows, sizeof(int));
    s->orow = calloc((size_t)op.n_slots, sizeof(int));
    s->oreq = calloc((size_t)op.n_slots, sizeof *s->oreq);
    s->logits = base_alloc_floats((size_t)op.n_slots * (size_t)s->V);
    s->ss.idx = calloc((size_t)s->V, sizeof(int));
    s->ss.prob = base_alloc_floats((size_t)s->V);
    if (!s->slot || !s->btok || !s->bslot || !s->bpos || !s->orow || !s->oreq || !s->logits ||
        !s->ss.idx || !s->ss.prob)
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        if (pthread_create(&s->thread, NULL, sched_main, s)) {
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->cv);
            rc = base_fail(e, BASE_EIO, "cannot start the scheduler thread");
        }
    }
    if (rc) {
        infer_engine_free(s->g);
        free(s->slot), free(s->btok), free(s->bslot), free(s->bpos), free(s->orow), free(s->oreq);
        free(s->logits), free(s->ss.idx), free(s->ss.prob);
        free(s);
        return rc;
    }
    *out = s;
    return BASE_OK;
}

void infer_sched_free(infer_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->shutdown = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    infer_engine_free(s->g);
    free(s->slot), free(s->btok), free(s->bslot), free(s->bpos), free(s->orow), free(s->oreq);
    free(s->logits), free(s->ss.idx), free(s->ss.prob);
    free(s);
}

static int check_sampling(const infer_sampling *sp, base_err *e) {
    if (!isfinite(sp->temperature) || sp->temperature < 0)
        return base_fail(e, BASE_EINVAL, "temperature must be a number >= 0, got %g",
                         (double)sp->temperature);
    if (sp->top_k < 0) return base_fail(e, BASE_EINVAL, "top_k must be >= 0, got %d", sp->top_k);
    if (!(sp->top_p > 0 && sp->top_p <= 1))
        return base_fail(e, BASE_EINVAL, "top_p must be in (0, 1], got %g", (double)sp->top_p);
    if (!(sp->min_p >= 0 && sp->min_p <= 1))
        return base_fail(e, BASE_EINVAL, "min_p must be in [0, 1], got %g", (double)sp->min_p);
    if (!(sp->repeat_penalty > 0) || !isfinite(sp->repeat_penalty))
        return base_fail(e, BASE_EINVAL, "repeat_penalty must be > 0, got %g",
                         (double)sp->repeat_penalty);
    if (sp->repeat_last_n < -1)
        return base_fail(e, BASE_EINVAL, "repeat_last_n must be >= -1, got %d", sp->repeat_last_n);
    if (sp->max_tokens < 0)
        return base_fail(e, BASE_EINVAL, "max_tokens must be >= 0, got %d", sp->max_tokens);
    if (sp->n_stop < 0 || sp->n_stop > INFER_MAX_STOP)
        return base_fail(e, BASE_EINVAL, "at most %d stop sequences, got %d", INFER_MAX_STOP,
                         sp->n_stop);
    for (int i = 0; i < sp->n_stop; i++)
        if (!sp->stop[i]) return base_fail(e, BASE_EINVAL, "stop sequence %d is NULL", i);
    return BASE_OK;
}

int infer_sched_submit(infer_sched *s, const int32_t *prompt, size_t n, const infer_sampling *sp,
                       const infer_lora *lora, infer_event_fn fn, void *ud, uint64_t *id,
                       base_err *e) {
    int ctx = s->o.ctx;
    if (n == 0) return base_fail(e, BASE_EINVAL, "the prompt is empty (at least one token)");
    if (n >= (size_t)ctx)
        return base_fail(e, BASE_EINVAL,
                         "the prompt has %zu tokens but the context holds %d (at most %d prompt "
                         "tokens, leaving room for one generated)",
                         n, ctx, ctx - 1);
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->V)
            return base_fail(e, BASE_EINVAL, "prompt token %zu (%d) is outside the vocabulary (%d)",
                             i, (int)prompt[i], s->V);
    int rc = check_sampling(sp, e);
    if (rc) return rc;
    req *r = calloc(1, sizeof *r);
    if (!r) return base_fail(e, BASE_ENOMEM, "out of memory");
    r->toks = malloc((size_t)ctx * sizeof *r->toks);
    r->sp = *sp;
    r->sp.n_stop = 0;
    for (int i = 0; i < sp->n_stop; i++) {
        r->stops[i] = strdup(sp->stop[i]);
        if (!r->stops[i]) break;
        r->sp.stop[i] = r->stops[i];
        r->sp.n_stop = i + 1;
    }
    if (!r->toks || r->sp.n_stop != sp->n_stop) {
        req_free(r);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    memcpy(r->toks, prompt, n * sizeof *prompt);
    r->lora = lora;
    r->n_prompt = r->n_toks = (int)n;
    r->fn = fn, r->ud = ud;
    base_rng_seed(&r->rng, sp->seed);
    infer_text_init(&r->text, (const char *const *)r->sp.stop, r->sp.n_stop);
    r->t_submit = base_now();
    pthread_mutex_lock(&s->mu);
    if (s->shutdown || s->nq >= s->o.max_queue + (s->o.n_slots - s->busy)) {
        int q = s->nq, busy = s->busy, down = s->shutdown;
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        if (down) return base_fail(e, BASE_EINVAL, "the scheduler is shutting down");
        return base_fail(e, INFER_EFULL, "the queue is full (%d waiting, %d of %d slots busy)", q,
                         busy, s->o.n_slots);
    }
    r->id = s->next_id++;
    if (id) *id = r->id;
    if (s->qtail)
        s->qtail->next = r;
    else
        s->qhead = r;
    s->qtail = r;
    s->nq++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return BASE_OK;
}

void infer_sched_cancel(infer_sched *s, uint64_t id) {
    pthread_mutex_lock(&s->mu);
    int found = 0;
    for (req *r = s->qhead; r && !found; r = r->next)
        if (r->id == id && !r->cancel) r->cancel = found = 1, s->n_cancel_queued++;
    for (int i = 0; i < s->o.n_slots && !found; i++)
        if (s->slot[i] && s->slot[i]->id == id) s->slot[i]->cancel = found = 1;
    if (found) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void infer_sched_get_stats(infer_sched *s, infer_sched_stats *st) {
    pthread_mutex_lock(&s->mu);
    st->busy_slots = s->busy;
    st->queued = s->nq;
    pthread_mutex_unlock(&s->mu);
}
