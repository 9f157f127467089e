/* tests/fuzz/fuzz_shard.c: a token shard (HSHD), from memory: the header check
 * (data_shard_parse: magic, version, checksum, widths, counts, the ids filling the file). The
 * header checksum (FNV-1a 64, docs/FORMATS.md) would stop nearly every mutation at the first
 * check, so the input is also tried with its checksum made right; a shard that passes is then
 * read through the loader (data_loader_open_files, a few batches: ids against the vocabulary). */
#include "fuzz.h"

#include "data/data.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    data_shard_info info;
    base_err e;
    fuzz_report("data_shard_parse", data_shard_parse(data, size, "fuzz", &info, &e), &e);
    if (size < DATA_SHARD_HEADER || memcmp(data, DATA_SHARD_MAGIC, 4) != 0) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    const size_t at = DATA_SHARD_HEADER - 8; /* the checksum of the bytes before it */
    base_put_le64(fixed + at, base_fnv1a64(fixed, at, BASE_FNV64_BASIS));
    if (data_shard_parse(fixed, size, "fuzz", &info, &e) == 0) {
        const char *path = fuzz_path("train_000000.bin");
        fuzz_write(path, fixed, size);
        data_loader *l;
        if (data_loader_open_files(&l, &path, 1, 1, 4, 1, &e) == 0) {
            int tok[4], tgt[4];
            for (int i = 0; i < 3; i++)
                if (fuzz_report("data_loader_next", data_loader_next(l, tok, tgt, &e), &e)) break;
            data_loader_free(l);
        }
    }
    free(fixed);
    return 0;
}
