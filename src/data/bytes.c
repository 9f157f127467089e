/* data/bytes.c: a text file as a byte-level token stream. */
#include "data.h"

#include <stdlib.h>
#include <string.h>

int data_open_bytes(data_source *d, const char *path, double val_frac, int T, base_err *e) {
    memset(d, 0, sizeof *d);
    if (!(val_frac > 0 && val_frac < 1))
        return base_fail(e, BASE_EINVAL, "the held-out fraction must be in (0, 1)");
    char *buf;
    size_t n;
    int rc = base_read_file(path, &buf, &n, e);
    if (rc) return rc;
    size_t split = n - (size_t)((double)n * val_frac);
    if (split < (size_t)T + 1 || n - split < (size_t)T + 1) {
        free(buf);
        return base_fail(e, BASE_EINVAL,
                         "%s is too small: %zu bytes cannot give a training and a held-out part "
                         "of at least %d bytes each (sequence length + 1)",
                         path, n, T + 1);
    }
    d->bytes = (unsigned char *)buf;
    d->n = n;
    d->split = split;
    d->vocab_size = 256;
    return BASE_OK;
}

void data_close(data_source *d) {
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

void data_batch(const data_source *d, int split, base_rng *r, int B, int T, int *tokens,
                int *targets) {
    size_t lo = split == DATA_TRAIN ? 0 : d->split, hi = split == DATA_TRAIN ? d->split : d->n;
    size_t starts = hi - lo - (size_t)T; /* windows of T + 1 bytes */
    for (int b = 0; b < B; b++) {
        size_t s = lo + base_rng_below(r, starts);
        for (int t = 0; t < T; t++) {
            tokens[b * T + t] = d->bytes[s + (size_t)t];
            targets[b * T + t] = d->bytes[s + (size_t)t + 1];
        }
    }
}
