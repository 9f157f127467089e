/* tests/fuzz/fuzz_gguf.c: a GGUF file image, from memory (gguf_parse), then what hearth reads
 * from one: the tokenizer.ggml vocabulary (tok_load_gguf, then an encode and a decode with it),
 * the model config (ckpt_gguf_config) and, for a small enough config, the weights
 * (ckpt_gguf_read_model); and the engine's load of the same bytes as a file (infer_model_load:
 * the typed, memory-mapped weights of any type, quantized ones included, checked against the
 * file before use). */
#include "fuzz.h"

#include "gguf/gguf.h"
#include "ckpt/gguf_model.h"
#include "infer/infer.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>

static const char text[] = "Hello, world! <|endoftext|> 123 ümlaut\n\tend";

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
        fuzz_report("infer_model_load", infer_model_load(&im, path, NULL, &e), &e);
        infer_model_free(im);
    }
    gguf_close(g);
    return 0;
}
