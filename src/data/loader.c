/* data/loader.c: batches for hearth train. The tokens are mapped read-only (shards, or a text
 * file whose bytes are the tokens); a batch is B windows of T + 1 tokens at multiples of T.
 * One epoch visits every window once, in an order drawn from the seed: the shards are
 * permuted from (seed, epoch), the windows of a shard from (seed, epoch, shard). The position
 * (epoch, shard in the order, window in the order) is all the state there is, so a saved one
 * restores the stream exactly. */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct lshard {
    void *map; /* the mapped file (munmap'd by free) */
    size_t map_len;
    const uint8_t *ids; /* the first id of this shard's tokens inside map */
    uint32_t width;     /* bytes per id: 1 (text as bytes), 2 or 4 */
    uint64_t n_tokens, n_windows;
    uint64_t file_index; /* position in the file list: what seeds its window order */
    char *name;
} lshard;

struct data_loader {
    lshard *s; /* shards that hold at least one window, in file order */
    size_t n;
    int B, T;
    uint64_t seed, windows;
    uint32_t vocab_size;
    int32_t eot_id;
    char identity[DATA_IDENTITY_MAX + 1];
    data_pos pos;
    uint32_t *shard_order; /* (n) the order of pos.epoch */
    uint64_t shard_order_epoch;
    uint32_t *win_order; /* the window order of shard_order[pos.shard] in pos.epoch */
    size_t win_cap;
    uint64_t win_epoch, win_shard; /* which order win_order holds; win_shard UINT64_MAX: none */
};

void data_loader_free(data_loader *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        if (l->s[i].map) munmap(l->s[i].map, l->s[i].map_len);
        free(l->s[i].name);
    }
    free(l->s);
    free(l->shard_order);
    free(l->win_order);
    free(l);
}

/* ---- opening */

static data_loader *loader_new(int B, int T, uint64_t seed, size_t max_shards) {
    data_loader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->s = calloc(max_shards ? max_shards : 1, sizeof *l->s);
    l->shard_order = calloc(max_shards ? max_shards : 1, sizeof *l->shard_order);
    if (!l->s || !l->shard_order) {
        data_loader_free(l);
        return NULL;
    }
    l->B = B, l->T = T, l->seed = seed;
    l->win_shard = UINT64_MAX;
    l->shard_order_epoch = UINT64_MAX;
    return l;
}

/* Maps path read-only; *len gets its size. An empty file is mapped as nothing. */
static int map_file(const char *path, void **map, size_t *len, base_err *e) {
    *map = NULL, *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return base_fail(e, BASE_EIO, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return BASE_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return base_fail(e, BASE_EFORMAT, "%s is too large to map", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) return base_fail(e, BASE_EIO, "cannot map %s: %s", path, strerror(err));
    *map = p;
    *len = (size_t)st.st_size;
    return BASE_OK;
}

/* Windows of T + 1 tokens at multiples of T in n tokens. */
static uint64_t windows_in(uint64_t n, int T) {
    return n < (uint64_t)T + 1 ? 0 : (n - 1) / (uint64_t)T;
}

/* Takes the mapped tokens [lo, lo + n) of map as shard number file_index of l (keeping it
 * only if it has a window); the map is owned by l from here on, also on failure. */
static int add_shard(data_loader *l, void *map, size_t map_len, size_t lo, uint64_t n,
                     uint32_t width, uint64_t file_index, const char *name, base_err *e) {
    uint64_t w = windows_in(n, l->T);
    if (w == 0) {
        if (map) munmap(map, map_len);
        return BASE_OK;
    }
    if (w > UINT32_MAX) {
        munmap(map, map_len);
        return base_fail(e, BASE_EINVAL,
                         "%s: %llu windows of %d tokens, more than one shard may "
                         "hold (2^32); use shorter shards or a longer sequence",
                         name, (unsigned long long)w, l->T + 1);
    }
    lshard *s = &l->s[l->n];
    if (!(s->name = strdup(name))) {
        munmap(map, map_len);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    s->map = map, s->map_len = map_len;
    s->ids = (const uint8_t *)map + lo;
    s->width = width;
    s->n_tokens = n, s->n_windows = w;
    s->file_index = file_index;
    l->n++;
    l->windows += w;
    return BASE_OK;
}

static int check_args(int B, int T, base_err *e) {
    if (B < 1 || T < 1) return base_fail(e, BASE_EINVAL, "batch and sequence must be at least 1");
    return BASE_OK;
}

static int no_windows(const data_loader *l, const char *what, uint64_t tokens, base_err *e) {
    return base_fail(e, BASE_EINVAL,
                     "%s is too small: %llu tokens cannot give one sequence of %d tokens "
                     "(sequence length + 1) in any shard",
                     what, (unsigned long long)tokens, l->T + 1);
}

int data_loader_open_files(data_loader **out, const char *const *paths, size_t n, int B, int T,
                           uint64_t seed, base_err *e) {
    *out = NULL;
    int rc = check_args(B, T, e);
    if (rc) return rc;
    if (n == 0) return base_fail(e, BASE_EINVAL, "no shards given");
    if (n > UINT32_MAX) return base_fail(e, BASE_EINVAL, "too many shards");
    data_loader *l = loader_new(B, T, seed, n);
    if (!l) return base_fail(e, BASE_ENOMEM, "out of memory");
    uint64_t tokens = 0;
    for (size_t i = 0; i < n; i++) {
        void *map;
        size_t len;
        data_shard_info info;
        if ((rc = map_file(paths[i], &map, &len, e))) goto fail;
        if ((rc = data_shard_parse(map ? map : "", len, paths[i], &info, e))) {
            if (map) munmap(map, len);
            goto fail;
        }
        if (i == 0) {
            l->vocab_size = info.vocab_size;
            l->eot_id = info.eot_id;
            strcpy(l->identity, info.identity);
        } else if (strcmp(info.identity, l->identity) != 0 || info.vocab_size != l->vocab_size ||
                   info.eot_id != l->eot_id) {
            rc = base_fail(e, BASE_EFORMAT,
                           "%s and %s were prepared with different vocabularies (%s, %s)", paths[0],
                           paths[i], l->identity, info.identity);
            munmap(map, len);
            goto fail;
        }
        tokens += info.n_tokens;
        if ((rc = add_shard(l, map, len, DATA_SHARD_HEADER, info.n_tokens, info.token_bytes, i,
                            paths[i], e)))
            goto fail;
    }
    if (l->n == 0) {
        rc = no_windows(l, n == 1 ? paths[0] : "the shard set", tokens, e);
        goto fail;
    }
    *out = l;
    return BASE_OK;
fail:
    data_loader_free(l);
    return rc;
}

int data_file_looks_binary(const char *path, char *why, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char *b = malloc(DATA_SNIFF_BYTES);
    ssize_t n = b ? read(fd, b, DATA_SNIFF_BYTES) : -1;
    close(fd);
    size_t nul = 0, odd = 0, len = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < len;) {
        size_t k = base_utf8_len(b + i, len - i);
        if (k == 0 && len - i < 4 && len == DATA_SNIFF_BYTES) break; /* a character cut short */
        if (b[i] == 0)
            nul++;
        else if (k == 0 || (b[i] < 0x20 && !strchr("\t\n\r\f\v\033", b[i])) || b[i] == 0x7f)
            odd++;
        i += k ? k : 1;
    }
    free(b);
    if (nul)
        snprintf(why, cap, "%zu NUL bytes in its first %zu", nul, len);
    else if (odd * 100 > len)
        snprintf(why, cap, "%zu of its first %zu bytes are neither UTF-8 text nor whitespace", odd,
                 len);
    return nul || odd * 100 > len;
}

/* A text file as bytes: the last DATA_BYTES_VAL_FRAC is val. */
static int open_bytes(data_loader **out, const char *path, int split, int B, int T, uint64_t seed,
                      base_err *e) {
    void *map;
    size_t n;
    int rc = map_file(path, &map, &n, e);
    if (rc) return rc;
    size_t cut = n - (size_t)((double)n * DATA_BYTES_VAL_FRAC);
    if (cut < (size_t)T + 1 || n - cut < (size_t)T + 1) {
        if (map) munmap(map, n);
        return base_fail(e, BASE_EINVAL,
                         "%s is too small: %zu bytes cannot give a training and a held-out part "
                         "of at least %d bytes each (sequence length + 1)",
                         path, n, T + 1);
    }
    data_loader *l = loader_new(B, T, seed, 1);
    if (!l) {
        munmap(map, n);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    l->vocab_size = 256;
    l->eot_id = -1;
    strcpy(l->identity, "bytes");
    size_t lo = split == DATA_TRAIN ? 0 : cut, hi = split == DATA_TRAIN ? cut : n;
    if ((rc = add_shard(l, map, n, lo, hi - lo, 1, 0, path, e))) {
        data_loader_free(l);
        return rc;
    }
    *out = l;
    return BASE_OK;
}

/* prepare.json of dir, parsed; *root is freed with json_decref. */
static int read_manifest(const char *dir, json_t **root, base_err *e) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/prepare.json", dir) >= sizeof path)
        return base_fail(e, BASE_EINVAL, "path too long: %s", dir);
    if (access(path, F_OK) != 0)
        return base_fail(e, BASE_EIO,
                         "%s is not a regular file nor a prepared data directory (no "
                         "prepare.json: run `hearth prepare`, or it did not finish)",
                         dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return base_fail(e, BASE_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    json_int_t version = json_integer_value(json_object_get(j, "version"));
    if (!json_is_object(j) || version != 1 || !json_is_string(json_object_get(j, "vocab")) ||
        !json_is_integer(json_object_get(j, "vocab_size"))) {
        json_decref(j);
        return base_fail(e, BASE_EFORMAT, "%s: not a version 1 prepare.json", path);
    }
    *root = j;
    return BASE_OK;
}

int data_vocab_size(const char *path, uint32_t *vocab_size, base_err *e) {
    *vocab_size = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (!S_ISREG(st.st_mode)) return base_fail(e, BASE_EIO, "%s is not a regular file", path);
        *vocab_size = 256;
        return BASE_OK;
    }
    json_t *j;
    int rc = read_manifest(path, &j, e);
    if (rc) return rc;
    json_int_t v = json_integer_value(json_object_get(j, "vocab_size"));
    json_decref(j);
    if (v < 1 || v > INT32_MAX)
        return base_fail(e, BASE_EFORMAT, "%s/prepare.json: vocab_size out of range", path);
    *vocab_size = (uint32_t)v;
    return BASE_OK;
}

static int open_dir(data_loader **out, const char *dir, int split, int B, int T, uint64_t seed,
                    base_err *e) {
    json_t *j;
    int rc = read_manifest(dir, &j, e);
    if (rc) return rc;
    const char *name = split == DATA_TRAIN ? "train" : "val";
    json_t *sj = json_object_get(j, name);
    json_int_t n = json_integer_value(json_object_get(sj, "shards"));
    json_int_t tokens = json_integer_value(json_object_get(sj, "tokens"));
    int bad = !json_is_object(sj) || n < 0 || n > 1000000 || tokens < 0;
    char *identity = strdup(json_string_value(json_object_get(j, "vocab")));
    json_decref(j);
    if (!identity) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (bad) {
        free(identity);
        return base_fail(e, BASE_EFORMAT, "%s/prepare.json: bad '%s' entry", dir, name);
    }
    if (n == 0) {
        free(identity);
        return base_fail(
            e, BASE_EINVAL, "%s has no %s shards (no document went to the %s split%s)", dir, name,
            name, split == DATA_VAL ? ": prepare with a larger --val-frac or more documents" : "");
    }
    char **paths = calloc((size_t)n, sizeof *paths);
    rc = paths ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
    for (json_int_t i = 0; i < n && !rc; i++) {
        size_t len = strlen(dir) + 32;
        if (!(paths[i] = malloc(len)))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else
            snprintf(paths[i], len, "%s/%s_%06lld.bin", dir, name, (long long)i);
    }
    if (!rc) rc = data_loader_open_files(out, (const char *const *)paths, (size_t)n, B, T, seed, e);
    if (!rc && strcmp((*out)->identity, identity) != 0) {
        rc =
            base_fail(e, BASE_EFORMAT, "%s: the shards' vocabulary (%s) is not prepare.json's (%s)",
                      dir, (*out)->identity, identity);
        data_loader_free(*out);
        *out = NULL;
    }
    for (json_int_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
    free(identity);
    return rc;
}

int data_loader_open(data_loader **out, const char *path, int split, int B, int T, uint64_t seed,
                     base_err *e) {
    *out = NULL;
    int rc = check_args(B, T, e);
    if (rc) return rc;
    if (split != DATA_TRAIN && split != DATA_VAL) return base_fail(e, BASE_EINVAL, "bad split");
    struct stat st;
    if (stat(path, &st) != 0)
        return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return open_dir(out, path, split, B, T, seed, e);
    return open_bytes(out, path, split, B, T, seed, e);
}

/* ---- the order */

/* A permutation of 0..n-1 (Fisher-Yates) drawn from (seed, epoch, what). */
static void permute(uint32_t *p, uint64_t n, uint64_t seed, uint64_t epoch, uint64_t what) {
    base_rng r;
    base_rng_seed(&r, base_splitmix64(base_splitmix64(base_splitmix64(seed) ^ epoch) ^ what));
    base_rng_permute(&r, p, (size_t)n);
}

#define SHARD_ORDER UINT64_MAX /* the "what" of the shard order; windows use the file index */

static void ensure_shard_order(data_loader *l, uint64_t epoch) {
    if (l->shard_order_epoch == epoch) return;
    permute(l->shard_order, l->n, l->seed, epoch, SHARD_ORDER);
    l->shard_order_epoch = epoch;
}

static int ensure_win_order(data_loader *l, base_err *e) {
    ensure_shard_order(l, l->pos.epoch);
    const lshard *s = &l->s[l->shard_order[l->pos.shard]];
    if (l->win_epoch == l->pos.epoch && l->win_shard == s->file_index) return BASE_OK;
    if (s->n_windows > l->win_cap) {
        free(l->win_order);
        l->win_cap = 0;
        if (!(l->win_order = malloc((size_t)s->n_windows * sizeof *l->win_order)))
            return base_fail(e, BASE_ENOMEM, "out of memory (%llu windows)",
                             (unsigned long long)s->n_windows);
        l->win_cap = (size_t)s->n_windows;
    }
    permute(l->win_order, s->n_windows, l->seed, l->pos.epoch, s->file_index);
    l->win_epoch = l->pos.epoch;
    l->win_shard = s->file_index;
    return BASE_OK;
}

static uint32_t id_at(const lshard *s, uint64_t i) {
    const uint8_t *p = s->ids + i * s->width;
    if (s->width == 1) return p[0];
    if (s->width == 2) return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int data_loader_next(data_loader *l, int *tokens, int *targets, base_err *e) {
    int T = l->T;
    for (int b = 0; b < l->B; b++) {
        int rc = ensure_win_order(l, e);
        if (rc) return rc;
        const lshard *s = &l->s[l->shard_order[l->pos.shard]];
        uint64_t start = (uint64_t)l->win_order[l->pos.window] * (uint64_t)T;
        int *tok = tokens + (size_t)b * T, *tgt = targets + (size_t)b * T;
        for (int t = 0; tokens && t <= T; t++) { /* no tokens: skipped (another rank's) */
            uint32_t id = id_at(s, start + (uint64_t)t);
            if (id >= l->vocab_size)
                return base_fail(e, BASE_EFORMAT,
                                 "%s: token %llu is %u, outside the vocabulary (%u): corrupt shard",
                                 s->name, (unsigned long long)(start + (uint64_t)t), id,
                                 l->vocab_size);
            if (t < T) tok[t] = (int)id;
            if (t > 0) tgt[t - 1] = (int)id;
        }
        /* advance: next window, next shard, next epoch */
        if (++l->pos.window == s->n_windows) {
            l->pos.window = 0;
            if (++l->pos.shard == l->n) {
                l->pos.shard = 0;
                l->pos.epoch++;
            }
        }
    }
    return BASE_OK;
}

void data_loader_tell(const data_loader *l, data_pos *pos) {
    *pos = l->pos;
}

int data_loader_seek(data_loader *l, const data_pos *pos, base_err *e) {
    if (pos->shard >= l->n)
        return base_fail(e, BASE_EINVAL, "data position: shard %llu of %zu",
                         (unsigned long long)pos->shard, l->n);
    ensure_shard_order(l, pos->epoch);
    const lshard *s = &l->s[l->shard_order[pos->shard]];
    if (pos->window >= s->n_windows)
        return base_fail(e, BASE_EINVAL, "data position: window %llu of %llu in %s",
                         (unsigned long long)pos->window, (unsigned long long)s->n_windows,
                         s->name);
    l->pos = *pos;
    return BASE_OK;
}

uint32_t data_loader_vocab_size(const data_loader *l) {
    return l->vocab_size;
}
int32_t data_loader_eot_id(const data_loader *l) {
    return l->eot_id;
}
const char *data_loader_identity(const data_loader *l) {
    return l->identity;
}
uint64_t data_loader_windows(const data_loader *l) {
    return l->windows;
}
size_t data_loader_shards(const data_loader *l) {
    return l->n;
}
