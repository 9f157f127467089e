/* ckpt/ckpt.c: checkpoint save (temporary directory, fsync, rename, fsync, latest), verify
 * (manifest sizes and CRC-32C), find the newest good one, and load with a settings check. */
#include "ckpt.h"

#include "crc32c.h"
#include "nn/lora.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_FORMAT "hearth-checkpoint"
#define TRAINER_FORMAT "hearth-trainer"
#define PATH_MAX_LEN 4096
/* trainer.json: one line; its reals are float32 values, which 9 significant digits round-trip */
#define CKPT_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* The files of a checkpoint, manifest.json aside, in writing order. */
static const char *const ckpt_files[] = {"model.safetensors", "optimizer.safetensors",
                                         "trainer.json"};
#define N_FILES 3

/* dir/name into out (PATH_MAX_LEN bytes); BASE_EINVAL if it does not fit. */
static int path_join(char *out, const char *dir, const char *name, base_err *e) {
    int n = snprintf(out, PATH_MAX_LEN, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX_LEN)
        return base_fail(e, BASE_EINVAL, "path too long: %s/%s", dir, name);
    return BASE_OK;
}

static int fsync_dir(const char *path, base_err *e) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc =
        fsync(fd) ? base_fail(e, BASE_EIO, "cannot fsync %s: %s", path, strerror(errno)) : BASE_OK;
    close(fd);
    return rc;
}

/* Removes the directory path and the plain files in it (checkpoints hold nothing else). */
static int remove_dir(const char *path, base_err *e) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return BASE_OK;
        return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    struct dirent *de;
    char p[PATH_MAX_LEN];
    int rc = BASE_OK;
    while (!rc && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (!(rc = path_join(p, path, de->d_name, e)) && unlink(p) != 0)
            rc = base_fail(e, BASE_EIO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    if (!rc && rmdir(path) != 0)
        rc = base_fail(e, BASE_EIO, "cannot remove %s: %s", path, strerror(errno));
    return rc;
}

json_t *ckpt_run_json(const ckpt_trainer *t) {
    return json_pack("{s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:I,s:I,s:s}", "batch", t->batch, "seq",
                     t->seq, "accum", t->accum, "steps", t->steps, "warmup", t->warmup, "lr",
                     (double)t->lr, "min_lr", (double)t->min_lr, "weight_decay",
                     (double)t->weight_decay, "clip", (double)t->clip, "seed", (json_int_t)t->seed,
                     "data_windows", (json_int_t)t->data_windows, "data", t->data_identity);
}

/* Bytes for an optimizer entry's name, PREFIX.NAME with its NUL (longer ones are cut) */
#define ENTRY_NAME_LEN 40

/* The safetensors entries of the set's tensors, their data at base + offset, named
 * PREFIX.NAME into names[i] (ENTRY_NAME_LEN bytes each) or, with no prefix, by the tensors'
 * own names. OUT: t[0..s->n_tensors). */
static void set_entries(const nn_trained *s, const float *base, const char *prefix,
                        char (*names)[ENTRY_NAME_LEN], ckpt_st_tensor *t) {
    for (int i = 0; i < s->n_tensors; i++) {
        const nn_tensor *x = &s->tensors[i];
        if (prefix) {
            snprintf(names[i], sizeof names[i], "%s.%s", prefix, x->name);
            t[i].name = names[i];
        } else {
            t[i].name = x->name;
        }
        t[i].ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++) t[i].shape[d] = (uint64_t)x->shape[d];
        t[i].data = base + x->offset;
    }
}

/* Reads the set's tensors from st into base + offset, named as set_entries names them; stops
 * at the first that is missing or of another shape. */
static int get_entries(const ckpt_st *st, const nn_trained *s, const char *prefix, float *base,
                       base_err *e) {
    int rc = BASE_OK;
    for (int i = 0; !rc && i < s->n_tensors; i++) {
        const nn_tensor *x = &s->tensors[i];
        char name[ENTRY_NAME_LEN];
        uint64_t shape[3];
        if (prefix) snprintf(name, sizeof name, "%s.%s", prefix, x->name);
        for (int d = 0; d < x->ndim; d++) shape[d] = (uint64_t)x->shape[d];
        rc = ckpt_st_get_f32(st, prefix ? name : x->name, x->ndim, shape, base + x->offset, e);
    }
    return rc;
}

/* model.safetensors: the model under Hugging Face names, or the adapters under their own */
static int write_params(const char *path, const nn_model *m, const char *const *meta,
                        uint64_t *size, uint32_t *crc, base_err *e) {
    if (!m->lora) return ckpt_st_write_model(path, m, meta, size, crc, e);
    nn_trained s;
    nn_trained_of(m, &s);
    ckpt_st_tensor *t = calloc((size_t)s.n_tensors + 1, sizeof *t);
    if (!t) return base_fail(e, BASE_ENOMEM, "out of memory");
    set_entries(&s, s.params, NULL, NULL, t);
    int rc = ckpt_st_write(path, t, s.n_tensors, meta, size, crc, e);
    free(t);
    return rc;
}

static int read_params(const ckpt_st *st, nn_model *m, base_err *e) {
    if (!m->lora) return ckpt_st_read_model(st, m, e);
    nn_trained s;
    nn_trained_of(m, &s);
    if (ckpt_st_count(st) != s.n_tensors)
        return base_fail(e, BASE_EINVAL, "%d tensors, the adapters have %d", ckpt_st_count(st),
                         s.n_tensors);
    return get_entries(st, &s, NULL, s.params, e);
}

static int add_file(json_t *files, const char *name, uint64_t size, uint32_t crc) {
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, crc);
    return json_array_append_new(
        files, json_pack("{sssIss}", "name", name, "size", (json_int_t)size, "crc32c", hex));
}

int ckpt_save(const char *run_dir, const nn_model *m, const optim_adamw *o, const ckpt_trainer *t,
              base_err *e) {
    char name[32], tmp[PATH_MAX_LEN], dst[PATH_MAX_LEN], p[PATH_MAX_LEN];
    if (t->step < 0 || t->step > 99999999)
        return base_fail(e, BASE_EINVAL, "checkpoint step %ld out of range", t->step);
    snprintf(name, sizeof name, "step_%08ld", t->step);
    char tname[40];
    snprintf(tname, sizeof tname, ".tmp-%s", name);
    int rc = path_join(tmp, run_dir, tname, e);
    if (!rc) rc = path_join(dst, run_dir, name, e);
    if (!rc) rc = remove_dir(tmp, e);
    if (!rc && mkdir(tmp, 0755) != 0)
        rc = base_fail(e, BASE_EIO, "cannot create %s: %s", tmp, strerror(errno));
    if (rc) return rc;
    json_t *files = json_array();
    uint64_t size[N_FILES];
    uint32_t crc[N_FILES];
    char steps[24], tt[24];
    snprintf(steps, sizeof steps, "%ld", t->step);
    snprintf(tt, sizeof tt, "%ld", o->t);
    const char *mmeta[] = {"format", m->lora ? "hearth-lora" : "hearth", "step", steps, NULL};
    if (!rc) rc = path_join(p, tmp, ckpt_files[0], e);
    if (!rc)
        rc = files ? write_params(p, m, mmeta, &size[0], &crc[0], e)
                   : base_fail(e, BASE_ENOMEM, "out of memory");
    /* optimizer: m.NAME and v.NAME laid out like the trained parameters, t in the metadata */
    nn_trained set;
    nn_trained_of(m, &set);
    int nt = set.n_tensors;
    ckpt_st_tensor *ot = calloc(2 * (size_t)nt + 1, sizeof *ot);
    char(*on)[ENTRY_NAME_LEN] = calloc(2 * (size_t)nt + 1, sizeof *on);
    if (!rc && (!ot || !on)) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        set_entries(&set, o->m, "m", on, ot);
        set_entries(&set, o->v, "v", on + nt, ot + nt);
    }
    if (!rc) {
        const char *ometa[] = {"format", "hearth-adamw", "t", tt, NULL};
        if (!(rc = path_join(p, tmp, ckpt_files[1], e)))
            rc = ckpt_st_write(p, ot, 2 * nt, ometa, &size[1], &crc[1], e);
    }
    free(ot);
    free(on);
    if (!rc) {
        json_t *tj =
            json_pack("{s:s,s:i,s:I,s:o,s:o,s:{s:I,s:I,s:I}}", "format", TRAINER_FORMAT, "version",
                      CKPT_VERSION, "step", (json_int_t)t->step, "config", nn_config_json(&m->cfg),
                      "run", ckpt_run_json(t), "data_pos", "epoch", (json_int_t)t->pos.epoch,
                      "shard", (json_int_t)t->pos.shard, "window", (json_int_t)t->pos.window);
        char *s = tj ? json_dumps(tj, CKPT_JSON_FLAGS) : NULL;
        size_t n = s ? strlen(s) : 0;
        if (s) s[n++] = '\n'; /* json_dumps's NUL becomes the closing newline */
        rc = s ? path_join(p, tmp, ckpt_files[2], e) : base_fail(e, BASE_ENOMEM, "out of memory");
        if (!rc) rc = base_write_atomic(p, s, n, e);
        size[2] = n;
        crc[2] = s ? ckpt_crc32c(0, s, n) : 0;
        free(s);
        json_decref(tj);
    }
    for (int i = 0; !rc && i < N_FILES; i++)
        if (add_file(files, ckpt_files[i], size[i], crc[i]))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        json_t *man = json_pack("{sssisIsO}", "format", MANIFEST_FORMAT, "version", CKPT_VERSION,
                                "step", (json_int_t)t->step, "files", files);
        char *s = man ? json_dumps(man, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
        rc = s ? path_join(p, tmp, "manifest.json", e) : base_fail(e, BASE_ENOMEM, "out of memory");
        if (!rc) rc = base_write_atomic(p, s, strlen(s), e);
        free(s);
        json_decref(man);
    }
    json_decref(files);
    /* into place: an older directory of the same step (a run resumed before it) goes first */
    if (!rc) rc = remove_dir(dst, e);
    if (!rc && rename(tmp, dst) != 0)
        rc = base_fail(e, BASE_EIO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    if (!rc) rc = fsync_dir(run_dir, e);
    if (!rc) {
        char line[40];
        int n = snprintf(line, sizeof line, "%s\n", name);
        if (!(rc = path_join(p, run_dir, "latest", e)))
            rc = base_write_atomic(p, line, (size_t)n, e);
    }
    if (rc) {
        base_err ignored;
        remove_dir(tmp, &ignored);
    }
    return rc;
}

/* Reads and checks dir/manifest.json. *man gets the parsed object. */
static int read_manifest(const char *dir, json_t **man, base_err *e) {
    char p[PATH_MAX_LEN];
    *man = NULL;
    int prc = path_join(p, dir, "manifest.json", e);
    if (prc) return prc;
    json_error_t je;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    *man = NULL;
    if (!j) return base_fail(e, BASE_EFORMAT, "%s: unreadable (%s)", p, je.text);
    const char *fmt = json_string_value(json_object_get(j, "format"));
    json_t *ver = json_object_get(j, "version");
    int rc = BASE_OK;
    if (!fmt || strcmp(fmt, MANIFEST_FORMAT) != 0)
        rc = base_fail(e, BASE_EFORMAT, "%s: not a hearth checkpoint manifest", p);
    else if (!json_is_integer(ver) || json_integer_value(ver) != CKPT_VERSION)
        rc = base_fail(
            e, BASE_EFORMAT, "%s: checkpoint format version %lld; this hearth reads version %d", p,
            json_is_integer(ver) ? (long long)json_integer_value(ver) : -1LL, CKPT_VERSION);
    if (rc)
        json_decref(j);
    else
        *man = j;
    return rc;
}

int ckpt_verify(const char *dir, base_err *e) {
    json_t *man;
    int rc = read_manifest(dir, &man, e);
    if (rc) return rc;
    json_t *files = json_object_get(man, "files");
    for (int i = 0; !rc && i < N_FILES; i++) {
        json_t *f = NULL;
        for (size_t k = 0; k < json_array_size(files); k++) {
            const char *n = json_string_value(json_object_get(json_array_get(files, k), "name"));
            if (n && strcmp(n, ckpt_files[i]) == 0) f = json_array_get(files, k);
        }
        json_t *js = json_object_get(f, "size");
        const char *hex = json_string_value(json_object_get(f, "crc32c"));
        char *end = NULL;
        unsigned long want_crc = hex ? strtoul(hex, &end, 16) : 0;
        if (!f || !json_is_integer(js) || !hex || strlen(hex) != 8 || *end) {
            rc = base_fail(e, BASE_EFORMAT, "%s/manifest.json: no valid entry for %s", dir,
                           ckpt_files[i]);
            break;
        }
        char p[PATH_MAX_LEN], *buf;
        size_t len;
        if ((rc = path_join(p, dir, ckpt_files[i], e)) || (rc = base_read_file(p, &buf, &len, e)))
            break;
        uint32_t crc = ckpt_crc32c(0, buf, len);
        free(buf);
        if ((json_int_t)len != json_integer_value(js))
            rc = base_fail(e, BASE_EFORMAT, "%s: %zu bytes, the manifest says %lld (truncated?)", p,
                           len, (long long)json_integer_value(js));
        else if (crc != want_crc)
            rc = base_fail(e, BASE_EFORMAT, "%s: CRC-32C %08" PRIx32 ", the manifest says %s", p,
                           crc, hex);
    }
    json_decref(man);
    return rc;
}

static int step_of(const char *name, long *step) {
    if (strncmp(name, "step_", 5) != 0 || strlen(name) != 13) return 0;
    for (int i = 5; i < 13; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    *step = strtol(name + 5, NULL, 10);
    return 1;
}

static int cmp_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The step `latest` names in run_dir, or -1 (missing, unreadable or not a step name). */
static long latest_step(const char *run_dir) {
    char p[PATH_MAX_LEN], *lat = NULL;
    size_t ll = 0;
    long step = -1;
    base_err ignored;
    if (path_join(p, run_dir, "latest", &ignored) ||
        base_read_file(p, &lat, &ll, &ignored) != BASE_OK)
        return -1;
    while (ll && (lat[ll - 1] == '\n' || lat[ll - 1] == '\r')) ll--;
    lat[ll] = 0;
    if (!step_of(lat, &step)) step = -1;
    free(lat);
    return step;
}

/* The steps of run_dir's step_NNNNNNNN entries, newest first, into *steps (malloc'd, caller
 * frees; NULL when none). A missing run_dir has none. */
static int list_steps(const char *run_dir, long **steps, size_t *n, base_err *e) {
    *steps = NULL, *n = 0;
    DIR *d = opendir(run_dir);
    if (!d) {
        if (errno == ENOENT) return BASE_OK;
        return base_fail(e, BASE_EIO, "cannot open %s: %s", run_dir, strerror(errno));
    }
    struct dirent *de;
    size_t cap = 0;
    int rc = BASE_OK;
    while (!rc && (de = readdir(d))) {
        long s;
        if (!step_of(de->d_name, &s)) continue;
        if (base_grow(steps, &cap, *n + 1, sizeof **steps, SIZE_MAX))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        if (!rc) (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (!rc && *n) qsort(*steps, *n, sizeof **steps, cmp_desc);
    if (rc) free(*steps), *steps = NULL, *n = 0;
    return rc;
}

int ckpt_find_latest_good(const char *run_dir, char **dir, ckpt_warn_fn warn, void *user,
                          base_err *e) {
    *dir = NULL;
    char p[PATH_MAX_LEN];
    long first = latest_step(run_dir), *steps;
    size_t n;
    int rc = list_steps(run_dir, &steps, &n, e);
    for (size_t i = 0; !rc && i < n + 1 && !*dir; i++) {
        long s = i == 0 ? first : steps[i - 1];
        if (s < 0 || (i > 0 && s == first)) continue; /* `latest` was tried first */
        char sn[40];
        snprintf(sn, sizeof sn, "step_%08ld", s);
        if ((rc = path_join(p, run_dir, sn, e))) break;
        base_err why;
        if (ckpt_verify(p, &why) == BASE_OK) {
            if (!(*dir = strdup(p))) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        } else if (warn) {
            char msg[PATH_MAX_LEN + 600];
            snprintf(msg, sizeof msg, "skipping checkpoint %s: %s", p, why.msg);
            warn(msg, user);
        }
    }
    free(steps);
    return rc;
}

/* Numbers compare by value, a real at float32 precision: every real setting is a float32, and
 * a file may spell one in fewer digits ("1e-05") or as an integer ("10000"). */
static int same_setting(json_t *saved, json_t *now) {
    if (json_is_number(saved) && json_is_number(now) && (json_is_real(saved) || json_is_real(now)))
        return (float)json_number_value(saved) == (float)json_number_value(now);
    return json_equal(saved, now);
}

/* A setting as a message shows it (malloc'd): a real as the shortest decimal that reads back as
 * its float32 ("0.001", not "0.00100000005"). */
static char *setting_text(json_t *v) {
    if (!json_is_real(v)) return json_dumps(v, JSON_ENCODE_ANY);
    float f = (float)json_real_value(v);
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if (strtof(b, NULL) == f) break;
    }
    return strdup(b);
}

int ckpt_compare_settings(const char *where, const char *what, json_t *saved, json_t *now,
                          base_err *e) {
    const char *k;
    json_t *v;
    if (!json_is_object(saved)) return base_fail(e, BASE_EFORMAT, "%s: no %s", where, what);
    json_object_foreach(now, k, v) {
        json_t *s = json_object_get(saved, k);
        if (s && same_setting(s, v)) continue;
        char *a = s ? setting_text(s) : NULL, *b = setting_text(v);
        int rc = base_fail(e, BASE_EINVAL,
                           "%s was made with a different %s: %s is %s there, %s in "
                           "this run",
                           where, what, k, a ? a : "absent", b ? b : "?");
        free(a);
        free(b);
        return rc;
    }
    return BASE_OK;
}

static int get_u64(json_t *o, const char *k, uint64_t *out) {
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int ckpt_load(const char *dir, nn_model *m, optim_adamw *o, ckpt_trainer *t, base_err *e) {
    int rc = ckpt_verify(dir, e);
    if (rc) return rc;
    char p[PATH_MAX_LEN];
    if ((rc = path_join(p, dir, "trainer.json", e))) return rc;
    json_error_t je;
    json_t *tj = json_load_file(p, JSON_REJECT_DUPLICATES, &je), *cn = NULL, *rn = NULL;
    ckpt_st *ms = NULL, *os = NULL;
    if (!tj) return base_fail(e, BASE_EFORMAT, "%s: unreadable (%s)", p, je.text);
    const char *fmt = json_string_value(json_object_get(tj, "format"));
    json_t *ver = json_object_get(tj, "version"), *step = json_object_get(tj, "step");
    if (!fmt || strcmp(fmt, TRAINER_FORMAT) != 0 || !json_is_integer(ver)) {
        rc = base_fail(e, BASE_EFORMAT, "%s: not a hearth trainer state", p);
        goto done;
    }
    if (json_integer_value(ver) != CKPT_VERSION) {
        rc = base_fail(e, BASE_EFORMAT, "%s: trainer state version %lld; this hearth reads %d", p,
                       (long long)json_integer_value(ver), CKPT_VERSION);
        goto done;
    }
    cn = nn_config_json(&m->cfg);
    rn = ckpt_run_json(t);
    if (!cn || !rn) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ckpt_compare_settings("the checkpoint", "model config", json_object_get(tj, "config"),
                                    cn, e)) ||
        (rc = ckpt_compare_settings("the checkpoint", "run setting", json_object_get(tj, "run"), rn,
                                    e)))
        goto done;
    json_t *pos = json_object_get(tj, "data_pos");
    data_pos dp;
    if (!json_is_integer(step) || json_integer_value(step) < 0 ||
        json_integer_value(step) > t->steps || get_u64(pos, "epoch", &dp.epoch) ||
        get_u64(pos, "shard", &dp.shard) || get_u64(pos, "window", &dp.window)) {
        rc = base_fail(e, BASE_EFORMAT, "%s: bad step or data_pos", p);
        goto done;
    }
    if ((rc = path_join(p, dir, "model.safetensors", e))) goto done;
    if ((rc = ckpt_st_open(&ms, p, e)) || (rc = read_params(ms, m, e))) {
        if (ms && e) {
            char why[sizeof e->msg];
            memcpy(why, e->msg, sizeof why);
            base_fail(e, rc, "%s: %s", p, why);
        }
        goto done;
    }
    if ((rc = path_join(p, dir, "optimizer.safetensors", e))) goto done;
    if ((rc = ckpt_st_open(&os, p, e))) goto done;
    const char *ts = ckpt_st_meta(os, "t");
    char *end = NULL;
    long ot = ts ? strtol(ts, &end, 10) : -1;
    nn_trained set;
    nn_trained_of(m, &set);
    int nt = set.n_tensors;
    if (!ts || *end || ot < 0 || ckpt_st_count(os) != 2 * nt) {
        rc = base_fail(e, BASE_EFORMAT, "%s: not the optimizer state of this model", p);
        goto done;
    }
    if ((rc = get_entries(os, &set, "m", o->m, e)) || (rc = get_entries(os, &set, "v", o->v, e)))
        goto done;
    o->t = ot;
    t->step = (long)json_integer_value(step);
    t->pos = dp;
done:
    ckpt_st_free(ms);
    ckpt_st_free(os);
    json_decref(cn);
    json_decref(rn);
    json_decref(tj);
    return rc;
}

int ckpt_prune(const char *run_dir, int keep_last, int keep_every, int *removed, base_err *e) {
    if (removed) *removed = 0;
    if (keep_last <= 0) return BASE_OK;
    char p[PATH_MAX_LEN];
    size_t n;
    long latest = latest_step(run_dir), *steps;
    base_err ignored;
    int rc = list_steps(run_dir, &steps, &n, e);
    /* newest first: the first keep_last that verify stay, and everything newer than the last
     * of them; older ones go unless kept forever or named by `latest` */
    int good = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        char sn[40];
        snprintf(sn, sizeof sn, "step_%08ld", steps[i]);
        if ((rc = path_join(p, run_dir, sn, e))) break;
        if (good < keep_last) {
            if (ckpt_verify(p, &ignored) == BASE_OK) good++;
            continue;
        }
        if (steps[i] == latest || (keep_every > 0 && steps[i] % keep_every == 0)) continue;
        if ((rc = remove_dir(p, e))) break;
        if (removed) (*removed)++;
    }
    free(steps);
    if (!rc) rc = fsync_dir(run_dir, e);
    return rc;
}

int ckpt_resolve(const char *src, char **dir, char **run, base_err *e) {
    *dir = *run = NULL;
    char p[PATH_MAX_LEN];
    int rc = path_join(p, src, "manifest.json", e);
    if (rc) return rc;
    struct stat sb;
    if (stat(src, &sb) != 0)
        return base_fail(e, BASE_EIO, "cannot open %s: %s", src, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return base_fail(e, BASE_EINVAL, "%s is not a run or checkpoint directory", src);
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    if (stat(p, &sb) == 0) { /* a checkpoint directory: its run is the parent */
        if ((rc = ckpt_verify(src, e))) return rc;
        size_t k = n;
        while (k > 0 && src[k - 1] != '/') k--;
        *dir = strndup(src, n);
        *run = k == 0 ? strdup(".") : strndup(src, k > 1 ? k - 1 : 1);
    } else {
        if ((rc = ckpt_find_latest_good(src, dir, NULL, NULL, e))) return rc;
        if (!*dir) return base_fail(e, BASE_EINVAL, "no checkpoint in %s that verifies", src);
        *run = strndup(src, n);
    }
    if (!*dir || !*run) {
        free(*dir), free(*run);
        *dir = *run = NULL;
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    return BASE_OK;
}

int ckpt_tokenizer_beside(const char *model_path, char *out, size_t cap) {
    size_t n = strlen(model_path), el = strlen(".safetensors");
    size_t stem = n > el && strcmp(model_path + n - el, ".safetensors") == 0 ? n - el : n;
    int k = snprintf(out, cap, "%.*s.htok", (int)stem, model_path);
    return k < 0 || (size_t)k >= cap ? -1 : 0;
}
