/* tests/fuzz/fuzz_util.c: the targets' temporary directory and file helpers (fuzz.h). */
#define _GNU_SOURCE
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[256];

static void remove_dir(void) {
    char cmd[300];
    if (!tmp_dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", tmp_dir);
}

const char *fuzz_dir(void) {
    if (tmp_dir[0]) return tmp_dir;
    struct stat sb;
    const char *root = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/hearth-fuzz-XXXXXX", root);
    if (!mkdtemp(tmp_dir)) fuzz_die("mkdtemp", tmp_dir);
    atexit(remove_dir);
    return tmp_dir;
}

const char *fuzz_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    return p;
}

void fuzz_write(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fuzz_die("open", path);
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) fuzz_die("write", path);
        p += w, n -= (size_t)w;
    }
    close(fd);
}

void fuzz_config(nn_config *c, int llama) {
    base_err e;
    if (nn_config_preset(c, llama ? "llama-tiny" : "tiny", &e)) fuzz_die("preset", e.msg);
    c->vocab_size = 320, c->n_layer = 1, c->d_model = 16, c->n_head = 2, c->d_ff = 32;
    c->n_kv_head = llama ? 1 : 2, c->max_seq = 16;
}

/* Copies file `name` of dir to $HEARTH_FUZZ_SEEDS/sub/harness.json, when that is set. */
static void export_seed(const char *dir, const char *name, const char *sub) {
    const char *seeds = getenv("HEARTH_FUZZ_SEEDS");
    if (!seeds) return;
    char p[700], out[700], *buf;
    size_t n;
    base_err e;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    snprintf(out, sizeof out, "%s/%s/harness.json", seeds, sub);
    if (base_read_file(p, &buf, &n, &e)) fuzz_die("seed", e.msg);
    fuzz_write(out, buf, n);
    free(buf);
}

const char *fuzz_checkpoint(nn_model **m, optim_adamw *o, ckpt_trainer *t) {
    static char dir[600];
    nn_config c;
    base_err e;
    fuzz_config(&c, 0);
    if (nn_model_create(m, &c, 1, 8, &e)) fuzz_die("model", e.msg);
    nn_model_init(*m, 1);
    if (optim_adamw_create(o, (*m)->n_params, &e)) fuzz_die("optimizer", e.msg);
    memset(t, 0, sizeof *t);
    t->step = 1, t->steps = 100, t->warmup = 5, t->accum = 1, t->batch = 1, t->seq = 8;
    t->lr = 1e-3f, t->min_lr = 1e-4f, t->weight_decay = 0.1f, t->clip = 1.0f, t->seed = 42;
    snprintf(t->data_identity, sizeof t->data_identity, "bytes");
    char run[512];
    snprintf(run, sizeof run, "%s/run", fuzz_dir());
    if (base_mkdir_p(run, &e) || ckpt_save(run, *m, o, t, &e)) fuzz_die("ckpt_save", e.msg);
    snprintf(dir, sizeof dir, "%s/step_00000001", run);
    export_seed(dir, "manifest.json", "manifest");
    export_seed(dir, "trainer.json", "trainer");
    return dir;
}

int fuzz_report(const char *what, int rc, const base_err *e) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("HEARTH_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "  %s: %s\n", what, rc ? e->msg : "ok");
    return rc;
}

void fuzz_die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz harness: %s: %s\n", what, msg);
    abort();
}
