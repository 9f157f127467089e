/* ckpt/lora_io.c: fine-tuning's files (lora_io.h). */
#include "ckpt/lora_io.h"

#include "ckpt/safetensors.h"
#include "ckpt_int.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's matrix names of the targets (blk.N.<name>.weight), lora.h's order */
static const char *const gguf_mat[NN_LORA_NT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};

/* ---- llama.cpp LoRA adapter GGUF */

int ckpt_lora_write_gguf(const char *path, const nn_model *m, const nn_lora *a, base_err *e) {
    const nn_config *c = &m->cfg;
    int HS = c->d_model / c->n_head, r = a->rank;
    gguf_writer *w;
    int rc = gguf_writer_create(&w, e);
    if (rc) return rc;
    gguf_set_str(w, "general.architecture", c->family == NN_LLAMA ? "llama" : "gpt2");
    gguf_set_str(w, "general.type", "adapter");
    gguf_set_str(w, "general.name", "hearth LoRA adapter");
    gguf_set_str(w, "adapter.type", "lora");
    gguf_set_f32(w, "adapter.lora.alpha", a->alpha);
    /* q and k B rows in llama.cpp's RoPE order: copies, kept until the save */
    float *perm = malloc(a->n_params * sizeof(float));
    if (!perm) {
        gguf_writer_free(w);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    size_t used = 0;
    char name[96];
    for (int l = 0; l < a->L; l++)
        for (int t = 0; t < NN_LORA_NT; t++) {
            const nn_lora_site *s = nn_lora_at(a, l, t);
            if (!s->A) continue;
            uint64_t da[2] = {(uint64_t)s->in, (uint64_t)r},
                     db[2] = {(uint64_t)r, (uint64_t)s->out};
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, gguf_mat[t]);
            gguf_add_tensor_f32(w, name, 2, da, s->A);
            const float *B = s->B;
            if (c->family == NN_LLAMA && (t == NN_LORA_Q || t == NN_LORA_K)) {
                float *dst = perm + used;
                ckpt_rope_rows(dst, s->B, s->out / HS, HS, (size_t)r, 1);
                used += (size_t)s->out * r;
                B = dst;
            }
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, gguf_mat[t]);
            gguf_add_tensor_f32(w, name, 2, db, B);
        }
    rc = gguf_writer_save(w, path, e);
    gguf_writer_free(w);
    free(perm);
    return rc;
}

int ckpt_lora_tensor_name(const gguf_str *s, const char *const *mats, int n_mats, int *l, int *m,
                          int *is_b) {
    char buf[128], mat[64];
    if (s->len >= sizeof buf) return -1;
    memcpy(buf, s->ptr, s->len);
    buf[s->len] = 0;
    int n = 0;
    if (sscanf(buf, "blk.%d.%63[a-z_].weight.lora_%n", l, mat, &n) != 2 || n == 0) return -1;
    if ((buf[n] != 'a' && buf[n] != 'b') || buf[n + 1]) return -1;
    *is_b = buf[n] == 'b';
    for (int i = 0; i < n_mats; i++)
        if (!strcmp(mat, mats[i])) {
            *m = i;
            return 0;
        }
    return -1;
}

int ckpt_lora_is_adapter(const gguf_file *g) {
    gguf_str s;
    base_err e;
    return !gguf_get_str(g, "general.type", &s, &e) && s.len == 7 && !memcmp(s.ptr, "adapter", 7) &&
           !gguf_get_str(g, "adapter.type", &s, &e) && s.len == 4 && !memcmp(s.ptr, "lora", 4);
}

static int open_adapter(const char *path, gguf_file **g, float *alpha, base_err *e) {
    int rc = gguf_open(path, g, e);
    if (rc) return rc;
    double al;
    if (!ckpt_lora_is_adapter(*g) || gguf_get_float(*g, "adapter.lora.alpha", &al, e)) {
        gguf_close(*g);
        *g = NULL;
        return base_fail(e, BASE_EFORMAT,
                         "%s is not a LoRA adapter GGUF (general.type adapter, adapter.type lora, "
                         "adapter.lora.alpha)",
                         path);
    }
    *alpha = (float)al;
    return BASE_OK;
}

int ckpt_lora_gguf_info(const char *path, int *rank, float *alpha, unsigned *targets, base_err *e) {
    gguf_file *g;
    int rc = open_adapter(path, &g, alpha, e);
    if (rc) return rc;
    *rank = 0;
    *targets = 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        int l, tg, b;
        if (ckpt_lora_tensor_name(&t->name, gguf_mat, NN_LORA_NT, &l, &tg, &b)) {
            rc = base_fail(e, BASE_EFORMAT, "%s: tensor %.*s is not a LoRA matrix hearth knows",
                           path, (int)(t->name.len > 80 ? 80 : t->name.len), t->name.ptr);
            break;
        }
        *targets |= 1u << tg;
        if (!b && t->n_dims == 2) *rank = (int)t->dims[1];
    }
    if (!rc && (!*rank || !*targets))
        rc = base_fail(e, BASE_EFORMAT, "%s holds no LoRA matrices", path);
    gguf_close(g);
    return rc;
}

int ckpt_lora_read_gguf(const char *path, const nn_model *m, nn_lora *a, base_err *e) {
    const nn_config *c = &m->cfg;
    int HS = c->d_model / c->n_head, rank;
    float alpha;
    unsigned targets;
    int rc = ckpt_lora_gguf_info(path, &rank, &alpha, &targets, e);
    if (rc) return rc;
    if (rank != a->rank || targets != a->targets || alpha != a->alpha)
        return base_fail(e, BASE_EINVAL,
                         "%s has rank %d, alpha %g and %u targets; expected rank %d, alpha %g",
                         path, rank, (double)alpha, (unsigned)__builtin_popcount(targets), a->rank,
                         (double)a->alpha);
    gguf_file *g;
    if ((rc = open_adapter(path, &g, &alpha, e))) return rc;
    char name[96];
    for (int l = 0; !rc && l < a->L; l++)
        for (int t = 0; !rc && t < NN_LORA_NT; t++) {
            nn_lora_site *s = nn_lora_at(a, l, t);
            if (!s->A) continue;
            for (int b = 0; !rc && b < 2; b++) {
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, gguf_mat[t],
                         b ? 'b' : 'a');
                const gguf_tensor *gt = ckpt_gguf_tensor(g, name);
                uint64_t d0 = b ? (uint64_t)rank : (uint64_t)s->in;
                uint64_t d1 = b ? (uint64_t)s->out : (uint64_t)rank;
                size_t bytes = 0;
                if (!gt) {
                    rc = base_fail(e, BASE_EFORMAT, "%s: tensor %s is missing", path, name);
                } else if (gt->n_dims != 2 || gt->dims[0] != d0 || gt->dims[1] != d1 ||
                           gt->type != 0) {
                    rc = base_fail(e, BASE_EFORMAT,
                                   "%s: tensor %s is not F32 of dims [%llu, %llu] (this model's)",
                                   path, name, (unsigned long long)d0, (unsigned long long)d1);
                } else if (!(rc = ckpt_gguf_tensor_bytes(g, gt, name, &bytes, e))) {
                    const float *src =
                        (const float *)(gguf_data(g) + gguf_data_offset(g) + gt->offset);
                    float *dst = b ? s->B : s->A;
                    if (b && c->family == NN_LLAMA && (t == NN_LORA_Q || t == NN_LORA_K))
                        ckpt_rope_rows(dst, src, s->out / HS, HS, (size_t)rank, 0);
                    else
                        memcpy(dst, src, bytes);
                }
            }
        }
    gguf_close(g);
    return rc;
}

/* ---- PEFT */

static const char *const hf_module[NN_LORA_NT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

int ckpt_lora_write_peft(const char *dir, const nn_model *m, const nn_lora *a,
                         const char *base_name, base_err *e) {
    if (m->cfg.family != NN_LLAMA)
        return base_fail(e, BASE_EINVAL,
                         "PEFT export is for Llama-family models (GPT-2's fused c_attn has no q, k "
                         "and v modules); the GGUF adapter works for both");
    int rc = base_mkdir_p(dir, e);
    if (rc) return rc;
    int n = 0, r = a->rank;
    ckpt_st_tensor *t = calloc((size_t)a->n_tensors, sizeof *t);
    char(*names)[128] = calloc((size_t)a->n_tensors, sizeof *names);
    json_t *mods = json_array();
    if (!t || !names || !mods) {
        free(t);
        free(names);
        json_decref(mods);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (int tg = 0; tg < NN_LORA_NT; tg++)
        if (a->targets & (1u << tg))
            json_array_append_new(mods, json_string(nn_lora_peft_names[tg]));
    for (int l = 0; l < a->L; l++)
        for (int tg = 0; tg < NN_LORA_NT; tg++) {
            const nn_lora_site *s = nn_lora_at(a, l, tg);
            if (!s->A) continue;
            for (int b = 0; b < 2; b++) {
                snprintf(names[n], sizeof names[0],
                         "base_model.model.model.layers.%d.%s.lora_%c.weight", l, hf_module[tg],
                         b ? 'B' : 'A');
                t[n] = (ckpt_st_tensor){
                    names[n],
                    2,
                    {b ? (uint64_t)s->out : (uint64_t)r, b ? (uint64_t)r : (uint64_t)s->in},
                    b ? s->B : s->A};
                n++;
            }
        }
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = ckpt_st_write(path, t, n, NULL, NULL, NULL, e);
    json_t *cfg = json_object();
    json_object_set_new(cfg, "peft_type", json_string("LORA"));
    json_object_set_new(cfg, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(cfg, "base_model_name_or_path",
                        base_name ? json_string(base_name) : json_null());
    json_object_set_new(cfg, "r", json_integer(r));
    json_object_set_new(cfg, "lora_alpha", json_real(a->alpha));
    json_object_set_new(cfg, "lora_dropout", json_real(a->dropout));
    json_object_set_new(cfg, "target_modules", mods);
    json_object_set_new(cfg, "bias", json_string("none"));
    json_object_set_new(cfg, "fan_in_fan_out", json_false());
    json_object_set_new(cfg, "inference_mode", json_true());
    json_object_set_new(cfg, "init_lora_weights", json_true());
    json_object_set_new(cfg, "use_rslora", json_false());
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(cfg);
    if (!rc && !text) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        rc = base_write_atomic(path, text, strlen(text), e);
    }
    free(text);
    free(t);
    free(names);
    return rc;
}

char *ckpt_gguf_chat_template(const char *path) {
    gguf_file *g = NULL;
    base_err e = {0};
    size_t n = path ? strlen(path) : 0;
    if (n < 6 || strcmp(path + n - 5, ".gguf") || gguf_open(path, &g, &e)) return NULL;
    gguf_str t;
    char *copy = NULL;
    if (gguf_find(g, "tokenizer.chat_template") >= 0 &&
        !gguf_get_str(g, "tokenizer.chat_template", &t, &e) && (copy = malloc(t.len + 1)))
        memcpy(copy, t.ptr, t.len), copy[t.len] = 0;
    gguf_close(g);
    return copy;
}
