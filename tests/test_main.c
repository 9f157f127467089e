/* tests/test_main.c: runs every suite and closes with one "N passed, N failed" line. */
#include "test.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    struct {
        const char *name;
        int (*run)(void);
    } suites[] = {{"base", test_base},
                  {"tensor", test_tensor},
                  {"nn", test_nn},
                  {"optim", test_optim},
                  {"train", test_train},
                  {"tokenizer", test_tokenizer},
                  {"ckpt", test_ckpt},
                  {"checkpoint", test_checkpoint},
                  {"data", test_data},
                  {"hnsw", test_hnsw},
                  {"vstore", test_vstore},
                  {"analyzer", test_analyzer},
                  {"rag", test_rag},
                  {"infer", test_infer},
                  {"server", test_server},
                  {"quant", test_quant},
                  {"gguf_parity", test_gguf_parity},
                  {"gguf_logits", test_gguf_logits},
                  {"embed", test_embedding},
                  {"embeddings", test_server_embeddings},
                  {"vstore_embed", test_vstore_embedding},
                  {"lora", test_lora},
                  {"infer_lora", test_infer_lora},
                  {"finetune", test_finetune},
                  {"dist", test_dist}};
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (argc > 1 && strcmp(argv[1], suites[i].name) != 0) continue;
        failed += suites[i].run();
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no suite named %s\n", argv[1]);
        return 2;
    }
    return failed ? 1 : 0;
}
