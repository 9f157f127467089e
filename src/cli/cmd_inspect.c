/* cli/cmd_inspect.c: `hearth inspect PATH` — what a file is and holds: a checkpoint directory
 * with every checksum verified, a safetensors or GGUF file's metadata and tensors, a vocabulary;
 * any other file is named by its kind. Exit status 1 when anything fails verification. */
#include "ckpt/ckpt.h"
#include "ckpt/export.h"
#include "ckpt/gguf_model.h"
#include "ckpt/safetensors.h"
#include "cli.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void print_shape(const ckpt_st_entry *en) {
    putchar('[');
    for (int d = 0; d < en->ndim; d++) printf("%s%" PRIu64, d ? ", " : "", en->shape[d]);
    putchar(']');
}

/* The tensors of a parsed file, one per line; returns the total data bytes. */
static uint64_t print_tensors(const ckpt_st *st) {
    uint64_t total = 0;
    int n = ckpt_st_count(st);
    printf("tensors: %d\n", n);
    for (int i = 0; i < n; i++) {
        const ckpt_st_entry *en = ckpt_st_entry_at(st, i);
        printf("  %-44s F32 ", en->name);
        print_shape(en);
        printf(" %" PRIu64 " bytes\n", en->numel * 4);
        total += en->numel * 4;
    }
    printf("tensor bytes: %" PRIu64 "\n", total);
    return total;
}

/* The "__metadata__" of a safetensors file (already parsed by ckpt_st_open, so well-formed). */
static void print_metadata(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    char *h = NULL;
    if (f && fread(len8, 1, 8, f) == 8) {
        uint64_t n = base_get_le64(len8);
        if (n <= CKPT_ST_MAX_HEADER && (h = malloc((size_t)n)) && fread(h, 1, (size_t)n, f) == n) {
            json_t *j = json_loadb(h, (size_t)n, 0, NULL);
            json_t *m = json_object_get(j, "__metadata__");
            const char *k;
            json_t *v;
            printf("metadata:%s\n", json_object_size(m) ? "" : " (none)");
            json_object_foreach(m, k, v) printf("  %s: %s\n", k, json_string_value(v));
            json_decref(j);
        }
    }
    free(h);
    if (f) fclose(f);
}

static int inspect_file(const char *path) {
    base_err e = {0};
    ckpt_st *st = NULL;
    if (ckpt_st_open(&st, path, &e)) {
        printf("%s: BAD: %s\n", path, e.msg);
        return 1;
    }
    printf("%s: safetensors\n", path);
    print_metadata(path);
    print_tensors(st);
    ckpt_st_free(st);
    return 0;
}

static int inspect_dir(const char *dir) {
    char p[4096];
    int bad = 0;
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    json_error_t je;
    json_t *man = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!man) {
        printf("%s: BAD: manifest: %s\n", dir, je.text);
        return 1;
    }
    json_t *files = json_object_get(man, "files");
    printf("%s: checkpoint\nmanifest: format %s, version %" JSON_INTEGER_FORMAT
           ", step %" JSON_INTEGER_FORMAT ", %zu files\n",
           dir, json_string_value(json_object_get(man, "format")) ?: "?",
           json_integer_value(json_object_get(man, "version")),
           json_integer_value(json_object_get(man, "step")), json_array_size(files));
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *f = json_array_get(files, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *hex = json_string_value(json_object_get(f, "crc32c"));
        json_int_t want = json_integer_value(json_object_get(f, "size"));
        if (!name || !hex || strchr(name, '/')) {
            printf("  BAD  entry %zu is malformed\n", i);
            bad = 1;
            continue;
        }
        snprintf(p, sizeof p, "%s/%s", dir, name);
        base_err e = {0};
        uint64_t size = 0;
        uint32_t crc = 0;
        if (ckpt_file_sum(p, &size, &crc, &e)) {
            printf("  BAD  %-24s %s\n", name, e.msg);
            bad = 1;
            continue;
        }
        char got[9];
        snprintf(got, sizeof got, "%08x", crc);
        int ok = (json_int_t)size == want && strcmp(got, hex) == 0;
        printf("  %-4s %-24s %" PRIu64 " bytes (manifest %" JSON_INTEGER_FORMAT
               "), crc32c %s (manifest %s)\n",
               ok ? "OK" : "BAD", name, size, want, got, hex);
        bad |= !ok;
    }
    json_decref(man);
    base_err e = {0};
    if (ckpt_verify(dir, &e)) {
        printf("verify: BAD: %s\n", e.msg);
        bad = 1;
    } else {
        printf("verify: OK\n");
    }

    snprintf(p, sizeof p, "%s/trainer.json", dir);
    json_t *tj = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!tj) {
        printf("trainer: BAD: %s\n", je.text);
        bad = 1;
    } else {
        char *c = json_dumps(json_object_get(tj, "config"),
                             JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        char *r = json_dumps(json_object_get(tj, "run"),
                             JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        char *d = json_dumps(json_object_get(tj, "data_pos"),
                             JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        printf("trainer: step %" JSON_INTEGER_FORMAT "\n  config: %s\n  run: %s\n  data_pos: %s\n",
               json_integer_value(json_object_get(tj, "step")), c ?: "?", r ?: "?", d ?: "?");
        free(c);
        free(r);
        free(d);
        json_decref(tj);
    }

    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ckpt_st *st = NULL;
    if (ckpt_st_open(&st, p, &e)) {
        printf("model: BAD: %s\n", e.msg);
        bad = 1;
    } else {
        printf("model.safetensors ");
        print_tensors(st);
        ckpt_st_free(st);
    }
    return bad;
}

/* ---- GGUF */

/* ggml's tensor types by id (ggml.h), for display; NULL: an id this table does not know */
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        [0] = "F32",     [1] = "F16",      [2] = "Q4_0",   [3] = "Q4_1",    [6] = "Q5_0",
        [7] = "Q5_1",    [8] = "Q8_0",     [9] = "Q8_1",   [10] = "Q2_K",   [11] = "Q3_K",
        [12] = "Q4_K",   [13] = "Q5_K",    [14] = "Q6_K",  [15] = "Q8_K",   [16] = "IQ2_XXS",
        [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
        [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",    [25] = "I16",    [26] = "I32",
        [27] = "I64",    [28] = "F64",     [29] = "IQ1_M", [30] = "BF16"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* One scalar value of type t at key (for arrays: element i of the array at idx). */
static void print_gguf_scalar(const gguf_file *g, const char *key, int64_t idx, uint64_t i,
                              uint32_t t) {
    base_err e = {0};
    if (t == GGUF_TYPE_STRING) {
        gguf_str v = {0};
        if (idx >= 0)
            v = gguf_arr_str(g, idx, i);
        else
            gguf_get_str(g, key, &v, &e);
        /* control bytes shown as '?', long strings cut */
        putchar('"');
        for (uint64_t j = 0; j < v.len && j < 60; j++)
            putchar((unsigned char)v.ptr[j] < 0x20 ? '?' : v.ptr[j]);
        printf("\"%s", v.len > 60 ? "..." : "");
    } else if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) {
        double x = 0;
        if (idx >= 0)
            x = gguf_arr_float(g, idx, i);
        else
            gguf_get_float(g, key, &x, &e);
        printf("%g", x);
    } else if (t == GGUF_TYPE_BOOL && idx < 0) {
        int b = 0;
        gguf_get_bool(g, key, &b, &e);
        printf("%s", b ? "true" : "false");
    } else {
        int64_t x = 0;
        if (idx >= 0)
            x = gguf_arr_int(g, idx, i);
        else
            gguf_get_int(g, key, &x, &e);
        printf("%lld", (long long)x);
    }
}

static int inspect_gguf(const char *path) {
    base_err e = {0};
    gguf_file *g = NULL;
    if (gguf_open(path, &g, &e)) {
        printf("%s: BAD: %s\n", path, e.msg);
        return 1;
    }
    printf("%s: GGUF version %u, %zu metadata keys, %zu tensors, alignment %u\n", path,
           gguf_version(g), gguf_n_kv(g), gguf_n_tensors(g), gguf_alignment(g));
    printf("metadata:%s\n", gguf_n_kv(g) ? "" : " (none)");
    for (size_t i = 0; i < gguf_n_kv(g); i++) {
        gguf_str k = gguf_kv_key(g, (int64_t)i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(k.len < 255 ? k.len : 255), k.ptr);
        uint32_t t = gguf_kv_type(g, (int64_t)i);
        printf("  %s: ", key);
        if (t == GGUF_TYPE_ARRAY) {
            int64_t idx;
            uint32_t et;
            uint64_t n;
            if (gguf_get_arr(g, key, -1, &idx, &et, &n, &e)) {
                printf("?\n");
                continue;
            }
            printf("[%s x %llu]", gguf_type_name(et), (unsigned long long)n);
            if (et != GGUF_TYPE_ARRAY && et != GGUF_TYPE_BOOL) {
                for (uint64_t j = 0; j < n && j < 4; j++) {
                    printf("%s", j ? ", " : " ");
                    print_gguf_scalar(g, key, idx, j, et);
                }
                printf("%s", n > 4 ? ", ..." : "");
            }
        } else {
            print_gguf_scalar(g, key, -1, 0, t);
        }
        putchar('\n');
    }
    printf("tensors: %zu\n", gguf_n_tensors(g));
    uint64_t total = 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *te = gguf_tensor_at(g, i);
        const char *tn = ggml_type_name(te->type);
        printf("  %-44.*s ", (int)te->name.len, te->name.ptr);
        if (tn)
            printf("%s [", tn);
        else
            printf("type %u [", te->type);
        uint64_t numel = 1;
        for (uint32_t d = 0; d < te->n_dims; d++) {
            printf("%s%llu", d ? ", " : "", (unsigned long long)te->dims[d]);
            numel *= te->dims[d];
        }
        printf("]");
        unsigned width = te->type == 0 ? 4 : te->type == 1 || te->type == 30 ? 2 : 0;
        if (width) {
            printf(" %llu bytes", (unsigned long long)(numel * width));
            total += numel * width;
        }
        putchar('\n');
    }
    if (total) printf("tensor bytes (F32, F16, BF16): %llu\n", (unsigned long long)total);
    /* whether hearth runs it: its architecture and shapes read as a model config */
    nn_config c;
    if (ckpt_gguf_config(g, &c, &e)) {
        printf("model: hearth cannot run it: %s\n", e.msg);
    } else {
        json_t *j = nn_config_json(&c);
        char *t =
            j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
        printf("model: %s\n", t ? t : "?");
        free(t);
        json_decref(j);
    }
    printf("verify: OK (header, metadata and tensor table within the file)\n");
    gguf_close(g);
    return 0;
}

static int inspect_vocab(const char *path) {
    base_err e = {0};
    tok_vocab *v = NULL;
    if (tok_load(path, &v, &e)) {
        printf("%s: BAD: %s\n", path, e.msg);
        return 1;
    }
    printf("%s: hearth vocabulary (HTOK)\n", path);
    cli_print_vocab(v);
    printf("verify: OK\n");
    tok_free(v);
    return 0;
}

int cli_inspect(int argc, char **argv) {
    const cli_opt opts[] = {CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "inspect",
        .usage = "usage: hearth inspect PATH",
        .about = "PATH is a checkpoint directory (RUN/step_NNNNNNNN): its manifest, each file's\n"
                 "size and CRC-32C checked (OK/BAD), the trainer state and the model's tensors;\n"
                 "a safetensors or GGUF file: its metadata and tensors (and for GGUF, whether\n"
                 "hearth runs it); or a vocabulary (.htok). Any other file is named by its kind\n"
                 "(text, PyTorch, ONNX, a token shard, ...). Exits 1 if anything is BAD or the\n"
                 "file is none of these.",
        .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos != 1)
        return cli_usage_error(&cmd, "expected one PATH%s%s%s", npos > 1 ? " (got '" : "",
                               npos > 1 ? argv[1] : "", npos > 1 ? "'...)" : "");
    const char *path = argv[1];
    base_err e = {0};
    base_file_kind kind;
    if (base_file_kind_of(path, &kind, &e)) {
        fprintf(stderr, "hearth inspect: %s\n", e.msg);
        return 2;
    }
    switch (kind) {
    case BASE_FILE_CKPT_DIR:
        return inspect_dir(path);
    case BASE_FILE_SAFETENSORS:
        return inspect_file(path);
    case BASE_FILE_GGUF:
        return inspect_gguf(path);
    case BASE_FILE_HTOK:
        return inspect_vocab(path);
    case BASE_FILE_RUN_DIR:
    case BASE_FILE_DIR:
    case BASE_FILE_PREPARED_DIR:
        fprintf(stderr,
                "hearth inspect: %s is %s, not a checkpoint directory (no manifest.json; a run's "
                "checkpoints are its step_NNNNNNNN directories)\n",
                path, base_file_kind_name(kind));
        return 2;
    default:
        printf("%s: %s: not a checkpoint, model or vocabulary that hearth reads\n", path,
               base_file_kind_name(kind));
        return 1;
    }
}
