/* tests/fuzz/replay.c: a main for the fuzz targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named (or each file of each directory named). It
 * is how `make test` replays the seed corpora and the committed reproducers with gcc (and under
 * `make san` with the sanitizers), so every finding stays fixed without needing clang. */
#include "fuzz.h"

#include "base/base.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    char *buf;
    size_t n;
    base_err e;
    if (base_read_file(path, &buf, &n, &e)) {
        fprintf(stderr, "replay: %s\n", e.msg);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, n);
    free(buf);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    int bad = 0, runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: no such file %s\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad += run_file(argv[i]);
            runs++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            if (base_grow(&names, &cap, n + 1, sizeof *names, SIZE_MAX)) break;
            size_t len = strlen(argv[i]) + strlen(de->d_name) + 2;
            if (!(names[n] = malloc(len))) break;
            snprintf(names[n++], len, "%s/%s", argv[i], de->d_name);
        }
        if (d) closedir(d);
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t k = 0; k < n; k++) {
            bad += run_file(names[k]);
            runs++;
            free(names[k]);
        }
        free(names);
    }
    printf("replay %s: %d inputs\n", argv[0], runs);
    return bad ? 1 : 0;
}
