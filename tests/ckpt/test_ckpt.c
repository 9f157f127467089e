/* tests/ckpt/test_ckpt.c: the GGUF reader — every value type, tensor infos, and bad input:
 * every truncation, random corruption, and hand-made lies about counts and sizes. */
#include "test.h"

#include "../ckpt/gguf_write.h"
#include "gguf/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A file with one key of every type, two string arrays, numeric arrays and two tensors. */
static void build_full(gw *w, uint32_t version) {
    gw_begin(w, version);
    gw_key(w, "t.u8", GGUF_TYPE_UINT8);
    gw_u8(w, 200);
    gw_key(w, "t.i8", GGUF_TYPE_INT8);
    gw_u8(w, (uint8_t)-5);
    gw_key(w, "t.u16", GGUF_TYPE_UINT16);
    gw_u8(w, 0x34);
    gw_u8(w, 0x12);
    gw_key(w, "t.i16", GGUF_TYPE_INT16);
    gw_u8(w, 0xfe);
    gw_u8(w, 0xff);
    gw_kv_u32(w, "t.u32", 4000000000u);
    gw_kv_i32(w, "t.i32", -123456);
    gw_kv_f32(w, "t.f32", 0.25f);
    gw_kv_bool(w, "t.bool", 1);
    gw_kv_str(w, "t.str", "hello, gguf");
    gw_key(w, "t.u64", GGUF_TYPE_UINT64);
    gw_u64(w, 1ull << 40);
    gw_key(w, "t.i64", GGUF_TYPE_INT64);
    gw_u64(w, (uint64_t)-7);
    gw_key(w, "t.f64", GGUF_TYPE_FLOAT64);
    double d = -1.5;
    uint64_t du;
    memcpy(&du, &d, 8);
    gw_u64(w, du);
    const char *strs[] = {"a", "", "three", "\xE2\x96\x81x"};
    gw_kv_arr_str(w, "t.arr.str", strs, NULL, 4);
    gw_kv_arr_str(w, "t.arr.empty", strs, NULL, 0);
    float f[3] = {1, -2, 3.5f};
    gw_kv_arr_f32(w, "t.arr.f32", f, 3);
    int32_t ii[4] = {-1, 0, 1, 2147483647};
    gw_kv_arr_i32(w, "t.arr.i32", ii, 4);
    gw_key(w, "t.arr.u8", GGUF_TYPE_ARRAY);
    gw_u32(w, GGUF_TYPE_UINT8);
    gw_u64(w, 3);
    gw_bytes(w, "\x01\x02\xff", 3);
    gw_kv_u32(w, "general.alignment", 64);
    uint64_t d1[2] = {4, 3}, d2[1] = {10};
    gw_tensor(w, "tok_embd.weight", 2, d1, 0, 0);
    gw_tensor(w, "norm.weight", 1, d2, 0, 64);
    while (w->len % 64) gw_u8(w, 0);
    for (int i = 0; i < 128; i++) gw_u8(w, (uint8_t)i);
    gw_finish(w);
}

static void test_gguf_values(void **state) {
    (void)state;
    for (uint32_t version = 2; version <= 3; version++) {
        gw w;
        build_full(&w, version);
        gguf_file *g;
        base_err e = {0};
        assert_int_equal(gguf_parse(w.p, w.len, &g, &e), 0);
        assert_int_equal(gguf_version(g), version);
        assert_int_equal(gguf_n_kv(g), 18);
        int64_t x;
        double f;
        int b;
        gguf_str s;
        assert_int_equal(gguf_get_int(g, "t.u8", &x, &e), 0);
        assert_true(x == 200);
        assert_int_equal(gguf_get_int(g, "t.i8", &x, &e), 0);
        assert_true(x == -5);
        assert_int_equal(gguf_get_int(g, "t.u16", &x, &e), 0);
        assert_true(x == 0x1234);
        assert_int_equal(gguf_get_int(g, "t.i16", &x, &e), 0);
        assert_true(x == -2);
        assert_int_equal(gguf_get_int(g, "t.u32", &x, &e), 0);
        assert_true(x == 4000000000ll);
        assert_int_equal(gguf_get_int(g, "t.i32", &x, &e), 0);
        assert_true(x == -123456);
        assert_int_equal(gguf_get_int(g, "t.u64", &x, &e), 0);
        assert_true(x == 1ll << 40);
        assert_int_equal(gguf_get_int(g, "t.i64", &x, &e), 0);
        assert_true(x == -7);
        assert_int_equal(gguf_get_float(g, "t.f32", &f, &e), 0);
        assert_true(f == 0.25);
        assert_int_equal(gguf_get_float(g, "t.f64", &f, &e), 0);
        assert_true(f == -1.5);
        assert_int_equal(gguf_get_bool(g, "t.bool", &b, &e), 0);
        assert_int_equal(b, 1);
        assert_int_equal(gguf_get_str(g, "t.str", &s, &e), 0);
        assert_true(s.len == 11 && !memcmp(s.ptr, "hello, gguf", 11));
        /* wrong type and missing key name the key */
        assert_int_equal(gguf_get_str(g, "t.u8", &s, &e), BASE_EFORMAT);
        assert_non_null(strstr(e.msg, "t.u8"));
        assert_int_equal(gguf_get_int(g, "nope", &x, &e), BASE_EFORMAT);
        assert_non_null(strstr(e.msg, "nope"));
        assert_true(gguf_find(g, "nope") < 0);
        assert_int_equal(gguf_get_int(g, "t.f32", &x, &e), BASE_EFORMAT);
        /* arrays */
        int64_t idx;
        uint32_t et;
        uint64_t n;
        assert_int_equal(gguf_get_arr(g, "t.arr.str", GGUF_TYPE_STRING, &idx, &et, &n, &e), 0);
        assert_true(n == 4 && et == GGUF_TYPE_STRING);
        const char *want[] = {"a", "", "three", "\xE2\x96\x81x"};
        for (uint64_t i = 0; i < n; i++) {
            gguf_str a = gguf_arr_str(g, idx, i);
            assert_true(a.len == strlen(want[i]) && !memcmp(a.ptr, want[i], a.len));
        }
        assert_int_equal(gguf_get_arr(g, "t.arr.empty", GGUF_TYPE_STRING, &idx, &et, &n, &e), 0);
        assert_true(n == 0);
        assert_int_equal(gguf_get_arr(g, "t.arr.f32", GGUF_TYPE_STRING, &idx, &et, &n, &e),
                         BASE_EFORMAT);
        assert_int_equal(gguf_get_arr(g, "t.arr.f32", -1, &idx, &et, &n, &e), 0);
        assert_true(n == 3 && gguf_arr_float(g, idx, 2) == 3.5);
        assert_int_equal(gguf_get_arr(g, "t.arr.i32", GGUF_TYPE_INT32, &idx, &et, &n, &e), 0);
        assert_true(gguf_arr_int(g, idx, 0) == -1 && gguf_arr_int(g, idx, 3) == 2147483647);
        assert_int_equal(gguf_get_arr(g, "t.arr.u8", GGUF_TYPE_UINT8, &idx, &et, &n, &e), 0);
        assert_true(gguf_arr_int(g, idx, 2) == 255);
        /* tensors */
        assert_int_equal(gguf_alignment(g), 64);
        assert_int_equal(gguf_n_tensors(g), 2);
        const gguf_tensor *t = gguf_tensor_at(g, 0);
        assert_true(t->name.len == 15 && !memcmp(t->name.ptr, "tok_embd.weight", 15));
        assert_true(t->n_dims == 2 && t->dims[0] == 4 && t->dims[1] == 3 && t->dims[2] == 1);
        assert_true(gguf_tensor_at(g, 1)->offset == 64);
        assert_true(gguf_data_offset(g) % 64 == 0 && gguf_data_offset(g) + 128 == w.len);
        assert_true(gguf_data(g)[gguf_data_offset(g) + 5] == 5);
        gguf_close(g);
        gw_free(&w);
    }
}

/* gguf_parse must reject (never crash on) every proper prefix, and survive random damage. */
static void test_gguf_truncated_and_fuzzed(void **state) {
    (void)state;
    gw w;
    build_full(&w, 3);
    base_err e = {0};
    gguf_file *g;
    /* the header and metadata end before the padding; every cut inside them must fail */
    size_t meta_end = w.len - 128;
    while (meta_end % 64) meta_end--;
    for (size_t n = 0; n < meta_end; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, w.p, n);
        int rc = gguf_parse(copy, n, &g, &e);
        if (rc == 0) gguf_close(g);
        assert_int_equal(rc, BASE_EFORMAT);
        free(copy);
    }
    base_rng r;
    base_rng_seed(&r, 7);
    int ok = 0, bad = 0;
    uint8_t *copy = malloc(w.len);
    for (int it = 0; it < 3000; it++) {
        memcpy(copy, w.p, w.len);
        int flips = 1 + (int)base_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)base_rng_below(&r, meta_end);
            copy[at] = it % 3 == 0 ? 0xff : (uint8_t)base_rng_u64(&r);
        }
        if (gguf_parse(copy, w.len, &g, &e) == 0) {
            /* whatever parsed must be readable end to end */
            for (size_t i = 0; i < gguf_n_kv(g); i++) (void)gguf_kv_key(g, (int64_t)i);
            int64_t idx;
            uint64_t n;
            if (gguf_get_arr(g, "t.arr.str", GGUF_TYPE_STRING, &idx, NULL, &n, &e) == 0)
                for (uint64_t i = 0; i < n; i++) (void)gguf_arr_str(g, idx, i);
            gguf_close(g);
            ok++;
        } else {
            bad++;
        }
    }
    assert_true(bad > 1000);
    free(copy);
    gw_free(&w);
    (void)ok;
}

/* Parses w's image and expects BASE_EFORMAT with msg containing what. */
static void expect_bad(gw *w, const char *what) {
    gw_finish(w);
    gguf_file *g;
    base_err e = {0};
    int rc = gguf_parse(w->p, w->len, &g, &e);
    if (rc == 0) gguf_close(g);
    if (rc != BASE_EFORMAT || !strstr(e.msg, what))
        fail_msg("expected an error containing '%s', got %d '%s'", what, rc, e.msg);
    gw_free(w);
}

static void test_gguf_lies(void **state) {
    (void)state;
    gw w;
    gw_begin(&w, 1);
    expect_bad(&w, "version 1");
    gw_begin(&w, 0x03000000u);
    expect_bad(&w, "big-endian");
    gw_begin(&w, 3);
    w.p[0] = 'X';
    expect_bad(&w, "bad magic");
    /* a key count the file cannot hold */
    gw_begin(&w, 3);
    gw_kv_u32(&w, "a", 1);
    w.n_kv = 1ull << 60;
    expect_bad(&w, "cannot fit");
    /* a string longer than the file */
    gw_begin(&w, 3);
    gw_key(&w, "s", GGUF_TYPE_STRING);
    gw_u64(&w, 1ull << 62);
    gw_bytes(&w, "abc", 3);
    expect_bad(&w, "beyond the file");
    /* an array whose byte size overflows */
    gw_begin(&w, 3);
    gw_key(&w, "arr", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_UINT64);
    gw_u64(&w, UINT64_MAX / 4);
    expect_bad(&w, "claims");
    /* a string array with more elements than bytes */
    gw_begin(&w, 3);
    gw_key(&w, "arr", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_STRING);
    gw_u64(&w, 1000000);
    gw_u64(&w, 0);
    expect_bad(&w, "claims");
    /* unknown types, nested arrays, bad bools */
    gw_begin(&w, 3);
    gw_key(&w, "x", 99);
    expect_bad(&w, "unknown value type");
    gw_begin(&w, 3);
    gw_key(&w, "x", GGUF_TYPE_ARRAY);
    gw_u32(&w, GGUF_TYPE_ARRAY);
    gw_u64(&w, 0);
    expect_bad(&w, "nested");
    gw_begin(&w, 3);
    gw_key(&w, "b", GGUF_TYPE_BOOL);
    gw_u8(&w, 2);
    expect_bad(&w, "bool");
    /* repeated keys */
    gw_begin(&w, 3);
    gw_kv_u32(&w, "dup", 1);
    gw_kv_u32(&w, "other", 1);
    gw_kv_u32(&w, "dup", 2);
    expect_bad(&w, "twice");
    /* alignment not a power of two */
    gw_begin(&w, 3);
    gw_kv_u32(&w, "general.alignment", 48);
    expect_bad(&w, "power of two");
    /* tensors: too many dims, a zero dim, misaligned, beyond the end, count lies */
    uint64_t dims[5] = {2, 2, 2, 2, 2};
    gw_begin(&w, 3);
    gw_tensor(&w, "t", 5, dims, 0, 0);
    expect_bad(&w, "dimensions");
    gw_begin(&w, 3);
    uint64_t zero[1] = {0};
    gw_tensor(&w, "t", 1, zero, 0, 0);
    expect_bad(&w, "bad shape");
    gw_begin(&w, 3);
    uint64_t huge[2] = {1ull << 40, 1ull << 40};
    gw_tensor(&w, "t", 2, huge, 0, 0);
    expect_bad(&w, "bad shape");
    gw_begin(&w, 3);
    gw_tensor(&w, "t", 1, dims, 0, 3);
    expect_bad(&w, "not aligned");
    gw_begin(&w, 3);
    gw_tensor(&w, "t", 1, dims, 0, 1ull << 40);
    expect_bad(&w, "beyond the file");
    gw_begin(&w, 3);
    gw_tensor(&w, "t", 1, dims, 0, 0);
    w.n_tensors = 1ull << 50;
    expect_bad(&w, "cannot fit");
}

static void test_gguf_open(void **state) {
    (void)state;
    char path[] = "/tmp/hearth-gguf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    gw w;
    build_full(&w, 3);
    assert_int_equal(gw_save(&w, path), 0);
    gguf_file *g;
    base_err e = {0};
    assert_int_equal(gguf_open(path, &g, &e), 0);
    assert_int_equal(gguf_n_kv(g), 18);
    gguf_close(g);
    /* a short file and a missing one give messages naming the path */
    FILE *f = fopen(path, "wb");
    fwrite("GGUF\3\0\0\0", 1, 8, f);
    fclose(f);
    assert_int_equal(gguf_open(path, &g, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, path));
    unlink(path);
    assert_int_equal(gguf_open(path, &g, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, path));
    gw_free(&w);
}

int test_ckpt(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_values),
        cmocka_unit_test(test_gguf_truncated_and_fuzzed),
        cmocka_unit_test(test_gguf_lies),
        cmocka_unit_test(test_gguf_open),
    };
    return cmocka_run_group_tests_name("ckpt", tests, NULL, NULL);
}
