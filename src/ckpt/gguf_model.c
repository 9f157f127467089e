/* ckpt/gguf_model.c: hearth's transformers <-> GGUF (see gguf_model.h). */
#include "ckpt/gguf_model.h"

#include "ckpt_int.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GGML_F32 0
#define GGML_F16 1

void ckpt_rope_rows(float *dst, const float *src, int heads, int HS, size_t row, int to_gguf) {
    for (int r = 0; r < heads * HS; r++) {
        size_t f = (size_t)ckpt_rope_file_row(r, HS);
        memcpy(dst + (to_gguf ? f : (size_t)r) * row, src + (to_gguf ? (size_t)r : f) * row,
               row * sizeof(float));
    }
}

static const char *arch_name(const nn_config *c) {
    return c->family == NN_LLAMA ? "llama" : "gpt2";
}

int ckpt_gguf_add_model(gguf_writer *w, const nn_model *m, const char *name, ckpt_gguf_quant *q,
                        float **scratch, base_err *e) {
    const nn_config *c = &m->cfg;
    const char *a = arch_name(c);
    int HS = c->d_model / c->n_head;
    char k[96];
    *scratch = NULL;
    gguf_set_str(w, "general.architecture", a);
    gguf_set_str(w, "general.name", name);
    gguf_set_u32(w, "general.file_type", q ? ckpt_gguf_quant_file_type(q) : 0);
    if (q && ckpt_gguf_quant_file_type(q) != 0 && ckpt_gguf_quant_file_type(q) != 1 &&
        ckpt_gguf_quant_file_type(q) != 32)
        gguf_set_u32(w, "general.quantization_version", 2);
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_seq);
    gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->d_model);
    gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->d_ff);
    gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
    if (c->family == NN_LLAMA) {
        gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
        gguf_set_f32(w, KEY("rope.freq_base"), c->rope_theta);
        gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)HS);
        gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
    } else {
        gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
    }
#undef KEY
    ckpt_piece *p;
    int n = ckpt_pieces(m, CKPT_NAMES_GGUF, &p);
    if (n < 0) return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t need = 0;
    for (int i = 0; i < n; i++)
        if (p[i].rope_heads) need += (size_t)(p[i].shape[0] * p[i].shape[1]);
    float *s = need ? malloc(need * sizeof(float)) : NULL;
    if (need && !s) {
        free(p);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    size_t used = 0;
    int rc = BASE_OK;
    for (int i = 0; i < n; i++) {
        const float *data = m->params + p[i].offset;
        if (p[i].rope_heads) {
            ckpt_rope_rows(s + used, data, p[i].rope_heads, HS, (size_t)p[i].shape[1], 1);
            data = s + used;
            used += (size_t)(p[i].shape[0] * p[i].shape[1]);
        }
        uint64_t dims[2] = {p[i].ndim == 2 ? p[i].shape[1] : p[i].shape[0], p[i].shape[0]};
        if (!q)
            gguf_add_tensor_f32(w, p[i].name, (uint32_t)p[i].ndim, dims, data);
        else if ((rc = ckpt_gguf_quant_add(q, w, p[i].name, (uint32_t)p[i].ndim, dims, GGML_F32,
                                           data, e)))
            break;
    }
    /* llama.cpp's GPT-2 always reads an output matrix: a tied model repeats the embedding,
     * as llama.cpp's own converter does */
    if (!rc && c->family == NN_GPT2 && c->tied) {
        uint64_t dims[2] = {(uint64_t)c->d_model, (uint64_t)c->vocab_size};
        if (!q)
            gguf_add_tensor_f32(w, "output.weight", 2, dims, m->pt.wte);
        else
            rc = ckpt_gguf_quant_add(q, w, "output.weight", 2, dims, GGML_F32, m->pt.wte, e);
    }
    free(p);
    *scratch = s;
    return rc;
}

/* An optional integer key (absent: def); present, it must be an integer in [1, 2^31). */
static int opt_int(const gguf_file *g, const char *key, int64_t def, int *out, base_err *e) {
    int64_t x = def;
    if (gguf_find(g, key) >= 0 && gguf_get_int(g, key, &x, e)) return BASE_EFORMAT;
    if (x < 1 || x > INT32_MAX)
        return base_fail(e, BASE_EFORMAT, "GGUF: %s = %lld is out of range", key, (long long)x);
    *out = (int)x;
    return BASE_OK;
}

const gguf_tensor *ckpt_gguf_tensor(const gguf_file *g, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->name.len == n && memcmp(t->name.ptr, name, n) == 0) return t;
    }
    return NULL;
}

/* Whether t's data (F32 or F16, its dims' product) lies inside the file. */
static int in_file(const gguf_file *g, const gguf_tensor *t) {
    if (t->type != GGML_F32 && t->type != GGML_F16) return 0;
    uint64_t numel = 1, esz = t->type == GGML_F16 ? 2 : 4, base = gguf_data_offset(g),
             size = gguf_size(g);
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] && numel > UINT64_MAX / t->dims[d]) return 0;
        numel *= t->dims[d];
    }
    return t->offset <= size && numel <= (size - t->offset) / esz &&
           base <= size - t->offset - numel * esz;
}

int ckpt_gguf_config(const gguf_file *g, nn_config *c, base_err *e) {
    memset(c, 0, sizeof *c);
    gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch, e)) return BASE_EFORMAT;
    /* gpt2 is its own family; the others are Llama's (RMSNorm, RoPE, gated FFN) with the
     * differences infer's family table describes */
    static const char *const llamas[] = {"llama", "qwen2", "phi3", "gemma2"};
    const char *a = NULL;
    if (arch.len == 4 && !memcmp(arch.ptr, "gpt2", 4)) c->family = NN_GPT2, a = "gpt2";
    for (size_t i = 0; !a && i < sizeof llamas / sizeof *llamas; i++)
        if (arch.len == strlen(llamas[i]) && !memcmp(arch.ptr, llamas[i], arch.len))
            c->family = NN_LLAMA, a = llamas[i];
    if (!a)
        return base_fail(e, BASE_EFORMAT,
                         "GGUF: architecture '%.*s' is not one hearth runs (gpt2, llama, qwen2, "
                         "phi3, gemma2)",
                         (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
    char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    int rc = opt_int(g, KEY("context_length"), -1, &c->max_seq, e);
    if (!rc) rc = opt_int(g, KEY("embedding_length"), -1, &c->d_model, e);
    if (!rc) rc = opt_int(g, KEY("feed_forward_length"), -1, &c->d_ff, e);
    if (!rc) rc = opt_int(g, KEY("block_count"), -1, &c->n_layer, e);
    if (!rc) rc = opt_int(g, KEY("attention.head_count"), -1, &c->n_head, e);
    if (!rc) rc = opt_int(g, KEY("attention.head_count_kv"), c->n_head, &c->n_kv_head, e);
    double eps = 0, theta = 10000;
    if (!rc)
        rc = gguf_get_float(g,
                            c->family == NN_LLAMA ? KEY("attention.layer_norm_rms_epsilon")
                                                  : KEY("attention.layer_norm_epsilon"),
                            &eps, e);
    if (!rc && c->family == NN_LLAMA && gguf_find(g, KEY("rope.freq_base")) >= 0)
        rc = gguf_get_float(g, k, &theta, e);
    if (rc) return rc;
    if (c->n_head < 1 || c->d_model % c->n_head)
        return base_fail(e, BASE_EFORMAT, "GGUF: %d heads do not divide the width %d", c->n_head,
                         c->d_model);
    int HS = c->d_model / c->n_head, rot;
    /* a head may be wider or narrower than C / NH (Gemma 2: attention.key_length) */
    if ((rc = opt_int(g, KEY("attention.key_length"), HS, &HS, e))) return rc;
    rot = HS;
    if (c->family == NN_LLAMA && (rc = opt_int(g, KEY("rope.dimension_count"), HS, &rot, e)))
        return rc;
    if (rot != HS)
        return base_fail(e, BASE_EFORMAT,
                         "GGUF: RoPE on %d of %d dimensions per head (partial rotary) is not "
                         "supported",
                         rot, HS);
    if (c->family == NN_LLAMA && gguf_find(g, KEY("rope.scaling.type")) >= 0) {
        gguf_str st;
        if (gguf_get_str(g, k, &st, e)) return BASE_EFORMAT;
        if (!(st.len == 4 && !memcmp(st.ptr, "none", 4)) &&
            !(st.len == 6 && !memcmp(st.ptr, "linear", 6)))
            return base_fail(e, BASE_EFORMAT,
                             "GGUF: RoPE scaling '%.*s' is not supported (none and linear are)",
                             (int)(st.len > 20 ? 20 : st.len), st.ptr);
    }
#undef KEY
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    const gguf_tensor *te = ckpt_gguf_tensor(g, "token_embd.weight");
    if (!te || te->n_dims != 2 || te->dims[1] > INT32_MAX || te->dims[0] != (uint64_t)c->d_model)
        return base_fail(e, BASE_EFORMAT, "GGUF: no token_embd.weight of width %d", c->d_model);
    c->vocab_size = (int)te->dims[1];
    c->bias =
        ckpt_gguf_tensor(g, "blk.0.attn_q.bias") || ckpt_gguf_tensor(g, "blk.0.attn_qkv.bias");
    /* tied: no output matrix, or (GPT-2, whose GGUF always has one) the embedding's bytes */
    const gguf_tensor *to = ckpt_gguf_tensor(g, "output.weight");
    c->tied = !to;
    if (to && to->type == te->type && to->n_dims == 2 && to->dims[0] == te->dims[0] &&
        to->dims[1] == te->dims[1]) {
        size_t esz = te->type == GGML_F16 ? 2 : 4,
               bytes = (size_t)(te->dims[0] * te->dims[1]) * esz;
        uint64_t base = gguf_data_offset(g);
        if (in_file(g, te) && in_file(g, to) &&
            !memcmp(gguf_data(g) + base + te->offset, gguf_data(g) + base + to->offset, bytes))
            c->tied = 1;
    }
    base_err ce;
    if (nn_config_check(c, &ce)) return base_fail(e, BASE_EFORMAT, "GGUF: %s", ce.msg);
    return BASE_OK;
}

int ckpt_gguf_tensor_bytes(const gguf_file *g, const gguf_tensor *t, const char *name, size_t *out,
                           base_err *e) {
    if (!quant_type_supported((int)t->type))
        return base_fail(e, BASE_EFORMAT, "GGUF: tensor %s is %s: hearth cannot read that type",
                         name, quant_type_name((int)t->type));
    size_t rowb, rows = 1;
    if (quant_row_bytes((int)t->type, (size_t)t->dims[0], &rowb, e))
        return base_fail(e, BASE_EFORMAT, "GGUF: tensor %s: %s", name, e->msg);
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= (size_t)t->dims[d];
    size_t size = gguf_size(g), off = gguf_data_offset(g) + t->offset;
    if (off > size || rows > (size - off) / (rowb ? rowb : 1))
        return base_fail(e, BASE_EFORMAT, "GGUF: tensor %s runs past the end of the file", name);
    *out = rows * rowb;
    return BASE_OK;
}

int ckpt_gguf_arch_check(const gguf_file *g, const nn_config *c, base_err *e) {
    gguf_str arch; /* the other Llama-family architectures differ by more than nn_config says */
    if (gguf_get_str(g, "general.architecture", &arch, e)) return BASE_EFORMAT;
    if (strlen(arch_name(c)) != arch.len || memcmp(arch.ptr, arch_name(c), arch.len) != 0)
        return base_fail(e, BASE_EFORMAT,
                         "GGUF: a %.*s model cannot be read into hearth's %s parameters (the "
                         "engine runs it: infer_model_load)",
                         (int)(arch.len > 40 ? 40 : arch.len), arch.ptr, arch_name(c));
    return BASE_OK;
}

int ckpt_gguf_piece(const gguf_file *g, const ckpt_piece *p, const gguf_tensor **out, size_t *bytes,
                    base_err *e) {
    const gguf_tensor *t = ckpt_gguf_tensor(g, p->name);
    uint64_t want0 = p->ndim == 2 ? p->shape[1] : p->shape[0];
    if (!t) return base_fail(e, BASE_EFORMAT, "GGUF: tensor %s is missing", p->name);
    if (t->n_dims != (uint32_t)p->ndim || t->dims[0] != want0 ||
        (p->ndim == 2 && t->dims[1] != p->shape[0]))
        return base_fail(e, BASE_EFORMAT, "GGUF: tensor %s has the wrong shape for this config",
                         p->name);
    *out = t;
    return ckpt_gguf_tensor_bytes(g, t, p->name, bytes, e);
}

int ckpt_gguf_read_model(const gguf_file *g, nn_model *m, base_err *e) {
    const nn_config *c = &m->cfg;
    int rc = ckpt_gguf_arch_check(g, c, e);
    if (rc) return rc;
    int HS = c->d_model / c->n_head;
    /* the pieces of the full layout: a matrix m holds elsewhere (nn_model_create_held) is
     * checked here but not read */
    nn_tensor full[NN_MAX_TENSORS];
    int nf = nn_config_tensors(c, full);
    ckpt_piece *p;
    int n = ckpt_pieces_of(c, full, nf, CKPT_NAMES_GGUF, &p);
    if (n < 0) return base_fail(e, BASE_ENOMEM, "out of memory");
    float *tmp = NULL;
    uint64_t base = gguf_data_offset(g);
    for (int i = 0; !rc && i < n; i++) {
        const gguf_tensor *t;
        size_t bytes;
        if ((rc = ckpt_gguf_piece(g, &p[i], &t, &bytes, e))) break;
        const nn_tensor *ft = &full[p[i].tensor], *mt = nn_model_tensor(m, ft->name);
        if (!mt) continue; /* held */
        size_t rows = p[i].ndim == 2 ? (size_t)p[i].shape[0] : 1;
        size_t cols = p[i].ndim == 2 ? (size_t)p[i].shape[1] : (size_t)p[i].shape[0];
        size_t rowb = bytes / rows;
        const uint8_t *src = gguf_data(g) + base + t->offset;
        float *dst = m->params + mt->offset + (p[i].offset - ft->offset);
        if (p[i].rope_heads && !(tmp = malloc(rows * cols * sizeof(float)))) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        float *out = p[i].rope_heads ? tmp : dst;
        for (size_t r = 0; r < rows; r++)
            quant_dequantize_row((int)t->type, src + r * rowb, out + r * cols, cols);
        if (p[i].rope_heads) {
            /* a q or k bias (one row in the file) is permuted element by element */
            ckpt_rope_rows(dst, tmp, p[i].rope_heads, HS, p[i].ndim == 2 ? cols : 1, 0);
            free(tmp);
            tmp = NULL;
        }
        /* a mapped file's pages are read once: out of this process's memory now, so the peak is
         * the F32 model, not the model and the file (a borrowed image is the caller's) */
        if (gguf_is_mapped(g)) {
            uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a0 = (uintptr_t)src & ~(pg - 1);
            madvise((void *)a0, (uintptr_t)src + bytes - a0, MADV_DONTNEED);
        }
    }
    /* every tensor of the file has a place (a tied GPT-2's repeated output matrix aside) */
    for (size_t i = 0; !rc && i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        int found = c->tied && t->name.len == 13 && !memcmp(t->name.ptr, "output.weight", 13);
        for (int j = 0; !found && j < n; j++)
            found =
                strlen(p[j].name) == t->name.len && !memcmp(p[j].name, t->name.ptr, t->name.len);
        if (!found)
            rc = base_fail(e, BASE_EFORMAT, "GGUF: tensor %.*s has no place in a hearth %s model",
                           (int)(t->name.len > 80 ? 80 : t->name.len), t->name.ptr, arch_name(c));
        else {
            char name[96];
            size_t bytes;
            snprintf(name, sizeof name, "%.*s", (int)(t->name.len > 80 ? 80 : t->name.len),
                     t->name.ptr);
            rc = ckpt_gguf_tensor_bytes(g, t, name, &bytes, e);
        }
    }
    free(p);
    return rc;
}
