/* tokenizer/vocab.c: the vocabulary — building one token by token, the checks every source
 * goes through (tok_vocab_finish), its lookup tables, the HTOK file (docs/FORMATS.md), and the
 * importers: GGUF's tokenizer.ggml.* keys and tiktoken ranks files. */
#include "tok_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define HTOK_VERSION 1u
#define HTOK_HEADER 48u
#define HTOK_MAX_MERGES (1u << 26)

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* A fast hash for table lookups (not stored anywhere): 8 bytes at a time. */
uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ mix64(w)) * 0x9fb21c651e98df25ull;
        b += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, b, n);
        h = (h ^ mix64(w ^ ((uint64_t)n << 59))) * 0x9fb21c651e98df25ull;
    }
    return mix64(h);
}

/* ---- building */

tok_vocab *tok_vocab_new(int kind, int pretok) {
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    v->pretok = pretok;
    v->eot = v->bos = v->unk = -1;
    v->eot_turn = v->eom = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    return v;
}

int tok_vocab_add(tok_vocab *v, const char *text, size_t len, int type, float score, base_err *e) {
    if (v->n >= TOK_MAX_TOKENS)
        return base_fail(e, BASE_EFORMAT, "vocabulary has more than %d tokens", TOK_MAX_TOKENS);
    if (len > TOK_MAX_TOKEN_LEN)
        return base_fail(e, BASE_EFORMAT, "token %u is %zu bytes long (at most %d)", v->n, len,
                         TOK_MAX_TOKEN_LEN);
    /* four parallel arrays: each grows from the same capacity to the same one, and one that
     * grew before another failed is merely larger than v->cap says */
    size_t c0 = v->cap, c1 = v->cap, c2 = v->cap, c3 = v->cap, need = (size_t)v->n + 1;
    if (base_grow(&v->off, &c0, need, sizeof *v->off, SIZE_MAX) ||
        base_grow(&v->len, &c1, need, sizeof *v->len, SIZE_MAX) ||
        base_grow(&v->type, &c2, need, sizeof *v->type, SIZE_MAX) ||
        base_grow(&v->score, &c3, need, sizeof *v->score, SIZE_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    v->cap = c0;
    if (v->blob_len + len > UINT32_MAX)
        return base_fail(e, BASE_EFORMAT, "vocabulary text exceeds 4 GiB");
    if (base_grow(&v->blob, &v->blob_cap, v->blob_len + len + 1, 1, SIZE_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    if (len) memcpy(v->blob + v->blob_len, text, len);
    v->off[v->n] = (uint32_t)v->blob_len;
    v->len[v->n] = (uint32_t)len;
    v->type[v->n] = (uint8_t)(type >= 0 && type < 256 ? type : 0);
    v->score[v->n] = score;
    v->blob_len += len;
    v->n++;
    return 0;
}

int tok_vocab_add_merge(tok_vocab *v, uint32_t left, uint32_t right, uint32_t merged, uint32_t rank,
                        base_err *e) {
    if (v->n_merges >= HTOK_MAX_MERGES)
        return base_fail(e, BASE_EFORMAT, "more than %u merges", HTOK_MAX_MERGES);
    size_t cap = v->merges_cap;
    if (base_grow(&v->merges, &cap, (size_t)v->n_merges + 1, sizeof *v->merges, UINT32_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    v->merges_cap = (uint32_t)cap;
    v->merges[v->n_merges++] = (tok_merge){left, right, merged, rank};
    return 0;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n && c < (1u << 31)) c *= 2;
    return c;
}

int tok_vocab_build_tmap(tok_vocab *v, base_err *e) {
    free(v->tmap);
    uint32_t size = pow2_at_least((uint64_t)v->n * 2);
    v->tmap = malloc((size_t)size * sizeof *v->tmap);
    if (!v->tmap) return base_fail(e, BASE_ENOMEM, "out of memory");
    memset(v->tmap, 0xff, (size_t)size * sizeof *v->tmap);
    v->tmap_mask = size - 1;
    for (uint32_t id = 0; id < v->n; id++) tok_vocab_tmap_insert(v, id);
    return 0;
}

void tok_vocab_tmap_insert(tok_vocab *v, uint32_t id) {
    if (v->len[id] == 0) return; /* empty tokens are never matched */
    const char *p = v->blob + v->off[id];
    uint64_t h = tok_hash(p, v->len[id]);
    for (uint32_t i = (uint32_t)h & v->tmap_mask;; i = (i + 1) & v->tmap_mask) {
        tok_tmap_slot s = v->tmap[i];
        if (s.id == UINT32_MAX) {
            v->tmap[i] = (tok_tmap_slot){id, (uint32_t)h};
            return;
        }
        if (s.id == id || (s.hash == (uint32_t)h && v->len[s.id] == v->len[id] &&
                           memcmp(v->blob + v->off[s.id], p, v->len[id]) == 0))
            return; /* a repeated text: the lower id keeps it */
    }
}

static int parse_byte_token(const char *p, uint32_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int build_pmap(tok_vocab *v, base_err *e) {
    uint32_t size = pow2_at_least((uint64_t)v->n_merges * 2);
    v->pmap = malloc((size_t)size * sizeof *v->pmap);
    if (!v->pmap) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < size; i++) v->pmap[i].key = TOK_PAIR_EMPTY;
    v->pmap_mask = size - 1;
    for (uint32_t m = 0; m < v->n_merges; m++) {
        const tok_merge *mg = &v->merges[m];
        if (mg->left >= v->n || mg->right >= v->n || mg->merged >= v->n)
            return base_fail(e, BASE_EFORMAT, "merge %u refers to a token outside the vocabulary",
                             m);
        uint32_t ll = v->len[mg->left], rl = v->len[mg->right];
        if (ll == 0 || rl == 0 || v->len[mg->merged] != ll + rl ||
            memcmp(v->blob + v->off[mg->merged], v->blob + v->off[mg->left], ll) != 0 ||
            memcmp(v->blob + v->off[mg->merged] + ll, v->blob + v->off[mg->right], rl) != 0)
            return base_fail(e, BASE_EFORMAT,
                             "merge %u (%u + %u -> %u): the merged token is not the two joined", m,
                             mg->left, mg->right, mg->merged);
        uint64_t key = (uint64_t)mg->left << 32 | mg->right;
        uint32_t i = (uint32_t)tok_pair_hash(key) & v->pmap_mask;
        while (v->pmap[i].key != TOK_PAIR_EMPTY && v->pmap[i].key != key)
            i = (i + 1) & v->pmap_mask;
        if (v->pmap[i].key == key) { /* a repeated pair: the lower rank wins */
            if (mg->rank < v->pmap[i].rank) {
                v->pmap[i].rank = mg->rank;
                v->pmap[i].merged = mg->merged;
            }
            continue;
        }
        v->pmap[i] = (tok_pair_slot){key, mg->rank, mg->merged};
    }
    return 0;
}

/* SentencePiece's decoded form: U+2581 -> ' ', byte tokens -> their byte. */
static int build_decoded(tok_vocab *v, base_err *e) {
    if (v->kind == TOK_KIND_BPE) {
        v->doff = v->off;
        v->dlen = v->len;
        v->dblob = v->blob;
        return 0;
    }
    v->doff = malloc((size_t)v->n * sizeof *v->doff);
    v->dlen = malloc((size_t)v->n * sizeof *v->dlen);
    v->dblob = malloc(v->blob_len + 1);
    if (!v->doff || !v->dlen || !v->dblob) return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t o = 0;
    for (uint32_t id = 0; id < v->n; id++) {
        const char *p = v->blob + v->off[id];
        uint32_t n = v->len[id];
        v->doff[id] = (uint32_t)o;
        int b = v->type[id] == TOK_TYPE_BYTE ? parse_byte_token(p, n) : -1;
        /* llama.cpp prints control, unknown and user-defined tokens as they are written */
        int raw = (v->flags & TOK_FLAG_LLAMA) && v->type[id] != TOK_TYPE_NORMAL;
        if (b >= 0) {
            v->dblob[o++] = (char)b;
        } else if (raw) {
            memcpy(v->dblob + o, p, n);
            o += n;
        } else {
            for (uint32_t i = 0; i < n; i++) {
                if (i + 2 < n && (uint8_t)p[i] == 0xE2 && (uint8_t)p[i + 1] == 0x96 &&
                    (uint8_t)p[i + 2] == 0x81) {
                    v->dblob[o++] = ' ';
                    i += 2;
                } else {
                    v->dblob[o++] = p[i];
                }
            }
        }
        v->dlen[id] = (uint32_t)(o - v->doff[id]);
    }
    return 0;
}

static int spec_cmp_vocab_len_desc(const tok_vocab *v, int32_t a, int32_t b) {
    if (v->len[a] != v->len[b]) return v->len[a] > v->len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int build_specials(tok_vocab *v, base_err *e) {
    uint32_t n = 0;
    for (uint32_t id = 0; id < v->n; id++) {
        int t = v->type[id];
        if ((t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER || t == TOK_TYPE_UNKNOWN) && v->len[id])
            n++;
    }
    v->specials = malloc((size_t)(n ? n : 1) * sizeof *v->specials);
    if (!v->specials) return base_fail(e, BASE_ENOMEM, "out of memory");
    v->n_specials = 0;
    for (uint32_t id = 0; id < v->n; id++) {
        int t = v->type[id];
        if (!((t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER || t == TOK_TYPE_UNKNOWN) && v->len[id]))
            continue;
        /* insertion sort, longest first: specials are few */
        uint32_t j = v->n_specials++;
        while (j > 0 && spec_cmp_vocab_len_desc(v, (int32_t)id, v->specials[j - 1]) < 0) {
            v->specials[j] = v->specials[j - 1];
            j--;
        }
        v->specials[j] = (int32_t)id;
    }
    return 0;
}

static const char *kind_name(int k) {
    return k == TOK_KIND_BPE ? "bpe" : k == TOK_KIND_SPM ? "spm" : "?";
}
const char *tok_pretok_name(int p) {
    static const char *const names[TOK_PRETOK_COUNT] = {
        [TOK_PRETOK_NONE] = "none",       [TOK_PRETOK_GPT2] = "gpt2",
        [TOK_PRETOK_CL100K] = "cl100k",   [TOK_PRETOK_LLAMA3] = "llama-bpe",
        [TOK_PRETOK_QWEN2] = "qwen2",     [TOK_PRETOK_GGUF_GPT2] = "gpt-2",
        [TOK_PRETOK_SMOLLM] = "smollm",   [TOK_PRETOK_FALCON] = "falcon",
        [TOK_PRETOK_DEFAULT] = "default", [TOK_PRETOK_DEEPSEEK_CODER] = "deepseek-coder",
        [TOK_PRETOK_BLOOM] = "bloom",     [TOK_PRETOK_VIKING] = "viking",
        [TOK_PRETOK_TEKKEN] = "tekken",
    };
    return p >= 0 && p < TOK_PRETOK_COUNT && names[p] ? names[p] : "?";
}

/* ---- llama.cpp's special tokens found by their text */

#define FW_BAR "\xEF\xBD\x9C" /* U+FF5C, DeepSeek's bar */
#define SPM_SP "\xE2\x96\x81" /* U+2581 */
/* End-of-turn candidates, in the order the first existing one is taken. */
static const char *const eot_texts[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "<EOT>",
                                        "<" FW_BAR "end" SPM_SP "of" SPM_SP "sentence" FW_BAR ">",
                                        NULL};
/* Every token of these texts ends generation. */
static const char *const eog_texts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>",   NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<PAD>", NULL};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            NULL};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
/* Texts that llama.cpp also finds (FIM prefix/suffix/middle): their tokens become CONTROL. */
static const char *const fim_other_texts[] = {"<|fim_prefix|>",
                                              "<fim-prefix>",
                                              "<" FW_BAR "fim" SPM_SP "begin" FW_BAR ">",
                                              "<PRE>",
                                              "<|fim_suffix|>",
                                              "<fim-suffix>",
                                              "<" FW_BAR "fim" SPM_SP "hole" FW_BAR ">",
                                              "<SUF>",
                                              "<|fim_middle|>",
                                              "<fim-middle>",
                                              "<" FW_BAR "fim" SPM_SP "end" FW_BAR ">",
                                              "<MID>",
                                              NULL};

/* The first token of list that exists, or -1. */
static int32_t find_first(const tok_vocab *v, const char *const *list) {
    for (; *list; list++) {
        int32_t id = tok_lookup(v, *list, strlen(*list));
        if (id >= 0) return id;
    }
    return -1;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The end-of-generation set (needs the text map). */
static int build_eog(tok_vocab *v, base_err *e) {
    if (v->eot_turn < 0) v->eot_turn = find_first(v, eot_texts);
    if (v->eom < 0) v->eom = find_first(v, eom_texts);
    if (v->fim_pad < 0) v->fim_pad = find_first(v, fim_pad_texts);
    if (v->fim_rep < 0) v->fim_rep = find_first(v, fim_rep_texts);
    if (v->fim_sep < 0) v->fim_sep = find_first(v, fim_sep_texts);
    size_t n_texts = sizeof eog_texts / sizeof *eog_texts - 1;
    free(v->eog);
    v->eog = malloc((n_texts + 6) * sizeof *v->eog);
    if (!v->eog) return base_fail(e, BASE_ENOMEM, "out of memory");
    uint32_t n = 0;
    int32_t fixed[6] = {v->eot, v->eot_turn, v->eom, v->fim_pad, v->fim_rep, v->fim_sep};
    for (int i = 0; i < 6; i++)
        if (fixed[i] >= 0) v->eog[n++] = fixed[i];
    /* every token of an end-of-generation text (a repeated text: only the map's one) */
    for (size_t i = 0; i < n_texts; i++) {
        int32_t id = tok_lookup(v, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0) v->eog[n++] = id;
    }
    qsort(v->eog, n, sizeof *v->eog, cmp_i32);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || v->eog[k - 1] != v->eog[i]) v->eog[k++] = v->eog[i];
    v->n_eog = k;
    return 0;
}

int tok_vocab_finish(tok_vocab *v, base_err *e) {
    if (v->kind == TOK_KIND_BPE && (v->pretok <= TOK_PRETOK_NONE || v->pretok >= TOK_PRETOK_COUNT ||
                                    !strcmp(tok_pretok_name(v->pretok), "?")))
        return base_fail(e, BASE_EFORMAT, "byte-level BPE needs a pre-tokenizer (got %d)",
                         v->pretok);
    if (v->kind == TOK_KIND_SPM && v->pretok != TOK_PRETOK_NONE)
        return base_fail(e, BASE_EFORMAT, "SentencePiece-style vocabularies take no pre-tokenizer");
    if (v->kind != TOK_KIND_BPE && v->kind != TOK_KIND_SPM)
        return base_fail(e, BASE_EFORMAT, "unknown vocabulary kind %d", v->kind);
    if (v->n == 0) return base_fail(e, BASE_EFORMAT, "the vocabulary has no tokens");
    if (v->kind == TOK_KIND_SPM && v->n_merges)
        return base_fail(e, BASE_EFORMAT,
                         "SentencePiece-style vocabularies merge by score, not by a merge list");
    if (v->flags & ~TOK_FLAGS_ALL)
        return base_fail(e, BASE_EFORMAT, "unknown vocabulary flags 0x%x", v->flags);
    for (uint32_t id = 0; id < v->n; id++) {
        if (v->type[id] < TOK_TYPE_NORMAL || v->type[id] > TOK_TYPE_BYTE)
            return base_fail(e, BASE_EFORMAT, "token %u has unknown type %u", id, v->type[id]);
        if (!isfinite(v->score[id]))
            return base_fail(e, BASE_EFORMAT, "token %u has a non-finite score", id);
        if (v->len[id] == 0 && v->type[id] != TOK_TYPE_UNUSED && v->type[id] != TOK_TYPE_CONTROL)
            return base_fail(e, BASE_EFORMAT, "token %u is empty", id);
    }
    int32_t ids[8] = {v->eot, v->bos,     v->unk,     v->eot_turn,
                      v->eom, v->fim_pad, v->fim_rep, v->fim_sep};
    const char *names[8] = {"end-of-text",    "beginning-of-text", "unknown",  "end-of-turn",
                            "end-of-message", "FIM pad",           "FIM repo", "FIM separator"};
    for (int i = 0; i < 8; i++)
        if (ids[i] < -1 || ids[i] >= (int64_t)v->n)
            return base_fail(e, BASE_EFORMAT, "the %s id %d is outside the vocabulary (%u tokens)",
                             names[i], ids[i], v->n);
    if ((v->flags & TOK_FLAG_ADD_BOS) && v->bos < 0)
        return base_fail(e, BASE_EFORMAT,
                         "the vocabulary adds BOS to prompts but has no BOS token");
    if ((v->flags & TOK_FLAG_ADD_EOS) && v->eot < 0)
        return base_fail(e, BASE_EFORMAT,
                         "the vocabulary adds EOS to prompts but has no EOS token");
    int rc = tok_vocab_build_tmap(v, e);
    if (rc) return rc;
    if ((rc = build_eog(v, e))) return rc;
    for (int b = 0; b < 256; b++) v->byte_id[b] = -1;
    if (v->kind == TOK_KIND_BPE) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            int32_t id = tok_lookup(v, &c, 1);
            if (id < 0 || (v->type[id] != TOK_TYPE_NORMAL && v->type[id] != TOK_TYPE_BYTE)) {
                /* llama.cpp drops such a byte from the ids (GGUF vocabularies often lack the
                 * bytes UTF-8 never uses, and its U+FFFD for invalid bytes needs none) */
                if (v->flags & TOK_FLAG_LLAMA) continue;
                return base_fail(e, BASE_EFORMAT,
                                 "byte-level BPE vocabulary has no token for byte 0x%02X", b);
            }
            v->byte_id[b] = id;
        }
    } else {
        int missing = 0;
        for (uint32_t id = 0; id < v->n; id++) {
            if (v->type[id] != TOK_TYPE_BYTE) continue;
            int b = parse_byte_token(v->blob + v->off[id], v->len[id]);
            if (b < 0)
                return base_fail(e, BASE_EFORMAT, "byte token %u is not of the form <0xXX>", id);
            if (v->byte_id[b] < 0) v->byte_id[b] = (int32_t)id;
        }
        for (int b = 0; b < 256; b++) missing += v->byte_id[b] < 0;
        v->spm_newline_splits = 1;
        for (uint32_t id = 0; id < v->n; id++)
            if ((v->type[id] == TOK_TYPE_NORMAL || v->type[id] == TOK_TYPE_USER ||
                 (v->flags & TOK_FLAG_LLAMA)) &&
                v->len[id] && memchr(v->blob + v->off[id], '\n', v->len[id]))
                v->spm_newline_splits = 0;
        if (missing && v->unk < 0)
            return base_fail(e, BASE_EFORMAT,
                             "the vocabulary lacks %d byte tokens and has no unknown token",
                             missing);
    }
    if ((rc = build_pmap(v, e)) || (rc = build_decoded(v, e)) || (rc = build_specials(v, e)))
        return rc;
    if (v->kind == TOK_KIND_BPE && (rc = tok_re_create(v->pretok, &v->re, e))) return rc;
    uint8_t *ser;
    size_t n;
    if ((rc = tok_serialize(v, &ser, &n, e))) return rc;
    uint64_t h = base_get_le64(ser + n - 8); /* the file's checksum is the identity's hash */
    free(ser);
    snprintf(v->identity, sizeof v->identity, "%s:%s:%u:%016llx", kind_name(v->kind),
             tok_pretok_name(v->pretok), v->n, (unsigned long long)h);
    return 0;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    if (v->dblob != v->blob) {
        free(v->doff);
        free(v->dlen);
        free(v->dblob);
    }
    free(v->off);
    free(v->len);
    free(v->blob);
    free(v->type);
    free(v->score);
    free(v->merges);
    free(v->tmap);
    free(v->pmap);
    free(v->specials);
    free(v->eog);
    tok_re_free(v->re);
    tok_lsplit_free(&v->lsplit);
    tok_cache_free(&v->cache);
    free(v);
}

/* ---- queries */

int32_t tok_vocab_size(const tok_vocab *v) {
    return (int32_t)v->n;
}
int tok_kind(const tok_vocab *v) {
    return v->kind;
}
int tok_pretok(const tok_vocab *v) {
    return v->pretok;
}
int32_t tok_eot_id(const tok_vocab *v) {
    return v->eot;
}
int32_t tok_bos_id(const tok_vocab *v) {
    return v->bos;
}
const char *tok_identity(const tok_vocab *v) {
    return v->identity;
}
int32_t tok_eos_id(const tok_vocab *v) {
    return v->eot;
}
int32_t tok_end_of_turn_id(const tok_vocab *v) {
    return v->eot_turn;
}
int32_t tok_eom_id(const tok_vocab *v) {
    return v->eom;
}
int tok_add_bos(const tok_vocab *v) {
    return (v->flags & TOK_FLAG_ADD_BOS) != 0;
}
int tok_add_eos(const tok_vocab *v) {
    return (v->flags & TOK_FLAG_ADD_EOS) != 0;
}
size_t tok_eog_ids(const tok_vocab *v, const int32_t **ids) {
    *ids = v->eog;
    return v->n_eog;
}
int tok_is_eog(const tok_vocab *v, int32_t id) {
    uint32_t lo = 0, hi = v->n_eog; /* binary search: the list is ascending */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (v->eog[mid] == id) return 1;
        if (v->eog[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int tok_token_type(const tok_vocab *v, int32_t id) {
    return id >= 0 && (uint32_t)id < v->n ? v->type[id] : -1;
}

int tok_token_text(const tok_vocab *v, int32_t id, const char **text, size_t *len, base_err *e) {
    if (id < 0 || (uint32_t)id >= v->n)
        return base_fail(e, BASE_EINVAL, "token id %d is not in the vocabulary (%u tokens)", id,
                         v->n);
    *text = v->dblob + v->doff[id];
    *len = v->dlen[id];
    return 0;
}

int tok_token_piece(const tok_vocab *v, int32_t id, int flags, const char **text, size_t *len) {
    *text = "";
    *len = 0;
    if (id < 0 || (uint32_t)id >= v->n) return BASE_EINVAL;
    int t = v->type[id];
    if (t == TOK_TYPE_UNUSED ||
        ((flags & TOK_DECODE_SKIP_SPECIAL) && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN)))
        return 0;
    *text = v->dblob + v->doff[id];
    *len = v->dlen[id];
    return 0;
}

int32_t tok_find(const tok_vocab *v, const char *text, size_t len) {
    return tok_lookup(v, text, len);
}

/* ---- HTOK: serialization */

/* The exact size of an HTOK file with these counts, or 0 on overflow. */
static size_t htok_size(uint64_t n, uint64_t blob, uint64_t m) {
    size_t a, b, s;
    if (n > SIZE_MAX || blob > SIZE_MAX || m > SIZE_MAX) return 0;
    if (base_mul_size((size_t)n, 12, &a) || base_mul_size((size_t)m, 16, &b)) return 0;
    if (base_add_size(HTOK_HEADER + 8, a, &s) || base_add_size(s, (size_t)blob, &s) ||
        base_add_size(s, b, &s))
        return 0;
    return s;
}

int tok_serialize(const tok_vocab *v, uint8_t **data, size_t *len, base_err *e) {
    *data = NULL;
    size_t n = htok_size(v->n, v->blob_len, v->n_merges);
    uint8_t *p = n ? malloc(n) : NULL;
    if (!p) return base_fail(e, BASE_ENOMEM, "out of memory serializing the vocabulary");
    memcpy(p, "HTOK", 4);
    base_put_le32(p + 4, HTOK_VERSION);
    base_put_le32(p + 8, (uint32_t)v->kind);
    base_put_le32(p + 12, (uint32_t)v->pretok);
    base_put_le32(p + 16, v->flags);
    base_put_le32(p + 20, v->n);
    base_put_le32(p + 24, v->n_merges);
    base_put_le32(p + 28, (uint32_t)v->eot);
    base_put_le32(p + 32, (uint32_t)v->bos);
    base_put_le32(p + 36, (uint32_t)v->unk);
    base_put_le64(p + 40, v->blob_len);
    uint8_t *q = p + HTOK_HEADER;
    for (uint32_t i = 0; i < v->n; i++, q += 12) {
        uint32_t s;
        memcpy(&s, &v->score[i], 4);
        base_put_le32(q, v->len[i]);
        base_put_le32(q + 4, v->type[i]);
        base_put_le32(q + 8, s);
    }
    for (uint32_t i = 0; i < v->n; i++) { /* token bytes in id order (the blob may hold gaps) */
        if (v->len[i]) memcpy(q, v->blob + v->off[i], v->len[i]);
        q += v->len[i];
    }
    for (uint32_t i = 0; i < v->n_merges; i++, q += 16) {
        base_put_le32(q, v->merges[i].left);
        base_put_le32(q + 4, v->merges[i].right);
        base_put_le32(q + 8, v->merges[i].merged);
        base_put_le32(q + 12, v->merges[i].rank);
    }
    base_put_le64(q, base_fnv1a64(p, n - 8, BASE_FNV64_BASIS));
    *data = p;
    *len = n;
    return 0;
}

int tok_save(const tok_vocab *v, const char *path, base_err *e) {
    uint8_t *data;
    size_t n;
    int rc = tok_serialize(v, &data, &n, e);
    if (rc) return rc;
    rc = base_write_atomic(path, data, n, e);
    free(data);
    return rc;
}

int tok_parse(const void *data, size_t len, tok_vocab **out, base_err *e) {
    *out = NULL;
    const uint8_t *p = data;
    if (len < 4 || memcmp(p, "HTOK", 4) != 0)
        return base_fail(e, BASE_EFORMAT, "not a hearth vocabulary (bad magic)");
    if (len < HTOK_HEADER + 8)
        return base_fail(e, BASE_EFORMAT, "vocabulary truncated: %zu bytes, the header alone is %u",
                         len, HTOK_HEADER + 8);
    uint32_t version = base_get_le32(p + 4);
    if (version != HTOK_VERSION)
        return base_fail(e, BASE_EFORMAT, "vocabulary version %u is not supported (only %u)",
                         version, HTOK_VERSION);
    uint32_t n = base_get_le32(p + 20), m = base_get_le32(p + 24);
    uint64_t blob = base_get_le64(p + 40);
    if (n == 0 || n > TOK_MAX_TOKENS)
        return base_fail(e, BASE_EFORMAT, "vocabulary claims %u tokens (1..%d)", n, TOK_MAX_TOKENS);
    if (m > HTOK_MAX_MERGES)
        return base_fail(e, BASE_EFORMAT, "vocabulary claims %u merges (at most %u)", m,
                         HTOK_MAX_MERGES);
    size_t want = htok_size(n, blob, m);
    if (want == 0 || want > len)
        return base_fail(
            e, BASE_EFORMAT,
            "vocabulary truncated or corrupt: its counts need %s bytes, the file has %zu",
            want ? "more" : "an overflowing number of", len);
    if (want < len)
        return base_fail(e, BASE_EFORMAT, "vocabulary corrupt: %zu bytes after its end",
                         len - want);
    if (base_fnv1a64(p, len - 8, BASE_FNV64_BASIS) != base_get_le64(p + len - 8))
        return base_fail(e, BASE_EFORMAT, "vocabulary corrupt: checksum mismatch");
    tok_vocab *v = tok_vocab_new((int)base_get_le32(p + 8), (int)base_get_le32(p + 12));
    if (!v) return base_fail(e, BASE_ENOMEM, "out of memory");
    v->flags = base_get_le32(p + 16);
    v->eot = (int32_t)base_get_le32(p + 28);
    v->bos = (int32_t)base_get_le32(p + 32);
    v->unk = (int32_t)base_get_le32(p + 36);
    const uint8_t *rec = p + HTOK_HEADER, *text = rec + (size_t)n * 12;
    uint64_t used = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++, rec += 12) {
        uint32_t tl = base_get_le32(rec), ty = base_get_le32(rec + 4), sc = base_get_le32(rec + 8);
        float score;
        memcpy(&score, &sc, 4);
        if (tl > blob - used) {
            rc = base_fail(e, BASE_EFORMAT, "vocabulary corrupt: token %u runs past the text block",
                           i);
            break;
        }
        rc = tok_vocab_add(v, (const char *)text + used, tl, ty > 255 ? 0 : (int)ty, score, e);
        used += tl;
    }
    if (!rc && used != blob)
        rc = base_fail(e, BASE_EFORMAT, "vocabulary corrupt: token lengths sum to %llu, not %llu",
                       (unsigned long long)used, (unsigned long long)blob);
    const uint8_t *mg = text + blob;
    for (uint32_t i = 0; i < m && !rc; i++, mg += 16)
        rc = tok_vocab_add_merge(v, base_get_le32(mg), base_get_le32(mg + 4), base_get_le32(mg + 8),
                                 base_get_le32(mg + 12), e);
    if (!rc) rc = tok_vocab_finish(v, e);
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- GGUF */

/* GPT-2 stores byte-level tokens as text: each byte maps to a printable code point
 * (bytes_to_unicode in GPT-2's encoder.py). cp_byte[cp] inverts it; -1 = not a mapped code point.
 */
static void gpt2_unmap_table(int16_t cp_byte[324]) {
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp_byte[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

/* Decodes GPT-2's mapped text into bytes (out has room for len bytes); -1 if not mapped text. */
static long gpt2_unmap(const int16_t cp_byte[324], const char *s, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < len && ((uint8_t)s[i + 1] & 0xC0) == 0x80) {
            cp = (uint32_t)(c & 0x1F) << 6 | ((uint8_t)s[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* every mapped code point is below U+0800 */
        }
        if (cp >= 324 || cp_byte[cp] < 0) return -1;
        out[o++] = (char)cp_byte[cp];
    }
    return (long)o;
}

static int gguf_opt_id(const gguf_file *g, const char *key, int32_t *out, base_err *e) {
    if (gguf_find(g, key) < 0) return 0;
    int64_t x;
    if (gguf_get_int(g, key, &x, e)) return BASE_EFORMAT;
    if (x < -1 || x > INT32_MAX)
        return base_fail(e, BASE_EFORMAT, "GGUF: %s = %lld is out of range", key, (long long)x);
    *out = (int32_t)x;
    return 0;
}

/* Whether general.name says Phi-3 (llama.cpp gives that family's specials RSTRIP). */
static int general_name_has_phi3(const gguf_file *g) {
    gguf_str name;
    base_err ig = {0};
    if (gguf_find(g, "general.name") < 0 || gguf_get_str(g, "general.name", &name, &ig)) return 0;
    char low[256];
    size_t n = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.ptr[i];
        low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    low[n] = 0;
    return strstr(low, "phi-3") || strstr(low, "phi3");
}

/* llama.cpp's loader makes the tokens it finds by text (end of turn, end of message, FIM) and
 * every end-of-generation text CONTROL tokens, whatever the file says: they are then matched
 * only with TOK_ENCODE_SPECIAL and not printed. Needs the text map. */
static void llama_control_by_text(tok_vocab *v) {
    const char *const *groups[] = {eot_texts,           eom_texts,          fim_pad_texts,
                                   fim_rep_texts,       fim_sep_texts,      fim_other_texts,
                                   fim_other_texts + 4, fim_other_texts + 8};
    int32_t keyed[] = {v->eot_turn, v->eom, v->fim_pad, v->fim_rep, v->fim_sep, -1, -1, -1};
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++) {
        if (keyed[i] >= 0) continue;
        /* the FIM prefix/suffix/middle groups are four texts each inside fim_other_texts */
        const char *const *list = groups[i];
        size_t cnt = i >= 5 ? 4 : SIZE_MAX;
        for (size_t k = 0; k < cnt && list[k]; k++) {
            int32_t id = tok_lookup(v, list[k], strlen(list[k]));
            if (id >= 0) {
                v->type[id] = TOK_TYPE_CONTROL;
                break;
            }
        }
    }
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = tok_lookup(v, *t, strlen(*t));
        if (id >= 0) v->type[id] = TOK_TYPE_CONTROL;
    }
}

int tok_load_gguf(const gguf_file *g, tok_vocab **out, base_err *e) {
    *out = NULL;
    uint32_t flags_pre = 0; /* TOK_FLAG_ADD_BOS / IGNORE_MERGES of the pre-tokenizer */
    gguf_str model;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, e)) return BASE_EFORMAT;
    int kind;
    int pretok = TOK_PRETOK_NONE;
    if (model.len == 4 && !memcmp(model.ptr, "gpt2", 4)) {
        kind = TOK_KIND_BPE;
        pretok = TOK_PRETOK_DEFAULT; /* llama.cpp's choice for a file without the key */
        if (gguf_find(g, "tokenizer.ggml.pre") >= 0) {
            gguf_str pre;
            if (gguf_get_str(g, "tokenizer.ggml.pre", &pre, e)) return BASE_EFORMAT;
            pretok = tok_pretok_from_gguf(pre.ptr, (size_t)pre.len, &flags_pre);
            if (pretok < 0) {
                char names[400];
                tok_pretok_gguf_names(names, sizeof names);
                return base_fail(e, BASE_EFORMAT,
                                 "GGUF: pre-tokenizer '%.*s' is not supported (supported: %s)",
                                 (int)(pre.len > 64 ? 64 : pre.len), pre.ptr, names);
            }
        }
    } else if (model.len == 5 && !memcmp(model.ptr, "llama", 5)) {
        kind = TOK_KIND_SPM;
    } else {
        return base_fail(e, BASE_EFORMAT,
                         "GGUF: tokenizer model '%.*s' is not supported (gpt2, llama)",
                         (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    int64_t ti, yi = -1, si = -1, mi = -1;
    uint64_t n, ny, ns, nm;
    uint32_t ety;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &ti, NULL, &n, e))
        return BASE_EFORMAT;
    if (n == 0 || n > TOK_MAX_TOKENS)
        return base_fail(e, BASE_EFORMAT, "GGUF: %llu tokens (1..%d)", (unsigned long long)n,
                         TOK_MAX_TOKENS);
    if (gguf_find(g, "tokenizer.ggml.token_type") >= 0) {
        if (gguf_get_arr(g, "tokenizer.ggml.token_type", -1, &yi, &ety, &ny, e))
            return BASE_EFORMAT;
        if (ety == GGUF_TYPE_STRING || ety == GGUF_TYPE_FLOAT32 || ety == GGUF_TYPE_FLOAT64 ||
            ety == GGUF_TYPE_BOOL)
            return base_fail(e, BASE_EFORMAT, "GGUF: tokenizer.ggml.token_type is an array of %s",
                             gguf_type_name(ety));
        if (ny != n)
            return base_fail(e, BASE_EFORMAT, "GGUF: %llu token types for %llu tokens",
                             (unsigned long long)ny, (unsigned long long)n);
    }
    if (gguf_find(g, "tokenizer.ggml.scores") >= 0) {
        if (gguf_get_arr(g, "tokenizer.ggml.scores", -1, &si, &ety, &ns, e)) return BASE_EFORMAT;
        if (ety != GGUF_TYPE_FLOAT32 && ety != GGUF_TYPE_FLOAT64)
            return base_fail(e, BASE_EFORMAT, "GGUF: tokenizer.ggml.scores is an array of %s",
                             gguf_type_name(ety));
        if (ns != n)
            return base_fail(e, BASE_EFORMAT, "GGUF: %llu scores for %llu tokens",
                             (unsigned long long)ns, (unsigned long long)n);
    }
    if (kind == TOK_KIND_BPE &&
        gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &mi, NULL, &nm, e))
        return BASE_EFORMAT;
    tok_vocab *v = tok_vocab_new(kind, pretok);
    char *buf = malloc(TOK_MAX_TOKEN_LEN * 2 + 2);
    if (!v || !buf) {
        free(buf);
        tok_free(v);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    int16_t cp_byte[324];
    gpt2_unmap_table(cp_byte);
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        gguf_str s = gguf_arr_str(g, ti, i);
        int64_t type = yi >= 0 ? gguf_arr_int(g, yi, i) : TOK_TYPE_NORMAL;
        double score = si >= 0 ? gguf_arr_float(g, si, i) : 0.0;
        if (type < TOK_TYPE_NORMAL || type > TOK_TYPE_BYTE) {
            rc = base_fail(e, BASE_EFORMAT, "GGUF: token %llu has unknown type %lld",
                           (unsigned long long)i, (long long)type);
            break;
        }
        if (s.len > TOK_MAX_TOKEN_LEN) {
            rc = base_fail(e, BASE_EFORMAT, "GGUF: token %llu is %llu bytes long",
                           (unsigned long long)i, (unsigned long long)s.len);
            break;
        }
        const char *text = s.ptr;
        size_t len = (size_t)s.len;
        if (kind == TOK_KIND_BPE && (type == TOK_TYPE_NORMAL || type == TOK_TYPE_BYTE)) {
            long got = gpt2_unmap(cp_byte, s.ptr, len, buf);
            if (got < 0) {
                rc = base_fail(e, BASE_EFORMAT,
                               "GGUF: token %llu is not in GPT-2's byte-to-text form",
                               (unsigned long long)i);
                break;
            }
            text = buf;
            len = (size_t)got;
        }
        rc = tok_vocab_add(v, text, len, (int)type, (float)score, e);
    }
    /* llama.cpp's default ids when the keys are absent: SentencePiece <unk> <s> </s> = 0 1 2;
     * byte-level BPE 11 for both BOS and EOS (its loader's choice) */
    if (!rc && kind == TOK_KIND_SPM) {
        v->unk = n > 0 ? 0 : -1;
        v->bos = n > 1 ? 1 : -1;
        v->eot = n > 2 ? 2 : -1;
    } else if (!rc) {
        v->bos = v->eot = n > 11 ? 11 : -1;
    }
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.eos_token_id", &v->eot, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.bos_token_id", &v->bos, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.unknown_token_id", &v->unk, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.eot_token_id", &v->eot_turn, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.eom_token_id", &v->eom, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.fim_pad_token_id", &v->fim_pad, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.fim_rep_token_id", &v->fim_rep, e);
    if (!rc) rc = gguf_opt_id(g, "tokenizer.ggml.fim_sep_token_id", &v->fim_sep, e);
    if (!rc && kind == TOK_KIND_SPM) {
        int sp = 1;
        if (gguf_find(g, "tokenizer.ggml.add_space_prefix") >= 0)
            rc = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &sp, e);
        if (sp) v->flags |= TOK_FLAG_SPACE_PREFIX;
    }
    /* BOS/EOS on prompts: llama.cpp's default per tokenizer, then the file's keys */
    int add_bos = kind == TOK_KIND_SPM || (flags_pre & TOK_FLAG_ADD_BOS), add_eos = 0;
    if (!rc && gguf_find(g, "tokenizer.ggml.add_bos_token") >= 0)
        rc = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e);
    if (!rc && gguf_find(g, "tokenizer.ggml.add_eos_token") >= 0)
        rc = gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, e);
    v->flags |= TOK_FLAG_LLAMA | (flags_pre & TOK_FLAG_IGNORE_MERGES) |
                (add_bos ? TOK_FLAG_ADD_BOS : 0) | (add_eos ? TOK_FLAG_ADD_EOS : 0);
    if (!rc && general_name_has_phi3(g)) v->flags |= TOK_FLAG_RSTRIP;
    if (!rc) rc = tok_vocab_build_tmap(v, e);
    if (!rc) llama_control_by_text(v);
    for (uint64_t i = 0; !rc && kind == TOK_KIND_BPE && i < nm; i++) {
        /* "LEFT RIGHT" in mapped text; mapped text has no spaces, so the split is unique */
        gguf_str s = gguf_arr_str(g, mi, i);
        const char *sp = s.len ? memchr(s.ptr, ' ', (size_t)s.len) : NULL;
        long a = -1, b = -1;
        if (sp && s.len <= TOK_MAX_TOKEN_LEN) {
            a = gpt2_unmap(cp_byte, s.ptr, (size_t)(sp - s.ptr), buf);
            if (a >= 0) b = gpt2_unmap(cp_byte, sp + 1, (size_t)(s.ptr + s.len - sp - 1), buf + a);
        }
        int32_t l = a > 0 ? tok_lookup(v, buf, (size_t)a) : -1;
        int32_t r = b > 0 ? tok_lookup(v, buf + a, (size_t)b) : -1;
        int32_t m = l >= 0 && r >= 0 ? tok_lookup(v, buf, (size_t)(a + b)) : -1;
        if (m < 0) {
            rc = base_fail(e, BASE_EFORMAT,
                           "GGUF: merge %llu ('%.*s') does not join two tokens into a token",
                           (unsigned long long)i, (int)(s.len > 60 ? 60 : s.len), s.ptr);
            break;
        }
        rc = tok_vocab_add_merge(v, (uint32_t)l, (uint32_t)r, (uint32_t)m, (uint32_t)i, e);
    }
    free(buf);
    if (!rc) rc = tok_vocab_finish(v, e);
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* The tokenizer.ggml.pre that llama.cpp reads as this pre-tokenizer (NULL: none). tiktoken's
 * GPT-2 pattern differs from llama.cpp's "gpt-2" only on U+0085 and U+FEFF; cl100k's is
 * llama-bpe's. */
static const char *gguf_pre_name(int pretok) {
    switch (pretok) {
    case TOK_PRETOK_GPT2:
    case TOK_PRETOK_GGUF_GPT2:
        return "gpt-2";
    case TOK_PRETOK_CL100K:
    case TOK_PRETOK_LLAMA3:
        return "llama-bpe";
    case TOK_PRETOK_NONE:
        return NULL;
    default:
        return tok_pretok_name(pretok);
    }
}

static int cmp_rank(const void *a, const void *b) {
    uint32_t x = ((const tok_merge *)a)->rank, y = ((const tok_merge *)b)->rank;
    return (x > y) - (x < y);
}

/* Appends GPT-2's mapped text of n bytes at s (the inverse of gpt2_unmap). */
static void gpt2_map(base_buf *b, const uint8_t byte_cp[256][2], const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        base_buf_append(b, byte_cp[s[i]], byte_cp[s[i]][0] < 0x80 ? 1 : 2);
}

int tok_gguf_set(const tok_vocab *v, gguf_writer *w, base_err *e) {
    int bpe = v->kind == TOK_KIND_BPE;
    if (bpe && !gguf_pre_name(v->pretok))
        return base_fail(e, BASE_EINVAL, "this vocabulary's pre-tokenizer has no GGUF name");
    /* byte -> its code point, as UTF-8 (every one is below U+0800: one or two bytes) */
    uint8_t byte_cp[256][2];
    int16_t cp_byte[324];
    gpt2_unmap_table(cp_byte);
    for (int cp = 0; cp < 324; cp++)
        if (cp_byte[cp] >= 0) {
            uint8_t *o = byte_cp[cp_byte[cp]];
            if (cp < 0x80)
                o[0] = (uint8_t)cp, o[1] = 0;
            else
                o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    /* every token's GGUF text into one buffer, then pointers into it */
    base_buf text = {0};
    size_t *off = malloc(((size_t)v->n + v->n_merges + 1) * sizeof *off);
    size_t *len = malloc(((size_t)v->n + v->n_merges + 1) * sizeof *len);
    int32_t *type = malloc(((size_t)v->n + 1) * sizeof *type);
    tok_merge *mg = malloc(((size_t)v->n_merges + 1) * sizeof *mg);
    const char **ptr = malloc(((size_t)v->n + v->n_merges + 1) * sizeof *ptr);
    int rc = off && len && type && mg && ptr ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < v->n; i++) {
        const uint8_t *s = (const uint8_t *)v->blob + v->off[i];
        off[i] = text.len;
        if (bpe && (v->type[i] == TOK_TYPE_NORMAL || v->type[i] == TOK_TYPE_BYTE))
            gpt2_map(&text, (const uint8_t(*)[2])byte_cp, s, v->len[i]);
        else
            base_buf_append(&text, s, v->len[i]);
        len[i] = text.len - off[i];
        type[i] = v->type[i];
    }
    size_t nm = bpe ? v->n_merges : 0;
    if (!rc && nm) {
        memcpy(mg, v->merges, nm * sizeof *mg);
        qsort(mg, nm, sizeof *mg, cmp_rank);
    }
    for (size_t i = 0; !rc && i < nm; i++) {
        size_t k = v->n + i;
        off[k] = text.len;
        gpt2_map(&text, (const uint8_t(*)[2])byte_cp, (const uint8_t *)v->blob + v->off[mg[i].left],
                 v->len[mg[i].left]);
        base_buf_append(&text, " ", 1);
        gpt2_map(&text, (const uint8_t(*)[2])byte_cp,
                 (const uint8_t *)v->blob + v->off[mg[i].right], v->len[mg[i].right]);
        len[k] = text.len - off[k];
    }
    if (!rc && text.failed) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        for (size_t i = 0; i < v->n + nm; i++) ptr[i] = text.data + off[i];
        gguf_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama");
        if (bpe) gguf_set_str(w, "tokenizer.ggml.pre", gguf_pre_name(v->pretok));
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", ptr, len, v->n);
        gguf_set_arr_i32(w, "tokenizer.ggml.token_type", type, v->n);
        if (bpe)
            gguf_set_arr_str(w, "tokenizer.ggml.merges", ptr + v->n, len + v->n, nm);
        else {
            gguf_set_arr_f32(w, "tokenizer.ggml.scores", v->score, v->n);
            gguf_set_bool(w, "tokenizer.ggml.add_space_prefix",
                          (v->flags & TOK_FLAG_SPACE_PREFIX) != 0);
        }
        if (v->eot >= 0) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eot);
        /* a byte-level BPE vocabulary of hearth's has no BOS: llama.cpp then starts from EOT,
         * as GPT-2 does */
        int32_t bos = v->bos >= 0 ? v->bos : v->eot;
        if (bos >= 0) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        if (v->unk >= 0) gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
        if (v->eot_turn >= 0 && (v->flags & TOK_FLAG_LLAMA))
            gguf_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot_turn);
        if (v->eom >= 0 && (v->flags & TOK_FLAG_LLAMA))
            gguf_set_u32(w, "tokenizer.ggml.eom_token_id", (uint32_t)v->eom);
        gguf_set_bool(w, "tokenizer.ggml.add_bos_token", (v->flags & TOK_FLAG_ADD_BOS) != 0);
        gguf_set_bool(w, "tokenizer.ggml.add_eos_token", (v->flags & TOK_FLAG_ADD_EOS) != 0);
    }
    base_buf_free(&text);
    free(off), free(len), free(type), free(mg), free(ptr);
    return rc;
}

/* ---- tiktoken ranks */

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 (with '=' padding) into out; returns the byte count or -1. */
static long b64decode(const char *s, size_t n, uint8_t *out, size_t cap) {
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64val((unsigned char)s[i + k])) < 0) {
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int bytes = 3 - pad;
        if (o + (size_t)bytes > cap) return -1;
        for (int k = 0; k < bytes; k++) out[o++] = (uint8_t)(w >> (16 - 8 * k));
    }
    return (long)o;
}

int tok_import_tiktoken(const char *path, int pretok, const tok_special *specials,
                        size_t n_specials, tok_vocab **out, base_err *e) {
    *out = NULL;
    if (pretok != TOK_PRETOK_GPT2 && pretok != TOK_PRETOK_CL100K)
        return base_fail(e, BASE_EINVAL, "tiktoken import needs the gpt2 or cl100k pre-tokenizer");
    char *data;
    size_t len;
    int rc = base_read_file(path, &data, &len, e);
    if (rc) return rc;
    /* pass 1: count lines and bytes; pass 2 decodes into one buffer */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    lines++;
    uint8_t *bytes = malloc(len + 1);
    uint32_t *boff = malloc(lines * sizeof *boff), *blen = malloc(lines * sizeof *blen);
    uint32_t *rank_of = malloc(lines * sizeof *rank_of), *by_rank = NULL;
    int32_t *spec_id = NULL;
    tok_vocab *v = NULL;
    size_t nb = 0, count = 0;
    uint32_t max_rank = 0;
    if (!bytes || !boff || !blen || !rank_of)
        rc = base_fail(e, BASE_ENOMEM, "out of memory reading %s", path);
    size_t lineno = 0;
    for (size_t i = 0; i < len && !rc;) {
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        lineno++;
        size_t k = j;
        if (k > i && data[k - 1] == '\r') k--;
        if (k > i) {
            const char *sp = memchr(data + i, ' ', k - i);
            long got =
                sp ? b64decode(data + i, (size_t)(sp - (data + i)), bytes + nb, len - nb) : -1;
            char *end = NULL;
            unsigned long r = 0;
            if (sp && sp + 1 < data + k && sp[1] >= '0' && sp[1] <= '9')
                r = strtoul(sp + 1, &end, 10);
            if (got <= 0 || !end || end != data + k || r >= TOK_MAX_TOKENS) {
                rc = base_fail(e, BASE_EFORMAT, "%s:%zu: not a tiktoken line (BASE64 RANK)", path,
                               lineno);
                break;
            }
            boff[count] = (uint32_t)nb;
            blen[count] = (uint32_t)got;
            rank_of[count] = (uint32_t)r;
            if (r > max_rank) max_rank = (uint32_t)r;
            nb += (size_t)got;
            count++;
        }
        i = j + 1;
    }
    if (!rc && count == 0) rc = base_fail(e, BASE_EFORMAT, "%s has no tokens", path);
    /* ids: ranks, then the specials (explicit ids, or the next free ones) */
    uint64_t n = count ? (uint64_t)max_rank + 1 : 0;
    if (!rc) {
        spec_id = malloc((n_specials ? n_specials : 1) * sizeof *spec_id);
        if (!spec_id) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (size_t s = 0; !rc && s < n_specials; s++) {
        size_t sl = specials[s].text ? strlen(specials[s].text) : 0;
        if (sl == 0 || sl > TOK_MAX_TOKEN_LEN) {
            rc = base_fail(e, BASE_EINVAL, "special token %zu has an empty or too long text", s);
            break;
        }
        int64_t id = specials[s].id >= 0 ? specials[s].id : (int64_t)n;
        if (id < (int64_t)max_rank + 1 || id >= TOK_MAX_TOKENS) {
            rc = base_fail(e, BASE_EINVAL,
                           "special token '%s' has id %lld, which a rank or limit takes",
                           specials[s].text, (long long)id);
            break;
        }
        for (size_t t = 0; t < s; t++)
            if (spec_id[t] == id)
                rc = base_fail(e, BASE_EINVAL, "two special tokens have id %lld", (long long)id);
        spec_id[s] = (int32_t)id;
        if ((uint64_t)id + 1 > n) n = (uint64_t)id + 1;
    }
    if (!rc && n > TOK_MAX_TOKENS) rc = base_fail(e, BASE_EFORMAT, "%s: too many tokens", path);
    if (!rc) {
        by_rank = malloc((size_t)(n ? n : 1) * sizeof *by_rank);
        if (!by_rank)
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else
            memset(by_rank, 0xff, (size_t)n * sizeof *by_rank);
    }
    for (size_t i = 0; !rc && i < count; i++) {
        if (by_rank[rank_of[i]] != UINT32_MAX)
            rc = base_fail(e, BASE_EFORMAT, "%s: rank %u appears twice", path, rank_of[i]);
        else
            by_rank[rank_of[i]] = (uint32_t)i;
    }
    if (!rc && !(v = tok_vocab_new(TOK_KIND_BPE, pretok)))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    for (uint64_t id = 0; !rc && id < n; id++) {
        size_t s = 0;
        while (s < n_specials && spec_id[s] != (int32_t)id) s++;
        if (s < n_specials)
            rc = tok_vocab_add(v, specials[s].text, strlen(specials[s].text), TOK_TYPE_CONTROL, 0,
                               e);
        else if (id <= max_rank && by_rank[id] != UINT32_MAX)
            rc = tok_vocab_add(v, (const char *)bytes + boff[by_rank[id]], blen[by_rank[id]],
                               TOK_TYPE_NORMAL, 0, e);
        else
            rc = tok_vocab_add(v, "", 0, TOK_TYPE_UNUSED, 0, e);
    }
    if (!rc && n_specials) v->eot = spec_id[0];
    if (!rc) rc = tok_vocab_build_tmap(v, e);
    for (uint32_t id = 0; !rc && id < v->n; id++) {
        if (v->type[id] != TOK_TYPE_NORMAL) continue;
        if (tok_lookup(v, v->blob + v->off[id], v->len[id]) != (int32_t)id) {
            rc = base_fail(e, BASE_EFORMAT, "%s: token %u repeats an earlier token's bytes", path,
                           id);
            break;
        }
        /* tiktoken merges two adjacent parts whenever their bytes joined are a token, lowest
         * rank first: every split of every token is a merge ranked by the token's id */
        const char *p = v->blob + v->off[id];
        for (uint32_t k = 1; !rc && k < v->len[id]; k++) {
            int32_t l = tok_lookup(v, p, k), r = tok_lookup(v, p + k, v->len[id] - k);
            if (l >= 0 && r >= 0 && v->type[l] == TOK_TYPE_NORMAL && v->type[r] == TOK_TYPE_NORMAL)
                rc = tok_vocab_add_merge(v, (uint32_t)l, (uint32_t)r, id, id, e);
        }
    }
    if (!rc) rc = tok_vocab_finish(v, e);
    free(spec_id);
    free(rank_of);
    free(data);
    free(bytes);
    free(boff);
    free(blen);
    free(by_rank);
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- loading by magic */

int tok_load(const char *path, tok_vocab **out, base_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return base_fail(e, BASE_EIO, "cannot open %s: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    int rc;
    if (got == 4 && !memcmp(magic, "GGUF", 4)) {
        gguf_file *g;
        if ((rc = gguf_open(path, &g, e))) return rc;
        rc = tok_load_gguf(g, out, e);
        gguf_close(g);
    } else {
        char *data;
        size_t len;
        if ((rc = base_read_file(path, &data, &len, e))) return rc;
        rc = len == 0 ? base_fail(e, BASE_EFORMAT, "empty file") : tok_parse(data, len, out, e);
        free(data);
    }
    if (rc && e && !strstr(e->msg, path)) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        base_fail(e, rc, "%s: %s", path, msg);
    }
    return rc;
}
