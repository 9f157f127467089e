/* infer/lora.c: LoRA adapters at serve time — a llama.cpp adapter GGUF read for one model,
 * every tensor checked against the matrix it adapts, widened to F32 and laid out for the
 * forward's low-rank products (forward.c applies them per sequence; the base stays as it is). */
#include "ckpt/gguf_model.h"
#include "ckpt/lora_io.h"
#include "infer_int.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mat_name[INFER_LORA_NM] = {
    "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

void infer_lora_free(infer_lora *a) {
    if (!a) return;
    free(a->site);
    free(a->data);
    free(a);
}

void infer_lora_info(const infer_lora *a, int *rank, float *alpha, int *n_mats, size_t *bytes) {
    if (rank) *rank = a->max_rank;
    if (alpha) *alpha = a->alpha;
    if (n_mats) *n_mats = a->n_mats;
    if (bytes) *bytes = a->n_floats * sizeof(float);
}

/* Where matrix kind m of model w lands in its linear layer's output: *off, *out rows, from *in
 * columns. 0, or -1 when the model has no such matrix (GPT-2's FFN has no gate). */
static int site_shape(const infer_weights *w, const infer_family *f, int m, int *off, int *out,
                      int *in) {
    const nn_config *c = &w->cfg;
    int HS = w->hp.head_dim, NH = c->n_head, NKV = c->n_kv_head, C = c->d_model, F = c->d_ff;
    int gelu = w->hp.act == INFER_ACT_GELU;
    *off = 0, *in = C;
    switch (m) {
    case INFER_LORA_Q:
        *out = NH * HS;
        break;
    case INFER_LORA_K:
        *off = NH * HS, *out = NKV * HS;
        break;
    case INFER_LORA_V:
        *off = (NH + NKV) * HS, *out = NKV * HS;
        break;
    case INFER_LORA_QKV:
        *out = (NH + 2 * NKV) * HS;
        break;
    case INFER_LORA_O:
        *out = C, *in = NH * HS;
        break;
    case INFER_LORA_GATE:
        if (gelu || f->fused_gate_up) return -1;
        *out = F;
        break;
    case INFER_LORA_UP: /* GPT-2: the FFN's input; Phi-3: gate | up; else the second half */
        *out = f->fused_gate_up ? 2 * F : F;
        *off = gelu || f->fused_gate_up ? 0 : F;
        break;
    default:
        *out = C, *in = F;
        break;
    }
    return 0;
}

/* The rows of a 2-D tensor (dims[0] elements each) widened to F32 into dst. */
static void widen(const gguf_file *g, const gguf_tensor *t, float *dst) {
    quant_dequantize_rows((int)t->type, gguf_data(g) + gguf_data_offset(g) + t->offset, dst,
                          (size_t)t->dims[1], (size_t)t->dims[0]); /* row bytes checked */
}

int infer_lora_load(infer_lora **out, const infer_model *model, const char *path, float scale,
                    base_err *e) {
    *out = NULL;
    if (!isfinite(scale))
        return base_fail(e, BASE_EINVAL, "%s: the adapter's scale must be a number", path);
    const infer_weights *w = infer_model_weights(model);
    const infer_family *f = infer_family_find(w->hp.arch, strlen(w->hp.arch));
    int L = w->cfg.n_layer, HS = w->hp.head_dim, NH = w->cfg.n_head, NKV = w->cfg.n_kv_head;
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g, e);
    if (rc) return rc;
    infer_lora *a = calloc(1, sizeof *a);
    float *tmp = NULL;
    const gguf_tensor **ta = calloc((size_t)L * INFER_LORA_NM * 2, sizeof *ta); /* (L, NM, a|b) */
    if (!a || !ta) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto out;
    }
    if (!ckpt_lora_is_adapter(g)) {
        rc = base_fail(e, BASE_EFORMAT,
                       "%s is not a LoRA adapter GGUF (general.type \"adapter\" and adapter.type "
                       "\"lora\"): a model file is served with --model",
                       path);
        goto out;
    }
    gguf_str s;
    base_err ke;
    int has_arch = !gguf_get_str(g, "general.architecture", &s, &ke);
    if (!has_arch || s.len != strlen(w->hp.arch) || memcmp(s.ptr, w->hp.arch, s.len)) {
        rc = base_fail(e, BASE_EFORMAT,
                       "%s: the adapter is for architecture '%.*s' (general.architecture), the "
                       "model is '%s'",
                       path, has_arch ? (int)(s.len > 40 ? 40 : s.len) : 0, has_arch ? s.ptr : "",
                       w->hp.arch);
        goto out;
    }
    double al = 0;
    if (gguf_find(g, "adapter.lora.alpha") >= 0 &&
        (rc = gguf_get_float(g, "adapter.lora.alpha", &al, e)))
        goto out;
    a->alpha = (float)al;
    size_t mapped;
    if ((rc = infer_gguf_check_tensors(g, &mapped, e))) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        base_fail(e, rc, "%s: %s", path, msg);
        goto out;
    }
    /* names first: every tensor one of a known matrix's two, in a layer the model has, once */
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        int l, m, b;
        if (ckpt_lora_tensor_name(&t->name, mat_name, INFER_LORA_NM, &l, &m, &b)) {
            rc = base_fail(e, BASE_EFORMAT,
                           "%s: tensor %.*s is not a LoRA matrix hearth applies "
                           "(blk.N.{attn_q,attn_k,attn_v,attn_qkv,attn_output,ffn_gate,ffn_up,"
                           "ffn_down}.weight.lora_{a,b})",
                           path, INFER_TNAME(t));
            goto out;
        }
        if (l < 0 || l >= L) {
            rc = base_fail(e, BASE_EFORMAT, "%s: tensor %.*s: the model has %d layers (0..%d)",
                           path, INFER_TNAME(t), L, L - 1);
            goto out;
        }
        const gguf_tensor **slot = &ta[((size_t)l * INFER_LORA_NM + (size_t)m) * 2 + (size_t)b];
        if (*slot) {
            rc = base_fail(e, BASE_EFORMAT, "%s: tensor %.*s appears twice", path, INFER_TNAME(t));
            goto out;
        }
        *slot = t;
    }
    /* shapes: A (r x in) and B (out x r) of the model's matrix; then the floats they need */
    size_t floats = 0, tmp_n = 0; /* tmp: one B as the file has it, (out, r) */
    for (int l = 0; l < L; l++)
        for (int m = 0; m < INFER_LORA_NM; m++) {
            const gguf_tensor *A = ta[((size_t)l * INFER_LORA_NM + (size_t)m) * 2],
                              *B = ta[((size_t)l * INFER_LORA_NM + (size_t)m) * 2 + 1];
            if (!A && !B) continue;
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mat_name[m]);
            if (!A || !B) {
                rc = base_fail(e, BASE_EFORMAT, "%s: tensor %s.lora_%c has no %s.lora_%c", path, nm,
                               A ? 'a' : 'b', nm, A ? 'b' : 'a');
                goto out;
            }
            int off, rows, in;
            if (site_shape(w, f, m, &off, &rows, &in)) {
                rc = base_fail(e, BASE_EFORMAT,
                               "%s: tensor %s.lora_a: this %s model has no %s to adapt", path, nm,
                               w->hp.arch, nm);
                goto out;
            }
            uint64_t r = A->dims[1];
            if (A->n_dims != 2 || A->dims[0] != (uint64_t)in || r < 1 || r > 65536) {
                rc = base_fail(e, BASE_EFORMAT,
                               "%s: tensor %s.lora_a has dims [%llu, %llu]; %s of this model "
                               "takes %d inputs: [%d, rank] expected",
                               path, nm, (unsigned long long)A->dims[0],
                               (unsigned long long)A->dims[1], nm, in, in);
                goto out;
            }
            if (B->n_dims != 2 || B->dims[0] != r || B->dims[1] != (uint64_t)rows) {
                rc = base_fail(e, BASE_EFORMAT,
                               "%s: tensor %s.lora_b has dims [%llu, %llu]; %s of this model has "
                               "%d outputs and lora_a rank %llu: [%llu, %d] expected",
                               path, nm, (unsigned long long)B->dims[0],
                               (unsigned long long)B->dims[1], nm, rows, (unsigned long long)r,
                               (unsigned long long)r, rows);
                goto out;
            }
            floats += (size_t)r * ((size_t)in + (size_t)rows); /* A and BT */
            if ((size_t)r * (size_t)rows > tmp_n) tmp_n = (size_t)r * (size_t)rows;
        }
    a->site = calloc((size_t)L * INFER_LORA_NM, sizeof *a->site);
    a->data = base_alloc_floats(floats ? floats : 1);
    tmp = base_alloc_floats(tmp_n ? tmp_n : 1);
    if (!a->site || !a->data || !tmp) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory: %.1f MB for the adapter %s",
                       (double)floats * 4 / 1e6, path);
        goto out;
    }
    float *p = a->data;
    for (int l = 0; l < L; l++)
        for (int m = 0; m < INFER_LORA_NM; m++) {
            const gguf_tensor *A = ta[((size_t)l * INFER_LORA_NM + (size_t)m) * 2],
                              *B = ta[((size_t)l * INFER_LORA_NM + (size_t)m) * 2 + 1];
            if (!A) continue;
            infer_lora_site *st = &a->site[l * INFER_LORA_NM + m];
            int off, rows, in, r = (int)A->dims[1];
            site_shape(w, f, m, &off, &rows, &in);
            float *Ad = p, *BT = Ad + (size_t)r * in;
            widen(g, A, Ad);
            widen(g, B, tmp); /* (rows, r) */
            /* q and k rows in llama.cpp's RoPE order (a llama file's, as the model's own q and
             * k; a fused qkv's first NH + NKV heads): into the engine's, as linear() puts the
             * model's own */
            int pairs = !f->rope_pairs        ? 0
                        : m == INFER_LORA_Q   ? NH
                        : m == INFER_LORA_K   ? NKV
                        : m == INFER_LORA_QKV ? NH + NKV
                                              : 0;
            for (int j = 0; j < rows; j++) {
                int dj = j < pairs * HS ? ckpt_rope_hearth_row(j, HS) : j;
                for (int t = 0; t < r; t++) BT[(size_t)t * rows + dj] = tmp[(size_t)j * r + t];
            }
            *st = (infer_lora_site){.A = Ad,
                                    .BT = BT,
                                    .r = r,
                                    .in = in,
                                    .out = rows,
                                    .off = off,
                                    .s = a->alpha != 0 ? scale * a->alpha / (float)r : scale};
            p += (size_t)r * ((size_t)in + (size_t)rows);
            a->n_mats++;
            if (r > a->max_rank) a->max_rank = r;
        }
    if (!a->n_mats) {
        rc = base_fail(e, BASE_EFORMAT, "%s holds no LoRA matrices", path);
        goto out;
    }
    a->w = w;
    a->n_floats = floats;
out:
    free(ta);
    free(tmp);
    gguf_close(g);
    if (rc) {
        infer_lora_free(a);
        return rc;
    }
    *out = a;
    return BASE_OK;
}
