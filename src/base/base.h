/* base: status codes and error messages, random numbers, timing, overflow-checked sizes,
 * durable file I/O and plots. Everything else in hearth stands on this module; it depends
 * on libc only. */
#ifndef HEARTH_BASE_H
#define HEARTH_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Status codes: 0 is success, negatives are errors. Library code returns one of these and
 * fills a base_err with a human message; it never prints or exits. */
enum {
    BASE_OK = 0,
    BASE_EINVAL = -1,    /* bad argument or configuration */
    BASE_EIO = -2,       /* a file could not be read or written */
    BASE_ENOMEM = -3,    /* an allocation failed */
    BASE_EFORMAT = -4,   /* a file's content is malformed */
    BASE_ENUM = -5,      /* a computation produced a non-finite value */
    BASE_ENOTFOUND = -6, /* no such thing (collection, record, tenant, database) */
    BASE_EEXISTS = -7,   /* the name or id is taken */
    BASE_ENOSPC = -8,    /* the disk (or quota) is full: a write could not be stored */
};

typedef struct base_err {
    int code;
    char msg[512];
} base_err;

/* Records code and a printf-style message into e (which may be NULL); returns code. */
int base_fail(base_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Bug checks: abort with file:line. Never for bad input, which gets a status code. */
#define BASE_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c)) base_assert_fail(#c, __FILE__, __LINE__);                                        \
    } while (0)
void base_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int base_mul_size(size_t a, size_t b, size_t *out);
int base_add_size(size_t a, size_t b, size_t *out);

/* The one growth routine for arrays that grow as they fill (Redis's sdsMakeRoomFor, curl's
 * dynbuf with its maximum). pp is the address of the array pointer (of any object type; NULL
 * for none yet), *cap its capacity in elements of elem bytes. When need > *cap the array is
 * reallocated to the larger of need and twice *cap, and at least BASE_GROW_MIN elements (Lua's
 * MINSIZEARRAY: small enough for the many short lists, such as one per BPE pair), but never
 * to more than max elements (SIZE_MAX: no limit beyond PTRDIFF_MAX bytes). need <= *cap does
 * nothing, inline (pushes call this on every element). Returns BASE_OK, or BASE_ENOMEM when
 * need exceeds max, the size overflows or realloc fails; then *pp and *cap are unchanged and
 * the old array stays valid (the caller still frees it). New elements are uninitialized. */
#define BASE_GROW_MIN 4
int base_grow_realloc(void *pp, size_t *cap, size_t need, size_t elem, size_t max);
static inline int base_grow(void *pp, size_t *cap, size_t need, size_t elem, size_t max) {
    return need <= *cap ? BASE_OK : base_grow_realloc(pp, cap, need, elem, max);
}

/* Allocation of a zeroed float buffer of n elements, 64-byte aligned; NULL on failure or
 * overflow. Freed with free(). */
float *base_alloc_floats(size_t n);

/* ---- little-endian fields of on-disk formats, independent of the host's byte order */
static inline void base_put_le32(uint8_t *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static inline void base_put_le64(uint8_t *p, uint64_t x) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static inline uint32_t base_get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t base_get_le64(const uint8_t *p) {
    return (uint64_t)base_get_le32(p) | (uint64_t)base_get_le32(p + 4) << 32;
}

/* ---- random numbers: xoshiro256** seeded through splitmix64. Deterministic on every
 * platform; the whole state is the struct, so it can be saved and restored. */
typedef struct base_rng {
    uint64_t s[4];
} base_rng;

void base_rng_seed(base_rng *r, uint64_t seed);
uint64_t base_rng_u64(base_rng *r);
float base_rng_uniform(base_rng *r);              /* [0, 1) */
float base_rng_normal(base_rng *r);               /* N(0, 1), Box-Muller */
uint64_t base_rng_below(base_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */
/* p[0..n) gets a permutation of 0..n-1 drawn from r: Fisher-Yates from the end, the draws
 * base_rng_below(r, n), (r, n - 1), ..., (r, 2). n < 2^32. */
void base_rng_permute(base_rng *r, uint32_t *p, size_t n);
/* splitmix64's finalizer: a 64-bit hash of x (counter-based streams, hash tables). */
static inline uint64_t base_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* One splitmix64 output for the state x (the golden-ratio step, then the finalizer). */
static inline uint64_t base_splitmix64(uint64_t x) {
    return base_mix64(x + 0x9e3779b97f4a7c15ull);
}

/* ---- time */
double base_now(void); /* seconds on a monotonic clock */

/* ---- files */
/* Reads a whole file into a malloc'd buffer (caller frees); *len gets its size. */
int base_read_file(const char *path, char **data, size_t *len, base_err *e);
/* Creates a directory and its parents (mode 0755); fine if it already exists. */
int base_mkdir_p(const char *path, base_err *e);
/* Writes len bytes to path atomically: a temporary file beside it, fsync, rename over
 * path, fsync the directory. A crash leaves the old file or the new one, never half. */
int base_write_atomic(const char *path, const void *data, size_t len, base_err *e);

/* The same, streaming (files too large to build in memory, e.g. token shards): open creates
 * PATH.tmp.PID; write appends; pwrite patches bytes already written (a header finalized at
 * the end); commit fsyncs, renames over path and fsyncs the directory; abort removes the
 * temporary. commit and abort free the handle (commit also on failure, removing the
 * temporary). After a failed write the handle is broken: later writes and commit fail. */
typedef struct base_afile base_afile;
int base_afile_open(base_afile **out, const char *path, base_err *e);
/* The same for a file written once, front to back, and large (checkpoints): O_DIRECT through
 * an aligned buffer, skipping the page cache; plain writes where O_DIRECT is refused. */
int base_afile_open_direct(base_afile **out, const char *path, base_err *e);
int base_afile_write(base_afile *f, const void *data, size_t len, base_err *e);
int base_afile_pwrite(base_afile *f, uint64_t off, const void *data, size_t len, base_err *e);
int base_afile_commit(base_afile *f, base_err *e);
void base_afile_abort(base_afile *f); /* NULL is fine */

/* ---- file kinds (filekind.c): what a path is, so a file given in the wrong place can be
 * named ("a hearth vocabulary (HTOK)") rather than misread as another format. */
typedef enum {
    BASE_FILE_UNKNOWN = 0,
    BASE_FILE_EMPTY,
    BASE_FILE_DIR,          /* a directory none of the below */
    BASE_FILE_CKPT_DIR,     /* holds manifest.json: RUN/step_NNNNNNNN */
    BASE_FILE_RUN_DIR,      /* holds `latest` or step_* directories */
    BASE_FILE_PREPARED_DIR, /* holds prepare.json */
    BASE_FILE_GGUF,
    BASE_FILE_SAFETENSORS,
    BASE_FILE_HTOK,
    BASE_FILE_HSHD,
    BASE_FILE_HNSW,
    BASE_FILE_HFIX,
    BASE_FILE_PYTORCH, /* torch.save's zip (ARCHIVE/data.pkl) */
    BASE_FILE_PICKLE,  /* a bare pickle: torch.save's legacy format */
    BASE_FILE_ONNX,    /* by its first field and the .onnx name: ONNX has no magic */
    BASE_FILE_ZIP,
    BASE_FILE_GZIP,
    BASE_FILE_SQLITE,
    BASE_FILE_JSON,
    BASE_FILE_TEXT, /* UTF-8 without NULs, as far as the sample goes */
    BASE_FILE_N_KINDS
} base_file_kind;
#define BASE_FILE_SNIFF_BYTES 4096 /* how much of a file base_file_kind_of reads */
/* The kind of path (a directory by the files in it, a file by its first bytes). BASE_EIO with a
 * message if it cannot be opened or read. */
int base_file_kind_of(const char *path, base_file_kind *out, base_err *e);
/* The same from n bytes of a file's start (file_size bytes in all; name NULL-able, for ONNX). */
base_file_kind base_file_kind_sniff(const void *head, size_t n, uint64_t file_size,
                                    const char *name);
/* "a hearth vocabulary (HTOK)", "a GGUF file", ...: static strings. */
const char *base_file_kind_name(base_file_kind k);

/* ---- text */
/* The length of the valid UTF-8 character at s (n bytes available), or 0 when there is none:
 * RFC 3629 strictly (no overlong forms, surrogates or code points above U+10FFFF). */
size_t base_utf8_len(const unsigned char *s, size_t n);

/* ---- checksums */
#define BASE_FNV64_BASIS 0xcbf29ce484222325ull
/* FNV-1a 64 of n bytes, continuing from h (BASE_FNV64_BASIS to start). */
uint64_t base_fnv1a64(const void *p, size_t n, uint64_t h);

/* ---- growable string buffer (for formats built in memory before an atomic write) */
typedef struct base_buf {
    char *data;
    size_t len, cap;
    int failed; /* an append ran out of memory; the buffer is unusable */
} base_buf;
void base_buf_printf(base_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void base_buf_append(base_buf *b, const void *data, size_t n); /* any bytes; NUL kept after */
void base_buf_free(base_buf *b);

/* ---- plots */
/* One line series for base_plot_svg: n points (x[i], y[i]). */
typedef struct base_series {
    const char *label;
    const double *x, *y;
    size_t n;
} base_series;
/* Writes an SVG line chart of the series (log-free, linear axes with ticks) atomically. */
int base_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const base_series *series, int nseries, base_err *e);

#endif
