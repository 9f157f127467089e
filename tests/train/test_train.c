/* tests/train/test_train.c: the training loop end to end on a generated corpus: the loss
 * falls, the run directory is complete, the same seed gives bit-identical losses, and bad
 * options fail before anything is written. */
#include "test.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct seen {
    float loss[64];
    float val;
    int n;
} seen;

static void record(const train_progress *p, void *user) {
    seen *s = user;
    if (p->is_eval)
        s->val = p->val_loss;
    else if (s->n < 64)
        s->loss[s->n++] = p->loss;
}

static char dir[64];

/* A corpus with structure a tiny model learns in a few steps: a repeated short text. */
static void make_corpus(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 400; i++)
        fprintf(f, "the quick brown fox %d jumps over the lazy dog.\n", i % 10);
    fclose(f);
}

static void opts(train_opts *o, const char *data, const char *out) {
    memset(o, 0, sizeof *o);
    o->data = data;
    o->out_dir = out;
    base_err e;
    assert_int_equal(nn_config_preset(&o->cfg, "tiny", &e), 0);
    train_opts_default(o);
    o->batch = 4;
    o->seq = 32;
    o->steps = 12;
    o->eval_every = 5;
    o->eval_batches = 2;
    o->sample_tokens = 16;
}

static void test_run(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hearth-train-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char data[128], out1[128], out2[128], path[256];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    snprintf(out1, sizeof out1, "%s/run1", dir);
    snprintf(out2, sizeof out2, "%s/run2", dir);
    make_corpus(data);
    train_opts o;
    opts(&o, data, out1);
    seen a = {0}, b = {0};
    char *sample = NULL;
    base_err e = {0};
    assert_int_equal(train_run(&o, record, &a, &sample, &e), 0);
    assert_int_equal(a.n, 12);
    assert_true(a.loss[11] < a.loss[0] - 1.0f); /* it learns */
    assert_true(isfinite(a.val) && a.val < a.loss[0]);
    assert_non_null(sample);
    assert_int_equal(strlen(sample), 16);
    free(sample);
    const char *files[] = {"metrics.jsonl", "loss.svg", "config.json"};
    struct stat st;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", out1, files[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0);
    }
    /* metrics: one line per step plus one per eval (steps 5, 10 and the last) */
    snprintf(path, sizeof path, "%s/metrics.jsonl", out1);
    char *text;
    size_t len;
    assert_int_equal(base_read_file(path, &text, &len, &e), 0);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    assert_int_equal(lines, 15);
    assert_non_null(strstr(text, "\"val_loss\""));
    free(text);
    /* same seed, data and threads: bit-identical losses */
    o.out_dir = out2;
    assert_int_equal(train_run(&o, record, &b, NULL, &e), 0);
    assert_memory_equal(a.loss, b.loss, sizeof a.loss);
    assert_true(a.val == b.val);
    /* another seed: different losses */
    seen c = {0};
    o.seed = 99;
    assert_int_equal(train_run(&o, record, &c, NULL, &e), 0);
    assert_true(memcmp(a.loss, c.loss, sizeof a.loss) != 0);
    /* gradient accumulation runs and learns too */
    seen d = {0};
    o.accum = 2;
    o.batch = 2;
    assert_int_equal(train_run(&o, record, &d, NULL, &e), 0);
    assert_true(d.loss[11] < d.loss[0] - 1.0f);
}

static void test_bad_input(void **state) {
    (void)state;
    char data[128], out[128];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    snprintf(out, sizeof out, "%s/never", dir);
    train_opts o;
    base_err e = {0};
    struct stat st;
    opts(&o, "/nonexistent/file.txt", out);
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/file.txt"));
    opts(&o, data, out);
    o.steps = 0;
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "steps"));
    opts(&o, data, out);
    o.seq = o.cfg.max_seq + 1;
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "max_seq"));
    opts(&o, data, out);
    o.cfg.n_head = 5;
    o.cfg.n_kv_head = 5;
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "divide"));
    /* a corpus too short for one sequence */
    char tiny[128];
    snprintf(tiny, sizeof tiny, "%s/tiny.txt", dir);
    FILE *f = fopen(tiny, "w");
    fputs("hi", f);
    fclose(f);
    opts(&o, tiny, out);
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "too small"));
    /* none of these created the run directory */
    assert_int_not_equal(stat(out, &st), 0);
    /* a learning rate that blows up: a clear non-finite error */
    opts(&o, data, out);
    o.lr = 1e30f;
    o.clip = 0;
    o.steps = 30;
    int rc = train_run(&o, NULL, NULL, NULL, &e);
    assert_int_equal(rc, BASE_ENUM);
    assert_non_null(strstr(e.msg, "not finite"));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int test_train(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
