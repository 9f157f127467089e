/* tests/vstore/test_vstore.c: placeholder suite, replaced by the module's tests. */
#include "test.h"

int test_vstore(void) { return 0; }
