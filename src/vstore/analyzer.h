/* vstore/analyzer.h: the text analyzers of the full-text index — what a document's words become
 * before BM25 counts them. "english" follows Lucene's EnglishAnalyzer: a standard tokenizer
 * (words, with letters joined across ' . : and numbers across . , ;), the possessive 's removed,
 * lower-casing, English stop words (Lucene's 33) removed, Porter stemming (Porter 1980, as in
 * his reference C implementation). Pure functions: no allocation, no state. */
#ifndef HEARTH_VSTORE_ANALYZER_H
#define HEARTH_VSTORE_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    VSTORE_AN_DEFAULT = 0,     /* at creation: english */
    VSTORE_AN_UNICODE61 = 1,   /* FTS5's own tokenizer and bm25() (stores made before analyzers) */
    VSTORE_AN_ENGLISH = 2,     /* Lucene EnglishAnalyzer: stop words removed, Porter stems */
    VSTORE_AN_ENGLISH_ALL = 3, /* the same, stop words kept */
    VSTORE_AN_STANDARD = 4,    /* tokens lower-cased only: no stop words, no stemming */
} vstore_analyzer;

/* "unicode61", "english", "english_all", "standard" <-> the enum; -1 / NULL when unknown. */
int vstore_analyzer_parse(const char *name);
const char *vstore_analyzer_name(int a);

/* The longest term (bytes); longer words are cut into pieces of this length (as Lucene's
 * StandardTokenizer does at 255 characters). */
#define VSTORE_TERM_MAX 255

/* Porter's stemmer on a lower-case word w of n bytes, in place; returns the stem's length
 * (<= n). Words of 1 or 2 bytes are returned unchanged. */
size_t vstore_porter_stem(char *w, size_t n);

/* Is the lower-case word one of Lucene's English stop words? */
bool vstore_is_stop_word(const char *w, size_t n);

/* Calls fn for each term of text (len bytes) under analyzer a (not UNICODE61): term is the
 * analyzed form (n bytes, not NUL-terminated, valid during the call), [start, end) the byte
 * range of the word in text. fn returning non-zero stops the walk; that value is returned. */
typedef int (*vstore_term_fn)(void *ctx, const char *term, size_t n, size_t start, size_t end);
int vstore_analyze(int a, const char *text, size_t len, vstore_term_fn fn, void *ctx);

#endif
