/* tools/llamacpp_ref.c: llama.cpp's answers, recorded for hearth's fixtures (built and run by
 * tools/gguf_parity_fixtures.sh and tools/chat_template_fixtures.sh against llama.cpp's
 * libllama; the tests then need no llama.cpp).
 *
 *   llamacpp_ref greedy MODEL N text|chat PROMPT
 *     the prompt's ids as llama_tokenize gives them (add_special, parse_special: what llama-cli
 *     and llama-server do), then N greedy tokens, end-of-generation tokens never chosen (as
 *     llama-cli --ignore-eos), one forward per token on one thread with a context of 256.
 *     chat: PROMPT is the one user message, rendered first by llama_chat_apply_template with the
 *     model's own tokenizer.chat_template (llama_model_chat_template) and the generation prompt.
 *     Prints two lines: the prompt ids, the generated ids (space-separated).
 *   llamacpp_ref template TEMPLATE ADD_ASS ROLE CONTENT [ROLE CONTENT ...]
 *     llama_chat_apply_template(TEMPLATE, messages, ADD_ASS (0/1)) as a JSON string, or
 *     null when llama.cpp does not know the template. TEMPLATE is a name or a template text.
 *
 *   cc -O2 tools/llamacpp_ref.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$LLAMA/build/bin -lllama -Wl,-rpath,$LLAMA/build/bin -o llamacpp_ref */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_string(const char *s, int n) {
    putchar('"');
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c == '\r')
            printf("\\r");
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)level, (void)text, (void)ud;
}

static int render(const char *tmpl, const struct llama_chat_message *m, size_t n, int add_ass,
                  char **out) {
    int len = llama_chat_apply_template(tmpl, m, n, add_ass, NULL, 0);
    if (len < 0) return len;
    *out = malloc((size_t)len + 1);
    llama_chat_apply_template(tmpl, m, n, add_ass, *out, len + 1);
    (*out)[len] = 0;
    return len;
}

static int greedy(int argc, char **argv) {
    if (argc != 6) return 2;
    const char *path = argv[2], *mode = argv[4], *prompt = argv[5];
    int n_gen = atoi(argv[3]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) return fprintf(stderr, "cannot load %s\n", path), 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    char *text = NULL;
    if (!strcmp(mode, "chat")) {
        struct llama_chat_message msg = {"user", prompt};
        const char *tmpl = llama_model_chat_template(model, NULL);
        if (render(tmpl, &msg, 1, 1, &text) < 0)
            return fprintf(stderr, "template not supported\n"), 1;
    } else {
        text = strdup(prompt);
    }
    int cap = (int)strlen(text) + 16;
    llama_token *toks = malloc((size_t)(cap + n_gen) * sizeof *toks);
    int n = llama_tokenize(vocab, text, (int)strlen(text), toks, cap, true, true);
    if (n < 0) return fprintf(stderr, "tokenize failed\n"), 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return fprintf(stderr, "no context\n"), 1;
    for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", toks[i]);
    printf("\n");
    int nv = llama_vocab_n_tokens(vocab);
    struct llama_batch b = llama_batch_get_one(toks, n);
    for (int t = 0; t < n_gen; t++) {
        if (llama_decode(ctx, b)) return fprintf(stderr, "decode failed\n"), 1;
        const float *lg = llama_get_logits_ith(ctx, -1);
        int best = -1;
        for (int i = 0; i < nv; i++)
            if (!llama_vocab_is_eog(vocab, i) && (best < 0 || lg[i] > lg[best])) best = i;
        printf("%s%d", t ? " " : "", best);
        toks[n + t] = best;
        b = llama_batch_get_one(toks + n + t, 1);
    }
    printf("\n");
    llama_free(ctx);
    llama_model_free(model);
    free(toks);
    free(text);
    return 0;
}

static int template(int argc, char **argv) {
    if (argc < 4 || (argc - 4) % 2) return 2;
    size_t n = (size_t)(argc - 4) / 2;
    struct llama_chat_message *m = calloc(n + 1, sizeof *m);
    for (size_t i = 0; i < n; i++) m[i].role = argv[4 + 2 * i], m[i].content = argv[5 + 2 * i];
    char *out = NULL;
    int len = render(argv[2], m, n, atoi(argv[3]), &out);
    if (len < 0)
        printf("null\n");
    else
        json_string(out, len), printf("\n");
    free(out);
    free(m);
    return 0;
}

int main(int argc, char **argv) {
    llama_log_set(quiet, NULL);
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "greedy")) rc = greedy(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "template")) rc = template(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: llamacpp_ref greedy MODEL N text|chat PROMPT\n"
                        "       llamacpp_ref template TEMPLATE ADD_ASS ROLE CONTENT ...\n");
    return rc;
}
