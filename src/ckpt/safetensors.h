/* ckpt/safetensors: the subset of the safetensors format hearth writes and reads
 * (docs/FORMATS.md): an 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype (F32 only), shape and byte range, an optional "__metadata__" object of strings, then
 * the raw little-endian data. Also the model's tensors under Hugging Face GPT-2 / Llama names.
 *
 * The writer streams through base_afile (temporary, fsync, rename, fsync directory). The
 * reader takes a whole file into memory and checks every length and offset before use. */
#ifndef HEARTH_CKPT_SAFETENSORS_H
#define HEARTH_CKPT_SAFETENSORS_H

#include "base/base.h"
#include "nn/nn.h"

#define CKPT_ST_MAX_DIM 8
#define CKPT_ST_MAX_HEADER (100u << 20) /* a longer header is refused as malformed */

/* One tensor to write: numel(shape) floats at data. */
typedef struct ckpt_st_tensor {
    const char *name;
    int ndim; /* 0..CKPT_ST_MAX_DIM (0: a scalar, one float) */
    uint64_t shape[CKPT_ST_MAX_DIM];
    const float *data;
} ckpt_st_tensor;

/* Writes n tensors to path atomically, data in the given order. meta: NULL, or key, value,
 * key, value, ..., NULL strings for "__metadata__". OUT: *size (the file's bytes) and *crc
 * (its CRC-32C), each if not NULL, for a manifest. */
int ckpt_st_write(const char *path, const ckpt_st_tensor *t, int n, const char *const *meta,
                  uint64_t *size, uint32_t *crc, base_err *e);

/* A parsed file. Entries and their pointers live until ckpt_st_free. */
typedef struct ckpt_st_entry {
    const char *name;
    int ndim;
    uint64_t shape[CKPT_ST_MAX_DIM];
    uint64_t numel;
    const unsigned char *data; /* numel * 4 bytes of little-endian F32, maybe unaligned */
} ckpt_st_entry;
typedef struct ckpt_st ckpt_st;

/* Parses a file image; takes ownership of buf (malloc'd, freed by ckpt_st_free, or here on
 * failure). name is for messages. */
int ckpt_st_parse(ckpt_st **out, void *buf, size_t len, const char *name, base_err *e);
/* Reads and parses the file at path. */
int ckpt_st_open(ckpt_st **out, const char *path, base_err *e);
void ckpt_st_free(ckpt_st *st); /* NULL is fine */
int ckpt_st_count(const ckpt_st *st);
const ckpt_st_entry *ckpt_st_entry_at(const ckpt_st *st, int i);
const ckpt_st_entry *ckpt_st_find(const ckpt_st *st, const char *name); /* NULL: absent */
/* A "__metadata__" value (NULL: absent). */
const char *ckpt_st_meta(const ckpt_st *st, const char *key);
/* Copies an entry's data into dst (numel floats), checking that its shape is exactly
 * (ndim, shape); the message names the tensor and both shapes otherwise. */
int ckpt_st_get_f32(const ckpt_st *st, const char *name, int ndim, const uint64_t *shape,
                    float *dst, base_err *e);

/* ---- the model under Hugging Face names (GPT-2 or Llama family by m->cfg). hearth's stacked
 * per-layer tensors are split per layer, the Llama family's packed qkvw into q/k/v_proj and
 * fcw into gate/up_proj. Matrices keep hearth's (out, in) shape: a GPT-2 Conv1D reader must
 * transpose them (docs/FORMATS.md). */
int ckpt_st_write_model(const char *path, const nn_model *m, const char *const *meta,
                        uint64_t *size, uint32_t *crc, base_err *e);
/* Fills m->params from a file written by ckpt_st_write_model for the same config: every
 * tensor must be present with the expected shape. */
int ckpt_st_read_model(const ckpt_st *st, nn_model *m, base_err *e);

#endif
