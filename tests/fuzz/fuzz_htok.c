/* tests/fuzz/fuzz_htok.c: hearth's vocabulary file (HTOK), from memory (tok_parse), then an
 * encode (with and without special tokens) and a decode with the vocabulary it gave. The file
 * ends in a checksum of everything before it (FNV-1a 64), which would stop nearly every
 * mutation at once, so each input is also tried with its checksum made right. */
#include "fuzz.h"

#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char text[] = "Hello, world! <|endoftext|> 123 ümlaut\n\n\tend\xff\xfe";

static void parse(const uint8_t *data, size_t size) {
    tok_vocab *v = NULL;
    base_err e;
    if (fuzz_report("tok_parse", tok_parse(data, size, &v, &e), &e)) return;
    for (int flags = 0; flags <= TOK_ENCODE_SPECIAL; flags++) {
        tok_ids ids = {0};
        if (tok_encode(v, text, sizeof text - 1, flags, &ids, &e) == 0) {
            char *out = NULL;
            size_t len;
            if (tok_decode(v, ids.data, ids.len, 0, &out, &len, &e) == 0) free(out);
        }
        tok_ids_free(&ids);
    }
    tok_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parse(data, size);
    if (size < 16) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    base_put_le64(fixed + size - 8, base_fnv1a64(fixed, size - 8, BASE_FNV64_BASIS));
    parse(fixed, size);
    free(fixed);
    return 0;
}
