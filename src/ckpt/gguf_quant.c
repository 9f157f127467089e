/* ckpt/gguf_quant.c: a model's tensors in one of llama-quantize's file types (see gguf_model.h):
 * which tensor gets which ggml type (llama.cpp's llama_tensor_get_type, for the types hearth
 * computes with), the fallback for rows that are no whole number of blocks, and the
 * conversion (quant_dequantize_row, then quant_quantize_row). */
#include "ckpt/gguf_model.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* llama.cpp's llama_ftype values and the default weight type of each */
enum {
    FT_F32 = 0,
    FT_F16 = 1,
    FT_Q4_0 = 2,
    FT_Q4_1 = 3,
    FT_Q8_0 = 7,
    FT_Q5_0 = 8,
    FT_Q5_1 = 9,
    FT_Q2_K = 10,
    FT_Q3_K_S = 11,
    FT_Q3_K_M = 12,
    FT_Q3_K_L = 13,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_S = 16,
    FT_Q5_K_M = 17,
    FT_Q6_K = 18,
    FT_Q2_K_S = 21,
    FT_BF16 = 32
};

static const struct {
    const char *name;
    int ftype, type;
} FTYPES[] = {
    {"F32", FT_F32, QUANT_F32},
    {"F16", FT_F16, QUANT_F16},
    {"BF16", FT_BF16, QUANT_BF16},
    {"Q8_0", FT_Q8_0, QUANT_Q8_0},
    {"Q4_0", FT_Q4_0, QUANT_Q4_0},
    {"Q4_1", FT_Q4_1, QUANT_Q4_1},
    {"Q5_0", FT_Q5_0, QUANT_Q5_0},
    {"Q5_1", FT_Q5_1, QUANT_Q5_1},
    {"Q2_K", FT_Q2_K, QUANT_Q2_K},
    {"Q2_K_S", FT_Q2_K_S, QUANT_Q2_K},
    {"Q3_K_S", FT_Q3_K_S, QUANT_Q3_K},
    {"Q3_K_M", FT_Q3_K_M, QUANT_Q3_K},
    {"Q3_K_L", FT_Q3_K_L, QUANT_Q3_K},
    {"Q4_K_S", FT_Q4_K_S, QUANT_Q4_K},
    {"Q4_K_M", FT_Q4_K_M, QUANT_Q4_K},
    {"Q5_K_S", FT_Q5_K_S, QUANT_Q5_K},
    {"Q5_K_M", FT_Q5_K_M, QUANT_Q5_K},
    {"Q6_K", FT_Q6_K, QUANT_Q6_K},
    /* llama-quantize's aliases: Q3_K is Q3_K_M, Q4_K is Q4_K_M, Q5_K is Q5_K_M */
    {"Q3_K", FT_Q3_K_M, QUANT_Q3_K},
    {"Q4_K", FT_Q4_K_M, QUANT_Q4_K},
    {"Q5_K", FT_Q5_K_M, QUANT_Q5_K},
};
#define N_FTYPES (sizeof FTYPES / sizeof FTYPES[0])

const char *const CKPT_GGUF_TYPES = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, "
                                    "Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K "
                                    "(Q3_K, Q4_K, Q5_K: the _M mixes)";

struct ckpt_gguf_quant {
    int ft;       /* index into FTYPES */
    int pure;     /* every matrix in the default type (llama-quantize --pure) */
    int n_attn_v; /* attn_v matrices in the model (llama.cpp's n_attention_wv) */
    int n_ffn_down;
    int n_gqa;
    int has_output;
    int i_attn_v, i_ffn_down; /* counted in the order tensors are added, as llama.cpp does */
    FILE *report;
    void **bufs; /* converted tensors, kept until ckpt_gguf_quant_free */
    size_t nbufs, capbufs;
    float *row;
    size_t rowcap;
    ckpt_gguf_quant_stats st;
};

int ckpt_gguf_quant_create(ckpt_gguf_quant **out, const char *type, int pure, int n_attn_v,
                           int n_ffn_down, int n_gqa, int has_output, FILE *report, base_err *e) {
    *out = NULL;
    int ft = -1;
    for (size_t i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(type, FTYPES[i].name)) ft = (int)i;
    if (ft < 0) {
        for (int t = 0; t < QUANT_N_IDS; t++) {
            const quant_traits *q = quant_traits_of(t);
            if (q && !strcasecmp(type, q->name))
                return base_fail(e, BASE_EINVAL, "%s is not supported (hearth writes %s)", q->name,
                                 CKPT_GGUF_TYPES);
        }
        return base_fail(e, BASE_EINVAL, "unknown type '%s' (known: %s)", type, CKPT_GGUF_TYPES);
    }
    ckpt_gguf_quant *q = calloc(1, sizeof *q);
    if (!q) return base_fail(e, BASE_ENOMEM, "out of memory");
    q->ft = ft;
    q->pure = pure;
    q->n_attn_v = n_attn_v;
    q->n_ffn_down = n_ffn_down;
    q->n_gqa = n_gqa;
    q->has_output = has_output;
    q->report = report;
    *out = q;
    return BASE_OK;
}

void ckpt_gguf_quant_free(ckpt_gguf_quant *q) {
    if (!q) return;
    for (size_t i = 0; i < q->nbufs; i++) free(q->bufs[i]);
    free(q->bufs);
    free(q->row);
    free(q);
}

uint32_t ckpt_gguf_quant_file_type(const ckpt_gguf_quant *q) {
    return (uint32_t)FTYPES[q->ft].ftype;
}

const char *ckpt_gguf_quant_name(const ckpt_gguf_quant *q) {
    return FTYPES[q->ft].name;
}

ckpt_gguf_quant_stats ckpt_gguf_quant_get_stats(const ckpt_gguf_quant *q) {
    return q->st;
}

static int block_of(int t) {
    return quant_traits_of(t)->block;
}

static int more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama_tensor_get_type (llama.cpp src/llama-quant.cpp) for the file types above: the type of
 * a matrix `name` with rows of nx, before the fallback. */
static int mix_type(ckpt_gguf_quant *q, const char *name, uint64_t nx) {
    int ft = FTYPES[q->ft].ftype, t = FTYPES[q->ft].type;
    if (!strcmp(name, "output.weight") || (!q->has_output && !strcmp(name, "token_embd.weight"))) {
        if (nx % (uint64_t)block_of(t))
            t = QUANT_Q8_0;
        else if (t != QUANT_Q8_0)
            t = QUANT_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        int i = q->i_attn_v++, n = q->n_attn_v;
        if (ft == FT_Q2_K)
            t = q->n_gqa >= 4 ? QUANT_Q4_K : QUANT_Q3_K;
        else if (ft == FT_Q2_K_S && q->n_gqa >= 4)
            t = QUANT_Q4_K;
        else if (ft == FT_Q3_K_M)
            t = i < 2 ? QUANT_Q5_K : QUANT_Q4_K;
        else if (ft == FT_Q3_K_L)
            t = QUANT_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && more_bits(i, n))
            t = QUANT_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4)
            t = QUANT_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        int i = q->i_ffn_down++, n = q->n_ffn_down;
        if (ft == FT_Q2_K)
            t = QUANT_Q3_K;
        else if (ft == FT_Q2_K_S) {
            if (i < n / 8) t = QUANT_Q4_K;
        } else if (ft == FT_Q3_K_M)
            t = i < n / 16 ? QUANT_Q5_K : QUANT_Q4_K;
        else if (ft == FT_Q3_K_L)
            t = QUANT_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (more_bits(i, n)) t = QUANT_Q6_K;
        } else if (ft == FT_Q5_K_M && more_bits(i, n))
            t = QUANT_Q6_K;
        else if (ft == FT_Q4_K_S && i < n / 8)
            t = QUANT_Q5_K;
    } else if (strstr(name, "attn_output.weight")) {
        if (ft == FT_Q2_K)
            t = QUANT_Q3_K;
        else if (ft == FT_Q3_K_M)
            t = QUANT_Q4_K;
        else if (ft == FT_Q3_K_L)
            t = QUANT_Q5_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L)
            t = QUANT_Q4_K;
        else if (ft == FT_Q4_K_M)
            t = QUANT_Q5_K;
        else if (ft == FT_Q5_K_M)
            t = QUANT_Q6_K;
    }
    return t;
}

/* llama.cpp's fallback for rows that are no whole number of t's blocks; Q2_K and Q3_K go to
 * Q4_0 (llama.cpp: IQ4_NL, a type hearth does not compute with), the float types never need
 * one. */
static int fallback(int t, uint64_t nx) {
    int fb = t == QUANT_Q4_K   ? QUANT_Q5_0
             : t == QUANT_Q5_K ? QUANT_Q5_1
             : t == QUANT_Q6_K ? QUANT_Q8_0
                               : QUANT_Q4_0;
    return nx % (uint64_t)block_of(fb) ? QUANT_F16 : fb;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int ckpt_gguf_quant_add(ckpt_gguf_quant *q, gguf_writer *w, const char *name, uint32_t n_dims,
                        const uint64_t *dims, int src_type, const void *src, base_err *e) {
    size_t cols = (size_t)dims[0], rows = 1, irb, orb;
    for (uint32_t d = 1; d < n_dims; d++) {
        if (dims[d] && rows > SIZE_MAX / dims[d])
            return base_fail(e, BASE_EFORMAT, "tensor %s: its size overflows", name);
        rows *= (size_t)dims[d];
    }
    if (quant_row_bytes(src_type, cols, &irb, e)) return BASE_EINVAL;
    /* llama-quantize's choice of tensors: 2-D "...weight" matrices, norms and the positional
     * embedding aside */
    int quantize = n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
                   strcmp(name, "position_embd.weight") != 0;
    int to = src_type;
    if (quantize) {
        if (src_type != QUANT_F32 && src_type != QUANT_F16 && src_type != QUANT_BF16)
            return base_fail(e, BASE_EINVAL,
                             "tensor %s is %s: quantize starts from F32, F16 or BF16 tensors", name,
                             quant_type_name(src_type));
        /* llama.cpp's pure and float file types skip llama_tensor_get_type */
        int base = FTYPES[q->ft].type;
        int flt = base == QUANT_F32 || base == QUANT_F16 || base == QUANT_BF16;
        to = q->pure || flt ? base : mix_type(q, name, dims[0]);
        if (cols % (size_t)block_of(to)) {
            int fb = fallback(to, dims[0]);
            if (q->report)
                fprintf(q->report, "%s: rows of %zu are no whole number of %s blocks (%d): %s\n",
                        name, cols, quant_type_name(to), block_of(to), quant_type_name(fb));
            to = fb;
            q->st.n_fallback++;
        }
    }
    q->st.n_tensors++;
    q->st.in_bytes += rows * irb;
    if (to == src_type) {
        q->st.out_bytes += rows * irb;
        gguf_add_tensor(w, name, n_dims, dims, (uint32_t)to, src, rows * irb);
        return BASE_OK;
    }
    if (quant_row_bytes(to, cols, &orb, e)) return BASE_EINVAL;
    if (rows && orb > SIZE_MAX / rows)
        return base_fail(e, BASE_EFORMAT, "tensor %s: its size overflows", name);
    if (q->nbufs == q->capbufs) {
        size_t cap = q->capbufs ? 2 * q->capbufs : 64;
        void **b = realloc(q->bufs, cap * sizeof *b);
        if (!b) return base_fail(e, BASE_ENOMEM, "out of memory");
        q->bufs = b;
        q->capbufs = cap;
    }
    if (cols > q->rowcap) {
        float *r = realloc(q->row, cols * sizeof(float));
        if (!r) return base_fail(e, BASE_ENOMEM, "out of memory");
        q->row = r;
        q->rowcap = cols;
    }
    uint8_t *dst = malloc(rows * orb > 0 ? rows * orb : 1);
    if (!dst)
        return base_fail(e, BASE_ENOMEM, "out of memory (%zu bytes for %s)", rows * orb, name);
    q->bufs[q->nbufs++] = dst;
    const uint8_t *s = src;
    for (size_t r = 0; r < rows; r++) {
        quant_dequantize_row(src_type, s + r * irb, q->row, cols);
        quant_quantize_row(to, q->row, dst + r * orb, cols);
    }
    q->st.out_bytes += rows * orb;
    gguf_add_tensor(w, name, n_dims, dims, (uint32_t)to, dst, rows * orb);
    return BASE_OK;
}
