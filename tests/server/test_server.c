/* tests/server/test_server.c: the pure part of the HTTP server — request bodies parsed and
 * validated (defaults, every sampling field, stop forms, malformed JSON with its position, wrong
 * types and ranges naming the field, refused parameters), chat templates (exact prompts for each
 * family; specials become ids, the same text inside a message does not), OpenAI's JSON shapes
 * and SSE framing, invalid UTF-8 made safe, and the Prometheus histogram text. The server
 * itself is driven over HTTP by tests/server/test_serve.sh. */
#include "test.h"

#include "server/server.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int parse(server_req *r, server_endpoint ep, const char *body, server_error *er) {
    memset(er, 0, sizeof *er);
    return server_req_parse(r, ep, body, strlen(body), er);
}

/* Asserts body fails with 400 naming param (NULL: none) and a message containing needle. */
static void expect_400(server_endpoint ep, const char *body, const char *param,
                       const char *needle) {
    server_req r;
    server_error er;
    if (parse(&r, ep, body, &er) == 0) fail_msg("accepted: %s", body);
    assert_int_equal(er.status, 400);
    assert_string_equal(er.type, "invalid_request_error");
    if (param)
        assert_string_equal(er.param, param);
    else
        assert_string_equal(er.param, "");
    if (!strstr(er.message, needle)) fail_msg("message '%s' lacks '%s'", er.message, needle);
}

static void test_parse_defaults(void **state) {
    server_req r;
    server_error er;
    assert_int_equal(parse(&r, SERVER_EP_COMPLETIONS, "{\"prompt\":\"hi\"}", &er), 0);
    assert_string_equal(r.prompt, "hi");
    assert_null(r.model);
    assert_true(r.sp.temperature == 1.0f && r.sp.top_p == 1.0f); /* OpenAI's, not llama.cpp's */
    assert_true(r.sp.top_k == 0 && r.sp.min_p == 0.0f && r.sp.repeat_penalty == 1.0f);
    assert_int_equal(r.sp.max_tokens, 16); /* OpenAI's completions default */
    assert_int_equal(r.sp.n_stop, 0);
    assert_false(r.stream || r.seed_set || r.max_tokens_set);
    server_req_free(&r);
    server_req_free(&r); /* safe twice */
    assert_int_equal(parse(&r, SERVER_EP_CHAT,
                           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                           &er),
                     0);
    assert_int_equal(r.sp.max_tokens, 0); /* chat: until the context is full */
    assert_string_equal(r.model, "m");
    server_req_free(&r);
}

static void test_parse_fields(void **state) {
    server_req r;
    server_error er;
    const char *body = "{\"model\":\"tiny\",\"prompt\":\"a\",\"temperature\":0.5,\"top_p\":0.9,"
                       "\"top_k\":40,\"min_p\":0.05,\"repetition_penalty\":1.1,\"seed\":-3,"
                       "\"max_completion_tokens\":7,\"stop\":[\"\\n\",\"END\"],\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"n\":1,\"user\":\"u\","
                       "\"frequency_penalty\":0,\"logprobs\":null,"
                       "\"response_format\":{\"type\":\"text\"}}";
    assert_int_equal(parse(&r, SERVER_EP_COMPLETIONS, body, &er), 0);
    assert_true(r.sp.temperature == 0.5f && r.sp.top_p == 0.9f && r.sp.min_p == 0.05f);
    assert_int_equal(r.sp.top_k, 40);
    assert_true(r.sp.repeat_penalty == 1.1f);
    assert_int_equal(r.sp.seed, (uint64_t)-3);
    assert_true(r.seed_set && r.max_tokens_set && r.stream && r.include_usage);
    assert_int_equal(r.sp.max_tokens, 7);
    assert_int_equal(r.sp.n_stop, 2);
    assert_string_equal(r.sp.stop[0], "\n");
    assert_string_equal(r.sp.stop[1], "END");
    server_req_free(&r);
    /* stop as one string; prompt as [string] or as token ids */
    assert_int_equal(parse(&r, SERVER_EP_COMPLETIONS, "{\"prompt\":[\"p\"],\"stop\":\"x\"}", &er),
                     0);
    assert_string_equal(r.prompt, "p");
    assert_int_equal(r.sp.n_stop, 1);
    assert_string_equal(r.sp.stop[0], "x");
    server_req_free(&r);
    assert_int_equal(parse(&r, SERVER_EP_COMPLETIONS, "{\"prompt\":[5,0,255]}", &er), 0);
    assert_null(r.prompt);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 255);
    server_req_free(&r);
    /* chat: developer is system; content parts are joined */
    assert_int_equal(parse(&r, SERVER_EP_CHAT,
                           "{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                           "{\"type\":\"text\",\"text\":\"b\"}]}]}",
                           &er),
                     0);
    assert_int_equal(r.n_msgs, 2);
    assert_string_equal(r.msgs[0].role, "system");
    assert_string_equal(r.msgs[1].content, "ab");
    server_req_free(&r);
}

static void test_parse_errors(void **state) {
    const server_endpoint C = SERVER_EP_COMPLETIONS, H = SERVER_EP_CHAT;
    expect_400(C, "{\"prompt\": \"a\",", NULL, "line 1, column 15");
    expect_400(C, "", NULL, "not valid JSON");
    expect_400(C, "[1]", NULL, "must be a JSON object, got an array");
    expect_400(C, "{\"prompt\":\"a\",\"prompt\":\"b\"}", NULL, "duplicate");
    expect_400(C, "{}", "prompt", "'prompt' is required");
    expect_400(C, "{\"prompt\":3}", "prompt", "got an integer");
    expect_400(C, "{\"prompt\":[1,-2]}", "prompt", "item 1 is not a token id");
    expect_400(C, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature",
               "must be a number, got a string");
    expect_400(C, "{\"prompt\":\"a\",\"temperature\":3}", "temperature", "in [0, 2], got 3");
    expect_400(C, "{\"prompt\":\"a\",\"top_p\":0}", "top_p", "(0, 1]");
    expect_400(C, "{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens", "in [1,");
    expect_400(C, "{\"prompt\":\"a\",\"max_tokens\":2.5}", "max_tokens",
               "must be an integer, got a number");
    expect_400(C, "{\"prompt\":\"a\",\"seed\":\"x\"}", "seed", "must be an integer");
    expect_400(C, "{\"prompt\":\"a\",\"stream\":1}", "stream", "must be a boolean");
    expect_400(C, "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop",
               "at most 4");
    expect_400(C, "{\"prompt\":\"a\",\"stop\":[\"a\",7]}", "stop", "item 1 is an integer");
    expect_400(C, "{\"prompt\":\"a\",\"stop\":\"\"}", "stop", "must not be empty");
    expect_400(C, "{\"prompt\":\"a\",\"n\":2}", "n", "only n = 1");
    expect_400(C, "{\"prompt\":\"a\",\"frequency_penalty\":0.5}", "frequency_penalty", "additive");
    expect_400(C, "{\"prompt\":\"a\",\"logprobs\":3}", "logprobs", "not supported");
    expect_400(C, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}",
               "stream_options", "only allowed when 'stream' is true");
    expect_400(C, "{\"prompt\":\"a\",\"model\":5}", "model", "must be a string");
    expect_400(H,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"response_format\":{\"type\":\"json_object\"}}",
               "response_format", "type 'json_object' is not supported");
    expect_400(H,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\"}}}",
               "response_format", "type 'json_schema' is not supported");
    expect_400(C, "{\"prompt\":\"a\",\"response_format\":\"json\"}", "response_format",
               "must be an object");
    expect_400(H, "{\"messages\":[]}", "messages", "must not be empty");
    expect_400(H, "{\"messages\":{}}", "messages", "must be an array, got an object");
    expect_400(H, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages",
               "messages[0].role 'tool'");
    expect_400(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\"}]}",
               "messages", "messages[1].content is required");
    expect_400(H, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
               "messages", "messages[0].content[0]");
}

static void test_error_json(void **state) {
    server_error er;
    assert_int_equal(server_fail(&er, 404, "model", "model_not_found", "no %s", "x"), -1);
    char *s = server_error_json(&er);
    assert_string_equal(s, "{\"error\":{\"message\":\"no x\",\"type\":\"invalid_request_error\","
                           "\"param\":\"model\",\"code\":\"model_not_found\"}}");
    free(s);
    server_fail(&er, 503, NULL, NULL, "bad byte \xff here");
    s = server_error_json(&er);
    assert_string_equal(s, "{\"error\":{\"message\":\"bad byte \xEF\xBF\xBD here\",\"type\":"
                           "\"server_error\",\"param\":null,\"code\":null}}");
    free(s);
    server_fail(&er, 429, NULL, "queue_full", "full");
    assert_string_equal(er.type, "rate_limit_error");
    /* the /api/v2 routes answer the HTTP layer's own errors in Chroma's shape */
    const struct {
        int status;
        const char *json;
    } chroma[] = {
        {400, "{\"error\":\"InvalidArgumentError\",\"message\":\"m \xEF\xBF\xBD\"}"},
        {401, "{\"error\":\"AuthorizationError\",\"message\":\"m \xEF\xBF\xBD\"}"},
        {404, "{\"error\":\"NotFoundError\",\"message\":\"m \xEF\xBF\xBD\"}"},
        {405, "{\"error\":\"MethodNotAllowed\",\"message\":\"m \xEF\xBF\xBD\"}"},
        {413, "{\"error\":\"RequestTooLargeError\",\"message\":\"m \xEF\xBF\xBD\"}"},
        {500, "{\"error\":\"InternalError\",\"message\":\"m \xEF\xBF\xBD\"}"},
    };
    for (size_t i = 0; i < sizeof chroma / sizeof chroma[0]; i++) {
        server_fail(&er, chroma[i].status, "x", "code", "m \xff");
        s = server_error_json_chroma(&er);
        assert_string_equal(s, chroma[i].json);
        free(s);
    }
}

static void test_utf8_clean(void **state) {
    struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"caf\xC3\xA9 \xF0\x9F\x98\x80", 10, "caf\xC3\xA9 \xF0\x9F\x98\x80"},
        {"a\xff"
         "b",
         3,
         "a\xEF\xBF\xBD"
         "b"},
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong '/' */
        {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate */
        {"x\xE2\x82", 3, "x\xEF\xBF\xBD\xEF\xBF\xBD"},               /* truncated at the end */
        {"n\0ul", 4, "n\xEF\xBF\xBDul"},                             /* NUL would end a C string */
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        base_buf b = {0};
        server_utf8_clean(&b, cases[i].in, cases[i].n);
        assert_non_null(b.data);
        assert_string_equal(b.data, cases[i].out);
        base_buf_free(&b);
    }
}

/* ---- chat templates */

static server_msg M(const char *role, const char *content) {
    return (server_msg){(char *)role, (char *)content};
}

static void expect_render(server_tmpl t, const server_msg *m, size_t n, const char *want) {
    base_buf b = {0};
    assert_int_equal(server_chat_render(t, m, n, &b), 0);
    assert_string_equal(b.data, want);
    base_buf_free(&b);
}

static void test_templates(void **state) {
    server_msg conv[] = {M("system", "Be brief."), M("user", "Hi"), M("assistant", "Hello."),
                         M("user", "Why?")};
    expect_render(SERVER_TMPL_HEARTH, conv, 4,
                  "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Why?\nAssistant:");
    /* llama.cpp's llama2 has no <<SYS>>: the system prompt opens the first turn */
    expect_render(SERVER_TMPL_LLAMA2, conv, 4,
                  "[INST] Be brief.\nHi [/INST]Hello.</s>[INST] Why? [/INST]");
    expect_render(SERVER_TMPL_CHATML, conv, 4,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* Gemma has no system turn: it is merged into the first user turn */
    expect_render(SERVER_TMPL_GEMMA, conv, 2,
                  "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");

    server_tmpl t;
    assert_int_equal(server_tmpl_parse("chatml", &t), 0);
    assert_int_equal(t, SERVER_TMPL_CHATML);
    assert_int_equal(server_tmpl_parse("llama3", &t), 0);
    assert_int_equal(t, SERVER_TMPL_LLAMA3);
    assert_int_equal(server_tmpl_parse("alpaca", &t), -1);
    assert_non_null(strstr(server_tmpl_names(), "mistral-v7"));
    assert_int_equal(server_tmpl_default(NN_GPT2, TOK_KIND_BPE), SERVER_TMPL_HEARTH);
    assert_int_equal(server_tmpl_default(NN_LLAMA, TOK_KIND_BPE), SERVER_TMPL_HEARTH);
    assert_int_equal(server_tmpl_default(NN_LLAMA, TOK_KIND_SPM), SERVER_TMPL_LLAMA2);
    assert_string_equal(server_tmpl_stop(SERVER_TMPL_HEARTH), "\nUser:");
    /* the template a model gets: its own recognized, else llama.cpp's fallback (chatml) for
     * a GGUF (reported), else hearth's choice */
    int unknown;
    assert_int_equal(
        server_tmpl_for_model("{{ '<start_of_turn>' }}", 1, NN_LLAMA, TOK_KIND_SPM, &unknown),
        SERVER_TMPL_GEMMA);
    assert_int_equal(unknown, 0);
    assert_int_equal(server_tmpl_for_model("{{ alpaca }}", 1, NN_LLAMA, TOK_KIND_SPM, &unknown),
                     SERVER_TMPL_CHATML);
    assert_int_equal(unknown, 1);
    assert_int_equal(server_tmpl_for_model(NULL, 1, NN_LLAMA, TOK_KIND_SPM, &unknown),
                     SERVER_TMPL_CHATML);
    assert_int_equal(unknown, 0);
    assert_int_equal(server_tmpl_for_model(NULL, 0, NN_GPT2, TOK_KIND_BPE, &unknown),
                     SERVER_TMPL_HEARTH);
}

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

/* Every template, by name and as real models' Jinja text (tests/fixtures/chat-templates, from
 * llama.cpp's models/templates), recognized and rendered byte for byte as llama.cpp's
 * llama_chat_apply_template does (expected.jsonl, recorded by tools/chat_template_fixtures.py
 * from llama.cpp's libllama), with and without the generation prompt; a template llama.cpp
 * does not know, hearth does not either. */
static void test_templates_llamacpp(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/chat-templates/expected.jsonl", test_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, rendered = 0, fails = 0, seen[SERVER_TMPL_COUNT] = {0};
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        assert_non_null(o);
        const char *name = json_string_value(json_object_get(o, "template"));
        const char *file = json_string_value(json_object_get(o, "file"));
        const char *text = json_string_value(json_object_get(o, "text"));
        json_t *want = json_object_get(o, "rendered"), *msgs = json_object_get(o, "messages");
        char *ftext = NULL;
        if (file) {
            char fp[600];
            snprintf(fp, sizeof fp, "%s/fixtures/chat-templates/%s", test_dir(), file);
            assert_non_null(ftext = slurp_text(fp));
            text = ftext;
        }
        server_tmpl t;
        int known = name ? server_tmpl_parse(name, &t) == 0 : server_tmpl_detect(text, &t) == 0;
        n++;
        if (!json_is_string(want)) {
            if (known) {
                print_message("%s: hearth knows it as %s, llama.cpp does not\n",
                              name   ? name
                              : file ? file
                                     : text,
                              server_tmpl_name(t));
                fails++;
            }
        } else if (!known) {
            print_message("%s: not recognized\n", name ? name : file ? file : text);
            fails++;
        } else {
            server_msg m[8];
            size_t nm = json_array_size(msgs);
            assert_true(nm <= 8);
            for (size_t i = 0; i < nm; i++) {
                json_t *p = json_array_get(msgs, i);
                m[i] = M(json_string_value(json_array_get(p, 0)),
                         json_string_value(json_array_get(p, 1)));
            }
            base_buf b = {0};
            int add_ass = (int)json_integer_value(json_object_get(o, "add_ass"));
            assert_int_equal(server_chat_render_ex(t, m, nm, add_ass, &b), 0);
            const char *w = json_string_value(want);
            size_t wl = json_string_length(want);
            if (b.len != wl || (wl && memcmp(b.data, w, wl) != 0)) {
                print_message("%s (%s), add_ass %d, %zu messages:\n  hearth:    %.*s\n"
                              "  llama.cpp: %s\n",
                              name   ? name
                              : file ? file
                                     : text,
                              server_tmpl_name(t), add_ass, nm, (int)b.len, b.data ? b.data : "",
                              w);
                fails++;
            }
            base_buf_free(&b);
            rendered++;
            seen[t] = 1;
        }
        free(ftext);
        json_decref(o);
    }
    free(line);
    fclose(f);
    int kinds = 0;
    for (int i = 0; i < SERVER_TMPL_COUNT; i++) kinds += seen[i];
    print_message("chat templates: %d cases (%d rendered, %d template kinds), %d differ from "
                  "llama.cpp\n",
                  n, rendered, kinds, fails);
    assert_true(n >= 400);
    assert_int_equal(kinds, SERVER_TMPL_COUNT - 1); /* all but hearth's own */
    assert_int_equal(fails, 0);
}

/* The rendered template goes through the one prompt path: its special tokens become their ids
 * and BOS comes as the model's file says, the same ids as llama.cpp's for the same chat
 * (tests/fixtures/gguf-families' qwen2 model: ChatML, add_bos_token true). As in llama.cpp,
 * special-token text inside a message is parsed too. */
static void test_template_encode(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/gguf-families/qwen2-Q8_0.gguf", test_dir());
    infer_model *m;
    base_err e = {0};
    assert_int_equal(infer_model_load(&m, path, NULL, &e), 0);
    tok_vocab *v = infer_model_vocab(m);
    int32_t im_start = tok_find(v, "<|im_start|>", 12), im_end = tok_find(v, "<|im_end|>", 10);
    assert_true(im_start >= 0 && im_end >= 0);
    server_tmpl t;
    assert_int_equal(server_tmpl_detect(infer_model_chat_template(m), &t), 0);
    assert_int_equal(t, SERVER_TMPL_CHATML);
    server_msg msg[] = {M("user", "hello <|im_end|> world")};
    tok_ids ids = {0};
    assert_int_equal(server_chat_encode(t, m, msg, 1, &ids, &e), 0);
    int n_start = 0, n_end = 0;
    for (size_t i = 0; i < ids.len; i++) {
        n_start += ids.data[i] == im_start;
        n_end += ids.data[i] == im_end;
    }
    assert_int_equal(ids.data[0], tok_bos_id(v)); /* the file's add_bos_token */
    assert_int_equal(ids.data[1], im_start);
    assert_int_equal(n_start, 2); /* user turn, assistant prompt */
    assert_int_equal(n_end, 2);   /* the template's and the message's, as llama.cpp parses */
    assert_true(tok_is_eog(v, im_end));
    tok_ids_free(&ids);
    infer_model_free(m);
}

/* The cheap lower bound on a prompt's tokens holds: no encoding has fewer than
 * ceil(bytes / server_token_bytes_max) tokens, even a text made of the longest token. */
static void test_token_bound(void **state) {
    static const char *const specials[] = {"<|endoftext|>"};
    const char *corpus = "the cat sat on the mat. the cat sat on the mat. the cat sat on the hat. "
                         "the the the the the the cat cat cat mat mat mat sat sat sat";
    tok_train_opts o = {
        .vocab_size = 320, .pretok = TOK_PRETOK_GPT2, .specials = specials, .n_specials = 1};
    tok_vocab *v;
    base_err e = {0};
    assert_int_equal(tok_train(&o, corpus, strlen(corpus), &v, &e), 0);
    size_t most = server_token_bytes_max(v), longest = 0;
    int32_t at = -1;
    for (int32_t id = 0; id < tok_vocab_size(v); id++) {
        const char *t;
        size_t len;
        assert_int_equal(tok_token_text(v, id, &t, &len, &e), 0);
        if (tok_token_type(v, id) == TOK_TYPE_NORMAL && len > longest) longest = len, at = id;
    }
    assert_true(most >= longest && longest > 1); /* the special's text counts too */
    const char *t;
    size_t len;
    tok_token_text(v, at, &t, &len, &e);
    base_buf b = {0};
    for (int i = 0; i < 50; i++) base_buf_append(&b, t, len); /* the best case for the bound */
    const char *texts[] = {corpus, "x", "\xff\xfe invalid \xc3", b.data,
                           "<|endoftext|> is text here"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t n = texts[i] == b.data ? b.len : strlen(texts[i]);
        tok_ids ids = {0};
        assert_int_equal(tok_encode(v, texts[i], n, 0, &ids, &e), 0);
        if (ids.len < (n + most - 1) / most)
            fail_msg("text %zu: %zu bytes in %zu tokens, under the bound", i, n, ids.len);
        tok_ids_free(&ids);
    }
    base_buf_free(&b);
    tok_free(v);
}

/* ---- response shapes */

static json_t *load(char *s) {
    assert_non_null(s);
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    if (!o) fail_msg("bad JSON %s: %s", s, je.text);
    free(s);
    return o;
}

static void test_json_shapes(void **state) {
    server_meta chat = {SERVER_EP_CHAT, "chatcmpl-1", "tiny", 1700000000};
    server_meta cmpl = {SERVER_EP_COMPLETIONS, "cmpl-1", "tiny", 1700000000};
    json_t *o = load(server_json_response(&chat, "hi \xff", 4, INFER_FINISH_LENGTH, 5, 3));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion");
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    json_t *msg = json_object_get(c0, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "hi \xEF\xBF\xBD");
    json_t *u = json_object_get(o, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 8);
    json_decref(o);

    o = load(server_json_response(&cmpl, "abc", 3, INFER_FINISH_STOP, 1, 2));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "text_completion");
    c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "text")), "abc");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_decref(o);

    /* stream chunks: role first, then content, then the empty delta with the finish reason */
    o = load(server_json_chunk(&chat, 1, "", 0, NULL, 0));
    assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion.chunk");
    c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c0, "delta"), "role")),
                        "assistant");
    assert_true(json_is_null(json_object_get(c0, "finish_reason")));
    assert_null(json_object_get(o, "usage"));
    json_decref(o);
    o = load(server_json_chunk(&chat, 0, NULL, 0, "stop", 1));
    c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_int_equal(json_object_size(json_object_get(c0, "delta")), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    assert_true(json_is_null(json_object_get(o, "usage")));
    json_decref(o);
    o = load(server_json_chunk(&cmpl, 0, "xy", 2, NULL, 0));
    c0 = json_array_get(json_object_get(o, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(o, "object")), "text_completion");
    assert_string_equal(json_string_value(json_object_get(c0, "text")), "xy");
    json_decref(o);
    o = load(server_json_usage_chunk(&chat, 4, 6));
    assert_int_equal(json_array_size(json_object_get(o, "choices")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "usage"), "completion_tokens")), 6);
    json_decref(o);

    base_buf b = {0};
    server_sse_event(&b, "{\"a\":1}");
    server_sse_comment(&b, "keep-alive");
    server_sse_event(&b, "[DONE]");
    assert_string_equal(b.data, "data: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n");
    base_buf_free(&b);
}

/* ---- metrics */

static void test_histogram_text(void **state) {
    static const double le[] = {0.1, 0.5, 1};
    server_hist h;
    server_hist_init(&h, le, 3);
    const double obs[] = {0.05, 0.1, 0.3, 0.7, 2, 5};
    for (int i = 0; i < 6; i++) server_hist_observe(&h, obs[i]);
    base_buf b = {0};
    server_hist_text(&h, "x_seconds", "Help.", &b);
    assert_string_equal(b.data, "# HELP x_seconds Help.\n# TYPE x_seconds histogram\n"
                                "x_seconds_bucket{le=\"0.1\"} 2\n" /* le is inclusive */
                                "x_seconds_bucket{le=\"0.5\"} 3\n"
                                "x_seconds_bucket{le=\"1\"} 4\n"
                                "x_seconds_bucket{le=\"+Inf\"} 6\n"
                                "x_seconds_sum 8.15\nx_seconds_count 6\n");
    base_buf_free(&b);

    server_metrics m;
    server_metrics_init(&m);
    server_hist_observe(&m.ttft, 0.02);
    m.requests[200] = 3;
    m.requests[429] = 1;
    m.prompt_tokens = 11;
    server_metrics_text(&m, 2, 5, 4, &b);
    const char *want[] = {"hearth_time_to_first_token_seconds_bucket{le=\"0.02\"} 1\n",
                          "hearth_time_to_first_token_seconds_count 1\n",
                          "# TYPE hearth_inter_token_latency_seconds histogram\n",
                          "hearth_e2e_request_latency_seconds_bucket{le=\"+Inf\"} 0\n",
                          "hearth_queue_wait_seconds_count 0\n",
                          "hearth_prompt_tokens_total 11\n",
                          "hearth_generation_tokens_total 0\n",
                          "hearth_requests_total{code=\"200\"} 3\n",
                          "hearth_requests_total{code=\"429\"} 1\n",
                          "hearth_slots_busy 2\n",
                          "hearth_slots_total 4\n",
                          "hearth_queue_depth 5\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(b.data, want[i])) fail_msg("metrics lack %s", want[i]);
    assert_null(strstr(b.data, "code=\"404\""));
    base_buf_free(&b);
}

int test_server(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_defaults),     cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_errors),       cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_utf8_clean),         cmocka_unit_test(test_templates),
        cmocka_unit_test(test_templates_llamacpp), cmocka_unit_test(test_template_encode),
        cmocka_unit_test(test_token_bound),        cmocka_unit_test(test_json_shapes),
        cmocka_unit_test(test_histogram_text),
    };
    return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
