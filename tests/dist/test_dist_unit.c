/* tests/dist/test_dist_unit.c: the parts of src/dist that need no second rank — the fixed-order
 * gradient norm (against a double reference; the same bits for any thread count), one process's
 * in-order accumulation of micro-batch gradients, AdamW over a split equal to AdamW over the
 * whole, and the --sim-delay spec. The ranks themselves: tests/dist/test_dist.sh (mpirun). */
#include "test.h"

#include "dist/dist.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static nn_model *tiny_model(void) {
    nn_config c;
    base_err e;
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    c.vocab_size = 256;
    c.n_layer = 3;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 2, 16, &e), 0);
    return m;
}

static void test_norm(void **state) {
    (void)state;
    base_err e;
    dist *d;
    assert_int_equal(dist_open(&d, 10, &e), 0);
    assert_int_equal(dist_size(d), 1);
    nn_model *m = tiny_model();
    base_rng r;
    base_rng_seed(&r, 3);
    test_fill(&r, m->grads, m->n_params, -1, 1);
    dist_grads_opts o = {.overlap = 1, .bucket_mb = 0};
    dist_grads *g;
    assert_int_equal(dist_grads_create(&g, d, m, &o, &e), 0);
    assert_int_equal(dist_grads_buckets(g), 3 + 2); /* head, 3 layers, embeddings */
    double ref = 0;
    for (size_t i = 0; i < m->n_params; i++) ref += (double)m->grads[i] * m->grads[i];
    float n1, n2;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    assert_int_equal(dist_grads_norm(g, &n1, &e), 0);
    omp_set_num_threads(2);
    assert_int_equal(dist_grads_norm(g, &n2, &e), 0);
    omp_set_num_threads(threads);
    assert_true(fabs(n1 - sqrt(ref)) <= 1e-6 * sqrt(ref));
    assert_memory_equal(&n1, &n2, sizeof n1); /* thread count does not change the bits */
    dist_grads_free(g);
    nn_model_free(m);
    dist_close(d);
}

/* One process, A micro-batches: the summed gradient is ((g0 + g1) + g2), in order. */
static void test_accum_order(void **state) {
    (void)state;
    base_err e;
    dist *d;
    assert_int_equal(dist_open(&d, 10, &e), 0);
    nn_model *m = tiny_model();
    size_t n = m->n_params;
    float *gs[3], *want = malloc(n * sizeof(float));
    base_rng r;
    base_rng_seed(&r, 5);
    for (int k = 0; k < 3; k++) {
        gs[k] = malloc(n * sizeof(float));
        test_fill(&r, gs[k], n, -1e3f, 1e3f);
        gs[k][k] = 1e-7f; /* sums where the order shows */
    }
    for (size_t i = 0; i < n; i++) want[i] = (gs[0][i] + gs[1][i]) + gs[2][i];
    dist_grads_opts o = {.overlap = 1, .bucket_mb = 4};
    dist_grads *g;
    assert_int_equal(dist_grads_create(&g, d, m, &o, &e), 0);
    for (int a = 0; a < 3; a++) {
        dist_grads_micro_begin(g, 0, a, 3);
        memcpy(m->grads, gs[a], n * sizeof(float)); /* what the backward left */
        assert_int_equal(dist_grads_micro_end(g, &e), 0);
    }
    assert_memory_equal(m->grads, want, n * sizeof(float));
    for (int k = 0; k < 3; k++) free(gs[k]);
    free(want);
    dist_grads_free(g);
    nn_model_free(m);
    dist_close(d);
}

/* AdamW over two halves (begin, then span per piece: a ZeRO-1 shard's update) gives the bits
 * of optim_adamw_step over the whole. */
static void test_adamw_split(void **state) {
    (void)state;
    base_err e;
    size_t n = 1000;
    optim_adamw a, b;
    assert_int_equal(optim_adamw_create(&a, n, &e), 0);
    assert_int_equal(optim_adamw_create(&b, n, &e), 0);
    float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float)),
          *gr = malloc(n * sizeof(float));
    base_rng r;
    base_rng_seed(&r, 9);
    test_fill(&r, p1, n, -1, 1);
    memcpy(p2, p1, n * sizeof(float));
    nn_tensor t[2] = {{.name = "w", .offset = 0, .numel = 600, .decay = 1},
                      {.name = "b", .offset = 600, .numel = 400, .decay = 0}};
    for (int step = 0; step < 3; step++) {
        test_fill(&r, gr, n, -1, 1);
        optim_adamw_step(&a, p1, gr, t, 2, 1e-2f);
        optim_adamw_begin(&b);
        /* pieces of 250 floats, crossing the tensor boundary at 600 */
        for (size_t lo = 0; lo < n; lo += 250)
            for (int i = 0; i < 2; i++) {
                size_t s = lo > t[i].offset ? lo : t[i].offset;
                size_t end =
                    lo + 250 < t[i].offset + t[i].numel ? lo + 250 : t[i].offset + t[i].numel;
                if (s < end)
                    optim_adamw_span(&b, p2 + s, gr + s, b.m + s, b.v + s, end - s, t[i].decay,
                                     1e-2f);
            }
    }
    assert_memory_equal(p1, p2, n * sizeof(float));
    assert_memory_equal(a.m, b.m, n * sizeof(float));
    assert_memory_equal(a.v, b.v, n * sizeof(float));
    free(p1), free(p2), free(gr);
    optim_adamw_free(&a), optim_adamw_free(&b);
}

static void test_delay_parse(void **state) {
    (void)state;
    base_err e;
    dist_delay d;
    assert_int_equal(dist_delay_parse("1:0.5", &d, &e), 0);
    assert_true(d.mean_ms == 1 && d.jitter_ms == 0.5 && d.spike_p == 0);
    assert_int_equal(dist_delay_parse("0:0:0.01:50", &d, &e), 0);
    assert_true(d.spike_p == 0.01 && d.spike_ms == 50);
    assert_int_equal(dist_delay_parse("5", &d, &e), 0);
    const char *bad[] = {"", "x", "1:", "1:2:3", "-1", "0:0:2:50", "1:2:3:4:5", "1ms"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dist_delay_parse(bad[i], &d, &e), BASE_EINVAL);
        assert_non_null(strstr(e.msg, "MEAN[:JITTER[:P:SPIKE]]"));
    }
}

int test_dist(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm),
        cmocka_unit_test(test_accum_order),
        cmocka_unit_test(test_adamw_split),
        cmocka_unit_test(test_delay_parse),
    };
    return cmocka_run_group_tests_name("dist", tests, NULL, NULL);
}
