/* tests/infer/test_infer.c: the inference engine. The KV-cache forward gives nn_forward's logits
 * at every position (GPT-2 and Llama families, prompts fed in uneven chunks, another sequence's
 * rows interleaved); greedy decoding of several prompts batched together -- different lengths,
 * joining at different steps, chunked prefill -- gives exactly the tokens of each alone, in the
 * engine and through the scheduler; the samplers keep exactly the right candidates on hand-made
 * logits; stop sequences across token boundaries and UTF-8 hold-back; the scheduler's errors
 * (context overflow, full queue), cancellation (a cancelled slot lets a queued request run, a
 * callback's nonzero return cancels), shutdown, and loading from an exported file. */
#include "test.h"

#include "ckpt/ckpt.h"
#include "ckpt/export.h"
#include "ckpt/safetensors.h"
#include "infer/infer.h"
#include "optim/optim.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char root[64]; /* this suite's temporary directory */
static char run_gpt2[128], run_llama[128];

static void rm_rf(const char *path) {
    assert_int_equal(test_rm_rf(path), 0);
}

/* A random model of a tiny config (vocabulary 256: bytes), weights scaled up so its
 * distributions are peaked (greedy choices are not near-ties), saved as a checkpoint in dir. */
static nn_model *make_run(const char *dir, const char *preset, int T) {
    base_err e;
    nn_config c;
    assert_int_equal(nn_config_preset(&c, preset, &e), 0);
    c.vocab_size = 256;
    c.n_layer = 2;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 1, T, &e), 0);
    nn_model_init(m, 7);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].decay)
            for (size_t j = 0; j < m->tensors[i].numel; j++)
                m->params[m->tensors[i].offset + j] *= 5;
    optim_adamw o = {0};
    assert_int_equal(optim_adamw_create(&o, m->n_params, &e), 0);
    ckpt_trainer t = {.step = 1, .steps = 1, .batch = 1, .seq = T};
    assert_int_equal(base_mkdir_p(dir, &e), 0);
    int rc = ckpt_save(dir, m, &o, &t, &e);
    if (rc) fprintf(stderr, "ckpt_save %s: %s\n", dir, e.msg);
    assert_int_equal(rc, 0);
    optim_adamw_free(&o);
    return m;
}

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/hearth-infer-XXXXXX");
    if (!mkdtemp(root)) return -1;
    snprintf(run_gpt2, sizeof run_gpt2, "%s/gpt2", root);
    snprintf(run_llama, sizeof run_llama, "%s/llama", root);
    nn_model_free(make_run(run_gpt2, "tiny", 8));
    nn_model_free(make_run(run_llama, "llama-tiny", 8));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rm_rf(root);
    return 0;
}

static infer_model *load(const char *path) {
    base_err e = {0};
    infer_model *m = NULL;
    int rc = infer_model_load(&m, path, NULL, &e);
    if (rc) fprintf(stderr, "load %s: %s\n", path, e.msg);
    assert_int_equal(rc, 0);
    return m;
}

static void prompt_tokens(int32_t *p, int n, uint64_t seed) {
    base_rng r;
    base_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) p[i] = (int32_t)(32 + base_rng_below(&r, 95)); /* printable */
}

/* ---- the forward */

/* nn_forward over the whole sequence vs the engine fed in chunks of 1..7 rows, with a second
 * sequence's rows interleaved into the same forwards: logits equal at every position. */
static void kv_parity(const char *run, const char *preset) {
    base_err e = {0};
    infer_model *im = load(run);
    const nn_config *c = infer_model_config(im);
    int T = 40, V = c->vocab_size;
    nn_model *ref;
    assert_int_equal(nn_model_create(&ref, c, 1, T, &e), 0);
    memcpy(ref->params, infer_model_nn(im)->params, ref->n_params * sizeof(float));
    int32_t tok[40], other[40];
    prompt_tokens(tok, T, 1);
    prompt_tokens(other, T, 2);
    int itok[40];
    for (int i = 0; i < T; i++) itok[i] = tok[i];
    assert_int_equal(nn_forward(ref, itok, NULL, 1, T, NULL, &e), 0);
    infer_engine *g;
    assert_int_equal(infer_engine_create(&g, im, 3, T, 16, INFER_KV_F32, &e), 0);
    float *lg = malloc((size_t)16 * V * sizeof(float));
    int32_t bt[16];
    int bs[16], bp[16], orow[16];
    int done = 0, odone = 0, chunk = 1;
    while (done < T) {
        int k = chunk < T - done ? chunk : T - done, n = 0;
        /* the other sequence (slot 0) first, one row, then this one's chunk (slot 2) */
        if (odone < T) bt[n] = other[odone], bs[n] = 0, bp[n] = odone++, n++;
        for (int j = 0; j < k; j++) {
            bt[n] = tok[done + j], bs[n] = 2, bp[n] = done + j;
            orow[j] = n++;
        }
        /* single rows as decode rows (the row-at-a-time product), chunks as prompt rows (sgemm)
         * beside the other sequence's decode row: both products against nn_forward */
        int n_dec = k == 1 ? n : 1;
        assert_int_equal(infer_forward(g, bt, bs, bp, n, n_dec, orow, k, lg, &e), 0);
        for (int j = 0; j < k; j++) {
            char what[64];
            snprintf(what, sizeof what, "%s logits at position %d", preset, done + j);
            assert_close(lg + (size_t)j * V, nn_logits_at(ref, 0, done + j), (size_t)V, 1e-4, what);
        }
        done += k;
        chunk = chunk % 7 + 1;
    }
    /* bad rows are refused, naming what is wrong */
    bt[0] = 300, bs[0] = 0, bp[0] = 0;
    assert_int_equal(infer_forward(g, bt, bs, bp, 1, 0, orow, 0, lg, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "outside the vocabulary"));
    bt[0] = 1, bp[0] = T;
    assert_int_equal(infer_forward(g, bt, bs, bp, 1, 0, orow, 0, lg, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "outside the context"));
    bt[0] = 1, bp[0] = 0, bt[1] = 2, bs[1] = 1, bp[1] = 0, orow[0] = 1, orow[1] = 0;
    assert_int_equal(infer_forward(g, bt, bs, bp, 2, 1, orow, 2, lg, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "after a prompt row"));
    free(lg);
    infer_engine_free(g);
    nn_model_free(ref);
    infer_model_free(im);
}

static void test_kv_parity_gpt2(void **state) {
    (void)state;
    kv_parity(run_gpt2, "gpt2");
}
static void test_kv_parity_llama(void **state) {
    (void)state;
    kv_parity(run_llama, "llama");
}

/* A decode row's logits are bit-identical alone and among 1..7 other decode rows (the
 * row-at-a-time product groups rows by four: every grouping is crossed). */
static void test_decode_rows_exact(void **state) {
    (void)state;
    base_err e;
    infer_model *im = load(run_gpt2);
    int V = infer_model_config(im)->vocab_size;
    infer_engine *g;
    assert_int_equal(infer_engine_create(&g, im, 8, 32, 64, INFER_KV_F16, &e), 0);
    int32_t p[8];
    prompt_tokens(p, 8, 3);
    int32_t bt[8];
    int bs[8], bp[8], orow[8];
    for (int sl = 0; sl < 8; sl++) { /* the same 8-token prompt in every slot */
        int s8[8], pos[8];
        for (int i = 0; i < 8; i++) s8[i] = sl, pos[i] = i;
        assert_int_equal(infer_forward(g, p, s8, pos, 8, 0, orow, 0, NULL, &e), 0);
    }
    float *alone = malloc((size_t)V * sizeof(float)), *lg = malloc((size_t)8 * V * sizeof(float));
    bt[0] = 70, bs[0] = 0, bp[0] = 8, orow[0] = 0;
    assert_int_equal(infer_forward(g, bt, bs, bp, 1, 1, orow, 1, alone, &e), 0);
    for (int n = 2; n <= 8; n++) {
        /* slot 0's row at places 1..4 of groups of four, and in the tail (n 5: row 4) */
        int at = n == 5 ? 4 : n / 2;
        for (int i = 0; i < n; i++) {
            bt[i] = i == at ? 70 : 40 + i, bp[i] = 8, orow[i] = i;
            bs[i] = i == at ? 0 : 1 + (i < at ? i : i - 1);
        }
        assert_int_equal(infer_forward(g, bt, bs, bp, n, n, orow, n, lg, &e), 0);
        assert_memory_equal(lg + (size_t)at * V, alone, (size_t)V * sizeof(float));
    }
    free(alone);
    free(lg);
    infer_engine_free(g);
    infer_model_free(im);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

#define NSEQ 4
#define NGEN 12
static const int plen[NSEQ] = {3, 17, 9, 1};
static const int join_step[NSEQ] = {0, 0, 3, 6};

/* Greedy decoding of prompt p alone: the whole prompt in one forward, then a row per token. */
static void greedy_alone(const infer_model *im, const int32_t *p, int n, int32_t *out) {
    base_err e;
    infer_engine *g;
    int V = infer_model_config(im)->vocab_size;
    assert_int_equal(infer_engine_create(&g, im, 1, 64, 64, INFER_KV_F16, &e), 0);
    float *lg = malloc((size_t)V * sizeof(float));
    int32_t t[64];
    int s[64] = {0}, pos[64], last;
    for (int i = 0; i < n; i++) t[i] = p[i], pos[i] = i;
    last = n - 1;
    assert_int_equal(infer_forward(g, t, s, pos, n, 0, &last, 1, lg, &e), 0);
    for (int k = 0; k < NGEN; k++) {
        out[k] = argmax(lg, V);
        int pk = n + k, zero = 0;
        if (k + 1 < NGEN)
            assert_int_equal(infer_forward(g, &out[k], s, &pk, 1, 1, &zero, 1, lg, &e), 0);
    }
    free(lg);
    infer_engine_free(g);
}

/* The same prompts batched: sequences join at different steps, prompts prefilled 4 rows per
 * step while the others decode. The tokens must be exactly the ones decoded alone. */
static void batched_vs_alone(const char *run) {
    base_err e;
    infer_model *im = load(run);
    int V = infer_model_config(im)->vocab_size;
    int32_t p[NSEQ][32], alone[NSEQ][NGEN], got[NSEQ][NGEN];
    for (int i = 0; i < NSEQ; i++) {
        prompt_tokens(p[i], plen[i], 10 + (uint64_t)i);
        greedy_alone(im, p[i], plen[i], alone[i]);
    }
    infer_engine *g;
    assert_int_equal(infer_engine_create(&g, im, NSEQ, 64, 64, INFER_KV_F16, &e), 0);
    float *lg = malloc((size_t)NSEQ * V * sizeof(float));
    int past[NSEQ] = {0}, ngot[NSEQ] = {0}, chunk = 4;
    for (int st = 0;; st++) {
        int32_t bt[64];
        int bs[64], bp[64], orow[NSEQ], who[NSEQ], n = 0, nout = 0, active = 0, n_dec;
        for (int i = 0; i < NSEQ; i++) /* decode rows first */
            if (st >= join_step[i] && ngot[i] > 0 && ngot[i] < NGEN) {
                bt[n] = got[i][ngot[i] - 1], bs[n] = i, bp[n] = plen[i] + ngot[i] - 1;
                orow[nout] = n++, who[nout++] = i;
            }
        n_dec = n;
        for (int i = 0; i < NSEQ; i++) {
            if (st < join_step[i] || ngot[i] == NGEN) continue;
            active = 1;
            if (past[i] < plen[i]) {
                int k = plen[i] - past[i] < chunk ? plen[i] - past[i] : chunk;
                for (int j = 0; j < k; j++, n++)
                    bt[n] = p[i][past[i] + j], bs[n] = i, bp[n] = past[i] + j;
                past[i] += k;
                if (past[i] == plen[i]) orow[nout] = n - 1, who[nout++] = i;
            }
        }
        if (!active && st > join_step[NSEQ - 1]) break;
        if (!n) continue;
        assert_int_equal(infer_forward(g, bt, bs, bp, n, n_dec, orow, nout, lg, &e), 0);
        for (int j = 0; j < nout; j++) {
            int i = who[j];
            got[i][ngot[i]++] = argmax(lg + (size_t)j * V, V);
        }
    }
    for (int i = 0; i < NSEQ; i++) assert_memory_equal(got[i], alone[i], sizeof alone[i]);
    free(lg);
    infer_engine_free(g);
    infer_model_free(im);
}

static void test_batched_greedy(void **state) {
    (void)state;
    batched_vs_alone(run_gpt2);
    batched_vs_alone(run_llama);
}

/* ---- sampling */

static int kept(infer_sampler_scratch *s, int n, int id) {
    for (int i = 0; i < n; i++)
        if (s->idx[i] == id) return 1;
    return 0;
}

static void test_sampling_filters(void **state) {
    (void)state;
    enum { V = 8 };
    int idx[V];
    float prob[V], lg[V];
    infer_sampler_scratch s = {idx, prob};
    /* probabilities 0.4 0.25 0.15 0.1 0.05 0.03 0.015 0.005 (ids shuffled) */
    const float p[V] = {0.1f, 0.4f, 0.005f, 0.15f, 0.05f, 0.25f, 0.03f, 0.015f};
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.temperature = 1, sp.top_k = 0, sp.top_p = 1, sp.min_p = 0;
#define RESET()                                                                                    \
    for (int i = 0; i < V; i++) lg[i] = logf(p[i]) + 3.0f
    /* no filter: everything, with its probability */
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), V);
    for (int i = 0; i < V; i++) assert_true(fabsf(prob[i] - p[idx[i]]) < 1e-6f);
    /* top-k 3: ids 1, 5, 3 in that order */
    sp.top_k = 3;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 3);
    assert_int_equal(idx[0], 1), assert_int_equal(idx[1], 5), assert_int_equal(idx[2], 3);
    assert_true(fabsf(prob[0] - 0.4f / 0.8f) < 1e-6f);
    /* top-p: the smallest prefix reaching p: 0.6 -> {1, 5} (0.65); 0.66 -> {1, 5, 3} (0.8);
     * 0.4 -> {1} exactly at the boundary */
    sp.top_k = 0, sp.top_p = 0.6f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 2);
    assert_true(kept(&s, 2, 1) && kept(&s, 2, 5));
    sp.top_p = 0.66f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 3);
    sp.top_p = 0.39f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 1);
    assert_int_equal(idx[0], 1);
    /* top-p after top-k renormalises over the k: k 3 (0.4 0.25 0.15 -> 0.5 0.3125 0.1875), p 0.8
     * -> {1, 5}: 0.8125 */
    sp.top_k = 3, sp.top_p = 0.8f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 2);
    /* min-p 0.3: p >= 0.12 -> {1, 5, 3}; min-p 0.25 keeps 0.1 too (0.1 = 0.25 * 0.4) */
    sp.top_k = 0, sp.top_p = 1, sp.min_p = 0.3f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 3);
    assert_true(kept(&s, 3, 1) && kept(&s, 3, 5) && kept(&s, 3, 3));
    sp.min_p = 0.2f;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 4);
    assert_true(kept(&s, 4, 0));
    /* temperature reshapes the survivors' probabilities only: T 2 gives sqrt-proportional */
    sp.min_p = 0.3f, sp.temperature = 2;
    RESET();
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 3);
    float z = sqrtf(0.4f) + sqrtf(0.25f) + sqrtf(0.15f);
    assert_true(fabsf(prob[0] - sqrtf(0.4f) / z) < 1e-5f);
    /* ties: ordered by id */
    for (int i = 0; i < V; i++) lg[i] = 1;
    sp.top_k = 2, sp.min_p = 0;
    assert_int_equal(infer_sample_candidates(lg, V, &sp, NULL, 0, &s), 2);
    assert_int_equal(idx[0], 0), assert_int_equal(idx[1], 1);
#undef RESET
}

static void test_repeat_penalty(void **state) {
    (void)state;
    float lg[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    const int32_t recent[] = {0, 1, 0, 0, 7}; /* 7: outside the vocabulary, ignored */
    infer_repeat_penalty(lg, 4, 2.0f, recent, 5);
    /* each distinct token once: positive divided, negative multiplied */
    assert_true(lg[0] == 1.0f && lg[1] == -4.0f && lg[2] == 1.0f && lg[3] == 0.5f);
    /* through the sampler with a window: only the last repeat_last_n tokens count */
    float l2[4] = {2.0f, 1.9f, 0.0f, 0.0f};
    int idx[4];
    float prob[4];
    infer_sampler_scratch s = {idx, prob};
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.temperature = 0, sp.repeat_penalty = 1.5f, sp.repeat_last_n = 1;
    const int32_t hist[] = {1, 0};
    base_rng r;
    base_rng_seed(&r, 1);
    assert_int_equal(infer_sample(l2, 4, &sp, hist, 2, &r, &s), 1); /* 2/1.5 < 1.9 */
    float l3[4] = {2.0f, 1.9f, 0.0f, 0.0f};
    assert_int_equal(infer_sample(l3, 4, &sp, hist, 1, &r, &s), 0); /* window holds only 1 */
}

static void test_sampling_draws(void **state) {
    (void)state;
    enum { V = 50 };
    int idx[V];
    float prob[V], lg[V], base[V];
    infer_sampler_scratch s = {idx, prob};
    base_rng r;
    base_rng_seed(&r, 3);
    test_fill(&r, base, V, -2, 2);
    infer_sampling sp;
    infer_sampling_default(&sp);
    /* temperature 0 is the argmax, whatever the rng */
    sp.temperature = 0;
    for (int k = 0; k < 5; k++) {
        memcpy(lg, base, sizeof lg);
        assert_int_equal(infer_sample(lg, V, &sp, NULL, 0, &r, &s), argmax(base, V));
    }
    /* same seed, same draws; another seed, other draws */
    sp.temperature = 1, sp.top_k = 0, sp.top_p = 1, sp.min_p = 0;
    int32_t a[64], b[64], c[64];
    base_rng ra, rb, rc;
    base_rng_seed(&ra, 42), base_rng_seed(&rb, 42), base_rng_seed(&rc, 43);
    int differ = 0;
    for (int k = 0; k < 64; k++) {
        memcpy(lg, base, sizeof lg), a[k] = infer_sample(lg, V, &sp, NULL, 0, &ra, &s);
        memcpy(lg, base, sizeof lg), b[k] = infer_sample(lg, V, &sp, NULL, 0, &rb, &s);
        memcpy(lg, base, sizeof lg), c[k] = infer_sample(lg, V, &sp, NULL, 0, &rc, &s);
        differ += a[k] != c[k];
    }
    assert_memory_equal(a, b, sizeof a);
    assert_true(differ > 10);
    /* the draws follow the softmax: each frequency within 5 sigma over 20000 draws */
    int count[V] = {0}, n = 20000;
    for (int k = 0; k < n; k++) {
        memcpy(lg, base, sizeof lg);
        count[infer_sample(lg, V, &sp, NULL, 0, &ra, &s)]++;
    }
    double mx = base[argmax(base, V)], z = 0;
    for (int i = 0; i < V; i++) z += exp(base[i] - mx);
    for (int i = 0; i < V; i++) {
        double pi = exp(base[i] - mx) / z, sd = sqrt(n * pi * (1 - pi));
        assert_true(fabs(count[i] - n * pi) <= 5 * sd + 1);
    }
}

/* ---- text: UTF-8 and stop sequences */

static void push_all(infer_text *t, const char *const *parts, int n, char *out, int *stopped) {
    size_t len = 0;
    *stopped = 0;
    for (int i = 0; i < n && !*stopped; i++) {
        const char *p;
        size_t k;
        assert_int_equal(infer_text_push(t, parts[i], strlen(parts[i]), &p, &k, stopped), 0);
        memcpy(out + len, p, k), len += k;
    }
    if (!*stopped) {
        const char *p;
        size_t k;
        assert_int_equal(infer_text_flush(t, &p, &k), 0);
        memcpy(out + len, p, k), len += k;
    }
    out[len] = 0;
}

static void test_text_stops(void **state) {
    (void)state;
    infer_text t;
    char out[256];
    int stopped;
    const char *stops[] = {"END", "\n\n", ""};
    /* a stop split over three tokens: the text before it only */
    const char *a[] = {"abc E", "N", "D more", "x"};
    infer_text_init(&t, stops, 3);
    assert_int_equal(t.n_stop, 2); /* the empty one is ignored */
    push_all(&t, a, 4, out, &stopped);
    assert_true(stopped);
    assert_string_equal(out, "abc ");
    infer_text_free(&t);
    /* a held-back prefix that does not complete is emitted later, in order */
    const char *b[] = {"E", "N", "x", "\n", "y"};
    const char *p;
    size_t k;
    infer_text_init(&t, stops, 2);
    assert_int_equal(infer_text_push(&t, "E", 1, &p, &k, &stopped), 0);
    assert_int_equal(k, 0); /* "E" may start "END" */
    infer_text_free(&t);
    infer_text_init(&t, stops, 2);
    push_all(&t, b, 5, out, &stopped);
    assert_false(stopped);
    assert_string_equal(out, "ENx\ny");
    infer_text_free(&t);
    /* the stop right at the start, and the newline pair */
    const char *c[] = {"\n", "\nabc"};
    infer_text_init(&t, stops, 2);
    push_all(&t, c, 2, out, &stopped);
    assert_true(stopped);
    assert_string_equal(out, "");
    infer_text_free(&t);
    /* UTF-8: a character split over tokens waits until complete; invalid bytes and a character
     * cut by the end become U+FFFD */
    infer_text_init(&t, NULL, 0);
    assert_int_equal(infer_text_push(&t, "a\xE6\x97", 3, &p, &k, &stopped), 0);
    assert_int_equal(k, 1);
    assert_int_equal(infer_text_push(&t, "\xA5", 1, &p, &k, &stopped), 0);
    assert_int_equal(k, 3);
    assert_memory_equal(p, "\xE6\x97\xA5", 3);
    assert_int_equal(infer_text_push(&t,
                                     "\xFF"
                                     "b\xC3",
                                     3, &p, &k, &stopped),
                     0);
    assert_int_equal(k, 4);
    assert_memory_equal(p,
                        "\xEF\xBF\xBD"
                        "b",
                        4);
    assert_int_equal(infer_text_push(&t, "c", 1, &p, &k, &stopped), 0); /* C3 then c: broken */
    assert_int_equal(k, 4);
    assert_memory_equal(p,
                        "\xEF\xBF\xBD"
                        "c",
                        4);
    assert_int_equal(infer_text_push(&t, "\xF0\x9F", 2, &p, &k, &stopped), 0);
    assert_int_equal(k, 0);
    assert_int_equal(infer_text_flush(&t, &p, &k), 0);
    assert_int_equal(k, 3);
    assert_memory_equal(p, "\xEF\xBF\xBD", 3);
    /* an overlong form and a surrogate are invalid */
    assert_int_equal(infer_text_push(&t, "\xC0\xAF\xED\xA0\x80", 5, &p, &k, &stopped), 0);
    assert_null(memchr(p, 0xC0, k));
    assert_null(memchr(p, 0xED, k));
    infer_text_free(&t);
    /* the first token is half a character while a stop is set (every chat request has one):
     * nothing is emitted, and the empty buffer reaches neither memmem nor pointer arithmetic
     * (UBSan aborted here); the character completes with the next token */
    infer_text_init(&t, stops, 2);
    assert_int_equal(infer_text_push(&t, "\xE2", 1, &p, &k, &stopped), 0);
    assert_int_equal(k, 0);
    assert_non_null(p);
    assert_false(stopped);
    assert_int_equal(infer_text_push(&t,
                                     "\x82\xAC"
                                     "E",
                                     3, &p, &k, &stopped),
                     0);
    assert_int_equal(k, 3); /* "E" may start "END": held back */
    assert_memory_equal(p, "\xE2\x82\xAC", 3);
    infer_text_free(&t);
    /* a sequence that ends with no text at all */
    infer_text_init(&t, stops, 2);
    assert_int_equal(infer_text_flush(&t, &p, &k), 0);
    assert_int_equal(k, 0);
    assert_non_null(p);
    infer_text_free(&t);
}

/* ---- the scheduler */

typedef struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char text[4096];
    size_t len;
    int n_text, done, cancel_after; /* cancel_after > 0: return 1 on that TEXT event */
    int gate;                       /* nonzero: the first TEXT event waits until it is 0 */
    int at_gate;
    infer_event last;
    /* a request to submit from this callback once it has had join_after TEXT events */
    infer_sched *s;
    int join_after;
    const int32_t *join_prompt;
    int join_n;
    struct collect *join_into;
} collect;

static void collect_init(collect *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static int on_event(void *ud, const infer_event *ev);

static void submit_ok(infer_sched *s, const int32_t *p, int n, const infer_sampling *sp, collect *c,
                      uint64_t *id) {
    base_err e = {0};
    int rc = infer_sched_submit(s, p, (size_t)n, sp, NULL, on_event, c, id, &e);
    if (rc) fprintf(stderr, "submit: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

static infer_sampling greedy;

static int on_event(void *ud, const infer_event *ev) {
    collect *c = ud;
    pthread_mutex_lock(&c->mu);
    int ret = 0;
    if (ev->kind == INFER_EV_TEXT) {
        c->n_text++;
        if (c->len + ev->len < sizeof c->text)
            memcpy(c->text + c->len, ev->text, ev->len), c->len += ev->len;
        if (c->gate) {
            c->at_gate = 1;
            pthread_cond_broadcast(&c->cv);
            while (c->gate) pthread_cond_wait(&c->cv, &c->mu);
        }
        if (c->cancel_after && c->n_text == c->cancel_after) ret = 1;
        if (c->join_into && c->n_text == c->join_after) {
            uint64_t id;
            submit_ok(c->s, c->join_prompt, c->join_n, &greedy, c->join_into, &id);
            c->join_into = NULL;
        }
    } else {
        c->last = *ev;
        c->done = 1;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return ret;
}

static void wait_done(collect *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void wait_gate(collect *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->at_gate) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void open_gate(collect *c) {
    pthread_mutex_lock(&c->mu);
    c->gate = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static infer_sched *sched_rows(infer_model *m, int slots, int queue, int chunk, int max_rows) {
    base_err e = {0};
    infer_sched *s;
    infer_sched_opts o = {.n_slots = slots,
                          .ctx = 64,
                          .max_queue = queue,
                          .prefill_chunk = chunk,
                          .threads = 2,
                          .max_rows = max_rows};
    assert_int_equal(infer_sched_create(&s, m, &o, &e), 0);
    return s;
}

static infer_sched *sched(infer_model *m, int slots, int queue, int chunk) {
    return sched_rows(m, slots, queue, chunk, 0);
}

/* The scheduler's text for several greedy requests batched (two joining later, from another
 * request's callback, while the first ones decode) equals each one's text alone. */
static void sched_batched(int max_rows) {
    infer_model *m = load(run_llama);
    infer_sampling_default(&greedy);
    greedy.temperature = 0, greedy.max_tokens = 16;
    int32_t p[NSEQ][32];
    collect alone[NSEQ], bat[NSEQ];
    uint64_t id;
    infer_sched *s = sched(m, 1, 0, 4);
    for (int i = 0; i < NSEQ; i++) {
        prompt_tokens(p[i], plen[i], 20 + (uint64_t)i);
        collect_init(&alone[i]);
        submit_ok(s, p[i], plen[i], &greedy, &alone[i], &id);
        wait_done(&alone[i]);
        assert_int_equal(alone[i].last.finish, INFER_FINISH_LENGTH);
        assert_int_equal(alone[i].last.completion_tokens, 16);
        assert_int_equal(alone[i].last.prompt_tokens, plen[i]);
    }
    infer_sched_free(s);
    s = sched_rows(m, NSEQ, 0, 4, max_rows);
    for (int i = 0; i < NSEQ; i++) collect_init(&bat[i]);
    bat[0].s = s, bat[0].join_after = 2, bat[0].join_prompt = p[2], bat[0].join_n = plen[2];
    bat[0].join_into = &bat[2];
    bat[1].s = s, bat[1].join_after = 5, bat[1].join_prompt = p[3], bat[1].join_n = plen[3];
    bat[1].join_into = &bat[3];
    submit_ok(s, p[0], plen[0], &greedy, &bat[0], &id);
    submit_ok(s, p[1], plen[1], &greedy, &bat[1], &id);
    for (int i = 0; i < NSEQ; i++) {
        wait_done(&bat[i]);
        assert_int_equal(bat[i].last.finish, INFER_FINISH_LENGTH);
        assert_int_equal(bat[i].len, alone[i].len);
        assert_memory_equal(bat[i].text, alone[i].text, alone[i].len);
        assert_true(bat[i].last.ttft_s > 0 && bat[i].last.total_s >= bat[i].last.ttft_s);
    }
    infer_sched_stats st;
    infer_sched_get_stats(s, &st);
    assert_int_equal(st.busy_slots, 0);
    assert_int_equal(st.queued, 0);
    infer_sched_free(s);
    infer_model_free(m);
}

static void test_sched_batched(void **state) {
    (void)state;
    sched_batched(0);
    sched_batched(NSEQ + 1); /* a step budget: decode rows first, one prompt row beside them */
    base_err e;
    infer_model *m = load(run_gpt2);
    infer_sched *s;
    infer_sched_opts o = {.n_slots = 4, .ctx = 64, .prefill_chunk = 8, .max_rows = 3};
    assert_int_equal(infer_sched_create(&s, m, &o, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "at least the slots"));
    infer_model_free(m);
}

/* Sampled text: the same seed gives the same text alone or batched with another request;
 * another seed another text. A stop string taken from the middle of a greedy output ends the
 * text right before it (across tokens: every token is one byte here). */
static void test_sched_seed_and_stop(void **state) {
    (void)state;
    infer_model *m = load(run_gpt2);
    infer_sampling sp;
    infer_sampling_default(&sp);
    sp.temperature = 1.0f, sp.top_k = 0, sp.top_p = 1, sp.min_p = 0, sp.max_tokens = 30;
    sp.seed = 99;
    int32_t p[8], q[5];
    prompt_tokens(p, 8, 5);
    prompt_tokens(q, 5, 6);
    collect a, b, other, c;
    uint64_t id;
    infer_sched *s = sched(m, 2, 0, 3);
    collect_init(&a);
    submit_ok(s, p, 8, &sp, &a, &id);
    wait_done(&a);
    collect_init(&b), collect_init(&other);
    infer_sampling sp2 = sp;
    sp2.seed = 1;
    submit_ok(s, q, 5, &sp2, &other, &id);
    submit_ok(s, p, 8, &sp, &b, &id);
    wait_done(&b), wait_done(&other);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.text, b.text, a.len);
    collect_init(&c);
    sp.seed = 100;
    submit_ok(s, p, 8, &sp, &c, &id);
    wait_done(&c);
    assert_true(c.len != a.len || memcmp(c.text, a.text, a.len) != 0);
    /* stop sequences */
    infer_sampling g;
    infer_sampling_default(&g);
    g.temperature = 0, g.max_tokens = 40;
    collect full, cut;
    collect_init(&full);
    submit_ok(s, p, 8, &g, &full, &id);
    wait_done(&full);
    assert_true(full.len >= 12);
    char stop[8];
    size_t at = 6;
    /* a stop starting at a character boundary, of ASCII or whole characters */
    while (at < full.len && ((unsigned char)full.text[at] & 0xC0) == 0x80) at++;
    size_t sl = 3;
    while (at + sl < full.len && ((unsigned char)full.text[at + sl] & 0xC0) == 0x80) sl++;
    memcpy(stop, full.text + at, sl), stop[sl] = 0;
    const char *first = strstr(full.text, stop);
    g.n_stop = 1, g.stop[0] = stop;
    collect_init(&cut);
    submit_ok(s, p, 8, &g, &cut, &id);
    wait_done(&cut);
    assert_int_equal(cut.last.finish, INFER_FINISH_STOP);
    assert_int_equal(cut.len, (size_t)(first - full.text));
    assert_memory_equal(cut.text, full.text, cut.len);
    infer_sched_free(s);
    infer_model_free(m);
}

static void *free_sched(void *s) {
    infer_sched_free(s);
    return NULL;
}

static void test_sched_errors(void **state) {
    (void)state;
    infer_model *m = load(run_gpt2);
    base_err e = {0};
    infer_sched *s = sched(m, 1, 1, 8);
    int32_t p[64];
    prompt_tokens(p, 64, 1);
    uint64_t id;
    infer_sampling g;
    infer_sampling_default(&g);
    g.temperature = 0;
    /* a prompt that leaves no room: both counts in the message */
    assert_int_equal(infer_sched_submit(s, p, 64, &g, NULL, on_event, NULL, &id, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "64 tokens"));
    assert_non_null(strstr(e.msg, "context holds 64"));
    assert_int_equal(infer_sched_submit(s, p, 0, &g, NULL, on_event, NULL, &id, &e), BASE_EINVAL);
    p[3] = 256;
    assert_int_equal(infer_sched_submit(s, p, 5, &g, NULL, on_event, NULL, &id, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "token 3"));
    p[3] = 65;
    g.top_p = 0;
    assert_int_equal(infer_sched_submit(s, p, 5, &g, NULL, on_event, NULL, &id, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "top_p"));
    g.top_p = 1;
    /* queue full: one slot held by a request paused in its callback, one queued, the next
     * refused; cancelling the running one lets the queued one run */
    collect a, b, c;
    collect_init(&a), collect_init(&b), collect_init(&c);
    a.gate = 1;
    uint64_t ida, idb;
    g.max_tokens = 0; /* until the context is full: it cannot end before the gate opens */
    submit_ok(s, p, 5, &g, &a, &ida);
    wait_gate(&a);
    g.max_tokens = 5;
    submit_ok(s, p, 4, &g, &b, &idb);
    assert_int_equal(infer_sched_submit(s, p, 3, &g, NULL, on_event, &c, &id, &e), INFER_EFULL);
    assert_non_null(strstr(e.msg, "queue is full"));
    infer_sched_stats st;
    infer_sched_get_stats(s, &st);
    assert_int_equal(st.busy_slots, 1);
    assert_int_equal(st.queued, 1);
    infer_sched_cancel(s, ida);
    infer_sched_cancel(s, 12345); /* unknown: ignored */
    open_gate(&a);
    wait_done(&a);
    assert_int_equal(a.last.finish, INFER_FINISH_CANCELLED);
    assert_true(a.last.completion_tokens < 60);
    wait_done(&b);
    assert_int_equal(b.last.finish, INFER_FINISH_LENGTH);
    assert_int_equal(b.last.completion_tokens, 5);
    assert_true(b.last.queue_s > 0);
    infer_sched_cancel(s, idb); /* finished: ignored */
    /* a callback returning nonzero cancels its request */
    collect d;
    collect_init(&d);
    d.cancel_after = 1;
    g.max_tokens = 0;
    submit_ok(s, p, 5, &g, &d, &id);
    wait_done(&d);
    assert_int_equal(d.last.finish, INFER_FINISH_CANCELLED);
    assert_int_equal(d.n_text, 1);
    assert_true(d.last.completion_tokens <= 4); /* a character needs at most 4 bytes */
    /* cancelling a queued request: it ends cancelled without a token, the running one goes on */
    collect q1, q2;
    collect_init(&q1), collect_init(&q2);
    q1.gate = 1;
    uint64_t idq;
    submit_ok(s, p, 5, &g, &q1, &id);
    wait_gate(&q1);
    submit_ok(s, p, 5, &g, &q2, &idq);
    infer_sched_cancel(s, idq);
    infer_sched_cancel(s, idq); /* twice: still one cancellation */
    open_gate(&q1);
    wait_done(&q2);
    assert_int_equal(q2.last.finish, INFER_FINISH_CANCELLED);
    assert_int_equal(q2.last.completion_tokens, 0);
    assert_int_equal(q2.n_text, 0);
    wait_done(&q1);
    assert_int_equal(q1.last.finish, INFER_FINISH_LENGTH);
    assert_int_equal(q1.last.prompt_tokens + q1.last.completion_tokens, 64); /* the context */
    /* free with a request running and one queued: both end cancelled. The running one is held
     * in its callback until the scheduler is shutting down (a submit says so), so that neither
     * can run to its end first (opening the gate before freeing let a fast machine finish both) */
    collect x, y;
    collect_init(&x), collect_init(&y);
    x.gate = 1;
    submit_ok(s, p, 5, &g, &x, &id);
    wait_gate(&x);
    submit_ok(s, p, 5, &g, &y, &id);
    pthread_t freer;
    assert_int_equal(pthread_create(&freer, NULL, free_sched, s), 0);
    for (;;) { /* the queue is full: refused either way, with the reason */
        base_err e2 = {0};
        assert_int_not_equal(infer_sched_submit(s, p, 5, &g, NULL, on_event, NULL, &id, &e2), 0);
        if (strstr(e2.msg, "shutting down")) break;
        usleep(1000);
    }
    open_gate(&x);
    pthread_join(freer, NULL);
    assert_true(x.done && y.done);
    assert_int_equal(x.last.finish, INFER_FINISH_CANCELLED);
    assert_int_equal(y.last.finish, INFER_FINISH_CANCELLED);
    assert_int_equal(y.last.completion_tokens, 0);
    infer_model_free(m);
}

/* Many threads submitting at once: every request completes with its own text. */
typedef struct submitter {
    infer_sched *s;
    int32_t p[6];
    collect c[5];
} submitter;

static void *submit_many(void *arg) {
    submitter *t = arg;
    infer_sampling g;
    infer_sampling_default(&g);
    g.temperature = 0, g.max_tokens = 6;
    for (int i = 0; i < 5; i++) {
        uint64_t id;
        collect_init(&t->c[i]);
        base_err e;
        int rc;
        while ((rc = infer_sched_submit(t->s, t->p, 6, &g, NULL, on_event, &t->c[i], &id, &e)) ==
               INFER_EFULL)
            usleep(1000); /* the others' requests hold the queue: retry */
        if (rc) return NULL;
    }
    for (int i = 0; i < 5; i++) wait_done(&t->c[i]);
    return t;
}

static void test_sched_threads(void **state) {
    (void)state;
    infer_model *m = load(run_gpt2);
    infer_sched *s = sched(m, 3, 8, 4); /* 20 requests, room for 11: some meet a full queue */
    submitter t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i].s = s;
        prompt_tokens(t[i].p, 6, 40 + (uint64_t)i);
        assert_int_equal(pthread_create(&th[i], NULL, submit_many, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_ptr_equal(r, &t[i]);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(t[i].c[k].last.finish, INFER_FINISH_LENGTH);
            assert_int_equal(t[i].c[k].len, t[i].c[0].len);
            assert_memory_equal(t[i].c[k].text, t[i].c[0].text, t[i].c[0].len);
        }
    }
    infer_sched_free(s);
    infer_model_free(m);
}

/* ---- loading */

static void test_load(void **state) {
    (void)state;
    base_err e = {0};
    infer_model *m = NULL;
    char p[256], st[256];
    assert_int_equal(infer_model_load(&m, "/nonexistent/run", NULL, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/run"));
    assert_null(m);
    /* a directory without checkpoints */
    snprintf(p, sizeof p, "%s/empty", root);
    assert_int_equal(base_mkdir_p(p, &e), 0);
    assert_int_not_equal(infer_model_load(&m, p, NULL, &e), 0);
    assert_non_null(strstr(e.msg, "no checkpoint"));
    /* a file that is not safetensors */
    snprintf(p, sizeof p, "%s/junk.safetensors", root);
    assert_int_equal(base_write_atomic(p, "not a model at all", 18, &e), 0);
    assert_int_not_equal(infer_model_load(&m, p, NULL, &e), 0);
    assert_null(m);
    /* safetensors without a config, and with a config that does not build */
    float one = 1;
    ckpt_st_tensor t1 = {.name = "wte", .ndim = 1, .shape = {1}, .data = &one};
    snprintf(p, sizeof p, "%s/noconf.safetensors", root);
    assert_int_equal(ckpt_st_write(p, &t1, 1, NULL, NULL, NULL, &e), 0);
    assert_int_equal(infer_model_load(&m, p, NULL, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "no \"config\""));
    const char *meta[] = {"config",
                          "{\"family\":\"gpt2\",\"vocab_size\":256,\"max_seq\":8,\"n_layer\":1,"
                          "\"n_head\":5,\"n_kv_head\":5,\"d_model\":64,\"d_ff\":8,\"tied\":1,"
                          "\"bias\":1,\"norm_eps\":1e-5,\"rope_theta\":10000}",
                          NULL};
    assert_int_equal(ckpt_st_write(p, &t1, 1, meta, NULL, NULL, &e), 0);
    assert_int_equal(infer_model_load(&m, p, NULL, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "n_head (5) does not divide d_model (64)"));
    /* a config that builds, but the tensors are not the model's */
    meta[1] = "{\"family\":\"gpt2\",\"vocab_size\":256,\"max_seq\":8,\"n_layer\":1,"
              "\"n_head\":4,\"n_kv_head\":4,\"d_model\":64,\"d_ff\":8,\"tied\":1,"
              "\"bias\":1,\"norm_eps\":1e-5,\"rope_theta\":10000}";
    assert_int_equal(ckpt_st_write(p, &t1, 1, meta, NULL, NULL, &e), 0);
    assert_int_equal(infer_model_load(&m, p, NULL, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "noconf.safetensors"));
    assert_null(m);
    /* the exported file loads to the same weights, its name is the file's stem */
    snprintf(st, sizeof st, "%s/export.safetensors", root);
    assert_int_equal(ckpt_export(run_llama, st, NULL, &e), 0);
    infer_model *a = load(run_llama), *b = load(st);
    assert_string_equal(infer_model_name(a), "llama");
    assert_string_equal(infer_model_name(b), "export");
    assert_int_equal(infer_model_family(b), NN_LLAMA);
    const nn_model *na = infer_model_nn(a), *nb = infer_model_nn(b);
    assert_int_equal(na->n_params, nb->n_params);
    assert_memory_equal(na->params, nb->params, na->n_params * sizeof(float));
    assert_null(na->grads); /* inference keeps no gradients */
    /* a checkpoint directory itself loads too */
    char *dir = NULL;
    assert_int_equal(ckpt_find_latest_good(run_gpt2, &dir, NULL, NULL, &e), 0);
    infer_model *c = load(dir);
    assert_int_equal(infer_model_family(c), NN_GPT2);
    free(dir);
    /* a tokenizer that is not there */
    assert_int_not_equal(infer_model_load(&m, run_gpt2, "/nonexistent.htok", &e), 0);
    infer_model_free(a), infer_model_free(b), infer_model_free(c);
}

int test_infer(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_parity_gpt2),
        cmocka_unit_test(test_kv_parity_llama),
        cmocka_unit_test(test_batched_greedy),
        cmocka_unit_test(test_decode_rows_exact),
        cmocka_unit_test(test_sampling_filters),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_sampling_draws),
        cmocka_unit_test(test_text_stops),
        cmocka_unit_test(test_sched_batched),
        cmocka_unit_test(test_sched_seed_and_stop),
        cmocka_unit_test(test_sched_errors),
        cmocka_unit_test(test_sched_threads),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests_name("infer", tests, setup, teardown);
}
