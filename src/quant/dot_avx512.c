/* dot_avx512.c: AVX-512 kernels (none yet: every type falls back to its AVX2 kernel). */
#include "quant/quant_int.h"

quant_dot_fn quant_dot_avx512(int wtype) {
    (void)wtype;
    return NULL;
}
