/* tools/llama_ref.h: what the reference tools on libllama share (tools/llama_logits.c,
 * tools/llama_lora_greedy.c; bench/peers/llama_lora_ab.c takes the log filter; not part of
 * hearth's build): the model and a one-thread context with llama.cpp's defaults (F16 KV cache),
 * and one token through llama_decode at a time, as llama-cli's generation feeds it. Static
 * inline, so a user takes what it needs without unused-function warnings. */
#ifndef HEARTH_TOOLS_LLAMA_REF_H
#define HEARTH_TOOLS_LLAMA_REF_H

#include "llama.h"

#include <stdio.h>

static inline void llama_ref_quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/* The model at path and a context of n_ctx positions on one thread; NULL after saying why. */
static inline struct llama_context *llama_ref_open(const char *path, int n_ctx,
                                                   struct llama_model **model) {
    llama_log_set(llama_ref_quiet, NULL);
    llama_backend_init();
    *model = llama_model_load_from_file(path, llama_model_default_params());
    if (!*model) {
        fprintf(stderr, "%s: cannot load\n", path);
        return NULL;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(*model, cp);
    if (!ctx) fprintf(stderr, "cannot make a context\n");
    return ctx;
}

/* Token tok at position pos through the model (b: a batch of one); its logits, or NULL after
 * saying why. */
static inline const float *llama_ref_step(struct llama_context *ctx, struct llama_batch *b,
                                          llama_token tok, int pos) {
    b->n_tokens = 1;
    b->token[0] = tok;
    b->pos[0] = pos;
    b->n_seq_id[0] = 1;
    b->seq_id[0][0] = 0;
    b->logits[0] = 1;
    if (llama_decode(ctx, *b)) {
        fprintf(stderr, "llama_decode failed at position %d\n", pos);
        return NULL;
    }
    return llama_get_logits_ith(ctx, 0);
}

#endif
