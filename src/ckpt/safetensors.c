/* ckpt/safetensors.c: the safetensors writer and checked reader, and the model under Hugging
 * Face names (the mapping is ckpt_pieces, names.c, shared with GGUF).  */
#include "safetensors.h"

#include "ckpt_int.h"
#include "crc32c.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* ---- writer */

typedef struct st_out {
    base_afile *f;
    uint64_t size;
    uint32_t crc;
} st_out;

/* In pieces that stay in the L2 cache: the CRC brings a piece in, the copy into the file's
 * buffer finds it there. */
static int out_put(st_out *o, const void *p, size_t n, base_err *e) {
    const char *c = p;
    for (size_t k; n > 0; c += k, n -= k) {
        k = n < (256u << 10) ? n : 256u << 10;
        o->crc = ckpt_crc32c(o->crc, c, k);
        o->size += k;
        int rc = base_afile_write(o->f, c, k, e);
        if (rc) return rc;
    }
    return BASE_OK;
}

int ckpt_st_write(const char *path, const ckpt_st_tensor *t, int n, const char *const *meta,
                  uint64_t *size, uint32_t *crc, base_err *e) {
    json_t *h = json_object();
    int rc = h ? BASE_OK : base_fail(e, BASE_ENOMEM, "out of memory");
    uint64_t off = 0;
    if (!rc && meta && meta[0]) {
        json_t *mo = json_object();
        if (json_object_set_new(h, "__metadata__", mo)) rc = BASE_ENOMEM;
        for (int i = 0; !rc && meta[i]; i += 2)
            if (!meta[i + 1] || json_object_set_new(mo, meta[i], json_string(meta[i + 1])))
                rc = BASE_ENOMEM;
        if (rc) rc = base_fail(e, BASE_EINVAL, "%s: bad metadata (a key without a value?)", path);
    }
    for (int i = 0; !rc && i < n; i++) {
        if (t[i].ndim < 0 || t[i].ndim > CKPT_ST_MAX_DIM) {
            rc = base_fail(e, BASE_EINVAL, "%s: tensor %s has %d dimensions", path, t[i].name,
                           t[i].ndim);
            break;
        }
        uint64_t numel = 1;
        json_t *te = json_object(), *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= t[i].shape[d];
            json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        }
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)(off + numel * 4));
        off += numel * 4;
        if (!te || !shape || !offs || json_object_set_new(te, "dtype", json_string("F32")) ||
            json_object_set_new(te, "shape", shape) ||
            json_object_set_new(te, "data_offsets", offs) || json_object_set_new(h, t[i].name, te))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    char *hs = rc ? NULL : json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!rc && !hs) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    st_out o = {0};
    if (!rc) rc = base_afile_open_direct(&o.f, path, e);
    if (!rc) {
        /* pad the header with spaces so the data starts 8-byte aligned */
        size_t hl = strlen(hs), pad = (8 - hl % 8) % 8;
        uint64_t total = hl + pad;
        unsigned char len8[8];
        base_put_le64(len8, total);
        rc = out_put(&o, len8, 8, e);
        if (!rc) rc = out_put(&o, hs, hl, e);
        if (!rc) rc = out_put(&o, "       ", pad, e);
        for (int i = 0; !rc && i < n; i++) {
            uint64_t numel = 1;
            for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
            rc = out_put(&o, t[i].data, (size_t)numel * 4, e);
        }
        if (rc)
            base_afile_abort(o.f);
        else
            rc = base_afile_commit(o.f, e);
    }
    free(hs);
    if (!rc && size) *size = o.size;
    if (!rc && crc) *crc = o.crc;
    return rc;
}

/* ---- reader */

struct ckpt_st {
    unsigned char *buf;
    size_t len;
    json_t *header;
    ckpt_st_entry *ent;
    int n;
};

void ckpt_st_free(ckpt_st *st) {
    if (!st) return;
    free(st->buf);
    json_decref(st->header);
    free(st->ent);
    free(st);
}

int ckpt_st_parse(ckpt_st **out, void *buf, size_t len, const char *name, base_err *e) {
    *out = NULL;
    ckpt_st *st = calloc(1, sizeof *st);
    if (!st) {
        free(buf);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    st->buf = buf;
    st->len = len;
    int rc = BASE_OK;
    uint64_t hl = 0;
    if (len < 8) {
        rc = base_fail(e, BASE_EFORMAT, "%s: %zu bytes, too short for a safetensors header", name,
                       len);
        goto fail;
    }
    hl = base_get_le64((const uint8_t *)st->buf);
    if (hl > CKPT_ST_MAX_HEADER || hl > len - 8) {
        rc = base_fail(e, BASE_EFORMAT,
                       "%s: the header length %" PRIu64 " runs past the file's %zu bytes", name, hl,
                       len);
        goto fail;
    }
    json_error_t je;
    st->header = json_loadb((const char *)st->buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!st->header || !json_is_object(st->header)) {
        rc = base_fail(e, BASE_EFORMAT, "%s: the header is not a JSON object (%s)", name,
                       st->header ? "another JSON value" : je.text);
        goto fail;
    }
    size_t nkeys = json_object_size(st->header);
    st->ent = calloc(nkeys ? nkeys : 1, sizeof *st->ent);
    if (!st->ent) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
        goto fail;
    }
    const unsigned char *data = st->buf + 8 + hl;
    uint64_t data_len = len - 8 - hl;
    const char *key;
    json_t *v;
    json_object_foreach(st->header, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) rc = BASE_EFORMAT;
            json_object_foreach(v, mk, mv) if (!json_is_string(mv)) rc = BASE_EFORMAT;
            if (rc) {
                rc = base_fail(e, rc, "%s: __metadata__ must map strings to strings", name);
                goto fail;
            }
            continue;
        }
        ckpt_st_entry *en = &st->ent[st->n];
        json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
               *of = json_object_get(v, "data_offsets");
        if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) || !json_is_array(of) ||
            json_array_size(of) != 2) {
            rc = base_fail(e, BASE_EFORMAT,
                           "%s: tensor %s needs dtype, shape and data_offsets [begin, end]", name,
                           key);
            goto fail;
        }
        if (strcmp(json_string_value(dt), "F32") != 0) {
            rc = base_fail(e, BASE_EFORMAT, "%s: tensor %s has dtype %s; only F32 is supported",
                           name, key, json_string_value(dt));
            goto fail;
        }
        if (json_array_size(sh) > CKPT_ST_MAX_DIM) {
            rc = base_fail(e, BASE_EFORMAT, "%s: tensor %s has more than %d dimensions", name, key,
                           CKPT_ST_MAX_DIM);
            goto fail;
        }
        en->name = key;
        en->ndim = (int)json_array_size(sh);
        uint64_t numel = 1;
        for (int d = 0; d < en->ndim; d++) {
            json_t *x = json_array_get(sh, (size_t)d);
            json_int_t s = json_is_integer(x) ? json_integer_value(x) : -1;
            /* each dimension and the product stay below 2^62 bytes: no overflow below */
            if (s < 0 || (s > 0 && numel > (UINT64_C(1) << 60) / (uint64_t)s)) {
                rc = base_fail(e, BASE_EFORMAT, "%s: tensor %s has a bad shape", name, key);
                goto fail;
            }
            en->shape[d] = (uint64_t)s;
            numel *= (uint64_t)s;
        }
        en->numel = numel;
        json_t *b = json_array_get(of, 0), *x = json_array_get(of, 1);
        json_int_t ob = json_is_integer(b) ? json_integer_value(b) : -1,
                   oe = json_is_integer(x) ? json_integer_value(x) : -1;
        if (ob < 0 || oe < ob || (uint64_t)oe > data_len || (uint64_t)(oe - ob) != numel * 4) {
            rc = base_fail(e, BASE_EFORMAT,
                           "%s: tensor %s: data_offsets [%lld, %lld] do not fit its shape "
                           "(%" PRIu64 " bytes) within the file's %" PRIu64 " data bytes",
                           name, key, (long long)ob, (long long)oe, numel * 4, data_len);
            goto fail;
        }
        en->data = data + ob;
        st->n++;
    }
    *out = st;
    return BASE_OK;
fail:
    ckpt_st_free(st);
    return rc;
}

int ckpt_st_open(ckpt_st **out, const char *path, base_err *e) {
    char *buf;
    size_t len;
    *out = NULL;
    int rc = base_read_file(path, &buf, &len, e);
    return rc ? rc : ckpt_st_parse(out, buf, len, path, e);
}

int ckpt_st_count(const ckpt_st *st) {
    return st->n;
}

const ckpt_st_entry *ckpt_st_entry_at(const ckpt_st *st, int i) {
    return i >= 0 && i < st->n ? &st->ent[i] : NULL;
}

const ckpt_st_entry *ckpt_st_find(const ckpt_st *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->ent[i].name, name) == 0) return &st->ent[i];
    return NULL;
}

const char *ckpt_st_meta(const ckpt_st *st, const char *key) {
    return json_string_value(json_object_get(json_object_get(st->header, "__metadata__"), key));
}

static void shape_str(char *s, size_t n, int ndim, const uint64_t *shape) {
    size_t k = (size_t)snprintf(s, n, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(s + k, n - k, "%s%" PRIu64, d ? ", " : "", shape[d]);
    if (k < n) snprintf(s + k, n - k, ")");
}

int ckpt_st_get_f32(const ckpt_st *st, const char *name, int ndim, const uint64_t *shape,
                    float *dst, base_err *e) {
    const ckpt_st_entry *en = ckpt_st_find(st, name);
    if (!en) return base_fail(e, BASE_EFORMAT, "tensor %s is missing", name);
    int same = en->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = en->shape[d] == shape[d];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof a, en->ndim, en->shape);
        shape_str(b, sizeof b, ndim, shape);
        return base_fail(e, BASE_EFORMAT, "tensor %s has shape %s, expected %s", name, a, b);
    }
    memcpy(dst, en->data, (size_t)en->numel * 4);
    return BASE_OK;
}

int ckpt_st_write_model(const char *path, const nn_model *m, const char *const *meta,
                        uint64_t *size, uint32_t *crc, base_err *e) {
    ckpt_piece *p;
    int n = ckpt_pieces(m, CKPT_NAMES_HF, &p);
    ckpt_st_tensor *t = n >= 0 ? calloc((size_t)n + 1, sizeof *t) : NULL;
    if (!t) {
        if (n >= 0) free(p);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        t[i] = (ckpt_st_tensor){
            p[i].name, p[i].ndim, {p[i].shape[0], p[i].shape[1]}, m->params + p[i].offset};
    int rc = ckpt_st_write(path, t, n, meta, size, crc, e);
    free(t);
    free(p);
    return rc;
}

int ckpt_st_read_model(const ckpt_st *st, nn_model *m, base_err *e) {
    ckpt_piece *p;
    int n = ckpt_pieces(m, CKPT_NAMES_HF, &p);
    if (n < 0) return base_fail(e, BASE_ENOMEM, "out of memory");
    int rc = BASE_OK;
    for (int i = 0; !rc && i < n; i++)
        rc = ckpt_st_get_f32(st, p[i].name, p[i].ndim, p[i].shape, m->params + p[i].offset, e);
    if (!rc && ckpt_st_count(st) != n)
        rc = base_fail(e, BASE_EFORMAT, "the file holds %d tensors, the model has %d",
                       ckpt_st_count(st), n);
    free(p);
    return rc;
}
