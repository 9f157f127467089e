/* base/afile.c: the durable atomic write, streaming: a file is written into a temporary
 * beside its final path, may be patched in place (a header whose counts are known only at
 * the end), and then committed (fsync, rename over the path, fsync the directory) or aborted
 * (the temporary removed). A crash leaves the old file or the new one, never half of one.
 *
 * The direct variant streams through an aligned buffer with O_DIRECT: the disk reads the
 * buffer itself, so gigabytes of checkpoint cost no copy into the page cache and no reclaim or
 * writeback storm later. Any refusal of O_DIRECT (tmpfs, an odd device) drops the file back to
 * ordinary buffered writes, as does a patch (base_afile_pwrite): the bytes are the same. */
#define _GNU_SOURCE /* O_DIRECT */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096u    /* covers 512-byte and 4 KiB logical blocks */
#define DIRECT_BUF (8u << 20) /* bytes per O_DIRECT write */

struct base_afile {
    int fd;
    int broken; /* a write failed: commit refuses, as LMDB marks a failed txn */
    /* direct mode (buf != NULL): buf holds `fill` bytes not yet written, which belong at
     * offset `flushed` (a multiple of DIRECT_BUF); the fd's offset is unused until then */
    unsigned char *buf;
    size_t fill;
    uint64_t flushed;
    char path[4096], tmp[4096];
};

static int afile_open(base_afile **out, const char *path, int direct, base_err *e) {
    *out = NULL;
    base_afile *f = calloc(1, sizeof *f);
    if (!f) return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t n = strlen(path);
    if (n >= sizeof f->path || (size_t)snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path,
                                                (long)getpid()) >= sizeof f->tmp) {
        free(f);
        return base_fail(e, BASE_EINVAL, "path too long: %s", path);
    }
    memcpy(f->path, path, n + 1);
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    f->fd = -1;
    if (direct && posix_memalign((void **)&f->buf, DIRECT_ALIGN, DIRECT_BUF) == 0) {
        f->fd = open(f->tmp, flags | O_DIRECT, 0644);
        if (f->fd < 0) free(f->buf), f->buf = NULL; /* EINVAL: no O_DIRECT here; try plain */
    }
    if (f->fd < 0) f->fd = open(f->tmp, flags, 0644);
    if (f->fd < 0) {
        int err = errno;
        free(f->buf);
        free(f);
        return base_fail(e, BASE_EIO, "cannot create %s.tmp.*: %s", path, strerror(err));
    }
    *out = f;
    return BASE_OK;
}

int base_afile_open(base_afile **out, const char *path, base_err *e) {
    return afile_open(out, path, 0, e);
}

int base_afile_open_direct(base_afile **out, const char *path, base_err *e) {
    return afile_open(out, path, 1, e);
}

static int broken(base_afile *f, int err, base_err *e) {
    f->broken = 1;
    return base_fail(e, BASE_EIO, "cannot write %s: %s", f->path, strerror(err));
}

/* pwrite of all n bytes, or the errno that stopped it (ENOSPC for a write of 0). */
static int pwrite_all(int fd, const void *data, size_t n, uint64_t off) {
    const char *p = data;
    while (n > 0) {
        if (off > (uint64_t)INT64_MAX) return EINVAL;
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : ENOSPC;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Leaves direct mode: the buffered bytes written plainly, O_DIRECT cleared, the fd's offset at
 * the end of what was written (write() goes on from there). */
static int end_direct(base_afile *f, base_err *e) {
    int fl = fcntl(f->fd, F_GETFL), err = 0;
    if (fl < 0 || fcntl(f->fd, F_SETFL, fl & ~O_DIRECT) < 0) err = errno;
    if (!err) err = pwrite_all(f->fd, f->buf, f->fill, f->flushed);
    if (!err && lseek(f->fd, (off_t)(f->flushed + f->fill), SEEK_SET) < 0) err = errno;
    free(f->buf);
    f->buf = NULL;
    return err ? broken(f, err, e) : BASE_OK;
}

/* Writes the full buffer with O_DIRECT; a refusal (EINVAL) falls back to plain writes. */
static int direct_flush(base_afile *f, base_err *e) {
    int err = pwrite_all(f->fd, f->buf, f->fill, f->flushed);
    if (err == EINVAL) return end_direct(f, e);
    if (err) return broken(f, err, e);
    f->flushed += f->fill;
    f->fill = 0;
    return BASE_OK;
}

int base_afile_write(base_afile *f, const void *data, size_t len, base_err *e) {
    if (f->broken)
        return base_fail(e, BASE_EIO, "cannot write %s: an earlier write failed", f->path);
    const char *p = data;
    while (f->buf && len > 0) {
        size_t k = DIRECT_BUF - f->fill < len ? DIRECT_BUF - f->fill : len;
        memcpy(f->buf + f->fill, p, k);
        f->fill += k, p += k, len -= k;
        int rc = f->fill == DIRECT_BUF ? direct_flush(f, e) : BASE_OK;
        if (rc) return rc;
    }
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return broken(f, w < 0 ? errno : ENOSPC, e);
        p += w;
        len -= (size_t)w;
    }
    return BASE_OK;
}

int base_afile_pwrite(base_afile *f, uint64_t off, const void *data, size_t len, base_err *e) {
    if (f->broken)
        return base_fail(e, BASE_EIO, "cannot write %s: an earlier write failed", f->path);
    int rc = f->buf ? end_direct(f, e) : BASE_OK;
    if (rc) return rc;
    int err = pwrite_all(f->fd, data, len, off);
    return err ? broken(f, err, e) : BASE_OK;
}

void base_afile_abort(base_afile *f) {
    if (!f) return;
    close(f->fd);
    unlink(f->tmp);
    free(f->buf);
    free(f);
}

static int fsync_dir_of(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1;
        if (n >= sizeof dir) return -1;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int base_afile_commit(base_afile *f, base_err *e) {
    if (f->broken) {
        int rc = base_fail(e, BASE_EIO, "cannot write %s: an earlier write failed", f->path);
        base_afile_abort(f);
        return rc;
    }
    int err = 0;
    if (f->buf && f->fill > 0) {
        /* the tail goes out as whole blocks, zero-padded, and the file is cut to its length */
        size_t padded = (f->fill + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
        memset(f->buf + f->fill, 0, padded - f->fill);
        err = pwrite_all(f->fd, f->buf, padded, f->flushed);
        if (err == EINVAL) { /* refused after all: the tail plainly */
            int fl = fcntl(f->fd, F_GETFL);
            err = fl < 0 || fcntl(f->fd, F_SETFL, fl & ~O_DIRECT) < 0
                      ? errno
                      : pwrite_all(f->fd, f->buf, f->fill, f->flushed);
        }
        if (!err && ftruncate(f->fd, (off_t)(f->flushed + f->fill)) != 0) err = errno;
    }
    free(f->buf);
    f->buf = NULL;
    if (!err && fsync(f->fd) != 0) err = errno;
    if (close(f->fd) != 0 && !err) err = errno;
    if (!err && rename(f->tmp, f->path) != 0) err = errno;
    if (err) {
        unlink(f->tmp);
        int rc = base_fail(e, BASE_EIO, "cannot write %s: %s", f->path, strerror(err));
        free(f);
        return rc;
    }
    int rc = BASE_OK;
    if (fsync_dir_of(f->path) != 0)
        rc = base_fail(e, BASE_EIO, "cannot sync directory of %s: %s", f->path, strerror(errno));
    free(f);
    return rc;
}
