/* base/filekind.c: what a file is, from its first bytes (and what a directory holds), so that a
 * file given in the wrong place is named ("x.htok is a hearth vocabulary") instead of failing
 * deep inside a parser with a number read from the wrong format. Recognises hearth's own files
 * (docs/FORMATS.md) and the ecosystem's: GGUF, safetensors, PyTorch, ONNX, archives, text. */
#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const kind_names[BASE_FILE_N_KINDS] = {
    [BASE_FILE_UNKNOWN] = "a file of unknown kind",
    [BASE_FILE_EMPTY] = "an empty file",
    [BASE_FILE_DIR] = "a directory",
    [BASE_FILE_CKPT_DIR] = "a hearth checkpoint directory",
    [BASE_FILE_RUN_DIR] = "a hearth run directory",
    [BASE_FILE_PREPARED_DIR] = "a hearth prepared-data directory (`hearth prepare`)",
    [BASE_FILE_GGUF] = "a GGUF file",
    [BASE_FILE_SAFETENSORS] = "a safetensors file",
    [BASE_FILE_HTOK] = "a hearth vocabulary (HTOK)",
    [BASE_FILE_HSHD] = "a hearth token shard (HSHD)",
    [BASE_FILE_HNSW] = "a hearth HNSW index",
    [BASE_FILE_HFIX] = "a hearth test fixture (HFIX)",
    [BASE_FILE_PYTORCH] = "a PyTorch checkpoint (zip with data.pkl)",
    [BASE_FILE_PICKLE] = "a Python pickle (PyTorch's legacy format)",
    [BASE_FILE_ONNX] = "an ONNX model",
    [BASE_FILE_ZIP] = "a zip archive",
    [BASE_FILE_GZIP] = "a gzip file",
    [BASE_FILE_SQLITE] = "an SQLite database",
    [BASE_FILE_JSON] = "a JSON file",
    [BASE_FILE_TEXT] = "a text file",
};

const char *base_file_kind_name(base_file_kind k) {
    return (unsigned)k < BASE_FILE_N_KINDS ? kind_names[k] : kind_names[BASE_FILE_UNKNOWN];
}

static int has_entry(const char *dir, const char *name) {
    char p[4096];
    struct stat sb;
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof p && stat(p, &sb) == 0;
}

static base_file_kind dir_kind(const char *path) {
    if (has_entry(path, "manifest.json")) return BASE_FILE_CKPT_DIR;
    if (has_entry(path, "prepare.json")) return BASE_FILE_PREPARED_DIR;
    if (has_entry(path, "latest")) return BASE_FILE_RUN_DIR;
    DIR *d = opendir(path);
    base_file_kind k = BASE_FILE_DIR;
    for (struct dirent *de; d && k == BASE_FILE_DIR && (de = readdir(d));)
        if (!strncmp(de->d_name, "step_", 5)) k = BASE_FILE_RUN_DIR;
    if (d) closedir(d);
    return k;
}

/* Whether the n bytes at p are UTF-8 text without NULs (a character cut at the end of the
 * sample is fine). */
static int looks_like_text(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        if (p[i] == 0) return 0;
        size_t k = base_utf8_len(p + i, n - i);
        if (!k) return n - i < 4 && p[i] >= 0xc0; /* a character the sample cut */
        i += k;
    }
    return 1;
}

base_file_kind base_file_kind_sniff(const void *head, size_t n, uint64_t file_size,
                                    const char *name) {
    const unsigned char *p = head;
    if (file_size == 0) return BASE_FILE_EMPTY;
    if (n >= 4 && !memcmp(p, "GGUF", 4)) return BASE_FILE_GGUF;
    if (n >= 4 && !memcmp(p, "HTOK", 4)) return BASE_FILE_HTOK;
    if (n >= 4 && !memcmp(p, "HSHD", 4)) return BASE_FILE_HSHD;
    if (n >= 4 && !memcmp(p, "HFIX", 4)) return BASE_FILE_HFIX;
    if (n >= 8 && !memcmp(p, "HRTHNSW1", 8)) return BASE_FILE_HNSW;
    if (n >= 16 && !memcmp(p, "SQLite format 3", 16)) return BASE_FILE_SQLITE;
    /* safetensors: an 8-byte little-endian header length (at most 100 MB, the format's own
     * limit), then '{'. One that runs past the file is still a (truncated) safetensors file. */
    if (n >= 9 && p[8] == '{') {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | p[i];
        if (h >= 2 && h <= 100000000) return BASE_FILE_SAFETENSORS;
    }
    if (n >= 4 && !memcmp(p, "PK\3\4", 4)) {
        /* torch.save's zip: every entry is under ARCHIVE/, with ARCHIVE/data.pkl among them */
        for (size_t i = 0; i + 8 <= n; i++)
            if (!memcmp(p + i, "data.pkl", 8)) return BASE_FILE_PYTORCH;
        return BASE_FILE_ZIP;
    }
    if (n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5) return BASE_FILE_PICKLE;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) return BASE_FILE_GZIP;
    /* ONNX is a protobuf ModelProto with no magic: field 1 (ir_version, a small varint) first;
     * the name has to agree */
    if (n >= 2 && p[0] == 0x08 && p[1] < 0x80 && name && strlen(name) > 5 &&
        !strcmp(name + strlen(name) - 5, ".onnx"))
        return BASE_FILE_ONNX;
    if (looks_like_text(p, n)) {
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r')) i++;
        if (i < n && (p[i] == '{' || p[i] == '[')) return BASE_FILE_JSON;
        return BASE_FILE_TEXT;
    }
    return BASE_FILE_UNKNOWN;
}

int base_file_kind_of(const char *path, base_file_kind *out, base_err *e) {
    struct stat sb;
    *out = BASE_FILE_UNKNOWN;
    if (stat(path, &sb) != 0)
        return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        *out = dir_kind(path);
        return BASE_OK;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char head[BASE_FILE_SNIFF_BYTES];
    size_t n = fread(head, 1, sizeof head, f);
    int err = ferror(f);
    fclose(f);
    if (err) return base_fail(e, BASE_EIO, "cannot read %s", path);
    *out = base_file_kind_sniff(head, n, (uint64_t)sb.st_size, path);
    return BASE_OK;
}
