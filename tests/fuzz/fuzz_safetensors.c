/* tests/fuzz/fuzz_safetensors.c: a safetensors file image, from memory (ckpt_st_parse), then
 * every entry and the metadata looked up, and the model read from it into a model of each
 * family of the seeds' shape (ckpt_st_read_model: names, shapes, data bounds). */
#include "fuzz.h"

#include "ckpt/safetensors.h"
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

static nn_model *models[2];

static void init(void) {
    for (int i = 0; i < 2; i++) {
        nn_config c;
        base_err e;
        fuzz_config(&c, i);
        if (nn_model_create(&models[i], &c, 1, 1, &e)) fuzz_die("model", e.msg);
        nn_model_drop_training(models[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!models[0]) init();
    void *buf = malloc(size ? size : 1); /* ckpt_st_parse takes ownership */
    if (!buf) return 0;
    memcpy(buf, data, size);
    ckpt_st *st = NULL;
    base_err e;
    if (fuzz_report("ckpt_st_parse", ckpt_st_parse(&st, buf, size, "fuzz", &e), &e)) return 0;
    volatile float sink = 0;
    for (int i = 0; i < ckpt_st_count(st); i++) {
        const ckpt_st_entry *t = ckpt_st_entry_at(st, i);
        if (ckpt_st_find(st, t->name) == NULL) abort(); /* every entry is found by its name */
        if (t->numel) sink += (float)t->data[t->numel * 4 - 1]; /* the data lies in the image */
    }
    (void)sink;
    ckpt_st_meta(st, "config");
    for (int i = 0; i < 2; i++)
        fuzz_report("ckpt_st_read_model", ckpt_st_read_model(st, models[i], &e), &e);
    ckpt_st_free(st);
    return 0;
}
