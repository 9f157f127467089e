/* tools/llama_lora_greedy.c: llama.cpp's greedy continuation of a token sequence, with a LoRA
 * adapter applied or not (tools/finetune_fixtures.sh builds and runs it; not part of hearth's
 * build).
 *
 *   llama_lora_greedy MODEL.gguf ADAPTER.gguf|- N ID...
 *
 * The prompt ids go through the model one at a time (one llama_decode per token, one thread,
 * llama.cpp's default F16 KV cache); then N tokens are chosen by argmax of the logits (ties to
 * the lower id) and fed back. The N ids are printed on one line, separated by spaces. */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL.gguf ADAPTER.gguf|- N ID...\n", argv[0]);
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
    int n_gen = atoi(argv[3]), n = argc - 4;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n + n_gen + 8);
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot make a context\n");
        return 1;
    }
    if (strcmp(argv[2], "-")) {
        struct llama_adapter_lora *a = llama_adapter_lora_init(model, argv[2]);
        if (!a || llama_set_adapter_lora(ctx, a, 1.0f)) {
            fprintf(stderr, "%s: cannot load or apply the adapter\n", argv[2]);
            return 1;
        }
    }
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_init(1, 0, 1);
    llama_token next = 0;
    for (int i = 0; i < n + n_gen - 1; i++) {
        b.n_tokens = 1;
        b.token[0] = i < n ? (llama_token)atoi(argv[4 + i]) : next;
        b.pos[0] = i;
        b.n_seq_id[0] = 1;
        b.seq_id[0][0] = 0;
        b.logits[0] = 1;
        if (llama_decode(ctx, b)) {
            fprintf(stderr, "llama_decode failed at position %d\n", i);
            return 1;
        }
        if (i >= n - 1) {
            const float *lg = llama_get_logits_ith(ctx, 0);
            int best = 0;
            for (int v = 1; v < V; v++)
                if (lg[v] > lg[best]) best = v;
            next = best;
            printf("%s%d", i == n - 1 ? "" : " ", best);
        }
    }
    printf("\n");
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
