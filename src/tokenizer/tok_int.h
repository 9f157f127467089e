/* tokenizer/tok_int.h: the private side of the tokenizer — the vocabulary's layout, its hash
 * tables, the pre-tokenizer and the piece cache. Only the files of src/tokenizer and the
 * tokenizer's own tests include this. */
#ifndef HEARTH_TOK_INT_H
#define HEARTH_TOK_INT_H

#include "tokenizer.h"

#include <string.h>

/* One merge: the pair (left, right) becomes merged; lower rank merges first. */
typedef struct tok_merge {
    uint32_t left, right, merged, rank;
} tok_merge;

/* Pair table entry (open addressing; key = left << 32 | right, TOK_PAIR_EMPTY when free). */
#define TOK_PAIR_EMPTY UINT64_MAX
typedef struct tok_pair_slot {
    uint64_t key;
    uint32_t rank, merged;
} tok_pair_slot;

/* ---- the pre-tokenizer: a compiled pattern and its match scratch */
typedef struct tok_re tok_re;
int tok_re_create(int pretok, tok_re **out, base_err *e);
void tok_re_free(tok_re *r);
/* A walk over one text: set text, len (pos and the rest zero). */
typedef struct tok_split {
    const char *text;
    size_t len, pos;
    size_t held_start, held_end; /* a match found beyond a gap, returned next */
    int held;
} tok_split;
/* The next piece of s->text: [*start, *end). Bytes the pattern cannot match (invalid UTF-8)
 * come back as a piece of their own. Returns 1 for a piece, 0 at the end, <0 on error. */
int tok_re_next(tok_re *r, tok_split *s, size_t *start, size_t *end, base_err *e);
/* The pattern's source text, for docs and tests. */
const char *tok_re_pattern(int pretok);

/* ---- piece cache (byte-level BPE): piece bytes -> ids, cleared when full */
typedef struct tok_cache_slot {
    uint64_t hash;
    uint32_t key_off, ids_off; /* into the cache's arenas */
    uint16_t key_len, n_ids;   /* key_len 0 = empty slot */
} tok_cache_slot;

typedef struct tok_cache {
    tok_cache_slot *slots;
    uint32_t mask, count;
    uint8_t *keys;
    int32_t *ids;
    uint32_t keys_len, ids_len;
} tok_cache;

/* Token-text table slot: id UINT32_MAX = empty; hash = low 32 bits of tok_hash, to skip most
 * memcmp calls. */
typedef struct tok_tmap_slot {
    uint32_t id, hash;
} tok_tmap_slot;

struct tok_vocab {
    int kind, pretok;
    uint32_t flags; /* TOK_FLAG_* */
    uint32_t n;     /* tokens */
    /* stored form (what merges and lookups see; SentencePiece keeps U+2581 for spaces) */
    uint32_t *off, *len;
    char *blob;
    size_t blob_len, blob_cap;
    uint8_t *type;
    float *score;
    size_t cap; /* capacity of the per-token arrays */
    /* decoded form (what tok_decode emits); aliases the stored form for byte-level BPE */
    uint32_t *doff, *dlen;
    char *dblob;
    tok_merge *merges;
    uint32_t n_merges, merges_cap;
    int32_t eot, bos, unk; /* eot is the file's eos */
    /* llama.cpp's end-of-turn, end-of-message and FIM pad/repo/separator ids (-1: none); the
     * GGUF's keys, else found by text in tok_vocab_finish (not stored in HTOK) */
    int32_t eot_turn, eom, fim_pad, fim_rep, fim_sep;
    int32_t *eog; /* end-of-generation ids, ascending (tok_vocab_finish) */
    uint32_t n_eog;
    /* derived by tok_vocab_finish() */
    int32_t byte_id[256]; /* the token of each single byte (BPE) or <0xXX> (SPM); -1 none */
    tok_tmap_slot *tmap;  /* token text -> id, open addressing */
    uint32_t tmap_mask;
    tok_pair_slot *pmap;
    uint32_t pmap_mask;
    int32_t *specials; /* ids matched in text when allowed, longest text first */
    uint32_t n_specials;
    tok_re *re;
    tok_cache cache;
    int spm_newline_splits; /* SentencePiece-style: no mergeable token contains '\n' */
    char identity[96];
};

#define TOK_FLAG_SPACE_PREFIX 1u /* SentencePiece: prefix a space to the text */
#define TOK_FLAG_ADD_BOS 2u      /* a prompt starts with BOS (tok_add_bos) */
#define TOK_FLAG_ADD_EOS 4u      /* a prompt ends with EOS */
/* llama.cpp's rules (GGUF vocabularies): byte-level BPE maps invalid UTF-8 to U+FFFD and merges
 * every piece (no whole-piece lookup unless IGNORE_MERGES); SentencePiece splits characters by
 * their lead byte and merges into any token. */
#define TOK_FLAG_LLAMA 8u
#define TOK_FLAG_IGNORE_MERGES 16u /* a piece that is a token is that token (llama-bpe) */
#define TOK_FLAG_RSTRIP 32u        /* Phi-3: whitespace after a matched special is dropped */
#define TOK_FLAGS_ALL 63u

/* ---- building a vocabulary (vocab.c): new, add tokens and merges, then finish, which checks
 * everything, derives the tables and compiles the pattern. */
tok_vocab *tok_vocab_new(int kind, int pretok);
int tok_vocab_add(tok_vocab *v, const char *text, size_t len, int type, float score, base_err *e);
int tok_vocab_add_merge(tok_vocab *v, uint32_t left, uint32_t right, uint32_t merged, uint32_t rank,
                        base_err *e);
/* Builds the token-text map alone (import uses it to find merges before finishing). */
int tok_vocab_build_tmap(tok_vocab *v, base_err *e);
/* Adds token id to the text map (which must have room: load <= 1/2). */
void tok_vocab_tmap_insert(tok_vocab *v, uint32_t id);
int tok_vocab_finish(tok_vocab *v, base_err *e);
/* HTOK serialization into a malloc'd buffer (trailing checksum included). */
int tok_serialize(const tok_vocab *v, uint8_t **data, size_t *len, base_err *e);

/* ---- hashing */
uint64_t tok_hash(const void *p, size_t n);

/* The id of the token whose stored text is (p, n) with hash h = tok_hash(p, n), or -1. */
static inline int32_t tok_lookup_h(const tok_vocab *v, const void *p, size_t n, uint64_t h) {
    if (!v->tmap) return -1;
    for (uint32_t i = (uint32_t)h & v->tmap_mask;; i = (i + 1) & v->tmap_mask) {
        tok_tmap_slot s = v->tmap[i];
        if (s.id == UINT32_MAX) return -1;
        if (s.hash == (uint32_t)h && v->len[s.id] == n && memcmp(v->blob + v->off[s.id], p, n) == 0)
            return (int32_t)s.id;
    }
}

static inline int32_t tok_lookup(const tok_vocab *v, const void *p, size_t n) {
    return tok_lookup_h(v, p, n, tok_hash(p, n));
}

static inline uint64_t tok_pair_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

/* The pair (left, right)'s slot, or NULL when they do not merge. */
static inline const tok_pair_slot *tok_pair(const tok_vocab *v, uint32_t left, uint32_t right) {
    if (!v->pmap) return NULL;
    uint64_t key = (uint64_t)left << 32 | right;
    for (uint32_t i = (uint32_t)tok_pair_hash(key) & v->pmap_mask;; i = (i + 1) & v->pmap_mask) {
        if (v->pmap[i].key == key) return &v->pmap[i];
        if (v->pmap[i].key == TOK_PAIR_EMPTY) return NULL;
    }
}

/* ---- encoding internals (encode.c), exposed for tests: BPE of one piece by the linear scan
 * (use_heap 0) or the heap (1); both must give the same ids. Appends to out. */
int tok_bpe_piece(const tok_vocab *v, const uint8_t *p, size_t n, int use_heap, tok_ids *out,
                  base_err *e);
void tok_cache_free(tok_cache *c);
/* SentencePiece-style text is encoded in chunks of about this many bytes, cut after a newline
 * when no mergeable token holds one (tests shrink it to compare against one whole pass). */
extern size_t tok_spm_chunk;

#endif
