/* tools/llama_logits.c: llama.cpp's logits at every position of a token sequence, the reference
 * tests/infer/test_gguf_logits.c compares hearth's with (tools/gguf_logits_fixtures.sh builds and
 * runs it; not part of hearth's build).
 *
 *   llama_logits MODEL.gguf OUT.f32 ID...
 *
 * The ids go through the model one at a time (one llama_decode per token, as llama-cli's
 * generation does), on one thread, with llama.cpp's default F16 KV cache; after each, the
 * vocabulary's logits are appended to OUT.f32 as little-endian float32: n_ids rows of n_vocab. */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf OUT.f32 ID...\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "%s: cannot load\n", argv[1]);
        return 1;
    }
    int n = argc - 3;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n + 8);
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot make a context\n");
        return 1;
    }
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    struct llama_batch b = llama_batch_init(1, 0, 1);
    for (int i = 0; i < n; i++) {
        b.n_tokens = 1;
        b.token[0] = (llama_token)atoi(argv[3 + i]);
        b.pos[0] = i;
        b.n_seq_id[0] = 1;
        b.seq_id[0][0] = 0;
        b.logits[0] = 1;
        if (llama_decode(ctx, b)) {
            fprintf(stderr, "llama_decode failed at position %d\n", i);
            return 1;
        }
        const float *lg = llama_get_logits_ith(ctx, 0);
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
