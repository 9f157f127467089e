/* tokenizer/train.c: byte-level BPE training.
 * 1. Count: each text is cut at the specials' text, split by the pre-tokenizer, and every
 *    piece is counted in a hash table (bytes -> count), so the work after this depends on the
 *    distinct pieces ("words"), not on the corpus size.
 * 2. Merge: words start as their bytes (token b = byte b). A table holds every adjacent pair's
 *    count (weighted by word counts) and the words it occurs in. The best pair — highest
 *    count, then smallest left id, then smallest right id — comes off a max-heap (entries made
 *    stale by later updates are skipped), becomes a new token, and is merged in just the words
 *    listed for it; the counts of the pairs around each merge site are updated in place.
 * The result depends only on the text: no hash order or thread timing leaks into it. */
#define _GNU_SOURCE /* memmem */
#include "tok_int.h"

#include <stdlib.h>

typedef struct piece_slot {
    uint64_t hash, count; /* count 0 = empty */
    size_t off;
    uint32_t len;
} piece_slot;

struct tok_trainer {
    int32_t vocab_size;
    int pretok;
    char **specials;
    size_t n_specials;
    void (*progress)(void *ctx, const char *stage, size_t done, size_t total);
    void *ctx;
    tok_re *re;
    piece_slot *slots;
    size_t mask, used;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    uint64_t n_pieces;
};

void tok_trainer_free(tok_trainer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_specials; i++) free(t->specials[i]);
    free(t->specials);
    tok_re_free(t->re);
    free(t->slots);
    free(t->arena);
    free(t);
}

int tok_trainer_create(const tok_train_opts *o, tok_trainer **out, base_err *e) {
    *out = NULL;
    if (o->pretok != TOK_PRETOK_GPT2 && o->pretok != TOK_PRETOK_CL100K)
        return base_fail(e, BASE_EINVAL, "training needs the gpt2 or cl100k pre-tokenizer");
    if (o->n_specials > 1024) return base_fail(e, BASE_EINVAL, "too many special tokens");
    if (o->vocab_size < 256 + (int64_t)o->n_specials || o->vocab_size > TOK_MAX_TOKENS)
        return base_fail(
            e, BASE_EINVAL,
            "vocabulary size %d must be at least 256 + %zu special tokens and at most %d",
            o->vocab_size, o->n_specials, TOK_MAX_TOKENS);
    tok_trainer *t = calloc(1, sizeof *t);
    if (!t) return base_fail(e, BASE_ENOMEM, "out of memory");
    t->vocab_size = o->vocab_size;
    t->pretok = o->pretok;
    t->progress = o->progress;
    t->ctx = o->ctx;
    t->specials = calloc(o->n_specials ? o->n_specials : 1, sizeof *t->specials);
    int rc = t->specials ? 0 : base_fail(e, BASE_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < o->n_specials; i++) {
        const char *s = o->specials[i];
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > TOK_MAX_TOKEN_LEN) {
            rc = base_fail(e, BASE_EINVAL, "special token %zu is empty or too long", i);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->specials[j], s))
                rc = base_fail(e, BASE_EINVAL, "special token '%s' is given twice", s);
        if (!rc && !(t->specials[i] = strdup(s))) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        t->n_specials = i + 1;
    }
    if (!rc) rc = tok_re_create(o->pretok, &t->re, e);
    if (!rc) {
        t->mask = (1u << 16) - 1;
        t->slots = calloc(t->mask + 1, sizeof *t->slots);
        if (!t->slots) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    if (rc) {
        tok_trainer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int count_grow(tok_trainer *t) {
    size_t size = (t->mask + 1) * 2;
    piece_slot *s = calloc(size, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].count) continue;
        size_t j = t->slots[i].hash & (size - 1);
        while (s[j].count) j = (j + 1) & (size - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->mask = size - 1;
    return 0;
}

static int count_piece(tok_trainer *t, const uint8_t *p, size_t n) {
    uint64_t h = tok_hash(p, n);
    size_t i = h & t->mask;
    for (;; i = (i + 1) & t->mask) {
        piece_slot *s = &t->slots[i];
        if (!s->count) break;
        if (s->hash == h && s->len == n && memcmp(t->arena + s->off, p, n) == 0) {
            s->count++;
            return 0;
        }
    }
    if (n > UINT32_MAX) return -1;
    if (base_grow(&t->arena, &t->arena_cap, t->arena_len + n, 1, SIZE_MAX)) return -1;
    memcpy(t->arena + t->arena_len, p, n);
    t->slots[i] = (piece_slot){h, 1, t->arena_len, (uint32_t)n};
    t->arena_len += n;
    if (++t->used * 2 > t->mask + 1 && count_grow(t)) return -1;
    return 0;
}

static int count_text(tok_trainer *t, const char *text, size_t len, base_err *e) {
    tok_split s = {.text = text, .len = len};
    size_t a, b;
    int rc;
    while ((rc = tok_re_next(t->re, &s, &a, &b, e)) == 1) {
        if (count_piece(t, (const uint8_t *)text + a, b - a))
            return base_fail(e, BASE_ENOMEM, "out of memory counting pieces");
        t->n_pieces++;
    }
    return rc;
}

int tok_trainer_add(tok_trainer *t, const char *text, size_t len, base_err *e) {
    size_t pos = 0;
    while (pos < len) { /* cut at the earliest special (the longest when two start together) */
        size_t best = len, blen = 0;
        for (size_t i = 0; i < t->n_specials; i++) {
            size_t sl = strlen(t->specials[i]);
            const char *f = memmem(text + pos, len - pos, t->specials[i], sl);
            if (f && ((size_t)(f - text) < best || ((size_t)(f - text) == best && sl > blen))) {
                best = (size_t)(f - text);
                blen = sl;
            }
        }
        int rc = count_text(t, text + pos, best - pos, e);
        if (rc) return rc;
        pos = best + blen;
    }
    return 0;
}

void tok_trainer_stats(const tok_trainer *t, uint64_t *pieces, uint64_t *unique) {
    if (pieces) *pieces = t->n_pieces;
    if (unique) *unique = t->used;
}

/* ---- the merge phase */

typedef struct pair_info {
    uint32_t a, b;
    int64_t count;
    uint32_t *where; /* words the pair was seen in (may repeat or be stale) */
    uint32_t n_where, cap_where;
    uint32_t stamp; /* last merge step that touched it */
} pair_info;

typedef struct heap_ent {
    int64_t count;
    uint32_t a, b, pair;
} heap_ent;

typedef struct merger {
    /* words */
    uint32_t *sym;
    size_t *woff;
    uint32_t *wlen, *wstamp;
    uint64_t *wcount;
    size_t n_words;
    /* pairs */
    pair_info *pairs;
    size_t n_pairs, cap_pairs;
    uint32_t *pmap; /* pair key -> index into pairs, UINT32_MAX empty */
    size_t pmask;
    heap_ent *heap;
    size_t n_heap, cap_heap;
    uint32_t *touched;
    size_t n_touched, cap_touched;
    uint32_t step;
    /* token texts, for spotting a merge whose text an earlier token already has */
    tok_vocab *v;
} merger;

static int better(const heap_ent *x, const heap_ent *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int heap_push(merger *m, heap_ent x) {
    if (base_grow(&m->heap, &m->cap_heap, m->n_heap + 1, sizeof *m->heap, SIZE_MAX)) return -1;
    size_t i = m->n_heap++;
    while (i > 0 && better(&x, &m->heap[(i - 1) / 2])) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i] = x;
    return 0;
}

static heap_ent heap_pop(merger *m) {
    heap_ent top = m->heap[0], x = m->heap[--m->n_heap];
    size_t i = 0, n = m->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&m->heap[c + 1], &m->heap[c])) c++;
        if (!better(&m->heap[c], &x)) break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n) m->heap[i] = x;
    return top;
}

static uint64_t pkey(uint32_t a, uint32_t b) {
    return (uint64_t)a << 32 | b;
}

static int pmap_grow(merger *m) {
    size_t size = m->pmap ? (m->pmask + 1) * 2 : 1 << 16;
    uint32_t *p = malloc(size * sizeof *p);
    if (!p) return -1;
    memset(p, 0xff, size * sizeof *p);
    for (size_t i = 0; i < m->n_pairs; i++) {
        size_t j = tok_pair_hash(pkey(m->pairs[i].a, m->pairs[i].b)) & (size - 1);
        while (p[j] != UINT32_MAX) j = (j + 1) & (size - 1);
        p[j] = (uint32_t)i;
    }
    free(m->pmap);
    m->pmap = p;
    m->pmask = size - 1;
    return 0;
}

/* The index of pair (a, b), created with count 0 if new; UINT32_MAX when out of memory. */
static uint32_t pair_get(merger *m, uint32_t a, uint32_t b) {
    uint64_t k = pkey(a, b);
    size_t j = tok_pair_hash(k) & m->pmask;
    for (;; j = (j + 1) & m->pmask) {
        uint32_t i = m->pmap[j];
        if (i == UINT32_MAX) break;
        if (m->pairs[i].a == a && m->pairs[i].b == b) return i;
    }
    if (m->n_pairs >= UINT32_MAX - 1) return UINT32_MAX;
    if (base_grow(&m->pairs, &m->cap_pairs, m->n_pairs + 1, sizeof *m->pairs, SIZE_MAX))
        return UINT32_MAX;
    uint32_t i = (uint32_t)m->n_pairs++;
    m->pairs[i] = (pair_info){.a = a, .b = b, .stamp = UINT32_MAX};
    m->pmap[j] = i;
    if (m->n_pairs * 2 > m->pmask + 1 && pmap_grow(m)) return UINT32_MAX;
    return i;
}

/* Adds delta to pair (a, b)'s count; a positive delta records word w as a place it occurs. */
static int pair_add(merger *m, uint32_t a, uint32_t b, int64_t delta, uint32_t w) {
    uint32_t i = pair_get(m, a, b);
    if (i == UINT32_MAX) return -1;
    pair_info *p = &m->pairs[i];
    p->count += delta;
    if (delta > 0 && (p->n_where == 0 || p->where[p->n_where - 1] != w)) {
        size_t cap = p->cap_where; /* uint32_t: there is one of these per pair */
        if (base_grow(&p->where, &cap, (size_t)p->n_where + 1, sizeof *p->where, UINT32_MAX))
            return -1;
        p->cap_where = (uint32_t)cap;
        p->where[p->n_where++] = w;
    }
    if (p->stamp != m->step) {
        p->stamp = m->step;
        if (base_grow(&m->touched, &m->cap_touched, m->n_touched + 1, sizeof *m->touched, SIZE_MAX))
            return -1;
        m->touched[m->n_touched++] = i;
    }
    return 0;
}

/* Merges every (a, b) in word w into c, updating the neighbouring pairs' counts. */
static int merge_word(merger *m, uint32_t w, uint32_t a, uint32_t b, uint32_t c) {
    uint32_t *s = m->sym + m->woff[w];
    uint32_t len = m->wlen[w], j = 0;
    int64_t cnt = (int64_t)m->wcount[w];
    for (uint32_t i = 0; i < len;) {
        if (i + 1 < len && s[i] == a && s[i + 1] == b) {
            if (j > 0 && (pair_add(m, s[j - 1], a, -cnt, w) || pair_add(m, s[j - 1], c, cnt, w)))
                return -1;
            if (i + 2 < len &&
                (pair_add(m, b, s[i + 2], -cnt, w) || pair_add(m, c, s[i + 2], cnt, w)))
                return -1;
            if (pair_add(m, a, b, -cnt, w)) return -1;
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    m->wlen[w] = j;
    return 0;
}

static void merger_free(merger *m) {
    free(m->sym);
    free(m->woff);
    free(m->wlen);
    free(m->wstamp);
    free(m->wcount);
    for (size_t i = 0; i < m->n_pairs; i++) free(m->pairs[i].where);
    free(m->pairs);
    free(m->pmap);
    free(m->heap);
    free(m->touched);
}

int tok_trainer_finish(tok_trainer *t, tok_vocab **out, base_err *e) {
    *out = NULL;
    merger m = {0};
    int rc = 0;
    tok_vocab *v = tok_vocab_new(TOK_KIND_BPE, t->pretok);
    if (!v) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (int b = 0; b < 256 && !rc; b++) {
        char c = (char)b;
        rc = tok_vocab_add(v, &c, 1, TOK_TYPE_NORMAL, 0, e);
    }
    if (!rc) rc = tok_vocab_build_tmap(v, e);
    /* words, in slot order; their order never affects the result */
    size_t nw = t->used;
    m.sym = malloc((t->arena_len ? t->arena_len : 1) * sizeof *m.sym);
    m.woff = malloc((nw ? nw : 1) * sizeof *m.woff);
    m.wlen = malloc((nw ? nw : 1) * sizeof *m.wlen);
    m.wstamp = malloc((nw ? nw : 1) * sizeof *m.wstamp);
    m.wcount = malloc((nw ? nw : 1) * sizeof *m.wcount);
    if (!rc && (!m.sym || !m.woff || !m.wlen || !m.wstamp || !m.wcount || pmap_grow(&m)))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; !rc && i <= t->mask; i++) {
        const piece_slot *s = &t->slots[i];
        if (!s->count) continue;
        uint32_t w = (uint32_t)m.n_words++;
        m.woff[w] = o;
        m.wlen[w] = s->len;
        m.wcount[w] = s->count;
        m.wstamp[w] = UINT32_MAX;
        for (uint32_t k = 0; k < s->len; k++) m.sym[o + k] = t->arena[s->off + k];
        for (uint32_t k = 0; k + 1 < s->len && !rc; k++)
            if (pair_add(&m, m.sym[o + k], m.sym[o + k + 1], (int64_t)s->count, w))
                rc = base_fail(e, BASE_ENOMEM, "out of memory");
        o += s->len;
    }
    for (size_t i = 0; !rc && i < m.n_pairs; i++)
        if (m.pairs[i].count > 0 &&
            heap_push(&m, (heap_ent){m.pairs[i].count, m.pairs[i].a, m.pairs[i].b, (uint32_t)i}))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
    m.n_touched = 0;
    size_t target = (size_t)t->vocab_size - t->n_specials;
    char *joined = malloc(2 * (size_t)TOK_MAX_TOKEN_LEN);
    if (!joined && !rc) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    uint32_t n_merges = 0;
    while (!rc && v->n < target && m.n_heap) {
        heap_ent x = heap_pop(&m);
        pair_info *p = &m.pairs[x.pair];
        if (p->count != x.count || p->count <= 0) continue; /* stale */
        uint32_t a = p->a, b = p->b, la = v->len[a], lb = v->len[b];
        if (la + lb > TOK_MAX_TOKEN_LEN) { /* too long to be a token: drop the pair */
            p->count = 0;
            continue;
        }
        memcpy(joined, v->blob + v->off[a], la);
        memcpy(joined + la, v->blob + v->off[b], lb);
        int32_t c = tok_lookup(v, joined, la + lb);
        if (c < 0) { /* a new token (a repeated text reuses the earlier token) */
            c = (int32_t)v->n;
            if ((rc = tok_vocab_add(v, joined, la + lb, TOK_TYPE_NORMAL, 0, e))) break;
            if (v->n * 2 > v->tmap_mask + 1 && (rc = tok_vocab_build_tmap(v, e))) break; /* grow */
            tok_vocab_tmap_insert(v, (uint32_t)c);
        }
        if ((rc = tok_vocab_add_merge(v, a, b, (uint32_t)c, n_merges, e))) break;
        m.step = ++n_merges;
        m.n_touched = 0;
        /* the word list can grow while we walk it (a == b pairs): walk a snapshot count */
        uint32_t nwh = p->n_where;
        for (uint32_t k = 0; k < nwh && !rc; k++) {
            uint32_t w = m.pairs[x.pair].where[k];
            if (m.wstamp[w] == n_merges) continue;
            m.wstamp[w] = n_merges;
            if (merge_word(&m, w, a, b, (uint32_t)c))
                rc = base_fail(e, BASE_ENOMEM, "out of memory");
        }
        if (rc) break;
        p = &m.pairs[x.pair]; /* pairs may have moved */
        free(p->where);
        p->where = NULL;
        p->n_where = p->cap_where = 0;
        for (size_t k = 0; k < m.n_touched && !rc; k++) {
            pair_info *q = &m.pairs[m.touched[k]];
            if (q->count > 0 && heap_push(&m, (heap_ent){q->count, q->a, q->b, m.touched[k]}))
                rc = base_fail(e, BASE_ENOMEM, "out of memory");
        }
        if (t->progress && (n_merges % 1000 == 0))
            t->progress(t->ctx, "merge", v->n - 256, target - 256);
    }
    free(joined);
    for (size_t i = 0; !rc && i < t->n_specials; i++) {
        if (tok_lookup(v, t->specials[i], strlen(t->specials[i])) >= 0)
            rc = base_fail(e, BASE_EINVAL, "special token '%s' is also an ordinary token",
                           t->specials[i]);
        else
            rc = tok_vocab_add(v, t->specials[i], strlen(t->specials[i]), TOK_TYPE_CONTROL, 0, e);
        if (!rc) rc = tok_vocab_build_tmap(v, e);
    }
    if (!rc && t->n_specials) v->eot = (int32_t)(v->n - t->n_specials);
    if (t->progress && !rc) t->progress(t->ctx, "merge", v->n - t->n_specials - 256, target - 256);
    merger_free(&m);
    if (!rc) rc = tok_vocab_finish(v, e);
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

int tok_train(const tok_train_opts *o, const char *text, size_t len, tok_vocab **out, base_err *e) {
    *out = NULL;
    tok_trainer *t;
    int rc = tok_trainer_create(o, &t, e);
    if (rc) return rc;
    rc = tok_trainer_add(t, text, len, e);
    if (!rc) rc = tok_trainer_finish(t, out, e);
    tok_trainer_free(t);
    return rc;
}
