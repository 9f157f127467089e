/* tests/base/test_base.c: RNG, overflow checks, atomic writes (whole and streaming), FNV-1a,
 * plots. */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_rng(void **state) {
    (void)state;
    base_rng a, b;
    base_rng_seed(&a, 42);
    base_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(base_rng_u64(&a) == base_rng_u64(&b));
    /* moments of the normal generator */
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = base_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    for (int i = 0; i < 1000; i++) {
        float u = base_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(base_rng_below(&a, 7) < 7);
    }
}

static void test_sizes(void **state) {
    (void)state;
    size_t out;
    assert_int_equal(base_mul_size(1u << 20, 1u << 20, &out), 0);
    assert_true(out == (size_t)1 << 40);
    assert_int_equal(base_mul_size(SIZE_MAX / 2, 3, &out), -1);
    assert_int_equal(base_add_size(SIZE_MAX, 1, &out), -1);
    assert_null(base_alloc_floats(SIZE_MAX / 2));
}

static void test_grow(void **state) {
    (void)state;
    /* growth: the first allocation holds BASE_GROW_MIN elements, then capacity doubles, and a
     * need beyond twice the capacity is met exactly; the contents survive every move */
    uint32_t *a = NULL;
    size_t cap = 0;
    assert_int_equal(base_grow(&a, &cap, 0, sizeof *a, SIZE_MAX), BASE_OK);
    assert_null(a); /* nothing needed: nothing allocated */
    assert_int_equal(base_grow(&a, &cap, 1, sizeof *a, SIZE_MAX), BASE_OK);
    assert_non_null(a);
    assert_int_equal(cap, BASE_GROW_MIN);
    for (size_t i = 0; i < cap; i++) a[i] = (uint32_t)i;
    size_t first = cap;
    assert_int_equal(base_grow(&a, &cap, first + 1, sizeof *a, SIZE_MAX), BASE_OK);
    assert_int_equal(cap, 2 * first);
    assert_int_equal(base_grow(&a, &cap, 10 * first, sizeof *a, SIZE_MAX), BASE_OK);
    assert_int_equal(cap, 10 * first);
    for (size_t i = 0; i < first; i++) assert_int_equal(a[i], i);
    uint32_t *same = a;
    assert_int_equal(base_grow(&a, &cap, cap, sizeof *a, SIZE_MAX), BASE_OK);
    assert_ptr_equal(a, same); /* need <= cap: untouched */

    /* max: growth stops at max; a need beyond it fails and leaves the array as it was */
    assert_int_equal(base_grow(&a, &cap, cap + 1, sizeof *a, cap + 5), BASE_OK);
    assert_int_equal(cap, 10 * first + 5);
    size_t before = cap;
    same = a;
    assert_int_equal(base_grow(&a, &cap, cap + 1, sizeof *a, cap), BASE_ENOMEM);
    assert_int_equal(cap, before);
    assert_ptr_equal(a, same);
    assert_int_equal(a[first - 1], first - 1);

    /* overflow: a need whose byte size overflows (or exceeds PTRDIFF_MAX) fails cleanly, and
     * doubling near the limit is capped instead of wrapping */
    assert_int_equal(base_grow(&a, &cap, SIZE_MAX / 2, sizeof *a, SIZE_MAX), BASE_ENOMEM);
    assert_int_equal(base_grow(&a, &cap, SIZE_MAX, 1, SIZE_MAX), BASE_ENOMEM);
    assert_int_equal(cap, before);
    assert_ptr_equal(a, same);
    free(a);
    char *b = NULL;
    size_t bcap = SIZE_MAX / 2 + 1; /* a (pretend) capacity whose double wraps */
    assert_int_equal(base_grow(&b, &bcap, bcap + 1, 1, SIZE_MAX), BASE_ENOMEM);
    assert_null(b);

    /* the first allocation is at least what is needed, and max caps even that */
    char *s = NULL;
    size_t scap = 0;
    assert_int_equal(base_grow(&s, &scap, 1000, 1, SIZE_MAX), BASE_OK);
    assert_int_equal(scap, 1000);
    free(s), s = NULL, scap = 0;
    assert_int_equal(base_grow(&s, &scap, 2, 1, 3), BASE_OK);
    assert_int_equal(scap, 3);
    free(s);
}

static void test_atomic_write(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512], sub[256];
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    base_err e = {0};
    assert_int_equal(base_mkdir_p(sub, &e), 0);
    assert_int_equal(base_mkdir_p(sub, &e), 0); /* idempotent */
    snprintf(path, sizeof path, "%s/f.txt", sub);
    assert_int_equal(base_write_atomic(path, "hello", 5, &e), 0);
    assert_int_equal(base_write_atomic(path, "world!", 6, &e), 0);
    char *data;
    size_t len;
    assert_int_equal(base_read_file(path, &data, &len, &e), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "world!", 6);
    free(data);
    /* a missing file and an unwritable place give errors that name the path */
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(base_read_file(path, &data, &len, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "missing"));
    snprintf(path, sizeof path, "%s/nodir/x", dir);
    assert_int_equal(base_write_atomic(path, "x", 1, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "nodir"));
    /* a file where a directory should be */
    snprintf(path, sizeof path, "%s/a/b/c/f.txt/deeper", dir);
    assert_int_not_equal(base_mkdir_p(path, &e), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The streaming atomic write: nothing at the path until commit; a patched header; abort and a
 * failed write leave nothing behind. */
static void test_afile(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-afile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    base_err e = {0};
    base_afile *f;
    assert_int_equal(base_afile_open(&f, path, &e), 0);
    assert_int_equal(base_afile_write(f, "HEAD", 4, &e), 0);
    assert_int_equal(base_afile_write(f, "body", 4, &e), 0);
    assert_int_not_equal(access(path, F_OK), 0); /* not before commit */
    assert_int_equal(base_afile_pwrite(f, 0, "head", 4, &e), 0);
    assert_int_equal(base_afile_commit(f, &e), 0);
    char *data;
    size_t len;
    assert_int_equal(base_read_file(path, &data, &len, &e), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "headbody", 8);
    free(data);
    /* abort: the old file stays, no temporary is left */
    assert_int_equal(base_afile_open(&f, path, &e), 0);
    assert_int_equal(base_afile_write(f, "new", 3, &e), 0);
    base_afile_abort(f);
    base_afile_abort(NULL);
    assert_int_equal(base_read_file(path, &data, &len, &e), 0);
    assert_int_equal(len, 8);
    free(data);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    /* a place that cannot be created */
    snprintf(path, sizeof path, "%s/nodir/f.bin", dir);
    assert_int_equal(base_afile_open(&f, path, &e), BASE_EIO);
    assert_non_null(strstr(e.msg, "nodir"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    /* FNV-1a 64 of "a" (the published test vector) */
    assert_true(base_fnv1a64("a", 1, BASE_FNV64_BASIS) == 0xaf63dc4c8601ec8cull);
}

/* Writes the same bytes (odd sizes, across many buffers, with and without a closing patch)
 * through a direct afile under dir and compares them with what is read back. */
static void direct_roundtrip(const char *dir) {
    base_err e = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/d.bin", dir);
    size_t sizes[] = {0, 1, 4095, 4096, 4097, (8u << 20) - 1, (8u << 20) + 4096 + 3, 19u << 20};
    base_rng r;
    base_rng_seed(&r, 3);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (int patch = 0; patch < 2; patch++) {
            size_t n = sizes[si];
            unsigned char *src = malloc(n + 1);
            assert_non_null(src);
            for (size_t i = 0; i < n; i++) src[i] = (unsigned char)base_rng_below(&r, 256);
            base_afile *f;
            assert_int_equal(base_afile_open_direct(&f, path, &e), 0);
            /* uneven pieces, so buffer boundaries fall inside writes */
            for (size_t off = 0, k; off < n; off += k) {
                k = 1 + (size_t)base_rng_below(&r, 3u << 20);
                if (k > n - off) k = n - off;
                assert_int_equal(base_afile_write(f, src + off, k, &e), 0);
            }
            if (patch && n >= 3) { /* a header finalized at the end, after direct writes */
                memcpy(src, "HDR", 3);
                assert_int_equal(base_afile_pwrite(f, 0, "HDR", 3, &e), 0);
                assert_int_equal(base_afile_write(f, "END", 3, &e), 0);
            }
            assert_int_equal(base_afile_commit(f, &e), 0);
            char *data;
            size_t len;
            assert_int_equal(base_read_file(path, &data, &len, &e), 0);
            size_t want = n + (patch && n >= 3 ? 3 : 0);
            assert_int_equal(len, want);
            assert_memory_equal(data, src, n);
            if (want > n) assert_memory_equal(data + n, "END", 3);
            free(data);
            free(src);
        }
    }
}

/* base_afile_open_direct: O_DIRECT on a disk filesystem, the plain fallback on tmpfs (which
 * refuses O_DIRECT); the same bytes either way, and the same atomic contract. */
static void test_afile_direct(void **state) {
    (void)state;
    const char *roots[] = {"/tmp", "/dev/shm"};
    for (int i = 0; i < 2; i++) {
        char dir[64];
        snprintf(dir, sizeof dir, "%s/hearth-direct-XXXXXX", roots[i]);
        if (!mkdtemp(dir)) continue; /* no /dev/shm here: the disk case still ran */
        direct_roundtrip(dir);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1 && rm -rf %s", dir, dir);
        assert_int_equal(system(cmd), 0); /* only d.bin: no temporary left behind */
    }
}

/* base_utf8_len: every length, and the invalid forms RFC 3629 names. */
static void test_utf8(void **state) {
    (void)state;
    const struct {
        const char *s;
        size_t n, want;
    } cases[] = {
        {"a", 1, 1},
        {"\xC3\xA9", 2, 2},
        {"\xE2\x82\xAC", 3, 3},
        {"\xF0\x9F\x98\x80", 4, 4},
        {"\xF4\x8F\xBF\xBF", 4, 4},
        {"\xC3\xA9", 1, 0}, /* cut */
        {"\xC0\xAF", 2, 0},
        {"\xE0\x80\xAF", 3, 0},
        {"\xF0\x80\x80\xAF", 4, 0}, /* overlong */
        {"\xED\xA0\x80", 3, 0},
        {"\xF4\x90\x80\x80", 4, 0},
        {"\xF5\x80\x80\x80", 4, 0},
        {"\x80", 1, 0},
        {"\xC3\x28", 2, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (base_utf8_len((const unsigned char *)cases[i].s, cases[i].n) != cases[i].want)
            fail_msg("case %zu: base_utf8_len gave %zu, want %zu", i,
                     base_utf8_len((const unsigned char *)cases[i].s, cases[i].n), cases[i].want);
}

static void test_plot(void **state) {
    (void)state;
    char path[] = "/tmp/hearth-plot-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    double x[50], y[50], vy[3] = {5, 4, 3.5}, vx[3] = {0, 24, 49};
    for (int i = 0; i < 50; i++) x[i] = i, y[i] = 5.0 * exp(-i / 20.0);
    y[7] = NAN; /* skipped, not drawn */
    base_series s[2] = {{"train", x, y, 50}, {"val", vx, vy, 3}};
    base_err e = {0};
    assert_int_equal(base_plot_svg(path, "loss", "step", "loss", s, 2, &e), 0);
    char *data;
    size_t len;
    assert_int_equal(base_read_file(path, &data, &len, &e), 0);
    assert_non_null(strstr(data, "<svg"));
    assert_non_null(strstr(data, "</svg>"));
    assert_non_null(strstr(data, "val"));
    assert_null(strstr(data, "nan"));
    free(data);
    unlink(path);
}

int test_base(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng),   cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_grow),  cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_afile), cmocka_unit_test(test_afile_direct),
        cmocka_unit_test(test_utf8),  cmocka_unit_test(test_plot),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
