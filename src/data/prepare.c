/* data/prepare.c: `hearth prepare` — text files, directories and JSONL files to token shards.
 * Streaming: a text file is read in blocks and encoded in chunks cut where tok_stream_cut says
 * the ids are those of a whole encoding; a JSONL line is one document. Each distinct document
 * (by a 128-bit hash of its bytes) goes, after the end-of-text token, to the train or the val
 * split by a function of that hash, so its side does not depend on input order. When the inputs
 * are one text file, that one document is split by position instead: its end goes to val.
 * Memory: the buffers here (a few MB), the largest JSONL line, and the dedup set. */
#define _GNU_SOURCE /* memrchr */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BLOCK (1u << 20) /* bytes read from a file at a time */
#define CHUNK (1u << 20)      /* bytes encoded at a time, at most (up to a safe cut) */
#define PEND_MAX (8u << 20)   /* a text with no safe cut in this many bytes is cut anyway */

/* ---- 128-bit FNV-1a over a document's bytes (streaming), for dedup and the split */

typedef struct hash128 {
    unsigned __int128 h;
} hash128;

static void h128_init(hash128 *h) {
    h->h = ((unsigned __int128)0x6c62272e07bb0142ull << 64) | 0x62b821756295c58dull;
}

static void h128_add(hash128 *h, const void *p, size_t n) {
    const unsigned __int128 prime = ((unsigned __int128)1 << 88) | 0x13b;
    const unsigned char *b = p;
    unsigned __int128 x = h->h;
    for (size_t i = 0; i < n; i++) x = (x ^ b[i]) * prime;
    h->h = x;
}

/* The set of document hashes seen (open addressing, linear probing, at most 3/4 full: 16 bytes
 * per slot, 21..43 bytes per document, briefly 1.5x that while the table doubles). */
typedef struct hset {
    unsigned __int128 *slot; /* 0 = empty (a hash of 0 is stored as 1) */
    size_t cap, n;
} hset;

/* Inserts h; *dup = 1 if it was there. */
static int hset_add(hset *s, unsigned __int128 h, int *dup) {
    if (h == 0) h = 1;
    if (4 * (s->n + 1) > 3 * s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1u << 16;
        unsigned __int128 *slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t j = (size_t)base_splitmix64((uint64_t)s->slot[i]) & (cap - 1);
            while (slot[j]) j = (j + 1) & (cap - 1);
            slot[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t j = (size_t)base_splitmix64((uint64_t)h) & (s->cap - 1);
    for (; s->slot[j]; j = (j + 1) & (s->cap - 1))
        if (s->slot[j] == h) {
            *dup = 1;
            return 0;
        }
    s->slot[j] = h;
    s->n++;
    *dup = 0;
    return 0;
}

/* The split of a document: val when a uniform number drawn from (hash, seed) is < val_frac. */
static int split_of(unsigned __int128 h, uint64_t seed, double val_frac) {
    uint64_t x =
        base_splitmix64((uint64_t)h ^ base_splitmix64((uint64_t)(h >> 64) ^ base_splitmix64(seed)));
    return (double)(x >> 11) * 0x1p-53 < val_frac ? DATA_VAL : DATA_TRAIN;
}

/* ---- the input list */

typedef struct flist {
    char **path;
    size_t n, cap;
} flist;

static void flist_free(flist *f) {
    for (size_t i = 0; i < f->n; i++) free(f->path[i]);
    free(f->path);
}

static int flist_add(flist *f, const char *path, base_err *e) {
    if (base_grow(&f->path, &f->cap, f->n + 1, sizeof *f->path, SIZE_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory listing inputs");
    if (!(f->path[f->n] = strdup(path))) return base_fail(e, BASE_ENOMEM, "out of memory");
    f->n++;
    return BASE_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the regular files under dir, sorted by name (bytes), recursing into directories.
 * Hidden entries (a leading '.') are skipped, and so are symbolic links to directories (no
 * loops) and the output directory (skip_dev/skip_ino) if it lies inside. */
static int walk(flist *f, const char *dir, dev_t skip_dev, ino_t skip_ino, int depth, base_err *e) {
    if (depth > 64) return base_fail(e, BASE_EINVAL, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return base_fail(e, BASE_EIO, "cannot open %s: %s", dir, strerror(errno));
    flist names = {0};
    int rc = BASE_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d)))
        if (de->d_name[0] != '.') rc = flist_add(&names, de->d_name, e);
    closedir(d);
    if (!rc && names.n) qsort(names.path, names.n, sizeof *names.path, cmp_str);
    for (size_t i = 0; i < names.n && !rc; i++) {
        size_t len = strlen(dir) + strlen(names.path[i]) + 2;
        char *p = malloc(len);
        if (!p) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        snprintf(p, len, "%s/%s", dir, names.path[i]);
        struct stat st, lst;
        if (stat(p, &st) != 0 || lstat(p, &lst) != 0) {
            /* a dangling link or a file gone since readdir */
        } else if (S_ISDIR(st.st_mode)) {
            if (!S_ISLNK(lst.st_mode) && !(st.st_dev == skip_dev && st.st_ino == skip_ino))
                rc = walk(f, p, skip_dev, skip_ino, depth + 1, e);
        } else if (S_ISREG(st.st_mode)) {
            rc = flist_add(f, p, e);
        }
        free(p);
    }
    flist_free(&names);
    return rc;
}

/* ---- the run */

typedef struct prep {
    const data_prepare_opts *o;
    data_prepare_stats *st;
    tok_vocab *v;
    uint32_t vocab_size;
    int32_t eot;
    const char *identity;
    uint64_t shard_tokens;
    hset seen;
    data_shard_writer *w[2]; /* the open shard of each split, or NULL */
    flist committed;         /* shards in place: removed if the run fails */
    tok_ids ids;
    char *pend; /* text not yet encoded */
    uint8_t *block;
    data_prepare_progress pr;
    double t0, last_report;
    int by_position; /* the inputs are one text file: split it by position */
} prep;

static const char *split_name(int side) {
    return side == DATA_TRAIN ? "train" : "val";
}

static void report(prep *P, int done) {
    if (!P->o->progress) return;
    double now = base_now();
    if (!done && now - P->last_report < 0.2) return;
    P->last_report = now;
    P->pr.seconds = now - P->t0;
    P->pr.done = done;
    P->o->progress(&P->pr, P->o->user);
}

static void warn(prep *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(prep *P, const char *fmt, ...) {
    if (!P->o->warn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    P->o->warn(msg, P->o->user);
}

static int shard_path(const prep *P, int side, uint64_t k, char *out, size_t n, base_err *e) {
    if ((size_t)snprintf(out, n, "%s/%s_%06llu.bin", P->o->out_dir, split_name(side),
                         (unsigned long long)k) >= n)
        return base_fail(e, BASE_EINVAL, "path too long: %s", P->o->out_dir);
    return BASE_OK;
}

static int commit_shard(prep *P, int side, base_err *e) {
    char path[4096];
    int rc = shard_path(P, side, P->st->split_shards[side], path, sizeof path, e);
    data_shard_writer *w = P->w[side];
    P->w[side] = NULL;
    if (rc) {
        data_shard_abort(w);
        return rc;
    }
    if ((rc = data_shard_commit(w, e))) return rc;
    P->st->split_shards[side]++;
    return flist_add(&P->committed, path, e);
}

/* Appends ids to the split, opening and committing shards of shard_tokens tokens. */
static int put_ids(prep *P, int side, const int32_t *ids, size_t n, base_err *e) {
    while (n > 0) {
        int rc;
        if (!P->w[side]) {
            char path[4096];
            if ((rc = shard_path(P, side, P->st->split_shards[side], path, sizeof path, e)) ||
                (rc = data_shard_create(&P->w[side], path, P->vocab_size, P->eot, P->identity, e)))
                return rc;
        }
        uint64_t room = P->shard_tokens - data_shard_tokens(P->w[side]);
        size_t k = n < room ? n : (size_t)room;
        if ((rc = data_shard_write(P->w[side], ids, k, e))) return rc;
        P->st->split_tokens[side] += k;
        P->pr.tokens += k;
        ids += k;
        n -= k;
        if (data_shard_tokens(P->w[side]) == P->shard_tokens && (rc = commit_shard(P, side, e)))
            return rc;
    }
    return BASE_OK;
}

/* A cut at most n bytes into text[0, len) that does not split a UTF-8 character (n when the
 * bytes there are not UTF-8 anyway), for a text with no safe cut. */
static size_t utf8_cut(const char *t, size_t n, size_t len) {
    for (size_t c = n; c + 4 > n && c > 0; c--)
        if (c == len || ((unsigned char)t[c] & 0xC0) != 0x80) return c;
    return n;
}

/* One step over the text still to encode, text[0, len) (eof: nothing follows it): encodes it
 * up to the last safe cut in its first CHUNK bytes (or in its first PEND_MAX bytes when those
 * have none; at PEND_MAX a forced cut), or all of it at eof when it fits in CHUNK. *used gets
 * the bytes encoded; 0 when more text is needed first. */
static int encode_step(prep *P, int side, const char *text, size_t len, int eof, int *first,
                       size_t *used, base_err *e) {
    size_t cut;
    *used = 0;
    if (eof && len <= CHUNK) {
        cut = len;
    } else if (len < CHUNK) {
        return BASE_OK;
    } else if (!(cut = tok_stream_cut(P->v, text, CHUNK))) {
        size_t w = len < PEND_MAX ? len : PEND_MAX;
        if (!(cut = tok_stream_cut(P->v, text, w))) {
            if (eof && len <= PEND_MAX) {
                cut = len;
            } else if (len < PEND_MAX) {
                return BASE_OK;
            } else {
                cut = utf8_cut(text, PEND_MAX, len);
                P->st->forced_cuts++;
            }
        }
    }
    if (cut == 0) return BASE_OK;
    P->ids.len = 0;
    int rc = tok_encode(P->v, text, cut, *first ? 0 : TOK_ENCODE_CONTINUE, &P->ids, e);
    if (rc) return rc;
    *first = 0;
    if ((rc = put_ids(P, side, P->ids.data, P->ids.len, e))) return rc;
    *used = cut;
    report(P, 0);
    return BASE_OK;
}

/* A document's fate by its hash: *side, or -1 to skip it (empty or a duplicate). */
static int admit(prep *P, unsigned __int128 h, uint64_t len, int *side, base_err *e) {
    *side = -1;
    if (len == 0) {
        P->st->empty++;
        return BASE_OK;
    }
    int dup;
    if (hset_add(&P->seen, h, &dup))
        return base_fail(e, BASE_ENOMEM, "out of memory (dedup set of %zu documents)", P->seen.n);
    if (dup) {
        P->st->duplicates++;
        return BASE_OK;
    }
    *side = split_of(h, P->o->seed, P->o->val_frac);
    P->st->docs++;
    P->st->split_docs[*side]++;
    P->pr.docs++;
    return put_ids(P, *side, &P->eot, 1, e);
}

/* A document held in memory (a JSONL field). */
static int put_doc(prep *P, const char *text, size_t len, base_err *e) {
    hash128 h;
    h128_init(&h);
    h128_add(&h, text, len);
    int side, rc = admit(P, h.h, len, &side, e);
    if (rc || side < 0) return rc;
    int first = 1;
    for (size_t pos = 0; pos < len;) {
        size_t used;
        if ((rc = encode_step(P, side, text + pos, len - pos, 1, &first, &used, e))) return rc;
        pos += used;
    }
    return BASE_OK;
}

static int read_some(int fd, const char *path, void *buf, size_t n, size_t *got, base_err *e) {
    *got = 0;
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return base_fail(e, BASE_EIO, "cannot read %s: %s", path, strerror(errno));
        *got = (size_t)r;
        return BASE_OK;
    }
}

/* Encodes bytes [begin, end) of the file fd as one text into the split side, read in blocks
 * and cut where encode_step says. */
static int encode_range(prep *P, int side, const char *path, int fd, uint64_t begin, uint64_t end,
                        base_err *e) {
    if (lseek(fd, (off_t)begin, SEEK_SET) != (off_t)begin)
        return base_fail(e, BASE_EIO, "cannot rewind %s: %s", path, strerror(errno));
    size_t n = 0; /* bytes in P->pend */
    uint64_t left = end - begin;
    int eof = left == 0, first = 1, rc;
    for (;;) {
        size_t used, got;
        if ((rc = encode_step(P, side, P->pend, n, eof, &first, &used, e))) return rc;
        if (used) {
            P->pr.bytes_done += used;
            memmove(P->pend, P->pend + used, n - used);
            n -= used;
            continue;
        }
        if (eof) break;
        if ((rc = read_some(fd, path, P->pend + n, left < READ_BLOCK ? left : READ_BLOCK, &got, e)))
            return rc;
        n += got;
        left -= got;
        eof = got == 0 || left == 0;
    }
    return BASE_OK;
}

/* Where a text of size bytes splits by position: the last val_frac of it (at least one byte)
 * goes to val, from the start of the line that holds the cut point when that line begins in the
 * 4 KiB before it, else from the start of the UTF-8 character there. *cut: bytes of the train
 * part, in [1, size). */
static int position_cut(prep *P, const char *path, int fd, uint64_t size, uint64_t *cut,
                        base_err *e) {
    uint64_t val = (uint64_t)((double)size * P->o->val_frac + 0.999999);
    uint64_t c = size - (val < 1 ? 1 : val > size - 1 ? size - 1 : val);
    uint64_t lo = c > 4096 ? c - 4096 : 0;
    unsigned char buf[4097];
    size_t got = 0;
    if (lseek(fd, (off_t)lo, SEEK_SET) != (off_t)lo)
        return base_fail(e, BASE_EIO, "cannot seek in %s: %s", path, strerror(errno));
    for (size_t want = (size_t)(c - lo) + 1; got < want;) { /* the cut point's byte too */
        size_t k;
        int rc = read_some(fd, path, buf + got, want - got, &k, e);
        if (rc) return rc;
        if (k == 0) return base_fail(e, BASE_EIO, "%s changed while it was read", path);
        got += k;
    }
    size_t at = got - 1; /* buf[at] is the byte at c */
    const unsigned char *nl = at > 0 ? memrchr(buf, '\n', at) : NULL;
    if (nl)
        c = lo + (uint64_t)(nl - buf) + 1;
    else
        for (int k = 0; k < 3 && c > 1 && (buf[at] & 0xC0) == 0x80; k++) at--, c--;
    *cut = c;
    return BASE_OK;
}

/* A text file, one document: read once to hash it (its split must be known before its first
 * token is written), then again to encode it. By position (the only input): the train part,
 * then the val part, each after an end-of-text token. */
static int put_text_file(prep *P, const char *path, int fd, base_err *e) {
    hash128 h;
    h128_init(&h);
    uint64_t size = 0;
    size_t got;
    int rc;
    do {
        if ((rc = read_some(fd, path, P->block, READ_BLOCK, &got, e))) return rc;
        h128_add(&h, P->block, got);
        size += got;
    } while (got > 0);
    P->st->bytes += size;
    if (P->by_position && size >= 2) {
        uint64_t cut = 0;
        if ((rc = position_cut(P, path, fd, size, &cut, e))) return rc;
        P->st->position_cut = cut;
        P->st->docs++;
        P->pr.docs++;
        for (int side = 0; side < 2; side++) {
            P->st->split_docs[side]++;
            if ((rc = put_ids(P, side, &P->eot, 1, e)) ||
                (rc = encode_range(P, side, path, fd, side == DATA_TRAIN ? 0 : cut,
                                   side == DATA_TRAIN ? cut : size, e)))
                return rc;
        }
        return BASE_OK;
    }
    int side;
    if ((rc = admit(P, h.h, size, &side, e))) return rc;
    if (side < 0) {
        P->pr.bytes_done += size;
        return BASE_OK;
    }
    return encode_range(P, side, path, fd, 0, size, e);
}

/* ---- JSONL */

/* The length of the valid UTF-8 character at p (n > 0 bytes left), or 0 if there is none:
 * no overlong forms, no surrogates, nothing above U+10FFFF (what jansson accepts). */
static size_t utf8_char(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (k == 0 || c > 0xF4 || n < k) return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
    return k;
}

/* Invalid UTF-8 inside a JSON string is kept byte for byte: before parsing, each invalid byte
 * b becomes the private-use character U+10FF00 + b (F4 8F BC+(b>>6) 80+(b&63)), and after,
 * those characters in the field become bytes again. A line that mixes invalid bytes with
 * real U+10FFxx characters (raw, or as a \uDBFF escape) would be ambiguous and is refused. */
static int is_sentinel(const unsigned char *p, size_t n) {
    return n >= 4 && p[0] == 0xF4 && p[1] == 0x8F && p[2] >= 0xBC && p[2] <= 0xBF &&
           (p[3] & 0xC0) == 0x80;
}

/* Escapes the invalid bytes of line into *out (malloc'd); 1 if there were none (out unset),
 * 0 if escaped, -1 if ambiguous, -2 out of memory. */
static int escape_invalid(const char *line, size_t n, char **out, size_t *on) {
    const unsigned char *p = (const unsigned char *)line;
    size_t bad = 0;
    int ambiguous = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char(p + i, n - i);
        if (k == 0) {
            bad++;
            i++;
            continue;
        }
        ambiguous |= is_sentinel(p + i, n - i);
        if (p[i] == '\\' && i + 5 < n && (p[i + 1] == 'u') &&
            strncasecmp((const char *)p + i + 2, "dbff", 4) == 0)
            ambiguous = 1;
        i += k;
    }
    if (bad == 0) return 1;
    if (ambiguous) return -1;
    unsigned char *q = malloc(n + 3 * bad);
    if (!q) return -2;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char(p + i, n - i);
        if (k) {
            memcpy(q + o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        q[o++] = 0xF4, q[o++] = 0x8F, q[o++] = (unsigned char)(0xBC + (p[i] >> 6));
        q[o++] = (unsigned char)(0x80 + (p[i] & 63));
        i++;
    }
    *out = (char *)q;
    *on = o;
    return 0;
}

/* Turns the sentinels of s back into bytes, in place; returns the new length. */
static size_t unescape_invalid(char *s, size_t n) {
    unsigned char *p = (unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (is_sentinel(p + i, n - i)) {
            p[o++] = (unsigned char)((p[i + 2] - 0xBC) << 6 | (p[i + 3] & 63));
            i += 4;
        } else {
            p[o++] = p[i++];
        }
    }
    return o;
}

static int bad_line(prep *P, const char *path, uint64_t lineno, const char *why) {
    P->st->bad_lines++;
    warn(P, "%s:%llu: %s (line skipped)", path, (unsigned long long)lineno, why);
    return BASE_OK;
}

static int put_jsonl_line(prep *P, const char *path, uint64_t lineno, const char *line, size_t n,
                          base_err *e) {
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == n) return BASE_OK; /* a blank line */
    char *esc = NULL;
    size_t en = 0;
    int r = escape_invalid(line, n, &esc, &en);
    if (r == -2) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (r == -1)
        return bad_line(P, path, lineno, "invalid UTF-8 together with U+10FFxx characters");
    json_error_t je;
    json_t *j = r == 1 ? json_loadb(line, n, JSON_ALLOW_NUL, &je)
                       : json_loadb(esc, en, JSON_ALLOW_NUL, &je);
    free(esc);
    if (!j) {
        char why[256];
        snprintf(why, sizeof why, "malformed JSON at column %d: %s", je.column, je.text);
        return bad_line(P, path, lineno, why);
    }
    int rc = BASE_OK;
    json_t *f = json_is_object(j) ? json_object_get(j, P->o->field) : NULL;
    char why[256];
    if (!json_is_object(j)) {
        rc = bad_line(P, path, lineno, "not a JSON object");
    } else if (!f) {
        snprintf(why, sizeof why, "no \"%.200s\" field", P->o->field);
        rc = bad_line(P, path, lineno, why);
    } else if (!json_is_string(f)) {
        snprintf(why, sizeof why, "\"%.200s\" is not a string", P->o->field);
        rc = bad_line(P, path, lineno, why);
    } else {
        size_t len = json_string_length(f);
        /* the string is unescaped in place: j is ours and freed right after */
        char *text = (char *)json_string_value(f);
        if (r == 0) len = unescape_invalid(text, len);
        rc = put_doc(P, text, len, e);
    }
    json_decref(j);
    return rc;
}

/* A JSONL file: each line a JSON object whose field o->field is a document. Malformed lines
 * (bad JSON, not an object, no such string field, longer than DATA_MAX_LINE) are skipped with
 * a warning naming the line, and counted. */
static int put_jsonl_file(prep *P, const char *path, int fd, base_err *e) {
    char *line = NULL;
    size_t n = 0, cap = 0;
    int too_long = 0, rc = BASE_OK;
    uint64_t lineno = 0;
    for (;;) {
        size_t got;
        if ((rc = read_some(fd, path, P->block, READ_BLOCK, &got, e))) break;
        P->st->bytes += got;
        P->pr.bytes_done += got;
        const char *b = (const char *)P->block;
        size_t pos = 0;
        while (pos < got || (got == 0 && (n || too_long))) {
            const char *nl = got ? memchr(b + pos, '\n', got - pos) : NULL;
            size_t seg = nl ? (size_t)(nl - (b + pos)) : got - pos;
            if (!too_long && n + seg > DATA_MAX_LINE) {
                too_long = 1;
                n = 0;
            }
            if (!too_long && seg) {
                if (base_grow(&line, &cap, n + seg, 1, SIZE_MAX)) {
                    rc = base_fail(e, BASE_ENOMEM, "out of memory reading %s", path);
                    break;
                }
                memcpy(line + n, b + pos, seg);
                n += seg;
            }
            pos += seg + (nl != NULL);
            if (!nl && got) break; /* the line goes on in the next block */
            lineno++;
            if (too_long)
                bad_line(P, path, lineno, "longer than the line limit (64 MiB)");
            else
                rc = put_jsonl_line(P, path, lineno, line, n, e);
            n = 0;
            too_long = 0;
            if (rc) break;
        }
        if (rc || got == 0) break;
    }
    free(line);
    return rc;
}

/* ---- prepare.json */

json_t *data_json_string(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c) return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char((const unsigned char *)s + i, n - i);
        if (k == 0)
            c[i++] = '?';
        else
            memcpy(c + i, s + i, k), i += k;
    }
    c[n] = 0;
    j = json_string(c);
    free(c);
    return j;
}

static int write_manifest(prep *P, base_err *e) {
    const data_prepare_opts *o = P->o;
    const data_prepare_stats *s = P->st;
    json_t *j = json_object(), *in = json_array();
    int ok = j && in;
    for (size_t i = 0; ok && i < o->n_inputs; i++)
        ok = !json_array_append_new(in, data_json_string(o->inputs[i]));
#define SET(k, v) ok = ok && !json_object_set_new(j, k, v)
    SET("format", json_string("hearth-prepare"));
    SET("version", json_integer(1));
    SET("vocab", json_string(P->identity));
    SET("vocab_size", json_integer(P->vocab_size));
    SET("token_bytes", json_integer(P->vocab_size <= 65536 ? 2 : 4));
    SET("eot_id", json_integer(P->eot));
    SET("field", data_json_string(o->field));
    SET("val_frac", json_real(o->val_frac));
    SET("seed", json_integer((json_int_t)o->seed));
    SET("shard_tokens", json_integer((json_int_t)P->shard_tokens));
    SET("files", json_integer((json_int_t)s->files));
    SET("bytes", json_integer((json_int_t)s->bytes));
    SET("docs", json_integer((json_int_t)s->docs));
    SET("duplicates", json_integer((json_int_t)s->duplicates));
    SET("empty", json_integer((json_int_t)s->empty));
    SET("bad_lines", json_integer((json_int_t)s->bad_lines));
    SET("forced_cuts", json_integer((json_int_t)s->forced_cuts));
    SET("split", json_string(s->position_cut ? "position" : "hash"));
    if (s->position_cut) SET("position_cut", json_integer((json_int_t)s->position_cut));
    for (int side = 0; side < 2; side++)
        SET(split_name(side), json_pack("{s:I,s:I,s:I}", "docs", (json_int_t)s->split_docs[side],
                                        "tokens", (json_int_t)s->split_tokens[side], "shards",
                                        (json_int_t)s->split_shards[side]));
    SET("inputs", in);
    in = NULL;
#undef SET
    /* val_frac, the one real: 15 significant digits when they read back as the same double
     * (0.1 stays "0.1"), else 17, which always do */
    char v15[32];
    snprintf(v15, sizeof v15, "%.15g", o->val_frac);
    size_t prec = strtod(v15, NULL) == o->val_frac ? 15 : 17;
    char *text =
        ok ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(prec)) : NULL;
    json_decref(j);
    json_decref(in);
    if (!text) return base_fail(e, BASE_ENOMEM, "out of memory writing prepare.json");
    char path[4096];
    snprintf(path, sizeof path, "%s/prepare.json", o->out_dir);
    base_buf b = {0};
    base_buf_printf(&b, "%s\n", text);
    free(text);
    int rc = b.failed ? base_fail(e, BASE_ENOMEM, "out of memory")
                      : base_write_atomic(path, b.data, b.len, e);
    base_buf_free(&b);
    return rc;
}

/* ---- the entry point */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int data_prepare(const data_prepare_opts *o, data_prepare_stats *st, base_err *e) {
    memset(st, 0, sizeof *st);
    data_prepare_opts opts = *o;
    if (!opts.field) opts.field = "text";
    if (!opts.shard_tokens) opts.shard_tokens = DATA_SHARD_TOKENS;
    o = &opts;
    if (!o->vocab) return base_fail(e, BASE_EINVAL, "no vocabulary given");
    if (!o->out_dir || !*o->out_dir) return base_fail(e, BASE_EINVAL, "no output directory given");
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return base_fail(e, BASE_EINVAL, "the val fraction must be in [0, 1), got %g", o->val_frac);
    if (!*o->field) return base_fail(e, BASE_EINVAL, "the JSONL field name is empty");
    if (o->n_inputs == 0) return base_fail(e, BASE_EINVAL, "no inputs given");
    int32_t eot = tok_eot_id(o->vocab);
    if (eot < 0)
        return base_fail(e, BASE_EINVAL,
                         "the vocabulary (%s) has no end-of-text token, which separates "
                         "documents in shards (`hearth tokenizer train` adds <|endoftext|>)",
                         tok_identity(o->vocab));
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/prepare.json", o->out_dir) >= sizeof path)
        return base_fail(e, BASE_EINVAL, "path too long: %s", o->out_dir);
    if (access(path, F_OK) == 0)
        return base_fail(e, BASE_EINVAL,
                         "%s already holds a prepared data set (prepare.json); remove it or "
                         "choose another --out",
                         o->out_dir);

    /* the inputs, before anything is written */
    struct stat ost;
    int out_exists = stat(o->out_dir, &ost) == 0;
    if (out_exists && !S_ISDIR(ost.st_mode))
        return base_fail(e, BASE_EINVAL, "%s exists and is not a directory", o->out_dir);
    flist files = {0};
    uint64_t total = 0;
    int rc = BASE_OK;
    for (size_t i = 0; i < o->n_inputs && !rc; i++) {
        struct stat s;
        if (stat(o->inputs[i], &s) != 0)
            rc = base_fail(e, BASE_EIO, "cannot open %s: %s", o->inputs[i], strerror(errno));
        else if (S_ISDIR(s.st_mode))
            rc = walk(&files, o->inputs[i], out_exists ? ost.st_dev : 0,
                      out_exists ? ost.st_ino : 0, 0, e);
        else if (S_ISREG(s.st_mode))
            rc = flist_add(&files, o->inputs[i], e);
        else
            rc = base_fail(e, BASE_EINVAL, "%s is not a regular file or a directory", o->inputs[i]);
    }
    for (size_t i = 0; i < files.n && !rc; i++) {
        struct stat s;
        if (stat(files.path[i], &s) == 0) total += (uint64_t)s.st_size;
    }
    if (rc) {
        flist_free(&files);
        return rc;
    }

    prep P = {.o = o, .st = st, .v = o->vocab, .eot = eot};
    P.by_position = files.n == 1 && !ends_with(files.path[0], ".jsonl") && o->val_frac > 0;
    P.vocab_size = (uint32_t)tok_vocab_size(o->vocab);
    P.identity = tok_identity(o->vocab);
    P.shard_tokens = o->shard_tokens;
    P.pr.bytes_total = total;
    P.t0 = P.last_report = base_now();
    P.pend = malloc(PEND_MAX + READ_BLOCK);
    P.block = malloc(READ_BLOCK);
    int made_dir = !out_exists, vocab_written = 0;
    if (!P.pend || !P.block) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) rc = base_mkdir_p(o->out_dir, e);
    for (size_t i = 0; i < files.n && !rc; i++) {
        const char *f = files.path[i];
        int fd = open(f, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = base_fail(e, BASE_EIO, "cannot open %s: %s", f, strerror(errno));
            break;
        }
        st->files++;
        rc = ends_with(f, ".jsonl") ? put_jsonl_file(&P, f, fd, e) : put_text_file(&P, f, fd, e);
        close(fd);
        report(&P, 0);
    }
    if (!rc && st->docs == 0)
        rc = base_fail(e, BASE_EINVAL,
                       "the inputs hold no documents (%llu files: %llu empty, %llu malformed "
                       "lines)",
                       (unsigned long long)st->files, (unsigned long long)st->empty,
                       (unsigned long long)st->bad_lines);
    for (int side = 0; side < 2 && !rc; side++)
        if (P.w[side]) rc = commit_shard(&P, side, e);
    if (!rc) {
        snprintf(path, sizeof path, "%s/vocab.htok", o->out_dir);
        rc = tok_save(o->vocab, path, e);
        vocab_written = !rc;
    }
    /* shards of an earlier, unfinished run beyond this run's last would only confuse */
    for (int side = 0; side < 2 && !rc; side++)
        for (uint64_t k = st->split_shards[side];; k++) {
            if (shard_path(&P, side, k, path, sizeof path, e) || unlink(path) != 0) break;
        }
    if (!rc) rc = write_manifest(&P, e);
    if (!rc && o->val_frac > 0 && st->split_docs[DATA_VAL] == 0)
        warn(&P, "no document went to the val split (%llu documents, --val-frac %g)",
             (unsigned long long)st->docs, o->val_frac);
    P.pr.bytes_done = total;
    if (!rc) report(&P, 1);

    if (rc) { /* leave nothing a loader would take */
        for (int side = 0; side < 2; side++) data_shard_abort(P.w[side]);
        for (size_t i = 0; i < P.committed.n; i++) unlink(P.committed.path[i]);
        if (vocab_written) {
            snprintf(path, sizeof path, "%s/vocab.htok", o->out_dir);
            unlink(path);
        }
        if (made_dir) rmdir(o->out_dir);
    }
    flist_free(&files);
    flist_free(&P.committed);
    free(P.seen.slot);
    tok_ids_free(&P.ids);
    free(P.pend);
    free(P.block);
    return rc;
}
