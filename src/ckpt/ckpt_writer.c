/* ckpt/ckpt_writer.c: asynchronous checkpoints. One pthread per write first copies the state
 * into buffers owned here, then runs ckpt_save and ckpt_prune from that copy. The copy is taken
 * while the training thread runs the next forward and backward passes, which only read the
 * parameters and leave the optimizer state alone: the training thread waits for it only before
 * it next changes them (ckpt_writer_snapshot_wait, before the optimizer step), and by then it is
 * normally long done. The training thread joins the writer before the next submit. */
#include "ckpt.h"

#include "nn/lora.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ckpt_writer {
    char *run_dir;
    int keep_last, keep_every;
    size_t n;              /* parameters per buffer */
    float *params, *m, *v; /* (n) each: the snapshot */
    nn_model model;        /* a shallow copy of the model whose params point at the snapshot */
    nn_lora lora;          /* adapters trained (m->lora): a shallow copy over the snapshot */
    int for_lora;          /* made for a model with adapters: they are what is saved */
    optim_adamw opt;       /* likewise: m and v point at the snapshot */
    const float *src_params, *src_m, *src_v; /* the live state the thread copies */
    ckpt_trainer t;
    pthread_t thread;
    int running; /* a thread was started and not yet joined */
    pthread_mutex_t mu;
    pthread_cond_t copied_cv;
    int copied;   /* under mu: the snapshot is taken; the live state may change */
    int finished; /* under mu: the running thread has stored its result */
    ckpt_write_result res;
};

/* Touches every page of the snapshot buffers once, so the first checkpoint's copy does not pay
 * for faulting in a gigabyte and a half. Runs on its own thread right after create. */
static void *prefault_main(void *arg) {
    ckpt_writer *w = arg;
    long page = sysconf(_SC_PAGESIZE);
    size_t step = page > 0 ? (size_t)page / sizeof(float) : 1024;
    float *bufs[] = {w->params, w->m, w->v};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < w->n; i += step) bufs[b][i] = 0;
    pthread_mutex_lock(&w->mu);
    w->copied = 1;
    w->finished = 1;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_broadcast(&w->copied_cv);
    return NULL;
}

static void *writer_main(void *arg) {
    ckpt_writer *w = arg;
    ckpt_write_result *r = &w->res;
    double t0 = base_now();
    memcpy(w->params, w->src_params, w->n * sizeof(float));
    memcpy(w->m, w->src_m, w->n * sizeof(float));
    memcpy(w->v, w->src_v, w->n * sizeof(float));
    r->snapshot_ms = (base_now() - t0) * 1e3;
    pthread_mutex_lock(&w->mu);
    w->copied = 1;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_broadcast(&w->copied_cv);
    t0 = base_now();
    r->rc = ckpt_save(w->run_dir, &w->model, &w->opt, &w->t, &r->err);
    if (r->rc == BASE_OK) {
        static const char *const names[] = {"model.safetensors", "optimizer.safetensors",
                                            "trainer.json"};
        char p[4096];
        struct stat st;
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/step_%08ld/%s", w->run_dir, w->t.step, names[i]);
            if (stat(p, &st) == 0) r->bytes += (uint64_t)st.st_size;
        }
        r->rc = ckpt_prune(w->run_dir, w->keep_last, w->keep_every, &r->pruned, &r->err);
    }
    r->write_ms = (base_now() - t0) * 1e3;
    pthread_mutex_lock(&w->mu);
    w->finished = 1;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ckpt_writer_create(ckpt_writer **out, const char *run_dir, const nn_model *m, int keep_last,
                       int keep_every, base_err *e) {
    *out = NULL;
    ckpt_writer *w = calloc(1, sizeof *w);
    nn_trained set;
    nn_trained_of(m, &set);
    size_t n = set.n;
    if (!w || n > SIZE_MAX / sizeof(float)) {
        free(w);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    w->run_dir = strdup(run_dir);
    w->params = malloc(n * sizeof(float));
    w->m = malloc(n * sizeof(float));
    w->v = malloc(n * sizeof(float));
    if (!w->run_dir || !w->params || !w->m || !w->v) {
        free(w->run_dir), free(w->params), free(w->m), free(w->v), free(w);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    w->n = n;
    w->for_lora = m->lora != NULL;
    w->keep_last = keep_last;
    w->keep_every = keep_every;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->copied_cv, NULL);
    /* joined like a write (ckpt_writer_wait), whose result it leaves as "none" */
    memset(&w->res, 0, sizeof w->res);
    w->res.step = -1;
    if (pthread_create(&w->thread, NULL, prefault_main, w) == 0) w->running = 1;
    *out = w;
    return BASE_OK;
}

double ckpt_writer_snapshot_wait(ckpt_writer *w) {
    if (!w->running) return 0;
    double t0 = base_now();
    pthread_mutex_lock(&w->mu);
    while (!w->copied) pthread_cond_wait(&w->copied_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    double ms = (base_now() - t0) * 1e3;
    w->res.wait_ms += ms;
    return ms;
}

int ckpt_writer_done(ckpt_writer *w) {
    if (!w->running) return 0;
    pthread_mutex_lock(&w->mu);
    int f = w->finished;
    pthread_mutex_unlock(&w->mu);
    return f;
}

void ckpt_writer_wait(ckpt_writer *w, ckpt_write_result *r) {
    if (!w->running) {
        if (r) {
            memset(r, 0, sizeof *r);
            r->step = -1;
        }
        return;
    }
    pthread_join(w->thread, NULL);
    w->running = 0;
    if (r) *r = w->res;
}

int ckpt_writer_submit(ckpt_writer *w, const nn_model *m, const optim_adamw *o,
                       const ckpt_trainer *t, ckpt_write_result *prev, base_err *e) {
    ckpt_writer_wait(w, prev);
    nn_trained set;
    nn_trained_of(m, &set);
    if (set.n != w->n || o->n != w->n || !m->lora != !w->for_lora)
        return base_fail(e, BASE_EINVAL, "checkpoint writer made for %zu parameters, not %zu", w->n,
                         set.n);
    w->src_params = set.params;
    w->src_m = o->m;
    w->src_v = o->v;
    w->model = *m; /* over the snapshot: its named tensors point there, it has no gradients */
    w->model.grads = NULL;
    if (m->lora) { /* the adapters over the snapshot; only their table and params are read */
        w->lora = *m->lora;
        w->lora.params = w->params;
        w->lora.grads = NULL;
        w->model.lora = &w->lora;
    } else {
        w->model.params = w->params;
        nn_model_bind(&w->model);
    }
    w->opt = *o;
    w->opt.m = w->m;
    w->opt.v = w->v;
    w->t = *t;
    memset(&w->res, 0, sizeof w->res);
    w->res.step = t->step;
    w->copied = 0;
    w->finished = 0;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return base_fail(e, BASE_EIO, "cannot start the checkpoint writer thread");
    w->running = 1;
    return BASE_OK;
}

void ckpt_writer_free(ckpt_writer *w) {
    if (!w) return;
    ckpt_writer_wait(w, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->copied_cv);
    free(w->run_dir), free(w->params), free(w->m), free(w->v);
    free(w);
}
