/* tests/optim/test_optim.c: AdamW against the update written out by hand, clipping and the
 * schedule. (The model-level check against torch.optim.AdamW is in tests/nn.) */
#include "test.h"
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>

static void test_adamw(void **state) {
    (void)state;
    optim_adamw o;
    base_err e = {0};
    assert_int_equal(optim_adamw_create(&o, 4, &e), 0);
    nn_tensor t[2] = {{"w", 1, {2, 0, 0}, 0, 2, 1}, {"b", 1, {2, 0, 0}, 2, 2, 0}};
    float p[4] = {1, -2, 3, -4}, g[4] = {0.5f, -0.25f, 1, 0};
    double ref[4] = {1, -2, 3, -4}, m[4] = {0}, v[4] = {0};
    float lr = 0.1f;
    for (int step = 1; step <= 3; step++) {
        optim_adamw_step(&o, p, g, t, 2, lr);
        for (int i = 0; i < 4; i++) {
            if (i < 2) ref[i] *= 1.0 - lr * 0.1; /* decay only on the first tensor */
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.95 * v[i] + 0.05 * (double)g[i] * g[i];
            double mh = m[i] / (1 - pow(0.9, step)), vh = v[i] / (1 - pow(0.95, step));
            ref[i] -= lr * mh / (sqrt(vh) + 1e-8);
        }
    }
    for (int i = 0; i < 4; i++) assert_true(fabs(p[i] - ref[i]) < 1e-5);
    assert_true(p[3] == -4.0f); /* no gradient, no decay: untouched */
    optim_adamw_free(&o);
}

static void test_clip(void **state) {
    (void)state;
    float g[5] = {3, 4, 0, 0, 0};
    float n = optim_clip_grad_norm(g, 5, 1.0f);
    assert_true(fabsf(n - 5.0f) < 1e-6f);
    assert_true(fabsf(g[0] - 0.6f) < 1e-5f && fabsf(g[1] - 0.8f) < 1e-5f);
    float h[2] = {0.3f, 0.4f};
    optim_clip_grad_norm(h, 2, 1.0f); /* under the limit: unchanged */
    assert_true(h[0] == 0.3f && h[1] == 0.4f);
    float bad[2] = {NAN, 1};
    assert_false(isfinite(optim_clip_grad_norm(bad, 2, 1.0f)));
}

static void test_schedule(void **state) {
    (void)state;
    assert_true(fabsf(optim_lr_at(0, 10, 100, 1.0f, 0.1f) - 0.1f) < 1e-6f);
    assert_true(fabsf(optim_lr_at(9, 10, 100, 1.0f, 0.1f) - 1.0f) < 1e-6f);
    assert_true(fabsf(optim_lr_at(10, 10, 100, 1.0f, 0.1f) - 1.0f) < 1e-6f);
    assert_true(fabsf(optim_lr_at(55, 10, 100, 1.0f, 0.1f) - 0.55f) < 1e-5f); /* halfway */
    assert_true(fabsf(optim_lr_at(100, 10, 100, 1.0f, 0.1f) - 0.1f) < 1e-6f);
    assert_true(fabsf(optim_lr_at(500, 10, 100, 1.0f, 0.1f) - 0.1f) < 1e-6f);
    for (int s = 11; s < 100; s++) /* monotone decay */
        assert_true(optim_lr_at(s, 10, 100, 1.0f, 0.1f) <= optim_lr_at(s - 1, 10, 100, 1.0f, 0.1f));
}

int test_optim(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_schedule),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
