/* tokenizer/pretok.c: the regex pre-tokenizer. The GPT-2 and cl100k split patterns, compiled
 * once by PCRE2 in UTF mode with Unicode properties and JIT. PCRE2_MATCH_INVALID_UTF lets the
 * matcher run over arbitrary bytes: invalid UTF-8 never matches and acts as a barrier, and the
 * bytes between matches come back as pieces of their own, so every input byte lands in exactly
 * one piece.
 *
 * Whitespace is spelled out as JavaScript's \s (what js-tiktoken, our reference, matches)
 * rather than PCRE2's \s, which differs on U+0085, U+180E and U+FEFF. */
#include "tok_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

struct tok_re {
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    int jit;
};

const char *tok_re_pattern(int pretok) {
    return pretok == TOK_PRETOK_GPT2 ? pat_gpt2 : pretok == TOK_PRETOK_CL100K ? pat_cl100k : NULL;
}

void tok_re_free(tok_re *r) {
    if (!r) return;
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mctx);
    pcre2_jit_stack_free(r->stack);
    pcre2_code_free(r->code);
    free(r);
}

int tok_re_create(int pretok, tok_re **out, base_err *e) {
    *out = NULL;
    const char *pat = tok_re_pattern(pretok);
    if (!pat) return base_fail(e, BASE_EINVAL, "unknown pre-tokenizer %d", pretok);
    tok_re *r = calloc(1, sizeof *r);
    if (!r) return base_fail(e, BASE_ENOMEM, "out of memory");
    int err;
    PCRE2_SIZE at;
    r->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        tok_re_free(r);
        return base_fail(e, BASE_EINVAL, "pre-tokenizer pattern: %s at %zu", (char *)msg,
                         (size_t)at);
    }
    r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
    r->mctx = pcre2_match_context_create(NULL);
    if (!r->md || !r->mctx) {
        tok_re_free(r);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    /* JIT when the platform has it; the interpreter gives the same matches, slower */
    if (pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0) {
        r->stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (r->stack) pcre2_jit_stack_assign(r->mctx, NULL, r->stack);
        r->jit = 1;
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
    int rc = r->jit ? pcre2_jit_match(r->code, (PCRE2_SPTR)s->text, len, p, 0, r->md, r->mctx)
                    : pcre2_match(r->code, (PCRE2_SPTR)s->text, len, p, 0, r->md, r->mctx);
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
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
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
