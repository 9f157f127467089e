/* tests/ckpt/gguf_write.c: the in-memory GGUF builder of gguf_write.h. */
#include "gguf_write.h"

#include "gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(gw *w, const void *p, size_t n) {
    if (w->len + n > w->cap) {
        size_t c = w->cap ? w->cap : 4096;
        while (c < w->len + n) c *= 2;
        uint8_t *q = realloc(w->p, c);
        if (!q) abort(); /* a test helper: out of memory is fatal */
        w->p = q;
        w->cap = c;
    }
    if (n) memcpy(w->p + w->len, p, n);
    w->len += n;
}

void gw_u8(gw *w, uint8_t x) {
    put(w, &x, 1);
}
void gw_u32(gw *w, uint32_t x) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(x >> (8 * i));
    put(w, b, 4);
}
void gw_u64(gw *w, uint64_t x) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(x >> (8 * i));
    put(w, b, 8);
}
void gw_bytes(gw *w, const void *p, size_t n) {
    put(w, p, n);
}
void gw_str(gw *w, const char *s, size_t n) {
    gw_u64(w, n);
    put(w, s, n);
}

void gw_begin(gw *w, uint32_t version) {
    memset(w, 0, sizeof *w);
    put(w, "GGUF", 4);
    gw_u32(w, version);
    gw_u64(w, 0); /* tensors, patched */
    gw_u64(w, 0); /* keys, patched */
}

void gw_key(gw *w, const char *key, uint32_t type) {
    gw_str(w, key, strlen(key));
    gw_u32(w, type);
    w->n_kv++;
}
void gw_kv_str(gw *w, const char *key, const char *val) {
    gw_key(w, key, GGUF_TYPE_STRING);
    gw_str(w, val, strlen(val));
}
void gw_kv_u32(gw *w, const char *key, uint32_t val) {
    gw_key(w, key, GGUF_TYPE_UINT32);
    gw_u32(w, val);
}
void gw_kv_i32(gw *w, const char *key, int32_t val) {
    gw_key(w, key, GGUF_TYPE_INT32);
    gw_u32(w, (uint32_t)val);
}
void gw_kv_f32(gw *w, const char *key, float val) {
    uint32_t u;
    memcpy(&u, &val, 4);
    gw_key(w, key, GGUF_TYPE_FLOAT32);
    gw_u32(w, u);
}
void gw_kv_bool(gw *w, const char *key, int val) {
    gw_key(w, key, GGUF_TYPE_BOOL);
    gw_u8(w, val ? 1 : 0);
}
void gw_kv_arr_str(gw *w, const char *key, const char *const *s, const size_t *lens, size_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(w, GGUF_TYPE_STRING);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) gw_str(w, s[i], lens ? lens[i] : strlen(s[i]));
}
void gw_kv_arr_f32(gw *w, const char *key, const float *x, size_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(w, GGUF_TYPE_FLOAT32);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        gw_u32(w, u);
    }
}
void gw_kv_arr_i32(gw *w, const char *key, const int32_t *x, size_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(w, GGUF_TYPE_INT32);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) gw_u32(w, (uint32_t)x[i]);
}
void gw_tensor(gw *w, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
               uint64_t offset) {
    gw_str(w, name, strlen(name));
    gw_u32(w, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) gw_u64(w, dims[i]);
    gw_u32(w, type);
    gw_u64(w, offset);
    w->n_tensors++;
}

const uint8_t *gw_finish(gw *w) {
    for (int i = 0; i < 8; i++) {
        w->p[8 + i] = (uint8_t)(w->n_tensors >> (8 * i));
        w->p[16 + i] = (uint8_t)(w->n_kv >> (8 * i));
    }
    return w->p;
}

void gw_free(gw *w) {
    free(w->p);
    memset(w, 0, sizeof *w);
}

int gw_save(gw *w, const char *path) {
    gw_finish(w);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(w->p, 1, w->len, f) == w->len;
    return fclose(f) == 0 && ok ? 0 : -1;
}
