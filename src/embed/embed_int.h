/* embed/embed_int.h: what the embed module's files share, and what tests reach into: the
 * WordPiece vocabulary and the encoder's weights. Not for other modules. */
#ifndef HEARTH_EMBED_INT_H
#define HEARTH_EMBED_INT_H

#include "embed/embed.h"

#include <stddef.h>
#include <stdint.h>

/* ---- WordPiece (wordpiece.c) */

typedef struct embed_wp {
    char *arena;     /* every token's text, NUL-terminated, back to back */
    size_t *off;     /* (n) token id -> offset in arena */
    size_t n;        /* vocabulary size */
    uint32_t *slots; /* open-addressing hash: id + 1, 0 = empty */
    size_t n_slots;  /* a power of two, at least 2n */
    int lowercase;   /* BertNormalizer's options (Hugging Face's names) */
    int strip_accents;
    int chinese_chars;
    int clean_text;
    int max_chars; /* max_input_chars_per_word: a longer word is [UNK] */
    int32_t cls, sep, unk;
    char prefix[16]; /* continuing_subword_prefix, "##" */
    /* Special tokens matched in the raw text before normalization (tokenizer.json's
     * added_tokens that are special): ids into the vocabulary. */
    int32_t *specials;
    size_t n_specials;
} embed_wp;

/* Adds the vocabulary from tokens in id order (n of them; lens NULL: NUL-terminated). */
int embed_wp_build(embed_wp *w, const char *const *tok, const size_t *lens, size_t n, base_err *e);
/* After the build: finds [CLS], [SEP], [UNK] by text (missing ones are BASE_EFORMAT). */
int embed_wp_find_specials(embed_wp *w, const char *what, base_err *e);
void embed_wp_free(embed_wp *w);
/* The id of token text (n bytes), or -1. */
int32_t embed_wp_lookup(const embed_wp *w, const char *s, size_t n);
/* Appends the ids of text (no [CLS]/[SEP]) to *ids (count *n, capacity *cap, base_grow). */
int embed_wp_encode(const embed_wp *w, const char *text, size_t len, int32_t **ids, size_t *n,
                    size_t *cap, base_err *e);
/* Reads vocab.txt (one token per line, id = line number). */
int embed_wp_load_vocab_txt(embed_wp *w, const char *path, base_err *e);
/* Reads tokenizer.json: its WordPiece model's vocabulary and its BertNormalizer's options. */
int embed_wp_load_tokenizer_json(embed_wp *w, const char *path, base_err *e);

/* ---- the encoder (model.c, forward.c) */

/* A matrix (rows, cols) stored in a ggml type (quant's ids): rows of cols elements. */
typedef struct embed_mat {
    const void *data;
    int type;
    int rows, cols;
} embed_mat;

typedef struct embed_layer {
    embed_mat q, k, v, o, up, down; /* (C,C) x4, (F,C), (C,F) */
    const float *qb, *kb, *vb, *ob, *upb, *downb;
    const float *ln1_w, *ln1_b; /* after attention: attention.output.LayerNorm */
    const float *ln2_w, *ln2_b; /* after the FFN: output.LayerNorm */
} embed_layer;

typedef enum { EMBED_GELU_ERF = 0, EMBED_GELU_TANH = 1 } embed_act;

struct embed_model {
    char name[256];
    int n_layer, C, NH, F, V, n_pos, n_types, max_tokens;
    float eps;
    embed_pooling pooling;
    embed_act act;
    embed_mat tok_emb, pos_emb, type_emb; /* (V,C), (n_pos,C), (n_types,C) */
    const float *emb_ln_w, *emb_ln_b;
    embed_layer *layers;
    embed_wp wp;
    /* what the weights live in: a mapped GGUF file, or float copies of a safetensors file */
    void *gguf;     /* gguf_file* */
    float *owned;   /* F32 weights converted at load (safetensors; small GGUF vectors) */
    float *widened; /* GGUF F16 / BF16 matrices widened to F32 at load (see model.c) */
};

/* Loaders (model.c): fill m (zeroed) from a GGUF file / a Hugging Face directory. */
int embed_load_gguf(embed_model *m, const char *path, base_err *e);
int embed_load_hf(embed_model *m, const char *dir, base_err *e);

/* Runs the encoder over n sequences (ids[i], lens[i] tokens, already checked) and writes the
 * pooled, L2-normalized vectors to out (n, C). */
int embed_forward(const embed_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                  float *out, base_err *e);

#endif
