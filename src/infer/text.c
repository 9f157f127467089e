/* infer/text.c: the text a sequence emits, built from its tokens' bytes: only complete UTF-8
 * characters go out (invalid bytes become U+FFFD, so what is emitted is always valid UTF-8, as
 * JSON needs), and the tail that could still become a stop sequence is held back until it can
 * not; a matched stop sequence and everything after it is never emitted. */
#define _GNU_SOURCE /* memmem */
#include "infer.h"

#include <stdlib.h>
#include <string.h>

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

void infer_text_init(infer_text *t, const char *const *stop, int n_stop) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n_stop && i < INFER_MAX_STOP; i++)
        if (stop[i] && stop[i][0]) t->stop[t->n_stop++] = stop[i];
}

void infer_text_free(infer_text *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}

static int append(infer_text *t, const char *p, size_t n) {
    if (n > SIZE_MAX - 1 - t->len || base_grow(&t->buf, &t->cap, t->len + n + 1, 1, SIZE_MAX))
        return BASE_ENOMEM;
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = 0;
    return BASE_OK;
}

/* Bytes a character starting with lead b has (0: b cannot start one), and the range its second
 * byte must be in (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_need(unsigned char b, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* Feeds raw bytes through the UTF-8 check into buf. */
static int feed(infer_text *t, const char *p, size_t n) {
    int rc = BASE_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char b = (unsigned char)p[i], lo, hi;
        if (t->npend) {
            int need = utf8_need(t->pend[0], &lo, &hi);
            int ok = t->npend == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
            if (ok) {
                t->pend[t->npend++] = b;
                if (t->npend == need) {
                    rc = append(t, (const char *)t->pend, (size_t)need);
                    t->npend = 0;
                }
                continue;
            }
            rc = append(t, replacement, 3); /* a broken character; b starts afresh */
            t->npend = 0;
            if (rc) break;
        }
        int need = utf8_need(b, &lo, &hi);
        if (need == 1)
            rc = append(t, (const char *)&b, 1);
        else if (need == 0)
            rc = append(t, replacement, 3);
        else
            t->pend[t->npend++] = b;
    }
    return rc;
}

/* Length of the longest suffix of buf[from..len) that is a proper prefix of a stop sequence. */
static size_t held_back(const infer_text *t, size_t from) {
    size_t best = 0;
    for (int s = 0; s < t->n_stop; s++) {
        size_t sl = strlen(t->stop[s]);
        for (size_t k = sl - 1; k > best; k--)
            if (k <= t->len - from && memcmp(t->buf + t->len - k, t->stop[s], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int infer_text_push(infer_text *t, const char *bytes, size_t n, const char **out, size_t *out_len,
                    int *stopped) {
    *out = "", *out_len = 0, *stopped = 0;
    if (feed(t, bytes, n)) return BASE_ENOMEM;
    /* Nothing new to look at (half a character so far): no stop can match in no text, and buf
     * may still be NULL, which memmem and pointer arithmetic must not see. */
    if (t->len == t->emitted) return BASE_OK;
    /* A match starts at or after `emitted`: any earlier start would have been held back. */
    size_t end = t->len;
    for (int s = 0; s < t->n_stop; s++) {
        const char *hit =
            memmem(t->buf + t->emitted, t->len - t->emitted, t->stop[s], strlen(t->stop[s]));
        if (hit && (size_t)(hit - t->buf) < end) end = (size_t)(hit - t->buf), *stopped = 1;
    }
    if (!*stopped) end = t->len - held_back(t, t->emitted);
    *out = t->buf + t->emitted;
    *out_len = end - t->emitted;
    t->emitted = end;
    if (*stopped) t->emitted = t->len; /* the stop text and what follows never go out */
    return BASE_OK;
}

int infer_text_flush(infer_text *t, const char **out, size_t *out_len) {
    *out = "", *out_len = 0;
    if (t->npend) { /* the sequence ended inside a character */
        t->npend = 0;
        if (append(t, replacement, 3)) return BASE_ENOMEM;
    }
    if (t->len == t->emitted) return BASE_OK; /* buf may be NULL: no text at all */
    *out = t->buf + t->emitted;
    *out_len = t->len - t->emitted;
    t->emitted = t->len;
    return BASE_OK;
}
