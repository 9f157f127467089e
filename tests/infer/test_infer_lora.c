/* tests/infer/test_infer_lora.c: LoRA adapters applied by the engine, unmerged, over a model's
 * typed weights (infer_lora, infer_engine_set_lora; the scheduler's per-request adapter).
 *  - llama.cpp's greedy tokens with `--lora` on the committed stories260K base and adapter
 *    (tests/fixtures/finetune: greedy.tsv, recorded by tools/finetune_fixtures.sh), and the
 *    base's own tokens once the slot's adapter is taken away;
 *  - an adapter whose B is zero, or any adapter at scale 0, gives the base's logits bit for bit;
 *  - a batch that mixes sequences of two adapters and of the base (rows interleaved, prompts
 *    chunked beside decode rows, through the scheduler) gives each sequence the text it gets
 *    alone;
 *  - adapter files that do not fit the model are refused, the message naming the tensor. */
#include "test.h"

#include "gguf/gguf.h"
#include "infer/infer.h"
#include "quant/quant.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stories260K: C 64, 5 layers, 8 heads of 8, 4 KV heads, FFN 172 */
#define C 64
#define NL 5
#define KV 32
#define FF 172

static infer_model *model;
static char dir[256];

static int setup(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/gguf/stories260K-F16.gguf", test_dir());
    base_err e = {0};
    if (infer_model_load(&model, path, NULL, &e)) {
        fprintf(stderr, "%s: %s\n", path, e.msg);
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/hearth_infer_lora_%d", (int)getpid());
    test_rm_rf(dir);
    return base_mkdir_p(dir, &e);
}

static int teardown(void **state) {
    (void)state;
    infer_model_free(model);
    test_rm_rf(dir);
    return 0;
}

static const char *fixture(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/fixtures/finetune/%s", test_dir(), name);
    return path;
}

/* One adapted matrix of a written adapter: blk.layer.mat.weight.lora_{a,b}; dims as written. */
typedef struct {
    int layer;
    const char *mat;
    int in, r, r_b, out; /* lora_a [in, r], lora_b [r_b, out] */
    int no_b;            /* write lora_a only */
} site;

/* An adapter file dir/name of the given sites, random values (B zero when zero_b) stored as
 * type (F32 or F16); arch and general.type as given. */
static const char *write_adapter(const char *name, const char *arch, const char *type_str,
                                 float alpha, int type, const site *s, int n, int zero_b,
                                 uint64_t seed) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gguf_writer *w;
    base_err e = {0};
    assert_int_equal(gguf_writer_create(&w, &e), 0);
    gguf_set_str(w, "general.architecture", arch);
    gguf_set_str(w, "general.type", type_str);
    gguf_set_str(w, "adapter.type", "lora");
    gguf_set_f32(w, "adapter.lora.alpha", alpha);
    void *bufs[64];
    int nb = 0;
    base_rng rng;
    base_rng_seed(&rng, seed);
    char tn[96];
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 2; b++) {
            if (b && s[i].no_b) continue;
            size_t rows = b ? (size_t)s[i].out : (size_t)s[i].r,
                   cols = b ? (size_t)s[i].r_b : (size_t)s[i].in;
            float *x = calloc(rows * cols, sizeof(float));
            if (!(b && zero_b)) test_fill(&rng, x, rows * cols, -0.5f, 0.5f);
            uint64_t dims[2] = {cols, rows};
            snprintf(tn, sizeof tn, "blk.%d.%s.weight.lora_%c", s[i].layer, s[i].mat,
                     b ? 'b' : 'a');
            if (type == QUANT_F16) {
                uint16_t *h = malloc(rows * cols * sizeof *h);
                for (size_t k = 0; k < rows * cols; k++) h[k] = quant_f32_to_f16(x[k]);
                free(x);
                gguf_add_tensor(w, tn, 2, dims, QUANT_F16, h, rows * cols * sizeof *h);
                bufs[nb++] = h;
            } else {
                gguf_add_tensor_f32(w, tn, 2, dims, x);
                bufs[nb++] = x;
            }
        }
    assert_int_equal(gguf_writer_save(w, path, &e), 0);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return path;
}

/* A rank-4 adapter of q, v, o and up in some layers, and down in all. */
static const site some[] = {{0, "attn_q", C, 4, 4, C, 0},      {2, "attn_v", C, 4, 4, KV, 0},
                            {1, "attn_output", C, 4, 4, C, 0}, {3, "ffn_up", C, 4, 4, FF, 0},
                            {0, "ffn_down", FF, 4, 4, C, 0},   {1, "ffn_down", FF, 4, 4, C, 0},
                            {2, "ffn_down", FF, 4, 4, C, 0},   {3, "ffn_down", FF, 4, 4, C, 0},
                            {4, "ffn_down", FF, 4, 4, C, 0}};
#define NSOME (int)(sizeof some / sizeof *some)

static void read_row(const char *tsv, const char *key, int32_t *ids, int *n) {
    FILE *f = fopen(tsv, "r");
    assert_non_null(f);
    char line[8192];
    size_t kl = strlen(key);
    *n = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == '\t')
            for (char *t = strtok(line + kl + 1, " \n"); t; t = strtok(NULL, " \n"))
                ids[(*n)++] = (int32_t)atoi(t);
    fclose(f);
    assert_true(*n > 0);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Greedy tokens (n_gen) after the prompt on slot 0 of a fresh engine with adapter a (NULL:
 * none); the logits of the prompt's last row into first (V) when not NULL. */
static void greedy(const infer_lora *a, const int32_t *prompt, int np, int32_t *out, int n_gen,
                   float *first) {
    base_err e = {0};
    infer_engine *g;
    int V = infer_model_config(model)->vocab_size;
    assert_int_equal(infer_engine_create(&g, model, 1, 128, 64, INFER_KV_F16, &e), 0);
    assert_int_equal(infer_engine_set_lora(g, 0, a, &e), 0);
    float *lg = malloc((size_t)V * sizeof(float));
    int slots[64] = {0}, pos[64], last = np - 1;
    for (int i = 0; i < np; i++) pos[i] = i;
    assert_int_equal(infer_forward(g, prompt, slots, pos, np, 0, &last, 1, lg, &e), 0);
    if (first) memcpy(first, lg, (size_t)V * sizeof(float));
    for (int k = 0; k < n_gen; k++) {
        out[k] = argmax(lg, V);
        int p = np + k, zero = 0;
        if (k + 1 < n_gen)
            assert_int_equal(infer_forward(g, &out[k], slots, &p, 1, 1, &zero, 1, lg, &e), 0);
    }
    free(lg);
    infer_engine_free(g);
}

static void test_llamacpp_greedy(void **state) {
    (void)state;
    int32_t prompt[64], want[128], base[128], got[128];
    int np, nw, nb;
    read_row(fixture("greedy.tsv"), "prompt", prompt, &np);
    read_row(fixture("greedy.tsv"), "lora", want, &nw);
    read_row(fixture("greedy.tsv"), "# base (no adapter)", base, &nb);
    base_err e = {0};
    infer_lora *a;
    assert_int_equal(infer_lora_load(&a, model, fixture("adapter.gguf"), 1.0f, &e), 0);
    int rank, n_mats;
    float alpha;
    infer_lora_info(a, &rank, &alpha, &n_mats, NULL);
    assert_int_equal(rank, 8);
    assert_int_equal(n_mats, 7 * NL); /* every target of every layer */
    greedy(a, prompt, np, got, nw, NULL);
    assert_memory_equal(got, want, (size_t)nw * sizeof(int32_t));
    greedy(NULL, prompt, np, got, nb, NULL); /* the same engine path without it: the base's */
    assert_memory_equal(got, base, (size_t)nb * sizeof(int32_t));
    infer_lora_free(a);
}

static void test_zero_is_base(void **state) {
    (void)state;
    int32_t prompt[] = {1, 403, 407, 261, 378}, t[8];
    int V = infer_model_config(model)->vocab_size;
    float *base = malloc((size_t)V * 4), *with = malloc((size_t)V * 4);
    greedy(NULL, prompt, 5, t, 1, base);
    base_err e = {0};
    infer_lora *a;
    /* B = 0 (PEFT's initialization): the base's logits exactly */
    const char *p =
        write_adapter("zero.gguf", "llama", "adapter", 16, QUANT_F32, some, NSOME, 1, 7);
    assert_int_equal(infer_lora_load(&a, model, p, 1.0f, &e), 0);
    greedy(a, prompt, 5, t, 1, with);
    assert_memory_equal(with, base, (size_t)V * 4);
    infer_lora_free(a);
    /* scale 0: likewise; scale 1: not */
    assert_int_equal(infer_lora_load(&a, model, fixture("adapter.gguf"), 0.0f, &e), 0);
    greedy(a, prompt, 5, t, 1, with);
    assert_memory_equal(with, base, (size_t)V * 4);
    infer_lora_free(a);
    assert_int_equal(infer_lora_load(&a, model, fixture("adapter.gguf"), 1.0f, &e), 0);
    greedy(a, prompt, 5, t, 1, with);
    assert_true(memcmp(with, base, (size_t)V * 4) != 0);
    infer_lora_free(a);
    free(base);
    free(with);
}

/* ---- the scheduler: sequences of different adapters in one batch */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char text[2048];
    size_t len;
    int done;
    infer_finish finish;
    char error[256]; /* the DONE event's error, if any */
} answer;

static int on_event(void *ud, const infer_event *ev) {
    answer *c = ud;
    pthread_mutex_lock(&c->mu);
    if (ev->kind == INFER_EV_TEXT) {
        if (c->len + ev->len < sizeof c->text) memcpy(c->text + c->len, ev->text, ev->len);
        c->len += ev->len;
    } else {
        c->done = 1;
        c->finish = ev->finish;
        if (ev->error) snprintf(c->error, sizeof c->error, "%s", ev->error);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* An answer before its request: nothing received, its lock and signal ready. */
static void answer_init(answer *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL), pthread_cond_init(&c->cv, NULL);
}

static void wait_done(answer *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    c->text[c->len < sizeof c->text ? c->len : sizeof c->text - 1] = 0;
}

#define NSEQ 5

static void test_mixed_batch(void **state) {
    (void)state;
    base_err e = {0};
    infer_lora *a1, *a2;
    assert_int_equal(infer_lora_load(&a1, model, fixture("adapter.gguf"), 1.0f, &e), 0);
    /* F16 matrices, scaled up to move the greedy text */
    const char *p2 = write_adapter("f16.gguf", "llama", "adapter", 8, QUANT_F16, some, NSOME, 0, 3);
    if (infer_lora_load(&a2, model, p2, 4.0f, &e)) fail_msg("%s", e.msg);
    /* prompts of different lengths (chunked prefills overlap decode rows) */
    static const int32_t pr[NSEQ][12] = {{1, 403, 407, 261, 378},
                                         {1, 403, 407, 261, 378},
                                         {1, 403, 407, 261, 378},
                                         {1, 432, 262, 424, 411, 316, 297, 333, 415},
                                         {1, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}};
    static const int np[NSEQ] = {5, 5, 5, 9, 11};
    const infer_lora *use[NSEQ] = {NULL, a1, a2, a1, a2};
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.temperature = 0, sp.max_tokens = 24;
    infer_sched_opts o = {.n_slots = NSEQ,
                          .ctx = 64,
                          .max_queue = 8,
                          .prefill_chunk = 3,
                          .threads = 2,
                          .max_rows = NSEQ * 3};
    infer_sched *s;
    static answer alone[NSEQ], batch[NSEQ];
    uint64_t id;
    /* alone: one at a time */
    assert_int_equal(infer_sched_create(&s, model, &o, &e), 0);
    for (int i = 0; i < NSEQ; i++) {
        answer_init(&alone[i]);
        assert_int_equal(
            infer_sched_submit(s, pr[i], (size_t)np[i], &sp, use[i], on_event, &alone[i], &id, &e),
            0);
        wait_done(&alone[i]);
        assert_int_equal(alone[i].finish, INFER_FINISH_LENGTH);
    }
    /* together: every slot busy, rows of the base and both adapters interleaved */
    for (int i = 0; i < NSEQ; i++) {
        answer_init(&batch[i]);
        assert_int_equal(
            infer_sched_submit(s, pr[i], (size_t)np[i], &sp, use[i], on_event, &batch[i], &id, &e),
            0);
    }
    for (int i = 0; i < NSEQ; i++) {
        wait_done(&batch[i]);
        if (strcmp(batch[i].text, alone[i].text))
            fail_msg("sequence %d: batched '%s' != alone '%s'", i, batch[i].text, alone[i].text);
    }
    infer_sched_free(s);
    /* the adapters do change the text (else the comparison above proves little) */
    assert_true(strcmp(alone[0].text, alone[1].text) != 0);
    assert_true(strcmp(alone[0].text, alone[2].text) != 0);
    assert_true(strcmp(alone[1].text, alone[2].text) != 0);
    infer_lora_free(a1);
    infer_lora_free(a2);
}

/* ---- refused adapters */

static void expect_refused(const char *path, const char *what) {
    base_err e = {0};
    infer_lora *a = (infer_lora *)1;
    int rc = infer_lora_load(&a, model, path, 1.0f, &e);
    assert_int_not_equal(rc, 0);
    assert_null(a);
    if (!strstr(e.msg, what)) fail_msg("the message '%s' does not name '%s'", e.msg, what);
}

/* Adapter files of one matrix each that do not fit stories260K, and the words each refusal
 * must hold. */
static const struct {
    const char *name, *arch, *type; /* the file in dir; general.architecture, general.type */
    site s;
    const char *want;
} refused[] = {
    /* lora_b of the wrong height: k's outputs are 32, not 64 */
    {"k.gguf", "llama", "adapter", {1, "attn_k", C, 4, 4, C, 0}, "blk.1.attn_k.weight.lora_b"},
    /* lora_a of the wrong width (down takes FF inputs) */
    {"d.gguf", "llama", "adapter", {0, "ffn_down", C, 4, 4, C, 0}, "blk.0.ffn_down.weight.lora_a"},
    /* ranks of a and b that differ */
    {"r.gguf", "llama", "adapter", {0, "attn_q", C, 4, 8, C, 0}, "blk.0.attn_q.weight.lora_b"},
    /* a layer the model lacks */
    {"l.gguf", "llama", "adapter", {7, "attn_q", C, 4, 4, C, 0}, "blk.7.attn_q.weight.lora_a"},
    /* a matrix hearth does not adapt */
    {"x.gguf", "llama", "adapter", {0, "attn_x", C, 4, 4, C, 0}, "blk.0.attn_x.weight.lora_a"},
    /* lora_a without its lora_b */
    {"b.gguf",
     "llama",
     "adapter",
     {2, "ffn_up", C, 4, 4, FF, 1},
     "blk.2.ffn_up.weight.lora_a has no blk.2.ffn_up.weight.lora_b"},
    /* another architecture; not an adapter */
    {"a.gguf", "qwen2", "adapter", {0, "attn_q", C, 4, 4, C, 0}, "architecture 'qwen2'"},
    {"m.gguf", "llama", "model", {0, "attn_q", C, 4, 4, C, 0}, "not a LoRA adapter"},
};

static void test_refused(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect_refused(write_adapter(refused[i].name, refused[i].arch, refused[i].type, 8,
                                     QUANT_F32, &refused[i].s, 1, 0, 1),
                       refused[i].want);
    /* the model itself; no file */
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/gguf/stories260K-F16.gguf", test_dir());
    expect_refused(path, "not a LoRA adapter");
    snprintf(path, sizeof path, "%s/none.gguf", dir);
    expect_refused(path, "none.gguf");
    /* an adapter loaded for one model is refused by an engine of another */
    infer_model *m2;
    base_err e = {0};
    snprintf(path, sizeof path, "%s/fixtures/gguf/stories260K-BF16.gguf", test_dir());
    assert_int_equal(infer_model_load(&m2, path, NULL, &e), 0);
    infer_lora *a;
    assert_int_equal(infer_lora_load(&a, model, fixture("adapter.gguf"), 1.0f, &e), 0);
    infer_engine *g;
    assert_int_equal(infer_engine_create(&g, m2, 2, 16, 16, INFER_KV_F16, &e), 0);
    assert_int_equal(infer_engine_set_lora(g, 0, a, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "another model"));
    assert_int_equal(infer_engine_set_lora(g, 2, NULL, &e), BASE_EINVAL);
    infer_engine_free(g);
    /* and through a scheduler: the request ends in an error that says why */
    infer_sched_opts o = {.n_slots = 1, .ctx = 16, .max_queue = 1, .threads = 1};
    infer_sched *s2;
    assert_int_equal(infer_sched_create(&s2, m2, &o, &e), 0);
    int32_t pr[3] = {1, 403, 407};
    infer_sampling sp;
    infer_sampling_default(&sp);
    static answer ans;
    answer_init(&ans);
    uint64_t id;
    assert_int_equal(infer_sched_submit(s2, pr, 3, &sp, a, on_event, &ans, &id, &e), 0);
    wait_done(&ans);
    assert_int_equal(ans.finish, INFER_FINISH_ERROR);
    assert_non_null(strstr(ans.error, "another model"));
    assert_int_equal(ans.len, 0);
    infer_sched_free(s2);
    infer_lora_free(a);
    infer_model_free(m2);
}

int test_infer_lora(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llamacpp_greedy),
        cmocka_unit_test(test_zero_is_base),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests_name("infer_lora", tests, setup, teardown);
}
