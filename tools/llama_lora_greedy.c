/* tools/llama_lora_greedy.c: llama.cpp's greedy continuation of a token sequence, with a LoRA
 * adapter applied or not (tools/finetune_fixtures.sh builds and runs it; not part of hearth's
 * build).
 *
 *   llama_lora_greedy MODEL.gguf ADAPTER.gguf|- N ID...
 *
 * The prompt ids go through the model one at a time (one llama_decode per token, one thread,
 * llama.cpp's default F16 KV cache); then N tokens are chosen by argmax of the logits (ties to
 * the lower id) and fed back. The N ids are printed on one line, separated by spaces. */
#include "llama_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL.gguf ADAPTER.gguf|- N ID...\n", argv[0]);
        return 2;
    }
    int n_gen = atoi(argv[3]), n = argc - 4;
    struct llama_model *model;
    struct llama_context *ctx = llama_ref_open(argv[1], n + n_gen + 8, &model);
    if (!ctx) return 1;
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
        const float *lg =
            llama_ref_step(ctx, &b, i < n ? (llama_token)atoi(argv[4 + i]) : next, i);
        if (!lg) return 1;
        if (i >= n - 1) {
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
