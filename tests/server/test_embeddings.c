/* tests/server/test_embeddings.c: POST /v1/embeddings as a pure function (server_embeddings)
 * on the committed random BERT: the response's shape, usage and vectors (float and base64 the
 * same bytes, token-id input = text input), and each malformed body's status, param and
 * message. */
#include "test.h"

#include "server/server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static server_embedder *open_tiny(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/embed/bert_tiny.gguf", test_dir());
    base_err e = {0};
    server_embedder *s = NULL;
    if (server_embedder_open(&s, p, NULL, &e)) fail_msg("%s", e.msg);
    return s;
}

static json_t *call(server_embedder *s, const char *body, int want_status) {
    int status = 0;
    char *resp = NULL;
    server_embeddings(s, body, strlen(body), &status, &resp);
    assert_non_null(resp);
    if (status != want_status) fprintf(stderr, "%s -> %d %s\n", body, status, resp);
    assert_int_equal(status, want_status);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    return j;
}

static const float *vec_of(json_t *j, size_t i, float *buf) {
    json_t *emb = json_object_get(json_array_get(json_object_get(j, "data"), i), "embedding");
    if (json_is_string(emb)) { /* base64 of little-endian float32 */
        static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *s = json_string_value(emb);
        unsigned char bytes[64 * 4 + 3];
        size_t nb = 0, len = strlen(s);
        assert_int_equal(len, (64 * 4 + 2) / 3 * 4);
        for (size_t k = 0; k < len; k += 4) {
            uint32_t x = 0;
            for (int q = 0; q < 4; q++)
                x = x << 6 | (s[k + q] == '=' ? 0 : (uint32_t)(strchr(a, s[k + q]) - a));
            bytes[nb++] = (unsigned char)(x >> 16);
            bytes[nb++] = (unsigned char)(x >> 8);
            bytes[nb++] = (unsigned char)x;
        }
        for (int k = 0; k < 64; k++) {
            uint32_t u = base_get_le32(bytes + 4 * k);
            memcpy(&buf[k], &u, 4);
        }
    } else {
        assert_int_equal(json_array_size(emb), 64);
        for (size_t k = 0; k < 64; k++) buf[k] = (float)json_number_value(json_array_get(emb, k));
    }
    return buf;
}

static void test_shape(void **state) {
    (void)state;
    server_embedder *s = open_tiny();
    assert_string_equal(server_embedder_id(s), "random-bert-tiny");
    json_t *j = call(s,
                     "{\"input\": [\"hello world, this is a test.\", \"a\"], \"model\": "
                     "\"random-bert-tiny\"}",
                     200);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "random-bert-tiny");
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(data, 1), "index")), 1);
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 13);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 13);
    float f[64], b[64], t[64];
    vec_of(j, 0, f);
    json_t *jb = call(s,
                      "{\"input\": \"hello world, this is a test.\", \"encoding_format\": "
                      "\"base64\"}",
                      200);
    vec_of(jb, 0, b);
    /* printed with 9 significant digits: the same float read back as the base64 bytes */
    assert_memory_equal(f, b, sizeof f);
    /* the same text as token ids ([CLS] hello world , this is a test . [SEP]) */
    json_t *jt =
        call(s, "{\"input\": [[101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1012, 102]]}", 200);
    assert_close(vec_of(jt, 0, t), f, 64, 1e-6, "token ids = text");
    json_decref(j);
    json_decref(jb);
    json_decref(jt);
    server_embedder_free(s);
}

static void test_errors(void **state) {
    (void)state;
    server_embedder *s = open_tiny();
    char *many = malloc(2049 * 4 + 32), *longtext = malloc(1024);
    strcpy(many, "{\"input\": [");
    for (int i = 0; i < 2049; i++) strcat(many, i ? ",\"x\"" : "\"x\"");
    strcat(many, "]}");
    strcpy(longtext, "{\"input\": [\"ok\", \"");
    for (int i = 0; i < 70; i++) strcat(longtext, "word ");
    strcat(longtext, "\"]}");
    const struct {
        const char *body;
        int status;
        const char *param, *msg;
    } cases[] = {
        {"{", 400, NULL, "not valid JSON"},
        {"[1]", 400, NULL, "must be a JSON object"},
        {"{}", 400, "input", "'input' is a required property"},
        {"{\"input\": 5}", 400, "input", "must be a string, an array"},
        {"{\"input\": \"\"}", 400, "input", "'input' is an empty string"},
        {"{\"input\": []}", 400, "input", "'input' is an empty array"},
        {"{\"input\": [\"a\", 3]}", 400, "input", "input[1] must be a string"},
        {"{\"input\": [\"a\", \"\"]}", 400, "input", "input[1] is an empty string"},
        {"{\"input\": [[101, 102], []]}", 400, "input", "input[1] is an empty token array"},
        {"{\"input\": [[101, 102], \"a\"]}", 400, "input", "input[1] must be an array"},
        {"{\"input\": [101, 30522]}", 400, "input", "input[1] is not a token id"},
        {"{\"input\": [[5], [-1]]}", 400, "input", "input[1][0] is not a token id"},
        {many, 400, "input", "has 2049 entries; at most 2048"},
        {longtext, 400, "input", "input[1] has 72 tokens; this model takes at most 64"},
        {"{\"input\": \"a\", \"model\": \"gpt\"}", 404, "model", "does not exist"},
        {"{\"input\": \"a\", \"model\": 1}", 400, "model", "must be a string"},
        {"{\"input\": \"a\", \"encoding_format\": \"int8\"}", 400, "encoding_format", "float"},
        {"{\"input\": \"a\", \"dimensions\": 32}", 400, "dimensions", "64 dimensions"},
        {"{\"input\": \"a\", \"temperature\": 1}", 400, "temperature", "Unrecognized"},
        {"{\"input\": \"a\", \"input\": \"b\"}", 400, NULL, "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = call(s, cases[i].body, cases[i].status);
        json_t *err = json_object_get(j, "error");
        const char *msg = json_string_value(json_object_get(err, "message"));
        const char *param = json_string_value(json_object_get(err, "param"));
        if (!msg || !strstr(msg, cases[i].msg) ||
            (cases[i].param ? !param || strcmp(param, cases[i].param) : param != NULL))
            fail_msg("case %zu: param %s message %s", i, param ? param : "null", msg ? msg : "?");
        json_decref(j);
    }
    free(many);
    free(longtext);
    server_embedder_free(s);
}

int test_server_embeddings(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("embeddings", tests, NULL, NULL);
}
