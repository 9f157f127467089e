/* cli/cmd_quantize.c: `hearth quantize IN.gguf OUT.gguf TYPE` — a float GGUF model (F32, F16 or
 * BF16 tensors) to one of the weight types quant.h computes with: every matrix (a tensor of two
 * dimensions) in TYPE, vectors (norms, biases) left as they are, the metadata copied. A matrix
 * whose rows are no whole number of TYPE's blocks falls back as llama.cpp's quantizer does
 * (Q2_K and Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0; to F16 when that does not
 * fit either) and says so. The quantizers are quant_quantize_row's. */
#include "cli.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* llama.cpp's general.file_type for a file mostly of type t (llama_ftype). */
static uint32_t file_type(int t) {
    switch (t) {
    case QUANT_F32:
        return 0;
    case QUANT_F16:
        return 1;
    case QUANT_Q4_0:
        return 2;
    case QUANT_Q4_1:
        return 3;
    case QUANT_Q8_0:
        return 7;
    case QUANT_Q5_0:
        return 8;
    case QUANT_Q5_1:
        return 9;
    case QUANT_Q2_K:
        return 10;
    case QUANT_Q3_K:
        return 11; /* Q3_K_S: every matrix Q3_K */
    case QUANT_Q4_K:
        return 14; /* Q4_K_S */
    case QUANT_Q5_K:
        return 16; /* Q5_K_S */
    case QUANT_Q6_K:
        return 18;
    case QUANT_BF16:
        return 32;
    default:
        return 0;
    }
}

static int fallback(int t) {
    switch (t) {
    case QUANT_Q2_K:
    case QUANT_Q3_K:
        return QUANT_Q4_0;
    case QUANT_Q4_K:
        return QUANT_Q5_0;
    case QUANT_Q5_K:
        return QUANT_Q5_1;
    case QUANT_Q6_K:
        return QUANT_Q8_0;
    default:
        return QUANT_F16;
    }
}

static int parse_type(const char *s) {
    for (int t = 0; t < QUANT_N_IDS; t++) {
        const quant_traits *q = quant_traits_of(t);
        if (q && !strcasecmp(s, q->name)) return t;
    }
    return -1;
}

int cli_quantize(int argc, char **argv) {
    const cli_opt opts[] = {CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "quantize",
        .usage = "usage: hearth quantize IN.gguf OUT.gguf TYPE",
        .about = "A float GGUF model (F32, F16 or BF16 tensors) with every matrix in TYPE: F32,\n"
                 "F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K or Q6_K.\n"
                 "Norms and biases stay as they are; the metadata (tokenizer included) is\n"
                 "copied. A matrix whose rows do not fit TYPE's blocks falls back as llama.cpp's\n"
                 "llama-quantize does (Q4_K -> Q5_0, ..., F16 at last), and each is named.",
        .opts = opts};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos != 3) return cli_usage_error(&cmd, "IN, OUT and TYPE are required");
    const char *in = argv[1], *out = argv[2];
    int type = parse_type(argv[3]);
    if (type < 0) return cli_usage_error(&cmd, "unknown type '%s'", argv[3]);
    if (!quant_type_supported(type) || type == QUANT_Q8_1 || type == QUANT_Q8_K) {
        fprintf(stderr,
                "hearth: quantize: %s is not supported (hearth writes F32, F16, BF16, "
                "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)\n",
                quant_type_name(type));
        return 2;
    }
    base_err e = {0};
    gguf_file *g = NULL;
    gguf_writer *w = NULL;
    size_t nt = 0, in_bytes = 0, out_bytes = 0, n_fallback = 0;
    void **bufs = NULL;
    float *row = NULL;
    int rc = gguf_open(in, &g, &e);
    if (!rc) rc = gguf_writer_create(&w, &e);
    if (!rc) {
        nt = gguf_n_tensors(g);
        bufs = calloc(nt + 1, sizeof *bufs);
        if (!bufs) rc = base_fail(&e, BASE_ENOMEM, "out of memory");
    }
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
        gguf_set_u32(w, "general.file_type", file_type(type));
        gguf_set_u32(w, "general.quantization_version", 2);
    }
    for (size_t i = 0; !rc && i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        const char *nm = t->name.ptr;
        int nl = (int)(t->name.len > 80 ? 80 : t->name.len);
        if (t->type != QUANT_F32 && t->type != QUANT_F16 && t->type != QUANT_BF16) {
            rc = base_fail(&e, BASE_EINVAL,
                           "%s: tensor %.*s is %s: quantize starts from F32, F16 or BF16 "
                           "tensors",
                           in, nl, nm, quant_type_name((int)t->type));
            break;
        }
        size_t cols = (size_t)t->dims[0], rows = 1, irb, orb;
        for (uint32_t d = 1; d < t->n_dims; d++) rows *= (size_t)t->dims[d];
        quant_row_bytes((int)t->type, cols, &irb, &e);
        const uint8_t *src = gguf_data(g) + gguf_data_offset(g) + t->offset;
        if (t->offset + rows * irb > gguf_size(g) - gguf_data_offset(g)) {
            rc = base_fail(&e, BASE_EFORMAT, "%s: tensor %.*s runs past the end of the file", in,
                           nl, nm);
            break;
        }
        int to = t->n_dims == 2 ? type : (int)t->type;
        base_err re;
        if (quant_row_bytes(to, cols, &orb, &re)) {
            int fb = fallback(to);
            if (quant_row_bytes(fb, cols, &orb, &re)) fb = QUANT_F16;
            quant_row_bytes(fb, cols, &orb, &re);
            fprintf(stderr, "%.*s: rows of %zu are no whole number of %s blocks (%d): %s\n", nl, nm,
                    cols, quant_type_name(to), quant_traits_of(to)->block, quant_type_name(fb));
            to = fb;
            n_fallback++;
        }
        uint8_t *dst = malloc(rows * orb > 0 ? rows * orb : 1);
        float *r2 = realloc(row, cols * sizeof(float));
        if (!dst || !r2) {
            free(dst);
            rc = base_fail(&e, BASE_ENOMEM, "out of memory");
            break;
        }
        row = r2;
        bufs[i] = dst;
        for (size_t r = 0; r < rows; r++) {
            quant_dequantize_row((int)t->type, src + r * irb, row, cols);
            quant_quantize_row(to, row, dst + r * orb, cols);
        }
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len > 255 ? 255 : t->name.len), nm);
        gguf_add_tensor(w, name, t->n_dims, t->dims, (uint32_t)to, dst, rows * orb);
        in_bytes += rows * irb;
        out_bytes += rows * orb;
    }
    if (!rc) rc = gguf_writer_save(w, out, &e);
    if (rc)
        fprintf(stderr, "hearth: quantize: %s\n", e.msg);
    else
        printf("quantized %s -> %s (%s): %zu tensors, %.2f MB -> %.2f MB%s\n", in, out,
               quant_type_name(type), nt, (double)in_bytes / 1e6, (double)out_bytes / 1e6,
               n_fallback ? " (some fell back, named above)" : "");
    for (size_t i = 0; bufs && i < nt; i++) free(bufs[i]);
    free(bufs);
    free(row);
    gguf_writer_free(w);
    gguf_close(g);
    return rc ? 1 : 0;
}
