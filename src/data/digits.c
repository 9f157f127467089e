/* data/digits.c: reader for scikit-learn's digits.csv.gz (read through zlib). */
#include "data.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int data_load_digits(const char *path, float **xo, int **yo, int *no, base_err *e) {
    *xo = NULL, *yo = NULL, *no = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return base_fail(e, BASE_EIO, "cannot open %s", path);
    int cap = 2048, n = 0, rc = BASE_OK;
    float *x = malloc((size_t)cap * 64 * sizeof(float));
    int *y = malloc((size_t)cap * sizeof(int));
    char line[1024];
    int lineno = 0;
    while (rc == BASE_OK && x && y && gzgets(f, line, sizeof line)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] != '\n' && !gzeof(f)) {
            rc = base_fail(e, BASE_EFORMAT, "%s:%d: line too long", path, lineno);
            break;
        }
        if (len <= 1) continue; /* blank line */
        if (n == cap) {
            rc = base_fail(e, BASE_EFORMAT, "%s: more than %d rows", path, cap);
            break;
        }
        char *p = line;
        for (int k = 0; k < 65; k++) {
            char *end;
            long v = strtol(p, &end, 10);
            int last = k == 64;
            if (end == p || v < 0 || v > (last ? 9 : 16) || (!last && *end != ',') ||
                (last && *end != '\n' && *end != '\r' && *end != 0)) {
                rc = base_fail(e, BASE_EFORMAT, "%s:%d: field %d is not %s", path, lineno, k + 1,
                               last ? "a label 0..9" : "a pixel value 0..16 followed by a comma");
                break;
            }
            if (last)
                y[n] = (int)v;
            else
                x[(size_t)n * 64 + k] = (float)v / 16.0f;
            p = end + 1;
        }
        if (rc == BASE_OK) n++;
    }
    if (rc == BASE_OK && (!x || !y)) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    int zerr;
    if (rc == BASE_OK && (gzerror(f, &zerr), zerr != Z_OK && zerr != Z_STREAM_END))
        rc = base_fail(e, BASE_EFORMAT, "%s: corrupt gzip data", path);
    if (rc == BASE_OK && n == 0) rc = base_fail(e, BASE_EFORMAT, "%s holds no rows", path);
    gzclose(f);
    if (rc) {
        free(x);
        free(y);
        return rc;
    }
    *xo = x, *yo = y, *no = n;
    return BASE_OK;
}
