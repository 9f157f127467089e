/* cli/cmd_export_gguf.c: `hearth export --format gguf [--type T]` (and `hearth quantize` of a
 * run or safetensors file) — a model and its tokenizer as one GGUF file that llama.cpp runs
 * (architectures gpt2 and llama), F32 or in one of llama-quantize's file types
 * (ckpt_gguf_quant). The model comes through the inference loader, so a run, a checkpoint or an
 * exported safetensors file all work. */
#include "ckpt/gguf_model.h"
#include "cli.h"
#include "infer/infer.h"

#include <stdio.h>
#include <stdlib.h>

int cli_export_gguf(const char *src, const char *tokenizer, const char *out, const char *type,
                    int pure) {
    base_err e = {0};
    infer_model *m = NULL;
    gguf_writer *w = NULL;
    ckpt_gguf_quant *q = NULL;
    float *scratch = NULL;
    int rc = infer_model_load(&m, src, tokenizer, &e);
    if (!rc && !infer_model_nn(m))
        rc = base_fail(&e, BASE_EINVAL,
                       "%s is a GGUF file already (its weights are read in their stored types, "
                       "not as hearth's F32 parameters)",
                       src);
    if (!rc && type) {
        const nn_config *c = infer_model_config(m);
        rc = ckpt_gguf_quant_create(&q, type, pure, c->family == NN_LLAMA ? c->n_layer : 0,
                                    c->n_layer, c->n_head / c->n_kv_head,
                                    c->family == NN_GPT2 || !c->tied, stderr, &e);
    }
    if (!rc) rc = gguf_writer_create(&w, &e);
    if (!rc) rc = ckpt_gguf_add_model(w, infer_model_nn(m), infer_model_name(m), q, &scratch, &e);
    if (!rc) rc = tok_gguf_set(infer_model_vocab(m), w, &e);
    if (!rc) rc = gguf_writer_save(w, out, &e);
    if (rc) {
        fprintf(stderr, "hearth: %s: %s\n", type ? "quantize" : "export", e.msg);
    } else if (q) {
        ckpt_gguf_quant_stats st = ckpt_gguf_quant_get_stats(q);
        printf("exported %s -> %s (GGUF, architecture %s, %s%s: %zu tensors, %.2f MB -> %.2f "
               "MB%s, with its tokenizer)\n",
               infer_model_source(m), out, infer_model_family(m) == NN_LLAMA ? "llama" : "gpt2",
               ckpt_gguf_quant_name(q), pure ? " pure" : "", st.n_tensors,
               (double)st.in_bytes / 1e6, (double)st.out_bytes / 1e6,
               st.n_fallback ? ", some fell back, named above" : "");
    } else {
        printf("exported %s -> %s (GGUF, architecture %s, F32, with its tokenizer)\n",
               infer_model_source(m), out, infer_model_family(m) == NN_LLAMA ? "llama" : "gpt2");
    }
    free(scratch);
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
    infer_model_free(m);
    return rc ? 1 : 0;
}
