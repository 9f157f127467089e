/* ckpt/gguf_held.c: a frozen base's large matrices left in the GGUF file's stored type (QLoRA,
 * gguf_model.h's ckpt_gguf_wsrc): an nn_wsrc over a read-only mapping that dequantizes a layer's
 * matrix, or the embedding rows of a batch's tokens, when the model's forward or backward asks,
 * with src/quant's row dequantizers: the bytes ckpt_gguf_read_model would have put in params. */
#include "ckpt/gguf_model.h"

#include "ckpt_int.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

/* One GGUF tensor's share of a held matrix: rows row0.. of the layer's matrix (q | k | v and
 * gate | up are several tensors; the others one). */
typedef struct held_part {
    const uint8_t *data; /* its first row in the mapping */
    size_t rowb;         /* bytes per row */
    int type, row0, rope_heads;
} held_part;

#define HELD_PARTS 3 /* at most three tensors per matrix (q, k, v) */

typedef struct held {
    gguf_file *g;
    int HS, L;
    int rows[NN_W_N], cols[NN_W_N]; /* each matrix's shape (one layer's) */
    int *n_part;                    /* [id * L + l]: parts of matrix id of layer l */
    held_part *part;                /* [(id * L + l) * HELD_PARTS + k] */
} held;

static void held_free(void *user) {
    held *h = user;
    if (!h) return;
    gguf_close(h->g);
    free(h->n_part);
    free(h->part);
    free(h);
}

/* Which held matrix a parameter tensor is (nn_wid), by its nn_params name; -1: never held. */
static int wid_of(const char *name) {
    static const char *const n[NN_W_N] = {"wte", "qkvw", "attprojw", "fcw", "fcprojw", "lm_head"};
    for (int i = 0; i < NN_W_N; i++)
        if (!strcmp(n[i], name)) return i;
    return -1;
}

static void held_get(void *user, int id, int l, const int *rows, int n, float *dst) {
    const held *h = user;
    int nr = rows ? n : h->rows[id], cols = h->cols[id];
    const held_part *pp = &h->part[((size_t)id * h->L + (size_t)l) * HELD_PARTS];
    int np = h->n_part[id * h->L + l];
    /* a row of 1024 elements takes about a microsecond: threads pay from a few dozen rows */
#pragma omp parallel for schedule(static) if (nr >= 32)
    for (int i = 0; i < nr; i++) {
        int r = rows ? rows[i] : i, k = 0;
        while (k + 1 < np && r >= pp[k + 1].row0) k++;
        const held_part *q = &pp[k];
        int lr = r - q->row0;
        if (q->rope_heads) lr = ckpt_rope_file_row(lr, h->HS);
        quant_dequantize_row(q->type, q->data + (size_t)lr * q->rowb, dst + (size_t)i * cols,
                             (size_t)cols);
    }
}

int ckpt_gguf_wsrc(gguf_file *g, const nn_config *c, nn_wsrc *out, base_err *e) {
    memset(out, 0, sizeof *out);
    held *h = calloc(1, sizeof *h);
    if (!h) return base_fail(e, BASE_ENOMEM, "out of memory");
    h->HS = c->d_model / c->n_head, h->L = c->n_layer;
    int rc = ckpt_gguf_arch_check(g, c, e);
    nn_tensor full[NN_MAX_TENSORS];
    int nf = nn_config_tensors(c, full), n = 0;
    ckpt_piece *p = NULL;
    if (!rc && (n = ckpt_pieces_of(c, full, nf, CKPT_NAMES_GGUF, &p)) < 0)
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    if (!rc && (!(h->part = calloc((size_t)NN_W_N * (size_t)h->L * HELD_PARTS, sizeof *h->part)) ||
                !(h->n_part = calloc((size_t)NN_W_N * (size_t)h->L, sizeof *h->n_part))))
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    unsigned held_ids = 0;
    size_t layer_max = 0;
    /* each piece checked once: the shapes, every matrix's parts (those of a matrix left in F32
     * are never read), and which matrices are stored in another type than F32 */
    for (int i = 0; !rc && i < n; i++) {
        const gguf_tensor *t;
        size_t bytes;
        if ((rc = ckpt_gguf_piece(g, &p[i], &t, &bytes, e))) break;
        const nn_tensor *ft = &full[p[i].tensor];
        int id = wid_of(ft->name);
        if (id < 0) continue;
        int layered = ft->ndim == 3;
        h->rows[id] = layered ? ft->shape[1] : ft->shape[0];
        h->cols[id] = layered ? ft->shape[2] : ft->shape[1];
        if (layered && (size_t)h->rows[id] * (size_t)h->cols[id] > layer_max)
            layer_max = (size_t)h->rows[id] * (size_t)h->cols[id];
        if (t->type != QUANT_F32) held_ids |= 1u << id;
        int slot = id * h->L + p[i].layer;
        BASE_ASSERT(h->n_part[slot] < HELD_PARTS);
        h->part[(size_t)slot * HELD_PARTS + (size_t)h->n_part[slot]++] = (held_part){
            .data = gguf_data(g) + gguf_data_offset(g) + t->offset,
            .rowb = bytes / (size_t)p[i].shape[0],
            .type = (int)t->type,
            .row0 = p[i].row0,
            .rope_heads = p[i].rope_heads,
        };
    }
    free(p);
    /* the head fetched whole would need a scratch as large as its F32 copy */
    int head = c->tied ? NN_W_WTE : NN_W_HEAD;
    if ((size_t)c->vocab_size * (size_t)c->d_model > layer_max) held_ids &= ~(1u << head);
    if (rc || !held_ids) {
        held_free(h); /* g stays the caller's */
        return rc;
    }
    h->g = g; /* the source's from here on */
    *out = (nn_wsrc){.held = held_ids, .get = held_get, .free = held_free, .user = h};
    return BASE_OK;
}
