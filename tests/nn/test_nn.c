/* tests/nn/test_nn.c: the transformer. Parity with PyTorch (fixtures written by
 * tools/gen_fixtures.py): logits and loss within 1e-4, every gradient within 1e-3, ten AdamW
 * steps; fast kernels against the reference kernels on whole models; configs and errors. */
#include "test.h"
#include "nn/nn.h"
#include "optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative error measure: max|a - b| / max|b| over a tensor (test_rel_err). */
#define TOL_LOGITS 1e-4
#define TOL_LOSS 1e-4
#define TOL_GRAD 1e-3

static void parity(const char *file) {
    test_fixture *f;
    nn_model *m = test_fixture_model(file, &f);
    const int B = m->B, T = m->T;
    const nn_config c = m->cfg;
    const float *hy = test_fixture_get(f, "hyper", 7, NULL);
    char name[160];
    base_err e = {0};
    const int *tok = test_fixture_get(f, "tokens", (size_t)B * T, NULL);
    const int *tgt = test_fixture_get(f, "targets", (size_t)B * T, NULL);
    float loss;
    assert_int_equal(nn_forward(m, tok, tgt, B, T, &loss, &e), 0);
    assert_close(m->a.logits, test_fixture_get(f, "logits", (size_t)B * T * c.vocab_size, NULL),
                 (size_t)B * T * c.vocab_size, TOL_LOGITS, "logits");
    assert_close(&loss, test_fixture_get(f, "loss", 1, NULL), 1, TOL_LOSS, "loss");
    nn_zero_grad(m);
    nn_backward(m, 1.0f);
    for (int i = 0; i < m->n_tensors; i++) {
        snprintf(name, sizeof name, "grad.%s", m->tensors[i].name);
        assert_close(m->grads + m->tensors[i].offset,
                     test_fixture_get(f, name, m->tensors[i].numel, NULL), m->tensors[i].numel,
                     TOL_GRAD, name);
    }
    /* ten AdamW steps with clipping on the same batch, as torch.optim.AdamW did */
    optim_adamw o;
    assert_int_equal(optim_adamw_create(&o, m->n_params, &e), 0);
    o.beta1 = hy[3], o.beta2 = hy[4], o.eps = hy[5], o.weight_decay = hy[6];
    float clip = *(const float *)test_fixture_get(f, "clip", 1, NULL), losses[10];
    for (int s = 0; s < 10; s++) {
        assert_int_equal(nn_forward(m, tok, tgt, B, T, &losses[s], &e), 0);
        nn_zero_grad(m);
        nn_backward(m, 1.0f);
        optim_clip_grad_norm(m->grads, m->n_params, clip);
        optim_adamw_step(&o, m->params, m->grads, m->tensors, m->n_tensors, hy[2]);
    }
    assert_close(losses, test_fixture_get(f, "adamw_losses", 10, NULL), 10, TOL_LOSS * 10,
                 "AdamW losses");
    for (int i = 0; i < m->n_tensors; i++) {
        const nn_tensor *t = &m->tensors[i];
        snprintf(name, sizeof name, "final.%s", t->name);
        const float *want = test_fixture_get(f, name, t->numel, NULL);
        if (strcmp(t->name, "qkvb") != 0) {
            assert_close(m->params + t->offset, want, t->numel, TOL_GRAD, name);
            continue;
        }
        /* The key bias shifts every score of a query equally, so softmax cancels it and its
         * true gradient is 0; float32 rounding noise (~1e-9) is then of Adam's eps' order and
         * moves it. Compare the query and value biases only. */
        int HS = c.d_model / c.n_head, q = c.n_head * HS, k = c.n_kv_head * HS, Q = q + 2 * k;
        for (int l = 0; l < c.n_layer; l++) {
            const float *got = m->params + t->offset + (size_t)l * Q, *w = want + (size_t)l * Q;
            assert_close(got, w, (size_t)q, TOL_GRAD, "final.qkvb (query)");
            assert_close(got + q + k, w + q + k, (size_t)k, TOL_GRAD, "final.qkvb (value)");
        }
    }
    optim_adamw_free(&o);
    nn_model_free(m);
    test_fixture_free(f);
}

static void test_parity_gpt2(void **state) {
    (void)state;
    parity("gpt2_tiny.hfix");
}
static void test_parity_llama(void **state) {
    (void)state;
    parity("llama_tiny.hfix");
}

/* The whole model on the fast kernels and on the reference kernels agree. */
static void fast_vs_ref(const char *preset) {
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, preset, &e), 0);
    c.n_layer = 2;
    int B = 2, T = 17;
    nn_model *a, *b;
    assert_int_equal(nn_model_create(&a, &c, B, T, &e), 0);
    assert_int_equal(nn_model_create(&b, &c, B, T, &e), 0);
    b->ops = &tensor_ref_ops;
    nn_model_init(a, 7);
    nn_model_init(b, 7);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    int tok[34], tgt[34];
    base_rng r;
    base_rng_seed(&r, 3);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)base_rng_below(&r, (uint64_t)c.vocab_size);
        tgt[i] = (int)base_rng_below(&r, (uint64_t)c.vocab_size);
    }
    tgt[5] = -1;
    float la, lb;
    assert_int_equal(nn_forward(a, tok, tgt, B, T, &la, &e), 0);
    assert_int_equal(nn_forward(b, tok, tgt, B, T, &lb, &e), 0);
    assert_close(a->a.logits, b->a.logits, (size_t)B * T * c.vocab_size, 1e-5, "logits");
    assert_true(fabsf(la - lb) <= 1e-5f * lb);
    assert_true(fabsf(la - logf((float)c.vocab_size)) < 0.1f); /* fresh init: near uniform */
    nn_zero_grad(a);
    nn_zero_grad(b);
    nn_backward(a, 1.0f);
    nn_backward(b, 1.0f);
    for (int i = 0; i < a->n_tensors; i++)
        assert_close(a->grads + a->tensors[i].offset, b->grads + b->tensors[i].offset,
                     a->tensors[i].numel, 1e-4, a->tensors[i].name);
    /* a shorter batch than allocated works too */
    assert_int_equal(nn_forward(a, tok, tgt, 1, 9, &la, &e), 0);
    assert_int_equal(nn_forward(b, tok, tgt, 1, 9, &lb, &e), 0);
    assert_true(fabsf(la - lb) <= 1e-5f * lb);
    nn_model_free(a);
    nn_model_free(b);
}

static void test_fast_vs_ref(void **state) {
    (void)state;
    fast_vs_ref("tiny");
    fast_vs_ref("llama-tiny");
}

static void test_presets(void **state) {
    (void)state;
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, "gpt2-124m", &e), 0);
    assert_true(nn_config_params(&c) == 124439808u); /* GPT-2 small, as published */
    for (int i = 0; nn_presets[i]; i++) {
        assert_int_equal(nn_config_preset(&c, nn_presets[i], &e), 0);
        assert_int_equal(nn_config_check(&c, &e), 0);
        size_t n = nn_config_params(&c);
        if (!strcmp(nn_presets[i], "tiny") || !strcmp(nn_presets[i], "llama-tiny"))
            assert_true(n > 100000 && n < 1000000);
        if (!strcmp(nn_presets[i], "small") || !strcmp(nn_presets[i], "llama-small"))
            assert_true(n > 8000000 && n < 14000000);
    }
    assert_int_equal(nn_config_preset(&c, "huge", &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "huge"));
}

static void test_config_errors(void **state) {
    (void)state;
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    assert_int_equal(nn_config_set(&c, "n_head", "5", &e), 0);
    assert_int_equal(nn_config_check(&c, &e), BASE_EINVAL); /* 5 does not divide 64 */
    assert_non_null(strstr(e.msg, "divide"));
    assert_int_equal(nn_config_set(&c, "n_layer", "0", &e), BASE_EINVAL);
    assert_int_equal(nn_config_set(&c, "n_layer", "3x", &e), BASE_EINVAL);
    assert_int_equal(nn_config_set(&c, "norm_eps", "nan", &e), BASE_EINVAL);
    assert_int_equal(nn_config_set(&c, "family", "bert", &e), BASE_EINVAL);
    assert_int_equal(nn_config_set(&c, "nonsense", "1", &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "nonsense"));
    assert_int_equal(nn_config_preset(&c, "llama-tiny", &e), 0);
    assert_int_equal(nn_config_set(&c, "n_kv_head", "3", &e), 0);
    assert_int_equal(nn_config_check(&c, &e), BASE_EINVAL);
    /* sequence longer than the model's maximum */
    nn_model *m;
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    assert_int_equal(nn_model_create(&m, &c, 1, c.max_seq + 1, &e), BASE_EINVAL);
    assert_null(m);
    assert_non_null(strstr(e.msg, "max_seq"));
    /* tokens outside the vocabulary are refused, not read out of bounds */
    assert_int_equal(nn_model_create(&m, &c, 1, 4, &e), 0);
    int tok[4] = {1, 2, 256, 3}, tgt[4] = {1, 2, 3, 4};
    float loss;
    assert_int_equal(nn_forward(m, tok, tgt, 1, 4, &loss, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "256"));
    tok[2] = 0;
    tgt[1] = -7;
    assert_int_equal(nn_forward(m, tok, tgt, 1, 4, &loss, &e), BASE_EINVAL);
    assert_int_equal(nn_forward(m, tok, tgt, 2, 4, &loss, &e), BASE_EINVAL); /* batch too big */
    nn_model_free(m);
}

/* The named parameter tensors agree with the name table the files are read and written by:
 * every member of m->pt (m->gt) is params (grads) + the offset of the tensor of its name, or
 * NULL exactly when the config has no such tensor; layer slices step by a layer's size. */
static void named_params(const char *preset, int tied, int bias) {
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, preset, &e), 0);
    c.tied = tied, c.bias = bias;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 1, 4, &e), 0);
    for (int pass = 0; pass < 2; pass++) {
        const nn_params *v = pass ? &m->gt : &m->pt;
        float *base = pass ? m->grads : m->params;
        const struct {
            const char *name;
            float *p;
        } mem[] = {{"wte", v->wte},           {"wpe", v->wpe},           {"ln1w", v->ln1w},
                   {"ln1b", v->ln1b},         {"qkvw", v->qkvw},         {"qkvb", v->qkvb},
                   {"attprojw", v->attprojw}, {"attprojb", v->attprojb}, {"ln2w", v->ln2w},
                   {"ln2b", v->ln2b},         {"fcw", v->fcw},           {"fcb", v->fcb},
                   {"fcprojw", v->fcprojw},   {"fcprojb", v->fcprojb},   {"lnfw", v->lnfw},
                   {"lnfb", v->lnfb},         {"lm_head", v->lm_head}};
        assert_int_equal(sizeof mem / sizeof mem[0], sizeof(nn_params) / sizeof(float *));
        int present = 0;
        for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++) {
            const nn_tensor *t = nn_model_tensor(m, mem[i].name);
            if (!t) {
                assert_null(mem[i].p);
                continue;
            }
            present++;
            assert_ptr_equal(mem[i].p, base + t->offset);
        }
        assert_int_equal(present, m->n_tensors);
        /* layer slices: layer l of each per-layer tensor starts l layers in */
        int l = c.n_layer - 1;
        nn_layer w = nn_params_layer(v, &c, l);
        const struct {
            const char *name;
            float *p;
        } lay[] = {{"ln1w", w.ln1w}, {"ln1b", w.ln1b},         {"qkvw", w.qkvw},
                   {"qkvb", w.qkvb}, {"attprojw", w.attprojw}, {"attprojb", w.attprojb},
                   {"ln2w", w.ln2w}, {"ln2b", w.ln2b},         {"fcw", w.fcw},
                   {"fcb", w.fcb},   {"fcprojw", w.fcprojw},   {"fcprojb", w.fcprojb}};
        assert_int_equal(sizeof lay / sizeof lay[0], sizeof(nn_layer) / sizeof(float *));
        for (size_t i = 0; i < sizeof lay / sizeof lay[0]; i++) {
            const nn_tensor *t = nn_model_tensor(m, lay[i].name);
            if (!t) {
                assert_null(lay[i].p);
                continue;
            }
            assert_int_equal(t->shape[0], c.n_layer);
            size_t each = t->numel / (size_t)c.n_layer;
            assert_ptr_equal(lay[i].p, base + t->offset + (size_t)l * each);
        }
    }
    /* without gradients the gradient views are gone; rebinding follows a replaced buffer */
    nn_model_drop_training(m);
    assert_null(m->gt.wte);
    assert_null(m->gt.qkvw);
    float *old = m->params, *copy = base_alloc_floats(m->n_params);
    assert_non_null(copy);
    m->params = copy;
    nn_model_bind(m);
    assert_ptr_equal(m->pt.wte, copy + nn_model_tensor(m, "wte")->offset);
    assert_ptr_equal(m->pt.lnfw, copy + nn_model_tensor(m, "lnfw")->offset);
    m->params = old;
    free(copy);
    nn_model_free(m);
}

static void test_named_params(void **state) {
    (void)state;
    named_params("tiny", 1, 1);       /* GPT-2: tied, biases, learned positions */
    named_params("tiny", 0, 0);       /* an lm_head, no biases */
    named_params("llama-tiny", 0, 0); /* no positions: RoPE */
    named_params("llama-tiny", 1, 1);
}

static void test_mlp(void **state) {
    (void)state;
    /* learns XOR-like data: a check that backprop through the MLP trains */
    int sizes[4] = {2, 8, 8, 2};
    nn_mlp *m;
    base_err e = {0};
    assert_int_equal(nn_mlp_create(&m, sizes, 3, 4, &e), 0);
    nn_mlp_init(m, 1);
    float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int y[4] = {0, 1, 1, 0};
    optim_adamw o;
    assert_int_equal(optim_adamw_create(&o, m->n_params, &e), 0);
    o.weight_decay = 0;
    float loss = 0;
    for (int s = 0; s < 500; s++) {
        loss = nn_mlp_forward(m, x, y, 4);
        memset(m->grads, 0, m->n_params * sizeof(float));
        nn_mlp_backward(m);
        optim_adamw_step(&o, m->params, m->grads, m->tensors, m->n_tensors, 0.02f);
    }
    assert_true(loss < 0.05f);
    nn_mlp_forward(m, x, y, 4);
    for (int b = 0; b < 4; b++) assert_int_equal(nn_mlp_argmax(m, b), y[b]);
    nn_mlp *none;
    assert_int_equal(nn_mlp_create(&none, sizes, 0, 4, &e), BASE_EINVAL);
    assert_null(none);
    optim_adamw_free(&o);
    nn_mlp_free(m);
}

int test_nn(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_gpt2),   cmocka_unit_test(test_parity_llama),
        cmocka_unit_test(test_fast_vs_ref),   cmocka_unit_test(test_presets),
        cmocka_unit_test(test_config_errors), cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_named_params),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
