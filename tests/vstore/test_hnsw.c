/* tests/vstore/test_hnsw.c: placeholder suite, replaced by the module's tests. */
#include "test.h"

int test_hnsw(void) { return 0; }
