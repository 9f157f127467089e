/* cli/cmd_quantize.c: `hearth quantize IN OUT TYPE` — a model in one of llama-quantize's file
 * types (Q8_0, Q4_K_M, ...). IN is a float GGUF file (F32, F16 or BF16 matrices: its tensors are
 * converted and its metadata copied) or anything `hearth export --format gguf` reads (a run, a
 * checkpoint, a safetensors export: the same code as `export --type`). Which tensor gets which
 * type and the fallbacks are ckpt_gguf_quant's (gguf_model.h), llama.cpp's rule. */
#include "ckpt/gguf_model.h"
#include "cli.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether path starts with GGUF's magic. */
static int is_gguf(const char *path) {
    char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(m, "GGUF", 4);
}

/* How many tensors' names contain s (exact: are s), as llama.cpp counts them (n_attention_wv,
 * n_ffn_down: one per layer; has_output: "output.weight" exactly, not "attn_output.weight"). */
static int count_named(const gguf_file *g, const char *s, int exact) {
    int n = 0;
    size_t k = strlen(s);
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        gguf_str t = gguf_tensor_at(g, i)->name;
        if (exact && (t.len != k || memcmp(t.ptr, s, k))) continue;
        for (size_t j = 0; j + k <= t.len; j++)
            if (!memcmp(t.ptr + j, s, k)) {
                n++;
                break;
            }
    }
    return n;
}

/* Heads per KV head from the architecture's keys (1 when absent or odd). */
static int gqa_of(const gguf_file *g) {
    gguf_str a;
    base_err e;
    int64_t h = 0, kv = 0;
    char k[160];
    if (gguf_get_str(g, "general.architecture", &a, &e) || a.len > 100) return 1;
    snprintf(k, sizeof k, "%.*s.attention.head_count", (int)a.len, a.ptr);
    if (gguf_get_int(g, k, &h, &e)) return 1;
    snprintf(k, sizeof k, "%.*s.attention.head_count_kv", (int)a.len, a.ptr);
    if (gguf_find(g, k) < 0 || gguf_get_int(g, k, &kv, &e)) kv = h;
    return kv > 0 && h > 0 && h % kv == 0 && h / kv < 1024 ? (int)(h / kv) : 1;
}

static int quantize_gguf(const char *in, const char *out, const char *type, int pure) {
    base_err e = {0};
    gguf_file *g = NULL;
    gguf_writer *w = NULL;
    ckpt_gguf_quant *q = NULL;
    int rc = gguf_open(in, &g, &e);
    if (!rc)
        rc = ckpt_gguf_quant_create(&q, type, pure, count_named(g, "attn_v.weight", 0),
                                    count_named(g, "ffn_down.weight", 0), gqa_of(g),
                                    count_named(g, "output.weight", 1) > 0, stderr, &e);
    if (!rc) rc = gguf_writer_create(&w, &e);
    /* the metadata, but the file type (ours) and the alignment (the writer's) */
    for (int64_t i = 0; !rc && i < (int64_t)gguf_n_kv(g); i++) {
        gguf_str k = gguf_kv_key(g, i);
        if ((k.len == 17 && !memcmp(k.ptr, "general.file_type", 17)) ||
            (k.len == 17 && !memcmp(k.ptr, "general.alignment", 17)) ||
            (k.len == 28 && !memcmp(k.ptr, "general.quantization_version", 28)))
            continue;
        const uint8_t *p;
        size_t n;
        if (!(rc = gguf_kv_raw(g, i, &p, &n, &e))) gguf_add_kv_raw(w, p, n);
    }
    if (!rc) {
        uint32_t ft = ckpt_gguf_quant_file_type(q);
        gguf_set_u32(w, "general.file_type", ft);
        if (ft != 0 && ft != 1 && ft != 32) gguf_set_u32(w, "general.quantization_version", 2);
    }
    for (size_t i = 0; !rc && i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len > 255 ? 255 : t->name.len),
                 t->name.ptr);
        size_t cols = (size_t)t->dims[0], rows = 1, irb;
        base_err re;
        if (quant_row_bytes((int)t->type, cols, &irb, &re)) {
            rc = base_fail(&e, BASE_EFORMAT, "%s: tensor %s: %s", in, name, re.msg);
            break;
        }
        int bad = 0;
        for (uint32_t d = 1; !bad && d < t->n_dims; d++) {
            bad = t->dims[d] && rows > SIZE_MAX / t->dims[d];
            rows *= (size_t)t->dims[d];
        }
        uint64_t room = gguf_size(g) - gguf_data_offset(g);
        if (bad || (rows && irb > SIZE_MAX / rows) || t->offset > room ||
            rows * irb > room - t->offset) {
            rc = base_fail(&e, BASE_EFORMAT, "%s: tensor %s runs past the end of the file", in,
                           name);
            break;
        }
        const uint8_t *src = gguf_data(g) + gguf_data_offset(g) + t->offset;
        if ((rc = ckpt_gguf_quant_add(q, w, name, t->n_dims, t->dims, (int)t->type, src, &e))) {
            char m[sizeof e.msg];
            snprintf(m, sizeof m, "%s", e.msg);
            base_fail(&e, rc, "%s: %s", in, m);
        }
    }
    if (!rc) rc = gguf_writer_save(w, out, &e);
    if (rc) {
        fprintf(stderr, "hearth: quantize: %s\n", e.msg);
    } else {
        ckpt_gguf_quant_stats st = ckpt_gguf_quant_get_stats(q);
        printf("quantized %s -> %s (%s%s): %zu tensors, %.2f MB -> %.2f MB%s\n", in, out,
               ckpt_gguf_quant_name(q), pure ? " pure" : "", st.n_tensors,
               (double)st.in_bytes / 1e6, (double)st.out_bytes / 1e6,
               st.n_fallback ? " (some fell back, named above)" : "");
    }
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
    gguf_close(g);
    return rc ? 1 : 0;
}

int cli_quantize(int argc, char **argv) {
    int pure = 0;
    const cli_opt opts[] = {
        CLI_OPT_FLAG("pure", 0, &pure,
                     "every matrix in TYPE's base type, no mix (llama-quantize --pure)"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "quantize",
        .usage = "usage: hearth quantize [--pure] IN OUT.gguf TYPE",
        .about =
            "IN (a float GGUF model with F32, F16 or BF16 matrices, or a run, checkpoint or\n"
            "exported safetensors file) as a GGUF file of llama-quantize's TYPE: F32, F16,\n"
            "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L,\n"
            "Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K (Q3_K, Q4_K, Q5_K are the _M mixes, as in\n"
            "llama-quantize). Each matrix gets the type llama-quantize gives it (Q4_K_M: the\n"
            "output matrix, and attn_v and ffn_down of some layers, Q6_K; quantized types\n"
            "put the output matrix in Q6_K, Q8_0 aside); norms and biases stay as they are;\n"
            "a GGUF's metadata (tokenizer included) is copied. A matrix whose rows do not fit\n"
            "its type's blocks falls back as llama-quantize does (Q4_K -> Q5_0, ..., F16 at\n"
            "last), and each is named.",
        .opts = opts};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos != 3) return cli_usage_error(&cmd, "IN, OUT and TYPE are required");
    const char *in = argv[1], *out = argv[2], *type = argv[3];
    base_err e = {0};
    ckpt_gguf_quant *probe = NULL;
    if (ckpt_gguf_quant_create(&probe, type, pure, 0, 0, 1, 1, NULL, &e)) {
        fprintf(stderr, "hearth: quantize: %s\n", e.msg);
        return 2;
    }
    ckpt_gguf_quant_free(probe);
    return is_gguf(in) ? quantize_gguf(in, out, type, pure)
                       : cli_export_gguf(in, NULL, out, type, pure);
}
