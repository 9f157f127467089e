/* ckpt/export.c: checkpoint -> standalone model.safetensors (see export.h). The tensors are
 * copied name for name, so any family the checkpoint writer knows exports unchanged. */
#include "ckpt/export.h"

#include "ckpt/ckpt.h"
#include "ckpt/crc32c.h"
#include "ckpt/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_LEN 4096

int ckpt_file_sum(const char *path, uint64_t *size, uint32_t *crc, base_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    uint64_t n = 0;
    uint32_t c = 0;
    size_t k;
    while ((k = fread(buf, 1, CHUNK, f)) > 0) {
        c = ckpt_crc32c(c, buf, k);
        n += k;
    }
    int rc = ferror(f) ? base_fail(e, BASE_EIO, "cannot read %s", path) : BASE_OK;
    free(buf);
    fclose(f);
    if (!rc) {
        *size = n;
        *crc = c;
    }
    return rc;
}

/* trainer.json's step and config (as compact JSON, malloc'd). */
static int read_trainer(const char *dir, long *step, char **config, base_err *e) {
    char p[PATH_MAX_LEN];
    int n = snprintf(p, sizeof p, "%s/trainer.json", dir);
    if (n < 0 || n >= (int)sizeof p) return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    json_error_t je;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!j) return base_fail(e, BASE_EFORMAT, "%s:%d: %s", p, je.line, je.text);
    json_t *s = json_object_get(j, "step"), *c = json_object_get(j, "config");
    int rc = BASE_OK;
    if (!json_is_integer(s) || json_integer_value(s) < 0 || !json_is_object(c))
        rc = base_fail(e, BASE_EFORMAT, "%s: no step or config", p);
    else {
        *step = (long)json_integer_value(s);
        *config = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        if (!*config) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    json_decref(j);
    return rc;
}

/* The tokenizer stored with the run (RUN/tokenizer.htok, written by `hearth train` on shards)
 * goes beside the export as FILE's stem + ".htok" (model.safetensors -> model.htok), where
 * src/infer looks for it. A run without one (trained on bytes) removes a stale stem.htok so a
 * file of another model is never taken for this one's tokenizer. */
static int export_tokenizer(const char *run, const char *out_path, base_err *e) {
    char src[PATH_MAX_LEN], dst[PATH_MAX_LEN];
    int k = snprintf(src, sizeof src, "%s/" CKPT_RUN_TOKENIZER, run);
    if (k < 0 || k >= (int)sizeof src || ckpt_tokenizer_beside(out_path, dst, sizeof dst))
        return base_fail(e, BASE_EINVAL, "path too long: %s", out_path);
    struct stat sb;
    if (stat(src, &sb) != 0) {
        if (unlink(dst) != 0 && errno != ENOENT)
            return base_fail(e, BASE_EIO, "cannot remove the stale %s: %s", dst, strerror(errno));
        return BASE_OK;
    }
    char *data = NULL;
    size_t len = 0;
    int rc = base_read_file(src, &data, &len, e);
    if (!rc) rc = base_write_atomic(dst, data, len, e);
    free(data);
    return rc;
}

int ckpt_export(const char *src, const char *out_path, char **used, base_err *e) {
    char *dir = NULL, *run = NULL, *config = NULL, p[PATH_MAX_LEN];
    ckpt_st *st = NULL;
    ckpt_st_tensor *t = NULL;
    float **copies = NULL;
    long step = 0;
    int n = 0, rc = ckpt_resolve(src, &dir, &run, e);
    if (!rc) rc = read_trainer(dir, &step, &config, e);
    if (!rc) {
        int k = snprintf(p, sizeof p, "%s/model.safetensors", dir);
        rc = k < 0 || k >= (int)sizeof p ? base_fail(e, BASE_EINVAL, "path too long: %s", dir)
                                         : ckpt_st_open(&st, p, e);
    }
    if (!rc) {
        n = ckpt_st_count(st);
        t = calloc((size_t)n + 1, sizeof *t);
        copies = calloc((size_t)n + 1, sizeof *copies);
        if (!t || !copies) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (int i = 0; !rc && i < n; i++) {
        const ckpt_st_entry *en = ckpt_st_entry_at(st, i);
        t[i].name = en->name;
        t[i].ndim = en->ndim;
        memcpy(t[i].shape, en->shape, sizeof t[i].shape);
        /* The reader's data may sit at any byte address: copy into an aligned buffer. */
        copies[i] = base_alloc_floats(en->numel ? en->numel : 1);
        if (!copies[i]) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory for %s", en->name);
            break;
        }
        memcpy(copies[i], en->data, en->numel * sizeof(float));
        t[i].data = copies[i];
    }
    if (!rc) {
        char sstep[32];
        snprintf(sstep, sizeof sstep, "%ld", step);
        const char *meta[] = {"format", "hearth", "step", sstep, "config", config, NULL};
        rc = ckpt_st_write(out_path, t, n, meta, NULL, NULL, e);
    }
    if (!rc) rc = export_tokenizer(run, out_path, e);
    for (int i = 0; copies && i < n; i++) free(copies[i]);
    free(copies);
    free(t);
    ckpt_st_free(st);
    free(config);
    free(run);
    if (!rc && used)
        *used = dir;
    else
        free(dir);
    return rc;
}
