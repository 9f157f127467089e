/* vstore/analyzer.c: the English analyzer of the full-text index (Lucene's EnglishAnalyzer
 * chain: standard tokenizer, possessive filter, lower case, stop words, Porter stemmer) and the
 * Porter stemmer itself, written from Porter's paper ("An algorithm for suffix stripping",
 * 1980) with the two departures of his reference implementation that Lucene also has: step 2
 * maps -bli to -ble (the paper: -abli to -able) and -logi to -log. */
#include "vstore/analyzer.h"

#include <string.h>

int vstore_analyzer_parse(const char *name) {
    static const char *const names[] = {"unicode61", "english", "english_all", "standard"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i + 1;
    return -1;
}

const char *vstore_analyzer_name(int a) {
    switch (a) {
    case VSTORE_AN_UNICODE61:
        return "unicode61";
    case VSTORE_AN_ENGLISH:
        return "english";
    case VSTORE_AN_ENGLISH_ALL:
        return "english_all";
    case VSTORE_AN_STANDARD:
        return "standard";
    default:
        return NULL;
    }
}

/* ---- Porter's stemmer. The word is b[0..k] (k the index of the last letter); j marks the end
 * of the stem that a suffix test leaves (the paper's "stem" in its conditions). */

typedef struct {
    char *b;
    int k, j;
} porter;

/* Is b[i] a consonant? y is one at the start or after a vowel. */
static bool cons(const porter *p, int i) {
    switch (p->b[i]) {
    case 'a':
    case 'e':
    case 'i':
    case 'o':
    case 'u':
        return false;
    case 'y':
        return i == 0 || !cons(p, i - 1);
    default:
        return true;
    }
}

/* m, the number of VC sequences in b[0..j]: [C](VC){m}[V]. */
static int measure(const porter *p) {
    int n = 0, i = 0;
    for (;; i++) { /* skip the leading consonants */
        if (i > p->j) return n;
        if (!cons(p, i)) break;
    }
    i++;
    for (;;) {
        for (;; i++) { /* vowels */
            if (i > p->j) return n;
            if (cons(p, i)) break;
        }
        i++;
        n++;
        for (;; i++) { /* consonants */
            if (i > p->j) return n;
            if (!cons(p, i)) break;
        }
        i++;
    }
}

static bool vowel_in_stem(const porter *p) {
    for (int i = 0; i <= p->j; i++)
        if (!cons(p, i)) return true;
    return false;
}

static bool double_cons(const porter *p, int i) {
    return i >= 1 && p->b[i] == p->b[i - 1] && cons(p, i);
}

/* cvc at i: consonant, vowel, consonant, the last not w, x or y (hop -> hope, not snow). */
static bool cvc(const porter *p, int i) {
    if (i < 2 || !cons(p, i) || cons(p, i - 1) || !cons(p, i - 2)) return false;
    char c = p->b[i];
    return c != 'w' && c != 'x' && c != 'y';
}

/* Does the word end with s? Then j is set to the index before the suffix. */
static bool ends(porter *p, const char *s) {
    int n = (int)strlen(s);
    if (n > p->k + 1 || memcmp(p->b + p->k - n + 1, s, (size_t)n) != 0) return false;
    p->j = p->k - n;
    return true;
}

/* Replaces b[j+1..k] with s. A replacement is never longer than the suffix it replaces beyond
 * what the word had (-ies -> -i, -at -> -ate after -ed/-ing removed at least two letters). */
static void set_to(porter *p, const char *s) {
    int n = (int)strlen(s);
    memcpy(p->b + p->j + 1, s, (size_t)n);
    p->k = p->j + n;
}

static void replace_if_m(porter *p, const char *s) {
    if (measure(p) > 0) set_to(p, s);
}

/* Step 1ab: plurals and -ed / -ing. */
static void step1ab(porter *p) {
    char *b = p->b;
    if (b[p->k] == 's') {
        if (ends(p, "sses"))
            p->k -= 2;
        else if (ends(p, "ies"))
            set_to(p, "i");
        else if (p->k >= 1 && b[p->k - 1] != 's')
            p->k--;
    }
    if (ends(p, "eed")) {
        if (measure(p) > 0) p->k--;
    } else if ((ends(p, "ed") || ends(p, "ing")) && vowel_in_stem(p)) {
        p->k = p->j;
        if (ends(p, "at"))
            set_to(p, "ate");
        else if (ends(p, "bl"))
            set_to(p, "ble");
        else if (ends(p, "iz"))
            set_to(p, "ize");
        else if (double_cons(p, p->k)) {
            char c = b[p->k];
            if (c != 'l' && c != 's' && c != 'z') p->k--;
        } else {
            p->j = p->k;
            if (measure(p) == 1 && cvc(p, p->k)) set_to(p, "e");
        }
    }
}

/* Step 1c: y -> i when there is another vowel in the stem. */
static void step1c(porter *p) {
    if (ends(p, "y") && vowel_in_stem(p)) p->b[p->k] = 'i';
}

typedef struct {
    const char *suffix, *to;
} rule;

/* The first rule whose suffix the word ends with: replaced when m > 0; later rules not tried. */
static void apply_rules(porter *p, const rule *r) {
    for (; r->suffix; r++)
        if (ends(p, r->suffix)) {
            replace_if_m(p, r->to);
            return;
        }
}

/* Step 2: double suffixes to single ones, keyed by the penultimate letter as in the paper. */
static void step2(porter *p) {
    if (p->k < 1) return;
    static const rule a[] = {{"ational", "ate"}, {"tional", "tion"}, {0, 0}};
    static const rule c[] = {{"enci", "ence"}, {"anci", "ance"}, {0, 0}};
    static const rule e[] = {{"izer", "ize"}, {0, 0}};
    static const rule l[] = {{"bli", "ble"}, {"alli", "al"},   {"entli", "ent"},
                             {"eli", "e"},   {"ousli", "ous"}, {0, 0}};
    static const rule o[] = {{"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"}, {0, 0}};
    static const rule s[] = {
        {"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"}, {0, 0}};
    static const rule t[] = {{"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}, {0, 0}};
    static const rule g[] = {{"logi", "log"}, {0, 0}};
    switch (p->b[p->k - 1]) {
    case 'a':
        apply_rules(p, a);
        break;
    case 'c':
        apply_rules(p, c);
        break;
    case 'e':
        apply_rules(p, e);
        break;
    case 'l':
        apply_rules(p, l);
        break;
    case 'o':
        apply_rules(p, o);
        break;
    case 's':
        apply_rules(p, s);
        break;
    case 't':
        apply_rules(p, t);
        break;
    case 'g':
        apply_rules(p, g);
        break;
    default:
        break;
    }
}

/* Step 3: -ic-, -full, -ness etc., keyed by the last letter. */
static void step3(porter *p) {
    static const rule e[] = {{"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {0, 0}};
    static const rule i[] = {{"iciti", "ic"}, {0, 0}};
    static const rule l[] = {{"ical", "ic"}, {"ful", ""}, {0, 0}};
    static const rule s[] = {{"ness", ""}, {0, 0}};
    switch (p->b[p->k]) {
    case 'e':
        apply_rules(p, e);
        break;
    case 'i':
        apply_rules(p, i);
        break;
    case 'l':
        apply_rules(p, l);
        break;
    case 's':
        apply_rules(p, s);
        break;
    default:
        break;
    }
}

/* Step 4: -ant, -ence etc. removed when m > 1 (-ion only after s or t). */
static void step4(porter *p) {
    if (p->k < 1) return;
    static const char
        *const a[] = {"al", 0},
               *const c[] = {"ance", "ence", 0}, *const e[] = {"er", 0}, *const i[] = {"ic", 0},
               *const l[] = {"able", "ible", 0}, *const n[] = {"ant", "ement", "ment", "ent", 0},
               *const s[] = {"ism", 0}, *const t[] = {"ate", "iti", 0}, *const u[] = {"ous", 0},
               *const v[] = {"ive", 0}, *const z[] = {"ize", 0};
    const char *const *list = NULL;
    bool found = false;
    switch (p->b[p->k - 1]) {
    case 'a':
        list = a;
        break;
    case 'c':
        list = c;
        break;
    case 'e':
        list = e;
        break;
    case 'i':
        list = i;
        break;
    case 'l':
        list = l;
        break;
    case 'n':
        list = n;
        break;
    case 'o':
        if (ends(p, "ion") && p->j >= 0 && (p->b[p->j] == 's' || p->b[p->j] == 't'))
            found = true;
        else if (ends(p, "ou"))
            found = true;
        break;
    case 's':
        list = s;
        break;
    case 't':
        list = t;
        break;
    case 'u':
        list = u;
        break;
    case 'v':
        list = v;
        break;
    case 'z':
        list = z;
        break;
    default:
        break;
    }
    for (; list && *list && !found; list++) found = ends(p, *list);
    if (found && measure(p) > 1) p->k = p->j;
}

/* Step 5: a final -e removed when m > 1 (or m = 1 and not *o), -ll to -l when m > 1. */
static void step5(porter *p) {
    p->j = p->k;
    if (p->b[p->k] == 'e') {
        int m = measure(p);
        if (m > 1 || (m == 1 && !cvc(p, p->k - 1))) p->k--;
    }
    if (p->b[p->k] == 'l' && double_cons(p, p->k) && measure(p) > 1) p->k--;
}

size_t vstore_porter_stem(char *w, size_t n) {
    if (n <= 2 || n > VSTORE_TERM_MAX) return n;
    porter p = {w, (int)n - 1, 0};
    step1ab(&p);
    if (p.k > 0) {
        step1c(&p);
        step2(&p);
        step3(&p);
        step4(&p);
        step5(&p);
    }
    return (size_t)p.k + 1;
}

/* ---- stop words: Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET */

bool vstore_is_stop_word(const char *w, size_t n) {
    static const char *const stop[] = {
        "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
        "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
        "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};
    if (n > 5) return false;
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++)
        if (strlen(stop[i]) == n && memcmp(stop[i], w, n) == 0) return true;
    return false;
}

/* ---- the tokenizer: a simplified Unicode word-break (UAX #29) over UTF-8 */

enum { K_SEP, K_LETTER, K_DIGIT, K_MIDLETTER, K_MIDNUM, K_MIDBOTH };

/* The class of the character at s (n bytes left) and its length in *len. Non-ASCII: general
 * punctuation (U+2000-U+206F), Latin-1 punctuation and symbols (U+0080-U+00BF, U+00D7, U+00F7)
 * separate words, U+2019 (’) joins letters like the apostrophe; everything else is a letter. */
static int char_class(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0];
    *len = 1;
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return K_LETTER;
        if (c >= '0' && c <= '9') return K_DIGIT;
        if (c == '\'' || c == ':') return K_MIDLETTER;
        if (c == '.') return K_MIDBOTH;
        if (c == ',' || c == ';') return K_MIDNUM;
        return K_SEP;
    }
    size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (l > n) l = n;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xC0) != 0x80) l = i;
    *len = l;
    if (l == 1) return K_SEP; /* a stray continuation byte */
    if (l == 2 && c == 0xC2) return K_SEP;
    if (l == 2 && c == 0xC3 && (s[1] == 0x97 || s[1] == 0xB7)) return K_SEP;
    if (l == 3 && c == 0xE2 && s[1] == 0x80 && s[2] == 0x99) return K_MIDLETTER;
    if (l == 3 && c == 0xE2 && (s[1] == 0x80 || s[1] == 0x81)) return K_SEP;
    if (l == 3 && c == 0xE3 && s[1] == 0x80) return K_SEP; /* CJK punctuation */
    if (l == 3 && c == 0xEF && (s[1] == 0xBC || s[1] == 0xBD)) {
        /* full-width forms: letters and digits are words, the rest punctuation */
        unsigned cp =
            ((unsigned)(c & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (unsigned)(s[2] & 0x3F);
        bool alnum = (cp >= 0xFF10 && cp <= 0xFF19) || (cp >= 0xFF21 && cp <= 0xFF3A) ||
                     (cp >= 0xFF41 && cp <= 0xFF5A);
        return alnum ? K_LETTER : K_SEP;
    }
    return K_LETTER;
}

/* Lower case: ASCII and Latin-1's capitals (U+00C0-U+00DE but U+00D7), as bytes in place. */
static size_t lower(char *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 'A' && c <= 'Z')
            t[i] = (char)(c + 32);
        else if (c == 0xC3 && i + 1 < n) {
            unsigned char d = (unsigned char)t[i + 1];
            if (d >= 0x80 && d <= 0x9E && d != 0x97) t[i + 1] = (char)(d + 0x20);
            i++;
        }
    }
    return n;
}

/* One token [s, e) of text through the filters, then to fn. */
static int emit(int a, const char *text, size_t s, size_t e, vstore_term_fn fn, void *ctx) {
    char t[VSTORE_TERM_MAX + 4];
    size_t n = e - s;
    memcpy(t, text + s, n);
    /* possessive: a trailing 's, ’s (either case) */
    if (n >= 3 && (t[n - 1] == 's' || t[n - 1] == 'S') && t[n - 2] == '\'')
        n -= 2;
    else if (n >= 5 && (t[n - 1] == 's' || t[n - 1] == 'S') && (unsigned char)t[n - 4] == 0xE2 &&
             (unsigned char)t[n - 3] == 0x80 && (unsigned char)t[n - 2] == 0x99)
        n -= 4;
    n = lower(t, n);
    if (a == VSTORE_AN_ENGLISH && vstore_is_stop_word(t, n)) return 0;
    if (a == VSTORE_AN_ENGLISH || a == VSTORE_AN_ENGLISH_ALL) n = vstore_porter_stem(t, n);
    return fn(ctx, t, n, s, e);
}

int vstore_analyze(int a, const char *text, size_t len, vstore_term_fn fn, void *ctx) {
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t l;
        int k = char_class(u + i, len - i, &l);
        if (k != K_LETTER && k != K_DIGIT) {
            i += l;
            continue;
        }
        size_t start = i, end = i + l;
        int last = k; /* class of the last word character */
        i += l;
        while (i < len) {
            int k2 = char_class(u + i, len - i, &l);
            if (k2 == K_LETTER || k2 == K_DIGIT) {
                i += l;
                end = i;
                last = k2;
                continue;
            }
            if (k2 == K_SEP) break;
            /* a joiner counts only between two word characters of the right kinds */
            size_t l2;
            if (i + l >= len) break;
            int next = char_class(u + i + l, len - i - l, &l2);
            bool join =
                (last == K_LETTER && next == K_LETTER && (k2 == K_MIDLETTER || k2 == K_MIDBOTH)) ||
                (last == K_DIGIT && next == K_DIGIT && (k2 == K_MIDNUM || k2 == K_MIDBOTH));
            if (!join) break;
            i += l + l2;
            end = i;
            last = next;
        }
        /* words longer than VSTORE_TERM_MAX bytes: pieces of at most that many, cut on a
         * character boundary */
        while (end - start > VSTORE_TERM_MAX) {
            size_t cut = start + VSTORE_TERM_MAX;
            while (cut > start && (u[cut] & 0xC0) == 0x80) cut--;
            int rc = emit(a, text, start, cut, fn, ctx);
            if (rc) return rc;
            start = cut;
        }
        int rc = emit(a, text, start, end, fn, ctx);
        if (rc) return rc;
    }
    return 0;
}
