/* tools/llama_logits.c: llama.cpp's logits at every position of a token sequence, the reference
 * tests/infer/test_gguf_logits.c compares hearth's with (tools/gguf_logits_fixtures.sh builds and
 * runs it; not part of hearth's build).
 *
 *   llama_logits MODEL.gguf OUT.f32 ID...
 *
 * The ids go through the model one at a time (one llama_decode per token, as llama-cli's
 * generation does), on one thread, with llama.cpp's default F16 KV cache; after each, the
 * vocabulary's logits are appended to OUT.f32 as little-endian float32: n_ids rows of n_vocab. */
#include "llama_ref.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf OUT.f32 ID...\n", argv[0]);
        return 2;
    }
    int n = argc - 3;
    struct llama_model *model;
    struct llama_context *ctx = llama_ref_open(argv[1], n + 8, &model);
    if (!ctx) return 1;
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    struct llama_batch b = llama_batch_init(1, 0, 1);
    for (int i = 0; i < n; i++) {
        const float *lg = llama_ref_step(ctx, &b, (llama_token)atoi(argv[3 + i]), i);
        if (!lg) return 1;
        if (fwrite(lg, sizeof(float), (size_t)V, f) != (size_t)V) {
            perror(argv[2]);
            return 1;
        }
    }
    llama_batch_free(b);
    if (fclose(f)) {
        perror(argv[2]);
        return 1;
    }
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
