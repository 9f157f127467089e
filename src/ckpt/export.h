/* ckpt/export: a trained model out of a checkpoint, as one standalone safetensors file (the
 * checkpoint's model.safetensors tensors with the model config in "__metadata__", so the file
 * alone says what model it is), and the streaming checksum `hearth inspect` verifies with.
 * Nothing here prints; messages go into base_err. */
#ifndef HEARTH_CKPT_EXPORT_H
#define HEARTH_CKPT_EXPORT_H

#include "base/base.h"

/* Writes out_path atomically from src: a checkpoint directory (it must verify), or a run
 * directory (its newest checkpoint that verifies, as ckpt_find_latest_good). "__metadata__"
 * is {"format": "hearth", "step": "N", "config": "<trainer.json's config as JSON>"}.
 * The run's tokenizer (RUN/tokenizer.htok) is copied beside out_path as its stem + ".htok"; a
 * stale one there is removed when the run has none.
 * OUT: *used (if not NULL) gets the checkpoint directory used, malloc'd (caller frees). */
int ckpt_export(const char *src, const char *out_path, char **used, base_err *e);

/* Size (bytes) and CRC-32C of the file at path, read in chunks. */
int ckpt_file_sum(const char *path, uint64_t *size, uint32_t *crc, base_err *e);

#endif
