/* tests/train/test_train.c: placeholder until the training loop lands (next commit). */
#include "test.h"
int test_train(void) { return 0; }
