/* gguf/gguf.c: the GGUF metadata and tensor-info reader. One pass over the header with a
 * bounds-checked cursor records where each value lives; string arrays get an offset table so
 * element i is O(1); keys are sorted once for binary-search lookup (and to reject repeats). */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type, elem_type; /* elem_type for arrays */
    uint64_t n;               /* array count; 1 for scalars */
    const uint8_t *val;       /* scalar value, string length prefix, or first array element */
    uint64_t *str_off;        /* string arrays: offset of element i's length prefix from val */
} gguf_kv;

struct gguf_file {
    const uint8_t *data;
    size_t size;
    int mapped;
    uint32_t version, alignment;
    uint64_t data_offset;
    gguf_kv *kv;
    size_t n_kv;
    size_t *sorted; /* kv indices ordered by key bytes */
    gguf_tensor *tensors;
    size_t n_tensors;
};

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    base_err *e;
} cursor;

static const char *type_names[GGUF_TYPE_COUNT] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                  "int32",  "float32", "bool",   "string", "array",
                                                  "uint64", "int64",   "float64"};

const char *gguf_type_name(uint32_t type) {
    return type < GGUF_TYPE_COUNT ? type_names[type] : "?";
}

/* Size in bytes of a fixed-size type; 0 for string, array and unknown types. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static uint64_t rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int need(cursor *c, size_t n, const char *what) {
    if (c->len - c->pos < n)
        return base_fail(c->e, BASE_EFORMAT,
                         "GGUF truncated: %s needs %zu bytes at offset %zu, file has %zu", what, n,
                         c->pos, c->len);
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return BASE_EFORMAT;
    *v = (uint32_t)rd_le(c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return BASE_EFORMAT;
    *v = rd_le(c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return BASE_EFORMAT;
    if (n > c->len - c->pos)
        return base_fail(
            c->e, BASE_EFORMAT,
            "GGUF corrupt: %s has length %llu at offset %zu, beyond the file's end (%zu)", what,
            (unsigned long long)n, c->pos - 8, c->len);
    s->ptr = (const char *)c->p + c->pos;
    s->len = n;
    c->pos += (size_t)n;
    return 0;
}

/* Reads one value of type t (not an array) and checks it; the cursor moves past it. */
static int rd_scalar(cursor *c, uint32_t t, const char *key) {
    if (t == GGUF_TYPE_STRING) {
        gguf_str s;
        return rd_str(c, &s, key);
    }
    size_t sz = scalar_size(t);
    if (need(c, sz, key)) return BASE_EFORMAT;
    if (t == GGUF_TYPE_BOOL && c->p[c->pos] > 1)
        return base_fail(c->e, BASE_EFORMAT, "GGUF corrupt: bool %s has value %u", key,
                         c->p[c->pos]);
    c->pos += sz;
    return 0;
}

static int parse_kv(cursor *c, gguf_kv *kv, char *keybuf, size_t keycap) {
    if (rd_str(c, &kv->key, "a metadata key")) return BASE_EFORMAT;
    /* a printable copy of the key for messages */
    size_t kn = kv->key.len < keycap - 1 ? (size_t)kv->key.len : keycap - 1;
    for (size_t i = 0; i < kn; i++) {
        char ch = kv->key.ptr[i];
        keybuf[i] = (ch >= 32 && ch < 127) ? ch : '?';
    }
    keybuf[kn] = 0;
    if (rd_u32(c, &kv->type, keybuf)) return BASE_EFORMAT;
    if (kv->type >= GGUF_TYPE_COUNT)
        return base_fail(c->e, BASE_EFORMAT, "GGUF corrupt: key %s has unknown value type %u",
                         keybuf, kv->type);
    kv->n = 1;
    if (kv->type != GGUF_TYPE_ARRAY) {
        kv->val = c->p + c->pos;
        return rd_scalar(c, kv->type, keybuf);
    }
    if (rd_u32(c, &kv->elem_type, keybuf) || rd_u64(c, &kv->n, keybuf)) return BASE_EFORMAT;
    if (kv->elem_type >= GGUF_TYPE_COUNT)
        return base_fail(c->e, BASE_EFORMAT, "GGUF corrupt: array %s has unknown element type %u",
                         keybuf, kv->elem_type);
    if (kv->elem_type == GGUF_TYPE_ARRAY)
        return base_fail(c->e, BASE_EFORMAT, "GGUF: nested arrays (%s) are not supported", keybuf);
    kv->val = c->p + c->pos;
    size_t left = c->len - c->pos;
    if (kv->elem_type != GGUF_TYPE_STRING) {
        size_t bytes;
        size_t sz = scalar_size(kv->elem_type);
        if (kv->n > SIZE_MAX || base_mul_size((size_t)kv->n, sz, &bytes) || bytes > left)
            return base_fail(c->e, BASE_EFORMAT,
                             "GGUF corrupt: array %s claims %llu elements of %s, more than the "
                             "%zu bytes left",
                             keybuf, (unsigned long long)kv->n, gguf_type_name(kv->elem_type),
                             left);
        if (kv->elem_type == GGUF_TYPE_BOOL)
            for (size_t i = 0; i < bytes; i++)
                if (kv->val[i] > 1)
                    return base_fail(c->e, BASE_EFORMAT, "GGUF corrupt: bool array %s has value %u",
                                     keybuf, kv->val[i]);
        c->pos += bytes;
        return 0;
    }
    /* strings: each at least its 8-byte length, so the count is bounded by the bytes left */
    if (kv->n > left / 8)
        return base_fail(c->e, BASE_EFORMAT,
                         "GGUF corrupt: string array %s claims %llu elements, more than the %zu "
                         "bytes left can hold",
                         keybuf, (unsigned long long)kv->n, left);
    kv->str_off = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
    if (!kv->str_off) return base_fail(c->e, BASE_ENOMEM, "out of memory reading array %s", keybuf);
    for (uint64_t i = 0; i < kv->n; i++) {
        kv->str_off[i] = (uint64_t)(c->p + c->pos - kv->val);
        gguf_str s;
        if (rd_str(c, &s, keybuf)) return BASE_EFORMAT;
    }
    return 0;
}

static int key_cmp(const gguf_str *a, const gguf_str *b) {
    size_t n = a->len < b->len ? (size_t)a->len : (size_t)b->len;
    int r = n ? memcmp(a->ptr, b->ptr, n) : 0;
    if (r) return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* qsort has no context argument; the parse is single-threaded per call, but two threads may
 * parse at once, so the table travels through a thread-local. */
static _Thread_local const gguf_kv *sort_kv;
static int sort_cmp(const void *a, const void *b) {
    return key_cmp(&sort_kv[*(const size_t *)a].key, &sort_kv[*(const size_t *)b].key);
}

static int parse(gguf_file *g, base_err *e) {
    cursor c = {g->data, g->size, 0, e};
    if (g->size < 4 || memcmp(g->data, "GGUF", 4) != 0)
        return base_fail(e, BASE_EFORMAT, "not a GGUF file (bad magic)");
    c.pos = 4;
    if (rd_u32(&c, &g->version, "the version")) return BASE_EFORMAT;
    if (g->version == 1)
        return base_fail(e, BASE_EFORMAT, "GGUF version 1 is not supported (only 2 and 3)");
    if (g->version != 2 && g->version != 3) {
        if (g->version == 0x02000000u || g->version == 0x03000000u)
            return base_fail(e, BASE_EFORMAT, "big-endian GGUF files are not supported");
        return base_fail(e, BASE_EFORMAT, "GGUF version %u is not supported (only 2 and 3)",
                         g->version);
    }
    uint64_t n_tensors, n_kv;
    if (rd_u64(&c, &n_tensors, "the tensor count") || rd_u64(&c, &n_kv, "the key count"))
        return BASE_EFORMAT;
    size_t left = c.len - c.pos;
    /* smallest encodings: a key/value is 8 + 4 + 1 bytes (empty key), a tensor info 8 + 4 + 8 + 4 +
     * 8 */
    if (n_kv > left / 13)
        return base_fail(e, BASE_EFORMAT, "GGUF corrupt: %llu keys cannot fit in %zu bytes",
                         (unsigned long long)n_kv, left);
    if (n_tensors > left / 32)
        return base_fail(e, BASE_EFORMAT, "GGUF corrupt: %llu tensors cannot fit in %zu bytes",
                         (unsigned long long)n_tensors, left);
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    g->sorted = malloc((size_t)(n_kv ? n_kv : 1) * sizeof *g->sorted);
    g->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->sorted || !g->tensors)
        return base_fail(e, BASE_ENOMEM, "out of memory reading a GGUF header");
    char keybuf[128];
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        int rc = parse_kv(&c, &g->kv[i], keybuf, sizeof keybuf);
        g->n_kv = i + 1; /* so that close frees what this entry allocated */
        if (rc) return rc;
        g->sorted[i] = i;
    }
    sort_kv = g->kv;
    qsort(g->sorted, g->n_kv, sizeof *g->sorted, sort_cmp);
    sort_kv = NULL;
    for (size_t i = 1; i < g->n_kv; i++) {
        const gguf_str *k = &g->kv[g->sorted[i]].key;
        if (key_cmp(k, &g->kv[g->sorted[i - 1]].key) == 0)
            return base_fail(e, BASE_EFORMAT, "GGUF corrupt: key '%.*s' appears twice",
                             (int)(k->len > 100 ? 100 : k->len), k->ptr);
    }
    g->alignment = 32;
    int64_t ai = gguf_find(g, "general.alignment");
    if (ai >= 0) {
        int64_t a;
        if (gguf_get_int(g, "general.alignment", &a, e)) return BASE_EFORMAT;
        if (a <= 0 || a > (1 << 30) || (a & (a - 1)))
            return base_fail(e, BASE_EFORMAT,
                             "GGUF corrupt: general.alignment %lld is not a power of two",
                             (long long)a);
        g->alignment = (uint32_t)a;
    }
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (rd_str(&c, &t->name, "a tensor name") ||
            rd_u32(&c, &t->n_dims, "a tensor's dimension count"))
            return BASE_EFORMAT;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return base_fail(e, BASE_EFORMAT, "GGUF corrupt: tensor %zu has %u dimensions (1..%d)",
                             i, t->n_dims, GGUF_MAX_DIMS);
        uint64_t numel = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            t->dims[d] = 1;
            if (d < t->n_dims && rd_u64(&c, &t->dims[d], "a tensor dimension")) return BASE_EFORMAT;
            if (t->dims[d] == 0 || t->dims[d] > (uint64_t)INT64_MAX / numel)
                return base_fail(e, BASE_EFORMAT, "GGUF corrupt: tensor %zu has a bad shape", i);
            numel *= t->dims[d];
        }
        if (rd_u32(&c, &t->type, "a tensor type") || rd_u64(&c, &t->offset, "a tensor offset"))
            return BASE_EFORMAT;
        if (t->offset % g->alignment)
            return base_fail(e, BASE_EFORMAT,
                             "GGUF corrupt: tensor %zu's offset %llu is not aligned to %u", i,
                             (unsigned long long)t->offset, g->alignment);
        g->n_tensors = i + 1;
    }
    uint64_t a = g->alignment;
    g->data_offset = ((uint64_t)c.pos + a - 1) / a * a;
    for (size_t i = 0; i < g->n_tensors; i++)
        if (g->data_offset > g->size || g->tensors[i].offset > g->size - g->data_offset)
            return base_fail(e, BASE_EFORMAT,
                             "GGUF truncated: tensor %zu starts beyond the file's end", i);
    return 0;
}

static gguf_file *new_file(const void *data, size_t len) {
    gguf_file *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->data = data;
    g->size = len;
    return g;
}

int gguf_parse(const void *data, size_t len, gguf_file **out, base_err *e) {
    *out = NULL;
    gguf_file *g = new_file(data, len);
    if (!g) return base_fail(e, BASE_ENOMEM, "out of memory");
    int rc = parse(g, e);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gguf_open(const char *path, gguf_file **out, base_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return base_fail(e, BASE_EIO, "%s is not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return base_fail(e, BASE_EFORMAT, "%s: too short for a GGUF file (%lld bytes)", path,
                         (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return base_fail(e, BASE_EIO, "cannot map %s: %s", path, strerror(errno));
    gguf_file *g = new_file(m, (size_t)st.st_size);
    if (!g) {
        munmap(m, (size_t)st.st_size);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    g->mapped = 1;
    int rc = parse(g, e);
    if (rc) {
        /* prefix the path to the parser's message */
        if (e) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e->msg);
            base_fail(e, rc, "%s: %s", path, msg);
        }
        gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gguf_is_mapped(const gguf_file *g) {
    return g->mapped;
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->sorted);
    free(g->tensors);
    if (g->mapped) munmap((void *)g->data, g->size);
    free(g);
}

uint32_t gguf_version(const gguf_file *g) {
    return g->version;
}
size_t gguf_n_kv(const gguf_file *g) {
    return g->n_kv;
}
gguf_str gguf_kv_key(const gguf_file *g, int64_t i) {
    BASE_ASSERT(i >= 0 && (size_t)i < g->n_kv);
    return g->kv[i].key;
}
uint32_t gguf_kv_type(const gguf_file *g, int64_t i) {
    BASE_ASSERT(i >= 0 && (size_t)i < g->n_kv);
    return g->kv[i].type;
}

int64_t gguf_find(const gguf_file *g, const char *key) {
    gguf_str k = {key, strlen(key)};
    size_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = key_cmp(&g->kv[g->sorted[mid]].key, &k);
        if (r == 0) return (int64_t)g->sorted[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int is_int_type(uint32_t t) {
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

/* The integer at p of type t, as int64; *clamped set when a uint64 did not fit. */
static int64_t int_at(const uint8_t *p, uint32_t t, int *clamped) {
    uint64_t u = rd_le(p, scalar_size(t));
    switch (t) {
    case GGUF_TYPE_INT8:
        return (int8_t)(uint8_t)u;
    case GGUF_TYPE_INT16:
        return (int16_t)(uint16_t)u;
    case GGUF_TYPE_INT32:
        return (int32_t)(uint32_t)u;
    case GGUF_TYPE_INT64:
        return (int64_t)u;
    case GGUF_TYPE_UINT64:
        if (u > (uint64_t)INT64_MAX) {
            if (clamped) *clamped = 1;
            return INT64_MAX;
        }
        return (int64_t)u;
    default:
        return (int64_t)u;
    }
}

static double float_at(const uint8_t *p, uint32_t t) {
    if (t == GGUF_TYPE_FLOAT32) {
        uint32_t u = (uint32_t)rd_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint64_t u = rd_le(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static const gguf_kv *get(const gguf_file *g, const char *key, base_err *e) {
    int64_t i = gguf_find(g, key);
    if (i < 0) {
        base_fail(e, BASE_EFORMAT, "GGUF: key %s is missing", key);
        return NULL;
    }
    return &g->kv[i];
}

static int wrong_type(const gguf_kv *kv, const char *key, const char *want, base_err *e) {
    return base_fail(e, BASE_EFORMAT, "GGUF: key %s is a%s %s, expected %s", key,
                     kv->type == GGUF_TYPE_INT8 || kv->type == GGUF_TYPE_INT16 ||
                             kv->type == GGUF_TYPE_INT32 || kv->type == GGUF_TYPE_INT64 ||
                             kv->type == GGUF_TYPE_ARRAY
                         ? "n"
                         : "",
                     gguf_type_name(kv->type), want);
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, base_err *e) {
    const gguf_kv *kv = get(g, key, e);
    if (!kv) return BASE_EFORMAT;
    if (!is_int_type(kv->type)) return wrong_type(kv, key, "an integer", e);
    int clamped = 0;
    *out = int_at(kv->val, kv->type, &clamped);
    if (clamped) return base_fail(e, BASE_EFORMAT, "GGUF: key %s is too large", key);
    return 0;
}

int gguf_get_float(const gguf_file *g, const char *key, double *out, base_err *e) {
    const gguf_kv *kv = get(g, key, e);
    if (!kv) return BASE_EFORMAT;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return wrong_type(kv, key, "a float", e);
    *out = float_at(kv->val, kv->type);
    return 0;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out, base_err *e) {
    const gguf_kv *kv = get(g, key, e);
    if (!kv) return BASE_EFORMAT;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(kv, key, "a bool", e);
    *out = kv->val[0];
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out, base_err *e) {
    const gguf_kv *kv = get(g, key, e);
    if (!kv) return BASE_EFORMAT;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(kv, key, "a string", e);
    out->len = rd_le(kv->val, 8);
    out->ptr = (const char *)kv->val + 8;
    return 0;
}

int gguf_get_arr(const gguf_file *g, const char *key, int want_elem, int64_t *idx,
                 uint32_t *elem_type, uint64_t *n, base_err *e) {
    const gguf_kv *kv = get(g, key, e);
    if (!kv) return BASE_EFORMAT;
    if (kv->type != GGUF_TYPE_ARRAY) return wrong_type(kv, key, "an array", e);
    if (want_elem >= 0 && kv->elem_type != (uint32_t)want_elem)
        return base_fail(e, BASE_EFORMAT, "GGUF: %s is an array of %s, expected %s", key,
                         gguf_type_name(kv->elem_type), gguf_type_name((uint32_t)want_elem));
    *idx = kv - g->kv;
    if (elem_type) *elem_type = kv->elem_type;
    *n = kv->n;
    return 0;
}

static const gguf_kv *arr(const gguf_file *g, int64_t idx, uint64_t i) {
    BASE_ASSERT(idx >= 0 && (size_t)idx < g->n_kv);
    const gguf_kv *kv = &g->kv[idx];
    BASE_ASSERT(kv->type == GGUF_TYPE_ARRAY && i < kv->n);
    return kv;
}

int64_t gguf_arr_int(const gguf_file *g, int64_t idx, uint64_t i) {
    const gguf_kv *kv = arr(g, idx, i);
    BASE_ASSERT(is_int_type(kv->elem_type));
    return int_at(kv->val + i * scalar_size(kv->elem_type), kv->elem_type, NULL);
}

double gguf_arr_float(const gguf_file *g, int64_t idx, uint64_t i) {
    const gguf_kv *kv = arr(g, idx, i);
    BASE_ASSERT(kv->elem_type == GGUF_TYPE_FLOAT32 || kv->elem_type == GGUF_TYPE_FLOAT64);
    return float_at(kv->val + i * scalar_size(kv->elem_type), kv->elem_type);
}

gguf_str gguf_arr_str(const gguf_file *g, int64_t idx, uint64_t i) {
    const gguf_kv *kv = arr(g, idx, i);
    BASE_ASSERT(kv->elem_type == GGUF_TYPE_STRING);
    const uint8_t *p = kv->val + kv->str_off[i];
    gguf_str s = {(const char *)p + 8, rd_le(p, 8)};
    return s;
}

size_t gguf_n_tensors(const gguf_file *g) {
    return g->n_tensors;
}
const gguf_tensor *gguf_tensor_at(const gguf_file *g, size_t i) {
    BASE_ASSERT(i < g->n_tensors);
    return &g->tensors[i];
}
uint32_t gguf_alignment(const gguf_file *g) {
    return g->alignment;
}
uint64_t gguf_data_offset(const gguf_file *g) {
    return g->data_offset;
}
const uint8_t *gguf_data(const gguf_file *g) {
    return g->data;
}
size_t gguf_size(const gguf_file *g) {
    return g->size;
}

int gguf_kv_raw(const gguf_file *g, int64_t i, const uint8_t **p, size_t *n, base_err *e) {
    BASE_ASSERT(i >= 0 && (size_t)i < g->n_kv);
    const uint8_t *start = (const uint8_t *)g->kv[i].key.ptr - 8, *end;
    if ((size_t)i + 1 < g->n_kv)
        end = (const uint8_t *)g->kv[i + 1].key.ptr - 8;
    else if (g->n_tensors)
        end = (const uint8_t *)g->tensors[0].name.ptr - 8;
    else
        return base_fail(e, BASE_EFORMAT, "GGUF: the last key of a file without tensors");
    *p = start;
    *n = (size_t)(end - start);
    return BASE_OK;
}
