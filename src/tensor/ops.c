/* tensor/ops.c: the two CPU kernel tables, filled from the one kernel list in tensor.h. */
#include "tensor.h"

#define FAST_ENTRY(ret, name, args) .name = tensor_##name,
#define REF_ENTRY(ret, name, args) .name = tensor_ref_##name,
const tensor_ops tensor_fast_ops = {.name = "cpu", TENSOR_KERNELS(FAST_ENTRY)};
const tensor_ops tensor_ref_ops = {.name = "cpu-reference", TENSOR_KERNELS(REF_ENTRY)};
