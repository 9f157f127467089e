/* base/afile.c: the durable atomic write, streaming: a file is written into a temporary
 * beside its final path, may be patched in place (a header whose counts are known only at
 * the end), and then committed (fsync, rename over the path, fsync the directory) or aborted
 * (the temporary removed). A crash leaves the old file or the new one, never half of one. */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct base_afile {
    int fd;
    int broken; /* a write failed: commit refuses, as LMDB marks a failed txn */
    char path[4096], tmp[4096];
};

int base_afile_open(base_afile **out, const char *path, base_err *e) {
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
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int err = errno;
        free(f);
        return base_fail(e, BASE_EIO, "cannot create %s.tmp.*: %s", path, strerror(err));
    }
    *out = f;
    return BASE_OK;
}

static int broken(base_afile *f, int err, base_err *e) {
    f->broken = 1;
    return base_fail(e, BASE_EIO, "cannot write %s: %s", f->path, strerror(err));
}

int base_afile_write(base_afile *f, const void *data, size_t len, base_err *e) {
    if (f->broken)
        return base_fail(e, BASE_EIO, "cannot write %s: an earlier write failed", f->path);
    const char *p = data;
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
    const char *p = data;
    while (len > 0) {
        if (off > (uint64_t)INT64_MAX) return broken(f, EINVAL, e);
        ssize_t w = pwrite(f->fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return broken(f, w < 0 ? errno : ENOSPC, e);
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return BASE_OK;
}

void base_afile_abort(base_afile *f) {
    if (!f) return;
    close(f->fd);
    unlink(f->tmp);
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
    if (fsync(f->fd) != 0) err = errno;
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
