/* cli/cmd_export_gguf.c: `hearth export --format gguf` — a model and its tokenizer as one GGUF
 * file that llama.cpp runs (architectures gpt2 and llama, F32). The model comes through the
 * inference loader, so a run, a checkpoint or an exported safetensors file all work. */
#include "ckpt/gguf_model.h"
#include "cli.h"
#include "infer/infer.h"

#include <stdio.h>
#include <stdlib.h>

int cli_export_gguf(const char *src, const char *tokenizer, const char *out) {
    base_err e = {0};
    infer_model *m = NULL;
    gguf_writer *w = NULL;
    float *scratch = NULL;
    int rc = infer_model_load(&m, src, tokenizer, &e);
    if (!rc && !infer_model_nn(m))
        rc = base_fail(&e, BASE_EINVAL,
                       "%s is a GGUF file already (its weights are read in their stored types, "
                       "not as hearth's F32 parameters)",
                       src);
    if (!rc) rc = gguf_writer_create(&w, &e);
    if (!rc) rc = ckpt_gguf_add_model(w, infer_model_nn(m), infer_model_name(m), &scratch, &e);
    if (!rc) rc = tok_gguf_set(infer_model_vocab(m), w, &e);
    if (!rc) rc = gguf_writer_save(w, out, &e);
    if (rc)
        fprintf(stderr, "hearth: export: %s\n", e.msg);
    else
        printf("exported %s -> %s (GGUF, architecture %s, F32, with its tokenizer)\n",
               infer_model_source(m), out, infer_model_family(m) == NN_LLAMA ? "llama" : "gpt2");
    free(scratch);
    gguf_writer_free(w);
    infer_model_free(m);
    return rc ? 1 : 0;
}
