/* tests/embed/test_embed.c: the embed module. WordPiece ids against Hugging Face's tokenizer
 * (fixture from tools/embed_wordpiece_ref.mjs over all-MiniLM-L6-v2's vocabulary); vectors
 * against llama.cpp's llama-embedding on a random-weight BERT GGUF (tools/gguf_random_bert.py,
 * tools/embed_llama_ref.sh) and against a PyTorch forward on a Hugging Face directory
 * (tools/embed_torch_ref.py); batching, truncation, thread counts and bad input. */
#include "test.h"

#include "embed/embed_int.h"
#include "tensor/tensor.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load_json(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/embed/%s", test_dir(), name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) fail_msg("%s: %s", p, je.text);
    return j;
}

/* all-MiniLM-L6-v2's vocabulary from its vocab.txt (json 0) or its tokenizer.json (json 1). */
static void load_vocab(embed_wp *w, int json) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/embed/minilm_%s", test_dir(),
             json ? "tokenizer.json" : "vocab.txt");
    base_err e = {0};
    memset(w, 0, sizeof *w);
    int rc = json ? embed_wp_load_tokenizer_json(w, p, &e) : embed_wp_load_vocab_txt(w, p, &e);
    if (rc || embed_wp_find_specials(w, p, &e)) fail_msg("%s", e.msg);
}

static void wordpiece_hf(int json);

/* Every text of the fixture gives exactly Hugging Face's ids ([CLS] ... [SEP]), the vocabulary
 * and options read from vocab.txt (BERT's defaults) and from tokenizer.json (its normalizer's
 * options, its special tokens). */
static void test_wordpiece_hf(void **state) {
    (void)state;
    wordpiece_hf(0);
    wordpiece_hf(1);
}

static void wordpiece_hf(int json) {
    embed_wp w;
    load_vocab(&w, json);
    assert_int_equal(w.n, 30522);
    assert_true(w.lowercase && w.strip_accents && w.chinese_chars && w.clean_text);
    assert_int_equal(w.max_chars, 100);
    json_t *fx = load_json("wordpiece.json"), *cases = json_object_get(fx, "cases"), *c;
    assert_true(json_array_size(cases) >= 15);
    size_t i;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        base_err e = {0};
        assert_int_equal(embed_wp_encode(&w, text, strlen(text), &ids, &n, &cap, &e), 0);
        int ok = n + 2 == json_array_size(want) &&
                 json_integer_value(json_array_get(want, 0)) == w.cls &&
                 json_integer_value(json_array_get(want, n + 1)) == w.sep;
        for (size_t k = 0; ok && k < n; k++)
            ok = json_integer_value(json_array_get(want, k + 1)) == ids[k];
        if (!ok) {
            fprintf(stderr, "case %zu (%s): hearth", i, text);
            for (size_t k = 0; k < n; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n  hf");
            for (size_t k = 0; k < json_array_size(want); k++)
                fprintf(stderr, " %d", (int)json_integer_value(json_array_get(want, k)));
            fprintf(stderr, "\n");
        }
        free(ids);
        assert_true(ok);
    }
    json_decref(fx);
    embed_wp_free(&w);
}

static embed_model *load_model(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/embed/%s", test_dir(), name);
    base_err e = {0};
    embed_model *m = NULL;
    if (embed_model_load(&m, p, &e)) fail_msg("%s", e.msg);
    return m;
}

static double cosine(const float *a, const double *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

static double *json_vec(json_t *a, int n) {
    assert_int_equal(json_array_size(a), n);
    double *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = json_number_value(json_array_get(a, (size_t)i));
    return v;
}

/* The GGUF file against llama-embedding: every text's vector at cosine >= 0.9999, embedded as
 * one batch and one by one, on 1 and 2 threads; the batch does not change a text's vector. */
static void test_gguf_llama(void **state) {
    (void)state;
    embed_model *m = load_model("bert_tiny.gguf");
    assert_int_equal(embed_dim(m), 64);
    assert_int_equal(embed_max_tokens(m), 64);
    assert_int_equal(embed_pooling_of(m), EMBED_POOL_MEAN);
    assert_string_equal(embed_model_name(m), "random-bert-tiny");
    json_t *fx = load_json("bert_tiny_llama.json"), *cases = json_object_get(fx, "cases");
    size_t n = json_array_size(cases);
    assert_true(n >= 8);
    const char **texts = calloc(n, sizeof *texts);
    for (size_t i = 0; i < n; i++)
        texts[i] = json_string_value(json_object_get(json_array_get(cases, i), "text"));
    float *all = malloc(n * 64 * sizeof *all), *one = malloc(64 * sizeof *one);
    base_err e = {0};
    int threads0 = tensor_threads();
    for (int th = 1; th <= 2; th++) {
        tensor_set_threads(th);
        assert_int_equal(embed_texts(m, texts, NULL, n, 0, all, &e), 0);
        for (size_t i = 0; i < n; i++) {
            double *ref = json_vec(json_object_get(json_array_get(cases, i), "embedding"), 64);
            double c = cosine(all + i * 64, ref, 64);
            if (c < 0.9999) fprintf(stderr, "text %zu (%s): cosine %.6f\n", i, texts[i], c);
            assert_true(c >= 0.9999);
            assert_int_equal(embed_texts(m, texts + i, NULL, 1, 0, one, &e), 0);
            assert_close(one, all + i * 64, 64, 1e-5, "alone vs in the batch");
            double nn = 0;
            for (int k = 0; k < 64; k++) nn += (double)one[k] * one[k];
            assert_true(fabs(nn - 1) < 1e-5);
            free(ref);
        }
    }
    tensor_set_threads(threads0);
    free(all);
    free(one);
    free(texts);
    json_decref(fx);
    embed_model_free(m);
}

/* The Hugging Face directory (safetensors, vocab.txt, CLS pooling, max_seq_length 48) against
 * PyTorch: sequences of 2..48 ids in one batch, cosine >= 0.9999 and each value within 2e-6 (the
 * tanh GELU would miss it). */
static void test_hf_torch(void **state) {
    (void)state;
    embed_model *m = load_model("hf_tiny");
    assert_int_equal(embed_dim(m), 32);
    assert_int_equal(embed_max_tokens(m), 48);
    assert_int_equal(embed_pooling_of(m), EMBED_POOL_CLS);
    assert_int_equal(embed_vocab_size(m), 8000);
    json_t *fx = load_json("hf_tiny_torch.json"), *cases = json_object_get(fx, "cases");
    size_t n = json_array_size(cases);
    assert_true(n >= 5);
    int32_t **ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_object_get(json_array_get(cases, i), "ids");
        lens[i] = json_array_size(a);
        ids[i] = malloc(lens[i] * sizeof **ids);
        for (size_t k = 0; k < lens[i]; k++)
            ids[i][k] = (int32_t)json_integer_value(json_array_get(a, k));
    }
    float *out = malloc(n * 32 * sizeof *out);
    base_err e = {0};
    assert_int_equal(embed_tokens(m, (const int32_t *const *)ids, lens, n, out, &e), 0);
    for (size_t i = 0; i < n; i++) {
        double *ref = json_vec(json_object_get(json_array_get(cases, i), "embedding"), 32);
        double c = cosine(out + i * 32, ref, 32), md = 0;
        for (int k = 0; k < 32; k++) md = fmax(md, fabs(out[i * 32 + k] - ref[k]));
        if (getenv("HEARTH_EMBED_VERBOSE") || c < 0.9999 || md > 2e-6)
            fprintf(stderr, "sequence %zu: cosine %.7f, max diff %.2g\n", i, c, md);
        assert_true(c >= 0.9999 && md <= 2e-6);
        free(ref);
    }
    /* the same vocabulary through the text path: [CLS] ... [SEP], truncation keeps [SEP] */
    int32_t *t;
    size_t nt;
    assert_int_equal(embed_tokenize(m, "Hello, world!", 13, 0, &t, &nt, &e), 0);
    assert_int_equal(nt, 6);
    assert_int_equal(t[0], 101);
    assert_int_equal(t[1], 7592);
    assert_int_equal(t[5], 102);
    free(t);
    char longtext[4000] = "";
    for (int i = 0; i < 200; i++) strcat(longtext, "the cat ");
    size_t cnt;
    assert_int_equal(embed_count_tokens(m, longtext, strlen(longtext), &cnt, &e), 0);
    assert_int_equal(cnt, 402);
    assert_int_equal(embed_tokenize(m, longtext, strlen(longtext), 1, &t, &nt, &e), 0);
    assert_int_equal(nt, 48);
    assert_int_equal(t[47], 102);
    free(t);
    const char *two[] = {"short", longtext};
    assert_int_equal(embed_texts(m, two, NULL, 2, 0, out, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "input 1 has 402 tokens"));
    assert_int_equal(embed_texts(m, two, NULL, 2, 1, out, &e), 0);
    /* bad ids: out of the vocabulary, empty, too long */
    int32_t bad[] = {101, 8000, 102};
    const int32_t *bp = bad;
    size_t bl = 3;
    assert_int_equal(embed_tokens(m, &bp, &bl, 1, out, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "outside the vocabulary"));
    bl = 0;
    assert_int_equal(embed_tokens(m, &bp, &bl, 1, out, &e), BASE_EINVAL);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(out);
    json_decref(fx);
    embed_model_free(m);
}

/* Files that are not embedding models are refused with a message naming them. */
static void test_bad_models(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth_embed_XXXXXX", p[1200];
    assert_non_null(mkdtemp(dir));
    base_err e = {0};
    embed_model *m = NULL;
    snprintf(p, sizeof p, "%s/fixtures/embed/minilm_vocab.txt", test_dir());
    assert_int_equal(embed_model_load(&m, p, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "not an embedding model"));
    assert_null(m);
    assert_int_equal(embed_model_load(&m, dir, &e), BASE_EIO); /* no config.json */
    assert_non_null(strstr(e.msg, "config.json"));
    /* a truncated GGUF */
    char *data;
    size_t len;
    snprintf(p, sizeof p, "%s/fixtures/embed/bert_tiny.gguf", test_dir());
    assert_int_equal(base_read_file(p, &data, &len, &e), 0);
    snprintf(p, sizeof p, "%s/cut.gguf", dir);
    assert_int_equal(base_write_atomic(p, data, len - 1000, &e), 0);
    assert_true(embed_model_load(&m, p, &e) < 0);
    assert_null(m);
    free(data);
    /* a config without hidden_size, and one of another model type */
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *c1 = "{\"model_type\":\"bert\",\"num_hidden_layers\":2}";
    assert_int_equal(base_write_atomic(p, c1, strlen(c1), &e), 0);
    assert_int_equal(embed_model_load(&m, dir, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "hidden_size"));
    const char *c2 = "{\"model_type\":\"roberta\"}";
    assert_int_equal(base_write_atomic(p, c2, strlen(c2), &e), 0);
    assert_int_equal(embed_model_load(&m, dir, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "roberta"));
    test_rm_rf(dir);
}

int test_embedding(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordpiece_hf),
        cmocka_unit_test(test_gguf_llama),
        cmocka_unit_test(test_hf_torch),
        cmocka_unit_test(test_bad_models),
    };
    return cmocka_run_group_tests_name("embed", tests, NULL, NULL);
}
