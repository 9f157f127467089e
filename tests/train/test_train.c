/* tests/train/test_train.c: the training loop end to end on a generated corpus: the loss
 * falls, the run directory is complete, the same seed gives bit-identical losses, and bad
 * options fail before anything is written. */
#include "test.h"
#include "ckpt/ckpt.h"
#include "data/data.h"
#include "train/train.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/file.h>

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
    train_result res;
    base_err e = {0};
    assert_int_equal(train_run(&o, record, &a, &res, &e), 0);
    assert_int_equal(a.n, 12);
    assert_true(a.loss[11] < a.loss[0] - 1.0f); /* it learns */
    assert_true(isfinite(a.val) && a.val < a.loss[0]);
    assert_non_null(res.sample);
    assert_int_equal(strlen(res.sample), 16);
    assert_int_equal(res.step, 12);
    assert_false(res.stopped || res.complete);
    free(res.sample);
    const char *files[] = {"metrics.jsonl", "loss.svg", "config.json"};
    struct stat st;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", out1, files[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0);
    }
    /* no --ckpt-every, and still a checkpoint of the final state */
    snprintf(path, sizeof path, "%s/step_00000012", out1);
    assert_int_equal(ckpt_verify(path, &e), 0);
    /* metrics: one line per step plus one per eval (steps 5, 10 and the last) and the final
     * checkpoint's */
    snprintf(path, sizeof path, "%s/metrics.jsonl", out1);
    char *text;
    size_t len;
    assert_int_equal(base_read_file(path, &text, &len, &e), 0);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    assert_int_equal(lines, 16);
    assert_non_null(strstr(text, "\"val_loss\""));
    assert_non_null(strstr(text, "{\"step\":12,\"ckpt\":\"step_00000012\",\"write_ms\":"));
    free(text);
    /* same seed, data and threads: bit-identical losses */
    o.out_dir = out2;
    assert_int_equal(train_run(&o, record, &b, NULL, &e), 0);
    assert_memory_equal(a.loss, b.loss, sizeof a.loss);
    assert_true(a.val == b.val);
    /* another seed: different losses */
    seen c = {0};
    snprintf(path, sizeof path, "%s/run3", dir);
    o.out_dir = path;
    o.seed = 99;
    assert_int_equal(train_run(&o, record, &c, NULL, &e), 0);
    assert_true(memcmp(a.loss, c.loss, sizeof a.loss) != 0);
    /* gradient accumulation runs and learns too */
    seen d = {0};
    snprintf(path, sizeof path, "%s/run4", dir);
    o.accum = 2;
    o.batch = 2;
    assert_int_equal(train_run(&o, record, &d, NULL, &e), 0);
    assert_true(d.loss[11] < d.loss[0] - 1.0f);
}

static char *slurp(const char *dirname, const char *name, size_t *len) {
    char p[512];
    char *text = NULL;
    base_err e;
    snprintf(p, sizeof p, "%s/%s", dirname, name);
    assert_int_equal(base_read_file(p, &text, len, &e), 0);
    return text;
}

/* The run directory's files are the same bytes as before (nothing rewritten). */
static void assert_unchanged(const char *run, char *const before[2], const size_t blen[2]) {
    const char *names[] = {"metrics.jsonl", "config.json"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        char *now = slurp(run, names[i], &n);
        assert_int_equal(n, blen[i]);
        assert_memory_equal(now, before[i], n);
        free(now);
    }
}

typedef struct notes {
    char last[1024], all[8192];
    int n;
} notes;

static void on_note(const char *msg, void *user) {
    notes *s = user;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", msg);
    size_t k = strlen(s->all);
    snprintf(s->all + k, sizeof s->all - k, "%s\n", msg);
}

/* Rerunning a finished run directory: the same settings are "complete" (nothing written),
 * others are refused by name (nothing written); a directory with a config.json and no
 * checkpoint is compared too; resuming another run's final checkpoint has nothing to train. */
static void test_rerun(void **state) {
    (void)state;
    char data[128], run[128], other[128], p[512];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    snprintf(run, sizeof run, "%s/rerun", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    train_opts o;
    opts(&o, data, run);
    o.steps = 4;
    o.sample_tokens = 0;
    base_err e = {0};
    train_result res;
    assert_int_equal(train_run(&o, NULL, NULL, &res, &e), 0);
    char *before[2];
    size_t blen[2];
    before[0] = slurp(run, "metrics.jsonl", &blen[0]);
    before[1] = slurp(run, "config.json", &blen[1]);
    seen s = {0};
    o.sample_tokens = 16;
    assert_int_equal(train_run(&o, record, &s, &res, &e), 0);
    assert_true(res.complete);
    assert_int_equal(res.step, 4);
    assert_null(res.sample);
    assert_int_equal(s.n, 0); /* no step ran */
    assert_unchanged(run, before, blen);
    /* other settings: refused, naming the field */
    o.lr = 2e-3f;
    assert_int_equal(train_run(&o, NULL, NULL, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "lr is"));
    o.lr = 1e-3f;
    o.steps = 3; /* fewer steps: refused too (more extend the run: test_finetune) */
    assert_int_equal(train_run(&o, NULL, NULL, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "steps is 4 there, 3 in this run"));
    o.steps = 4;
    assert_unchanged(run, before, blen);
    /* another run's final checkpoint into a new directory: nothing to train */
    o.out_dir = other;
    o.resume = run;
    assert_int_equal(train_run(&o, NULL, NULL, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "nothing to train"));
    assert_int_not_equal(access(other, F_OK), 0);
    o.out_dir = run;
    o.resume = NULL;
    /* no checkpoint left (a run killed before its first): config.json decides */
    snprintf(p, sizeof p, "rm -rf %s/step_00000004 %s/latest", run, run);
    assert_int_equal(system(p), 0);
    o.seed = 5;
    assert_int_equal(train_run(&o, NULL, NULL, &res, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "config.json"));
    assert_non_null(strstr(e.msg, "seed is 1337 there, 5 in this run"));
    assert_unchanged(run, before, blen);
    /* the same settings start it again from step 0, with a note, to the same losses */
    o.seed = 1337;
    notes n = {0};
    o.note = on_note;
    o.sample_tokens = 0;
    assert_int_equal(train_run(&o, NULL, &n, &res, &e), 0);
    assert_non_null(strstr(n.all, "starts again from step 0"));
    size_t len;
    char *m = slurp(run, "metrics.jsonl", &len);
    char *a = strstr(m, "\"loss\":"), *b = strstr(before[0], "\"loss\":");
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, b, 20);
    free(m);
    free(before[0]);
    free(before[1]);
}

/* Two trainers never write one run directory: a lock held by another open file (as another
 * process would) is refused, naming the pid written in it; once released, the file left
 * behind (a trainer killed with -9 leaves one) does not block. */
static void test_lock(void **state) {
    (void)state;
    char data[128], run[128], p[256];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    snprintf(run, sizeof run, "%s/locked", dir);
    base_err e = {0};
    assert_int_equal(base_mkdir_p(run, &e), 0);
    snprintf(p, sizeof p, "%s/lock", run);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(write(fd, "4242\n", 5), 5);
    train_opts o;
    opts(&o, data, run);
    o.steps = 2;
    o.sample_tokens = 0;
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "pid 4242"));
    snprintf(p, sizeof p, "%s/config.json", run);
    assert_int_not_equal(access(p, F_OK), 0); /* nothing written */
    close(fd);
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), 0);
    size_t len;
    char *pid = slurp(run, "lock", &len);
    assert_int_equal(atol(pid), (long)getpid());
    free(pid);
}

/* config.json and metrics.jsonl are JSON written by jansson: a data path with a quote, a
 * backslash and a newline reads back as given, and every float reads back bit-exact. */
static void test_json_files(void **state) {
    (void)state;
    char data[256], run[128];
    snprintf(data, sizeof data, "%s/we\"ird\\name\nof data.txt", dir);
    snprintf(run, sizeof run, "%s/json", dir);
    make_corpus(data);
    train_opts o;
    opts(&o, data, run);
    o.steps = 3;
    o.sample_tokens = 0;
    o.lr = 1.2345678e-3f; /* 8 digits: %g's 6 would not round-trip */
    o.cfg.norm_eps = 3.3333333e-6f;
    seen s = {0};
    base_err e = {0};
    assert_int_equal(train_run(&o, record, &s, NULL, &e), 0);
    size_t len;
    char *text = slurp(run, "config.json", &len);
    size_t l1 = strcspn(text, "\n"); /* two lines */
    assert_true(l1 < len);
    json_error_t je;
    json_t *c = json_loadb(text, l1, 0, &je);
    json_t *r = json_loadb(text + l1 + 1, len - l1 - 1, 0, &je);
    assert_non_null(c);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "data_path")), data);
    assert_true((float)json_real_value(json_object_get(r, "lr")) == o.lr);
    assert_true((float)json_real_value(json_object_get(r, "min_lr")) == o.lr / 10);
    assert_true((float)json_real_value(json_object_get(c, "norm_eps")) == o.cfg.norm_eps);
    assert_int_equal(json_integer_value(json_object_get(r, "seed")), 1337);
    json_decref(c);
    json_decref(r);
    free(text);
    /* metrics.jsonl: every line parses; the losses are the reported floats, bit for bit */
    text = slurp(run, "metrics.jsonl", &len);
    int k = 0;
    for (char *at = text; at < text + len;) {
        char *end = memchr(at, '\n', (size_t)(text + len - at));
        assert_non_null(end);
        json_t *j = json_loadb(at, (size_t)(end - at), 0, &je);
        assert_non_null(j);
        json_t *l = json_object_get(j, "loss");
        if (l) {
            assert_true(k < s.n);
            assert_true((float)json_real_value(l) == s.loss[k]);
            k++;
        }
        json_decref(j);
        at = end + 1;
    }
    assert_int_equal(k, 3);
    free(text);
}

/* Settings read back compare by value at float32 precision: a file from before jansson spelled
 * norm_eps "1e-05" and rope_theta as the integer 10000; a real difference is named with the
 * shortest decimals of both floats. */
static void test_compare_settings(void **state) {
    (void)state;
    nn_config c;
    base_err e = {0};
    assert_int_equal(nn_config_preset(&c, "tiny", &e), 0);
    json_t *now = nn_config_json(&c);
    assert_non_null(now);
    char *text = json_dumps(now, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_t *back = json_loads(text, 0, NULL);
    assert_int_equal(ckpt_compare_settings("x", "model config", back, now, &e), 0);
    json_decref(back);
    free(text);
    json_t *old =
        json_loads("{\"family\":\"gpt2\",\"vocab_size\":256,\"max_seq\":128,\"n_layer\":4,"
                   "\"n_head\":4,\"n_kv_head\":4,\"d_model\":64,\"d_ff\":256,\"tied\":1,"
                   "\"bias\":1,\"norm_eps\":1e-05,\"rope_theta\":10000}",
                   0, NULL);
    assert_non_null(old);
    assert_int_equal(ckpt_compare_settings("x", "model config", old, now, &e), 0);
    json_object_set_new(old, "norm_eps", json_real(2e-5));
    assert_int_equal(ckpt_compare_settings("the run", "model config", old, now, &e), BASE_EINVAL);
    assert_string_equal(e.msg, "the run was made with a different model config: norm_eps is 2e-05 "
                               "there, 1e-05 in this run");
    json_decref(old);
    json_decref(now);
}

/* The final checkpoint cannot be written: the run fails with that reason, once (no note
 * besides), and says nothing of a run written. */
static void test_final_ckpt_failure(void **state) {
    (void)state;
    char data[128], run[128], p[256];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    snprintf(run, sizeof run, "%s/full", dir);
    base_err e = {0};
    assert_int_equal(base_mkdir_p(run, &e), 0);
    /* the final checkpoint's temporary name is taken by a file: ckpt_save cannot clear it */
    snprintf(p, sizeof p, "%s/.tmp-step_00000003", run);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    train_opts o;
    opts(&o, data, run);
    o.steps = 3;
    notes n = {0};
    o.note = on_note;
    train_result res;
    assert_int_not_equal(train_run(&o, NULL, &n, &res, &e), 0);
    assert_non_null(strstr(e.msg, "final checkpoint step_00000003 could not be written"));
    assert_null(strstr(n.all, "step_00000003"));
    assert_null(res.sample);
    snprintf(p, sizeof p, "%s/step_00000003", run);
    assert_int_not_equal(access(p, F_OK), 0);
    size_t len;
    char *m = slurp(run, "metrics.jsonl", &len);
    assert_non_null(
        strstr(m, "{\"step\":3,\"ckpt\":\"step_00000003\",\"failed\":true,\"final\":true}"));
    free(m);
}

/* Training on a file that is not text: a warning, and the run goes on. */
static void test_binary_data(void **state) {
    (void)state;
    char data[128], run[128];
    snprintf(data, sizeof data, "%s/model.bin", dir);
    snprintf(run, sizeof run, "%s/bin", dir);
    FILE *f = fopen(data, "wb");
    assert_non_null(f);
    for (int i = 0; i < 20000; i++) fputc((i * 7919) % 256, f);
    fclose(f);
    train_opts o;
    opts(&o, data, run);
    o.steps = 2;
    o.sample_tokens = 0;
    notes n = {0};
    o.note = on_note;
    base_err e = {0};
    assert_int_equal(train_run(&o, NULL, &n, NULL, &e), 0);
    assert_non_null(strstr(n.all, "warning:"));
    assert_non_null(strstr(n.all, "does not look like text"));
    /* text (UTF-8 included) gets none */
    char why[128];
    snprintf(data, sizeof data, "%s/corpus.txt", dir);
    assert_int_equal(data_file_looks_binary(data, why, sizeof why), 0);
    snprintf(data, sizeof data, "%s/utf8.txt", dir);
    f = fopen(data, "w");
    for (int i = 0; i < 3000; i++) fputs("naïve café — 東京\n", f);
    fclose(f);
    assert_int_equal(data_file_looks_binary(data, why, sizeof why), 0);
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
        cmocka_unit_test(test_rerun),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_json_files),
        cmocka_unit_test(test_compare_settings),
        cmocka_unit_test(test_final_ckpt_failure),
        cmocka_unit_test(test_binary_data),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
