/* infer/weights.c: the engine's weights (infer_weights, infer.h) from hearth's F32 parameters or
 * from a GGUF file's tensors in their stored types, mapped, under llama.cpp's names. */
#include "infer_int.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static infer_mat f32_mat(const float *data, int rows, int cols) {
    return (infer_mat){.data = data,
                       .type = QUANT_F32,
                       .rows = rows,
                       .cols = cols,
                       .row_bytes = (size_t)cols * sizeof(float)};
}

static infer_linear one(infer_mat m, const float *b) {
    return (infer_linear){.n = 1, .w = {m}, .b = b, .out = m.rows};
}

int infer_weights_from_nn(infer_weights *w, const nn_model *nn, base_err *e) {
    const nn_config *c = &nn->cfg;
    memset(w, 0, sizeof *w);
    w->cfg = *c;
    infer_hparams_default(&w->hp, infer_family_of_nn(c->family), c);
    int C = c->d_model, HS = C / c->n_head, Q = (c->n_head + 2 * c->n_kv_head) * HS;
    int FO = c->family == NN_LLAMA ? 2 * c->d_ff : c->d_ff;
    const nn_params *p = &nn->pt;
    w->layers = calloc((size_t)c->n_layer, sizeof *w->layers);
    if (!w->layers) return base_fail(e, BASE_ENOMEM, "out of memory");
    w->wte = f32_mat(p->wte, c->vocab_size, C);
    w->wpe = p->wpe;
    w->lnfw = p->lnfw, w->lnfb = p->lnfb;
    w->head = c->tied ? w->wte : f32_mat(p->lm_head, c->vocab_size, C);
    for (int l = 0; l < c->n_layer; l++) {
        nn_layer s = nn_params_layer(p, c, l);
        infer_layer *L = &w->layers[l];
        L->ln1w = s.ln1w, L->ln1b = s.ln1b, L->ln2w = s.ln2w, L->ln2b = s.ln2b;
        L->qkv = one(f32_mat(s.qkvw, Q, C), s.qkvb);
        L->attproj = one(f32_mat(s.attprojw, C, C), s.attprojb);
        L->fc = one(f32_mat(s.fcw, FO, C), s.fcb);
        L->fcproj = one(f32_mat(s.fcprojw, C, c->d_ff), s.fcprojb);
    }
    return BASE_OK;
}

/* ---- GGUF */

static const gguf_tensor *find(const gguf_file *g, const char *name, size_t *index) {
    size_t n = strlen(name);
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->name.len == n && memcmp(t->name.ptr, name, n) == 0) {
            if (index) *index = i;
            return t;
        }
    }
    return NULL;
}

/* Every tensor of the file: a type hearth runs, rows of whole blocks, data inside the file. */
int infer_gguf_check_tensors(const gguf_file *g, size_t *mapped, base_err *e) {
    uint64_t base = gguf_data_offset(g), size = gguf_size(g);
    *mapped = 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (!quant_traits_of((int)t->type))
            return base_fail(e, BASE_EFORMAT, "GGUF: tensor %.*s has an unknown ggml type %u",
                             INFER_TNAME(t), t->type);
        if (!quant_type_supported((int)t->type))
            return base_fail(e, BASE_EFORMAT,
                             "GGUF: tensor %.*s is %s: %s is not supported (hearth runs F32, F16, "
                             "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                             INFER_TNAME(t), quant_type_name((int)t->type),
                             quant_type_name((int)t->type));
        size_t rb, bytes;
        base_err re;
        if (t->n_dims < 1 || t->dims[0] > SIZE_MAX ||
            quant_row_bytes((int)t->type, (size_t)t->dims[0], &rb, &re))
            return base_fail(e, BASE_EFORMAT,
                             "GGUF: tensor %.*s: rows of %llu elements do not fit type %s (%s)",
                             INFER_TNAME(t), (unsigned long long)t->dims[0],
                             quant_type_name((int)t->type), t->n_dims < 1 ? "no dims" : re.msg);
        bytes = rb;
        for (uint32_t d = 1; d < t->n_dims; d++)
            if (t->dims[d] > SIZE_MAX || base_mul_size(bytes, (size_t)t->dims[d], &bytes))
                return base_fail(e, BASE_EFORMAT, "GGUF: tensor %.*s: its size overflows",
                                 INFER_TNAME(t));
        if (base > size || t->offset > size - base || bytes > size - base - t->offset)
            return base_fail(e, BASE_EFORMAT,
                             "GGUF: tensor %.*s: its data (%zu bytes at offset %llu) runs past "
                             "the end of the file (%llu bytes): truncated or corrupt",
                             INFER_TNAME(t), bytes, (unsigned long long)(base + t->offset),
                             (unsigned long long)size);
        *mapped += bytes;
    }
    return BASE_OK;
}

typedef struct loader {
    const gguf_file *g;
    unsigned char *used; /* (n_tensors) */
    float *small;        /* the norms and biases, widened */
    size_t n_small, cap_small;
    int counting; /* the first pass only counts the floats of the vectors */
    base_err *e;
} loader;

static const char *fmt_name(char *buf, size_t cap, const char *fmt, int l) {
    snprintf(buf, cap, fmt, l);
    return buf;
}

/* A matrix of rows x cols (dims[0] = cols, dims[1] = rows). */
static int get_mat(loader *ld, const char *fmt, int l, int rows, int cols, infer_mat *out) {
    char name[96];
    fmt_name(name, sizeof name, fmt, l);
    size_t i;
    const gguf_tensor *t = find(ld->g, name, &i);
    if (!t) return base_fail(ld->e, BASE_EFORMAT, "GGUF: tensor %s is missing", name);
    if (t->n_dims != 2 || t->dims[0] != (uint64_t)cols || t->dims[1] != (uint64_t)rows)
        return base_fail(ld->e, BASE_EFORMAT,
                         "GGUF: tensor %s has the wrong shape for this config (want %d x %d)", name,
                         cols, rows);
    ld->used[i] = 1;
    size_t rb;
    base_err re;
    quant_row_bytes((int)t->type, (size_t)cols, &rb, &re); /* checked: infer_gguf_check_tensors */
    *out = (infer_mat){.data = gguf_data(ld->g) + gguf_data_offset(ld->g) + t->offset,
                       .type = (int)t->type,
                       .rows = rows,
                       .cols = cols,
                       .row_bytes = rb};
    return BASE_OK;
}

/* n floats of a vector (or of a matrix of rows x n/rows, row-major), widened to F32 into the
 * loader's buffer at *out; optional: absent is *out NULL. */
static int get_vec(loader *ld, const char *fmt, int l, int rows, int n, int optional,
                   const float **out) {
    char name[96];
    fmt_name(name, sizeof name, fmt, l);
    size_t i;
    const gguf_tensor *t = find(ld->g, name, &i);
    *out = NULL;
    if (!t)
        return optional ? BASE_OK
                        : base_fail(ld->e, BASE_EFORMAT, "GGUF: tensor %s is missing", name);
    uint64_t want0 = (uint64_t)(n / rows);
    if (t->n_dims != (rows > 1 ? 2u : 1u) || t->dims[0] != want0 ||
        (rows > 1 && t->dims[1] != (uint64_t)rows))
        return base_fail(ld->e, BASE_EFORMAT, "GGUF: tensor %s has the wrong shape for this config",
                         name);
    ld->used[i] = 1;
    if (ld->counting) {
        ld->cap_small += (size_t)n;
        return BASE_OK;
    }
    float *dst = ld->small + ld->n_small;
    quant_dequantize_rows((int)t->type, gguf_data(ld->g) + gguf_data_offset(ld->g) + t->offset, dst,
                          (size_t)rows, (size_t)want0);
    ld->n_small += (size_t)n;
    *out = dst;
    return BASE_OK;
}

/* Concatenates the optional biases of parts (each `rows` long) into one vector: all present or
 * none. */
static int get_bias(loader *ld, const char *const *fmts, const int *rows, int n, int l,
                    const float **out) {
    const float *first = NULL;
    int total = 0, present = 0;
    for (int i = 0; i < n; i++) {
        const float *v;
        if (get_vec(ld, fmts[i], l, 1, rows[i], 1, &v)) return BASE_EFORMAT;
        char name[96];
        int has = find(ld->g, fmt_name(name, sizeof name, fmts[i], l), NULL) != NULL;
        if (i && has != present)
            return base_fail(ld->e, BASE_EFORMAT,
                             "GGUF: layer %d has some biases of %s and not others", l, fmts[0]);
        present = has;
        if (!i) first = v;
        total += rows[i];
    }
    (void)total;
    *out = present ? first : NULL; /* consecutive in the loader's buffer */
    return BASE_OK;
}

/* One family's tensors (f: arch.c's table) by llama.cpp's names. */
static int build(loader *ld, infer_weights *w, const infer_family *f) {
    const nn_config *c = &w->cfg;
    int C = c->d_model, HS = w->hp.head_dim, NH = c->n_head, NKV = c->n_kv_head, F = c->d_ff;
    int V = c->vocab_size, gpt2 = f->base == NN_GPT2;
    if (get_mat(ld, "token_embd.weight", 0, V, C, &w->wte)) return BASE_EFORMAT;
    if (gpt2 && get_vec(ld, "position_embd.weight", 0, c->max_seq, c->max_seq * C, 0, &w->wpe))
        return BASE_EFORMAT;
    if (get_vec(ld, "output_norm.weight", 0, 1, C, 0, &w->lnfw) ||
        get_vec(ld, "output_norm.bias", 0, 1, C, 1, &w->lnfb))
        return BASE_EFORMAT;
    if (!f->tied_only && find(ld->g, "output.weight", NULL)) {
        if (get_mat(ld, "output.weight", 0, V, C, &w->head)) return BASE_EFORMAT;
    } else {
        w->head = w->wte;
    }
    /* RoPE frequency factors: Llama 3.1+'s rope_freqs, Phi-3's long and short ones */
    if (!gpt2 && (get_vec(ld, "rope_freqs.weight", 0, 1, HS / 2, 1, &w->hp.rope_factors) ||
                  (!w->hp.rope_factors &&
                   get_vec(ld, "rope_factors_long.weight", 0, 1, HS / 2, 1, &w->hp.rope_factors)) ||
                  get_vec(ld, "rope_factors_short.weight", 0, 1, HS / 2, 1, &w->hp.rope_short)))
        return BASE_EFORMAT;
    for (int l = 0; l < c->n_layer; l++) {
        infer_layer *L = &w->layers[l];
        if (get_vec(ld, "blk.%d.attn_norm.weight", l, 1, C, 0, &L->ln1w) ||
            get_vec(ld, "blk.%d.attn_norm.bias", l, 1, C, 1, &L->ln1b) ||
            get_vec(ld, "blk.%d.ffn_norm.weight", l, 1, C, 0, &L->ln2w) ||
            get_vec(ld, "blk.%d.ffn_norm.bias", l, 1, C, 1, &L->ln2b))
            return BASE_EFORMAT;
        if (f->post_norms &&
            (get_vec(ld, "blk.%d.post_attention_norm.weight", l, 1, C, 0, &L->post_att) ||
             get_vec(ld, "blk.%d.post_ffw_norm.weight", l, 1, C, 0, &L->post_ffn)))
            return BASE_EFORMAT;
        char name[96];
        infer_mat m;
        const float *b;
        int Q = (NH + 2 * NKV) * HS;
        if (gpt2 || find(ld->g, fmt_name(name, sizeof name, "blk.%d.attn_qkv.weight", l), NULL)) {
            /* q | k | v fused (GPT-2, Phi-3) */
            if (get_mat(ld, "blk.%d.attn_qkv.weight", l, Q, C, &m) ||
                get_vec(ld, "blk.%d.attn_qkv.bias", l, 1, Q, 1, &b))
                return BASE_EFORMAT;
            L->qkv = one(m, b);
        } else {
            static const char *const qkv[3] = {"blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
                                               "blk.%d.attn_v.weight"};
            static const char *const qkvb[3] = {"blk.%d.attn_q.bias", "blk.%d.attn_k.bias",
                                                "blk.%d.attn_v.bias"};
            int rows[3] = {NH * HS, NKV * HS, NKV * HS};
            L->qkv.n = 3;
            L->qkv.out = rows[0] + rows[1] + rows[2];
            if (f->rope_pairs) L->qkv.rope_heads[0] = NH, L->qkv.rope_heads[1] = NKV;
            for (int i = 0; i < 3; i++)
                if (get_mat(ld, qkv[i], l, rows[i], C, &L->qkv.w[i])) return BASE_EFORMAT;
            if (get_bias(ld, qkvb, rows, 3, l, &L->qkv.b)) return BASE_EFORMAT;
        }
        if (gpt2 || f->fused_gate_up) { /* GPT-2's F rows; Phi-3's gate | up, 2F rows */
            int rows = gpt2 ? F : 2 * F;
            if (get_mat(ld, "blk.%d.ffn_up.weight", l, rows, C, &m) ||
                get_vec(ld, "blk.%d.ffn_up.bias", l, 1, rows, 1, &b))
                return BASE_EFORMAT;
            L->fc = one(m, b);
        } else {
            static const char *const gu[2] = {"blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight"};
            static const char *const gub[2] = {"blk.%d.ffn_gate.bias", "blk.%d.ffn_up.bias"};
            int frows[2] = {F, F};
            L->fc.n = 2;
            L->fc.out = 2 * F;
            for (int i = 0; i < 2; i++)
                if (get_mat(ld, gu[i], l, F, C, &L->fc.w[i])) return BASE_EFORMAT;
            if (get_bias(ld, gub, frows, 2, l, &L->fc.b)) return BASE_EFORMAT;
        }
        if (get_mat(ld, "blk.%d.attn_output.weight", l, C, NH * HS, &m) ||
            get_vec(ld, "blk.%d.attn_output.bias", l, 1, C, 1, &b))
            return BASE_EFORMAT;
        L->attproj = one(m, b);
        if (get_mat(ld, "blk.%d.ffn_down.weight", l, C, F, &m) ||
            get_vec(ld, "blk.%d.ffn_down.bias", l, 1, C, 1, &b))
            return BASE_EFORMAT;
        L->fcproj = one(m, b);
    }
    return BASE_OK;
}

/* The matrices the engine only multiplies by (not the token embeddings, looked up by row): those
 * quant_repack_type gives a faster layout for (Q4_0, Q8_0 on AVX512-VNNI) are repacked at load
 * into anonymous memory after the loader's floats (`repack` bytes from the pass that counts
 * them; with dst NULL only counted), and their pages of the mapped file are given back to the
 * page cache (drop: g is a mapping, not a borrowed image), so the process holds each weight
 * once: RSS as with the file mapped. */
static size_t repack_mats(infer_weights *w, uint8_t *dst, int drop) {
    const nn_config *c = &w->cfg;
    size_t total = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (int l = -1; l < c->n_layer; l++) {
        infer_mat *ms[8];
        int n = 0;
        if (l < 0) {
            if (w->head.data != w->wte.data) ms[n++] = &w->head;
        } else {
            infer_layer *L = &w->layers[l];
            for (int i = 0; i < L->qkv.n; i++) ms[n++] = &L->qkv.w[i];
            for (int i = 0; i < L->fc.n; i++) ms[n++] = &L->fc.w[i];
            ms[n++] = &L->attproj.w[0], ms[n++] = &L->fcproj.w[0];
        }
        for (int i = 0; i < n; i++) {
            infer_mat *m = ms[i];
            int rt = quant_repack_type(m->type, m->rows, m->cols);
            if (rt == m->type) continue;
            size_t bytes = m->row_bytes * (size_t)m->rows;
            if (dst) {
                quant_repack(dst + total, m->data, m->type, rt, m->rows, m->cols);
                uintptr_t a = ((uintptr_t)m->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1),
                          b = ((uintptr_t)m->data + bytes) & ~((uintptr_t)page - 1);
                if (drop && page > 0 && b > a) madvise((void *)a, b - a, MADV_DONTNEED);
                m->data = dst + total, m->type = rt;
            }
            total += (bytes + 63) & ~(size_t)63;
        }
    }
    return total;
}

int infer_weights_from_gguf(infer_weights *w, const gguf_file *g, const nn_config *c, float **small,
                            size_t *mapped, size_t *allocated, base_err *e) {
    memset(w, 0, sizeof *w);
    *small = NULL;
    int rc = infer_gguf_check_tensors(g, mapped, e);
    if (rc) return rc;
    w->cfg = *c;
    w->rope_ggml = 1;
    gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch, e)) return BASE_EFORMAT;
    const infer_family *f = infer_family_find(arch.ptr, arch.len);
    if (!f || f->base != c->family)
        return base_fail(e, BASE_EFORMAT, "GGUF: architecture '%.*s' is not one hearth runs",
                         (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
    if ((rc = infer_hparams_from_gguf(&w->hp, f, g, c, e))) return rc;
    loader ld = {.g = g, .e = e, .counting = 1};
    ld.used = calloc(gguf_n_tensors(g) + 1, 1);
    w->layers = calloc((size_t)c->n_layer, sizeof *w->layers);
    if (!ld.used || !w->layers) {
        free(ld.used);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    rc = build(&ld, w, f); /* pass 1: names, shapes; counts the vector floats */
    size_t floats = (ld.cap_small + 15) & ~(size_t)15, repack = rc ? 0 : repack_mats(w, NULL, 0);
    if (!rc && !(ld.small = base_alloc_floats(floats + repack / sizeof(float))))
        rc = base_fail(e, BASE_ENOMEM, "out of memory: %.0f MB of repacked weights",
                       (double)repack / 1e6);
    if (!rc) {
        ld.counting = 0;
        memset(ld.used, 0, gguf_n_tensors(g));
        rc = build(&ld, w, f); /* pass 2: the vectors widened */
        if (!rc && repack) repack_mats(w, (uint8_t *)(ld.small + floats), gguf_is_mapped(g));
    }
    for (size_t i = 0; !rc && i < gguf_n_tensors(g); i++)
        if (!ld.used[i]) {
            const gguf_tensor *t = gguf_tensor_at(g, i);
            rc = base_fail(e, BASE_EFORMAT, "GGUF: tensor %.*s has no place in a %s model",
                           INFER_TNAME(t), f->name);
        }
    free(ld.used);
    if (rc) {
        free(ld.small);
        free(w->layers);
        w->layers = NULL;
        return rc;
    }
    *small = ld.small;
    *allocated = ld.cap_small * sizeof(float) + repack;
    return BASE_OK;
}
