/* tests/fuzz/fuzz_gguf.c: a GGUF file image, from memory (gguf_parse), then what hearth reads
 * from one: the tokenizer.ggml vocabulary (tok_load_gguf, then an encode and a decode with it),
 * the model config (ckpt_gguf_config) and, for a small enough config, the weights
 * (ckpt_gguf_read_model); and the engine's load of the same bytes as a file (infer_model_load:
 * the typed, memory-mapped weights of any type, quantized ones included, checked against the
 * file before use), and a forward of two tokens through them (infer_engine_create,
 * infer_forward); and a LoRA adapter file (general.type "adapter") read for the committed
 * stories260K model (infer_lora_load: every tensor checked against the matrix it adapts) and
 * applied in a forward of two tokens. */
#include "fuzz.h"

#include "gguf/gguf.h"
#include "ckpt/gguf_model.h"
#include "infer/infer.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char text[] = "Hello, world! <|endoftext|> 123 ümlaut\n\tend";

/* The model adapters are read for: the committed stories260K ($HEARTH_TESTS or tests/fixtures;
 * its fine-tuned adapter is a seed), loaded once; NULL when it is not there. */
static infer_model *adapter_base(void) {
    static infer_model *m;
    static int tried;
    if (!tried) {
        tried = 1;
        char path[512];
        const char *dir = getenv("HEARTH_TESTS");
        snprintf(path, sizeof path, "%s/fixtures/gguf/stories260K-F16.gguf", dir ? dir : "tests");
        base_err e;
        if (infer_model_load(&m, path, NULL, &e)) m = NULL;
    }
    return m;
}

/* A forward of two prompt rows through eng (vocabulary V): tokens {first, V - 1} at positions 0
 * and 1 of slot 0, the last row's logits; an error is reported under label. */
static void forward_two(infer_engine *eng, int V, int32_t first, const char *label) {
    base_err e;
    int32_t tok[2] = {first, V - 1};
    int slot[2] = {0, 0}, pos[2] = {0, 1}, out = 1;
    float *logits = malloc((size_t)V * sizeof(float));
    if (logits)
        fuzz_report(label, infer_forward(eng, tok, slot, pos, 2, 0, &out, 1, logits, &e), &e);
    free(logits);
}

/* An adapter's bytes as a file, read for the base and applied in a forward of two tokens. */
static void fuzz_adapter(const uint8_t *data, size_t size) {
    infer_model *base = adapter_base();
    if (!base) return;
    const char *path = fuzz_path("adapter.gguf");
    fuzz_write(path, data, size);
    base_err e;
    infer_lora *a = NULL;
    infer_engine *eng = NULL;
    if (fuzz_report("infer_lora_load", infer_lora_load(&a, base, path, 1.0f, &e), &e) == 0 &&
        infer_engine_create(&eng, base, 1, 2, 2, INFER_KV_F16, &e) == 0 &&
        fuzz_report("infer_engine_set_lora", infer_engine_set_lora(eng, 0, a, &e), &e) == 0) {
        forward_two(eng, infer_model_config(base)->vocab_size, 1, "infer_forward (adapter)");
    }
    infer_engine_free(eng);
    infer_lora_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *g = NULL;
    base_err e;
    if (fuzz_report("gguf_parse", gguf_parse(data, size, &g, &e), &e)) return 0;
    tok_vocab *v = NULL;
    if (gguf_find(g, "tokenizer.ggml.model") >= 0 &&
        fuzz_report("tok_load_gguf", tok_load_gguf(g, &v, &e), &e) == 0) {
        tok_ids ids = {0};
        if (tok_encode(v, text, sizeof text - 1, TOK_ENCODE_SPECIAL, &ids, &e) == 0) {
            char *out = NULL;
            size_t len;
            if (tok_decode(v, ids.data, ids.len, 0, &out, &len, &e) == 0) free(out);
        }
        tok_ids_free(&ids);
        tok_free(v);
    }
    nn_config c;
    /* weights only for a small model: a valid header may ask for billions of parameters */
    if (fuzz_report("ckpt_gguf_config", ckpt_gguf_config(g, &c, &e), &e) == 0 &&
        nn_config_params(&c) <= (1u << 20) && c.max_seq <= 4096) {
        nn_model *m;
        if (nn_model_create(&m, &c, 1, 1, &e) == 0) {
            nn_model_drop_training(m);
            fuzz_report("ckpt_gguf_read_model", ckpt_gguf_read_model(g, m, &e), &e);
            nn_model_free(m);
        }
    }
    /* the engine maps the file and reserves nothing large at load, but a header may still ask
     * for a vocabulary or tables of billions: the same bound, a little wider (the quantized
     * seeds are a width-256 model) */
    if (ckpt_gguf_config(g, &c, &e) == 0 && nn_config_params(&c) <= (1u << 21) &&
        c.max_seq <= 4096) {
        const char *path = fuzz_path("model.gguf");
        fuzz_write(path, data, size);
        infer_model *im = NULL;
        /* then two prompt rows through every layer: the typed products on the file's bytes */
        infer_engine *eng = NULL;
        if (fuzz_report("infer_model_load", infer_model_load(&im, path, NULL, &e), &e) == 0 &&
            fuzz_report("infer_engine_create",
                        infer_engine_create(&eng, im, 1, 2, 2, INFER_KV_F16, &e), &e) == 0) {
            forward_two(eng, infer_model_config(im)->vocab_size, 0, "infer_forward");
        }
        infer_engine_free(eng);
        infer_model_free(im);
    }
    gguf_str ty;
    if (gguf_find(g, "general.type") >= 0 && gguf_get_str(g, "general.type", &ty, &e) == 0 &&
        ty.len == 7 && memcmp(ty.ptr, "adapter", 7) == 0)
        fuzz_adapter(data, size);
    gguf_close(g);
    return 0;
}
