/* embed/wordpiece.c: BERT's tokenizer as Hugging Face's `tokenizers` runs it: special tokens
 * matched in the raw text, BertNormalizer (clean_text, handle_chinese_chars, strip_accents,
 * lowercase), BertPreTokenizer (whitespace splits, each punctuation character a word), WordPiece
 * (greedy longest match with the "##" continuation prefix; a word that does not split, or is
 * longer than max_input_chars_per_word characters, is [UNK]).
 *
 * Unicode properties come from ICU (general categories, White_Space, NFD, full lower-casing
 * with the final-sigma rule), as Rust's char methods and unicode-normalization give them. */
#include "embed/embed_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#define WP_MAX_TOKEN 1024 /* bytes of one vocabulary entry */

static uint64_t wp_hash(const char *s, size_t n) {
    return base_fnv1a64(s, n, BASE_FNV64_BASIS);
}

int32_t embed_wp_lookup(const embed_wp *w, const char *s, size_t n) {
    if (!w->n_slots) return -1;
    size_t mask = w->n_slots - 1;
    for (size_t j = (size_t)wp_hash(s, n) & mask;; j = (j + 1) & mask) {
        uint32_t v = w->slots[j];
        if (!v) return -1;
        const char *t = w->arena + w->off[v - 1];
        if (strlen(t) == n && !memcmp(t, s, n)) return (int32_t)(v - 1);
    }
}

void embed_wp_free(embed_wp *w) {
    if (!w) return;
    free(w->arena);
    free(w->off);
    free(w->slots);
    free(w->specials);
    memset(w, 0, sizeof *w);
}

int embed_wp_build(embed_wp *w, const char *const *tok, const size_t *lens, size_t n, base_err *e) {
    if (n == 0 || n > (1u << 24)) return base_fail(e, BASE_EFORMAT, "vocabulary of %zu tokens", n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strlen(tok[i]);
        if (l > WP_MAX_TOKEN)
            return base_fail(e, BASE_EFORMAT, "token %zu is %zu bytes (at most %d)", i, l,
                             WP_MAX_TOKEN);
        if (memchr(tok[i], 0, l)) return base_fail(e, BASE_EFORMAT, "token %zu holds a NUL", i);
        total += l + 1;
    }
    size_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    w->arena = malloc(total);
    w->off = malloc(n * sizeof *w->off);
    w->slots = calloc(slots, sizeof *w->slots);
    if (!w->arena || !w->off || !w->slots) return base_fail(e, BASE_ENOMEM, "out of memory");
    w->n = n;
    w->n_slots = slots;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strlen(tok[i]);
        memcpy(w->arena + at, tok[i], l);
        w->arena[at + l] = 0;
        w->off[i] = at;
        at += l + 1;
        /* a repeated token keeps its first id (Hugging Face's vocab.txt reader keeps the last;
         * real vocabularies have none) */
        if (embed_wp_lookup(w, tok[i], l) >= 0) continue;
        size_t mask = slots - 1, j = (size_t)wp_hash(tok[i], l) & mask;
        while (w->slots[j]) j = (j + 1) & mask;
        w->slots[j] = (uint32_t)(i + 1);
    }
    w->lowercase = w->strip_accents = w->chinese_chars = w->clean_text = 1;
    w->max_chars = 100;
    strcpy(w->prefix, "##");
    return BASE_OK;
}

int embed_wp_find_specials(embed_wp *w, const char *what, base_err *e) {
    struct {
        const char *text;
        int32_t *id;
    } need[] = {{"[CLS]", &w->cls}, {"[SEP]", &w->sep}, {"[UNK]", &w->unk}};
    for (size_t i = 0; i < 3; i++) {
        int32_t id = embed_wp_lookup(w, need[i].text, strlen(need[i].text));
        if (id < 0)
            return base_fail(e, BASE_EFORMAT, "%s: the vocabulary has no %s token", what,
                             need[i].text);
        *need[i].id = id;
    }
    if (!w->specials) { /* vocab.txt, GGUF: BERT's five */
        static const char *const sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        w->specials = malloc(5 * sizeof *w->specials);
        if (!w->specials) return base_fail(e, BASE_ENOMEM, "out of memory");
        for (size_t i = 0; i < 5; i++) {
            int32_t id = embed_wp_lookup(w, sp[i], strlen(sp[i]));
            if (id >= 0) w->specials[w->n_specials++] = id;
        }
    }
    return BASE_OK;
}

/* ---- vocabulary files */

int embed_wp_load_vocab_txt(embed_wp *w, const char *path, base_err *e) {
    char *data;
    size_t len;
    int rc = base_read_file(path, &data, &len, e);
    if (rc) return rc;
    size_t n = 0, cap = 0;
    const char **tok = NULL;
    size_t *lens = NULL, lcap = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len, l = end - at;
        if (l && data[at + l - 1] == '\r') l--;
        if (base_grow(&tok, &cap, n + 1, sizeof *tok, SIZE_MAX) ||
            base_grow(&lens, &lcap, n + 1, sizeof *lens, SIZE_MAX)) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            break;
        }
        tok[n] = data + at;
        lens[n++] = l;
        at = end + 1;
    }
    if (!rc) rc = embed_wp_build(w, tok, lens, n, e);
    if (rc && rc != BASE_ENOMEM) base_fail(e, rc, "%s: %s", path, e ? e->msg : "");
    free(tok);
    free(lens);
    free(data);
    return rc;
}

static int json_flag(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int embed_wp_load_tokenizer_json(embed_wp *w, const char *path, base_err *e) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return base_fail(e, BASE_EFORMAT, "%s: line %d column %d: %s", path, je.line, je.column,
                         je.text);
    int rc = BASE_OK;
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    const char *type = json_string_value(json_object_get(model, "type"));
    const char **tok = NULL;
    if (!json_is_object(vocab) || !type || strcmp(type, "WordPiece")) {
        rc = base_fail(e, BASE_EFORMAT, "%s: not a WordPiece tokenizer (model.type %s)", path,
                       type ? type : "missing");
        goto done;
    }
    size_t n = json_object_size(vocab);
    tok = calloc(n ? n : 1, sizeof *tok);
    if (!tok) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (size_t)id >= n || tok[id]) {
            rc = base_fail(e, BASE_EFORMAT, "%s: model.vocab[\"%s\"]: id out of 0..%zu or repeated",
                           path, key, n - 1);
            goto done;
        }
        tok[id] = key;
    }
    if ((rc = embed_wp_build(w, tok, NULL, n, e))) goto done;
    json_t *max = json_object_get(model, "max_input_chars_per_word");
    if (json_is_integer(max) && json_integer_value(max) > 0 && json_integer_value(max) < (1 << 30))
        w->max_chars = (int)json_integer_value(max);
    const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    if (pre && strlen(pre) < sizeof w->prefix) strcpy(w->prefix, pre);
    json_t *norm = json_object_get(root, "normalizer");
    const char *nt = json_string_value(json_object_get(norm, "type"));
    if (nt && !strcmp(nt, "BertNormalizer")) {
        w->clean_text = json_flag(norm, "clean_text", 1);
        w->chinese_chars = json_flag(norm, "handle_chinese_chars", 1);
        w->lowercase = json_flag(norm, "lowercase", 1);
        w->strip_accents = json_flag(norm, "strip_accents", w->lowercase); /* null: as lowercase */
    } else if (json_is_null(norm) || !norm) {
        w->clean_text = w->chinese_chars = w->lowercase = w->strip_accents = 0;
    } else {
        rc = base_fail(e, BASE_EFORMAT, "%s: normalizer %s is not supported (BertNormalizer is)",
                       path, nt ? nt : "?");
        goto done;
    }
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, val) {
        if (!json_is_true(json_object_get(val, "special"))) continue;
        const char *c = json_string_value(json_object_get(val, "content"));
        int32_t id = c ? embed_wp_lookup(w, c, strlen(c)) : -1;
        if (id < 0) continue;
        int32_t *sp = realloc(w->specials, (w->n_specials + 1) * sizeof *sp);
        if (!sp) {
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
            goto done;
        }
        w->specials = sp;
        w->specials[w->n_specials++] = id;
    }
    if (!w->specials) w->specials = malloc(sizeof *w->specials); /* none: an empty list */
done:
    free(tok);
    json_decref(root);
    return rc;
}

/* ---- normalization */

/* Rust's char::is_control as tokenizers defines it: categories Cc, Cf, Cs, Co, Cn, except the
 * three whitespace controls. */
static int wp_is_control(UChar32 c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    int8_t t = u_charType(c);
    return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_SURROGATE ||
           t == U_PRIVATE_USE_CHAR || t == U_UNASSIGNED;
}

static int wp_is_space(UChar32 c) {
    return u_isUWhiteSpace(c);
}

static int wp_is_punct(UChar32 c) {
    if (c < 128)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    int8_t t = u_charType(c);
    return t == U_CONNECTOR_PUNCTUATION || t == U_DASH_PUNCTUATION || t == U_END_PUNCTUATION ||
           t == U_FINAL_PUNCTUATION || t == U_INITIAL_PUNCTUATION || t == U_OTHER_PUNCTUATION ||
           t == U_START_PUNCTUATION;
}

static int wp_is_cjk(UChar32 c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* A growable array of code points. */
typedef struct {
    UChar32 *p;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, UChar32 c) {
    if (base_grow(&b->p, &b->cap, b->n + 1, sizeof *b->p, SIZE_MAX)) return BASE_ENOMEM;
    b->p[b->n++] = c;
    return BASE_OK;
}

/* Normalizes the code points of b to NFD (in place) through ICU's UTF-16 API. */
static int cp_nfd(cpbuf *b, base_err *e) {
    if (!b->n) return BASE_OK;
    UErrorCode st = U_ZERO_ERROR;
    int32_t n16 = 0;
    if (b->n > (size_t)INT32_MAX / 8) return base_fail(e, BASE_EINVAL, "text too long");
    UChar *s = malloc(b->n * 2 * sizeof(UChar)), *d = NULL;
    if (!s) return base_fail(e, BASE_ENOMEM, "out of memory");
    u_strFromUTF32(s, (int32_t)(b->n * 2), &n16, b->p, (int32_t)b->n, &st);
    int32_t cap = n16 * 4 + 16, dn = 0;
    for (int tries = 0; tries < 2; tries++) {
        free(d);
        d = malloc((size_t)cap * sizeof(UChar));
        if (!d) break;
        st = U_ZERO_ERROR;
        dn = unorm2_normalize(unorm2_getNFDInstance(&st), s, n16, d, cap, &st);
        if (st != U_BUFFER_OVERFLOW_ERROR) break;
        cap = dn + 16;
    }
    free(s);
    if (!d) return base_fail(e, BASE_ENOMEM, "out of memory");
    if (U_FAILURE(st)) {
        free(d);
        return base_fail(e, BASE_EINVAL, "Unicode NFD failed: %s", u_errorName(st));
    }
    b->n = 0;
    int rc = BASE_OK;
    for (int32_t i = 0; i < dn && !rc;) {
        UChar32 c;
        U16_NEXT(d, i, dn, c);
        rc = cp_push(b, c);
    }
    free(d);
    return rc ? base_fail(e, BASE_ENOMEM, "out of memory") : BASE_OK;
}

/* The normalized code points of text (len bytes). Invalid UTF-8 reads as U+FFFD. */
static int wp_normalize(const embed_wp *w, const char *text, size_t len, cpbuf *out, base_err *e) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t l = base_utf8_len(s + i, len - i);
        UChar32 c = 0xFFFD;
        if (l == 0) {
            l = 1;
        } else if (l == 1) {
            c = s[i];
        } else {
            c = s[i] & (0x7F >> l);
            for (size_t k = 1; k < l; k++) c = (c << 6) | (s[i + k] & 0x3F);
        }
        i += l;
        if (w->clean_text) {
            if (c == 0 || c == 0xFFFD || wp_is_control(c)) continue;
            if (wp_is_space(c)) c = ' ';
        }
        int rc = BASE_OK;
        if (w->chinese_chars && wp_is_cjk(c)) {
            rc = cp_push(out, ' ');
            if (!rc) rc = cp_push(out, c);
            if (!rc) rc = cp_push(out, ' ');
        } else {
            rc = cp_push(out, c);
        }
        if (rc) return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    if (w->strip_accents) {
        int rc = cp_nfd(out, e);
        if (rc) return rc;
        size_t k = 0;
        for (size_t i = 0; i < out->n; i++)
            if (u_charType(out->p[i]) != U_NON_SPACING_MARK) out->p[k++] = out->p[i];
        out->n = k;
    }
    if (w->lowercase) {
        /* per character, as tokenizers lower-cases (char::to_lowercase: full mappings, no
         * final-sigma context); U+0130 is the one unconditional multi-character mapping */
        size_t n130 = 0;
        for (size_t i = 0; i < out->n; i++) n130 += out->p[i] == 0x130;
        if (n130 && base_grow(&out->p, &out->cap, out->n + n130, sizeof *out->p, SIZE_MAX))
            return base_fail(e, BASE_ENOMEM, "out of memory");
        size_t j = out->n + n130;
        for (size_t i = out->n; i-- > 0;) {
            UChar32 c = out->p[i];
            if (c == 0x130) {
                out->p[--j] = 0x307;
                out->p[--j] = 'i';
            } else {
                out->p[--j] = u_tolower(c);
            }
        }
        out->n += n130;
    }
    return BASE_OK;
}

/* ---- WordPiece */

static int push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (base_grow(ids, cap, *n + 1, sizeof **ids, SIZE_MAX)) return BASE_ENOMEM;
    (*ids)[(*n)++] = id;
    return BASE_OK;
}

static size_t put_utf8(char *d, UChar32 c) {
    if (c < 0x80) {
        d[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        d[0] = (char)(0xC0 | (c >> 6));
        d[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | (c >> 12));
        d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (c >> 18));
    d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* One word (n code points) -> its pieces, or [UNK]. buf holds prefix + the word's UTF-8 (at
 * least 16 + 4n bytes); cut[i] the byte offset of character i (n + 1 entries). */
static int wp_word(const embed_wp *w, const UChar32 *cp, size_t n, char *buf, size_t *cut,
                   int32_t **ids, size_t *nid, size_t *cap) {
    if (n > (size_t)w->max_chars) return push_id(ids, nid, cap, w->unk);
    size_t pl = strlen(w->prefix);
    memcpy(buf, w->prefix, pl);
    char *word = buf + pl;
    cut[0] = 0;
    for (size_t i = 0; i < n; i++) cut[i + 1] = cut[i] + put_utf8(word + cut[i], cp[i]);
    size_t first = *nid;
    for (size_t start = 0; start < n;) {
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            /* continuation pieces are looked up with the prefix written just before them */
            if (start == 0) {
                id = embed_wp_lookup(w, word, cut[end]);
            } else {
                char save[16];
                memcpy(save, word + cut[start] - pl, pl);
                memcpy(word + cut[start] - pl, w->prefix, pl);
                id = embed_wp_lookup(w, word + cut[start] - pl, cut[end] - cut[start] + pl);
                memcpy(word + cut[start] - pl, save, pl);
            }
            if (id >= 0) break;
        }
        if (id < 0) {
            *nid = first;
            return push_id(ids, nid, cap, w->unk);
        }
        if (push_id(ids, nid, cap, id)) return BASE_ENOMEM;
        start = end;
    }
    return BASE_OK;
}

/* A segment of text without special tokens. */
static int wp_segment(const embed_wp *w, const char *text, size_t len, int32_t **ids, size_t *n,
                      size_t *cap, base_err *e) {
    cpbuf cps = {0};
    int rc = wp_normalize(w, text, len, &cps, e);
    char *buf = NULL;
    size_t *cut = NULL;
    if (!rc && cps.n) {
        buf = malloc(32 + 4 * cps.n);
        cut = malloc((cps.n + 1) * sizeof *cut);
        if (!buf || !cut) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < cps.n;) {
        if (wp_is_space(cps.p[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (!wp_is_punct(cps.p[i]))
            while (j < cps.n && !wp_is_space(cps.p[j]) && !wp_is_punct(cps.p[j])) j++;
        if (wp_word(w, cps.p + i, j - i, buf, cut, ids, n, cap))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        i = j;
    }
    free(buf);
    free(cut);
    free(cps.p);
    return rc;
}

int embed_wp_encode(const embed_wp *w, const char *text, size_t len, int32_t **ids, size_t *n,
                    size_t *cap, base_err *e) {
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        /* the longest special token starting here (tokenizers' added-token matching) */
        size_t best = 0;
        int32_t best_id = -1;
        for (size_t k = 0; k < w->n_specials; k++) {
            const char *t = w->arena + w->off[w->specials[k]];
            size_t l = strlen(t);
            if (l > best && l <= len - i && !memcmp(text + i, t, l)) {
                best = l;
                best_id = w->specials[k];
            }
        }
        if (!best) {
            i++;
            continue;
        }
        int rc = wp_segment(w, text + seg, i - seg, ids, n, cap, e);
        if (!rc && push_id(ids, n, cap, best_id)) rc = base_fail(e, BASE_ENOMEM, "out of memory");
        if (rc) return rc;
        i += best;
        seg = i;
    }
    return wp_segment(w, text + seg, len - seg, ids, n, cap, e);
}
