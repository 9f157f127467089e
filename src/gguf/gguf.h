/* gguf/gguf: a reader for GGUF files (llama.cpp's model format), versions 2 and 3: the header,
 * every metadata key/value (all scalar types, arrays of scalars, arrays of strings) and the
 * tensor-info table. Tensor data is not interpreted here; the model-format work builds on
 * gguf_tensor_at() and gguf_data(). Layout: docs/FORMATS.md, "GGUF (read)".
 *
 * Every count, length and offset read from the file is checked against the file's size before
 * use, with overflow-checked arithmetic: a truncated or corrupt file gives BASE_EFORMAT and a
 * message, never an out-of-bounds read.
 *
 * Ownership: a gguf_file owns its parsed tables. gguf_open() maps the file read-only and the
 * mapping lives until gguf_close(); gguf_parse() borrows the caller's buffer, which must outlive
 * the gguf_file. Every gguf_str and pointer returned points into the file's bytes and stays
 * valid until gguf_close(). */
#ifndef HEARTH_GGUF_GGUF_H
#define HEARTH_GGUF_GGUF_H

#include "base/base.h"

#include <stddef.h>
#include <stdint.h>

/* Metadata value types, as numbered in the file. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
};

/* A string inside the file: not NUL-terminated, any bytes. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

#define GGUF_MAX_DIMS 4

/* One entry of the tensor-info table. offset is relative to gguf_data_offset(). */
typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t dims[GGUF_MAX_DIMS]; /* dims[i] for i >= n_dims are 1 */
    uint32_t type;                /* ggml type id, not checked here */
    uint64_t offset;
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and parses path (mapped read-only). *out is NULL on error. */
int gguf_open(const char *path, gguf_file **out, base_err *e);
/* Parses a GGUF image in memory; data (len bytes) is borrowed and must outlive *out. */
int gguf_parse(const void *data, size_t len, gguf_file **out, base_err *e);
void gguf_close(gguf_file *g); /* NULL is fine */
/* 1 if g's bytes are a read-only mapping of its file (gguf_open), 0 if borrowed (gguf_parse):
 * only a mapping's pages may be given back to the page cache (madvise MADV_DONTNEED). */
int gguf_is_mapped(const gguf_file *g);

uint32_t gguf_version(const gguf_file *g);
const char *gguf_type_name(uint32_t type); /* "uint8", ..., "?" for unknown */

/* ---- metadata. Keys are unique (a file repeating one is rejected). */
size_t gguf_n_kv(const gguf_file *g);
int64_t gguf_find(const gguf_file *g, const char *key); /* index, or -1 if absent */
gguf_str gguf_kv_key(const gguf_file *g, int64_t i);
uint32_t gguf_kv_type(const gguf_file *g, int64_t i);

/* The bytes of entry i as the file stores it (key, type, value), to copy it into a writer
 * (gguf_add_kv_raw). BASE_EFORMAT when its end cannot be told (a file without tensors). */
int gguf_kv_raw(const gguf_file *g, int64_t i, const uint8_t **p, size_t *n, base_err *e);

/* Typed getters by key. A missing key or a value of another type gives BASE_EFORMAT and a
 * message naming the key. get_int accepts every integer type (and fails if the value does not
 * fit an int64); get_float accepts float32 and float64. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, base_err *e);
int gguf_get_float(const gguf_file *g, const char *key, double *out, base_err *e);
int gguf_get_bool(const gguf_file *g, const char *key, int *out, base_err *e);
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out, base_err *e);
/* An array value: its element type and count. *idx gets the key's index for the accessors
 * below. want_elem: the element type required, or -1 for any. */
int gguf_get_arr(const gguf_file *g, const char *key, int want_elem, int64_t *idx,
                 uint32_t *elem_type, uint64_t *n, base_err *e);

/* Element i of the array at index idx (i < its count and the element type matching are bugs
 * otherwise: asserted). arr_int takes any integer element type (uint64 above INT64_MAX is
 * clamped to INT64_MAX), arr_float float32/float64, arr_str strings. */
int64_t gguf_arr_int(const gguf_file *g, int64_t idx, uint64_t i);
double gguf_arr_float(const gguf_file *g, int64_t idx, uint64_t i);
gguf_str gguf_arr_str(const gguf_file *g, int64_t idx, uint64_t i);

/* ---- tensors */
size_t gguf_n_tensors(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, size_t i);
uint32_t gguf_alignment(const gguf_file *g);   /* general.alignment, default 32 */
uint64_t gguf_data_offset(const gguf_file *g); /* where tensor data starts in the file */
const uint8_t *gguf_data(const gguf_file *g);  /* the whole file's bytes */
size_t gguf_size(const gguf_file *g);

/* ---- writing (version 3, default alignment). Setters never fail on their own: running out of
 * memory or a bad argument is remembered and reported by gguf_writer_save. */
typedef struct gguf_writer gguf_writer;
int gguf_writer_create(gguf_writer **out, base_err *e);
void gguf_writer_free(gguf_writer *w); /* NULL is fine */
void gguf_set_str(gguf_writer *w, const char *key, const char *val);
void gguf_set_u32(gguf_writer *w, const char *key, uint32_t val);
void gguf_set_i32(gguf_writer *w, const char *key, int32_t val);
void gguf_set_f32(gguf_writer *w, const char *key, float val);
void gguf_set_bool(gguf_writer *w, const char *key, int val);
/* lens NULL: strlen of each */
void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *s, const size_t *lens,
                      size_t n);
void gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *x, size_t n);
void gguf_set_arr_f32(gguf_writer *w, const char *key, const float *x, size_t n);
/* An entry as gguf_kv_raw gives it (copied). */
void gguf_add_kv_raw(gguf_writer *w, const void *p, size_t n);
/* A tensor of any ggml type: nbytes of data (its rows back to back), borrowed until
 * gguf_writer_save. */
void gguf_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                     uint32_t type, const void *data, uint64_t nbytes);
/* A float32 tensor; dims in GGUF order (dims[0] is the contiguous row length). data is
 * borrowed: it must stay valid until gguf_writer_save. */
void gguf_add_tensor_f32(gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                         const float *data);
/* Writes everything to path atomically (temporary, fsync, rename). */
int gguf_writer_save(gguf_writer *w, const char *path, base_err *e);

#endif
