/* infer/prompt.c: the one way a prompt becomes tokens, for `hearth generate`, `hearth chat`,
 * /v1/completions and /v1/chat/completions alike. */
#include "infer_int.h"

int infer_prompt_encode(infer_model *m, const char *text, size_t len, tok_ids *out, base_err *e) {
    return infer_prompt_encode_vocab(infer_model_vocab(m), infer_model_nn(m) != NULL, text, len,
                                     out, e);
}

int infer_prompt_encode_vocab(tok_vocab *v, int hearth_native, const char *text, size_t len,
                              tok_ids *out, base_err *e) {
    size_t n0 = out->len;
    int rc;
    if (hearth_native) {
        /* a hearth-trained model: its documents started with BOS, or (byte-level BPE, whose
         * vocabulary has none) with the end-of-text token `hearth prepare` puts before each */
        int32_t start = tok_bos_id(v) >= 0 ? tok_bos_id(v) : tok_eot_id(v);
        if (start >= 0 && tok_ids_push(out, start))
            return base_fail(e, BASE_ENOMEM, "out of memory");
        rc = tok_encode(v, text, len, TOK_ENCODE_SPECIAL, out, e);
    } else {
        /* a GGUF model: as llama.cpp's llama_tokenize(text, add_special, parse_special), what
         * llama-cli and llama-server do with a prompt */
        rc = tok_encode(v, text, len, TOK_ENCODE_SPECIAL | TOK_ENCODE_ADD_SPECIAL, out, e);
    }
    if (rc) return rc;
    if (out->len == n0) { /* nothing to start from: the document start */
        int32_t start = tok_bos_id(v) >= 0 ? tok_bos_id(v) : tok_eot_id(v);
        if (start < 0)
            return base_fail(e, BASE_EINVAL,
                             "the prompt is empty and the vocabulary has no BOS or end-of-text "
                             "token to start from");
        if (tok_ids_push(out, start)) return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    return BASE_OK;
}
