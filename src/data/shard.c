/* data/shard.c: the token shard file (HSHD, docs/FORMATS.md): a 256-byte little-endian header
 * with a checksum, then n_tokens ids of 2 or 4 bytes. The writer streams ids through a
 * base_afile and writes the header last; the parser checks a header against its file. */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* header offsets */
enum {
    H_MAGIC = 0,
    H_VERSION = 4,
    H_TOKEN_BYTES = 8,
    H_VOCAB = 12,
    H_TOKENS = 16,
    H_DOCS = 24,
    H_EOT = 32,
    H_IDLEN = 36,
    H_ID = 40,
    H_CHECKSUM = DATA_SHARD_HEADER - 8,
};
_Static_assert(H_ID + DATA_IDENTITY_MAX <= H_CHECKSUM, "identity overlaps the checksum");

int data_shard_parse(const void *data, size_t file_len, const char *name, data_shard_info *info,
                     base_err *e) {
    const uint8_t *p = data;
    memset(info, 0, sizeof *info);
    if (file_len == 0) return base_fail(e, BASE_EFORMAT, "%s: empty file, not a token shard", name);
    if (file_len < 4 || memcmp(p, DATA_SHARD_MAGIC, 4) != 0)
        return base_fail(e, BASE_EFORMAT, "%s: bad magic, not a token shard", name);
    if (file_len < DATA_SHARD_HEADER)
        return base_fail(e, BASE_EFORMAT, "%s: truncated (%zu bytes, the header alone is %d)", name,
                         file_len, DATA_SHARD_HEADER);
    uint32_t version = base_get_le32(p + H_VERSION);
    if (version != DATA_SHARD_VERSION)
        return base_fail(e, BASE_EFORMAT, "%s: shard version %u, this build reads version %d", name,
                         version, DATA_SHARD_VERSION);
    if (base_fnv1a64(p, H_CHECKSUM, BASE_FNV64_BASIS) != base_get_le64(p + H_CHECKSUM))
        return base_fail(e, BASE_EFORMAT, "%s: header checksum mismatch (corrupt shard)", name);
    info->token_bytes = base_get_le32(p + H_TOKEN_BYTES);
    info->vocab_size = base_get_le32(p + H_VOCAB);
    info->n_tokens = base_get_le64(p + H_TOKENS);
    info->n_docs = base_get_le64(p + H_DOCS);
    info->eot_id = (int32_t)base_get_le32(p + H_EOT);
    uint32_t idlen = base_get_le32(p + H_IDLEN);
    if (info->vocab_size < 1 || info->vocab_size > INT32_MAX)
        return base_fail(e, BASE_EFORMAT, "%s: vocabulary size %u out of range", name,
                         info->vocab_size);
    uint32_t want = info->vocab_size <= 65536 ? 2 : 4;
    if (info->token_bytes != want)
        return base_fail(e, BASE_EFORMAT, "%s: %u bytes per token, a vocabulary of %u needs %u",
                         name, info->token_bytes, info->vocab_size, want);
    if (info->eot_id < -1 || info->eot_id >= (int32_t)info->vocab_size)
        return base_fail(e, BASE_EFORMAT, "%s: end-of-text id %d outside the vocabulary (%u)", name,
                         info->eot_id, info->vocab_size);
    if (info->n_docs > info->n_tokens)
        return base_fail(e, BASE_EFORMAT, "%s: %llu documents in %llu tokens", name,
                         (unsigned long long)info->n_docs, (unsigned long long)info->n_tokens);
    if (idlen < 1 || idlen > DATA_IDENTITY_MAX)
        return base_fail(e, BASE_EFORMAT, "%s: vocabulary identity length %u out of range", name,
                         idlen);
    for (uint32_t i = 0; i < DATA_IDENTITY_MAX; i++) {
        uint8_t c = p[H_ID + i];
        if (i < idlen ? (c < 0x21 || c > 0x7e) : c != 0)
            return base_fail(e, BASE_EFORMAT, "%s: malformed vocabulary identity", name);
    }
    memcpy(info->identity, p + H_ID, idlen);
    info->identity[idlen] = 0;
    /* the ids must fill the rest of the file exactly; n_tokens * token_bytes may overflow */
    uint64_t body = (uint64_t)file_len - DATA_SHARD_HEADER;
    if (info->n_tokens > body / info->token_bytes || info->n_tokens * info->token_bytes != body)
        return base_fail(e, BASE_EFORMAT,
                         "%s: the header counts %llu tokens of %u bytes but the file holds %llu "
                         "bytes of ids (truncated or corrupt)",
                         name, (unsigned long long)info->n_tokens, info->token_bytes,
                         (unsigned long long)body);
    return BASE_OK;
}

int data_shard_read_info(const char *path, data_shard_info *info, base_err *e) {
    memset(info, 0, sizeof *info);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    uint8_t h[DATA_SHARD_HEADER];
    int rc = BASE_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = base_fail(e, BASE_EIO, "%s is not a regular file", path);
    } else {
        size_t want = (uint64_t)st.st_size < sizeof h ? (size_t)st.st_size : sizeof h;
        ssize_t got = pread(fd, h, want, 0);
        if (got != (ssize_t)want)
            rc = base_fail(e, BASE_EIO, "cannot read %s: %s", path,
                           got < 0 ? strerror(errno) : "short read");
        else
            rc = data_shard_parse(h, (size_t)st.st_size, path, info, e);
    }
    close(fd);
    return rc;
}

/* ---- the writer */

#define WBUF_TOKENS (1u << 18)

struct data_shard_writer {
    base_afile *f;
    uint32_t vocab_size, token_bytes;
    int32_t eot_id;
    uint64_t n_tokens, n_docs;
    char identity[DATA_IDENTITY_MAX + 1];
    char path[4096];
    size_t nbuf; /* bytes in buf */
    uint8_t buf[WBUF_TOKENS * 4];
};

int data_shard_create(data_shard_writer **out, const char *path, uint32_t vocab_size,
                      int32_t eot_id, const char *identity, base_err *e) {
    *out = NULL;
    size_t idlen = strlen(identity);
    if (vocab_size < 1 || vocab_size > INT32_MAX)
        return base_fail(e, BASE_EINVAL, "shard vocabulary size %u out of range", vocab_size);
    if (eot_id < -1 || eot_id >= (int32_t)vocab_size)
        return base_fail(e, BASE_EINVAL, "end-of-text id %d outside the vocabulary", eot_id);
    if (idlen < 1 || idlen > DATA_IDENTITY_MAX)
        return base_fail(e, BASE_EINVAL, "vocabulary identity '%s' is empty or too long", identity);
    for (size_t i = 0; i < idlen; i++)
        if (identity[i] < 0x21 || identity[i] > 0x7e)
            return base_fail(e, BASE_EINVAL, "vocabulary identity '%s' is not printable ASCII",
                             identity);
    if (strlen(path) >= sizeof((data_shard_writer *)0)->path)
        return base_fail(e, BASE_EINVAL, "path too long: %s", path);
    data_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return base_fail(e, BASE_ENOMEM, "out of memory");
    w->vocab_size = vocab_size;
    w->token_bytes = vocab_size <= 65536 ? 2 : 4;
    w->eot_id = eot_id;
    memcpy(w->identity, identity, idlen + 1);
    strcpy(w->path, path);
    int rc = base_afile_open(&w->f, path, e);
    if (rc) {
        free(w);
        return rc;
    }
    /* the header's place; its content is known at commit */
    uint8_t zero[DATA_SHARD_HEADER] = {0};
    if ((rc = base_afile_write(w->f, zero, sizeof zero, e))) {
        data_shard_abort(w);
        return rc;
    }
    *out = w;
    return BASE_OK;
}

static int flush(data_shard_writer *w, base_err *e) {
    int rc = w->nbuf ? base_afile_write(w->f, w->buf, w->nbuf, e) : BASE_OK;
    w->nbuf = 0;
    return rc;
}

int data_shard_write(data_shard_writer *w, const int32_t *ids, size_t n, base_err *e) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= w->vocab_size)
            return base_fail(e, BASE_EINVAL, "%s: token id %d is outside the vocabulary (%u)",
                             w->path, id, w->vocab_size);
        if (w->nbuf + 4 > sizeof w->buf) {
            int rc = flush(w, e);
            if (rc) return rc;
        }
        uint8_t *p = w->buf + w->nbuf;
        p[0] = (uint8_t)id;
        p[1] = (uint8_t)(id >> 8);
        if (w->token_bytes == 4) {
            p[2] = (uint8_t)(id >> 16);
            p[3] = (uint8_t)(id >> 24);
        }
        w->nbuf += w->token_bytes;
        w->n_docs += id == w->eot_id;
    }
    w->n_tokens += n;
    return BASE_OK;
}

uint64_t data_shard_tokens(const data_shard_writer *w) {
    return w->n_tokens;
}

int data_shard_commit(data_shard_writer *w, base_err *e) {
    uint8_t h[DATA_SHARD_HEADER] = {0};
    memcpy(h + H_MAGIC, DATA_SHARD_MAGIC, 4);
    base_put_le32(h + H_VERSION, DATA_SHARD_VERSION);
    base_put_le32(h + H_TOKEN_BYTES, w->token_bytes);
    base_put_le32(h + H_VOCAB, w->vocab_size);
    base_put_le64(h + H_TOKENS, w->n_tokens);
    base_put_le64(h + H_DOCS, w->n_docs);
    base_put_le32(h + H_EOT, (uint32_t)w->eot_id);
    size_t idlen = strlen(w->identity);
    base_put_le32(h + H_IDLEN, (uint32_t)idlen);
    memcpy(h + H_ID, w->identity, idlen);
    base_put_le64(h + H_CHECKSUM, base_fnv1a64(h, H_CHECKSUM, BASE_FNV64_BASIS));
    int rc = flush(w, e);
    if (!rc) rc = base_afile_pwrite(w->f, 0, h, sizeof h, e);
    if (rc) {
        data_shard_abort(w);
        return rc;
    }
    rc = base_afile_commit(w->f, e);
    free(w);
    return rc;
}

void data_shard_abort(data_shard_writer *w) {
    if (!w) return;
    base_afile_abort(w->f);
    free(w);
}
