/* tests/ckpt/gguf_write.h: builds GGUF images in memory for the tests (the GGUF reader's and
 * the tokenizer's), so that no test needs a downloaded model file. Little-endian, version 3
 * unless set otherwise. Counts in the header are patched by gw_finish(). */
#ifndef HEARTH_TEST_GGUF_WRITE_H
#define HEARTH_TEST_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw {
    uint8_t *p;
    size_t len, cap;
    uint64_t n_kv, n_tensors;
} gw;

void gw_begin(gw *w, uint32_t version);
void gw_u8(gw *w, uint8_t x);
void gw_u32(gw *w, uint32_t x);
void gw_u64(gw *w, uint64_t x);
void gw_bytes(gw *w, const void *p, size_t n);
void gw_str(gw *w, const char *s, size_t n); /* length-prefixed */
/* key + type; the caller writes the value (counts one key) */
void gw_key(gw *w, const char *key, uint32_t type);
void gw_kv_str(gw *w, const char *key, const char *val);
void gw_kv_u32(gw *w, const char *key, uint32_t val);
void gw_kv_i32(gw *w, const char *key, int32_t val);
void gw_kv_f32(gw *w, const char *key, float val);
void gw_kv_bool(gw *w, const char *key, int val);
/* arrays; lens NULL: strlen of each */
void gw_kv_arr_str(gw *w, const char *key, const char *const *s, const size_t *lens, size_t n);
void gw_kv_arr_f32(gw *w, const char *key, const float *x, size_t n);
void gw_kv_arr_i32(gw *w, const char *key, const int32_t *x, size_t n);
void gw_tensor(gw *w, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
               uint64_t offset);
/* Patches the counts into the header; returns the image (owned by w). */
const uint8_t *gw_finish(gw *w);
void gw_free(gw *w);
int gw_save(gw *w, const char *path); /* 0 on success */

#endif
