/* tokenizer/encode.c: text -> ids and back.
 * Byte-level BPE: special tokens are cut out first (when allowed), the rest is split into
 * pieces by the pre-tokenizer, and each piece becomes ids: a piece that is itself a token is
 * that token (tiktoken's rule); otherwise its bytes are merged, lowest-ranked adjacent pair
 * first, leftmost on ties. Short pieces use a linear scan, long ones a heap (same result, no
 * quadratic blow-up on a megabyte of one letter). Merged pieces are cached by their bytes.
 * SentencePiece-style: spaces become U+2581 (and one is prefixed), the text is split into
 * characters, adjacent symbols whose joined text is a token merge, highest score first and
 * leftmost on ties, and what is left without a token falls back to <0xXX> byte tokens. */
#define _GNU_SOURCE /* memmem */
#include "tok_int.h"

#include <stdlib.h>

#define SCAN_MAX 48        /* pieces up to this many bytes use the linear scan */
#define CACHE_MAX_PIECE 64 /* longer pieces are not cached */
#define CACHE_SLOTS (1u << 16)
#define CACHE_KEY_BYTES (1u << 20)
#define CACHE_IDS (1u << 18)

int tok_ids_push(tok_ids *ids, int32_t id) {
    if (base_grow(&ids->data, &ids->cap, ids->len + 1, sizeof *ids->data, SIZE_MAX))
        return BASE_ENOMEM;
    ids->data[ids->len++] = id;
    return 0;
}

void tok_ids_free(tok_ids *ids) {
    if (!ids) return;
    free(ids->data);
    ids->data = NULL;
    ids->len = ids->cap = 0;
}

static int oom(base_err *e) {
    return base_fail(e, BASE_ENOMEM, "out of memory while encoding");
}

/* ---- the piece cache */

void tok_cache_free(tok_cache *c) {
    free(c->slots);
    free(c->keys);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static int cache_init(tok_cache *c) {
    c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
    c->keys = malloc(CACHE_KEY_BYTES);
    c->ids = malloc(CACHE_IDS * sizeof *c->ids);
    if (!c->slots || !c->keys || !c->ids) {
        tok_cache_free(c);
        return -1;
    }
    c->mask = CACHE_SLOTS - 1;
    return 0;
}

/* The cached ids of piece (p, n) with hash h, or NULL. */
static const tok_cache_slot *cache_get(const tok_cache *c, const uint8_t *p, size_t n, uint64_t h) {
    if (!c->slots) return NULL;
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        const tok_cache_slot *s = &c->slots[i];
        if (s->key_len == 0) return NULL;
        if (s->hash == h && s->key_len == n && memcmp(c->keys + s->key_off, p, n) == 0) return s;
    }
}

static void cache_put(tok_cache *c, const uint8_t *p, size_t n, uint64_t h, const int32_t *ids,
                      size_t k) {
    if (!c->slots && cache_init(c)) return; /* no cache: slower, still correct */
    if (c->count >= CACHE_SLOTS / 2 || c->keys_len + n > CACHE_KEY_BYTES ||
        c->ids_len + k > CACHE_IDS) {
        memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots); /* full: start over */
        c->count = c->keys_len = c->ids_len = 0;
    }
    uint32_t i = (uint32_t)h & c->mask;
    while (c->slots[i].key_len) i = (i + 1) & c->mask;
    memcpy(c->keys + c->keys_len, p, n);
    memcpy(c->ids + c->ids_len, ids, k * sizeof *ids);
    c->slots[i] = (tok_cache_slot){h, c->keys_len, c->ids_len, (uint16_t)n, (uint16_t)k};
    c->keys_len += (uint32_t)n;
    c->ids_len += (uint32_t)k;
    c->count++;
}

/* ---- BPE of one piece */

/* Linear scan: parts in arrays; each round finds the lowest-ranked pair, merges it and
 * re-ranks its two neighbours. O(n^2) worst case, fastest for the short pieces of real text. */
static int bpe_scan(const tok_vocab *v, const uint8_t *p, size_t n, tok_ids *out) {
    uint32_t sid[SCAN_MAX], srank[SCAN_MAX], smerged[SCAN_MAX];
    uint32_t *id = sid, *rank = srank, *merged = smerged;
    if (n > SCAN_MAX) {
        id = malloc(n * 3 * sizeof *id);
        if (!id) return -1;
        rank = id + n;
        merged = rank + n;
    }
    for (size_t i = 0; i < n; i++) id[i] = (uint32_t)v->byte_id[p[i]];
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pair_slot *s = tok_pair(v, id[i], id[i + 1]);
        rank[i] = s ? s->rank : UINT32_MAX;
        merged[i] = s ? s->merged : 0;
    }
    size_t m = n;
    for (;;) {
        uint32_t best = UINT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < best) {
                best = rank[i];
                bi = i;
            }
        if (best == UINT32_MAX) break;
        id[bi] = merged[bi];
        size_t tail = m - bi - 2; /* parts after the removed one */
        memmove(id + bi + 1, id + bi + 2, tail * sizeof *id);
        if (tail > 1) { /* pairs after the removed part: old bi+2 .. m-2 */
            memmove(rank + bi + 1, rank + bi + 2, (tail - 1) * sizeof *rank);
            memmove(merged + bi + 1, merged + bi + 2, (tail - 1) * sizeof *merged);
        }
        m--;
        for (size_t i = bi ? bi - 1 : 0; i <= bi && i + 1 < m; i++) {
            const tok_pair_slot *s = tok_pair(v, id[i], id[i + 1]);
            rank[i] = s ? s->rank : UINT32_MAX;
            merged[i] = s ? s->merged : 0;
        }
        if (bi + 1 >= m) rank[bi] = UINT32_MAX;
    }
    int rc = 0;
    for (size_t i = 0; i < m && !rc; i++) /* a byte without a token (GGUF) is dropped */
        if (id[i] != UINT32_MAX) rc = tok_ids_push(out, (int32_t)id[i]);
    if (id != sid) free(id);
    return rc;
}

/* Heap: parts in a linked list (a part keeps the index of its first byte), candidate pairs in
 * a min-heap ordered by (rank, position); entries made stale by a merge are skipped when
 * popped. Same merges as the scan, O(n log n). */
typedef struct heap_ent {
    uint32_t rank, left, right, lid, rid;
} heap_ent;

static int ent_less(const heap_ent *a, const heap_ent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(heap_ent *h, size_t *n, heap_ent x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ent_less(&x, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(&h[c + 1], &h[c])) c++;
        if (!ent_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static int bpe_heap(const tok_vocab *v, const uint8_t *p, size_t n, tok_ids *out) {
    uint32_t *id = malloc(n * sizeof *id);
    int32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    /* each merge pushes at most two entries: n - 1 initial + 2 (n - 1) */
    heap_ent *h = malloc((3 * n) * sizeof *h);
    int rc = -1;
    if (!id || !next || !prev || !h) goto done;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = (uint32_t)v->byte_id[p[i]];
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pair_slot *s = tok_pair(v, id[i], id[i + 1]);
        if (s)
            heap_push(h, &hn,
                      (heap_ent){s->rank, (uint32_t)i, (uint32_t)(i + 1), id[i], id[i + 1]});
    }
    while (hn) {
        heap_ent x = heap_pop(h, &hn);
        if (next[x.left] != (int32_t)x.right || id[x.left] != x.lid || id[x.right] != x.rid)
            continue;
        const tok_pair_slot *s = tok_pair(v, x.lid, x.rid);
        id[x.left] = s->merged;
        int32_t r = next[x.right];
        next[x.left] = r;
        if (r >= 0) prev[r] = (int32_t)x.left;
        next[x.right] = -2; /* dead */
        int32_t l = prev[x.left];
        if (l >= 0 && (s = tok_pair(v, id[l], id[x.left])))
            heap_push(h, &hn, (heap_ent){s->rank, (uint32_t)l, x.left, id[l], id[x.left]});
        if (r >= 0 && (s = tok_pair(v, id[x.left], id[r])))
            heap_push(h, &hn, (heap_ent){s->rank, x.left, (uint32_t)r, id[x.left], id[r]});
    }
    rc = 0;
    for (int32_t i = 0; i >= 0 && !rc; i = next[i])
        if (id[i] != UINT32_MAX) rc = tok_ids_push(out, (int32_t)id[i]);
done:
    free(id);
    free(next);
    free(prev);
    free(h);
    return rc;
}

int tok_bpe_piece(const tok_vocab *v, const uint8_t *p, size_t n, int use_heap, tok_ids *out,
                  base_err *e) {
    if (n == 0) return 0;
    if ((use_heap ? bpe_heap(v, p, n, out) : bpe_scan(v, p, n, out)) != 0) return oom(e);
    return 0;
}

static int bpe_encode_piece(tok_vocab *v, const uint8_t *p, size_t n, tok_ids *out, base_err *e) {
    if (n == 1) return v->byte_id[p[0]] < 0 || !tok_ids_push(out, v->byte_id[p[0]]) ? 0 : oom(e);
    uint64_t h = tok_hash(p, n); /* one hash for the token map and the cache */
    /* a piece that is a token is that token: tiktoken's rule, and llama.cpp's for the
     * vocabularies it ignores merges of (any token type there); other GGUF vocabularies merge */
    int whole_rule = !(v->flags & TOK_FLAG_LLAMA) || (v->flags & TOK_FLAG_IGNORE_MERGES);
    int32_t whole = whole_rule ? tok_lookup_h(v, p, n, h) : -1;
    if (whole >= 0 && (v->type[whole] == TOK_TYPE_NORMAL || (v->flags & TOK_FLAG_LLAMA)))
        return tok_ids_push(out, whole) ? oom(e) : 0;
    if (n <= CACHE_MAX_PIECE) {
        const tok_cache_slot *s = cache_get(&v->cache, p, n, h);
        if (s) {
            for (uint32_t i = 0; i < s->n_ids; i++)
                if (tok_ids_push(out, v->cache.ids[s->ids_off + i])) return oom(e);
            return 0;
        }
    }
    size_t before = out->len;
    int rc = tok_bpe_piece(v, p, n, n > SCAN_MAX, out, e);
    if (rc) return rc;
    if (n <= CACHE_MAX_PIECE) cache_put(&v->cache, p, n, h, out->data + before, out->len - before);
    return 0;
}

static int bpe_encode(tok_vocab *v, const char *text, size_t len, tok_ids *out, base_err *e) {
    if (v->pretok > TOK_PRETOK_CL100K) { /* llama.cpp's: pieces of the text made valid UTF-8 */
        tok_lsplit *ls = &v->lsplit;
        int rc = tok_re_split(v->re, text, len, ls, e);
        for (size_t q = 0, a = 0; !rc && q < ls->n_pieces; a = ls->ends[q++])
            rc = bpe_encode_piece(v, (const uint8_t *)ls->text + a, ls->ends[q] - a, out, e);
        return rc;
    }
    tok_split s = {.text = text, .len = len};
    size_t a, b;
    int rc;
    while ((rc = tok_re_next(v->re, &s, &a, &b, e)) == 1)
        if ((rc = bpe_encode_piece(v, (const uint8_t *)text + a, b - a, out, e))) return rc;
    return rc;
}

/* ---- SentencePiece-style */

/* Length of the valid UTF-8 character at p (n bytes left), or 1 for an invalid byte. */
static size_t utf8_len(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t k;
    uint32_t min;
    if ((c & 0xE0) == 0xC0)
        k = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        k = 3, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        k = 4, min = 0x10000;
    else
        return 1;
    if (k > n) return 1;
    uint32_t cp = c & (0x7F >> k);
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 1;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 1;
    return k;
}

typedef struct spm_sym {
    uint32_t start, len; /* len 0: merged away */
    int32_t prev, next;
} spm_sym;

typedef struct spm_ent {
    float score;
    uint32_t left, right, size;
} spm_ent;

static int spm_better(const spm_ent *a, const spm_ent *b) { /* higher score, then leftmost */
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

typedef struct spm_heap {
    spm_ent *h;
    size_t n, cap;
} spm_heap;

static int spm_push(spm_heap *q, spm_ent x) {
    if (base_grow(&q->h, &q->cap, q->n + 1, sizeof *q->h, SIZE_MAX)) return -1;
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!spm_better(&x, &q->h[parent])) break;
        q->h[i] = q->h[parent];
        i = parent;
    }
    q->h[i] = x;
    return 0;
}

static spm_ent spm_pop(spm_heap *q) {
    spm_ent top = q->h[0], x = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && spm_better(&q->h[c + 1], &q->h[c])) c++;
        if (!spm_better(&q->h[c], &x)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (q->n) q->h[i] = x;
    return top;
}

/* llama.cpp merges into any token and splits characters by their lead byte alone */
static int spm_mergeable(const tok_vocab *v, int32_t id) {
    return id >= 0 && ((v->flags & TOK_FLAG_LLAMA) || v->type[id] == TOK_TYPE_NORMAL ||
                       v->type[id] == TOK_TYPE_USER);
}

static size_t lead_len(uint8_t c) { /* by the lead byte alone: 0xxx, 10xx 1; 110x 2; ... */
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static size_t spm_char_len(const tok_vocab *v, const uint8_t *p, size_t n) {
    if (!(v->flags & TOK_FLAG_LLAMA)) return utf8_len(p, n);
    size_t k = lead_len(p[0]);
    return k < n ? k : n;
}

/* Whether SentencePiece text may be cut right after the newline at nl: no lead byte before it
 * takes the newline into its character (llama.cpp's split by lead byte). */
static int spm_cut_ok(const tok_vocab *v, const char *text, size_t nl) {
    if (!(v->flags & TOK_FLAG_LLAMA)) return 1;
    for (size_t j = 1; j <= 3 && j <= nl; j++)
        if (lead_len((uint8_t)text[nl - j]) > j) return 0;
    return 1;
}

static int spm_try(const tok_vocab *v, const char *buf, const spm_sym *sym, int32_t l, int32_t r,
                   spm_heap *q) {
    if (l < 0 || r < 0) return 0;
    uint32_t size = sym[l].len + sym[r].len;
    int32_t id = tok_lookup(v, buf + sym[l].start, size);
    if (!spm_mergeable(v, id)) return 0;
    return spm_push(q, (spm_ent){v->score[id], (uint32_t)l, (uint32_t)r, size});
}

static int spm_encode(const tok_vocab *v, const char *text, size_t len, int prefix, tok_ids *out,
                      base_err *e) {
    if (len == 0) return 0;
    /* the text as the vocabulary spells it: (prefix +) spaces as U+2581 (3 bytes) */
    size_t cap;
    if (base_mul_size(len + 1, 3, &cap)) return oom(e);
    char *buf = malloc(cap);
    spm_sym *sym = malloc((len + 1) * sizeof *sym);
    spm_heap q = {0};
    int rc = -1;
    if (!buf || !sym) goto done;
    size_t n = 0;
    if (prefix) {
        memcpy(buf, "\xE2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t k = spm_char_len(v, (const uint8_t *)buf + i, n - i);
        sym[ns] = (spm_sym){(uint32_t)i, (uint32_t)k, (int32_t)ns - 1, (int32_t)ns + 1};
        ns++;
        i += k;
    }
    sym[ns - 1].next = -1;
    for (size_t i = 0; i + 1 < ns; i++)
        if (spm_try(v, buf, sym, (int32_t)i, (int32_t)i + 1, &q)) goto done;
    while (q.n) {
        spm_ent x = spm_pop(&q);
        spm_sym *l = &sym[x.left], *r = &sym[x.right];
        if (l->len == 0 || r->len == 0 || l->next != (int32_t)x.right || l->len + r->len != x.size)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = (int32_t)x.left;
        if (spm_try(v, buf, sym, l->prev, (int32_t)x.left, &q) ||
            spm_try(v, buf, sym, (int32_t)x.left, l->next, &q))
            goto done;
    }
    rc = 0;
    for (int32_t i = 0; i >= 0 && !rc; i = sym[i].next) {
        int32_t id = tok_lookup(v, buf + sym[i].start, sym[i].len);
        if (spm_mergeable(v, id)) {
            rc = tok_ids_push(out, id);
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len && !rc; k++) { /* byte fallback */
            int32_t b = v->byte_id[(uint8_t)buf[sym[i].start + k]];
            rc = tok_ids_push(out, b >= 0 ? b : v->unk);
        }
    }
done:
    free(buf);
    free(sym);
    free(q.h);
    return rc ? oom(e) : 0;
}

/* ---- the entry points */

size_t tok_spm_chunk = 1 << 10;

static int encode_segment(tok_vocab *v, const char *text, size_t len, int at_start, tok_ids *out,
                          base_err *e) {
    if (len == 0) return 0;
    if (v->kind == TOK_KIND_BPE) return bpe_encode(v, text, len, out, e);
    int prefix = at_start && (v->flags & TOK_FLAG_SPACE_PREFIX);
    if (!v->spm_newline_splits) return spm_encode(v, text, len, prefix, out, e);
    /* no mergeable token holds a newline, so merges never cross one: encode in pieces of about
     * tok_spm_chunk bytes, each ending after a newline (same ids, bounded scratch memory) */
    for (size_t pos = 0; pos < len;) {
        size_t end = len - pos > tok_spm_chunk ? pos + tok_spm_chunk : len;
        if (end < len) {
            const char *nl = memchr(text + end - 1, '\n', len - end + 1);
            while (nl && !spm_cut_ok(v, text, (size_t)(nl - text)))
                nl = memchr(nl + 1, '\n', (size_t)(text + len - nl - 1));
            end = nl ? (size_t)(nl - text) + 1 : len;
        }
        int rc = spm_encode(v, text + pos, end - pos, prefix && pos == 0, out, e);
        if (rc) return rc;
        pos = end;
    }
    return 0;
}

static int encode_text(tok_vocab *v, const char *text, size_t len, int flags, tok_ids *out,
                       base_err *e);

int tok_encode(tok_vocab *v, const char *text, size_t len, int flags, tok_ids *out, base_err *e) {
    if (!text && len) return base_fail(e, BASE_EINVAL, "tok_encode: NULL text");
    if (!(flags & TOK_ENCODE_ADD_SPECIAL)) return encode_text(v, text, len, flags, out, e);
    /* tok_vocab_finish checked that a vocabulary adding BOS/EOS has them */
    if ((v->flags & TOK_FLAG_ADD_BOS) && tok_ids_push(out, v->bos)) return oom(e);
    int rc = encode_text(v, text, len, flags, out, e);
    if (!rc && (v->flags & TOK_FLAG_ADD_EOS) && tok_ids_push(out, v->eot)) return oom(e);
    return rc;
}

/* One part of the text: a run of text [start, start + len) (id -1) or a special token. */
typedef struct frag {
    size_t start, len;
    int32_t id;
} frag;

static int is_ascii_space(char c) { /* C's isspace in the "C" locale, as llama.cpp strips */
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Phi-3's specials strip the whitespace after them, but for <unk>, <s> and <|endoftext|>
 * (llama.cpp's per-model attributes) */
static int rstrips(const tok_vocab *v, int32_t id) {
    if (!(v->flags & TOK_FLAG_RSTRIP)) return 0;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < 3; i++)
        if (v->len[id] == strlen(keep[i]) && !memcmp(v->blob + v->off[id], keep[i], v->len[id]))
            return 0;
    return 1;
}

/* Splits the text at special tokens as llama.cpp does: each special in turn, longest text
 * first, cuts every text part at each of its occurrences (leftmost first, not overlapping).
 * CONTROL and UNKNOWN tokens only with TOK_ENCODE_SPECIAL; USER tokens always. */
static int split_specials(const tok_vocab *v, const char *text, size_t len, int special, frag **out,
                          size_t *n_out) {
    size_t n = 1, cap = 16;
    frag *f = malloc(cap * sizeof *f), *g = NULL;
    size_t gcap = 0;
    if (!f) return -1;
    f[0] = (frag){0, len, -1};
    /* the byte pairs in the text: a special whose first two bytes never occur is skipped
     * without a search (vocabularies with thousands of user-defined tokens stay fast) */
    uint8_t pairs[8192] = {0};
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = (unsigned)(uint8_t)text[i] << 8 | (uint8_t)text[i + 1];
        pairs[k >> 3] |= (uint8_t)(1u << (k & 7));
    }
    for (uint32_t si = 0; si < v->n_specials && len; si++) {
        int32_t id = v->specials[si];
        if (!special && v->type[id] != TOK_TYPE_USER) continue;
        const char *st = v->blob + v->off[id];
        size_t sl = v->len[id];
        if (sl >= 2) {
            unsigned k = (unsigned)(uint8_t)st[0] << 8 | (uint8_t)st[1];
            if (!(pairs[k >> 3] & (1u << (k & 7)))) continue;
        }
        if (!memmem(text, len, st, sl)) continue; /* most specials are not in the text */
        int rs = rstrips(v, id);
        size_t gn = 0;
        for (size_t k = 0; k < n; k++) {
            /* room for what this fragment can become: 2 per occurrence + 1 */
            size_t worst = f[k].id < 0 ? f[k].len / sl * 2 + 1 : 1;
            if (base_grow(&g, &gcap, gn + worst, sizeof *g, SIZE_MAX)) {
                free(f), free(g);
                return -1;
            }
            if (f[k].id >= 0) {
                g[gn++] = f[k];
                continue;
            }
            size_t cur = f[k].start, end = f[k].start + f[k].len;
            while (cur < end) {
                const char *m = memmem(text + cur, end - cur, st, sl);
                if (!m) break;
                size_t at = (size_t)(m - text);
                if (at > cur) g[gn++] = (frag){cur, at - cur, -1};
                g[gn++] = (frag){at, sl, id};
                cur = at + sl;
                if (rs)
                    while (cur < end && is_ascii_space(text[cur])) cur++;
            }
            if (cur < end) g[gn++] = (frag){cur, end - cur, -1};
        }
        frag *x = f;
        f = g, g = x;
        size_t xc = cap;
        cap = gcap, gcap = xc;
        n = gn;
    }
    free(g);
    *out = f;
    *n_out = n;
    return 0;
}

static int encode_text(tok_vocab *v, const char *text, size_t len, int flags, tok_ids *out,
                       base_err *e) {
    int at_start = !(flags & TOK_ENCODE_CONTINUE);
    frag *f;
    size_t n;
    if (v->n_specials == 0) return encode_segment(v, text, len, at_start, out, e);
    if (split_specials(v, text, len, flags & TOK_ENCODE_SPECIAL, &f, &n)) return oom(e);
    int rc = 0, prev_special = at_start; /* SentencePiece: a space after a special too */
    for (size_t k = 0; k < n && !rc; k++) {
        if (f[k].id >= 0) {
            rc = tok_ids_push(out, f[k].id) ? oom(e) : 0;
            prev_special = 1;
        } else {
            rc = encode_segment(v, text + f[k].start, f[k].len, prev_special, out, e);
            prev_special = 0;
        }
    }
    free(f);
    return rc;
}

/* Why these cuts are exact (the patterns are in docs/FORMATS.md; neither has a lookbehind, so
 * a piece that starts at the cut is the same piece whether the subject starts there or not):
 * - "X\nY", X and Y printable non-space ASCII: no piece of either pattern holds a non-space
 *   followed by whitespace except cl100k's punctuation run with trailing newlines (" ?[^WS\p{L}
 *   \p{N}]+[\r\n]*"), which stops before Y either way; the GPT-2 piece holding the newline is
 *   "\n" alone, matched by WS+(?!NWS) at the end of the text and by WS+ before Y. (Whitespace
 *   before the newline would join it at the end of the text but not before Y.)
 * - "a| b", a an ASCII letter: the piece holding the letter is a letter run or a contraction,
 *   which no alternative extends over a space, and the end of the text stops it just as the
 *   space does.
 * - SentencePiece: no merge crosses a newline when no mergeable token holds one; each part is
 *   split into characters and merged on its own (the same reason encode_segment chunks). */
static int printable_nonspace(unsigned char c) {
    return c > 0x20 && c < 0x7f;
}

static int ascii_letter(unsigned char c) {
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* Whether a user-defined token (matched in any text) may cover the cut c: one of them occurs
 * across c, or could once the bytes after len are known. Only tokens holding a space or a
 * newline can (the cuts sit next to one). */
static int user_token_spans(const tok_vocab *v, const char *text, size_t len, size_t c) {
    for (uint32_t i = 0; i < v->n_specials; i++) {
        int32_t id = v->specials[i];
        size_t n = v->len[id];
        const char *p = v->blob + v->off[id];
        if (v->type[id] != TOK_TYPE_USER || n < 2 || (!memchr(p, ' ', n) && !memchr(p, '\n', n)))
            continue;
        /* an occurrence starting before c and ending after it; one running past len counts
         * when the bytes up to len match its start */
        for (size_t at = c >= n - 1 ? c - (n - 1) : 0; at < c; at++) {
            size_t k = at + n <= len ? n : len - at;
            if (!memcmp(text + at, p, k)) return 1;
        }
    }
    return 0;
}

size_t tok_stream_cut(const tok_vocab *v, const char *text, size_t len) {
    const unsigned char *t = (const unsigned char *)text;
    if (len < 2) return 0;
    if (v->kind == TOK_KIND_SPM) {
        if (!v->spm_newline_splits) return 0;
        for (size_t c = len - 1; c >= 1; c--)
            if (t[c - 1] == '\n' && spm_cut_ok(v, text, c - 1) &&
                !user_token_spans(v, text, len, c))
                return c;
        return 0;
    }
    for (size_t c = len - 1; c >= 1; c--) {
        if (((t[c - 1] == '\n' && c >= 2 && printable_nonspace(t[c - 2]) &&
              printable_nonspace(t[c])) ||
             (t[c] == ' ' && ascii_letter(t[c - 1]))) &&
            !user_token_spans(v, text, len, c))
            return c;
    }
    return 0;
}

int tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, int flags, char **text,
               size_t *len, base_err *e) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= v->n)
            return base_fail(e, BASE_EINVAL,
                             "token id %d (at %zu) is not in the vocabulary (%u tokens)", ids[i], i,
                             v->n);
        total += v->dlen[ids[i]]; /* <= n * 2^16: cannot overflow for any n in memory */
    }
    char *out = malloc(total + 1);
    if (!out) return base_fail(e, BASE_ENOMEM, "out of memory decoding %zu tokens", n);
    size_t o = 0;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if ((flags & TOK_DECODE_SKIP_SPECIAL) &&
            (v->type[id] == TOK_TYPE_CONTROL || v->type[id] == TOK_TYPE_UNKNOWN))
            continue;
        const char *p = v->dblob + v->doff[id];
        size_t k = v->dlen[id];
        /* undo the space that SentencePiece-style encoding prefixed */
        if (first && (v->flags & TOK_FLAG_SPACE_PREFIX) && v->type[id] != TOK_TYPE_CONTROL && k &&
            p[0] == ' ') {
            p++;
            k--;
        }
        first = 0;
        memcpy(out + o, p, k);
        o += k;
    }
    out[o] = 0;
    *text = out;
    *len = o;
    return 0;
}
