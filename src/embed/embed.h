/* embed/embed.h: text -> vectors with BERT-family encoders (all-MiniLM, bge, e5, gte): the
 * WordPiece tokenizer (Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece), the
 * encoder (token, position and type embeddings, post-norm layers, GELU), mean or CLS pooling
 * as the model says, and L2 normalization.
 *
 * A model is loaded from llama.cpp's GGUF `bert` architecture (F32, F16, BF16 or quantized
 * matrices, products through src/quant) or from a Hugging Face directory (config.json +
 * model.safetensors + vocab.txt or tokenizer.json; sentence-transformers' 1_Pooling/config.json
 * and sentence_bert_config.json when present).
 *
 * Ownership and threads: an embed_model is read-only once loaded; every function below may be
 * called on one model from several threads at once (each call allocates its own scratch). The
 * products run on OpenMP threads (tensor_set_threads). Returned arrays are malloc'd and owned
 * by the caller. */
#ifndef HEARTH_EMBED_H
#define HEARTH_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct embed_model embed_model;

typedef enum {
    EMBED_POOL_NONE = 0, /* llama.cpp's numbering (bert.pooling_type) */
    EMBED_POOL_MEAN = 1,
    EMBED_POOL_CLS = 2,
    EMBED_POOL_LAST = 3,
} embed_pooling;

/* Loads path: a GGUF file (general.architecture "bert") or a Hugging Face model directory.
 * BASE_EFORMAT / BASE_EIO / BASE_EINVAL with a message naming the file and what is wrong. */
int embed_model_load(embed_model **out, const char *path, base_err *e);
void embed_model_free(embed_model *m); /* NULL is fine */

/* The vector's length (hidden size). */
int embed_dim(const embed_model *m);
/* The most tokens one input may have, [CLS] and [SEP] included (the position table's length,
 * or sentence-transformers' max_seq_length when smaller). */
int embed_max_tokens(const embed_model *m);
/* How the token vectors become one vector (NONE is read as MEAN: one vector per text). */
embed_pooling embed_pooling_of(const embed_model *m);
/* A name for the model: general.name, or the directory's or file's base name. Valid while m. */
const char *embed_model_name(const embed_model *m);
/* The vocabulary's size: token ids given to embed_tokens must be below it. */
int embed_vocab_size(const embed_model *m);

/* The token ids of text (len bytes, any bytes: invalid UTF-8 is read as U+FFFD and dropped as
 * the normalizer drops it), [CLS] first and [SEP] last. truncate: keep at most
 * embed_max_tokens ids ([SEP] kept last); 0: all of them. *ids malloc'd (caller frees), *n its
 * count (at least 2). */
int embed_tokenize(const embed_model *m, const char *text, size_t len, int truncate, int32_t **ids,
                   size_t *n, base_err *e);
/* The number of ids embed_tokenize gives without truncation ([CLS] and [SEP] counted). */
int embed_count_tokens(const embed_model *m, const char *text, size_t len, size_t *n, base_err *e);

/* Embeds n texts (texts[i] of lens[i] bytes; lens NULL: NUL-terminated) into out (n *
 * embed_dim floats, row i for text i), each vector L2-normalized. truncate: inputs longer than
 * embed_max_tokens are cut there; 0: such an input is BASE_EINVAL naming its index and count.
 * Texts of different lengths are batched together (no padding: attention stays within each
 * text). n == 0 does nothing. */
int embed_texts(const embed_model *m, const char *const *texts, const size_t *lens, size_t n,
                int truncate, float *out, base_err *e);
/* The same for inputs already tokenized: ids[i] (lens[i] ids, used as given: no [CLS]/[SEP]
 * added), each 1..embed_max_tokens long with every id below embed_vocab_size, else BASE_EINVAL
 * naming the input. */
int embed_tokens(const embed_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                 float *out, base_err *e);

#endif
