/* bench/tokenizer_bench.c: hearth's tokenizer throughput, one thread.
 *   tokenizer_bench encode VOCAB TEXT [RUNS]   encode MB/s: cold (a fresh handle per run, so the
 *                                              piece cache starts empty) and warm; best of RUNS
 *   tokenizer_bench train TEXT COPIES SIZE     train a SIZE vocabulary on COPIES x TEXT
 * Run by bench/tokenizer_bench.sh beside js-tiktoken and tiktoken (WASM) on the same text. */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const base_err *e) {
    fprintf(stderr, "tokenizer_bench: %s\n", e->msg);
    return 1;
}

static int bench_encode(const char *vocab, const char *path, int runs) {
    base_err e = {0};
    char *text;
    size_t len;
    if (base_read_file(path, &text, &len, &e)) return die(&e);
    double cold = 1e30, warm = 1e30;
    size_t n_ids = 0;
    tok_vocab *keep = NULL;
    for (int r = 0; r < runs; r++) {
        tok_vocab *v;
        if (tok_load(vocab, &v, &e)) return die(&e);
        tok_ids ids = {0};
        double t0 = base_now();
        if (tok_encode(v, text, len, 0, &ids, &e)) return die(&e);
        double t = base_now() - t0;
        if (t < cold) cold = t;
        n_ids = ids.len;
        if (r == 0) { /* check the round trip once */
            char *back;
            size_t bl;
            if (tok_decode(v, ids.data, ids.len, 0, &back, &bl, &e)) return die(&e);
            if (bl != len || memcmp(back, text, len)) {
                fprintf(stderr, "tokenizer_bench: decode(encode(text)) != text\n");
                return 1;
            }
            free(back);
        }
        tok_ids_free(&ids);
        if (keep)
            tok_free(v);
        else
            keep = v;
    }
    for (int r = 0; r < runs; r++) { /* the same handle again: its cache is warm */
        tok_ids ids = {0};
        double t0 = base_now();
        if (tok_encode(keep, text, len, 0, &ids, &e)) return die(&e);
        double t = base_now() - t0;
        if (t < warm) warm = t;
        tok_ids_free(&ids);
    }
    printf("hearth %.2f MB %zu tokens cold %.1f MB/s warm %.1f MB/s\n", (double)len / 1e6, n_ids,
           (double)len / 1e6 / cold, (double)len / 1e6 / warm);
    tok_free(keep);
    free(text);
    return 0;
}

static int bench_train(const char *path, int copies, int size) {
    base_err e = {0};
    char *text;
    size_t len;
    if (base_read_file(path, &text, &len, &e)) return die(&e);
    static const char *eot[] = {"<|endoftext|>"};
    tok_train_opts o = {
        .vocab_size = size, .pretok = TOK_PRETOK_GPT2, .specials = eot, .n_specials = 1};
    tok_trainer *t;
    if (tok_trainer_create(&o, &t, &e)) return die(&e);
    double t0 = base_now();
    for (int i = 0; i < copies; i++)
        if (tok_trainer_add(t, text, len, &e)) return die(&e);
    double t1 = base_now();
    tok_vocab *v;
    if (tok_trainer_finish(t, &v, &e)) return die(&e);
    double t2 = base_now();
    uint64_t pieces, unique;
    tok_trainer_stats(t, &pieces, &unique);
    printf(
        "train %.1f MB, %llu pieces (%llu distinct): count %.2f s (%.1f MB/s), %d merges %.2f s, "
        "total %.2f s\n",
        (double)len * copies / 1e6, (unsigned long long)pieces, (unsigned long long)unique, t1 - t0,
        (double)len * copies / 1e6 / (t1 - t0), tok_vocab_size(v) - 257, t2 - t1, t2 - t0);
    tok_trainer_free(t);
    tok_free(v);
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "encode"))
        return bench_encode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 5);
    if (argc == 5 && !strcmp(argv[1], "train"))
        return bench_train(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: tokenizer_bench encode VOCAB TEXT [RUNS] | train TEXT COPIES SIZE\n");
    return 2;
}
