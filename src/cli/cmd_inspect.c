/* cli/cmd_inspect.c: `hearth inspect PATH` — what a checkpoint directory or a safetensors file
 * holds, with every checksum verified. Exit status 1 when anything fails verification. */
#include "ckpt/ckpt.h"
#include "ckpt/export.h"
#include "ckpt/safetensors.h"
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hearth inspect PATH\n\n"
               "PATH is a checkpoint directory (RUN/step_NNNNNNNN): its manifest, each file's\n"
               "size and CRC-32C checked (OK/BAD), the trainer state and the model's tensors;\n"
               "or a safetensors file: its metadata and tensors. Exits 1 if anything is BAD.\n");
}

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
        char *c = json_dumps(json_object_get(tj, "config"), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        char *r = json_dumps(json_object_get(tj, "run"), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        char *d = json_dumps(json_object_get(tj, "data_pos"), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
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

int cli_inspect(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || (argv[1][0] == '-' && argv[1][1])) {
        fprintf(stderr, "hearth: inspect: expected one PATH%s%s%s\n", argc > 1 ? " (got '" : "",
                argc > 1 ? argv[1] : "", argc > 1 ? "'...)" : "");
        usage(stderr);
        return 2;
    }
    const char *path = argv[1];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "hearth: inspect: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(sb.st_mode)) return inspect_file(path);
    char p[4096];
    snprintf(p, sizeof p, "%s/manifest.json", path);
    if (stat(p, &sb) != 0) {
        fprintf(stderr,
                "hearth: inspect: %s is not a checkpoint directory (no manifest.json; a run's "
                "checkpoints are its step_NNNNNNNN directories)\n",
                path);
        return 2;
    }
    return inspect_dir(path);
}
