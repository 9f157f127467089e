/* train/run_dir.c: the run directory around the loop: its lock (one trainer per directory),
 * config.json (written through jansson, and compared with a rerun's settings) and the copy of
 * the shards' tokenizer. */
#include "train_int.h"

#include "data/data.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int train_lock(const char *dir, int *fd, base_err *e) {
    char p[TRAIN_PATH_MAX];
    *fd = -1;
    if ((size_t)snprintf(p, sizeof p, "%s/lock", dir) >= sizeof p)
        return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    /* not O_TRUNC: the pid in a file another process holds is what a refusal names */
    int f = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return base_fail(e, BASE_EIO, "cannot create %s: %s", p, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = {0};
        ssize_t n = pread(f, buf, sizeof buf - 1, 0);
        close(f);
        if (err != EWOULDBLOCK)
            return base_fail(e, BASE_EIO, "cannot lock %s: %s", p, strerror(err));
        char *end;
        long pid = n > 0 ? strtol(buf, &end, 10) : 0;
        if (pid > 0)
            return base_fail(e, BASE_EINVAL,
                             "%s is in use: another hearth train (pid %ld) is writing it; two "
                             "trainers must never write one run directory",
                             dir, pid);
        return base_fail(e, BASE_EINVAL,
                         "%s is in use: another hearth train (pid not yet written) is writing "
                         "it; two trainers must never write one run directory",
                         dir);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
        int err = errno;
        close(f);
        return base_fail(e, BASE_EIO, "cannot write %s: %s", p, strerror(err));
    }
    *fd = f;
    return BASE_OK;
}

void train_unlock(int fd) {
    if (fd >= 0) close(fd); /* the file stays: removing it would race with the next taker */
}

int train_config_write(const char *dir, const nn_config *cfg, const ckpt_trainer *ck,
                       const train_opts *o, base_err *e) {
    char p[TRAIN_PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s/config.json", dir) >= sizeof p)
        return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    json_t *c = nn_config_json(cfg), *r = ckpt_run_json(ck);
    int ok = c && r && !json_object_set_new(r, "threads", json_integer(o->threads)) &&
             !json_object_set_new(r, "data_path", data_json_string(o->data));
    char *a = ok ? json_dumps(c, TRAIN_JSON_FLAGS) : NULL;
    char *b = ok ? json_dumps(r, TRAIN_JSON_FLAGS) : NULL;
    json_decref(c);
    json_decref(r);
    base_buf text = {0};
    if (a && b) base_buf_printf(&text, "%s\n%s\n", a, b);
    int rc = !a || !b || text.failed ? base_fail(e, BASE_ENOMEM, "out of memory")
                                     : base_write_atomic(p, text.data, text.len, e);
    free(a);
    free(b);
    base_buf_free(&text);
    return rc;
}

int train_config_check(const char *dir, const nn_config *cfg, const ckpt_trainer *ck, int *found,
                       base_err *e) {
    char p[TRAIN_PATH_MAX], *text;
    size_t len;
    base_err ignored;
    *found = 0;
    if ((size_t)snprintf(p, sizeof p, "%s/config.json", dir) >= sizeof p)
        return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    if (base_read_file(p, &text, &len, &ignored) != BASE_OK) return BASE_OK; /* none */
    *found = 1;
    /* two lines, one object each */
    char *nl = memchr(text, '\n', len);
    json_error_t je;
    json_t *saved_c = json_loadb(text, nl ? (size_t)(nl - text) : len, 0, &je);
    json_t *saved_r = nl ? json_loadb(nl + 1, len - (size_t)(nl + 1 - text), 0, &je) : NULL;
    json_t *c = nn_config_json(cfg), *r = ckpt_run_json(ck);
    char where[TRAIN_PATH_MAX + 64];
    snprintf(where, sizeof where, "the run in %s (config.json)", dir);
    int rc;
    if (!c || !r)
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    else if (!json_is_object(saved_c) || !json_is_object(saved_r))
        rc = base_fail(e, BASE_EINVAL,
                       "%s is not a hearth run's config (two JSON objects, one a line); choose "
                       "another --out",
                       p);
    else if (!(rc = ckpt_compare_settings(where, "model config", saved_c, c, e)))
        rc = ckpt_compare_settings(where, "run setting", saved_r, r, e);
    json_decref(saved_c), json_decref(saved_r), json_decref(c), json_decref(r);
    free(text);
    return rc;
}

int train_copy_tokenizer(const char *data, const char *identity, const char *dir, base_err *e) {
    char p[TRAIN_PATH_MAX], *vb = NULL;
    size_t vlen = 0;
    tok_vocab *tv = NULL;
    snprintf(p, sizeof p, "%s/vocab.htok", data);
    int rc = base_read_file(p, &vb, &vlen, e);
    if (!rc) rc = tok_parse(vb, vlen, &tv, e);
    if (!rc && strcmp(tok_identity(tv), identity) != 0)
        rc = base_fail(e, BASE_EFORMAT, "%s is not the shards' vocabulary (%s, %s)", p,
                       tok_identity(tv), identity);
    if (!rc) {
        snprintf(p, sizeof p, "%s/" CKPT_RUN_TOKENIZER, dir);
        rc = base_write_atomic(p, vb, vlen, e);
    }
    tok_free(tv);
    free(vb);
    return rc;
}
