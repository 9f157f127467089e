/* tests/fuzz/fuzz_manifest.c: a checkpoint's manifest.json (format, version, each file's size
 * and CRC-32C), put into a real checkpoint directory and checked by ckpt_verify and
 * ckpt_resolve, as `hearth train --resume`, `generate` and `export` do. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>

static const char *dir;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir) {
        nn_model *m;
        optim_adamw o;
        ckpt_trainer t;
        dir = fuzz_checkpoint(&m, &o, &t);
        optim_adamw_free(&o);
        nn_model_free(m);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    fuzz_write(p, data, size);
    base_err e;
    fuzz_report("ckpt_verify", ckpt_verify(dir, &e), &e);
    char *d = NULL, *run = NULL;
    if (ckpt_resolve(dir, &d, &run, &e) == 0) free(d), free(run);
    return 0;
}
