/* gguf/gguf_write.c: a GGUF (version 3) writer — metadata built in memory, tensor data streamed
 * from the caller's buffers into an atomic file (base_afile_open_direct). The layout is the one
 * gguf.c reads (docs/FORMATS.md, "GGUF"): header, key/values, tensor infos, padding to the
 * alignment, then each tensor's data at an aligned offset. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 32 /* general.alignment's default; not written, so every reader agrees */

typedef struct wtensor {
    char *name;
    uint32_t n_dims;
    uint64_t dims[GGUF_MAX_DIMS];
    uint32_t type;
    const void *data;
    uint64_t nbytes;
} wtensor;

struct gguf_writer {
    base_buf kv; /* the key/value section, serialized as it is set */
    uint64_t n_kv;
    wtensor *t;
    size_t n_t, cap_t;
    int failed; /* out of memory, or a bad argument: save reports it */
    char why[160];
};

int gguf_writer_create(gguf_writer **out, base_err *e) {
    *out = calloc(1, sizeof **out);
    return *out ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    base_buf_free(&w->kv);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w);
}

static void put_u32(base_buf *b, uint32_t x) {
    unsigned char c[4];
    base_put_le32(c, x);
    base_buf_append(b, c, 4);
}
static void put_u64(base_buf *b, uint64_t x) {
    unsigned char c[8];
    base_put_le64(c, x);
    base_buf_append(b, c, 8);
}
static void put_str(base_buf *b, const char *s, size_t n) {
    put_u64(b, n);
    base_buf_append(b, s, n);
}
static void key(gguf_writer *w, const char *k, uint32_t type) {
    put_str(&w->kv, k, strlen(k));
    put_u32(&w->kv, type);
    w->n_kv++;
}

void gguf_set_str(gguf_writer *w, const char *k, const char *v) {
    key(w, k, GGUF_TYPE_STRING);
    put_str(&w->kv, v, strlen(v));
}
void gguf_set_u32(gguf_writer *w, const char *k, uint32_t v) {
    key(w, k, GGUF_TYPE_UINT32);
    put_u32(&w->kv, v);
}
void gguf_set_i32(gguf_writer *w, const char *k, int32_t v) {
    key(w, k, GGUF_TYPE_INT32);
    put_u32(&w->kv, (uint32_t)v);
}
void gguf_set_f32(gguf_writer *w, const char *k, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    key(w, k, GGUF_TYPE_FLOAT32);
    put_u32(&w->kv, u);
}
void gguf_set_bool(gguf_writer *w, const char *k, int v) {
    key(w, k, GGUF_TYPE_BOOL);
    unsigned char c = v ? 1 : 0;
    base_buf_append(&w->kv, &c, 1);
}
void gguf_set_arr_str(gguf_writer *w, const char *k, const char *const *s, const size_t *lens,
                      size_t n) {
    key(w, k, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, GGUF_TYPE_STRING);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_str(&w->kv, s[i], lens ? lens[i] : strlen(s[i]));
}
void gguf_set_arr_i32(gguf_writer *w, const char *k, const int32_t *x, size_t n) {
    key(w, k, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, GGUF_TYPE_INT32);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_u32(&w->kv, (uint32_t)x[i]);
}
void gguf_set_arr_f32(gguf_writer *w, const char *k, const float *x, size_t n) {
    key(w, k, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, GGUF_TYPE_FLOAT32);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(&w->kv, u);
    }
}

void gguf_add_kv_raw(gguf_writer *w, const void *p, size_t n) {
    base_buf_append(&w->kv, p, n);
    w->n_kv++;
}

void gguf_add_tensor_f32(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                         const float *data) {
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims && d < GGUF_MAX_DIMS; d++) numel *= dims[d];
    gguf_add_tensor(w, name, n_dims, dims, 0, data, numel * 4);
}

void gguf_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                     uint32_t type, const void *data, uint64_t nbytes) {
    if (w->failed) return;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        w->failed = 1;
        snprintf(w->why, sizeof w->why, "tensor %s: %u dimensions", name, n_dims);
        return;
    }
    if (base_grow(&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t, SIZE_MAX)) {
        w->failed = 1;
        return;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) {
        w->failed = 1;
        return;
    }
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims; d++) t->dims[d] = dims[d];
    t->type = type;
    t->nbytes = nbytes;
    t->data = data;
    w->n_t++;
}

static uint64_t pad_to(uint64_t x) {
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

int gguf_writer_save(gguf_writer *w, const char *path, base_err *e) {
    if (w->failed || w->kv.failed)
        return w->why[0] ? base_fail(e, BASE_EINVAL, "%s: %s", path, w->why)
                         : base_fail(e, BASE_ENOMEM, "out of memory");
    base_buf h = {0};
    base_buf_append(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    base_buf_append(&h, w->kv.data, w->kv.len);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&h, t->dims[d]);
        put_u32(&h, t->type);
        put_u64(&h, off);
        off = pad_to(off + t->nbytes);
    }
    static const char zeros[ALIGN];
    base_buf_append(&h, zeros, pad_to(h.len) - h.len);
    if (h.failed) {
        base_buf_free(&h);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    base_afile *f;
    int rc = base_afile_open_direct(&f, path, e);
    if (!rc) rc = base_afile_write(f, h.data, h.len, e);
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        size_t n = (size_t)w->t[i].nbytes;
        rc = base_afile_write(f, w->t[i].data, n, e);
        if (!rc) rc = base_afile_write(f, zeros, pad_to(n) - n, e);
    }
    if (rc)
        base_afile_abort(f);
    else
        rc = base_afile_commit(f, e);
    base_buf_free(&h);
    return rc;
}
