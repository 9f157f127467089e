/* tests/nn/test_lora.c: LoRA adapters (src/nn/lora.c). Parity with PyTorch (fixtures
 * tests/fixtures/{llama,gpt2}_tiny_lora.hfix from tools/gen_fixtures.py): logits and loss within
 * 1e-4, every adapter gradient within 1e-3, the base frozen (no gradient buffer); B = 0 gives the
 * base's logits bit for bit; merging gives the adapted model's logits; dropout's masks are a
 * function of the key and its gradient matches finite differences; target lists; a frozen
 * base's backward, which skips recomputing what no adapter reads, gives the same adapter
 * gradients as a base with weight gradients. */
#include "test.h"
#include "nn/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void parity(const char *base_file, const char *lora_file) {
    test_fixture *fb, *f;
    nn_model *m = test_fixture_model(base_file, &fb);
    char path[512], name[160];
    snprintf(path, sizeof path, "%s/fixtures/%s", test_dir(), lora_file);
    assert_non_null(f = test_fixture_load(path));
    const int *lc = test_fixture_get(f, "lora.config", 2, NULL);
    float alpha = *(const float *)test_fixture_get(f, "lora.alpha", 1, NULL);
    base_err e = {0};
    nn_lora *a;
    assert_int_equal(nn_lora_create(&a, m, lc[0], alpha, 0.0f, (unsigned)lc[1], 1, &e), 0);
    nn_lora_freeze_base(m);
    assert_null(m->grads);
    nn_lora_attach(m, a);
    int n_sites = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int t = 0; t < NN_LORA_NT; t++) {
            nn_lora_site *s = nn_lora_at(a, l, t);
            if (!s->A) continue;
            n_sites++;
            size_t na = (size_t)a->rank * s->in, nb = (size_t)s->out * a->rank;
            snprintf(name, sizeof name, "lora.A.%s", nn_lora_target_names[t]);
            memcpy(s->A, (const float *)test_fixture_get(f, name, 0, NULL) + l * na,
                   na * sizeof(float));
            snprintf(name, sizeof name, "lora.B.%s", nn_lora_target_names[t]);
            memcpy(s->B, (const float *)test_fixture_get(f, name, 0, NULL) + l * nb,
                   nb * sizeof(float));
        }
    assert_int_equal(n_sites, m->cfg.n_layer * (m->cfg.family == NN_LLAMA ? 7 : 6));
    int B = m->B, T = m->T, V = m->cfg.vocab_size;
    const int *tok = test_fixture_get(f, "tokens", (size_t)B * T, NULL);
    const int *tgt = test_fixture_get(f, "targets", (size_t)B * T, NULL);
    float loss;
    assert_int_equal(nn_forward(m, tok, tgt, B, T, &loss, &e), 0);
    assert_close(m->a.logits, test_fixture_get(f, "logits", (size_t)B * T * V, NULL),
                 (size_t)B * T * V, 1e-4, "logits with adapters");
    assert_close(&loss, test_fixture_get(f, "loss", 1, NULL), 1, 1e-4, "loss with adapters");
    /* kept before backward, which reuses the logits' buffer for their gradient */
    float *adapted = malloc((size_t)B * T * V * sizeof(float));
    memcpy(adapted, m->a.logits, (size_t)B * T * V * sizeof(float));
    float *base_before = malloc(m->n_params * sizeof(float));
    memcpy(base_before, m->params, m->n_params * sizeof(float));
    nn_lora_zero_grad(a);
    nn_backward(m, 1.0f);
    assert_memory_equal(base_before, m->params, m->n_params * sizeof(float));
    for (int t = 0; t < NN_LORA_NT; t++)
        for (int ab = 0; ab < 2; ab++) {
            snprintf(name, sizeof name, "lora.g%c.%s", ab ? 'B' : 'A', nn_lora_target_names[t]);
            size_t numel = 0;
            if (!nn_lora_at(a, 0, t)->A) continue;
            const float *want = test_fixture_get(f, name, 0, &numel);
            size_t per = numel / (size_t)m->cfg.n_layer;
            for (int l = 0; l < m->cfg.n_layer; l++) {
                nn_lora_site *s = nn_lora_at(a, l, t);
                assert_close(ab ? s->gB : s->gA, want + l * per, per, 1e-3, name);
            }
        }
    /* merged: the base with scale B A added gives the adapted logits */
    nn_lora_merge(m, a);
    nn_lora_attach(m, NULL);
    assert_int_equal(nn_forward(m, tok, tgt, B, T, &loss, &e), 0);
    assert_close(m->a.logits, adapted, (size_t)B * T * V, 1e-4, "merged logits");
    free(adapted);
    free(base_before);
    nn_lora_free(a);
    nn_model_free(m);
    test_fixture_free(f);
    test_fixture_free(fb);
}

static void test_parity_llama(void **state) {
    (void)state;
    parity("llama_tiny.hfix", "llama_tiny_lora.hfix");
}
static void test_parity_gpt2(void **state) {
    (void)state;
    parity("gpt2_tiny.hfix", "gpt2_tiny_lora.hfix");
}

/* Fresh adapters (B = 0) leave the base's logits exactly as they were, on every target. */
static void test_zero_b_is_base(void **state) {
    (void)state;
    const char *presets[] = {"llama-tiny", "tiny"};
    for (int p = 0; p < 2; p++) {
        nn_config c;
        base_err e = {0};
        assert_int_equal(nn_config_preset(&c, presets[p], &e), 0);
        c.vocab_size = 64;
        nn_model *m;
        assert_int_equal(nn_model_create(&m, &c, 2, 16, &e), 0);
        nn_model_init(m, 5);
        int tok[32];
        for (int i = 0; i < 32; i++) tok[i] = (i * 7) % 64;
        assert_int_equal(nn_forward(m, tok, NULL, 2, 16, NULL, &e), 0);
        size_t n = (size_t)32 * 64;
        float *base = malloc(n * sizeof(float));
        memcpy(base, m->a.logits, n * sizeof(float));
        unsigned all = test_lora_all(&c);
        nn_lora *a;
        assert_int_equal(nn_lora_create(&a, m, 8, 16, 0.1f, all, 3, &e), 0);
        /* A is PEFT's kaiming-uniform: nonzero, within 1/sqrt(in) */
        nn_lora_site *s = nn_lora_at(a, 0, NN_LORA_Q);
        float bound = 1.0f / sqrtf((float)s->in), amax = 0;
        for (int i = 0; i < a->rank * s->in; i++) amax = fmaxf(amax, fabsf(s->A[i]));
        assert_true(amax > 0.5f * bound && amax <= bound);
        nn_lora_attach(m, a);
        a->training = 1; /* dropout on: still exact, B is zero */
        assert_int_equal(nn_forward(m, tok, NULL, 2, 16, NULL, &e), 0);
        assert_memory_equal(base, m->a.logits, n * sizeof(float));
        free(base);
        nn_lora_free(a);
        nn_model_free(m);
    }
}

/* Dropout: the same key draws the same mask; another key another; the adapter gradients under
 * dropout match central differences of the loss (the mask held fixed by the key). */
static void test_dropout(void **state) {
    (void)state;
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, "llama-tiny", &e), 0);
    c.vocab_size = 64;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 1, 8, &e), 0);
    nn_model_init(m, 9);
    nn_lora *a;
    assert_int_equal(nn_lora_create(&a, m, 4, 8, 0.3f, 1u << NN_LORA_Q | 1u << NN_LORA_DOWN, 4, &e),
                     0);
    nn_lora_freeze_base(m);
    nn_lora_attach(m, a);
    base_rng r;
    base_rng_seed(&r, 11);
    for (size_t i = 0; i < a->n_params; i++) a->params[i] += 0.2f * base_rng_normal(&r);
    int tok[8], tgt[8];
    for (int i = 0; i < 8; i++) tok[i] = (i * 5 + 1) % 64, tgt[i] = (i * 3 + 2) % 64;
    a->training = 1;
    a->key = 17;
    float l1, l2, l3;
    assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &l1, &e), 0);
    assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &l2, &e), 0);
    assert_true(l1 == l2);
    a->key = 18;
    assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &l3, &e), 0);
    assert_true(l1 != l3);
    a->key = 17;
    assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &l1, &e), 0);
    nn_lora_zero_grad(a);
    nn_backward(m, 1.0f);
    double worst = 0;
    for (int k = 0; k < 12; k++) {
        size_t i = (size_t)base_rng_below(&r, a->n_params);
        float old = a->params[i], h = 1e-2f, lp, lm;
        a->params[i] = old + h;
        assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &lp, &e), 0);
        a->params[i] = old - h;
        assert_int_equal(nn_forward(m, tok, tgt, 1, 8, &lm, &e), 0);
        a->params[i] = old;
        double fd = ((double)lp - lm) / (2.0 * h), an = a->grads[i];
        double err = fabs(fd - an) / fmax(1e-2, fabs(fd) + fabs(an));
        if (err > worst) worst = err;
    }
    assert_true(worst < 2e-2);
    nn_lora_free(a);
    nn_model_free(m);
}

/* A frozen base's backward recomputes a one-layer activation (a norm output, the MLP
 * activation) only where an adapter reads it; a base with weight gradients recomputes them all.
 * The adapter gradients must be the same bits either way, for adapters on one site at a time
 * (the other sites' buffers then hold another layer's or site's values: reading one would
 * show) and on all. */
static void test_frozen_recompute(void **state) {
    (void)state;
    const char *presets[] = {"llama-tiny", "tiny"};
    for (int p = 0; p < 2; p++) {
        nn_config c;
        base_err e = {0};
        assert_int_equal(nn_config_preset(&c, presets[p], &e), 0);
        c.vocab_size = 64;
        unsigned sets[] = {1u << NN_LORA_Q, 1u << NN_LORA_O, 1u << NN_LORA_UP, 1u << NN_LORA_DOWN,
                           (1u << NN_LORA_NT) - 1};
        for (int k = 0; k < 5; k++) {
            unsigned targets = sets[k] & test_lora_all(&c);
            nn_model *m[2];
            nn_lora *a[2];
            float loss[2];
            int tok[24], tgt[24];
            for (int i = 0; i < 24; i++) tok[i] = (i * 5 + 1) % 64, tgt[i] = (i * 3 + 2) % 64;
            for (int f = 0; f < 2; f++) { /* f = 0: weight gradients; f = 1: frozen */
                assert_int_equal(f ? nn_model_create_frozen(&m[f], &c, 2, 12, &e)
                                   : nn_model_create(&m[f], &c, 2, 12, &e),
                                 0);
                nn_model_init(m[f], 21);
                assert_int_equal(nn_lora_create(&a[f], m[f], 4, 8, 0, targets, 6, &e), 0);
                base_rng r;
                base_rng_seed(&r, 13); /* B nonzero, so every adapter has a gradient */
                for (size_t i = 0; i < a[f]->n_params; i++)
                    a[f]->params[i] += 0.1f * base_rng_normal(&r);
                nn_lora_attach(m[f], a[f]);
                nn_zero_grad(m[f]);
                nn_lora_zero_grad(a[f]);
                assert_int_equal(nn_forward(m[f], tok, tgt, 2, 12, &loss[f], &e), 0);
                nn_backward(m[f], 1.0f);
            }
            assert_null(m[1]->grads);
            assert_true(loss[0] == loss[1]);
            assert_memory_equal(a[0]->grads, a[1]->grads, a[0]->n_params * sizeof(float));
            double gmax = 0;
            for (size_t i = 0; i < a[1]->n_params; i++)
                gmax = fmax(gmax, fabs((double)a[1]->grads[i]));
            assert_true(gmax > 0);
            for (int f = 0; f < 2; f++) nn_lora_free(a[f]), nn_model_free(m[f]);
        }
    }
}

static void test_targets(void **state) {
    (void)state;
    unsigned mask;
    base_err e = {0};
    assert_int_equal(nn_lora_parse_targets("q,v", &mask, &e), 0);
    assert_int_equal(mask, (1u << NN_LORA_Q) | (1u << NN_LORA_V));
    assert_int_equal(nn_lora_parse_targets("all", &mask, &e), 0);
    assert_int_equal(mask, 0x7f);
    assert_int_equal(nn_lora_parse_targets("q,query", &mask, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "'query'"));
    assert_int_equal(nn_lora_parse_targets("", &mask, &e), BASE_EINVAL);
    nn_config c;
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    c.vocab_size = 64;
    nn_model *m;
    nn_lora *a;
    assert_int_equal(nn_model_create(&m, &c, 1, 4, &e), 0);
    assert_int_equal(nn_lora_create(&a, m, 4, 8, 0, 1u << NN_LORA_GATE, 1, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "gate"));
    assert_int_equal(nn_lora_create(&a, m, 0, 8, 0, 1, 1, &e), BASE_EINVAL);
    assert_int_equal(nn_lora_create(&a, m, 4, 8, 1.0f, 1, 1, &e), BASE_EINVAL);
    nn_model_free(m);
}

int test_lora(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_llama),   cmocka_unit_test(test_parity_gpt2),
        cmocka_unit_test(test_zero_b_is_base), cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_targets),        cmocka_unit_test(test_frozen_recompute),
    };
    return cmocka_run_group_tests_name("lora", tests, NULL, NULL);
}
