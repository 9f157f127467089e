/* tests/fuzz/fuzz_trainer.c: a checkpoint's trainer.json (format, version, step, data
 * position, model config and run settings compared with the resuming run's), put into a real
 * checkpoint directory whose manifest is rewritten to match it (else every input would stop at
 * the CRC check), and loaded by ckpt_load as a resumed run does (fuzz_checkpoint: the seed that
 * gets past the settings comparison). */
#include "fuzz.h"

#include "ckpt/crc32c.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static nn_model *model;
static optim_adamw opt;
static ckpt_trainer trainer;
static json_t *manifest;

static void init(void) {
    dir = fuzz_checkpoint(&model, &opt, &trainer);
    char p[700];
    json_error_t je;
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    if (!(manifest = json_load_file(p, 0, &je))) fuzz_die("manifest", je.text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir) init();
    char p[700], hex[16];
    snprintf(p, sizeof p, "%s/trainer.json", dir);
    fuzz_write(p, data, size);
    snprintf(hex, sizeof hex, "%08" PRIx32, ckpt_crc32c(0, data, size));
    json_t *files = json_object_get(manifest, "files"), *f;
    size_t i;
    json_array_foreach(files, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (name && strcmp(name, "trainer.json") == 0) {
            json_object_set_new(f, "size", json_integer((json_int_t)size));
            json_object_set_new(f, "crc32c", json_string(hex));
        }
    }
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    if (json_dump_file(manifest, p, 0)) fuzz_die("manifest", p);
    base_err e;
    ckpt_trainer t = trainer;
    fuzz_report("ckpt_load", ckpt_load(dir, model, &opt, &t, &e), &e);
    return 0;
}
