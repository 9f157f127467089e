/* tests/rag/test_rag.c: src/rag on generated documents. Parsing (Markdown, HTML, plain text,
 * JSONL; what is dropped and what is kept), the chunker (budget, headings and pages as
 * boundaries, heading paths, overlap within a section, exact offsets), citations, the prompt
 * within its budget, retrieval with a floor, and the retrieval metrics against a hand
 * computation. (PDF and DOCX: tests/cli/test_rag.sh, which makes them with real tools.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rag/rag.h"
#include "test.h"

static void parse_str(const char *path, const char *s, rag_doc *d) {
    base_err e = {0};
    if (rag_parse(path, s, strlen(s), NULL, d, &e)) fail_msg("parse %s: %s", path, e.msg);
}

static const char *block_text(const rag_doc *d, size_t i, char *buf, size_t n) {
    snprintf(buf, n, "%.*s", (int)(d->blocks[i].end - d->blocks[i].start),
             d->text.data + d->blocks[i].start);
    return buf;
}

static void test_parse_formats(void **state) {
    (void)state;
    char b[256];
    rag_doc d;
    parse_str("a.md",
              "# Title here\n\nFirst *para*\ncontinues &amp; ends.\n\n## Sub\n\n- item one\n- item "
              "two\n\n```\ncode  block\n```\n",
              &d);
    assert_string_equal(d.format, "md");
    assert_string_equal(d.title, "Title here");
    assert_int_equal(d.n, 6);
    assert_int_equal(d.blocks[0].kind, RAG_BLOCK_HEADING);
    assert_int_equal(d.blocks[0].level, 1);
    assert_string_equal(block_text(&d, 1, b, sizeof b), "First para continues & ends.");
    assert_int_equal(d.blocks[2].level, 2);
    assert_string_equal(block_text(&d, 3, b, sizeof b), "item one");
    assert_string_equal(block_text(&d, 5, b, sizeof b), "code block");
    rag_doc_free(&d);

    parse_str("p.html",
              "<html><head><title>T</title><script>bad()</script><style>x{}</style></head><body>"
              "<nav>menu</nav><header>top</header><h1>Head</h1><p>Kept <b>bold</b> text.</p>"
              "<aside>side</aside><div>div text<p>inner</p></div><footer>bottom</footer></body>"
              "</html>",
              &d);
    assert_string_equal(d.format, "html");
    assert_string_equal(d.title, "T");
    assert_null(strstr(d.text.data, "bad()"));
    assert_null(strstr(d.text.data, "menu"));
    assert_null(strstr(d.text.data, "top"));
    assert_null(strstr(d.text.data, "bottom"));
    assert_null(strstr(d.text.data, "side"));
    assert_string_equal(block_text(&d, 0, b, sizeof b), "Head");
    assert_string_equal(block_text(&d, 1, b, sizeof b), "Kept bold text.");
    assert_string_equal(block_text(&d, 2, b, sizeof b), "div text");
    assert_string_equal(block_text(&d, 3, b, sizeof b), "inner");
    rag_doc_free(&d);

    parse_str("n.txt", "one line\nsame para\n\n  \nsecond   para\n", &d);
    assert_int_equal(d.n, 2);
    assert_string_equal(block_text(&d, 0, b, sizeof b), "one line same para");
    assert_string_equal(d.text.data, "one line same para\n\nsecond para");
    rag_doc_free(&d);

    parse_str("f.jsonl", "{\"title\":\"Q\",\"text\":\"answer\"}\n\n{\"text\":\"two\"}\n", &d);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.blocks[0].kind, RAG_BLOCK_HEADING);
    rag_doc_free(&d);
    base_err e = {0};
    const char *badj = "{\"text\":\"ok\"}\n{\"nope\":1}\n";
    assert_int_equal(rag_parse("g.jsonl", badj, strlen(badj), NULL, &d, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "g.jsonl:2"));
    const char bin[] = "ab\0cd";
    assert_int_equal(rag_parse("x.dat", bin, sizeof bin, NULL, &d, &e), BASE_EFORMAT);
    assert_int_equal(rag_parse("x.pdf", "%PDF-1.4 junk", 13, NULL, &d, &e), BASE_EFORMAT);
    assert_int_equal(rag_parse("x.docx", "PK\3\4junk", 8, NULL, &d, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "x.docx"));
}

/* A document of sections and paragraphs, some long. */
static void make_doc(rag_doc *d, base_rng *r) {
    base_buf md = {0};
    static const char *const words[] = {"alpha", "beta", "gamma", "delta", "omega", "kappa"};
    for (int s = 0; s < 4; s++) {
        base_buf_printf(&md, "# Section %d\n\n", s);
        for (int p = 0; p < 3; p++) {
            int sentences = 1 + (int)(base_rng_u64(r) % 12);
            for (int k = 0; k < sentences; k++) {
                int nw = 3 + (int)(base_rng_u64(r) % 15);
                for (int w = 0; w < nw; w++)
                    base_buf_printf(&md, "%s%s", w ? " " : "", words[base_rng_u64(r) % 6]);
                base_buf_printf(&md, ". ");
            }
            base_buf_printf(&md, "\n\n");
        }
    }
    parse_str("gen.md", md.data, d);
    base_buf_free(&md);
}

static void test_chunker(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 7);
    size_t overlaps = 0;
    for (int round = 0; round < 20; round++) {
        rag_doc d;
        make_doc(&d, &r);
        size_t budget = 16 + (size_t)(base_rng_u64(&r) % 64), overlap = budget / 4;
        rag_chunk_opts o = {budget, overlap, NULL, NULL};
        rag_chunk *c;
        size_t n;
        base_err e = {0};
        assert_int_equal(rag_chunk_doc(&d, &o, &c, &n, &e), 0);
        assert_true(n > 0);
        size_t covered_to = 0;
        for (size_t i = 0; i < n; i++) {
            /* within the budget (a chunk is one unit at least: one word may exceed it) */
            size_t tok = rag_count_default(NULL, d.text.data + c[i].start, c[i].end - c[i].start);
            char *sp = memchr(d.text.data + c[i].start, ' ', c[i].end - c[i].start);
            if (sp && tok > budget + budget / 8 + 2)
                fail_msg("chunk %zu has %zu tokens, budget %zu", i, tok, budget);
            /* a chunk holds one section: its heading path is that section's */
            char want[32];
            const char *sec = NULL;
            for (size_t b = 0; b < d.n; b++)
                if (d.blocks[b].kind == RAG_BLOCK_HEADING && d.blocks[b].start <= c[i].start)
                    sec = d.text.data + d.blocks[b].start;
            snprintf(want, sizeof want, "%.9s", sec);
            assert_non_null(c[i].heading);
            assert_string_equal(c[i].heading, want);
            size_t next_heading = d.text.len;
            for (size_t b = 0; b < d.n; b++)
                if (d.blocks[b].kind == RAG_BLOCK_HEADING && d.blocks[b].start > c[i].start) {
                    next_heading = d.blocks[b].start;
                    break;
                }
            assert_true(c[i].end <= next_heading);
            /* nothing is left out; chunks of one section overlap, across sections they do not */
            assert_true(c[i].start <= covered_to + 2);
            /* within a section: no gap, and at most `overlap` tokens repeated (whole units: a
             * last sentence longer than that is not repeated) */
            if (i > 0 && strcmp(c[i].heading, c[i - 1].heading) == 0) {
                assert_true(c[i].start <= c[i - 1].end + 2);
                if (c[i].start < c[i - 1].end) {
                    overlaps++;
                    assert_true(rag_count_default(NULL, d.text.data + c[i].start,
                                                  c[i - 1].end - c[i].start) <= overlap + 1);
                }
            }
            if (i > 0 && strcmp(c[i].heading, c[i - 1].heading) != 0)
                assert_true(c[i].start >= c[i - 1].end);
            if (c[i].end > covered_to) covered_to = c[i].end;
        }
        assert_int_equal(covered_to, d.text.len);
        rag_chunks_free(c, n);
        rag_doc_free(&d);
    }
    assert_true(overlaps > 20);
}

static void test_citations(void **state) {
    (void)state;
    bool cited[4];
    assert_int_equal(rag_citations("It is red [1] and big [2, 4][9]. See [x] [0].", 4, cited), 3);
    assert_true(cited[0] && cited[1] && !cited[2] && cited[3]);
    assert_int_equal(rag_citations("no citations", 4, cited), 0);
    assert_int_equal(rag_citations("[3][3] [1,3]", 4, cited), 2);
}

static void test_prompt(void **state) {
    (void)state;
    rag_source s[3] = {
        {.id = "a:0", .text = "The warranty ends in 2031.", .source = "/d/r.pdf", .page = 2},
        {.id = "b:0", .text = "Helmets are required.", .source = "/d/p.html", .heading = "Safety"},
        {.id = "c:0",
         .text = "filler filler filler filler filler filler filler"
                 " filler filler filler filler filler filler"}};
    rag_sources src = {s, 3, false};
    rag_prompt_out p;
    base_err e = {0};
    assert_int_equal(rag_prompt(&src, "When?", 100000, NULL, NULL, &p, &e), 0);
    assert_int_equal(p.used, 3);
    assert_non_null(strstr(p.system.data, "[1] (/d/r.pdf, page 2)\nThe warranty ends in 2031."));
    assert_non_null(strstr(p.system.data, "[2] (/d/p.html, \"Safety\")"));
    assert_string_equal(p.user.data, "When?");
    size_t full = rag_count_default(NULL, p.system.data, p.system.len);
    rag_prompt_free(&p);
    /* a budget that leaves out the last source */
    assert_int_equal(rag_prompt(&src, "When?", full - 20, NULL, NULL, &p, &e), 0);
    assert_true(p.used < 3 || strstr(p.system.data, " ...") != NULL);
    assert_true(rag_count_default(NULL, p.system.data, p.system.len) +
                    rag_count_default(NULL, "When?", 5) <=
                full - 20);
    rag_prompt_free(&p);
}

/* Writes s to dir/name; returns the path (static buffer per call site). */
static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_eval_and_retrieve(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-rag-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char corpus[128], queries[128], qrels[128], store[128];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", dir);
    snprintf(queries, sizeof queries, "%s/queries.jsonl", dir);
    snprintf(qrels, sizeof qrels, "%s/qrels.tsv", dir);
    snprintf(store, sizeof store, "%s/store", dir);
    write_file(corpus, "{\"_id\":\"1\",\"title\":\"cats\",\"text\":\"cats purr softly\"}\n"
                       "{\"_id\":\"2\",\"title\":\"\",\"text\":\"dogs bark at cats\"}\n"
                       "{\"_id\":3,\"text\":\"birds sing\"}\n");
    write_file(queries, "{\"_id\":\"q1\",\"text\":\"cats\"}\n{\"_id\":\"q2\",\"text\":\"birds\"}\n"
                        "{\"_id\":\"q3\",\"text\":\"unjudged\"}\n");
    /* q1: 2 is relevant (grade 2), 1 is not judged relevant; q2: 3 (grade 1) */
    write_file(qrels, "query-id\tcorpus-id\tscore\nq1\t2\t2\nq1\t1\t0\nq2\t3\t1\n");
    vstore *db;
    base_err e = {0};
    assert_int_equal(vstore_open(&db, store, &e), 0);
    vstore_coll c;
    assert_int_equal(vstore_coll_create(db, NULL, NULL, "eval", NULL, false, &c, &e), 0);
    size_t docs;
    assert_int_equal(rag_eval_load(db, c.id, corpus, NULL, NULL, &docs, &e), 0);
    assert_int_equal(docs, 3);
    rag_eval_metrics m;
    assert_int_equal(rag_eval_run(db, c.id, queries, qrels, NULL, &m, &e), 0);
    /* q1 ranks 1 ("cats" twice, shorter) then 2: the relevant one at rank 2; q2 at rank 1 */
    assert_int_equal(m.queries, 2);
    double q1 = (2 / log2(3)) / 2.0; /* DCG with the relevant doc at rank 2 over the ideal */
    assert_true(fabs(m.ndcg10 - (q1 + 1) / 2) < 1e-9);
    assert_true(fabs(m.map100 - (0.5 + 1) / 2) < 1e-9);
    assert_true(fabs(m.recall100 - 1) < 1e-9);
    /* a malformed qrels line names the file and line */
    write_file(qrels, "q1\t2\n");
    assert_int_equal(rag_eval_run(db, c.id, queries, qrels, NULL, &m, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "qrels.tsv:1"));

    /* retrieval: k, the floor, the metadata of the source */
    rag_sources s;
    rag_retrieve_opts o = {.k = 5};
    assert_int_equal(rag_retrieve(db, c.id, "cats", &o, &s, &e), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.s[0].id, "1");
    double top = s.s[0].score;
    rag_sources_free(&s);
    o.min_score = top - 1e-6;
    assert_int_equal(rag_retrieve(db, c.id, "cats", &o, &s, &e), 0);
    assert_int_equal(s.n, 1);
    rag_sources_free(&s);
    assert_int_equal(rag_retrieve(db, c.id, "zebra", &o, &s, &e), 0);
    assert_int_equal(s.n, 0);
    rag_sources_free(&s);
    assert_int_equal(rag_retrieve(db, c.id, "!!", &o, &s, &e), 0);
    assert_int_equal(s.n, 0);
    rag_sources_free(&s);
    vstore_coll_free(&c);
    vstore_close(db);
    test_rm_rf(dir);
}

int test_rag(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_formats),     cmocka_unit_test(test_chunker),
        cmocka_unit_test(test_citations),         cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_eval_and_retrieve),
    };
    return cmocka_run_group_tests_name("rag", tests, NULL, NULL);
}
