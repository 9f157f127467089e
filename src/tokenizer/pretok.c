/* tokenizer/pretok.c: the regex pre-tokenizers, one table of types.
 *  - tiktoken's GPT-2 and cl100k patterns (hearth's own and tiktoken vocabularies), compiled
 *    once by PCRE2 in UTF mode with Unicode properties and JIT. PCRE2_MATCH_INVALID_UTF lets the
 *    matcher run over arbitrary bytes: invalid UTF-8 never matches and acts as a barrier, and
 *    the bytes between matches come back as pieces of their own, so every input byte lands in
 *    exactly one piece. Whitespace is spelled out as JavaScript's \s (what js-tiktoken, their
 *    reference, matches) rather than PCRE2's \s, which differs on U+0085, U+180E and U+FEFF.
 *  - llama.cpp's pre-tokenizers of GGUF vocabularies (tokenizer.ggml.pre): a sequence of
 *    patterns, each splitting every piece the previous ones left (what a pattern does not match
 *    stays a piece), matched as llama.cpp matches them: over the code points, invalid bytes
 *    decoded as U+FFFD; a pattern with Unicode classes runs on the "collapsed" text, one byte
 *    per code point (ASCII as itself, any other code point as the byte of its class: letter,
 *    number, punctuation, mark, symbol, other; llama.cpp's whitespace as \v), with each class
 *    spelled as its byte plus its ASCII members; a pattern of explicit code point ranges runs
 *    on the code points (UTF-8, non-ASCII whitespace as \v). Both are PCRE2 without Unicode
 *    properties, where \s is ASCII whitespace as in llama.cpp's std::regex. */
#include "tok_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>

#define WS                                                                                         \
    "\\t\\n\\x{0B}\\f\\r "                                                                         \
    "\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

/* GPT-2 (r50k, p50k): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char pat_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
    "|[" WS "]+(?![^" WS "])|[" WS "]+";
/* cl100k_base (and Llama 3): case-insensitive contractions, letters with one leading
 * non-letter, digits in groups of up to three, punctuation runs with trailing newlines */
static const char pat_cl100k[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+"
    "|[" WS "]+(?![^" WS "])|[" WS "]+";

/* ---- llama.cpp's patterns. In the collapsed text a class is its byte plus its ASCII members
 * (llama.cpp's own choice of them: '~' is no symbol there). */
#define C_L "\\xD2A-Za-z"                  /* \p{L} */
#define C_N "\\xD10-9"                     /* \p{N} */
#define C_P "\\xD3!-#%-*,-/:;?@\\[-\\]_{}" /* \p{P} */
/* GPT-2's split (llama.cpp runs it as its own code; the same pieces) */
#define L_GPT2                                                                                     \
    "'s|'t|'re|'ve|'m|'ll|'d| ?[" C_L "]+| ?[" C_N "]+| ?[^\\s" C_L C_N "]+|\\s+(?!\\S)|\\s+"
/* Llama 3's (cl100k's) with digits in groups of DIGITS */
#define L_LLAMA3(DIGITS)                                                                           \
    "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\\r\\n" C_L C_N "]?[" C_L "]+|[" C_N  \
    "]" DIGITS "| ?[^\\s" C_L C_N "]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* BLOOM's: anything but whitespace and some punctuation (on the code points) */
#define L_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

enum { PAT_COLLAPSED = 1, PAT_CODEPOINT = 2 };
#define MAX_PATS 5

typedef struct pretok_type {
    int pretok;
    const char *names; /* tokenizer.ggml.pre values, comma-separated */
    uint32_t flags;    /* TOK_FLAG_ADD_BOS / IGNORE_MERGES llama.cpp gives some names */
    const char *flag_names;
    struct {
        int mode;
        const char *src;
    } pats[MAX_PATS];
} pretok_type;

static const pretok_type types[] = {
    {TOK_PRETOK_LLAMA3,
     "llama-bpe,llama3,llama-v3,falcon3,dbrx,smaug-bpe",
     TOK_FLAG_ADD_BOS | TOK_FLAG_IGNORE_MERGES,
     "llama-bpe,llama3,llama-v3,falcon3",
     {{PAT_COLLAPSED, L_LLAMA3("{1,3}")}}},
    {TOK_PRETOK_QWEN2,
     "qwen2,deepseek-r1-qwen,stablelm2,megrez",
     0,
     "",
     {{PAT_COLLAPSED, L_LLAMA3("")}}},
    {TOK_PRETOK_GGUF_GPT2,
     "gpt-2,phi-2,jina-es,jina-de,gigachat,jina-v1-en,roberta-bpe,mpt,olmo,jais",
     0,
     "",
     {{PAT_COLLAPSED, L_GPT2}}},
    {TOK_PRETOK_SMOLLM,
     "smollm,starcoder,refact,command-r,codeshell,exaone,minerva-7b",
     0,
     "",
     {{PAT_COLLAPSED, "[" C_N "]"}, {PAT_COLLAPSED, L_GPT2}}},
    {TOK_PRETOK_FALCON,
     "falcon",
     0,
     "",
     {{PAT_COLLAPSED, "[" C_P "$+<=>^~|`]+"},
      {PAT_COLLAPSED, L_GPT2},
      {PAT_COLLAPSED, "[0-9][0-9][0-9]"}}},
    {TOK_PRETOK_DEFAULT,
     "default",
     0,
     "",
     {{PAT_COLLAPSED, "[" C_P "$+<=>^~|]+"},
      {PAT_COLLAPSED, L_GPT2},
      {PAT_COLLAPSED, "[" C_N "]+"},
      {PAT_COLLAPSED, "[0-9][0-9][0-9]"}}},
    {TOK_PRETOK_DEEPSEEK_CODER,
     "deepseek-coder",
     0,
     "",
     {{PAT_COLLAPSED, "[\\r\\n]"},
      {PAT_COLLAPSED, "\\s?[" C_L "]+"},
      {PAT_COLLAPSED, "\\s?[" C_P "]+"},
      {PAT_CODEPOINT, "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"},
      {PAT_COLLAPSED, "[" C_N "]"}}},
    {TOK_PRETOK_BLOOM, "bloom,poro-chat,gpt3-finnish", 0, "", {{PAT_CODEPOINT, L_BLOOM}}},
    {TOK_PRETOK_VIKING, "viking", 0, "", {{PAT_CODEPOINT, L_BLOOM}, {PAT_COLLAPSED, "[" C_N "]"}}},
    /* Mistral's: words split at case changes (in the collapsed text a non-ASCII letter is
     * both cases, as in llama.cpp) */
    {TOK_PRETOK_TEKKEN,
     "tekken",
     TOK_FLAG_ADD_BOS | TOK_FLAG_IGNORE_MERGES,
     "tekken",
     {{PAT_COLLAPSED, "[^\\r\\n" C_L C_N "]?((?=[" C_L "])([^a-z]))*((?=[" C_L "])([^A-Z]))+"
                      "|[^\\r\\n" C_L C_N "]?((?=[" C_L "])([^a-z]))+((?=[" C_L "])([^A-Z]))*"
                      "|[" C_N "]| ?[^\\s" C_L C_N "]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
};
#define N_TYPES (sizeof types / sizeof *types)

static const pretok_type *find_type(int pretok) {
    for (size_t i = 0; i < N_TYPES; i++)
        if (types[i].pretok == pretok) return &types[i];
    return NULL;
}

/* Whether name (len bytes) is in the comma-separated list. */
static int in_list(const char *list, const char *name, size_t len) {
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == len && !memcmp(p, name, len)) return 1;
        p += n + (c != NULL);
    }
    return 0;
}

int tok_pretok_from_gguf(const char *name, size_t len, uint32_t *flags) {
    *flags = 0;
    for (size_t i = 0; i < N_TYPES; i++)
        if (in_list(types[i].names, name, len)) {
            if (in_list(types[i].flag_names, name, len)) *flags = types[i].flags;
            return types[i].pretok;
        }
    return -1;
}

void tok_pretok_gguf_names(char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_TYPES && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? "," : "", types[i].names);
}

struct tok_re {
    int n; /* patterns */
    int mode[MAX_PATS];
    pcre2_code *code[MAX_PATS];
    pcre2_match_data *md[MAX_PATS];
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    int jit[MAX_PATS];
};

const char *tok_re_pattern(int pretok) {
    return pretok == TOK_PRETOK_GPT2 ? pat_gpt2 : pretok == TOK_PRETOK_CL100K ? pat_cl100k : NULL;
}

void tok_re_free(tok_re *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        pcre2_match_data_free(r->md[i]);
        pcre2_code_free(r->code[i]);
    }
    pcre2_match_context_free(r->mctx);
    pcre2_jit_stack_free(r->stack);
    free(r);
}

static int re_add(tok_re *r, const char *pat, int mode, base_err *e) {
    int err;
    PCRE2_SIZE at;
    uint32_t opts = mode == PAT_COLLAPSED   ? PCRE2_DOLLAR_ENDONLY
                    : mode == PAT_CODEPOINT ? PCRE2_UTF | PCRE2_DOLLAR_ENDONLY
                                            : PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    int i = r->n;
    r->code[i] = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &err, &at, NULL);
    if (!r->code[i]) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return base_fail(e, BASE_EINVAL, "pre-tokenizer pattern: %s at %zu", (char *)msg,
                         (size_t)at);
    }
    r->n++;
    r->mode[i] = mode;
    r->md[i] = pcre2_match_data_create_from_pattern(r->code[i], NULL);
    if (!r->md[i]) return base_fail(e, BASE_ENOMEM, "out of memory");
    /* JIT when the platform has it; the interpreter gives the same matches, slower */
    r->jit[i] = pcre2_jit_compile(r->code[i], PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

int tok_re_create(int pretok, tok_re **out, base_err *e) {
    *out = NULL;
    const char *pat = tok_re_pattern(pretok);
    const pretok_type *t = pat ? NULL : find_type(pretok);
    if (!pat && !t) return base_fail(e, BASE_EINVAL, "unknown pre-tokenizer %d", pretok);
    tok_re *r = calloc(1, sizeof *r);
    if (!r) return base_fail(e, BASE_ENOMEM, "out of memory");
    int rc = 0;
    if (pat) {
        rc = re_add(r, pat, 0, e);
    } else {
        for (int i = 0; !rc && i < MAX_PATS && t->pats[i].src; i++)
            rc = re_add(r, t->pats[i].src, t->pats[i].mode, e);
    }
    r->mctx = rc ? NULL : pcre2_match_context_create(NULL);
    if (!rc && !r->mctx) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc) {
        r->stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (r->stack) pcre2_jit_stack_assign(r->mctx, NULL, r->stack);
    }
    if (rc) {
        tok_re_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int tok_re_next(tok_re *r, tok_split *s, size_t *start, size_t *end, base_err *e) {
    size_t p = s->pos, len = s->len;
    if (p >= len) return 0;
    if (s->held) { /* the match found beyond a gap last time */
        s->held = 0;
        *start = s->held_start;
        *end = s->pos = s->held_end;
        return 1;
    }
    int rc = r->jit[0]
                 ? pcre2_jit_match(r->code[0], (PCRE2_SPTR)s->text, len, p, 0, r->md[0], r->mctx)
                 : pcre2_match(r->code[0], (PCRE2_SPTR)s->text, len, p, 0, r->md[0], r->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) { /* only invalid bytes are left */
        *start = p;
        *end = s->pos = len;
        return 1;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return base_fail(e, BASE_EINVAL, "pre-tokenizer failed at byte %zu: %s", p, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md[0]);
    size_t ms = ov[0], me = ov[1];
    if (me <= ms || ms < p || me > len) /* the patterns cannot match empty; never loop */
        return base_fail(e, BASE_EINVAL, "pre-tokenizer matched nothing at byte %zu", p);
    if (ms > p) { /* a gap of unmatched (invalid) bytes first */
        s->held = 1;
        s->held_start = ms;
        s->held_end = me;
        *start = p;
        *end = s->pos = ms;
        return 1;
    }
    *start = ms;
    *end = s->pos = me;
    return 1;
}

/* ---- llama.cpp's split */

void tok_lsplit_free(tok_lsplit *s) {
    free(s->text), free(s->ends), free(s->cp), free(s->off), free(s->coll), free(s->wtext);
    free(s->woff), free(s->pc), free(s->pc2);
    memset(s, 0, sizeof *s);
}

/* llama.cpp's lax UTF-8 decoder: the lead byte says the length, the continuation bytes are
 * checked, nothing else (overlong forms and surrogates pass); an invalid byte is U+FFFD. */
static uint32_t lax_decode(const uint8_t *p, size_t n, size_t *used) {
    uint8_t c = p[0];
    size_t k = c < 0x80      ? 1
               : !(c & 0x40) ? 0
               : !(c & 0x20) ? 2
               : !(c & 0x10) ? 3
               : !(c & 0x08) ? 4
                             : 0;
    if (k == 0 || k > n) {
        *used = 1;
        return 0xFFFD;
    }
    uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7F >> k));
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *used = 1;
            return 0xFFFD;
        }
        cp = cp << 6 | (p[i] & 0x3F);
    }
    *used = k;
    /* past U+10FFFF llama.cpp's encoder throws; hearth takes U+FFFD */
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static const char class_byte[] = {
    [TOK_UCD_OTHER] = (char)0xD0, [TOK_UCD_LETTER] = (char)0xD2, [TOK_UCD_NUMBER] = (char)0xD1,
    [TOK_UCD_PUNCT] = (char)0xD3, [TOK_UCD_MARK] = (char)0xD4,   [TOK_UCD_SYMBOL] = (char)0xD5,
    [TOK_UCD_SPACE] = 0x0B};

static int grow(void *pp, size_t *cap, size_t need, size_t size) {
    return base_grow(pp, cap, need, size, SIZE_MAX);
}

/* The code point whose byte offset in wtext is b (offsets ascending), by binary search. */
static size_t cp_at(const uint32_t *woff, size_t lo, size_t hi, size_t b) {
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (woff[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int tok_re_split(tok_re *r, const char *text, size_t len, tok_lsplit *s, base_err *e) {
    const uint8_t *t = (const uint8_t *)text;
    s->n_pieces = 0;
    s->text_len = 0;
    if (len == 0) return 0;
    /* every buffer is bounded by the input: at most len code points, 3 bytes each out */
    size_t nb = len * 3 + 4, nc = len + 1;
    if (len > SIZE_MAX / 4 || grow(&s->text, &s->cap_bytes, nb, 1) ||
        grow(&s->cp, &s->cap_cp, nc, sizeof *s->cp))
        return base_fail(e, BASE_ENOMEM, "out of memory splitting %zu bytes", len);
    size_t ccap = s->cap_cp, bcap = s->cap_bytes;
    /* off, woff and coll share cap_cp, wtext shares cap_bytes: grow them to the same sizes */
    size_t c1 = 0, c2 = 0, c3 = 0, c4 = 0;
    if (base_grow(&s->off, &c1, ccap, sizeof *s->off, SIZE_MAX) ||
        base_grow(&s->woff, &c2, ccap, sizeof *s->woff, SIZE_MAX) ||
        base_grow(&s->coll, &c3, ccap, 1, SIZE_MAX) || base_grow(&s->wtext, &c4, bcap, 1, SIZE_MAX))
        return base_fail(e, BASE_ENOMEM, "out of memory splitting %zu bytes", len);
    size_t n = 0, o = 0, w = 0;
    for (size_t i = 0; i < len;) {
        size_t used;
        uint32_t cp = lax_decode(t + i, len - i, &used);
        i += used;
        s->cp[n] = cp;
        s->off[n] = (uint32_t)o;
        s->woff[n] = (uint32_t)w;
        o += put_utf8(s->text + o, cp);
        if (cp < 0x80) {
            s->coll[n] = (char)cp;
            s->wtext[w++] = (char)cp;
        } else {
            int c = tok_ucd_class(cp);
            s->coll[n] = class_byte[c];
            /* code point patterns see non-ASCII whitespace as \v, and no surrogate */
            w += c == TOK_UCD_SPACE              ? (s->wtext[w] = 0x0B, 1)
                 : (cp >= 0xD800 && cp < 0xE000) ? put_utf8(s->wtext + w, 0xFFFD)
                                                 : put_utf8(s->wtext + w, cp);
        }
        n++;
    }
    s->off[n] = (uint32_t)o;
    s->woff[n] = (uint32_t)w;
    s->text_len = o;
    /* piece lengths in code points; each pattern splits every piece */
    if (grow(&s->pc, &s->cap_pc, n + 1, sizeof *s->pc))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t np = 1;
    s->pc[0] = n;
    for (int k = 0; k < r->n; k++) {
        if (grow(&s->pc2, &s->cap_pc2, n + 1, sizeof *s->pc2))
            return base_fail(e, BASE_ENOMEM, "out of memory");
        size_t np2 = 0, start = 0;
        int coll = r->mode[k] == PAT_COLLAPSED;
        for (size_t q = 0; q < np; q++) {
            size_t a = start, b = start + s->pc[q]; /* the piece: code points [a, b) */
            start = b;
            const char *subj = coll ? s->coll + a : s->wtext + s->woff[a];
            size_t slen = coll ? b - a : s->woff[b] - s->woff[a], pos = 0, prev = a;
            while (pos < slen) {
                int rc = r->jit[k] ? pcre2_jit_match(r->code[k], (PCRE2_SPTR)subj, slen, pos, 0,
                                                     r->md[k], r->mctx)
                                   : pcre2_match(r->code[k], (PCRE2_SPTR)subj, slen, pos, 0,
                                                 r->md[k], r->mctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    return base_fail(e, BASE_EINVAL, "pre-tokenizer failed: %s", (char *)msg);
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md[k]);
                size_t ms = ov[0], me = ov[1];
                if (me <= ms) { /* the patterns cannot match empty; never loop */
                    pos = ms + 1;
                    continue;
                }
                size_t cs = coll ? a + ms : cp_at(s->woff, a, b, s->woff[a] + ms);
                size_t ce = coll ? a + me : cp_at(s->woff, a, b, s->woff[a] + me);
                if (cs > prev) s->pc2[np2++] = cs - prev; /* what the pattern left */
                s->pc2[np2++] = ce - cs;
                prev = ce;
                pos = me;
            }
            if (b > prev) s->pc2[np2++] = b - prev;
        }
        size_t *x = s->pc, cx = s->cap_pc;
        s->pc = s->pc2, s->cap_pc = s->cap_pc2;
        s->pc2 = x, s->cap_pc2 = cx;
        np = np2;
    }
    if (grow(&s->ends, &s->cap_ends, np + 1, sizeof *s->ends))
        return base_fail(e, BASE_ENOMEM, "out of memory");
    size_t c = 0;
    for (size_t q = 0; q < np; q++) {
        c += s->pc[q];
        s->ends[q] = s->off[c];
    }
    s->n_pieces = np;
    return 0;
}
