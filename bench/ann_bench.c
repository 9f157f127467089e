/* bench/ann_bench: hearth's HNSW on fashion-mnist-784 (Debian's dataset-fashion-mnist: pixel
 * bytes as floats, the first N training images as the base, the first NQ test images as
 * queries, l2). Builds with one thread (M and ef_construction as given), then for each ef runs
 * every query (best of --reps passes) and prints recall@10 against the exact ground truth and
 * queries per second of CPU time (qps; the wall-clock figure as qps_wall). Build time likewise
 * (build_s CPU, build_wall_s). The ground truth is computed here once with hnsw_exact_search and
 * cached (CACHE/fmnist-gt-N-NQ.bin: ids of the 10 nearest, int32, NQ x 10, after a 32-byte header)
 * for bench/peers/ann_peers.py, which runs hnswlib and FAISS on the same data.
 * One JSON object per line: {"lib":"hearth","build_s":...} then one per ef.
 *
 *   ann_bench [--n N] [--nq NQ] [--m M] [--efc EFC] [--efs 10,20,...] [--reps R]
 *             [--isa 0|1|2] [--save FILE] [--data DIR] [--cache DIR] [--gt-only]
 * --save writes the built index to FILE, loads it back (both timed; wall clock, fsync
 * included), checks the first 1000 queries' answers are identical, and measures the loaded one.
 * --isa caps the distance kernels (0 portable, 1 AVX2, 2 AVX-512), to see what the wider
 * kernels are worth against a peer built without them. */
#include "vstore/hnsw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define K 10

/* Seconds of CPU this process has used: on a machine shared with other work, what a single
 * thread spends is steadier than the wall clock (which also counts time others ran). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Reads an idx3-ubyte.gz image file: the first `want` images (0: all) as floats (n x rows*cols). */
static float *read_idx(const char *path, size_t want, size_t *n_out, size_t *dim_out) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ann_bench: cannot open %s (apt-get install dataset-fashion-mnist)\n",
                path);
        return NULL;
    }
    uint8_t h[16];
    if (gzread(f, h, 16) != 16 || h[0] || h[1] || h[2] != 8 || h[3] != 3) {
        fprintf(stderr, "ann_bench: %s is not an idx3-ubyte file\n", path);
        gzclose(f);
        return NULL;
    }
    size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
    size_t rows = (size_t)h[8] << 24 | (size_t)h[9] << 16 | (size_t)h[10] << 8 | h[11];
    size_t cols = (size_t)h[12] << 24 | (size_t)h[13] << 16 | (size_t)h[14] << 8 | h[15];
    size_t dim = rows * cols;
    if (want && want < n) n = want;
    if (!dim || dim > 1u << 20 || n > 1u << 24) {
        fprintf(stderr, "ann_bench: %s: implausible shape %zu x %zu\n", path, n, dim);
        gzclose(f);
        return NULL;
    }
    uint8_t *raw = malloc(n * dim);
    float *x = base_alloc_floats(n * dim);
    if (!raw || !x || gzread(f, raw, (unsigned)(n * dim)) != (int)(n * dim)) {
        fprintf(stderr, "ann_bench: %s: short read or out of memory\n", path);
        free(raw), free(x), gzclose(f);
        return NULL;
    }
    gzclose(f);
    for (size_t i = 0; i < n * dim; i++) x[i] = raw[i];
    free(raw);
    *n_out = n, *dim_out = dim;
    return x;
}

/* The ground truth, from the cache when it matches (same sizes and data checksum). */
static int32_t *ground_truth(const char *cache, const float *xb, size_t n, const float *xq,
                             size_t nq, size_t dim) {
    uint64_t sum = base_fnv1a64(xb, n * dim * sizeof *xb, BASE_FNV64_BASIS);
    sum = base_fnv1a64(xq, nq * dim * sizeof *xq, sum);
    char path[4200];
    snprintf(path, sizeof path, "%s/fmnist-gt-%zu-%zu.bin", cache, n, nq);
    int32_t *gt = malloc(nq * K * sizeof *gt);
    if (!gt) return NULL;
    size_t bytes = 32 + nq * K * sizeof *gt;
    char *data;
    size_t len;
    base_err e = {0};
    if (base_read_file(path, &data, &len, &e) == 0) {
        if (len == bytes && !memcmp(data, "ANNGT001", 8) &&
            base_get_le64((uint8_t *)data + 8) == n && base_get_le64((uint8_t *)data + 16) == nq &&
            base_get_le64((uint8_t *)data + 24) == sum) {
            for (size_t i = 0; i < nq * K; i++)
                gt[i] = (int32_t)base_get_le32((uint8_t *)data + 32 + 4 * i);
            free(data);
            fprintf(stderr, "ann_bench: ground truth from %s\n", path);
            return gt;
        }
        free(data);
    }
    fprintf(stderr, "ann_bench: computing the exact ground truth (%zu x %zu)...\n", nq, n);
    double t0 = base_now();
    uint64_t *ids = malloc(n * sizeof *ids);
    if (!ids) return free(gt), NULL;
    for (size_t i = 0; i < n; i++) ids[i] = i;
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t q = 0; q < nq; q++) {
        uint64_t out[K];
        float d[K];
        hnsw_exact_search(VDIST_L2, xb, ids, n, dim, xq + q * dim, K, NULL, NULL, out, d);
        for (int j = 0; j < K; j++) gt[q * K + (size_t)j] = (int32_t)out[j];
    }
    free(ids);
    fprintf(stderr, "ann_bench: ground truth in %.1f s\n", base_now() - t0);
    uint8_t *buf = malloc(bytes);
    if (buf) {
        memcpy(buf, "ANNGT001", 8);
        base_put_le64(buf + 8, n), base_put_le64(buf + 16, nq), base_put_le64(buf + 24, sum);
        for (size_t i = 0; i < nq * K; i++) base_put_le32(buf + 32 + 4 * i, (uint32_t)gt[i]);
        if (base_mkdir_p(cache, &e) || base_write_atomic(path, buf, bytes, &e))
            fprintf(stderr, "ann_bench: cannot cache the ground truth: %s\n", e.msg);
        free(buf);
    }
    return gt;
}

/* Saves the index to path, loads it back (timing both), checks the loaded index answers the
 * first queries exactly as the built one did, and continues with the loaded one. */
static int save_load(hnsw **h, const char *path, const float *xq, size_t nq, size_t dim) {
    base_err e = {0};
    double t0 = base_now();
    if (hnsw_save(*h, path, 1, &e)) {
        fprintf(stderr, "ann_bench: %s\n", e.msg);
        return -1;
    }
    double t1 = base_now();
    hnsw *g;
    uint64_t seq;
    if (hnsw_load(&g, path, dim, VDIST_L2, &seq, &e)) {
        fprintf(stderr, "ann_bench: %s\n", e.msg);
        return -1;
    }
    double t2 = base_now();
    size_t same = 0, check = nq < 1000 ? nq : 1000;
    for (size_t q = 0; q < check; q++) {
        uint64_t a[K], b[K];
        float da[K], db[K];
        size_t na = hnsw_search(*h, xq + q * dim, K, 40, NULL, NULL, a, da);
        size_t nb = hnsw_search(g, xq + q * dim, K, 40, NULL, NULL, b, db);
        same += na == nb && !memcmp(a, b, na * sizeof *a) && !memcmp(da, db, na * sizeof *da);
    }
    printf("{\"lib\":\"hearth\",\"save_s\":%.3f,\"load_s\":%.3f,\"identical\":\"%zu/%zu\"}\n",
           t1 - t0, t2 - t1, same, check);
    fflush(stdout);
    hnsw_free(*h);
    *h = g;
    return same == check ? 0 : -1;
}

int main(int argc, char **argv) {
    size_t n = 60000, nq = 10000;
    int M = 16, efc = 200, reps = 2, gt_only = 0;
    const char *efs = "10,20,40,80,120,160", *dir = "/usr/share/datasets/fashion-mnist";
    const char *save = NULL;
    const char *home = getenv("HOME");
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/.cache/hearth-bench", home ? home : "/tmp");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gt-only")) {
            gt_only = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ann_bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--n"))
            n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--nq"))
            nq = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--m"))
            M = atoi(v);
        else if (!strcmp(a, "--efc"))
            efc = atoi(v);
        else if (!strcmp(a, "--efs"))
            efs = v;
        else if (!strcmp(a, "--save"))
            save = v;
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--isa"))
            vdist_force_isa(atoi(v));
        else if (!strcmp(a, "--data"))
            dir = v;
        else if (!strcmp(a, "--cache"))
            snprintf(cache, sizeof cache, "%s", v);
        else {
            fprintf(stderr, "ann_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (!n || !nq || reps < 1) {
        fprintf(stderr, "ann_bench: --n, --nq and --reps must be positive\n");
        return 2;
    }
    char p[4096];
    size_t dim, dq;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    float *xb = read_idx(p, n, &n, &dim);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    float *xq = xb ? read_idx(p, nq, &nq, &dq) : NULL;
    if (!xb || !xq || dq != dim) return 1;
    int32_t *gt = ground_truth(cache, xb, n, xq, nq, dim);
    if (!gt) return 1;
    if (gt_only) {
        printf("{\"gt\":\"%s/fmnist-gt-%zu-%zu.bin\"}\n", cache, n, nq);
        return 0;
    }

    hnsw *h;
    base_err e = {0};
    hnsw_params prm = {M, efc, 10, 42};
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = i;
    if (hnsw_create(&h, dim, VDIST_L2, &prm, &e)) {
        fprintf(stderr, "ann_bench: %s\n", e.msg);
        return 1;
    }
    double t0 = base_now(), c0 = cpu_now();
    if (hnsw_add_batch(h, ids, xb, n, 1, &e)) {
        fprintf(stderr, "ann_bench: %s\n", e.msg);
        return 1;
    }
    double build_cpu = cpu_now() - c0, build_wall = base_now() - t0;
    printf("{\"lib\":\"hearth\",\"n\":%zu,\"nq\":%zu,\"dim\":%zu,\"M\":%d,\"efc\":%d,"
           "\"build_s\":%.3f,\"build_wall_s\":%.3f,\"isa\":\"%s\"}\n",
           n, nq, dim, M, efc, build_cpu, build_wall, vdist_isa());
    fflush(stdout);

    uint64_t *res = malloc(nq * K * sizeof *res);
    if (save && save_load(&h, save, xq, nq, dim)) return 1;
    for (const char *s = efs; *s;) {
        int ef = atoi(s);
        double best = 1e30, best_wall = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = cpu_now(), w = base_now();
            for (size_t q = 0; q < nq; q++)
                if (hnsw_search(h, xq + q * dim, K, ef, NULL, NULL, res + q * K, NULL) != K) {
                    fprintf(stderr, "ann_bench: query %zu found fewer than %d\n", q, K);
                    return 1;
                }
            t = cpu_now() - t, w = base_now() - w;
            if (t < best) best = t;
            if (w < best_wall) best_wall = w;
        }
        size_t hits = 0;
        for (size_t q = 0; q < nq; q++)
            for (int a = 0; a < K; a++)
                for (int b = 0; b < K; b++)
                    hits += res[q * K + (size_t)a] == (uint64_t)gt[q * K + (size_t)b];
        printf("{\"lib\":\"hearth\",\"ef\":%d,\"recall\":%.5f,\"qps\":%.1f,\"qps_wall\":%.1f}\n",
               ef, (double)hits / (double)(nq * K), (double)nq / best, (double)nq / best_wall);
        fflush(stdout);
        s = strchr(s, ',');
        if (!s) break;
        s++;
    }
    free(res), free(ids), free(gt), free(xb), free(xq);
    hnsw_free(h);
    return 0;
}
