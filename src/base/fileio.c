/* base/fileio.c: whole-file reads, mkdir -p, and the one-shot durable atomic write every
 * on-disk format in hearth goes through (tmp + fsync + rename + fsync dir, as Redis saves;
 * the mechanism is base_afile in afile.c). */
#include "base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double base_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int base_read_file(const char *path, char **data, size_t *len, base_err *e) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return base_fail(e, BASE_EIO, "%s is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return base_fail(e, BASE_ENOMEM, "out of memory reading %s (%zu bytes)", path, n);
    }
    if (n && fread(buf, 1, n, f) != n) {
        int err = ferror(f) ? errno : EIO;
        free(buf);
        fclose(f);
        return base_fail(e, BASE_EIO, "cannot read %s: %s", path, strerror(err));
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return BASE_OK;
}

int base_mkdir_p(const char *path, base_err *e) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return base_fail(e, BASE_EINVAL, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0) continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return base_fail(e, BASE_EIO, "cannot create directory %s: %s", tmp, strerror(errno));
        tmp[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return base_fail(e, BASE_EIO, "%s exists and is not a directory", path);
    return BASE_OK;
}

int base_write_atomic(const char *path, const void *data, size_t len, base_err *e) {
    base_afile *f;
    int rc = base_afile_open(&f, path, e);
    if (rc) return rc;
    if ((rc = base_afile_write(f, data, len, e))) {
        base_afile_abort(f);
        return rc;
    }
    return base_afile_commit(f, e);
}

void base_buf_printf(base_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        if (base_grow(&b->data, &b->cap, b->len + (size_t)n + 1, 1, SIZE_MAX)) {
            b->failed = 1;
            return;
        }
    }
}

void base_buf_append(base_buf *b, const void *data, size_t n) {
    if (b->failed) return;
    if (n > SIZE_MAX - 1 - b->len || base_grow(&b->data, &b->cap, b->len + n + 1, 1, SIZE_MAX)) {
        b->failed = 1;
        return;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void base_buf_free(base_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

size_t base_utf8_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (k == 0 || c > 0xF4 || n < k) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, above U+10FFFF */
    return k;
}
