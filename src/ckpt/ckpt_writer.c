/* ckpt/ckpt_writer.c: asynchronous checkpoints. The training thread copies the state into
 * buffers owned here (the only cost it pays); one pthread per write runs ckpt_save and
 * ckpt_prune from that copy, and the training thread joins it before the next snapshot. */
#include "ckpt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ckpt_writer {
    char *run_dir;
    int keep_last, keep_every;
    size_t n;              /* parameters per buffer */
    float *params, *m, *v; /* (n) each: the snapshot */
    nn_model model;        /* a shallow copy of the model whose params point at the snapshot */
    optim_adamw opt;       /* likewise: m and v point at the snapshot */
    ckpt_trainer t;
    pthread_t thread;
    int running; /* a thread was started and not yet joined */
    pthread_mutex_t mu;
    int finished; /* under mu: the running thread has stored its result */
    ckpt_write_result res;
};

static void *writer_main(void *arg) {
    ckpt_writer *w = arg;
    ckpt_write_result *r = &w->res;
    double t0 = base_now();
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
    size_t n = m->n_params;
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
    w->keep_last = keep_last;
    w->keep_every = keep_every;
    pthread_mutex_init(&w->mu, NULL);
    *out = w;
    return BASE_OK;
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
    if (m->n_params != w->n || o->n != w->n)
        return base_fail(e, BASE_EINVAL, "checkpoint writer made for %zu parameters, not %zu", w->n,
                         m->n_params);
    double t0 = base_now();
    memcpy(w->params, m->params, w->n * sizeof(float));
    memcpy(w->m, o->m, w->n * sizeof(float));
    memcpy(w->v, o->v, w->n * sizeof(float));
    w->model = *m;
    w->model.params = w->params;
    w->opt = *o;
    w->opt.m = w->m;
    w->opt.v = w->v;
    w->t = *t;
    memset(&w->res, 0, sizeof w->res);
    w->res.step = t->step;
    w->res.snapshot_ms = (base_now() - t0) * 1e3;
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
    free(w->run_dir), free(w->params), free(w->m), free(w->v);
    free(w);
}
