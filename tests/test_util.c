/* tests/test_util.c: numeric comparison helpers and the HFIX fixture reader. */
#include "test.h"

#include "nn/lora.h"
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_fill(base_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * base_rng_uniform(r);
}

double test_rel_err(const float *a, const float *b, size_t n, double floor) {
    double num = 0, den = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d; /* NaN propagates */
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

void test_assert_close(const float *a, const float *b, size_t n, double tol, const char *what,
                       const char *file, int line) {
    double err = test_rel_err(a, b, n, 1e-6);
    if (!(err <= tol)) {
        fprintf(stderr, "%s:%d: %s: relative error %.3g > %.3g\n", file, line, what, err, tol);
        _fail(file, line);
    }
}

const char *test_dir(void) {
    const char *d = getenv("HEARTH_TESTS");
    return d ? d : "tests";
}

char *test_read_corpus(size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer/corpus.txt", test_dir());
    char *d;
    base_err e = {0};
    if (base_read_file(path, &d, len, &e)) fail_msg("%s", e.msg);
    return d;
}

typedef struct entry {
    char name[128];
    int dtype;
    size_t numel;
    void *data; /* an aligned copy: entries in the file are not aligned */
} entry;

struct test_fixture {
    char *blob;
    int n;
    entry *e;
};

static uint32_t rd32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

test_fixture *test_fixture_load(const char *path) {
    char *blob;
    size_t len;
    base_err err = {0};
    if (base_read_file(path, &blob, &len, &err) != 0) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return NULL;
    }
    test_fixture *f = calloc(1, sizeof *f);
    f->blob = blob;
    if (len < 12 || memcmp(blob, "HFIX", 4) != 0 || rd32(blob + 4) != 1) goto bad;
    uint32_t count = rd32(blob + 8);
    if (count > 100000) goto bad;
    f->e = calloc(count ? count : 1, sizeof(entry));
    size_t off = 12;
    for (uint32_t i = 0; i < count; i++) {
        if (off + 4 > len) goto bad;
        uint32_t nl = rd32(blob + off);
        off += 4;
        if (nl >= sizeof f->e[i].name || off + nl + 8 > len) goto bad;
        memcpy(f->e[i].name, blob + off, nl);
        off += nl;
        f->e[i].dtype = (int)rd32(blob + off);
        uint32_t nd = rd32(blob + off + 4);
        off += 8;
        if (nd < 1 || nd > 4 || off + 4 * nd > len || f->e[i].dtype > 1) goto bad;
        size_t numel = 1;
        for (uint32_t d = 0; d < nd; d++, off += 4)
            if (base_mul_size(numel, rd32(blob + off), &numel)) goto bad;
        if (numel > (len - off) / 4) goto bad;
        f->e[i].numel = numel;
        f->e[i].data = malloc(numel * 4 + 1);
        memcpy(f->e[i].data, blob + off, numel * 4);
        off += numel * 4;
        f->n++;
    }
    return f;
bad:
    fprintf(stderr, "fixture %s is malformed\n", path);
    test_fixture_free(f);
    return NULL;
}

void test_fixture_free(test_fixture *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->e[i].data);
    free(f->blob);
    free(f->e);
    free(f);
}

const void *test_fixture_get(const test_fixture *f, const char *name, size_t n, size_t *numel) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) {
            if (n && f->e[i].numel != n)
                fail_msg("fixture entry %s has %zu elements, expected %zu", name, f->e[i].numel, n);
            if (numel) *numel = f->e[i].numel;
            return f->e[i].data;
        }
    fail_msg("fixture has no entry %s", name);
    return NULL;
}

int test_rm_rf(const char *path) {
    char cmd[4200];
    int n = snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (n < 0 || n >= (int)sizeof cmd || strchr(path, '\'')) return -1;
    return system(cmd) == 0 ? 0 : -1;
}

struct nn_model *test_fixture_model(const char *file, test_fixture **fp) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/%s", test_dir(), file);
    test_fixture *f = test_fixture_load(path);
    assert_non_null(f);
    const int *cf = test_fixture_get(f, "config", 12, NULL);
    const float *hy = test_fixture_get(f, "hyper", 7, NULL);
    nn_config c = {.family = cf[0] ? NN_LLAMA : NN_GPT2,
                   .vocab_size = cf[1],
                   .max_seq = cf[2],
                   .n_layer = cf[3],
                   .n_head = cf[4],
                   .n_kv_head = cf[5],
                   .d_model = cf[6],
                   .d_ff = cf[7],
                   .tied = cf[8],
                   .bias = cf[9],
                   .norm_eps = hy[0],
                   .rope_theta = hy[1]};
    nn_model *m;
    base_err e = {0};
    assert_int_equal(nn_model_create(&m, &c, cf[10], cf[11], &e), 0);
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        snprintf(name, sizeof name, "param.%s", m->tensors[i].name);
        const float *p = test_fixture_get(f, name, m->tensors[i].numel, NULL);
        memcpy(m->params + m->tensors[i].offset, p, m->tensors[i].numel * sizeof(float));
    }
    *fp = f;
    return m;
}

unsigned test_lora_all(const nn_config *c) {
    unsigned all = (1u << NN_LORA_NT) - 1;
    return c->family == NN_LLAMA ? all : all & ~(1u << NN_LORA_GATE);
}
