/* data: training data for hearth train. For now a plain text file read as bytes (token id =
 * byte value, vocabulary 256), split into a training part and a held-out tail; batches are
 * random windows drawn from a caller-owned RNG, so a seed fixes the whole sequence. */
#ifndef HEARTH_DATA_H
#define HEARTH_DATA_H

#include "base/base.h"

enum { DATA_TRAIN = 0, DATA_VAL = 1 };

typedef struct data_source {
    unsigned char *bytes; /* the whole file (owned) */
    size_t n;             /* its length */
    size_t split;         /* [0, split) trains, [split, n) is held out */
    int vocab_size;       /* 256 */
} data_source;

/* Reads path as bytes and holds out the last val_frac of it. Each part must hold at least
 * T + 1 bytes; fails with a message naming the file otherwise. */
int data_open_bytes(data_source *d, const char *path, double val_frac, int T, base_err *e);
void data_close(data_source *d);
/* Fills tokens (B,T) with random windows of the split and targets (B,T) with the next token. */
void data_batch(const data_source *d, int split, base_rng *r, int B, int T, int *tokens,
                int *targets);

/* The 8x8 handwritten digits as scikit-learn ships them (digits.csv.gz: rows of 64 pixel
 * values 0..16, then the label 0..9). *x gets (n, 64) pixels scaled to [0, 1], *y (n) labels;
 * both malloc'd, caller frees. A malformed row is reported with its line number. */
int data_load_digits(const char *path, float **x, int **y, int *n, base_err *e);

#endif
