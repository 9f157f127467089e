/* bench/peers/llama_lora_ab.c: llama.cpp's side of bench/lora_bench.sh — what applying a LoRA
 * adapter costs llama.cpp, measured A/B inside one process as build/infer_ppbench --lora
 * measures hearth's (built by lora_bench.sh against libllama; not part of hearth's build).
 *
 *   llama_lora_ab MODEL.gguf ADAPTER.gguf P N R THREADS
 *
 * pp: one llama_decode of P random tokens from an empty cache, without and with the adapter
 * (llama_set_adapter_lora / llama_clear_adapter_lora), alternately; tg: N single-token decodes
 * without and N with, in alternating blocks of 4 over one context of 2N positions. R
 * repetitions. Prints "pp16 1 base 12.34 lora 11.98" and "tg32 1 base ... lora ..."
 * (tokens/s), infer_ppbench's lines. */
#include "llama.h"
#include "llama_ref.h" /* tools/: llama_ref_quiet */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int decode(struct llama_context *ctx, struct llama_batch *b, int p0, int n, int V) {
    b->n_tokens = n;
    for (int i = 0; i < n; i++) {
        b->token[i] = rand() % V;
        b->pos[i] = p0 + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = i == n - 1;
    }
    return llama_decode(ctx, *b);
}

static void use(struct llama_context *ctx, struct llama_adapter_lora *a, int on) {
    if (on)
        llama_set_adapter_lora(ctx, a, 1.0f);
    else
        llama_clear_adapter_lora(ctx);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL.gguf ADAPTER.gguf P N R THREADS\n", argv[0]);
        return 2;
    }
    int P = atoi(argv[3]), N = atoi(argv[4]), R = atoi(argv[5]), T = atoi(argv[6]);
    llama_log_set(llama_ref_quiet, NULL);
    llama_backend_init();
    struct llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return fprintf(stderr, "%s: cannot load\n", argv[1]), 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(P > 2 * N ? P : 2 * N) + 8;
    cp.n_batch = cp.n_ubatch = (uint32_t)P;
    cp.n_threads = cp.n_threads_batch = T;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    struct llama_adapter_lora *a = llama_adapter_lora_init(model, argv[2]);
    if (!ctx || !a) return fprintf(stderr, "cannot make a context or load %s\n", argv[2]), 1;
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_init(P, 0, 1);
    srand(1);
    llama_kv_cache_clear(ctx); /* warm-up */
    if (decode(ctx, &b, 0, P, V)) return 1;
    for (int k = 0; k < R; k++) {
        double t[2] = {0, 0};
        for (int o = 0; o < 2; o++) {
            int on = (k + o) % 2;
            use(ctx, a, on);
            llama_kv_cache_clear(ctx);
            double t0 = now();
            if (decode(ctx, &b, 0, P, V)) return 1;
            t[on] = now() - t0;
        }
        printf("pp%d %d base %.3f lora %.3f\n", P, k + 1, P / t[0], P / t[1]);
        fflush(stdout);
    }
    for (int k = 0; k < R; k++) {
        double t[2] = {0, 0};
        llama_kv_cache_clear(ctx);
        for (int p = 0; p < 2 * N; p += 4) {
            int on = (p / 4 + k) % 2, n = 2 * N - p < 4 ? 2 * N - p : 4;
            use(ctx, a, on);
            double t0 = now();
            for (int i = 0; i < n; i++)
                if (decode(ctx, &b, p + i, 1, V)) return 1;
            t[on] += now() - t0;
        }
        printf("tg%d %d base %.3f lora %.3f\n", N, k + 1, N / t[0], N / t[1]);
        fflush(stdout);
    }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
