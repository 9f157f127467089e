/* tests/train/test_finetune.c: fine-tuning. Data (src/data/sft.c): the loss mask of chat,
 * prompt/completion and text examples, truncation, file:line errors, data with nothing to
 * learn refused. The run (src/train/finetune.c) on the committed stories260K GGUF: held-out
 * loss falls; a rerun is complete; other settings are refused by name; the adapter it writes
 * reads back. llama.cpp parity (tests/fixtures/finetune, tools/finetune_fixtures.sh): hearth's
 * greedy tokens with a LoRA adapter, and with it merged, are llama.cpp's with `--lora`. QLoRA: a
 * base kept in its stored type gives the F32 load's loss and adapter gradients bit for bit, and
 * nn_model_create_held's source contract. */
#include "test.h"

#include "ckpt/gguf_model.h"
#include "ckpt/lora_io.h"
#include "data/sft.h"
#include "nn/lora.h"
#include "server/server.h"
#include "train/finetune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *base_path(void) {
    static char p[512];
    snprintf(p, sizeof p, "%s/fixtures/gguf/stories260K-F16.gguf", test_dir());
    return p;
}

static tok_vocab *stories_vocab(void) {
    gguf_file *g;
    tok_vocab *v;
    base_err e = {0};
    assert_int_equal(gguf_open(base_path(), &g, &e), 0);
    assert_int_equal(tok_load_gguf(g, &v, &e), 0);
    gguf_close(g);
    return v;
}

static char tmpdir[256];
static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth_ft_XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
    }
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The text of row r's trained targets, in order. */
static char *trained_text(const data_sft *d, tok_vocab *v, size_t r) {
    int32_t ids[512];
    size_t n = 0;
    for (int t = 0; t < d->seq; t++)
        if (d->tgt[r * d->seq + t] >= 0) ids[n++] = d->tgt[r * d->seq + t];
    char *text;
    size_t len;
    base_err e = {0};
    assert_int_equal(tok_decode(v, ids, n, 0, &text, &len, &e), 0);
    return text;
}

static void test_chat_mask(void **state) {
    (void)state;
    tok_vocab *v = stories_vocab();
    const char *p = tmp_path("chat.jsonl");
    write_file(p, "{\"messages\": [{\"role\": \"system\", \"content\": \"Be kind.\"},"
                  " {\"role\": \"user\", \"content\": \"Tell me about the dog.\"},"
                  " {\"role\": \"assistant\", \"content\": \"The dog was happy.\"},"
                  " {\"role\": \"user\", \"content\": \"And the cat?\"},"
                  " {\"role\": \"assistant\", \"content\": \"The cat was sad.\", \"weight\": 0}]}\n"
                  "\n"
                  "{\"prompt\": \"Lily saw a\", \"completion\": \" big red ball.\"}\n"
                  "{\"text\": \"Tom ran.\"}\n");
    data_sft_opts o = {.vocab = v, .seq = 96, .add_bos = 1};
    data_sft *d;
    base_err e = {0};
    assert_int_equal(data_sft_load(p, &o, &d, &e), 0);
    assert_int_equal(d->n, 3);
    assert_int_equal(d->n_truncated, 0);
    /* chat: the first assistant answer and its end of turn (the newline) only; the second
     * (weight 0), the system and user turns are not trained */
    char *t0 = trained_text(d, v, 0);
    assert_string_equal(
        t0, "The dog was happy.\n"); /* SentencePiece: the first piece's space is not decoded */
    free(t0);
    /* the rows' inputs are the rendered conversation: the token before each target is the
     * input at that position (next-token prediction) */
    for (int t = 0; t + 1 < d->seq; t++)
        if (d->tgt[t] >= 0 && d->tgt[t + 1] >= 0) assert_int_equal(d->tgt[t], d->tok[t + 1]);
    /* prompt/completion: the completion and the end-of-text token */
    char *t1 = trained_text(d, v, 1);
    assert_string_equal(t1, "big red ball.</s>");
    int last = -1;
    for (int t = 0; t < d->seq; t++)
        if (d->tgt[d->seq + t] >= 0) last = d->tgt[d->seq + t];
    assert_int_equal(last, tok_eot_id(v));
    free(t1);
    /* text: every token after BOS */
    char *t2 = trained_text(d, v, 2);
    assert_string_equal(t2, "Tom ran.</s>");
    free(t2);
    assert_int_equal(d->tok[2 * d->seq], tok_bos_id(v));
    data_sft_free(d);
    tok_free(v);
}

/* The chat rendered by the server's Llama 2 template (what `hearth finetune` uses for a Llama
 * SentencePiece model): the assistant turn and its " </s>" are trained, nothing else. */
static int llama2_encode(const data_msg *msgs, size_t n, tok_ids *out, void *user, base_err *e) {
    server_msg m[8];
    for (size_t i = 0; i < n; i++)
        m[i] = (server_msg){(char *)msgs[i].role, (char *)msgs[i].content};
    int add_ass = n == 0 || strcmp(msgs[n - 1].role, "assistant") != 0;
    return server_chat_encode_vocab(SERVER_TMPL_LLAMA2, user, 0, m, n, add_ass, out, e);
}

static void test_chat_template(void **state) {
    (void)state;
    tok_vocab *v = stories_vocab();
    const char *p = tmp_path("chat2.jsonl");
    write_file(p, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"},"
                  " {\"role\": \"assistant\", \"content\": \"The dog ran.\"},"
                  " {\"role\": \"user\", \"content\": \"More\"},"
                  " {\"role\": \"assistant\", \"content\": \"The cat sat.\"}]}\n");
    data_sft_opts o = {.vocab = v, .seq = 96, .encode = llama2_encode, .encode_user = v};
    data_sft *d;
    base_err e = {0};
    assert_int_equal(data_sft_load(p, &o, &d, &e), 0);
    assert_int_equal(d->n, 1);
    /* both answers and the end of each turn (</s>), in order; not [INST] ... [/INST] */
    int n_eot = 0;
    for (int t = 0; t < d->seq; t++) n_eot += d->tgt[t] == tok_eot_id(v);
    assert_int_equal(n_eot, 2);
    char *text = trained_text(d, v, 0);
    if (!strstr(text, "The dog ran.") || !strstr(text, "The cat sat.") || strstr(text, "INST") ||
        strstr(text, "More"))
        fail_msg("trained text: '%s'", text);
    free(text);
    data_sft_free(d);
    tok_free(v);
}

static void test_truncation_and_split(void **state) {
    (void)state;
    tok_vocab *v = stories_vocab();
    const char *p = tmp_path("long.jsonl");
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 50; i++)
        fprintf(f, "{\"prompt\": \"Q%d\", \"completion\": \" %s\"}\n", i,
                i == 7 ? "one two three four five six seven eight nine ten eleven twelve thirteen "
                         "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
                       : "yes");
    fclose(f);
    data_sft_opts o = {.vocab = v, .seq = 16, .add_bos = 1};
    data_sft *d, *val;
    base_err e = {0};
    assert_int_equal(data_sft_load(p, &o, &d, &e), 0);
    assert_int_equal(d->n, 50);
    assert_int_equal(d->n_truncated, 1);
    assert_int_equal(data_sft_split(d, 0.2, 1, &val, &e), 0);
    assert_int_equal(d->n + val->n, 50);
    assert_true(val->n >= 3 && val->n <= 20);
    data_sft_free(val);
    data_sft_free(d);
    tok_free(v);
}

static void expect_error(const char *text, int code, const char *needle) {
    tok_vocab *v = stories_vocab();
    const char *p = tmp_path("bad.jsonl");
    write_file(p, text);
    data_sft_opts o = {.vocab = v, .seq = 32, .add_bos = 1};
    data_sft *d = NULL;
    base_err e = {0};
    assert_int_equal(data_sft_load(p, &o, &d, &e), code);
    assert_null(d);
    if (!strstr(e.msg, needle)) fail_msg("'%s' lacks '%s'", e.msg, needle);
    tok_free(v);
}

static void test_errors(void **state) {
    (void)state;
    char want[600];
    snprintf(want, sizeof want, "%s:3: not JSON", tmp_path("bad.jsonl"));
    expect_error("{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n", BASE_EFORMAT, want);
    expect_error("{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n", BASE_EFORMAT,
                 ":1: message 0: \"role\"");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}\n", BASE_EFORMAT,
                 "\"content\" must be a string");
    expect_error("{\"prompt\": \"x\"}\n", BASE_EFORMAT, "\"prompt\" and \"completion\"");
    expect_error("{\"foo\": 1}\n", BASE_EFORMAT, "no \"messages\"");
    /* nothing to learn: a chat without an assistant turn of weight 1 */
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
                 " {\"role\": \"assistant\", \"content\": \"x\", \"weight\": 0}]}\n",
                 BASE_EINVAL, "no trainable token");
}

/* A corpus of one style the base has not seen: numbered lines of a fixed pattern. */
static const char *write_corpus(void) {
    const char *p = tmp_path("corpus.txt");
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 400; i++)
        fprintf(f, "ROMEO. Thou art my %s, sweet %s of the %s.\n",
                (const char *[]){"sun", "moon", "star", "rose"}[i % 4],
                (const char *[]){"Juliet", "night", "lady"}[i % 3],
                (const char *[]){"east", "west", "sky", "garden", "stars"}[i % 5]);
    fclose(f);
    return p;
}

static void test_run(void **state) {
    (void)state;
    ft_opts o;
    ft_opts_default(&o);
    char data[512], out[512];
    snprintf(data, sizeof data, "%s", write_corpus());
    snprintf(out, sizeof out, "%s", tmp_path("run"));
    o.base = base_path();
    o.t.data = data;
    o.t.out_dir = out;
    o.t.steps = 30, o.t.batch = 4, o.t.seq = 32, o.t.lr = 5e-3f, o.t.eval_batches = 4;
    o.lora_targets = 0x7f;
    ft_result r;
    base_err e = {0};
    assert_int_equal(ft_run(&o, NULL, NULL, &r, &e), 0);
    assert_int_equal(r.run.step, 30);
    assert_true(r.n_val > 0);
    /* the held-out loss falls by a clear margin */
    if (!(r.run.last_val < r.run.first_val - 1.0f))
        fail_msg("held-out loss %g -> %g", (double)r.run.first_val, (double)r.run.last_val);
    /* the adapter reads back: rank 8, alpha 16, every target */
    char path[600];
    snprintf(path, sizeof path, "%s/adapter.gguf", out);
    int rank;
    float alpha;
    unsigned targets;
    assert_int_equal(ckpt_lora_gguf_info(path, &rank, &alpha, &targets, &e), 0);
    assert_int_equal(rank, 8);
    assert_true(alpha == 16.0f);
    assert_int_equal(targets, 0x7f);
    snprintf(path, sizeof path, "%s/adapter/adapter_config.json", out);
    assert_int_equal(access(path, F_OK), 0);
    /* the same command again: complete, nothing written */
    assert_int_equal(ft_run(&o, NULL, NULL, &r, &e), 0);
    assert_true(r.run.complete);
    /* another setting into the same directory: refused, naming it */
    o.lora_rank = 4;
    assert_int_equal(ft_run(&o, NULL, NULL, &r, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "lora_rank"));
    /* --full trains every weight and writes model.gguf */
    o.lora_rank = 8;
    o.full = 1;
    o.t.steps = 5;
    snprintf(out, sizeof out, "%s", tmp_path("full"));
    o.t.out_dir = out;
    assert_int_equal(ft_run(&o, NULL, NULL, &r, &e), 0);
    assert_true(r.n_trainable_params > 200000);
    assert_true(r.run.last_val < r.run.first_val);
    snprintf(path, sizeof path, "%s/model.gguf", out);
    assert_int_equal(access(path, F_OK), 0);
}

/* Greedy continuation by full forwards (no cache) of the model as it is. */
static void greedy(nn_model *m, int *ids, int n_prompt, int n_gen) {
    base_err e = {0};
    for (int i = n_prompt; i < n_prompt + n_gen; i++) {
        assert_int_equal(nn_forward(m, ids, NULL, 1, i, NULL, &e), 0);
        const float *lg = nn_logits_at(m, 0, i - 1);
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (lg[v] > lg[best]) best = v;
        ids[i] = best;
    }
}

static void test_llamacpp_parity(void **state) {
    (void)state;
    char path[512], adapter[512];
    snprintf(path, sizeof path, "%s/fixtures/finetune/greedy.tsv", test_dir());
    snprintf(adapter, sizeof adapter, "%s/fixtures/finetune/adapter.gguf", test_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int prompt[64], np = 0, want_lora[128], nl = 0, want_merged[128], nm = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = 0;
        int *dst = !strcmp(line, "prompt")   ? prompt
                   : !strcmp(line, "lora")   ? want_lora
                   : !strcmp(line, "merged") ? want_merged
                                             : NULL;
        assert_non_null(dst);
        int *cnt = dst == prompt ? &np : dst == want_lora ? &nl : &nm;
        for (char *s = strtok(tab + 1, " \n"); s; s = strtok(NULL, " \n")) dst[(*cnt)++] = atoi(s);
    }
    fclose(f);
    assert_true(np > 0 && nl > 0 && nl == nm);
    nn_model *m;
    base_err e = {0};
    assert_int_equal(ft_load_base(base_path(), 1, np + nl, FT_BASE_F32, &m, NULL, &e), 0);
    int rank;
    float alpha;
    unsigned targets;
    assert_int_equal(ckpt_lora_gguf_info(adapter, &rank, &alpha, &targets, &e), 0);
    nn_lora *a;
    assert_int_equal(nn_lora_create(&a, m, rank, alpha, 0, targets, 0, &e), 0);
    assert_int_equal(ckpt_lora_read_gguf(adapter, m, a, &e), 0);
    nn_lora_attach(m, a);
    int ids[256];
    memcpy(ids, prompt, (size_t)np * sizeof(int));
    greedy(m, ids, np, nl);
    assert_memory_equal(ids + np, want_lora, (size_t)nl * sizeof(int));
    /* merged into the weights: llama.cpp's tokens on hearth's merged GGUF */
    nn_lora_attach(m, NULL);
    nn_lora_merge(m, a);
    greedy(m, ids, np, nm);
    assert_memory_equal(ids + np, want_merged, (size_t)nm * sizeof(int));
    nn_lora_free(a);
    nn_model_free(m);
}

/* A model of `preset` (random weights; bias 1: with biases) as a GGUF of file type `type`, at
 * path; returns it (the caller frees it). GPT-2 in F16 stays tied (the output matrix's bytes are
 * the embedding's); in a quantized type it reads back untied. */
static nn_model *write_gguf(const char *path, const char *preset, int bias, const char *type) {
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, preset, &e), 0);
    c.bias = bias;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 1, 1, &e), 0);
    nn_model_init(m, 11);
    ckpt_gguf_quant *q;
    gguf_writer *w;
    float *scratch;
    int llama = c.family == NN_LLAMA;
    assert_int_equal(ckpt_gguf_quant_create(&q, type, 1, llama ? c.n_layer : 0, c.n_layer,
                                            c.n_head / c.n_kv_head, !llama || !c.tied, NULL, &e),
                     0);
    assert_int_equal(gguf_writer_create(&w, &e), 0);
    assert_int_equal(ckpt_gguf_add_model(w, m, "qlora test", q, &scratch, &e), 0);
    assert_int_equal(gguf_writer_save(w, path, &e), 0);
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
    free(scratch);
    return m;
}

/* One LoRA forward and backward (dropout on) of the base at path loaded as mode; the loss, the
 * logits (out_logits: (B*T*V) floats) and the adapter gradients (malloc'd, *n of them). */
static float *lora_step(const char *path, int mode, float *loss, float *out_logits, size_t *n,
                        nn_model **keep) {
    enum { B = 2, T = 16 };
    nn_model *m;
    base_err e = {0};
    if (ft_load_base(path, B, T, mode, &m, NULL, &e)) fail_msg("%s: %s", path, e.msg);
    const nn_config *c = &m->cfg;
    unsigned targets = test_lora_all(c);
    nn_lora *a;
    assert_int_equal(nn_lora_create(&a, m, 4, 8, 0.1f, targets, 5, &e), 0);
    base_rng r;
    base_rng_seed(&r, 9); /* B random too, so every gradient path carries signal */
    for (size_t i = 0; i < a->n_params; i++) a->params[i] = 0.05f * base_rng_normal(&r);
    nn_lora_attach(m, a);
    a->training = 1, a->key = 3;
    int tok[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)base_rng_below(&r, (uint64_t)c->vocab_size);
        tgt[i] = i % 5 == 4 ? -1 : (int)base_rng_below(&r, (uint64_t)c->vocab_size);
    }
    assert_int_equal(nn_forward(m, tok, tgt, B, T, loss, &e), 0);
    memcpy(out_logits, m->a.logits, (size_t)B * T * c->vocab_size * sizeof(float));
    nn_lora_zero_grad(a);
    nn_backward(m, 1.0f);
    float *g = malloc(a->n_params * sizeof(float));
    memcpy(g, a->grads, a->n_params * sizeof(float));
    *n = a->n_params;
    nn_lora_attach(m, NULL);
    nn_lora_free(a);
    *keep = m;
    return g;
}

/* QLoRA (item 3 of the fine-tuning issue): a base loaded in its stored type (FT_BASE_STORED)
 * gives the loss, logits and adapter gradients of the same file dequantized to F32 at load,
 * bit for bit (the same dequantizer, the same kernels), for every weight type, Llama (GQA, the
 * q and k rows in RoPE order) and GPT-2 (packed qkv, biases, a tied head fetched whole); and
 * its parameter buffer holds no large matrix. */
static void test_qlora_parity(void **state) {
    (void)state;
    char paths[12][512];
    int np = 0;
    const char *fx[] = {"random256-Q4_0", "random256-Q8_0", "random256-Q4_K",  "random256-Q6_K",
                        "random256-Q2_K", "random256-Q5_1", "stories260K-F16", "stories260K-BF16"};
    for (size_t i = 0; i < sizeof fx / sizeof *fx; i++)
        snprintf(paths[np++], sizeof paths[0], "%s/fixtures/gguf/%s.gguf", test_dir(), fx[i]);
    snprintf(paths[np], sizeof paths[0], "%s", tmp_path("gpt2-f16.gguf"));
    nn_model_free(write_gguf(paths[np++], "tiny", 1, "F16"));
    snprintf(paths[np], sizeof paths[0], "%s", tmp_path("gpt2-q8.gguf"));
    nn_model_free(write_gguf(paths[np++], "tiny", 1, "Q8_0"));
    snprintf(paths[np], sizeof paths[0], "%s", tmp_path("llama-bias-q8.gguf"));
    nn_model_free(write_gguf(paths[np++], "llama-tiny", 1, "Q8_0"));
    static float lg32[2 * 16 * 512], lgq[2 * 16 * 512];
    for (int i = 0; i < np; i++) {
        float l32, lq;
        size_t n32, nq;
        nn_model *m32, *mq;
        float *g32 = lora_step(paths[i], FT_BASE_F32, &l32, lg32, &n32, &m32);
        float *gq = lora_step(paths[i], FT_BASE_STORED, &lq, lgq, &nq, &mq);
        const nn_config *c = &mq->cfg;
        /* the layer matrices and the embedding are held; params keep the small tensors (and a
         * head larger than a layer matrix) */
        unsigned want =
            (1u << NN_W_QKV) | (1u << NN_W_ATTPROJ) | (1u << NN_W_FC) | (1u << NN_W_FCPROJ);
        if ((mq->wsrc.held & want) != want || !(mq->wsrc.held & (1u << NN_W_WTE) || c->tied))
            fail_msg("%s: held 0x%x", paths[i], mq->wsrc.held);
        size_t head = (size_t)c->vocab_size * (size_t)c->d_model;
        if (mq->n_params > m32->n_params / 4 + head)
            fail_msg("%s: %zu of %zu parameters still in params", paths[i], mq->n_params,
                     m32->n_params);
        assert_int_equal(mq->pt.qkvw == NULL, 1);
        if (memcmp(&l32, &lq, sizeof l32))
            fail_msg("%s: loss %.9g (F32) vs %.9g (stored)", paths[i], (double)l32, (double)lq);
        size_t nl = (size_t)2 * 16 * c->vocab_size;
        assert_memory_equal(lg32, lgq, nl * sizeof(float));
        assert_int_equal(n32, nq);
        assert_memory_equal(g32, gq, n32 * sizeof(float));
        int nonzero = 0;
        for (size_t j = 0; j < n32; j++) nonzero += g32[j] != 0;
        assert_true(nonzero > (int)(n32 / 2));
        free(g32);
        free(gq);
        nn_model_free(m32);
        nn_model_free(mq);
    }
    /* an F32 file has nothing to hold: loaded as before */
    nn_config c;
    base_err e = {0};
    nn_model *m;
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    const char *f32 = tmp_path("gpt2-f32.gguf");
    nn_model_free(write_gguf(f32, "tiny", 1, "F32"));
    assert_int_equal(ft_load_base(f32, 1, 4, FT_BASE_STORED, &m, NULL, &e), 0);
    assert_int_equal(m->wsrc.held, 0);
    assert_int_equal(m->n_params, nn_config_params(&c));
    nn_model_free(m);
    /* a Llama with biases reads back as written: the q and k biases in hearth's RoPE order
     * again (element by element; they were read as rows of the bias's length, past its end) */
    f32 = tmp_path("llama-bias-f32.gguf");
    nn_model *src = write_gguf(f32, "llama-tiny", 1, "F32");
    assert_int_equal(ft_load_base(f32, 1, 4, FT_BASE_F32, &m, NULL, &e), 0);
    assert_int_equal(m->n_params, src->n_params);
    assert_memory_equal(m->params, src->params, src->n_params * sizeof(float));
    nn_model_free(m);
    nn_model_free(src);
}

/* A source over an F32 model's own matrices (nn.h's nn_wsrc contract without a file), counting
 * the frees. */
typedef struct fake_src {
    const nn_model *ref;
    int frees, gets;
} fake_src;

static void fake_get(void *user, int id, int l, const int *rows, int n, float *dst) {
    fake_src *f = user;
    const nn_config *c = &f->ref->cfg;
    nn_layer w = nn_params_layer(&f->ref->pt, c, l);
    const float *m[NN_W_N] = {f->ref->pt.wte, w.qkvw,    w.attprojw,
                              w.fcw,          w.fcprojw, f->ref->pt.lm_head};
    int cols = id == NN_W_FCPROJ ? c->d_ff : c->d_model;
    int all = id == NN_W_WTE || id == NN_W_HEAD ? c->vocab_size
              : id == NN_W_QKV ? (c->n_head + 2 * c->n_kv_head) * (c->d_model / c->n_head)
              : id == NN_W_FC  ? (c->family == NN_LLAMA ? 2 : 1) * c->d_ff
                               : c->d_model;
    for (int i = 0; i < (rows ? n : all); i++)
        memcpy(dst + (size_t)i * cols, m[id] + (size_t)(rows ? rows[i] : i) * cols,
               (size_t)cols * sizeof(float));
    f->gets++;
}
static void fake_free(void *user) {
    ((fake_src *)user)->frees++;
}

/* nn_model_create_held: the model takes the source (freed once, also when the create fails or
 * nothing is held), and a model whose matrices come from a source computes what the model
 * holding them does, bit for bit, fetching each matrix once per product. */
static void test_held_source(void **state) {
    (void)state;
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, "llama-tiny", &e), 0);
    nn_model *ref, *m;
    assert_int_equal(nn_model_create_frozen(&ref, &c, 2, 8, &e), 0);
    nn_model_init(ref, 3);
    fake_src f = {ref, 0, 0};
    unsigned all = (1u << NN_W_N) - 1;
    nn_wsrc src = {all, fake_get, fake_free, &f};
    assert_int_equal(nn_model_create_held(&m, &c, 2, 1000, &src, &e), BASE_EINVAL);
    assert_int_equal(f.frees, 1);
    src.held = 0;
    assert_int_equal(nn_model_create_held(&m, &c, 2, 8, &src, &e), 0);
    assert_int_equal(f.frees, 2);
    nn_model_free(m);
    assert_int_equal(f.frees, 2);
    src.held = all;
    assert_int_equal(nn_model_create_held(&m, &c, 2, 8, &src, &e), 0);
    assert_int_equal(m->n_params, 2 * c.d_model * c.n_layer + c.d_model); /* the norms */
    memcpy(m->params, ref->params + nn_model_tensor(ref, "ln1w")->offset,
           (size_t)c.d_model * c.n_layer * sizeof(float));
    memcpy(m->pt.ln2w, ref->pt.ln2w, (size_t)c.d_model * c.n_layer * sizeof(float));
    memcpy(m->pt.lnfw, ref->pt.lnfw, (size_t)c.d_model * sizeof(float));
    int tok[16], tgt[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 37) % c.vocab_size, tgt[i] = (i * 11) % c.vocab_size;
    float l0, l1;
    nn_lora *a0, *a1;
    assert_int_equal(nn_lora_create(&a0, ref, 2, 4, 0, 0x7f, 1, &e), 0);
    assert_int_equal(nn_lora_create(&a1, m, 2, 4, 0, 0x7f, 1, &e), 0);
    for (size_t i = 0; i < a0->n_params; i++)
        a0->params[i] = a1->params[i] = 0.01f * (float)(i % 7);
    nn_lora_attach(ref, a0);
    nn_lora_attach(m, a1);
    assert_int_equal(nn_forward(ref, tok, tgt, 2, 8, &l0, &e), 0);
    assert_int_equal(nn_forward(m, tok, tgt, 2, 8, &l1, &e), 0);
    assert_memory_equal(&l0, &l1, sizeof l0);
    assert_int_equal(f.gets, 1 + 4 * c.n_layer + 1); /* the embedding rows, 4 per layer, head */
    nn_lora_zero_grad(a0);
    nn_lora_zero_grad(a1);
    nn_backward(ref, 1.0f);
    nn_backward(m, 1.0f);
    assert_memory_equal(a0->grads, a1->grads, a0->n_params * sizeof(float));
    assert_int_equal(f.gets, 2 * (1 + 4 * c.n_layer + 1) - 1); /* backward: no embedding rows */
    nn_lora_free(a0);
    nn_lora_free(a1);
    nn_model_free(m);
    assert_int_equal(f.frees, 3);
    nn_model_free(ref);
}

static void count_extend_ft(const char *msg, void *user) {
    if (strstr(msg, "extending the run from 4 to 7 steps")) ++*(int *)user;
}

static void count_extend(const char *msg, void *user) {
    if (strstr(msg, "extending the run from 10 to 16 steps")) ++*(int *)user;
}

/* `hearth train --resume RUN --steps N` with a larger N continues the run (item 6 of the
 * fine-tuning issue); a smaller N is still refused by name. */
static void test_train_extend(void **state) {
    (void)state;
    train_opts o = {0};
    char data[512], out[512];
    snprintf(data, sizeof data, "%s", write_corpus());
    snprintf(out, sizeof out, "%s", tmp_path("ext"));
    train_opts_default(&o);
    base_err e = {0};
    assert_int_equal(nn_config_preset(&o.cfg, "tiny", &e), 0);
    o.cfg.vocab_size = 256;
    o.data = data, o.out_dir = out;
    o.steps = 10, o.batch = 2, o.seq = 16, o.sample_tokens = 0, o.threads = 1;
    train_result r;
    assert_int_equal(train_run(&o, NULL, NULL, &r, &e), 0);
    assert_int_equal(r.step, 10);
    int seen = 0;
    o.steps = 16;
    o.resume = out;
    o.note = count_extend;
    assert_int_equal(train_run(&o, NULL, &seen, &r, &e), 0);
    assert_int_equal(r.step, 16);
    assert_int_equal(seen, 1);
    o.steps = 12;
    assert_int_equal(train_run(&o, NULL, &seen, &r, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "steps is 16 there, 12 in this run"));
}

/* A fine-tuning run extends as a training run does (one loop): more --steps continue from the
 * final checkpoint with the schedule recomputed, finetune.json records the new total, and fewer
 * are refused by name. */
static void test_finetune_extend(void **state) {
    (void)state;
    ft_opts o;
    ft_opts_default(&o);
    char data[512], out[512];
    snprintf(data, sizeof data, "%s", write_corpus());
    snprintf(out, sizeof out, "%s", tmp_path("ftext"));
    o.base = base_path();
    o.t.data = data, o.t.out_dir = out;
    o.t.steps = 4, o.t.batch = 2, o.t.seq = 32, o.t.eval_batches = 2, o.t.threads = 1;
    ft_result r;
    base_err e = {0};
    assert_int_equal(ft_run(&o, NULL, NULL, &r, &e), 0);
    assert_int_equal(r.run.step, 4);
    int seen = 0;
    o.t.steps = 7;
    o.t.note = count_extend_ft;
    assert_int_equal(ft_run(&o, NULL, &seen, &r, &e), 0);
    assert_int_equal(r.run.step, 7);
    assert_false(r.run.complete);
    assert_int_equal(seen, 1);
    assert_int_equal(ft_run(&o, NULL, &seen, &r, &e), 0); /* now complete at 7 */
    assert_true(r.run.complete);
    o.t.steps = 5;
    assert_int_equal(ft_run(&o, NULL, &seen, &r, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "steps is 7 there, 5 in this run"));
}

static int teardown(void **state) {
    (void)state;
    if (tmpdir[0]) test_rm_rf(tmpdir);
    return 0;
}

int test_finetune(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_mask),
        cmocka_unit_test(test_chat_template),
        cmocka_unit_test(test_truncation_and_split),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_llamacpp_parity),
        cmocka_unit_test(test_qlora_parity),
        cmocka_unit_test(test_held_source),
        cmocka_unit_test(test_train_extend),
        cmocka_unit_test(test_finetune_extend),
    };
    return cmocka_run_group_tests_name("finetune", tests, NULL, teardown);
}
