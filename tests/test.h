/* tests/test.h: shared helpers for the cmocka suites. Each suite file defines one
 * `int test_<module>(void)` that runs its group and returns the number of failures. */
#ifndef HEARTH_TEST_H
#define HEARTH_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"

/* Fills x (n) with uniform values in [lo, hi) from rng. */
void test_fill(base_rng *r, float *x, size_t n, float lo, float hi);
/* max|a-b| / max(max|b|, floor): the relative error used throughout the tests. */
double test_rel_err(const float *a, const float *b, size_t n, double floor);
/* Asserts test_rel_err(a, b, n, 1e-6) <= tol, printing what and the error on failure. */
#define assert_close(a, b, n, tol, what) test_assert_close(a, b, n, tol, what, __FILE__, __LINE__)
void test_assert_close(const float *a, const float *b, size_t n, double tol, const char *what,
                       const char *file, int line);

/* Named tensors of an HFIX fixture file (see docs/FORMATS.md). */
typedef struct test_fixture test_fixture;
test_fixture *test_fixture_load(const char *path); /* NULL (and a message) on error */
void test_fixture_free(test_fixture *f);
/* Returns the data of entry `name` (float32 or int32), asserting it exists with n elements
 * (n = 0: any size, stored in *numel if not NULL). */
const void *test_fixture_get(const test_fixture *f, const char *name, size_t n, size_t *numel);
/* The model of tests/fixtures/FILE (tools/gen_fixtures.py: its "config" and "hyper" arrays and
 * every "param.NAME"), created for the fixture's batch (the model's B x T) with its parameters;
 * *f: the loaded fixture (the caller frees it). Fails the test on any error. */
struct nn_model *test_fixture_model(const char *file, test_fixture **f);
/* Every LoRA target a model of config c has (nn/lora.h's NN_LORA_* bits): all of them, less gate
 * outside the Llama family (GPT-2's MLP has no gate). */
struct nn_config;
unsigned test_lora_all(const struct nn_config *c);

/* Removes path and everything under it (rm -rf); returns 0 on success. */
int test_rm_rf(const char *path);

/* The tests' directory (for fixtures): $HEARTH_TESTS or "tests". */
const char *test_dir(void);
/* The varied tokenizer corpus, tests/tokenizer/corpus.txt (malloc'd; fails the test if absent). */
char *test_read_corpus(size_t *len);

int test_base(void);
int test_dist(void);
int test_tensor(void);
int test_nn(void);
int test_optim(void);
int test_train(void);
int test_tokenizer(void);
int test_ckpt(void);
int test_checkpoint(void);
int test_data(void);
int test_hnsw(void);
int test_vstore(void);
int test_analyzer(void);
int test_rag(void);
int test_infer(void);
int test_server(void);
int test_quant(void);
int test_gguf_parity(void);
int test_gguf_logits(void);
int test_embedding(void);
int test_server_embeddings(void);
int test_vstore_embedding(void);
int test_lora(void);
int test_infer_lora(void);
int test_finetune(void);

#endif
