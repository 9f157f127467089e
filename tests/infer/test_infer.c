/* tests/infer/test_infer.c: placeholder suite, replaced by the module's tests. */
#include "test.h"

int test_infer(void) { return 0; }
