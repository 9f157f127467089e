/* base/err.c: error records, bug checks, overflow-checked sizes, aligned allocation and the
 * FNV-1a checksum. */
#include "base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int base_fail(base_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

void base_assert_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "hearth: internal error: %s (%s:%d)\n", what, file, line);
    abort();
}

int base_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int base_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

int base_grow_realloc(void *pp, size_t *cap, size_t need, size_t elem, size_t max) {
    BASE_ASSERT(elem > 0);
    if (need <= *cap) return BASE_OK;
    size_t lim = (size_t)PTRDIFF_MAX / elem; /* the most elements one object can hold */
    if (max > lim) max = lim;
    if (need > max) return BASE_ENOMEM;
    size_t c = *cap <= max / 2 ? 2 * *cap : max;
    if (c < BASE_GROW_MIN) c = BASE_GROW_MIN;
    if (c < need) c = need;
    if (c > max) c = max; /* still >= need: need <= max */
    void *p;
    memcpy(&p, pp, sizeof p); /* *pp is some T *: read and written as the bytes of a pointer */
    void *q = realloc(p, c * elem);
    if (!q) return BASE_ENOMEM;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return BASE_OK;
}

float *base_alloc_floats(size_t n) {
    size_t bytes;
    if (base_mul_size(n ? n : 1, sizeof(float), &bytes) != 0) return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

uint64_t base_fnv1a64(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
