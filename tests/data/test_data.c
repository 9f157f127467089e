/* tests/data/test_data.c: token shards and the loader. Streaming cuts give the ids of a whole
 * encoding (GPT-2 and cl100k patterns, SentencePiece-style); prepare round trips (uint16 from
 * a trained vocabulary, uint32 through the writer), EOT separation, dedup, the split, JSONL
 * fields and malformed lines, empty inputs, failures that leave nothing behind; corrupt
 * shards (every truncation, bad magic, counts beyond the file, overflowing sizes) fail
 * cleanly; the loader visits every window once per epoch in a seeded order and restores its
 * position exactly; training runs on prepared shards. */
#include "test.h"

#include "../ckpt/gguf_write.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64]; /* this suite's temporary directory */

/* ---- helpers */

static void path_of(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", root, name);
}

static void write_file(const char *name, const void *data, size_t len) {
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_str(const char *name, const char *s) {
    write_file(name, s, strlen(s));
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void rm_rf(const char *path) {
    assert_int_equal(test_rm_rf(path), 0);
}

/* English-like text with blank lines, whitespace runs (spaces and tabs before newlines,
 * CRLF, runs of newlines, Unicode spaces), numbers, punctuation and non-ASCII letters. */
static char *gen_text(size_t n, uint64_t seed) {
    static const char *words[] = {"the",   "of",     "and",   "to",      "in",     "is",
                                  "that",  "it",     "was",   "lantern", "island", "rain",
                                  "don't", "it's",   "we'll", "naïve",   "café",   "日本",
                                  "😀",     "Hearth", "TOKEN", "x"};
    static const char *gaps[] = {" ",   " ",    " ",    "  ",    "\n",      "\n\n",
                                 " \n", "\t\n", "\r\n", "\n   ", "\n\n\n ", "\xC2\xA0",
                                 ".\n", "\t",   "!\n",  ",",     "    \n\n"};
    base_rng r;
    base_rng_seed(&r, seed);
    char *s = malloc(n + 64);
    size_t o = 0;
    while (o < n) {
        const char *w;
        char num[24];
        if (base_rng_below(&r, 10) == 0) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)base_rng_below(&r, 100000));
            w = num;
        } else {
            w = words[base_rng_below(&r, sizeof words / sizeof *words)];
        }
        const char *g = gaps[base_rng_below(&r, sizeof gaps / sizeof *gaps)];
        size_t lw = strlen(w), lg = strlen(g);
        if (o + lw + lg > n + 60) break;
        memcpy(s + o, w, lw);
        o += lw;
        memcpy(s + o, g, lg);
        o += lg;
    }
    s[o] = 0;
    return s;
}

/* The parity corpus plus generated text: what the vocabularies here are trained on. */
static char *train_text(size_t *len) {
    size_t cl;
    char *c = test_read_corpus(&cl);
    char *g = gen_text(60000, 7);
    size_t gl = strlen(g);
    char *all = malloc(cl + gl + 1);
    memcpy(all, c, cl);
    memcpy(all + cl, g, gl + 1);
    free(c);
    free(g);
    *len = cl + gl;
    return all;
}

static tok_vocab *train_vocab(int pretok, int vocab_size, int with_eot) {
    static const char *specials[] = {"<|endoftext|>"};
    size_t n;
    char *text = train_text(&n);
    tok_train_opts o = {.vocab_size = vocab_size,
                        .pretok = pretok,
                        .specials = specials,
                        .n_specials = with_eot ? 1 : 0};
    tok_vocab *v;
    base_err e = {0};
    if (tok_train(&o, text, n, &v, &e)) fail_msg("train: %s", e.msg);
    free(text);
    return v;
}

static int valid_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!k || i + k > n || c > 0xF4) return 0;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

/* A SentencePiece-style vocabulary (GGUF "llama", space prefix, byte fallback) whose normal
 * tokens are a trained BPE vocabulary's, spaces spelled U+2581, scored by rank. newline_token:
 * keep one token holding a newline (then no cut is safe). */
static tok_vocab *spm_vocab(const tok_vocab *bpe, int newline_token) {
    int32_t nb = tok_vocab_size(bpe);
    size_t cap = 3 + 256 + (size_t)nb + 1;
    char **tok = calloc(cap, sizeof *tok);
    float *score = calloc(cap, sizeof *score);
    int32_t *type = calloc(cap, sizeof *type);
    size_t n = 0;
    const char *fixed[] = {"<unk>", "<s>", "</s>"};
    const int ftype[] = {TOK_TYPE_UNKNOWN, TOK_TYPE_CONTROL, TOK_TYPE_CONTROL};
    for (int i = 0; i < 3; i++) tok[n] = strdup(fixed[i]), type[n] = ftype[i], score[n++] = 0;
    for (int b = 0; b < 256; b++) {
        tok[n] = malloc(8);
        snprintf(tok[n], 8, "<0x%02X>", b);
        type[n] = TOK_TYPE_BYTE, score[n++] = 0;
    }
    int newline_kept = 0;
    for (int32_t id = 256; id < nb; id++) {
        const char *t;
        size_t len;
        base_err e = {0};
        assert_int_equal(tok_token_text(bpe, id, &t, &len, &e), 0);
        if (tok_token_type(bpe, id) != TOK_TYPE_NORMAL || !valid_utf8(t, len)) continue;
        if (memchr(t, '\n', len)) {
            if (!newline_token || newline_kept) continue;
            newline_kept = 1;
        }
        char *s = malloc(len * 3 + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
            if (t[i] == ' ')
                memcpy(s + o, "\xE2\x96\x81", 3), o += 3;
            else
                s[o++] = t[i];
        }
        s[o] = 0;
        tok[n] = s, type[n] = TOK_TYPE_NORMAL, score[n++] = -(float)id;
    }
    if (newline_token) assert_true(newline_kept);
    gw w;
    gw_begin(&w, 3);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    gw_kv_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)tok, NULL, n);
    gw_kv_arr_f32(&w, "tokenizer.ggml.scores", score, n);
    gw_kv_arr_i32(&w, "tokenizer.ggml.token_type", type, n);
    gw_kv_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    gw_kv_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    gw_kv_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    gw_kv_bool(&w, "tokenizer.ggml.add_space_prefix", 1);
    gw_finish(&w);
    gguf_file *g;
    base_err e = {0};
    assert_int_equal(gguf_parse(w.p, w.len, &g, &e), 0);
    tok_vocab *v = NULL;
    if (tok_load_gguf(g, &v, &e)) fail_msg("spm vocab: %s", e.msg);
    gguf_close(g);
    gw_free(&w);
    for (size_t i = 0; i < n; i++) free(tok[i]);
    free(tok);
    free(score);
    free(type);
    return v;
}

static void encode(tok_vocab *v, const char *s, size_t n, int flags, tok_ids *out) {
    base_err e = {0};
    if (tok_encode(v, s, n, flags, out, &e)) fail_msg("encode: %s", e.msg);
}

/* All ids of a shard file, and its header. */
static int32_t *shard_ids(const char *path, data_shard_info *info) {
    char *d;
    size_t len;
    base_err e = {0};
    assert_int_equal(base_read_file(path, &d, &len, &e), 0);
    if (data_shard_parse(d, len, path, info, &e)) fail_msg("%s", e.msg);
    int32_t *ids = malloc((info->n_tokens + 1) * sizeof *ids);
    const uint8_t *p = (const uint8_t *)d + DATA_SHARD_HEADER;
    for (uint64_t i = 0; i < info->n_tokens; i++) {
        uint32_t x = 0;
        for (uint32_t k = 0; k < info->token_bytes; k++)
            x |= (uint32_t)p[i * info->token_bytes + k] << (8 * k);
        ids[i] = (int32_t)x;
    }
    free(d);
    return ids;
}

/* Every id of one split of a prepared directory, in shard order. */
static tok_ids split_ids(const char *dir, const char *split) {
    tok_ids all = {0};
    for (int k = 0;; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s_%06d.bin", dir, split, k);
        if (!exists(p)) break;
        data_shard_info info;
        int32_t *ids = shard_ids(p, &info);
        for (uint64_t i = 0; i < info.n_tokens; i++)
            assert_int_equal(tok_ids_push(&all, ids[i]), 0);
        free(ids);
    }
    return all;
}

typedef struct warnings {
    int n;
    char first[8][512];
} warnings;

static void on_warn(const char *msg, void *user) {
    warnings *w = user;
    if (w->n < 8) snprintf(w->first[w->n], sizeof w->first[0], "%s", msg);
    w->n++;
}

static int warned(const warnings *w, const char *needle) {
    for (int i = 0; i < w->n && i < 8; i++)
        if (strstr(w->first[i], needle)) return 1;
    return 0;
}

/* Runs prepare on inputs (names under root) into root/out (removed first). */
static int prepare(tok_vocab *v, const char *const *names, size_t n, double val_frac,
                   uint64_t shard_tokens, uint64_t seed, const char *field, warnings *w,
                   data_prepare_stats *st, base_err *e) {
    char out[512], *paths[16];
    path_of(out, sizeof out, "out");
    rm_rf(out);
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        paths[i] = malloc(512);
        path_of(paths[i], 512, names[i]);
    }
    data_prepare_opts o = {.vocab = v,
                           .out_dir = out,
                           .inputs = (const char *const *)paths,
                           .n_inputs = n,
                           .field = field,
                           .val_frac = val_frac,
                           .shard_tokens = shard_tokens,
                           .seed = seed,
                           .warn = on_warn,
                           .user = w};
    warnings ignore = {0};
    if (!w) o.user = &ignore;
    int rc = data_prepare(&o, st, e);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    return rc;
}

static tok_vocab *small_vocab; /* GPT-2 pattern, 600 tokens, <|endoftext|> last */

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/hearth-data-XXXXXX");
    if (!mkdtemp(root)) return -1;
    small_vocab = train_vocab(TOK_PRETOK_GPT2, 600, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_free(small_vocab);
    rm_rf(root);
    return 0;
}

/* ---- streaming cuts */

/* Encodes text in parts cut by tok_stream_cut over windows of pseudo-random small sizes
 * (grown until a cut turns up) and checks the ids are those of one whole encoding. Returns the
 * number of cuts made. */
static size_t chunked_equals_whole(tok_vocab *v, const char *text, size_t len, uint64_t seed) {
    tok_ids whole = {0}, parts = {0};
    encode(v, text, len, 0, &whole);
    base_rng r;
    base_rng_seed(&r, seed);
    size_t pos = 0, cuts = 0;
    while (pos < len) {
        size_t w = 2 + (size_t)base_rng_below(&r, 300), cut = 0;
        while (pos + w < len && !(cut = tok_stream_cut(v, text + pos, w))) w *= 2;
        if (pos + w >= len)
            cut = len - pos;
        else
            cuts++;
        encode(v, text + pos, cut, pos ? TOK_ENCODE_CONTINUE : 0, &parts);
        pos += cut;
    }
    if (whole.len != parts.len || memcmp(whole.data, parts.data, whole.len * sizeof(int32_t)))
        fail_msg("chunked encoding (%zu ids) differs from whole (%zu ids)", parts.len, whole.len);
    tok_ids_free(&whole);
    tok_ids_free(&parts);
    return cuts;
}

static void test_stream_cut(void **state) {
    (void)state;
    size_t cl;
    char *corpus = test_read_corpus(&cl);
    char *gen = gen_text(40000, 3);
    tok_vocab *gpt2 = small_vocab, *cl100k = train_vocab(TOK_PRETOK_CL100K, 600, 1);
    tok_vocab *spm = spm_vocab(gpt2, 0), *spm_nl = spm_vocab(gpt2, 1);
    tok_vocab *vs[] = {gpt2, cl100k, spm};
    for (int i = 0; i < 3; i++) {
        for (uint64_t s = 1; s <= 3; s++) {
            assert_true(chunked_equals_whole(vs[i], corpus, cl, s) > 5);
            assert_true(chunked_equals_whole(vs[i], gen, strlen(gen), s) > 50);
        }
    }
    /* a SentencePiece-style vocabulary with a token holding a newline has no safe cut */
    assert_int_equal(tok_stream_cut(spm_nl, gen, strlen(gen)), 0);
    /* every cut is at one of the documented places */
    for (size_t pos = 0, len = strlen(gen); pos < len;) {
        size_t c = tok_stream_cut(gpt2, gen, len - pos);
        if (!c) break;
        const unsigned char *t = (const unsigned char *)gen;
        int nl =
            t[c - 1] == '\n' && t[c - 2] > 0x20 && t[c - 2] < 0x7f && t[c] > 0x20 && t[c] < 0x7f;
        int sp = t[c] == ' ' && ((t[c - 1] | 0x20) >= 'a' && (t[c - 1] | 0x20) <= 'z');
        assert_true(nl || sp);
        pos = len - c + 1;
    }
    tok_ids whole = {0}, parts = {0};
    /* SentencePiece: a continued part has no space prefix */
    encode(spm, "ab\ncd", 5, 0, &whole);
    size_t c = tok_stream_cut(spm, "ab\ncd", 5);
    assert_int_equal(c, 3);
    encode(spm, "ab\n", 3, 0, &parts);
    encode(spm, "cd", 2, TOK_ENCODE_CONTINUE, &parts);
    assert_int_equal(whole.len, parts.len);
    assert_memory_equal(whole.data, parts.data, whole.len * 4);
    tok_ids_free(&whole);
    tok_ids_free(&parts);
    tok_free(cl100k);
    tok_free(spm);
    tok_free(spm_nl);
    free(corpus);
    free(gen);
}

/* ---- prepare */

/* Three text documents and the ids prepare must write for them (val_frac 0: all train). */
static void test_prepare_roundtrip(void **state) {
    (void)state;
    tok_vocab *v = small_vocab;
    int32_t eot = tok_eot_id(v);
    char *big = gen_text(3u << 20, 11); /* several encode chunks */
    const char *docs[] = {"Hello world.\nA second line.\n",
                          "bytes \xff\xfe and \xC3 invalid UTF-8, text <|endoftext|> <|unknown|>",
                          big};
    const char *names[] = {"d/a.txt", "d/b.txt", "d/c/big.txt"};
    char p[512];
    path_of(p, sizeof p, "d/c");
    base_err e = {0};
    assert_int_equal(base_mkdir_p(p, &e), 0);
    for (int i = 0; i < 3; i++) write_str(names[i], docs[i]);
    write_str("d/.hidden", "never read");
    tok_ids want = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tok_ids_push(&want, eot), 0);
        encode(v, docs[i], strlen(docs[i]), 0, &want);
    }
    data_prepare_stats st;
    const char *in[] = {"d"};
    assert_int_equal(prepare(v, in, 1, 0, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.files, 3);
    assert_int_equal(st.docs, 3);
    assert_int_equal(st.split_docs[DATA_TRAIN], 3);
    assert_int_equal(st.split_shards[DATA_VAL], 0);
    assert_int_equal(st.forced_cuts, 0);
    char out[512];
    path_of(out, sizeof out, "out");
    tok_ids got = split_ids(out, "train");
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len * sizeof(int32_t));
    assert_int_equal(st.split_tokens[DATA_TRAIN], want.len);
    /* the EOT token appears once per document: the literal text in b.txt stays text */
    size_t n_eot = 0;
    for (size_t i = 0; i < got.len; i++) n_eot += got.data[i] == eot;
    assert_int_equal(n_eot, 3);
    /* the header */
    data_shard_info info;
    path_of(p, sizeof p, "out/train_000000.bin");
    assert_int_equal(data_shard_read_info(p, &info, &e), 0);
    assert_int_equal(info.token_bytes, 2);
    assert_int_equal(info.vocab_size, 600);
    assert_int_equal(info.n_docs, 3);
    assert_int_equal(info.eot_id, eot);
    assert_string_equal(info.identity, tok_identity(v));
    /* the vocabulary copy and prepare.json */
    tok_vocab *copy;
    path_of(p, sizeof p, "out/vocab.htok");
    assert_int_equal(tok_load(p, &copy, &e), 0);
    assert_string_equal(tok_identity(copy), tok_identity(v));
    tok_free(copy);
    char *json;
    size_t jl;
    path_of(p, sizeof p, "out/prepare.json");
    assert_int_equal(base_read_file(p, &json, &jl, &e), 0);
    assert_non_null(strstr(json, "\"docs\": 3"));
    assert_non_null(strstr(json, tok_identity(v)));
    free(json);
    /* decoding the shard gives the documents back, byte for byte */
    char *text;
    size_t tl;
    assert_int_equal(tok_decode(v, got.data, got.len, 0, &text, &tl, &e), 0);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(text + off, "<|endoftext|>", 13);
        off += 13;
        assert_memory_equal(text + off, docs[i], strlen(docs[i]));
        off += strlen(docs[i]);
    }
    assert_int_equal(off, tl);
    free(text);
    /* a second run into the same directory is refused */
    path_of(p, sizeof p, "d");
    const char *const inputs[] = {p};
    data_prepare_opts o = {.vocab = v, .out_dir = out, .inputs = inputs, .n_inputs = 1};
    assert_int_equal(data_prepare(&o, &st, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "already holds"));
    /* small shards: the same stream cut into shards of 1000 tokens */
    assert_int_equal(prepare(v, in, 1, 0, 100000, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.split_shards[DATA_TRAIN], (want.len + 99999) / 100000);
    tok_ids again = split_ids(out, "train");
    assert_int_equal(again.len, want.len);
    assert_memory_equal(again.data, want.data, want.len * sizeof(int32_t));
    path_of(p, sizeof p, "out/train_000000.bin");
    assert_int_equal(data_shard_read_info(p, &info, &e), 0);
    assert_int_equal(info.n_tokens, 100000);
    tok_ids_free(&again);
    tok_ids_free(&want);
    tok_ids_free(&got);
    free(big);
}

/* A text with no safe cut for more than PEND_MAX bytes is cut anyway, counted, and still
 * decodes to itself. */
static void test_forced_cut(void **state) {
    (void)state;
    size_t n = 9u << 20;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = (i % 2) ? '\t' : "ab"[i / 2 % 2];
    write_file("long.txt", s, n);
    data_prepare_stats st;
    base_err e = {0};
    const char *in[] = {"long.txt"};
    assert_int_equal(prepare(small_vocab, in, 1, 0, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.forced_cuts, 1);
    char out[512];
    path_of(out, sizeof out, "out");
    tok_ids got = split_ids(out, "train");
    char *text;
    size_t tl;
    assert_int_equal(tok_decode(small_vocab, got.data + 1, got.len - 1, 0, &text, &tl, &e), 0);
    assert_int_equal(tl, n);
    assert_memory_equal(text, s, n);
    free(text);
    free(s);
    tok_ids_free(&got);
}

/* One text file is one document: split by position, its last val_frac to val (from a line
 * start), each part after an end-of-text token and decoding to exactly its bytes; both splits
 * open. Two files, or val_frac 0, are split by document as before. */
static void test_split_by_position(void **state) {
    (void)state;
    size_t n = 1500000; /* the train part spans more than one encoding chunk (1 MiB) */
    char *s = gen_text(n, 11);
    write_file("book.txt", s, n);
    data_prepare_stats st;
    base_err e = {0};
    const char *in[] = {"book.txt"};
    assert_int_equal(prepare(small_vocab, in, 1, 0.1, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.docs, 1);
    assert_int_equal(st.split_docs[DATA_TRAIN], 1);
    assert_int_equal(st.split_docs[DATA_VAL], 1);
    uint64_t cut = st.position_cut;
    assert_true(cut <= n - n / 10 && cut + 4096 > n - n / 10);
    assert_int_equal(s[cut - 1], '\n');
    char out[512];
    path_of(out, sizeof out, "out");
    int32_t eot = tok_eot_id(small_vocab);
    for (int side = 0; side < 2; side++) {
        tok_ids got = split_ids(out, side == DATA_TRAIN ? "train" : "val");
        assert_true(got.len > 1);
        assert_int_equal(got.data[0], eot);
        char *text;
        size_t tl;
        assert_int_equal(tok_decode(small_vocab, got.data + 1, got.len - 1, 0, &text, &tl, &e), 0);
        size_t lo = side == DATA_TRAIN ? 0 : cut, hi = side == DATA_TRAIN ? cut : n;
        assert_int_equal(tl, hi - lo);
        assert_memory_equal(text, s + lo, tl);
        free(text);
        tok_ids_free(&got);
    }
    char pj[600], *m;
    size_t ml;
    snprintf(pj, sizeof pj, "%s/prepare.json", out);
    assert_int_equal(base_read_file(pj, &m, &ml, &e), 0);
    assert_non_null(strstr(m, "\"split\": \"position\""));
    assert_non_null(strstr(m, "\"val_frac\": 0.1,"));
    free(m);
    data_loader *l;
    for (int side = 0; side < 2; side++) {
        assert_int_equal(data_loader_open(&l, out, side, 4, 64, 1, &e), 0);
        data_loader_free(l);
    }
    /* val_frac 0: all of it in train */
    assert_int_equal(prepare(small_vocab, in, 1, 0, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.position_cut, 0);
    assert_int_equal(st.split_shards[DATA_VAL], 0);
    /* two files: two documents, each to one side by its hash */
    write_file("book2.txt", s, n / 2);
    const char *two[] = {"book.txt", "book2.txt"};
    assert_int_equal(prepare(small_vocab, two, 2, 0.1, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.position_cut, 0);
    assert_int_equal(st.docs, 2);
    assert_int_equal(st.split_docs[DATA_TRAIN] + st.split_docs[DATA_VAL], 2);
    free(s);
}

static void test_uint32_shards(void **state) {
    (void)state;
    char p[512];
    path_of(p, sizeof p, "wide.bin");
    data_shard_writer *w;
    base_err e = {0};
    assert_int_equal(data_shard_create(&w, p, 70000, 69999, "test:wide", &e), 0);
    int32_t ids[300];
    for (int i = 0; i < 300; i++) ids[i] = i % 3 == 0 ? 69999 : 65530 + i;
    assert_int_equal(data_shard_write(w, ids, 300, &e), 0);
    int32_t bad = 70000;
    assert_int_equal(data_shard_write(w, &bad, 1, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "outside the vocabulary"));
    assert_int_equal(data_shard_tokens(w), 300);
    assert_false(exists(p)); /* not before commit */
    assert_int_equal(data_shard_commit(w, &e), 0);
    data_shard_info info;
    int32_t *back = shard_ids(p, &info);
    assert_int_equal(info.token_bytes, 4);
    assert_int_equal(info.vocab_size, 70000);
    assert_int_equal(info.n_docs, 100);
    assert_memory_equal(back, ids, sizeof ids);
    free(back);
    /* the loader gives them back as windows */
    data_loader *l;
    const char *files[] = {p};
    assert_int_equal(data_loader_open_files(&l, files, 1, 1, 10, 5, &e), 0);
    assert_int_equal(data_loader_windows(l), 29);
    assert_int_equal(data_loader_vocab_size(l), 70000);
    for (int k = 0; k < 29; k++) {
        int tok[10], tgt[10];
        assert_int_equal(data_loader_next(l, tok, tgt, &e), 0);
        int s = -1;
        for (int i = 0; i + 10 < 300; i += 10)
            if (ids[i] == tok[0] && ids[i + 1] == tok[1] && ids[i + 2] == tok[2]) s = i;
        assert_true(s >= 0 && s % 10 == 0);
        for (int t = 0; t < 10; t++) {
            assert_int_equal(tok[t], ids[s + t]);
            assert_int_equal(tgt[t], ids[s + t + 1]);
        }
    }
    data_loader_free(l);
    /* abort leaves nothing, not even the temporary */
    path_of(p, sizeof p, "aborted.bin");
    assert_int_equal(data_shard_create(&w, p, 300, -1, "test:x", &e), 0);
    assert_int_equal(data_shard_write(w, ids + 1, 1, &e), BASE_EINVAL); /* 65531 >= 300 */
    data_shard_abort(w);
    DIR *d = opendir(root);
    struct dirent *de;
    while ((de = readdir(d))) assert_null(strstr(de->d_name, "aborted"));
    closedir(d);
    assert_int_equal(data_shard_create(&w, p, 300, -1, "has space", &e), BASE_EINVAL);
    assert_int_equal(data_shard_create(&w, p, 0, -1, "x", &e), BASE_EINVAL);
}

static void test_dedup_and_jsonl(void **state) {
    (void)state;
    base_err e = {0};
    char p[512];
    path_of(p, sizeof p, "j");
    assert_int_equal(base_mkdir_p(p, &e), 0);
    write_str("j/a.txt", "the same text\n");
    write_str("j/b.txt", "the same text\n");
    write_str("j/empty.txt", "");
    /* invalid UTF-8 inside a JSON string is kept byte for byte */
    const char jl[] = "{\"text\": \"the same text\\n\", \"id\": 1}\n" /* 1: a duplicate of a.txt */
                      "{\"text\": \"caf\\u00e9 \\\"quoted\\\" nul\\u0000\"}\n" /* 2 */
                      "\n"                                          /* 3: blank, skipped quietly */
                      "{\"text\": 42}\n"                            /* 4: not a string */
                      "[\"text\", \"array\"]\n"                     /* 5: not an object */
                      "{\"body\": \"no text field\"}\n"             /* 6: no field */
                      "{\"text\": \"unterminated}\n"                /* 7: bad JSON */
                      "{\"text\": \"raw \xff\xfe bytes \xC3\"}\r\n" /* 8: invalid UTF-8 */
                      "{\"text\": \"\"}\n"                          /* 9: empty */
                      "{\"text\": \"last line, no newline\"}";      /* 10 */
    write_file("j/x.jsonl", jl, sizeof jl - 1);
    data_prepare_stats st;
    warnings w = {0};
    const char *in[] = {"j"};
    assert_int_equal(prepare(small_vocab, in, 1, 0, 0, 1, NULL, &w, &st, &e), 0);
    assert_int_equal(st.files, 4);
    assert_int_equal(st.docs, 4); /* a.txt, lines 2, 8, 10 */
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.empty, 2);
    assert_int_equal(st.bad_lines, 4);
    assert_int_equal(w.n, 4);
    assert_true(warned(&w, "x.jsonl:4: \"text\" is not a string"));
    assert_true(warned(&w, "x.jsonl:5: not a JSON object"));
    assert_true(warned(&w, "x.jsonl:6: no \"text\" field"));
    assert_true(warned(&w, "x.jsonl:7: malformed JSON"));
    char out[512];
    path_of(out, sizeof out, "out");
    tok_ids got = split_ids(out, "train");
    char *text;
    size_t tl;
    assert_int_equal(tok_decode(small_vocab, got.data, got.len, 0, &text, &tl, &e), 0);
    const char want[] = "<|endoftext|>the same text\n"
                        "<|endoftext|>caf\xC3\xA9 \"quoted\" nul\0"
                        "<|endoftext|>raw \xff\xfe bytes \xC3"
                        "<|endoftext|>last line, no newline";
    assert_int_equal(tl, sizeof want - 1);
    assert_memory_equal(text, want, tl);
    free(text);
    tok_ids_free(&got);
    /* --field */
    w.n = 0;
    const char *in2[] = {"j/x.jsonl"};
    assert_int_equal(prepare(small_vocab, in2, 1, 0, 0, 1, "body", &w, &st, &e), 0);
    assert_int_equal(st.docs, 1);
    assert_int_equal(st.bad_lines, 8);
    /* a line over the limit is skipped, and the next one read */
    size_t big = DATA_MAX_LINE + 100;
    char *line = malloc(big + 64);
    memcpy(line, "{\"text\": \"", 10);
    memset(line + 10, 'a', big - 10);
    size_t n = big;
    n += (size_t)sprintf(line + n, "\"}\n{\"text\": \"ok\"}\n");
    write_file("long.jsonl", line, n);
    free(line);
    w.n = 0;
    const char *in3[] = {"long.jsonl"};
    assert_int_equal(prepare(small_vocab, in3, 1, 0, 0, 1, NULL, &w, &st, &e), 0);
    assert_int_equal(st.docs, 1);
    assert_int_equal(st.bad_lines, 1);
    assert_true(warned(&w, "long.jsonl:1: longer than"));
}

static void test_split(void **state) {
    (void)state;
    base_err e = {0};
    base_buf a = {0}, b = {0};
    for (int i = 0; i < 2000; i++) base_buf_printf(&a, "{\"text\": \"document number %d\"}\n", i);
    for (int i = 1999; i >= 0; i--) base_buf_printf(&b, "{\"text\": \"document number %d\"}\n", i);
    write_file("fwd.jsonl", a.data, a.len);
    write_file("rev.jsonl", b.data, b.len);
    base_buf_free(&a);
    base_buf_free(&b);
    data_prepare_stats s1, s2, s3;
    const char *fwd[] = {"fwd.jsonl"}, *rev[] = {"rev.jsonl"};
    char out[512];
    path_of(out, sizeof out, "out");
    assert_int_equal(prepare(small_vocab, fwd, 1, 0.1, 0, 7, NULL, NULL, &s1, &e), 0);
    tok_ids v1 = split_ids(out, "val");
    assert_int_equal(prepare(small_vocab, rev, 1, 0.1, 0, 7, NULL, NULL, &s2, &e), 0);
    tok_ids v2 = split_ids(out, "val");
    assert_true(s1.split_docs[DATA_VAL] > 150 && s1.split_docs[DATA_VAL] < 250);
    assert_int_equal(s1.split_docs[DATA_VAL] + s1.split_docs[DATA_TRAIN], 2000);
    /* the same documents go to val whatever the input order: the same multiset of ids */
    assert_int_equal(s1.split_docs[DATA_VAL], s2.split_docs[DATA_VAL]);
    assert_int_equal(v1.len, v2.len);
    int64_t sum1 = 0, sum2 = 0;
    for (size_t i = 0; i < v1.len; i++)
        sum1 += v1.data[i] * (v1.data[i] + 7), sum2 += v2.data[i] * (v2.data[i] + 7);
    assert_true(sum1 == sum2);
    /* another seed, another split */
    assert_int_equal(prepare(small_vocab, fwd, 1, 0.1, 0, 8, NULL, NULL, &s3, &e), 0);
    tok_ids v3 = split_ids(out, "val");
    assert_true(v3.len != v1.len || memcmp(v3.data, v1.data, v1.len * 4) != 0);
    /* no val: val_frac 0 */
    assert_int_equal(prepare(small_vocab, fwd, 1, 0, 0, 7, NULL, NULL, &s3, &e), 0);
    assert_int_equal(s3.split_docs[DATA_VAL], 0);
    tok_ids_free(&v1);
    tok_ids_free(&v2);
    tok_ids_free(&v3);
}

/* Only *.bin files left in dir (and prepare.json or vocab.htok): none after a failure. */
static void assert_nothing_left(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return; /* removed: fine */
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".bin") || strstr(de->d_name, ".json") ||
            strstr(de->d_name, ".htok"))
            fail_msg("left %s/%s behind", dir, de->d_name);
    closedir(d);
}

static void test_prepare_bad_input(void **state) {
    (void)state;
    base_err e = {0};
    data_prepare_stats st;
    char out[512];
    path_of(out, sizeof out, "out");
    /* empty files and an empty directory: no documents, an error, no output directory */
    char p[512];
    path_of(p, sizeof p, "emptydir");
    assert_int_equal(base_mkdir_p(p, &e), 0);
    write_str("e1.txt", "");
    const char *in1[] = {"e1.txt", "emptydir"};
    assert_int_equal(prepare(small_vocab, in1, 2, 0, 0, 1, NULL, NULL, &st, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "no documents"));
    assert_int_equal(st.empty, 1);
    assert_false(exists(out));
    /* a missing input: named, nothing written */
    const char *in2[] = {"e1.txt", "nope.txt"};
    assert_int_equal(prepare(small_vocab, in2, 2, 0, 0, 1, NULL, NULL, &st, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "nope.txt"));
    assert_false(exists(out));
    /* a vocabulary without an end-of-text token */
    tok_vocab *no_eot = train_vocab(TOK_PRETOK_GPT2, 300, 0);
    write_str("doc.txt", "some text");
    const char *in3[] = {"doc.txt"};
    assert_int_equal(prepare(no_eot, in3, 1, 0, 0, 1, NULL, NULL, &st, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "no end-of-text token"));
    tok_free(no_eot);
    /* bad options */
    assert_int_equal(prepare(small_vocab, in3, 1, 1.0, 0, 1, NULL, NULL, &st, &e), BASE_EINVAL);
    assert_int_equal(prepare(small_vocab, in3, 1, 0, 0, 1, "", NULL, &st, &e), BASE_EINVAL);
    /* a failure after shards were committed (a file that cannot be read: /proc/self/mem
     * reads fail at offset 0) removes them, and the directory prepare made */
    char *big = gen_text(200000, 5);
    write_str("big.txt", big);
    free(big);
    char proc[] = "/proc/self/mem", bigp[512];
    path_of(bigp, sizeof bigp, "big.txt");
    const char *const in4[] = {bigp, proc};
    data_prepare_opts o = {
        .vocab = small_vocab, .out_dir = out, .inputs = in4, .n_inputs = 2, .shard_tokens = 5000};
    rm_rf(out);
    assert_int_not_equal(data_prepare(&o, &st, &e), 0);
    assert_non_null(strstr(e.msg, "/proc/self/mem"));
    assert_true(st.split_shards[DATA_TRAIN] > 5); /* there were shards to remove */
    assert_false(exists(out));
    /* ... and, in a directory that existed, leaves it without shards */
    assert_int_equal(base_mkdir_p(out, &e), 0);
    assert_int_not_equal(data_prepare(&o, &st, &e), 0);
    assert_true(exists(out));
    assert_nothing_left(out);
    /* the loader refuses the half-made directory */
    data_loader *l;
    assert_int_equal(data_loader_open(&l, out, DATA_TRAIN, 1, 8, 1, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "no prepare.json"));
}

/* ---- corrupt shards */

static void reseal(uint8_t *p) {
    base_put_le64(p + DATA_SHARD_HEADER - 8,
                  base_fnv1a64(p, DATA_SHARD_HEADER - 8, BASE_FNV64_BASIS));
}

/* The shard image must be refused by the parser and by the loader, with `what` in the message. */
static void expect_bad(const uint8_t *p, size_t n, const char *what) {
    base_err e = {0};
    data_shard_info info;
    if (data_shard_parse(p, n, "s.bin", &info, &e) != BASE_EFORMAT ||
        (what && !strstr(e.msg, what)))
        fail_msg("parse accepted or said '%s', expected '%s'", e.msg, what ? what : "");
    write_file("bad.bin", p, n);
    char path[512];
    path_of(path, sizeof path, "bad.bin");
    const char *files[] = {path};
    data_loader *l = NULL;
    assert_int_equal(data_loader_open_files(&l, files, 1, 1, 4, 1, &e), BASE_EFORMAT);
    assert_null(l);
    assert_int_not_equal(data_shard_read_info(path, &info, &e), 0);
}

static void test_corrupt_shards(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "good.bin");
    data_shard_writer *w;
    base_err e = {0};
    assert_int_equal(data_shard_create(&w, path, 600, 599, "bpe:gpt2:600:0123456789abcdef", &e), 0);
    int32_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = i * 7 % 600;
    assert_int_equal(data_shard_write(w, ids, 50, &e), 0);
    assert_int_equal(data_shard_commit(w, &e), 0);
    char *d;
    size_t n;
    assert_int_equal(base_read_file(path, &d, &n, &e), 0);
    assert_int_equal(n, DATA_SHARD_HEADER + 100);
    uint8_t *good = (uint8_t *)d, *p = malloc(n);
    /* every truncation */
    for (size_t k = 0; k < n; k++)
        expect_bad(good, k,
                   k == 0                  ? "empty"
                   : k < 4                 ? "bad magic"
                   : k < DATA_SHARD_HEADER ? "truncated"
                                           : "truncated or corrupt");
    /* one byte too many */
    memcpy(p, good, n);
    uint8_t *q = malloc(n + 1);
    memcpy(q, good, n);
    q[n] = 0;
    expect_bad(q, n + 1, "truncated or corrupt");
    free(q);
    /* every header byte flipped: the checksum (or the magic) catches it */
    for (size_t k = 0; k < DATA_SHARD_HEADER; k++) {
        memcpy(p, good, n);
        p[k] ^= 0x20;
        expect_bad(p, n, NULL);
    }
    /* resealed headers with bad fields */
    struct {
        size_t off;
        int wide; /* 8-byte field */
        uint64_t val;
        const char *what;
    } cases[] = {
        {4, 0, 2, "version 2"},
        {8, 0, 4, "bytes per token"},      /* 600 tokens need 2 */
        {12, 0, 70000, "bytes per token"}, /* a vocabulary that needs 4 */
        {12, 0, 0, "vocabulary size 0"},
        {12, 0, 0x80000000u, "out of range"},
        {16, 1, 51, "truncated or corrupt"}, /* more tokens than the file holds */
        {16, 1, 49, "truncated or corrupt"},
        {16, 1, UINT64_MAX / 2 + 1, "truncated or corrupt"}, /* n * 2 overflows to 0 */
        {16, 1, UINT64_MAX, "truncated or corrupt"},
        {24, 1, 51, "documents"},
        {32, 0, 600, "end-of-text"},
        {32, 0, 0xFFFFFFFEu, "end-of-text"},
        {36, 0, 0, "identity length"},
        {36, 0, 129, "identity length"},
        {36, 0, 0xFFFFFFFFu, "identity length"},
        {36, 0, 10, "malformed vocabulary identity"},          /* shorter: non-zero padding */
        {40, 0, 0x00206970u, "malformed vocabulary identity"}, /* a space inside */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(p, good, n);
        if (cases[i].wide)
            base_put_le64(p + cases[i].off, cases[i].val);
        else
            base_put_le32(p + cases[i].off, (uint32_t)cases[i].val);
        reseal(p);
        expect_bad(p, n, cases[i].what);
    }
    /* a valid header over an id outside the vocabulary: the loader says so when it reads it */
    memcpy(p, good, n);
    base_put_le32(p + 12, 300); /* vocabulary 300, EOT 299; the ids go up to 595 */
    base_put_le32(p + 32, 299);
    reseal(p);
    write_file("badid.bin", p, n);
    path_of(path, sizeof path, "badid.bin");
    const char *files[] = {path};
    data_loader *l;
    assert_int_equal(data_loader_open_files(&l, files, 1, 2, 4, 1, &e), 0);
    int tok[8], tgt[8], rc = 0;
    for (int i = 0; i < 20 && !rc; i++) rc = data_loader_next(l, tok, tgt, &e);
    assert_int_equal(rc, BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "outside the vocabulary"));
    data_loader_free(l);
    /* shards of different vocabularies do not mix */
    char other[512];
    path_of(other, sizeof other, "other.bin");
    assert_int_equal(data_shard_create(&w, other, 600, 599, "bpe:gpt2:600:ffffffffffffffff", &e),
                     0);
    assert_int_equal(data_shard_write(w, ids, 50, &e), 0);
    assert_int_equal(data_shard_commit(w, &e), 0);
    path_of(path, sizeof path, "good.bin");
    const char *mixed[] = {path, other};
    assert_int_equal(data_loader_open_files(&l, mixed, 2, 1, 4, 1, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "different vocabularies"));
    free(p);
    free(d);
}

/* ---- the loader */

/* Three shards whose token at position i of shard k is k * 10000 + i. */
static void make_shards(char paths[3][512], const uint64_t *sizes) {
    base_err e = {0};
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "ord%d.bin", k);
        path_of(paths[k], 512, name);
        data_shard_writer *w;
        assert_int_equal(data_shard_create(&w, paths[k], 40000, -1, "test:order", &e), 0);
        for (uint64_t i = 0; i < sizes[k]; i++) {
            int32_t id = (int32_t)(k * 10000 + i);
            assert_int_equal(data_shard_write(w, &id, 1, &e), 0);
        }
        assert_int_equal(data_shard_commit(w, &e), 0);
    }
}

static data_loader *open3(char paths[3][512], int B, int T, uint64_t seed) {
    const char *files[] = {paths[0], paths[1], paths[2]};
    data_loader *l;
    base_err e = {0};
    if (data_loader_open_files(&l, files, 3, B, T, seed, &e)) fail_msg("%s", e.msg);
    return l;
}

/* Reads n batches of l into out (n * B * T tokens; targets checked as tokens + 1). */
static void read_batches(data_loader *l, int n, int B, int T, int *out) {
    int *tgt = malloc((size_t)B * T * sizeof(int));
    base_err e = {0};
    for (int i = 0; i < n; i++) {
        int *tok = out + (size_t)i * B * T;
        assert_int_equal(data_loader_next(l, tok, tgt, &e), 0);
        for (int j = 0; j < B * T; j++) assert_int_equal(tgt[j], tok[j] + 1);
    }
    free(tgt);
}

static void test_loader_order(void **state) {
    (void)state;
    char paths[3][512];
    const uint64_t sizes[] = {1001, 257, 3}; /* 3 tokens: no window of T + 1 = 9 */
    make_shards(paths, sizes);
    int T = 8;
    data_loader *l = open3(paths, 1, T, 42);
    uint64_t W = data_loader_windows(l);
    assert_int_equal(W, 1000 / 8 + 256 / 8);
    assert_int_equal(data_loader_shards(l), 2);
    /* two epochs, one window at a time: each window exactly once per epoch, at a multiple of T,
     * whole inside its shard; the second epoch in another order */
    int *a = malloc(2 * W * T * sizeof(int));
    read_batches(l, (int)(2 * W), 1, T, a);
    char *seen = calloc(2 * 10000, 1);
    for (int ep = 0; ep < 2; ep++) {
        memset(seen, 0, 2 * 10000);
        for (uint64_t i = 0; i < W; i++) {
            int *w = a + (ep * W + i) * T;
            int shard = w[0] / 10000, off = w[0] % 10000;
            assert_true(shard == 0 || shard == 1);
            assert_int_equal(off % T, 0);
            assert_true((uint64_t)off + T + 1 <= sizes[shard]);
            for (int t = 1; t < T; t++) assert_int_equal(w[t], w[0] + t);
            assert_int_equal(seen[w[0]], 0);
            seen[w[0]] = 1;
        }
    }
    assert_true(memcmp(a, a + W * T, W * T * sizeof(int)) != 0);
    data_pos pos;
    data_loader_tell(l, &pos);
    assert_int_equal(pos.epoch, 2);
    assert_int_equal(pos.shard, 0);
    assert_int_equal(pos.window, 0);
    data_loader_free(l);
    /* the same seed: the same stream, also in batches of 3 */
    int B = 3, nb = 50;
    l = open3(paths, B, T, 42);
    int *b = malloc((size_t)nb * B * T * sizeof(int));
    read_batches(l, nb, B, T, b);
    assert_memory_equal(a, b, (size_t)nb * B * T * sizeof(int));
    data_loader_free(l);
    /* another seed: another order */
    l = open3(paths, B, T, 43);
    read_batches(l, nb, B, T, b);
    assert_true(memcmp(a, b, (size_t)nb * B * T * sizeof(int)) != 0);
    data_loader_free(l);
    free(a);
    free(b);
    free(seen);
}

static void test_tell_seek(void **state) {
    (void)state;
    char paths[3][512];
    const uint64_t sizes[] = {300, 170, 90};
    make_shards(paths, sizes);
    int B = 4, T = 6;
    base_err e = {0};
    /* K batches, tell, M more; then a fresh loader seeks and reads the same M. K covers
     * positions inside a shard, at shard ends and across the epoch's end. */
    for (int K = 0; K < 40; K += 3) {
        int M = 25;
        data_loader *l = open3(paths, B, T, 9);
        int *skip = malloc((size_t)(K + 1) * B * T * sizeof(int));
        int *first = malloc((size_t)M * B * T * sizeof(int));
        int *second = malloc((size_t)M * B * T * sizeof(int));
        read_batches(l, K, B, T, skip);
        data_pos pos;
        data_loader_tell(l, &pos);
        read_batches(l, M, B, T, first);
        data_loader_free(l);
        l = open3(paths, B, T, 9);
        assert_int_equal(data_loader_seek(l, &pos, &e), 0);
        read_batches(l, M, B, T, second);
        assert_memory_equal(first, second, (size_t)M * B * T * sizeof(int));
        data_loader_free(l);
        free(skip);
        free(first);
        free(second);
    }
    data_loader *l = open3(paths, B, T, 9);
    data_pos bad = {0, 3, 0};
    assert_int_equal(data_loader_seek(l, &bad, &e), BASE_EINVAL);
    bad = (data_pos){5, 0, 1000};
    assert_int_equal(data_loader_seek(l, &bad, &e), BASE_EINVAL);
    data_loader_free(l);
}

static void test_bytes_loader(void **state) {
    (void)state;
    char text[1000];
    for (int i = 0; i < 1000; i++) text[i] = (char)(i * 31 % 251);
    write_file("bytes.txt", text, sizeof text);
    char p[512];
    path_of(p, sizeof p, "bytes.txt");
    data_loader *tr, *va;
    base_err e = {0};
    assert_int_equal(data_loader_open(&tr, p, DATA_TRAIN, 2, 10, 1, &e), 0);
    assert_int_equal(data_loader_open(&va, p, DATA_VAL, 2, 10, 1, &e), 0);
    assert_int_equal(data_loader_vocab_size(tr), 256);
    assert_int_equal(data_loader_eot_id(tr), -1);
    assert_string_equal(data_loader_identity(tr), "bytes");
    assert_int_equal(data_loader_windows(tr), 899 / 10); /* the first 900 bytes */
    assert_int_equal(data_loader_windows(va), 99 / 10);  /* the last 100 */
    uint32_t vs;
    assert_int_equal(data_vocab_size(p, &vs, &e), 0);
    assert_int_equal(vs, 256);
    int tok[20], tgt[20];
    for (int i = 0; i < 20; i++) {
        assert_int_equal(data_loader_next(va, tok, tgt, &e), 0);
        for (int b = 0; b < 2; b++) {
            const int *w = tok + b * 10;
            int s = -1;
            for (int k = 900; k + 10 < 1000; k += 10)
                if ((unsigned char)text[k] == w[0] && (unsigned char)text[k + 1] == w[1]) s = k;
            assert_true(s >= 900);
            for (int t = 0; t < 10; t++)
                assert_int_equal(tgt[b * 10 + t], (unsigned char)text[s + t + 1]);
        }
    }
    data_loader_free(tr);
    data_loader_free(va);
    /* too small for one window in the held-out part */
    assert_int_equal(data_loader_open(&tr, p, DATA_TRAIN, 1, 100, 1, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "too small"));
    write_str("empty.txt", "");
    path_of(p, sizeof p, "empty.txt");
    assert_int_equal(data_loader_open(&tr, p, DATA_TRAIN, 1, 4, 1, &e), BASE_EINVAL);
    assert_int_equal(data_loader_open(&tr, "/nonexistent", DATA_TRAIN, 1, 4, 1, &e), BASE_EIO);
    assert_int_equal(data_vocab_size(root, &vs, &e), BASE_EIO); /* a directory, no prepare.json */
    assert_non_null(strstr(e.msg, "not a regular file"));
}

/* ---- training on prepared shards */

static void record(const train_progress *p, void *user) {
    float *loss = user;
    if (!p->is_eval && p->step <= 10) loss[p->step - 1] = p->loss;
}

static void test_train_on_shards(void **state) {
    (void)state;
    base_err e = {0};
    base_buf b = {0};
    for (int i = 0; i < 3000; i++)
        base_buf_printf(&b, "{\"text\": \"the quick brown fox %d jumps over the lazy dog.\"}\n",
                        i % 500);
    write_file("fox.jsonl", b.data, b.len);
    base_buf_free(&b);
    data_prepare_stats st;
    const char *in[] = {"fox.jsonl"};
    assert_int_equal(prepare(small_vocab, in, 1, 0.05, 0, 1, NULL, NULL, &st, &e), 0);
    assert_int_equal(st.duplicates, 2500);
    char out[512], run[512];
    path_of(out, sizeof out, "out");
    path_of(run, sizeof run, "run");
    uint32_t vs;
    assert_int_equal(data_vocab_size(out, &vs, &e), 0);
    assert_int_equal(vs, 600);
    train_opts o;
    memset(&o, 0, sizeof o);
    o.data = out;
    o.out_dir = run;
    assert_int_equal(nn_config_preset(&o.cfg, "tiny", &e), 0);
    o.cfg.vocab_size = 0; /* the data's */
    train_opts_default(&o);
    o.batch = 4, o.seq = 32, o.steps = 10, o.eval_every = 5, o.eval_batches = 2,
    o.sample_tokens = 20;
    float loss[10], loss2[10];
    train_result res;
    if (train_run(&o, record, loss, &res, &e)) fail_msg("%s", e.msg);
    assert_true(loss[9] < loss[0] - 0.5f);
    assert_non_null(res.sample);
    assert_true(strlen(res.sample) > 0);
    free(res.sample);
    o.out_dir = NULL;
    char run2[512];
    path_of(run2, sizeof run2, "run2");
    o.out_dir = run2;
    assert_int_equal(train_run(&o, record, loss2, NULL, &e), 0);
    assert_memory_equal(loss, loss2, sizeof loss);
    /* a model narrower than the data's vocabulary */
    o.cfg.vocab_size = 599;
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "smaller than the data's"));
    /* a damaged shard: a clear error */
    o.cfg.vocab_size = 0;
    char shard[600];
    snprintf(shard, sizeof shard, "%s/train_000000.bin", out);
    assert_int_equal(truncate(shard, 1000), 0);
    assert_int_equal(train_run(&o, NULL, NULL, NULL, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "truncated"));
}

int test_data(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_cut),        cmocka_unit_test(test_prepare_roundtrip),
        cmocka_unit_test(test_forced_cut),        cmocka_unit_test(test_uint32_shards),
        cmocka_unit_test(test_dedup_and_jsonl),   cmocka_unit_test(test_split),
        cmocka_unit_test(test_prepare_bad_input), cmocka_unit_test(test_corrupt_shards),
        cmocka_unit_test(test_loader_order),      cmocka_unit_test(test_tell_seek),
        cmocka_unit_test(test_bytes_loader),      cmocka_unit_test(test_train_on_shards),
        cmocka_unit_test(test_split_by_position),
    };
    return cmocka_run_group_tests_name("data", tests, setup, teardown);
}
