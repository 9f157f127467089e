/* tests/vstore/test_analyzer.c: the full-text analyzers and Lucene's BM25. The Porter stemmer
 * against the examples of Porter's paper and a sample of reference pairs (porter_sample.tsv,
 * tools/porter_ref.py); the English analyzer's tokens and offsets; BM25 scores against a hand
 * computation with the default and with configured k1 / b; stemmed matching; stop-word-only
 * queries; collections made before analyzers (unicode61); text-only records; vstore_replace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "vstore/analyzer.h"
#include "vstore/vstore.h"

static void test_porter_paper(void **state) {
    (void)state;
    static const char *const pairs[][2] = {{"caresses", "caress"},
                                           {"ponies", "poni"},
                                           {"ties", "ti"},
                                           {"caress", "caress"},
                                           {"cats", "cat"},
                                           {"feed", "feed"},
                                           {"agreed", "agre"},
                                           {"plastered", "plaster"},
                                           {"bled", "bled"},
                                           {"motoring", "motor"},
                                           {"sing", "sing"},
                                           {"conflated", "conflat"},
                                           {"troubled", "troubl"},
                                           {"sized", "size"},
                                           {"hopping", "hop"},
                                           {"tanned", "tan"},
                                           {"falling", "fall"},
                                           {"hissing", "hiss"},
                                           {"fizzed", "fizz"},
                                           {"failing", "fail"},
                                           {"filing", "file"},
                                           {"happy", "happi"},
                                           {"sky", "sky"},
                                           {"relational", "relat"},
                                           {"conditional", "condit"},
                                           {"rational", "ration"},
                                           {"valenci", "valenc"},
                                           {"hesitanci", "hesit"},
                                           {"digitizer", "digit"},
                                           {"conformabli", "conform"},
                                           {"radicalli", "radic"},
                                           {"differentli", "differ"},
                                           {"vileli", "vile"},
                                           {"analogousli", "analog"},
                                           {"vietnamization", "vietnam"},
                                           {"predication", "predic"},
                                           {"operator", "oper"},
                                           {"feudalism", "feudal"},
                                           {"decisiveness", "decis"},
                                           {"hopefulness", "hope"},
                                           {"callousness", "callous"},
                                           {"formaliti", "formal"},
                                           {"sensitiviti", "sensit"},
                                           {"sensibiliti", "sensibl"},
                                           {"triplicate", "triplic"},
                                           {"formative", "form"},
                                           {"formalize", "formal"},
                                           {"electriciti", "electr"},
                                           {"electrical", "electr"},
                                           {"hopeful", "hope"},
                                           {"goodness", "good"},
                                           {"revival", "reviv"},
                                           {"allowance", "allow"},
                                           {"inference", "infer"},
                                           {"airliner", "airlin"},
                                           {"gyroscopic", "gyroscop"},
                                           {"adjustable", "adjust"},
                                           {"defensible", "defens"},
                                           {"irritant", "irrit"},
                                           {"replacement", "replac"},
                                           {"adjustment", "adjust"},
                                           {"dependent", "depend"},
                                           {"adoption", "adopt"},
                                           {"homologou", "homolog"},
                                           {"communism", "commun"},
                                           {"activate", "activ"},
                                           {"angulariti", "angular"},
                                           {"homologous", "homolog"},
                                           {"effective", "effect"},
                                           {"bowdlerize", "bowdler"},
                                           {"probate", "probat"},
                                           {"rate", "rate"},
                                           {"cease", "ceas"},
                                           {"controll", "control"},
                                           {"roll", "roll"},
                                           {"generalizations", "gener"},
                                           {"oscillators", "oscil"},
                                           {"archaeology", "archaeolog"},
                                           {"is", "is"},
                                           {"a", "a"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char w[64];
        size_t n = strlen(pairs[i][0]);
        memcpy(w, pairs[i][0], n + 1);
        size_t m = vstore_porter_stem(w, n);
        if (m != strlen(pairs[i][1]) || memcmp(w, pairs[i][1], m) != 0)
            fail_msg("porter(%s) = %.*s, want %s", pairs[i][0], (int)m, w, pairs[i][1]);
    }
}

/* Every pair of the reference sample: ~1,000 words of the Cranfield and CISI vocabularies. */
static void test_porter_sample(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/vstore/porter_sample.tsv", test_dir());
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char line[256];
    size_t n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *want = tab + 1;
        want[strcspn(want, "\n")] = 0;
        size_t m = vstore_porter_stem(line, strlen(line));
        if (m != strlen(want) || memcmp(line, want, m) != 0) {
            if (bad++ < 10) print_message("porter: got %.*s, want %s\n", (int)m, line, want);
        }
        n++;
    }
    fclose(f);
    assert_true(n > 900);
    assert_int_equal(bad, 0);
}

typedef struct {
    char terms[16][64];
    size_t start[16], end[16], n;
} tokens;

static int collect(void *ctx, const char *term, size_t n, size_t start, size_t end) {
    tokens *t = ctx;
    if (t->n < 16) {
        snprintf(t->terms[t->n], 64, "%.*s", (int)n, term);
        t->start[t->n] = start;
        t->end[t->n] = end;
        t->n++;
    }
    return 0;
}

static void expect_tokens(int a, const char *text, const char *const *want, size_t nwant) {
    tokens t = {0};
    vstore_analyze(a, text, strlen(text), collect, &t);
    if (t.n != nwant)
        fail_msg("%s: %zu tokens of '%s', want %zu", vstore_analyzer_name(a), t.n, text, nwant);
    for (size_t i = 0; i < nwant; i++)
        if (strcmp(t.terms[i], want[i]) != 0)
            fail_msg("%s: token %zu of '%s' is '%s', want '%s'", vstore_analyzer_name(a), i, text,
                     t.terms[i], want[i]);
}

static void test_analyzer_tokens(void **state) {
    (void)state;
    const char *text = "The Dog's RUNNING, U.S.A. 3.14 don't — naïve connections_2";
    static const char *const en[] = {"dog",   "run",  "u.s.a",        "3.14",
                                     "don't", "naïv", "connections_2"};
    expect_tokens(VSTORE_AN_ENGLISH, text, en, 7);
    static const char *const all[] = {"the",  "dog",   "run",  "u.s.a",
                                      "3.14", "don't", "naïv", "connections_2"};
    expect_tokens(VSTORE_AN_ENGLISH_ALL, text, all, 8);
    static const char *const std[] = {"the",  "dog",   "running", "u.s.a",
                                      "3.14", "don't", "naïve",   "connections_2"};
    expect_tokens(VSTORE_AN_STANDARD, text, std, 8);
    /* offsets: the word as written, possessive included */
    tokens t = {0};
    vstore_analyze(VSTORE_AN_ENGLISH, text, strlen(text), collect, &t);
    assert_int_equal(t.start[0], 4);
    assert_int_equal(t.end[0], 9); /* "Dog's" */
    /* separators: punctuation, a trailing dot, commas between words, the dash */
    static const char *const sep[] = {"end", "1,000", "word", "next"};
    expect_tokens(VSTORE_AN_STANDARD, "end. 1,000 word,next", sep, 4);
    /* a word longer than VSTORE_TERM_MAX bytes comes in pieces of at most that many */
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    tokens b = {0};
    vstore_analyze(VSTORE_AN_STANDARD, big, strlen(big), collect, &b);
    assert_int_equal(b.n, 3);
    assert_int_equal(strlen(b.terms[0]), 63); /* the copy is cut at 63; the term was 255 */
    assert_int_equal(b.end[0] - b.start[0], VSTORE_TERM_MAX);
    assert_true(vstore_is_stop_word("the", 3) && !vstore_is_stop_word("then_", 5));
    assert_int_equal(vstore_analyzer_parse("english"), VSTORE_AN_ENGLISH);
    assert_int_equal(vstore_analyzer_parse("klingon"), -1);
}

static char *store_dir(void) {
    char *d = strdup("/tmp/hearth-analyzer-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void add_text(vstore *db, const char *cid, size_t n, const char *const *ids,
                     const char *const *docs, const char *const *metas) {
    vstore_batch b = {n, ids, NULL, docs, metas};
    base_err e = {0};
    if (vstore_write_text(db, cid, VSTORE_ADD, &b, &e)) fail_msg("add: %s", e.msg);
}

/* Lucene's BM25 written out by hand: idf = ln(1 + (N - n + 0.5) / (n + 0.5)),
 * tf / (tf + k1 (1 - b + b dl / avgdl)). */
static double bm25(double N, double n, double tf, double dl, double avgdl, double k1, double b) {
    return log(1 + (N - n + 0.5) / (n + 0.5)) * tf / (tf + k1 * (1 - b + b * dl / avgdl));
}

static void expect_score(vstore *db, const char *cid, const char *q, const char *id, double want) {
    vstore_result r;
    base_err e = {0};
    if (vstore_text_search(db, cid, q, 10, NULL, 0, &r, &e)) fail_msg("search: %s", e.msg);
    bool found = false;
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.ids[i], id) == 0) {
            found = true;
            if (fabs(r.distances[i] - want) > 1e-5 * (1 + fabs(want)))
                fail_msg("'%s' on %s: score %.7f, want %.7f", q, id, r.distances[i], want);
        }
    vstore_result_free(&r);
    if (!found) fail_msg("'%s' did not find %s", q, id);
}

static void test_bm25_scores(void **state) {
    (void)state;
    char *dir = store_dir();
    vstore *db;
    base_err e = {0};
    assert_int_equal(vstore_open(&db, dir, &e), 0);
    static const char *const ids[] = {"d1", "d2", "d3"};
    /* lengths after analysis: 3, 2, 4 (the stop word "the" and "and" removed) */
    static const char *const docs[] = {"apples and apple banana", "the apple cherry",
                                       "cherries cherry cherry dates"};
    vstore_coll c;
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "lucene", NULL, false, &c, &e), 0);
    assert_int_equal(c.text.analyzer, VSTORE_AN_ENGLISH);
    assert_true(c.text.k1 == 0.9 && c.text.b == 0.4);
    add_text(db, c.id, 3, ids, docs, NULL);
    double avg = 9.0 / 3;
    expect_score(db, c.id, "apple", "d1", bm25(3, 2, 2, 3, avg, 0.9, 0.4));
    expect_score(db, c.id, "Apples!", "d2", bm25(3, 2, 1, 2, avg, 0.9, 0.4));
    /* two terms add up; a repeated query term counts twice (Lucene's boolean query) */
    expect_score(db, c.id, "apple cherry", "d2",
                 bm25(3, 2, 1, 2, avg, 0.9, 0.4) + bm25(3, 2, 1, 2, avg, 0.9, 0.4));
    expect_score(db, c.id, "date date", "d3", 2 * bm25(3, 1, 1, 4, avg, 0.9, 0.4));
    /* ranking: d3 (tf 3) before d2 (tf 1) for "cherry" */
    vstore_result r;
    assert_int_equal(vstore_text_search(db, c.id, "cherry", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ids[0], "d3");
    vstore_result_free(&r);
    /* a query of stop words only: an empty answer, not an error; no words at all: an error */
    assert_int_equal(vstore_text_search(db, c.id, "the and of", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 0);
    vstore_result_free(&r);
    assert_int_equal(vstore_text_search(db, c.id, "?! ...", 5, NULL, 0, &r, &e), BASE_EINVAL);
    char lucene[40];
    snprintf(lucene, sizeof lucene, "%s", c.id);
    vstore_coll_free(&c);

    /* configured k1 and b, stored with the collection and read back */
    vstore_coll_opts o = {.text = {VSTORE_AN_ENGLISH_ALL, 1.2, 0.75}};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "classic", &o, false, &c, &e), 0);
    add_text(db, c.id, 3, ids, docs, NULL);
    vstore_coll_free(&c);
    assert_int_equal(vstore_coll_get(db, NULL, NULL, "classic", &c, &e), 0);
    assert_int_equal(c.text.analyzer, VSTORE_AN_ENGLISH_ALL);
    assert_true(c.text.k1 == 1.2 && c.text.b == 0.75);
    /* stop words kept: lengths 4, 3, 4 */
    expect_score(db, c.id, "the", "d2", bm25(3, 1, 1, 3, 11.0 / 3, 1.2, 0.75));
    expect_score(db, c.id, "apple", "d1", bm25(3, 2, 2, 4, 11.0 / 3, 1.2, 0.75));
    vstore_coll_free(&c);

    /* the metadata can name them (what Chroma clients and `hearth vstore create` send) */
    vstore_coll_opts mo = {.metadata =
                               "{\"hearth:analyzer\": \"standard\", \"hearth:bm25_b\": 0.75}"};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "bymeta", &mo, false, &c, &e), 0);
    assert_int_equal(c.text.analyzer, VSTORE_AN_STANDARD);
    assert_true(c.text.k1 == 0.9 && c.text.b == 0.75);
    vstore_coll_free(&c);
    vstore_coll_opts mbad = {.metadata = "{\"hearth:analyzer\": \"klingon\"}"};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "badmeta", &mbad, false, NULL, &e),
                     BASE_EINVAL);
    assert_non_null(strstr(e.msg, "hearth:analyzer"));
    /* out-of-range parameters and unknown analyzers are refused */
    vstore_coll_opts badk = {.text = {VSTORE_AN_ENGLISH, 11, 0.4}};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "badk", &badk, false, NULL, &e),
                     BASE_EINVAL);
    assert_non_null(strstr(e.msg, "k1"));
    vstore_coll_opts bada = {.text = {42, 0, 0}};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "bada", &bada, false, NULL, &e),
                     BASE_EINVAL);

    /* statistics are the collection's own: the second collection's documents change nothing */
    expect_score(db, lucene, "apple", "d1", bm25(3, 2, 2, 3, avg, 0.9, 0.4));
    vstore_close(db);
    test_rm_rf(dir);
    free(dir);
}

static void test_stemmed_and_legacy(void **state) {
    (void)state;
    char *dir = store_dir();
    vstore *db;
    base_err e = {0};
    assert_int_equal(vstore_open(&db, dir, &e), 0);
    static const char *const ids[] = {"a", "b"};
    static const char *const docs[] = {"The runner was running quickly.", "Connections failed."};
    vstore_coll en, st, old;
    vstore_coll_opts so = {.text = {VSTORE_AN_STANDARD, 0, 0}};
    vstore_coll_opts oo = {.text = {VSTORE_AN_UNICODE61, 0, 0}};
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "english", NULL, false, &en, &e), 0);
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "standard", &so, false, &st, &e), 0);
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "legacy", &oo, false, &old, &e), 0);
    add_text(db, en.id, 2, ids, docs, NULL);
    add_text(db, st.id, 2, ids, docs, NULL);
    add_text(db, old.id, 2, ids, docs, NULL);
    vstore_result r;
    /* "runs" and "connected" find the stemmed words with english only */
    assert_int_equal(vstore_text_search(db, en.id, "runs connected", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 2);
    vstore_result_free(&r);
    assert_int_equal(vstore_text_search(db, st.id, "runs connected", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 0);
    vstore_result_free(&r);
    /* the unicode61 collection (as every collection made before analyzers): FTS5's bm25() */
    assert_int_equal(vstore_text_search(db, old.id, "running", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 1);
    assert_true(r.distances[0] > 0);
    vstore_result_free(&r);
    /* deleting records and a collection drops them from its own index */
    static const char *const del[] = {"a"};
    if (vstore_delete(db, en.id, del, 1, NULL, NULL, 0, NULL, &e)) fail_msg("delete: %s", e.msg);
    assert_int_equal(vstore_text_search(db, en.id, "running", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 0);
    vstore_result_free(&r);
    assert_int_equal(vstore_coll_delete(db, NULL, NULL, "english", &e), 0);
    assert_int_equal(vstore_coll_delete(db, NULL, NULL, "legacy", &e), 0);
    vstore_coll_free(&en);
    vstore_coll_free(&st);
    vstore_coll_free(&old);
    /* reopened: the settings and the tables are still there */
    vstore_close(db);
    assert_int_equal(vstore_open(&db, dir, &e), 0);
    assert_int_equal(vstore_coll_get(db, NULL, NULL, "standard", &st, &e), 0);
    assert_int_equal(st.text.analyzer, VSTORE_AN_STANDARD);
    assert_int_equal(vstore_text_search(db, st.id, "quickly", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 1);
    vstore_result_free(&r);
    vstore_coll_free(&st);
    vstore_close(db);
    test_rm_rf(dir);
    free(dir);
}

static void test_text_only_and_replace(void **state) {
    (void)state;
    char *dir = store_dir();
    vstore *db;
    base_err e = {0};
    assert_int_equal(vstore_open(&db, dir, &e), 0);
    vstore_coll c, v;
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "texts", NULL, false, &c, &e), 0);
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "vectors", NULL, false, &v, &e), 0);
    static const char *const ids[] = {"x:0", "x:1"};
    static const char *const docs[] = {"old first part", "old second part"};
    static const char *const metas[] = {"{\"source\":\"x\"}", "{\"source\":\"x\"}"};
    add_text(db, c.id, 2, ids, docs, metas);
    /* mixing refused both ways */
    float vec[2] = {1, 0};
    vstore_batch b1 = {1, ids, vec, docs, NULL};
    assert_int_equal(vstore_write(db, c.id, VSTORE_UPSERT, &b1, 2, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "without embeddings"));
    assert_int_equal(vstore_write(db, v.id, VSTORE_ADD, &b1, 2, &e), 0);
    vstore_batch b2 = {1, ids + 1, NULL, docs + 1, NULL};
    assert_int_equal(vstore_write_text(db, v.id, VSTORE_ADD, &b2, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "holds embeddings"));
    /* replace: the old records go, the new come, in one step */
    static const char *const nids[] = {"x:0"};
    static const char *const ndocs[] = {"new whole text"};
    static const char *const nmetas[] = {"{\"source\":\"x\"}"};
    vstore_batch nb = {1, nids, NULL, ndocs, nmetas};
    size_t replaced = 0;
    assert_int_equal(vstore_replace(db, c.id, "{\"source\":\"x\"}", &nb, 0, &replaced, &e), 0);
    assert_int_equal(replaced, 2);
    uint64_t n;
    assert_int_equal(vstore_count(db, c.id, &n, &e), 0);
    assert_int_equal(n, 1);
    vstore_result r;
    assert_int_equal(vstore_text_search(db, c.id, "old", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 0);
    vstore_result_free(&r);
    assert_int_equal(vstore_text_search(db, c.id, "whole", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 1);
    vstore_result_free(&r);
    /* a refused replace changes nothing: duplicate ids in the batch */
    static const char *const dids[] = {"x:5", "x:5"};
    vstore_batch db2 = {2, dids, NULL, docs, metas};
    assert_int_equal(vstore_replace(db, c.id, "{\"source\":\"x\"}", &db2, 0, NULL, &e),
                     BASE_EINVAL);
    assert_int_equal(vstore_text_search(db, c.id, "whole", 5, NULL, 0, &r, &e), 0);
    assert_int_equal(r.n, 1);
    vstore_result_free(&r);
    assert_int_equal(vstore_replace(db, c.id, "{}", &nb, 0, NULL, &e), BASE_EINVAL);
    vstore_coll_free(&c);
    vstore_coll_free(&v);
    vstore_close(db);
    test_rm_rf(dir);
    free(dir);
}

int test_analyzer(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_porter_paper),       cmocka_unit_test(test_porter_sample),
        cmocka_unit_test(test_analyzer_tokens),    cmocka_unit_test(test_bm25_scores),
        cmocka_unit_test(test_stemmed_and_legacy), cmocka_unit_test(test_text_only_and_replace),
    };
    return cmocka_run_group_tests_name("analyzer", tests, NULL, NULL);
}
