/* train/metrics.c: a run's metrics log (metrics.jsonl: one JSON object a line, appended and
 * flushed, through jansson) and its loss plot (loss.svg). */
#include "train_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void add_point(train_log *g, int eval, double step, double v) {
    if (eval && g->nv < g->cap)
        g->vx[g->nv] = step, g->vy[g->nv++] = v;
    else if (!eval && g->n < g->cap)
        g->x[g->n] = step, g->y[g->n++] = v;
}

/* Keeps the lines of metrics.jsonl up to the first one past step k (or torn, or not a step's
 * object), rewritten atomically; their losses go back on the plot. */
static int trim(train_log *g, long k, base_err *e) {
    char *buf;
    size_t len;
    base_err ignored;
    if (base_read_file(g->path, &buf, &len, &ignored) != BASE_OK) return BASE_OK; /* none yet */
    size_t keep = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (!nl) break; /* a torn last line goes */
        json_t *j = json_loadb(buf + at, (size_t)(nl - (buf + at)), 0, NULL);
        json_t *s = json_object_get(j, "step");
        if (!json_is_integer(s) || json_integer_value(s) > k) {
            json_decref(j);
            break;
        }
        json_t *loss = json_object_get(j, "loss"), *val = json_object_get(j, "val_loss");
        double step = (double)json_integer_value(s);
        if (json_is_number(loss))
            add_point(g, 0, step, json_number_value(loss));
        else if (json_is_number(val))
            add_point(g, 1, step, json_number_value(val));
        json_decref(j);
        at = keep = (size_t)(nl - buf) + 1;
    }
    int rc = base_write_atomic(g->path, buf, keep, e);
    free(buf);
    return rc;
}

int train_log_open(train_log *g, const char *dir, long start, int steps, base_err *e) {
    memset(g, 0, sizeof *g);
    g->cap = (size_t)steps + 2;
    g->x = malloc(g->cap * sizeof(double)), g->y = malloc(g->cap * sizeof(double));
    g->vx = malloc(g->cap * sizeof(double)), g->vy = malloc(g->cap * sizeof(double));
    if (!g->x || !g->y || !g->vx || !g->vy) return base_fail(e, BASE_ENOMEM, "out of memory");
    if ((size_t)snprintf(g->path, sizeof g->path, "%s/metrics.jsonl", dir) >= sizeof g->path ||
        (size_t)snprintf(g->svg, sizeof g->svg, "%s/loss.svg", dir) >= sizeof g->svg)
        return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    int rc = trim(g, start, e);
    if (rc) return rc;
    if (!(g->f = fopen(g->path, "a")))
        return base_fail(e, BASE_EIO, "cannot create %s: %s", g->path, strerror(errno));
    return BASE_OK;
}

/* One line: the object j (consumed) as compact JSON, flushed. */
static void put(train_log *g, json_t *j) {
    char *s = j ? json_dumps(j, TRAIN_JSON_FLAGS) : NULL;
    if (s) {
        fprintf(g->f, "%s\n", s);
        fflush(g->f);
    } else {
        g->failed = 1;
    }
    free(s);
    json_decref(j);
}

/* Timings and rates are written as float32 values too, so every real in the log reads back as
 * the float it prints. */
void train_log_step(train_log *g, const train_progress *p) {
    json_t *j = json_pack("{s:i,s:f,s:f,s:f,s:f,s:f,s:f}", "step", p->step, "loss", (double)p->loss,
                          "lr", (double)p->lr, "grad_norm", (double)p->grad_norm, "ms",
                          (double)(float)p->ms, "tokens_per_s", (double)(float)p->tok_per_s,
                          "peak_frac", (double)(float)p->peak_frac);
    if (j && p->ranks > 1) /* data parallel: rank 0's communication this step */
        if (json_object_set_new(j, "ranks", json_integer(p->ranks)) ||
            json_object_set_new(j, "comm_ms", json_real((double)(float)p->comm_ms)) ||
            json_object_set_new(j, "stall_ms", json_real((double)(float)p->stall_ms)) ||
            json_object_set_new(j, "comm_bytes", json_integer((json_int_t)p->comm_bytes)))
            g->failed = 1;
    put(g, j);
    add_point(g, 0, p->step, p->loss);
}

void train_log_eval(train_log *g, const train_progress *p) {
    put(g, json_pack("{s:i,s:f}", "step", p->step, "val_loss", (double)p->val_loss));
    add_point(g, 1, p->step, p->val_loss);
}

void train_log_ckpt(train_log *g, const ckpt_write_result *r, int final) {
    char name[32];
    snprintf(name, sizeof name, "step_%08ld", r->step);
    json_t *j;
    if (r->rc != BASE_OK)
        j = json_pack("{s:I,s:s,s:b}", "step", (json_int_t)r->step, "ckpt", name, "failed", 1);
    else if (final)
        j = json_pack("{s:I,s:s,s:f,s:b}", "step", (json_int_t)r->step, "ckpt", name, "write_ms",
                      (double)(float)r->write_ms, "final", 1);
    else
        j = json_pack("{s:I,s:s,s:f,s:f,s:f,s:I}", "step", (json_int_t)r->step, "ckpt", name,
                      "snapshot_ms", (double)(float)r->snapshot_ms, "wait_ms",
                      (double)(float)r->wait_ms, "write_ms", (double)(float)r->write_ms, "bytes",
                      (json_int_t)r->bytes);
    if (j && final && r->rc != BASE_OK) json_object_set_new(j, "final", json_true());
    put(g, j);
}

int train_log_plot(train_log *g, base_err *e) {
    base_series s[2] = {{"train", g->x, g->y, g->n}, {"val", g->vx, g->vy, g->nv}};
    return base_plot_svg(g->svg, "hearth train: loss", "step", "loss (nats/token)", s,
                         g->nv ? 2 : 1, e);
}

int train_log_close(train_log *g, base_err *e) {
    int rc = BASE_OK;
    if (g->f && ((ferror(g->f) != 0) + (fclose(g->f) != 0) || g->failed))
        rc = base_fail(e, BASE_EIO, "cannot write the metrics log %s", g->path);
    free(g->x), free(g->y), free(g->vx), free(g->vy);
    memset(g, 0, sizeof *g);
    return rc;
}
