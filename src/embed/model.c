/* embed/model.c: loading a BERT encoder — llama.cpp's GGUF `bert` architecture (weights stay in
 * the mapped file in their stored type; small vectors converted to F32) or a Hugging Face
 * directory (config.json, model.safetensors in F32, vocab.txt or tokenizer.json, and
 * sentence-transformers' pooling and max_seq_length files) — and the public entry points. */
#include "ckpt/safetensors.h"
#include "embed/embed_int.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- GGUF */

static const gguf_tensor *gg_find(const gguf_file *g, const char *name) {
    size_t n = gguf_n_tensors(g), l = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->name.len == l && !memcmp(t->name.ptr, name, l)) return t;
    }
    return NULL;
}

/* The tensor's data with (rows, cols) checked (cols = dims[0]), any supported type. */
static int gg_mat(const gguf_file *g, const char *path, const char *name, int rows, int cols,
                  embed_mat *out, base_err *e) {
    const gguf_tensor *t = gg_find(g, name);
    if (!t) return base_fail(e, BASE_EFORMAT, "%s: tensor %s is missing", path, name);
    uint64_t r = t->n_dims > 1 ? t->dims[1] : 1;
    if (t->n_dims > 2 || t->dims[0] != (uint64_t)cols || r != (uint64_t)rows)
        return base_fail(e, BASE_EFORMAT, "%s: tensor %s is [%llu, %llu], expected [%d, %d]", path,
                         name, (unsigned long long)t->dims[0], (unsigned long long)r, cols, rows);
    if (!quant_type_supported((int)t->type))
        return base_fail(e, BASE_EFORMAT, "%s: tensor %s has type %s, which hearth cannot compute",
                         path, name, quant_type_name((int)t->type));
    size_t rb, nb;
    int rc = quant_row_bytes((int)t->type, (size_t)cols, &rb, e);
    if (rc) return base_fail(e, BASE_EFORMAT, "%s: tensor %s: %s", path, name, e ? e->msg : "");
    uint64_t avail = gguf_size(g) - gguf_data_offset(g);
    if (base_mul_size(rb, (size_t)rows, &nb) || t->offset > avail || nb > avail - t->offset)
        return base_fail(e, BASE_EFORMAT, "%s: tensor %s runs past the end of the file", path,
                         name);
    out->data = gguf_data(g) + gguf_data_offset(g) + t->offset;
    out->type = (int)t->type;
    out->rows = rows;
    out->cols = cols;
    return BASE_OK;
}

/* A vector of n values as F32: the file's bytes when stored F32, else converted into *pool. */
static int gg_vec(const gguf_file *g, const char *path, const char *name, int n, float **pool,
                  const float **out, base_err *e) {
    embed_mat m;
    int rc = gg_mat(g, path, name, 1, n, &m, e);
    if (rc) return rc;
    if (m.type == QUANT_F32 && ((uintptr_t)m.data & 3) == 0) {
        *out = m.data;
        return BASE_OK;
    }
    quant_dequantize_row(m.type, m.data, *pool, (size_t)n);
    *out = *pool;
    *pool += n;
    return BASE_OK;
}

static int gg_int(const gguf_file *g, const char *path, const char *key, int lo, int hi, int *out,
                  base_err *e) {
    int64_t v;
    int rc = gguf_get_int(g, key, &v, e);
    if (rc) return base_fail(e, rc, "%s: %s", path, e ? e->msg : "");
    if (v < lo || v > hi)
        return base_fail(e, BASE_EFORMAT, "%s: %s = %lld is outside %d..%d", path, key,
                         (long long)v, lo, hi);
    *out = (int)v;
    return BASE_OK;
}

/* tokenizer.ggml.tokens as llama.cpp's converter writes BERT's vocabulary ("phantom space": a
 * word-initial piece gets U+2581 in front, a "##" continuation loses its "##", "[X]" stays)
 * back into WordPiece's spelling. Cased vocabularies (many capitals) are not lower-cased. */
static int gg_vocab(const gguf_file *g, const char *path, embed_wp *w, base_err *e) {
    gguf_str model;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, e) || model.len != 4 ||
        memcmp(model.ptr, "bert", 4))
        return base_fail(e, BASE_EFORMAT, "%s: tokenizer.ggml.model is not \"bert\" (WordPiece)",
                         path);
    int64_t idx;
    uint32_t et;
    uint64_t n;
    int rc = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &idx, &et, &n, e);
    if (rc) return base_fail(e, rc, "%s: %s", path, e ? e->msg : "");
    if (n == 0 || n > (1u << 24))
        return base_fail(e, BASE_EFORMAT, "%s: %llu tokens", path, (unsigned long long)n);
    char **tok = calloc(n, sizeof *tok);
    size_t *lens = calloc(n, sizeof *lens), caps = 0, upper = 0;
    if (!tok || !lens) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    for (uint64_t i = 0; !rc && i < n; i++) {
        gguf_str s = gguf_arr_str(g, idx, i);
        if (s.len > 1024) {
            rc = base_fail(e, BASE_EFORMAT, "%s: token %llu is %llu bytes", path,
                           (unsigned long long)i, (unsigned long long)s.len);
            break;
        }
        tok[i] = malloc(s.len + 3);
        if (!tok[i]) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        if (s.len >= 3 && !memcmp(s.ptr, "\xE2\x96\x81", 3)) { /* U+2581: word start */
            memcpy(tok[i], s.ptr + 3, s.len - 3);
            lens[i] = s.len - 3;
        } else if (s.len >= 2 && s.ptr[0] == '[' && s.ptr[s.len - 1] == ']') {
            memcpy(tok[i], s.ptr, s.len);
            lens[i] = s.len;
        } else {
            memcpy(tok[i], "##", 2);
            memcpy(tok[i] + 2, s.ptr, s.len);
            lens[i] = s.len + 2;
        }
        for (size_t k = 0; k < lens[i]; k++) upper += tok[i][k] >= 'A' && tok[i][k] <= 'Z';
        caps += lens[i];
    }
    if (!rc) rc = embed_wp_build(w, (const char *const *)tok, lens, n, e);
    if (!rc && upper * 50 > caps) w->lowercase = w->strip_accents = 0;
    for (uint64_t i = 0; tok && i < n; i++) free(tok[i]);
    free(tok);
    free(lens);
    if (rc) return rc;
    return embed_wp_find_specials(w, path, e);
}

/* F16 and BF16 matrices are widened to F32 once, at load: an embedding model is small (22M to
 * 335M parameters) and its products, over every token of a batch, are compute-bound, where
 * OpenBLAS's sgemm runs about three times as fast as the half-precision dot products (the cost:
 * twice the matrices' memory). The quantized types keep their blocks (quant_matmul). */
static int widen_halves(embed_model *m, base_err *e) {
    size_t total = 0;
    for (int l = 0; l < m->n_layer; l++) {
        embed_layer *y = &m->layers[l];
        embed_mat *ms[] = {&y->q, &y->k, &y->v, &y->o, &y->up, &y->down};
        for (int i = 0; i < 6; i++)
            if (ms[i]->type == QUANT_F16 || ms[i]->type == QUANT_BF16)
                total += (size_t)ms[i]->rows * (size_t)ms[i]->cols;
    }
    if (!total) return BASE_OK;
    if (!(m->widened = base_alloc_floats(total)))
        return base_fail(e, BASE_ENOMEM, "out of memory widening %zu half-precision weights",
                         total);
    float *p = m->widened;
    for (int l = 0; l < m->n_layer; l++) {
        embed_layer *y = &m->layers[l];
        embed_mat *ms[] = {&y->q, &y->k, &y->v, &y->o, &y->up, &y->down};
        for (int i = 0; i < 6; i++) {
            if (ms[i]->type != QUANT_F16 && ms[i]->type != QUANT_BF16) continue;
            size_t n = (size_t)ms[i]->rows * (size_t)ms[i]->cols;
            quant_dequantize_row(ms[i]->type, ms[i]->data, p, n);
            ms[i]->data = p;
            ms[i]->type = QUANT_F32;
            p += n;
        }
    }
    return BASE_OK;
}

int embed_load_gguf(embed_model *m, const char *path, base_err *e) {
    gguf_file *g;
    int rc = gguf_open(path, &g, e);
    if (rc) return rc;
    m->gguf = g;
    gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch, e) || arch.len != 4 ||
        memcmp(arch.ptr, "bert", 4))
        return base_fail(e, BASE_EFORMAT,
                         "%s: not a BERT embedding model (general.architecture is %.*s; hearth "
                         "embeds with \"bert\")",
                         path, arch.ptr ? (int)(arch.len > 64 ? 64 : arch.len) : 7,
                         arch.ptr ? arch.ptr : "missing");
    gguf_str name;
    if (!gguf_get_str(g, "general.name", &name, NULL) && name.len && name.len < sizeof m->name) {
        memcpy(m->name, name.ptr, name.len);
        m->name[name.len] = 0;
    }
    if ((rc = gg_int(g, path, "bert.embedding_length", 1, 1 << 16, &m->C, e)) ||
        (rc = gg_int(g, path, "bert.block_count", 1, 1024, &m->n_layer, e)) ||
        (rc = gg_int(g, path, "bert.feed_forward_length", 1, 1 << 20, &m->F, e)) ||
        (rc = gg_int(g, path, "bert.attention.head_count", 1, 1024, &m->NH, e)) ||
        (rc = gg_int(g, path, "bert.context_length", 2, 1 << 20, &m->n_pos, e)))
        return rc;
    if (m->C % m->NH)
        return base_fail(e, BASE_EFORMAT, "%s: %d heads do not divide the width %d", path, m->NH,
                         m->C);
    double eps = 1e-12;
    if (gguf_find(g, "bert.attention.layer_norm_epsilon") >= 0 &&
        (rc = gguf_get_float(g, "bert.attention.layer_norm_epsilon", &eps, e)))
        return rc;
    m->eps = (float)eps;
    int pt = EMBED_POOL_MEAN;
    if (gguf_find(g, "bert.pooling_type") >= 0 &&
        (rc = gg_int(g, path, "bert.pooling_type", 0, 4, &pt, e)))
        return rc;
    if (pt == 4)
        return base_fail(e, BASE_EFORMAT,
                         "%s: pooling type 4 (rank: a reranker) is not an "
                         "embedding model",
                         path);
    m->pooling = pt == EMBED_POOL_NONE ? EMBED_POOL_MEAN : (embed_pooling)pt;
    m->act = EMBED_GELU_TANH; /* llama.cpp's ggml_gelu, which the file was made for */
    if ((rc = gg_vocab(g, path, &m->wp, e))) return rc;
    m->V = (int)m->wp.n;
    m->max_tokens = m->n_pos;
    const gguf_tensor *tt = gg_find(g, "token_types.weight");
    m->n_types =
        tt && tt->n_dims == 2 && tt->dims[1] >= 1 && tt->dims[1] < 1024 ? (int)tt->dims[1] : 1;
    int C = m->C, F = m->F, L = m->n_layer;
    if ((rc = gg_mat(g, path, "token_embd.weight", m->V, C, &m->tok_emb, e)) ||
        (rc = gg_mat(g, path, "position_embd.weight", m->n_pos, C, &m->pos_emb, e)) ||
        (rc = gg_mat(g, path, "token_types.weight", m->n_types, C, &m->type_emb, e)))
        return rc;
    /* every vector might need converting: 2C + L (4C + 4C + F + C) floats at most */
    size_t nvec = (size_t)2 * C + (size_t)L * ((size_t)9 * C + (size_t)F);
    m->owned = base_alloc_floats(nvec);
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->owned || !m->layers) return base_fail(e, BASE_ENOMEM, "out of memory");
    float *pool = m->owned;
    if ((rc = gg_vec(g, path, "token_embd_norm.weight", C, &pool, &m->emb_ln_w, e)) ||
        (rc = gg_vec(g, path, "token_embd_norm.bias", C, &pool, &m->emb_ln_b, e)))
        return rc;
    for (int l = 0; l < L; l++) {
        embed_layer *y = &m->layers[l];
        struct {
            const char *n;
            embed_mat *w;
            const float **b;
            int rows, cols;
        } mats[] = {{"attn_q", &y->q, &y->qb, C, C},   {"attn_k", &y->k, &y->kb, C, C},
                    {"attn_v", &y->v, &y->vb, C, C},   {"attn_output", &y->o, &y->ob, C, C},
                    {"ffn_up", &y->up, &y->upb, F, C}, {"ffn_down", &y->down, &y->downb, C, F}};
        char nm[96];
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[i].n);
            if ((rc = gg_mat(g, path, nm, mats[i].rows, mats[i].cols, mats[i].w, e))) return rc;
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, mats[i].n);
            if ((rc = gg_vec(g, path, nm, mats[i].rows, &pool, mats[i].b, e))) return rc;
        }
        struct {
            const char *n;
            const float **p;
        } vecs[] = {{"attn_output_norm.weight", &y->ln1_w},
                    {"attn_output_norm.bias", &y->ln1_b},
                    {"layer_output_norm.weight", &y->ln2_w},
                    {"layer_output_norm.bias", &y->ln2_b}};
        for (size_t i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s", l, vecs[i].n);
            if ((rc = gg_vec(g, path, nm, C, &pool, vecs[i].p, e))) return rc;
        }
    }
    return widen_halves(m, e);
}

/* ---- Hugging Face directories */

static int hf_int(json_t *cfg, const char *path, const char *key, int dflt, int lo, int hi,
                  int *out, base_err *e) {
    json_t *v = json_object_get(cfg, key);
    if (!v) {
        if (dflt < 0) return base_fail(e, BASE_EFORMAT, "%s: \"%s\" is missing", path, key);
        *out = dflt;
        return BASE_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return base_fail(e, BASE_EFORMAT, "%s: \"%s\" must be an integer in %d..%d", path, key, lo,
                         hi);
    *out = (int)json_integer_value(v);
    return BASE_OK;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* One F32 tensor of the given shape ("bert." prefix optional) copied into *pool. */
static int hf_take(const ckpt_st *st, const char *path, const char *name, int ndim, int d0, int d1,
                   float **pool, const float **out, base_err *e) {
    char full[160];
    snprintf(full, sizeof full, "%s", name);
    if (!ckpt_st_find(st, full)) snprintf(full, sizeof full, "bert.%s", name);
    if (!ckpt_st_find(st, full))
        return base_fail(e, BASE_EFORMAT, "%s: tensor %s is missing", path, name);
    uint64_t shape[2] = {(uint64_t)d0, (uint64_t)d1};
    int rc = ckpt_st_get_f32(st, full, ndim, shape, *pool, e);
    if (rc) return rc;
    *out = *pool;
    *pool += (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    return BASE_OK;
}

int embed_load_hf(embed_model *m, const char *dir, base_err *e) {
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(p, JSON_REJECT_DUPLICATES, &je), *aux = NULL;
    if (!cfg)
        return base_fail(e, file_exists(p) ? BASE_EFORMAT : BASE_EIO, "%s: %s", p,
                         file_exists(p) ? je.text : "no config.json in the directory");
    int rc = BASE_OK;
    ckpt_st *st = NULL;
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt && strcmp(mt, "bert")) {
        rc = base_fail(e, BASE_EFORMAT, "%s: model_type \"%s\" is not supported (\"bert\" is)", p,
                       mt);
        goto done;
    }
    if ((rc = hf_int(cfg, p, "hidden_size", -1, 1, 1 << 16, &m->C, e)) ||
        (rc = hf_int(cfg, p, "num_hidden_layers", -1, 1, 1024, &m->n_layer, e)) ||
        (rc = hf_int(cfg, p, "num_attention_heads", -1, 1, 1024, &m->NH, e)) ||
        (rc = hf_int(cfg, p, "intermediate_size", -1, 1, 1 << 20, &m->F, e)) ||
        (rc = hf_int(cfg, p, "max_position_embeddings", 512, 2, 1 << 20, &m->n_pos, e)) ||
        (rc = hf_int(cfg, p, "type_vocab_size", 2, 1, 1024, &m->n_types, e)) ||
        (rc = hf_int(cfg, p, "vocab_size", -1, 1, 1 << 24, &m->V, e)))
        goto done;
    if (m->C % m->NH) {
        rc =
            base_fail(e, BASE_EFORMAT, "%s: %d heads do not divide hidden_size %d", p, m->NH, m->C);
        goto done;
    }
    json_t *eps = json_object_get(cfg, "layer_norm_eps");
    m->eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-12f;
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (!act || !strcmp(act, "gelu"))
        m->act = EMBED_GELU_ERF;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh"))
        m->act = EMBED_GELU_TANH;
    else {
        rc = base_fail(e, BASE_EFORMAT, "%s: hidden_act \"%s\" is not supported (gelu is)", p, act);
        goto done;
    }
    const char *pet = json_string_value(json_object_get(cfg, "position_embedding_type"));
    if (pet && strcmp(pet, "absolute")) {
        rc = base_fail(e, BASE_EFORMAT, "%s: position_embedding_type \"%s\" is not supported", p,
                       pet);
        goto done;
    }
    /* the tokenizer: tokenizer.json, else vocab.txt with tokenizer_config.json's options */
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (file_exists(p)) {
        rc = embed_wp_load_tokenizer_json(&m->wp, p, e);
    } else {
        snprintf(p, sizeof p, "%s/vocab.txt", dir);
        if (!file_exists(p)) {
            rc = base_fail(e, BASE_EIO, "%s: neither tokenizer.json nor vocab.txt", dir);
            goto done;
        }
        rc = embed_wp_load_vocab_txt(&m->wp, p, e);
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        if (!rc && (aux = json_load_file(p, 0, &je))) {
            json_t *lc = json_object_get(aux, "do_lower_case"),
                   *sa = json_object_get(aux, "strip_accents"),
                   *cj = json_object_get(aux, "tokenize_chinese_chars");
            if (json_is_boolean(lc)) m->wp.lowercase = json_is_true(lc);
            m->wp.strip_accents = json_is_boolean(sa) ? json_is_true(sa) : m->wp.lowercase;
            if (json_is_boolean(cj)) m->wp.chinese_chars = json_is_true(cj);
            json_decref(aux);
            aux = NULL;
        }
    }
    if (rc || (rc = embed_wp_find_specials(&m->wp, dir, e))) goto done;
    if (m->wp.n > (size_t)m->V) {
        rc = base_fail(e, BASE_EFORMAT, "%s: the tokenizer has %zu tokens, vocab_size is %d", dir,
                       m->wp.n, m->V);
        goto done;
    }
    m->max_tokens = m->n_pos;
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", dir);
    if ((aux = json_load_file(p, 0, &je))) {
        json_t *ms = json_object_get(aux, "max_seq_length");
        if (json_is_integer(ms) && json_integer_value(ms) >= 2 &&
            json_integer_value(ms) < m->max_tokens)
            m->max_tokens = (int)json_integer_value(ms);
        json_decref(aux);
    }
    m->pooling = EMBED_POOL_MEAN;
    snprintf(p, sizeof p, "%s/1_Pooling/config.json", dir);
    if ((aux = json_load_file(p, 0, &je))) {
        if (json_is_true(json_object_get(aux, "pooling_mode_cls_token")))
            m->pooling = EMBED_POOL_CLS;
        else if (json_is_true(json_object_get(aux, "pooling_mode_lasttoken")))
            m->pooling = EMBED_POOL_LAST;
        else if (!json_is_true(json_object_get(aux, "pooling_mode_mean_tokens")))
            rc = base_fail(e, BASE_EFORMAT,
                           "%s: only mean, CLS and last-token pooling are "
                           "supported",
                           p);
        json_decref(aux);
        aux = NULL;
        if (rc) goto done;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if ((rc = ckpt_st_open(&st, p, e))) goto done;
    int C = m->C, F = m->F, L = m->n_layer;
    size_t total = (size_t)m->V * C + (size_t)m->n_pos * C + (size_t)m->n_types * C + 2 * C +
                   (size_t)L * ((size_t)4 * C * C + 2 * (size_t)C * F + 9 * (size_t)C + F);
    m->owned = base_alloc_floats(total);
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->owned || !m->layers) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory (%zu weights)", total);
        goto done;
    }
    float *pool = m->owned;
    const float *w;
#define TAKE(name, nd, a, b, dst)                                                                  \
    if ((rc = hf_take(st, p, name, nd, a, b, &pool, &w, e))) goto done;                            \
    dst = w
#define TAKE_MAT(name, r, c, mat)                                                                  \
    TAKE(name, 2, r, c, (mat).data);                                                               \
    (mat).type = QUANT_F32;                                                                        \
    (mat).rows = r;                                                                                \
    (mat).cols = c
    TAKE_MAT("embeddings.word_embeddings.weight", m->V, C, m->tok_emb);
    TAKE_MAT("embeddings.position_embeddings.weight", m->n_pos, C, m->pos_emb);
    TAKE_MAT("embeddings.token_type_embeddings.weight", m->n_types, C, m->type_emb);
    TAKE("embeddings.LayerNorm.weight", 1, C, 0, m->emb_ln_w);
    TAKE("embeddings.LayerNorm.bias", 1, C, 0, m->emb_ln_b);
    char nm[160], nb[160];
    for (int l = 0; l < L; l++) {
        embed_layer *y = &m->layers[l];
        struct {
            const char *n;
            embed_mat *w;
            const float **b;
            int rows, cols;
        } mats[] = {{"attention.self.query", &y->q, &y->qb, C, C},
                    {"attention.self.key", &y->k, &y->kb, C, C},
                    {"attention.self.value", &y->v, &y->vb, C, C},
                    {"attention.output.dense", &y->o, &y->ob, C, C},
                    {"intermediate.dense", &y->up, &y->upb, F, C},
                    {"output.dense", &y->down, &y->downb, C, F}};
        for (size_t i = 0; i < 6; i++) {
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.weight", l, mats[i].n);
            snprintf(nb, sizeof nb, "encoder.layer.%d.%s.bias", l, mats[i].n);
            TAKE_MAT(nm, mats[i].rows, mats[i].cols, *mats[i].w);
            TAKE(nb, 1, mats[i].rows, 0, *mats[i].b);
        }
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        TAKE(nm, 1, C, 0, y->ln1_w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        TAKE(nm, 1, C, 0, y->ln1_b);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.weight", l);
        TAKE(nm, 1, C, 0, y->ln2_w);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.bias", l);
        TAKE(nm, 1, C, 0, y->ln2_b);
    }
#undef TAKE_MAT
#undef TAKE
done:
    ckpt_st_free(st);
    json_decref(cfg);
    json_decref(aux);
    return rc;
}

/* ---- the public entry points */

int embed_model_load(embed_model **out, const char *path, base_err *e) {
    *out = NULL;
    base_file_kind k;
    int rc = base_file_kind_of(path, &k, e);
    if (rc) return rc;
    embed_model *m = calloc(1, sizeof *m);
    if (!m) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (k == BASE_FILE_GGUF)
        rc = embed_load_gguf(m, path, e);
    else if (k == BASE_FILE_DIR)
        rc = embed_load_hf(m, path, e);
    else
        rc = base_fail(e, BASE_EFORMAT,
                       "%s is %s, not an embedding model (a GGUF bert file or a Hugging Face "
                       "directory with config.json and model.safetensors)",
                       path, base_file_kind_name(k));
    if (!rc && m->wp.n > (size_t)m->V)
        rc = base_fail(e, BASE_EFORMAT, "%s: %zu tokens but %d token embeddings", path, m->wp.n,
                       m->V);
    if (!rc && m->max_tokens > m->n_pos) m->max_tokens = m->n_pos;
    if (rc) {
        embed_model_free(m);
        return rc;
    }
    if (!m->name[0]) {
        const char *b = path + strlen(path);
        while (b > path && b[-1] == '/') b--;
        const char *end = b;
        while (b > path && b[-1] != '/') b--;
        snprintf(m->name, sizeof m->name, "%.*s", (int)(end - b), b);
    }
    *out = m;
    return BASE_OK;
}

void embed_model_free(embed_model *m) {
    if (!m) return;
    embed_wp_free(&m->wp);
    free(m->layers);
    free(m->owned);
    free(m->widened);
    gguf_close(m->gguf);
    free(m);
}

int embed_dim(const embed_model *m) {
    return m->C;
}
int embed_max_tokens(const embed_model *m) {
    return m->max_tokens;
}
embed_pooling embed_pooling_of(const embed_model *m) {
    return m->pooling;
}
const char *embed_model_name(const embed_model *m) {
    return m->name;
}
int embed_vocab_size(const embed_model *m) {
    return (int)m->wp.n;
}

int embed_tokenize(const embed_model *m, const char *text, size_t len, int truncate, int32_t **ids,
                   size_t *n, base_err *e) {
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    int32_t *v = NULL;
    size_t nv = 0;
    int rc = BASE_OK;
    if (base_grow(&v, &cap, 2, sizeof *v, SIZE_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    v[nv++] = m->wp.cls;
    rc = embed_wp_encode(&m->wp, text, len, &v, &nv, &cap, e);
    if (!rc && base_grow(&v, &cap, nv + 1, sizeof *v, SIZE_MAX))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (rc) {
        free(v);
        return rc;
    }
    if (truncate && nv + 1 > (size_t)m->max_tokens) nv = (size_t)m->max_tokens - 1;
    v[nv++] = m->wp.sep;
    *ids = v;
    *n = nv;
    return BASE_OK;
}

int embed_count_tokens(const embed_model *m, const char *text, size_t len, size_t *n, base_err *e) {
    int32_t *ids;
    int rc = embed_tokenize(m, text, len, 0, &ids, n, e);
    free(ids);
    return rc;
}

int embed_texts(const embed_model *m, const char *const *texts, const size_t *lens, size_t n,
                int truncate, float *out, base_err *e) {
    if (n == 0) return BASE_OK;
    int32_t **ids = calloc(n, sizeof *ids);
    size_t *nid = calloc(n, sizeof *nid);
    int rc = !ids || !nid ? base_fail(e, BASE_ENOMEM, "out of memory") : BASE_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        size_t l = lens ? lens[i] : strlen(texts[i]);
        rc = embed_tokenize(m, texts[i], l, truncate, &ids[i], &nid[i], e);
        if (!rc && nid[i] > (size_t)m->max_tokens)
            rc = base_fail(e, BASE_EINVAL, "input %zu has %zu tokens; the model takes at most %d",
                           i, nid[i], m->max_tokens);
    }
    if (!rc) rc = embed_forward(m, (const int32_t *const *)ids, nid, n, out, e);
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(nid);
    return rc;
}

int embed_tokens(const embed_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                 float *out, base_err *e) {
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > (size_t)m->max_tokens)
            return base_fail(e, BASE_EINVAL, "input %zu has %zu tokens; the model takes 1..%d", i,
                             lens[i], m->max_tokens);
        for (size_t j = 0; j < lens[i]; j++)
            if (ids[i][j] < 0 || (size_t)ids[i][j] >= m->wp.n)
                return base_fail(e, BASE_EINVAL,
                                 "input %zu: token %zu is %d, outside the vocabulary (0..%zu)", i,
                                 j, (int)ids[i][j], m->wp.n - 1);
    }
    if (n == 0) return BASE_OK;
    return embed_forward(m, ids, lens, n, out, e);
}
