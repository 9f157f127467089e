/* embed/forward.c: the BERT encoder's forward pass over a batch of token sequences. The
 * sequences' tokens are packed back to back (N rows, no padding), so the linear layers run
 * once over all of them; attention stays within each sequence (the attention mask of a padded
 * batch, without the padding). Post-norm layers as in BERT:
 *   x = LN(tok[id] + pos[p] + type[0])
 *   x = LN(x + Wo attn(Wq x, Wk x, Wv x));  x = LN(x + Wdown gelu(Wup x))
 * then mean / CLS / last pooling per sequence and L2 normalization. */
#include "embed/embed_int.h"
#include "quant/quant.h"
#include "tensor/tensor.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Rows per pass: activations are ~(6C + F) floats a row, so 4096 rows of a 1024-wide model stay
 * near 100 MB while keeping the products large enough to run at full speed. */
#define EMBED_CHUNK_ROWS 4096

typedef struct {
    float *x, *q, *k, *v, *att, *h, *tmp, *mean, *rstd, *row;
    void *scratch;
} fwd_buf;

/* Y (M, mat.rows) = X (M, mat.cols) . W^T + b. */
static void mm(float *Y, const float *X, const embed_mat *w, const float *b, int M, void *scratch) {
    if (w->type == QUANT_F32) {
        tensor_matmul_fwd(Y, X, w->data, b, M, w->cols, w->rows);
        return;
    }
    quant_matmul(Y, X, w->data, w->type, M, w->rows, w->cols, scratch);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *y = Y + (size_t)i * w->rows;
        for (int j = 0; j < w->rows; j++) y[j] += b[j];
    }
}

/* dst (C) += row r of the table. */
static void add_row(float *dst, const embed_mat *t, int r, float *tmp) {
    size_t rb;
    quant_row_bytes(t->type, (size_t)t->cols, &rb, NULL);
    const unsigned char *p = (const unsigned char *)t->data + rb * (size_t)r;
    if (t->type == QUANT_F32) {
        const float *f = (const float *)p;
        for (int c = 0; c < t->cols; c++) dst[c] += f[c];
        return;
    }
    quant_dequantize_row(t->type, p, tmp, (size_t)t->cols);
    for (int c = 0; c < t->cols; c++) dst[c] += tmp[c];
}

/* Non-causal attention within each sequence. q, k, v, out (N, C); seq s covers rows
 * start[s] .. start[s] + len[s]. */
static void attention(float *out, const float *q, const float *k, const float *v,
                      const size_t *start, const size_t *len, size_t ns, int C, int NH, size_t maxT,
                      float *probs) {
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    long long items = (long long)ns * NH;
#pragma omp parallel
    {
        float *p = probs + (size_t)omp_get_thread_num() * maxT; /* (maxT) per thread */
#pragma omp for schedule(dynamic, 1)
        for (long long it = 0; it < items; it++) {
            size_t s = (size_t)(it / NH);
            int h = (int)(it % NH);
            size_t T = len[s], r0 = start[s];
            for (size_t i = 0; i < T; i++) {
                const float *qi = q + (r0 + i) * (size_t)C + (size_t)h * HS;
                float mx = -INFINITY;
                for (size_t j = 0; j < T; j++) {
                    const float *kj = k + (r0 + j) * (size_t)C + (size_t)h * HS;
                    float d = 0;
#pragma omp simd reduction(+ : d)
                    for (int c = 0; c < HS; c++) d += qi[c] * kj[c];
                    d *= scale;
                    p[j] = d;
                    if (d > mx) mx = d;
                }
                float sum = 0;
                for (size_t j = 0; j < T; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                float inv = 1.0f / sum;
                float *o = out + (r0 + i) * (size_t)C + (size_t)h * HS;
                for (int c = 0; c < HS; c++) o[c] = 0;
                for (size_t j = 0; j < T; j++) {
                    const float *vj = v + (r0 + j) * (size_t)C + (size_t)h * HS;
                    float pj = p[j] * inv;
#pragma omp simd
                    for (int c = 0; c < HS; c++) o[c] += pj * vj[c];
                }
            }
        }
    }
}

static void gelu_erf(float *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* One pass over ns sequences with N tokens in all. */
static int forward_chunk(const embed_model *m, const int32_t *const *ids, const size_t *lens,
                         size_t ns, size_t N, size_t base, fwd_buf *b, float *out, base_err *e) {
    int C = m->C, F = m->F;
    size_t *start = malloc(ns * sizeof *start), maxT = 1;
    if (!start) return base_fail(e, BASE_ENOMEM, "out of memory");
    for (size_t s = 0, r = 0; s < ns; s++) {
        start[s] = r;
        r += lens[s];
        if (lens[s] > maxT) maxT = lens[s];
    }
    /* the softmax rows of attention, one per thread: allocated here, so running out of memory
     * is an error returned, not a worker that cannot report it */
    float *probs = base_alloc_floats((size_t)omp_get_max_threads() * maxT);
    if (!probs) {
        free(start);
        return base_fail(e, BASE_ENOMEM, "out of memory");
    }
    /* embeddings: token + position + type 0, then LayerNorm */
    for (size_t s = 0; s < ns; s++)
        for (size_t t = 0; t < lens[s]; t++) {
            float *x = b->x + (start[s] + t) * (size_t)C;
            memset(x, 0, (size_t)C * sizeof *x);
            add_row(x, &m->tok_emb, ids[s][t], b->row);
            add_row(x, &m->pos_emb, (int)t, b->row);
            add_row(x, &m->type_emb, 0, b->row);
        }
    int M = (int)N;
    tensor_layernorm_fwd(b->x, b->mean, b->rstd, b->x, m->emb_ln_w, m->emb_ln_b, M, C, m->eps);
    for (int l = 0; l < m->n_layer; l++) {
        const embed_layer *y = &m->layers[l];
        mm(b->q, b->x, &y->q, y->qb, M, b->scratch);
        mm(b->k, b->x, &y->k, y->kb, M, b->scratch);
        mm(b->v, b->x, &y->v, y->vb, M, b->scratch);
        attention(b->att, b->q, b->k, b->v, start, lens, ns, C, m->NH, maxT, probs);
        mm(b->tmp, b->att, &y->o, y->ob, M, b->scratch);
        tensor_residual_fwd(b->tmp, b->tmp, b->x, (size_t)M * C);
        tensor_layernorm_fwd(b->x, b->mean, b->rstd, b->tmp, y->ln1_w, y->ln1_b, M, C, m->eps);
        mm(b->h, b->x, &y->up, y->upb, M, b->scratch);
        if (m->act == EMBED_GELU_ERF)
            gelu_erf(b->h, (size_t)M * F);
        else
            tensor_gelu_fwd(b->h, b->h, (size_t)M * F);
        mm(b->tmp, b->h, &y->down, y->downb, M, b->scratch);
        tensor_residual_fwd(b->tmp, b->tmp, b->x, (size_t)M * C);
        tensor_layernorm_fwd(b->x, b->mean, b->rstd, b->tmp, y->ln2_w, y->ln2_b, M, C, m->eps);
    }
    for (size_t s = 0; s < ns; s++) {
        float *o = out + s * (size_t)C;
        const float *x = b->x + start[s] * (size_t)C;
        size_t T = lens[s];
        if (m->pooling == EMBED_POOL_CLS) {
            memcpy(o, x, (size_t)C * sizeof *o);
        } else if (m->pooling == EMBED_POOL_LAST) {
            memcpy(o, x + (T - 1) * (size_t)C, (size_t)C * sizeof *o);
        } else {
            for (int c = 0; c < C; c++) {
                double a = 0;
                for (size_t t = 0; t < T; t++) a += x[t * (size_t)C + c];
                o[c] = (float)(a / (double)T);
            }
        }
        double nn = 0;
        for (int c = 0; c < C; c++) nn += (double)o[c] * o[c];
        if (!isfinite(nn)) {
            free(start);
            free(probs);
            return base_fail(e, BASE_ENUM, "input %zu: the model produced a non-finite value",
                             base + s);
        }
        float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
    free(start);
    free(probs);
    return BASE_OK;
}

int embed_forward(const embed_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                  float *out, base_err *e) {
    size_t rows = EMBED_CHUNK_ROWS;
    for (size_t i = 0; i < n; i++)
        if (lens[i] > rows) rows = lens[i];
    size_t C = (size_t)m->C, F = (size_t)m->F;
    fwd_buf b = {0};
    size_t scratch = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const embed_mat *ms[] = {&m->layers[l].q, &m->layers[l].k,  &m->layers[l].v,
                                 &m->layers[l].o, &m->layers[l].up, &m->layers[l].down};
        for (int i = 0; i < 6; i++) {
            size_t s = quant_matmul_scratch_bytes(ms[i]->type, (int)rows, ms[i]->cols);
            if (s > scratch) scratch = s;
        }
    }
    b.x = base_alloc_floats(rows * C);
    b.q = base_alloc_floats(rows * C);
    b.k = base_alloc_floats(rows * C);
    b.v = base_alloc_floats(rows * C);
    b.att = base_alloc_floats(rows * C);
    b.tmp = base_alloc_floats(rows * C);
    b.h = base_alloc_floats(rows * F);
    b.mean = base_alloc_floats(rows);
    b.rstd = base_alloc_floats(rows);
    b.row = base_alloc_floats(C);
    b.scratch = scratch ? malloc(scratch) : NULL;
    int rc = BASE_OK;
    if (!b.x || !b.q || !b.k || !b.v || !b.att || !b.tmp || !b.h || !b.mean || !b.rstd || !b.row ||
        (scratch && !b.scratch))
        rc = base_fail(e, BASE_ENOMEM, "out of memory for a batch of %zu tokens", rows);
    /* groups of whole sequences of at most `rows` tokens */
    for (size_t i = 0; !rc && i < n;) {
        size_t j = i, N = 0;
        while (j < n && N + lens[j] <= rows) N += lens[j++];
        rc = forward_chunk(m, ids + i, lens + i, j - i, N, i, &b, out + i * C, e);
        i = j;
    }
    free(b.x);
    free(b.q);
    free(b.k);
    free(b.v);
    free(b.att);
    free(b.tmp);
    free(b.h);
    free(b.mean);
    free(b.rstd);
    free(b.row);
    free(b.scratch);
    return rc;
}
