/* infer/forward.c: the batched forward of inference. One call processes a ragged batch of rows
 * (a decoding sequence contributes 1 row, a prefilling one a chunk of its prompt), each row with
 * its own (slot, position): the linear layers run as one matrix product over all rows with the
 * weights in their stored types (quant_matmul), attention runs per (row, head) over the row's
 * slot of the KV cache. Nothing here keeps activations beyond one layer: inference needs no
 * backward. */
#include "ckpt/gguf_model.h"
#include "infer_int.h"
#include "quant/quant.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The matrices of one linear layer an adapter may adapt at most (q, k, v and a fused qkv). */
#define LORA_PER_LINEAR 4

/* One adapted matrix's products over its adapter's rows in a forward (lora_apply). */
typedef struct lora_job {
    const infer_lora_site *st;
    const int *rows; /* (m): the rows of the forward that use the adapter */
    int m, nb;       /* rows; blocks of LORA_COLS outputs */
    float *H;        /* (m, r): A x */
    long i1, i2;     /* where its items (r of them; nb) start in the two phases' numbering */
} lora_job;

struct infer_engine {
    const infer_weights *w;
    nn_config c;
    int S, ctx, R; /* slots, positions per slot, rows per forward at most */
    int C, NH, NKV, HS, Q, FO, F;
    int QD; /* NH * HS: the attention's output width (C unless the family's heads differ) */
    infer_kv_type kv;         /* the cache's element type */
    void *kc, *vc;            /* (L, S, NKV, ctx, HS) each, of floats or halves */
    float *x, *ln, *tmp;      /* (R, C) */
    float *atty;              /* (R, max(C, QD)) */
    float *mean, *rstd;       /* (R) */
    float *qkv;               /* (R, Q) */
    float *fch, *fact;        /* (R, FO), (R, F) */
    int *tok;                 /* (R) */
    int *run_start, *run_len; /* (R): rows grouped into runs of one slot, consecutive positions */
    float *att;               /* (att_threads, ctx) attention scores, one row per thread */
    int att_threads;
    float *rope_cos, *rope_sin; /* (ctx, HS/2), Llama */
    float *part;                /* (R, the widest matrix of a split linear layer) */
    void *qscratch;             /* quant_matmul's quantized activations, (R, max K) */
    /* LoRA adapters (infer_engine_set_lora): each slot's, and per forward the rows of each
     * adapter in use, grouped */
    const infer_lora **slot_lora; /* (S) */
    int n_lora;                   /* slots with one */
    const infer_lora **grp;       /* (S): the adapters of this forward's rows */
    int *grp_off, *grp_rows;      /* (S + 1), (R): group i's rows are grp_rows[grp_off[i]..) */
    int n_grp;
    float *lora_h; /* (LORA_PER_LINEAR, R, lora_rank): A x of each adapted matrix's rows */
    int lora_rank;
    struct lora_job *lora_jobs; /* (S * LORA_PER_LINEAR): one linear layer's products */
};

void infer_engine_free(infer_engine *g) {
    if (!g) return;
    free(g->kc);
    free(g->vc);
    free(g->x);
    free(g->ln);
    free(g->tmp);
    free(g->atty);
    free(g->mean);
    free(g->rstd);
    free(g->qkv);
    free(g->fch);
    free(g->fact);
    free(g->tok);
    free(g->run_start);
    free(g->run_len);
    free(g->att);
    free(g->rope_cos);
    free(g->rope_sin);
    free(g->part);
    free(g->qscratch);
    free(g->slot_lora);
    free(g->grp);
    free(g->grp_off);
    free(g->grp_rows);
    free(g->lora_h);
    free(g->lora_jobs);
    free(g);
}

/* n1 * n2 * n3 floats, overflow-checked; NULL on failure. */
static float *alloc3(size_t n1, size_t n2, size_t n3) {
    size_t a, b;
    if (base_mul_size(n1, n2, &a) || base_mul_size(a, n3, &b)) return NULL;
    return base_alloc_floats(b ? b : 1);
}

/* llama.cpp's RoPE angles: theta_i = pos * base^(-2i/HS), the ratio a float and the powers
 * made by repeated float multiplication; cosf and sinf of them. (Hearth's tensor_rope_table
 * computes each power in double: at position 100 the two differ by about 1e-4 radians, enough
 * to turn a close greedy choice.) The scalings as ggml applies them: each angle divided by its
 * frequency factor (ff, HS/2, or NULL), times freq_scale (linear scaling); cos and sin times
 * mscale (the attention factor). */
static void rope_table_ggml(float *cos_t, float *sin_t, int maxT, int HS, float base,
                            const float *ff, float freq_scale, float mscale) {
    int half = HS / 2;
    float ratio = powf(base, -2.0f / (float)HS);
    for (int t = 0; t < maxT; t++) {
        float theta = (float)t;
        for (int i = 0; i < half; i++) {
            float a = freq_scale * (ff ? theta / ff[i] : theta);
            cos_t[(size_t)t * half + i] = cosf(a) * mscale;
            sin_t[(size_t)t * half + i] = sinf(a) * mscale;
            theta *= ratio;
        }
    }
}

int infer_engine_create(infer_engine **out, const infer_model *m, int n_slots, int ctx,
                        int max_rows, infer_kv_type kv_type, base_err *e) {
    *out = NULL;
    const infer_weights *w = infer_model_weights(m);
    const nn_config *c = &w->cfg;
    if (n_slots < 1 || n_slots > 4096)
        return base_fail(e, BASE_EINVAL, "slots must be in [1, 4096], got %d", n_slots);
    if (ctx < 1 || ctx > c->max_seq)
        return base_fail(e, BASE_EINVAL, "context %d must be in [1, %d] (the model's max_seq)", ctx,
                         c->max_seq);
    if (max_rows < 1 || max_rows > 1 << 20)
        return base_fail(e, BASE_EINVAL, "rows per step must be in [1, 2^20], got %d", max_rows);
    infer_engine *g = calloc(1, sizeof *g);
    if (!g) return base_fail(e, BASE_ENOMEM, "out of memory");
    g->w = w;
    g->c = *c;
    g->S = n_slots, g->ctx = ctx, g->R = max_rows;
    const infer_hparams *hp = &w->hp;
    g->C = c->d_model, g->NH = c->n_head, g->NKV = c->n_kv_head, g->HS = hp->head_dim;
    g->Q = (g->NH + 2 * g->NKV) * g->HS, g->QD = g->NH * g->HS, g->F = c->d_ff;
    g->FO = hp->act == INFER_ACT_GELU ? c->d_ff : 2 * c->d_ff;
    size_t R = (size_t)max_rows, C = (size_t)g->C, AW = g->QD > g->C ? (size_t)g->QD : C;
    size_t cache_row = (size_t)g->NKV * (size_t)g->HS;
    size_t per_layer;
    int bad = base_mul_size((size_t)n_slots * (size_t)ctx, cache_row, &per_layer);
    /* The caches are not zeroed by hand: every position is written before attention reads it,
     * and calloc's fresh pages cost nothing until touched — a long context reserved for a
     * short conversation is address space, not memory. */
    size_t cache_elems = 0, esz = kv_type == INFER_KV_F32 ? sizeof(float) : sizeof(uint16_t);
    g->kv = kv_type;
    if (!bad) bad = base_mul_size((size_t)c->n_layer, per_layer, &cache_elems);
    /* the quantized activations of the widest input, for the most demanding weight type; the
     * rows of the widest matrix whose rows linear() reorders (RoPE) */
    size_t qs = quant_matmul_scratch_bytes(w->head.type, max_rows, g->C), widest = 1;
    for (int l = 0; l < c->n_layer; l++) {
        const infer_linear *ls[4] = {&w->layers[l].qkv, &w->layers[l].attproj, &w->layers[l].fc,
                                     &w->layers[l].fcproj};
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < ls[k]->n; i++) {
                size_t b = quant_matmul_scratch_bytes(ls[k]->w[i].type, max_rows, ls[k]->w[i].cols);
                if (b > qs) qs = b;
                if (ls[k]->rope_heads[i])
                    if ((size_t)ls[k]->w[i].rows > widest) widest = (size_t)ls[k]->w[i].rows;
            }
    }
    /* What cannot fit this machine's memory at all is refused by its size before anything is
     * reserved (calloc would succeed lazily and the kernel kill the process later). */
    double cache_mb =
        2.0 * c->n_layer * (double)n_slots * ctx * (double)cache_row * (double)esz / 1e6;
    double scratch_mb =
        ((double)R *
             (4.0 * (double)C + 2 + (double)g->Q + (double)g->FO + (double)g->F + (double)widest) *
             4 +
         (double)qs) /
        1e6;
    const char *less =
        kv_type == INFER_KV_F32 ? ", a shorter context or --kv-type f16" : " or a shorter context";
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    double phys_mb = pages > 0 && psize > 0 ? (double)pages * (double)psize / 1e6 : 0;
    if (bad || (phys_mb > 0 && cache_mb + scratch_mb > phys_mb)) {
        infer_engine_free(g);
        return base_fail(e, BASE_ENOMEM,
                         "the model needs %.0f MB for the %s KV cache of %d slots x %d positions "
                         "and %.0f MB of scratch for %d rows, more than this machine's %.0f MB "
                         "(its weights are mapped from the file): fewer slots%s need less",
                         cache_mb, kv_type == INFER_KV_F32 ? "F32" : "F16", n_slots, ctx,
                         scratch_mb, max_rows, phys_mb, less);
    }
    {
        g->kc = calloc(cache_elems ? cache_elems : 1, esz);
        g->vc = calloc(cache_elems ? cache_elems : 1, esz);
    }
    g->x = alloc3(R, C, 1), g->ln = alloc3(R, C, 1), g->tmp = alloc3(R, C, 1);
    g->atty = alloc3(R, AW, 1), g->mean = alloc3(R, 1, 1), g->rstd = alloc3(R, 1, 1);
    g->qkv = alloc3(R, (size_t)g->Q, 1), g->fch = alloc3(R, (size_t)g->FO, 1);
    g->fact = alloc3(R, (size_t)g->F, 1);
    g->tok = calloc(R, sizeof(int)), g->run_start = calloc(R, sizeof(int));
    g->run_len = calloc(R, sizeof(int));
    g->qscratch = qs ? malloc(qs) : NULL;
    g->part = alloc3(R, widest, 1);
    g->slot_lora = calloc((size_t)n_slots, sizeof *g->slot_lora);
    g->grp = calloc((size_t)n_slots, sizeof *g->grp);
    g->grp_off = calloc((size_t)n_slots + 1, sizeof(int));
    g->grp_rows = calloc(R, sizeof(int));
    g->lora_jobs = calloc((size_t)n_slots * LORA_PER_LINEAR, sizeof *g->lora_jobs);
    if (hp->rope) {
        g->rope_cos = alloc3((size_t)ctx, (size_t)g->HS / 2, 1);
        g->rope_sin = alloc3((size_t)ctx, (size_t)g->HS / 2, 1);
        /* Phi-3's short factors while the context stays within the trained one, as llama.cpp
         * chooses them (by the context per sequence) */
        const float *ff =
            hp->rope_short && ctx <= hp->rope_orig_ctx ? hp->rope_short : hp->rope_factors;
        if (g->rope_cos && g->rope_sin && w->rope_ggml)
            rope_table_ggml(g->rope_cos, g->rope_sin, ctx, g->HS, c->rope_theta, ff,
                            hp->rope_freq_scale, hp->rope_attn_factor);
        else if (g->rope_cos && g->rope_sin)
            tensor_rope_table(g->rope_cos, g->rope_sin, ctx, g->HS, c->rope_theta);
    }
    if (bad || !g->kc || !g->vc || !g->x || !g->ln || !g->tmp || !g->atty || !g->mean || !g->rstd ||
        !g->qkv || !g->fch || !g->fact || !g->tok || !g->run_start || !g->run_len ||
        (qs && !g->qscratch) || !g->part || !g->slot_lora || !g->grp || !g->grp_off ||
        !g->grp_rows || !g->lora_jobs || (hp->rope && (!g->rope_cos || !g->rope_sin))) {
        infer_engine_free(g);
        return base_fail(e, BASE_ENOMEM,
                         "out of memory: the model needs %.0f MB for the %s KV cache of %d slots x "
                         "%d positions and %.0f MB of scratch for %d rows (its weights are mapped "
                         "from the file): fewer slots%s need less",
                         cache_mb, kv_type == INFER_KV_F32 ? "F32" : "F16", n_slots, ctx,
                         scratch_mb, max_rows, less);
    }
    *out = g;
    return BASE_OK;
}

/* 16 floats: GCC/Clang vector extensions, compiled to whatever SIMD -march gives (one zmm with
 * AVX-512, two ymm with AVX2). */
typedef float v16 __attribute__((vector_size(64)));
static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v); /* unaligned */
    return v;
}
/* The 16 lanes summed as a tree (halves, then quarters): a few shuffles instead of 15
 * dependent scalar adds. */
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
static inline float hsum16(v16 a) {
    /* shuffles, not memcpy: GCC had passed the halves through the stack, a store-forwarding
     * stall per key in attention's scores */
    v8 s8 = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 s4 =
        __builtin_shufflevector(s8, s8, 0, 1, 2, 3) + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* Four vectors' sums, each by hsum16's tree (halves, quarters, then pairs): the bits of four
 * hsum16 calls, with a quarter of the shuffles. */
static inline v4 hsum16x4(v16 a, v16 b, v16 c, v16 d) {
    v16 ab =
        __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
        __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v16 cd =
        __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
        __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v16 y =
        __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
        __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    v8 z = __builtin_shufflevector(y, y, 0, 1, 4, 5, 8, 9, 12, 13) +
           __builtin_shufflevector(y, y, 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(z, z, 0, 2, 4, 6) + __builtin_shufflevector(z, z, 1, 3, 5, 7);
}

/* q . k over HS floats: vectorized when HS is a multiple of 16 (64 and 128 in every preset). */
static inline float head_dot(const float *q, const float *k, int HS) {
    if ((HS & 15) == 0) {
        v16 acc = {0};
        for (int d = 0; d < HS; d += 16) acc += load16(q + d) * load16(k + d);
        return hsum16(acc);
    }
    float s = 0;
    for (int d = 0; d < HS; d++) s += q[d] * k[d];
    return s;
}

/* 16 halves widened to floats (exactly). */
static inline v16 load16_f16(const uint16_t *p) {
    v16 v;
#ifdef __AVX512F__
    __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    memcpy(&v, &x, sizeof v);
#elif defined(__F16C__)
    __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)));
    memcpy(&v, &lo, sizeof lo);
    memcpy((char *)&v + sizeof lo, &hi, sizeof hi);
#else
    for (int i = 0; i < 16; i++) v[i] = quant_f16_to_f32(p[i]);
#endif
    return v;
}

/* The widest head the F16 attention keeps in registers (16-float vectors). */
#define ATT_MAX_V16 16

/* A linear layer over n rows: out (n, L->out) = inp (n, K) . [W0 | W1 | W2]^T + b, each matrix
 * in its stored type (quant_matmul: every output one dot product, whatever n is). The input is
 * converted once for every part of the same activation type (q, k, v; gate, up: one
 * quant_act_prepare, not one per matrix), and each part's outputs land in their columns of out
 * directly, except where a GGUF file's q and k rows (llama.cpp's RoPE order) are put back into
 * hearth's: those go through g->part. */
static void linear(infer_engine *g, float *out, const float *inp, const infer_linear *L, int n) {
    int col = 0, HS = g->HS, prepared = -1;
    const void *A = inp;
    for (int i = 0; i < L->n; i++) {
        const infer_mat *w = &L->w[i];
        int at = quant_act_type(w->type);
        if (at == QUANT_F32)
            A = inp; /* F32 weights take the floats as they are */
        else if (at != prepared) {
            quant_act_prepare(g->qscratch, inp, w->type, n, w->cols);
            A = g->qscratch, prepared = at;
        }
        const float *b = L->b ? L->b + col : NULL;
        if (!L->rope_heads[i]) {
            quant_matmul_prepared(out + col, (size_t)L->out, A, w->data, w->type, n, w->rows,
                                  w->cols);
            if (b)
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < w->rows; j++) out[(size_t)r * L->out + col + j] += b[j];
            col += w->rows;
            continue;
        }
        quant_matmul_prepared(g->part, (size_t)w->rows, A, w->data, w->type, n, w->rows, w->cols);
        for (int r = 0; r < n; r++) {
            const float *src = g->part + (size_t)r * w->rows;
            float *dst = out + (size_t)r * L->out + col;
            for (int j = 0; j < w->rows; j++)
                dst[ckpt_rope_hearth_row(j, HS)] = src[j] + (b ? b[j] : 0.0f);
        }
        col += w->rows;
    }
}

int infer_engine_set_lora(infer_engine *g, int slot, const infer_lora *a, base_err *e) {
    if (slot < 0 || slot >= g->S) return base_fail(e, BASE_EINVAL, "slot %d of %d", slot, g->S);
    if (a && a->w != g->w)
        return base_fail(e, BASE_EINVAL, "the adapter was loaded for another model");
    if (a && a->max_rank > g->lora_rank) {
        float *h = alloc3(LORA_PER_LINEAR, (size_t)g->R, (size_t)a->max_rank);
        if (!h) return base_fail(e, BASE_ENOMEM, "out of memory for the adapter's products");
        free(g->lora_h);
        g->lora_h = h, g->lora_rank = a->max_rank;
    }
    g->n_lora += (a != NULL) - (g->slot_lora[slot] != NULL);
    g->slot_lora[slot] = a;
    return BASE_OK;
}

/* a . b over n floats, in a fixed order (16 lanes, then the tail): a row's result never
 * depends on what else is computed. */
static inline float dot_f32(const float *a, const float *b, int n) {
    v16 acc = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) acc += load16(a + i) * load16(b + i);
    float s = hsum16(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The adapters' deltas of linear layer k (0 qkv, 1 attproj, 2 fc, 3 fcproj) of layer l, added
 * to its output out (rows of ldo floats; inp: its input, rows of the matrix's cols): for each
 * matrix of the layer an adapter in use adapts, over that adapter's rows only, h = A x (r per
 * row), then out[off..off+rows) += s * (B h), as llama.cpp computes B (A x), scales it and adds
 * it. Every matrix and adapter of the layer in one parallel region, its two phases split by one
 * barrier (a decode step's products are small: waking the threads for each would cost more
 * than they do). Every element is one thread's fixed-order sum, so a row's result does not
 * depend on the batch or the threads. Under 64K multiply-adds in all, one thread does it. */
#define LORA_COLS 256
static void lora_apply(infer_engine *g, int l, int k, float *out, int ldo, const float *inp) {
    lora_job *job = g->lora_jobs;
    int nj = 0;
    long n1 = 0, n2 = 0, work = 0;
    float *H = g->lora_h;
    for (int gi = 0; gi < g->n_grp; gi++) {
        const infer_lora *a = g->grp[gi];
        int m = g->grp_off[gi + 1] - g->grp_off[gi];
        for (int mk = 0; mk < INFER_LORA_NM; mk++) {
            const infer_lora_site *st = &a->site[l * INFER_LORA_NM + mk];
            if (!st->A || infer_lora_linear(mk) != k) continue;
            int nb = (st->out + LORA_COLS - 1) / LORA_COLS;
            job[nj++] = (lora_job){.st = st,
                                   .rows = g->grp_rows + g->grp_off[gi],
                                   .m = m,
                                   .nb = nb,
                                   .H = H,
                                   .i1 = n1,
                                   .i2 = n2};
            H += (size_t)m * st->r;
            n1 += st->r, n2 += nb;
            work += (long)m * st->r * (st->in + st->out);
        }
    }
    if (!nj) return;
#pragma omp parallel if (work >= 1 << 16)
    {
        int j = 0; /* items come in job order and a thread's x only rises (schedule(static)): its
                    * cursor only moves forward, job[j].i1 <= x staying true from job[0].i1 == 0 */
        /* phase 1, an item per (matrix, rank index t): A's row t read once for all rows */
#pragma omp for schedule(static)
        for (long x = 0; x < n1; x++) {
            while (j + 1 < nj && job[j + 1].i1 <= x) j++;
            const lora_job *jb = &job[j];
            int r = jb->st->r, K = jb->st->in, t = (int)(x - jb->i1);
            const float *At = jb->st->A + (size_t)t * K;
            for (int i = 0; i < jb->m; i++)
                jb->H[(size_t)i * r + t] = dot_f32(inp + (size_t)jb->rows[i] * K, At, K);
        }
        j = 0;
        /* phase 2, an item per (matrix, block of LORA_COLS outputs): B's block read once */
#pragma omp for schedule(static)
        for (long x = 0; x < n2; x++) {
            while (j + 1 < nj && job[j + 1].i2 <= x) j++;
            const lora_job *jb = &job[j];
            const infer_lora_site *st = jb->st;
            int r = st->r, O = st->out, j0 = (int)(x - jb->i2) * LORA_COLS;
            int j1 = j0 + LORA_COLS < O ? j0 + LORA_COLS : O;
            for (int i = 0; i < jb->m; i++) {
                const float *h = jb->H + (size_t)i * r;
                float d[LORA_COLS] = {0}, *y = out + (size_t)jb->rows[i] * ldo + st->off;
                for (int t = 0; t < r; t++) {
                    const float *bt = st->BT + (size_t)t * O, ht = h[t];
                    for (int c = j0; c < j1; c++) d[c - j0] += ht * bt[c];
                }
                for (int c = j0; c < j1; c++) y[c] += st->s * d[c - j0];
            }
        }
    }
}

static void norm(const infer_engine *g, float *out, const float *inp, const float *w,
                 const float *b, int N) {
    if (g->c.family == NN_GPT2)
        tensor_layernorm_fwd(out, g->mean, g->rstd, inp, w, b, N, g->C, g->c.norm_eps);
    else
        tensor_rmsnorm_fwd(out, g->rstd, inp, w, N, g->C, g->c.norm_eps);
}

/* x += tmp (n rows of C), tmp first normalized by w (Gemma 2's post-attention and post-FFN
 * RMSNorm) when w is not NULL. */
static void residual_normed(infer_engine *g, const float *w, int n) {
    const float *add = g->tmp;
    if (w) {
        tensor_rmsnorm_fwd(g->ln, g->rstd, g->tmp, w, n, g->C, g->c.norm_eps);
        add = g->ln;
    }
    tensor_residual_fwd(g->x, g->x, add, (size_t)n * g->C);
}

/* ggml's GELU (tanh approximation) as its CPU backend computes it: the input rounded to F16,
 * the result looked up in a table of F16 values (so rounded to F16), 0 below -10, x above 10. */
static float gelu_ggml(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    float h = quant_f16_to_f32(quant_f32_to_f16(x));
    float y = 0.5f * h *
              (1.0f + tanhf(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h)));
    return quant_f16_to_f32(quant_f32_to_f16(y));
}

/* Gemma 2's gated FFN: out (N, F) = gelu(gate) * up, inp (N, 2F) = gate | up per row. */
static void geglu_ggml(float *out, const float *inp, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        for (int j = 0; j < F; j++)
            out[(size_t)r * F + j] =
                gelu_ggml(inp[(size_t)r * 2 * F + j]) * inp[(size_t)r * 2 * F + F + j];
}

/* Halves to floats and back: F16C where the CPU has it (every x86 with AVX2), else quant's. */
static inline void f16_to_f32_n(float *dst, const uint16_t *src, int n) {
    int i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = quant_f16_to_f32(src[i]);
}
static inline void f32_to_f16_n(uint16_t *dst, const float *src, int n) {
    int i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = quant_f32_to_f16(src[i]);
}
/* x rounded to the nearest half (ties to even), as a float: one F16C round trip where the CPU
 * has it (the same rounding as quant_f32_to_f16). */
static inline float f16_round(float x) {
#ifdef __F16C__
    return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
#else
    return quant_f16_to_f32(quant_f32_to_f16(x));
#endif
}

/* acc[0..nv) = the sum over t0..P of the weights sc[t] * inv (each rounded to F16) times the
 * F16 value rows at V (HS apart), each widened in registers. Inlined, so that a constant nv
 * unrolls the loop over the head's vectors. */
static inline __attribute__((always_inline)) void
att_values(v16 *acc, int nv, const uint16_t *V, int HS, const float *sc, int t0, int P, float inv) {
    for (int j = 0; j < nv; j++) acc[j] = (v16){0};
    for (int t = t0; t <= P; t++) {
        const uint16_t *v = V + (size_t)t * HS;
        float w = f16_round(sc[t] * inv);
        for (int j = 0; j < nv; j++) acc[j] += w * load16_f16(v + 16 * j);
    }
}

/* Causal attention of every row over its slot's cache (positions 0..pos), layer l. The keys
 * and values of this call's rows are already in the cache. out (n, C). An F16 cache is read as
 * llama.cpp's CPU backend reads one: the query rounded to F16 for q.k, the attention weights
 * rounded to F16 for the sum of values (its products convert their float operand to the
 * cache's type), both then computed in float. */
static void attend(infer_engine *g, int l, const int *slots, const int *pos, int n) {
    int NH = g->NH, NKV = g->NKV, HS = g->HS, Q = g->Q, ctx = g->ctx, group = NH / NKV;
    int f16 = g->kv == INFER_KV_F16;
    int vec = (HS & 15) == 0 && HS <= 16 * ATT_MAX_V16; /* keys and values widened in registers */
    const infer_hparams *hp = &g->w->hp;
    /* the scale on q before the product (Phi-3, Gemma 2: as llama.cpp, which then rounds the
     * scaled q to the cache's F16) or on the product; Gemma 2's soft-capping of the scores;
     * the sliding window of this layer (a row sees its last `win` positions) */
    float qscale = hp->q_prescale ? hp->att_scale : 1.0f;
    float scale = hp->q_prescale ? 1.0f : hp->att_scale;
    float cap = hp->att_softcap, inv_cap = cap > 0 ? 1.0f / cap : 0;
    int win = hp->swa > 0 && (!hp->swa_every_other || l % 2 == 0) ? hp->swa : 0;
    size_t head_stride = (size_t)ctx * HS, layer_stride = (size_t)g->S * NKV * head_stride;
    int nt = omp_get_max_threads(); /* the scratch holds att_threads rows, at least this many */
    if (nt > g->att_threads) nt = g->att_threads;
#pragma omp parallel num_threads(nt)
    {
        /* scores (ctx), then the query rounded and one widened key or value row (HS each) */
        float *sc = g->att + (size_t)omp_get_thread_num() * (ctx + 2 * (size_t)HS);
        float *qh = sc + ctx, *row = qh + HS;
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n * NH; i++) {
            int r = i / NH, h = i % NH, kvh = h / group, P = pos[r];
            int t0 = win && P - win + 1 > 0 ? P - win + 1 : 0;
            const float *q = g->qkv + (size_t)r * Q + (size_t)h * HS;
            size_t base = (size_t)l * layer_stride + ((size_t)slots[r] * NKV + kvh) * head_stride;
            float mx = -INFINITY;
            if (f16) {
                for (int d = 0; d < HS; d++) qh[d] = f16_round(q[d] * qscale);
                const uint16_t *K = (const uint16_t *)g->kc + base;
                if (vec) { /* each key widened in registers, four keys at a time */
                    int t = t0;
                    for (; t + 3 <= P; t += 4) {
                        const uint16_t *k = K + (size_t)t * HS;
                        v16 acc[4] = {{0}};
                        for (int d = 0; d < HS; d += 16) {
                            v16 qv = load16(qh + d);
                            for (int u = 0; u < 4; u++)
                                acc[u] += qv * load16_f16(k + (size_t)u * HS + d);
                        }
                        v4 s4 = hsum16x4(acc[0], acc[1], acc[2], acc[3]) * scale;
                        memcpy(sc + t, &s4, sizeof s4);
                    }
                    for (; t <= P; t++) {
                        const uint16_t *k = K + (size_t)t * HS;
                        v16 acc = {0};
                        for (int d = 0; d < HS; d += 16) acc += load16(qh + d) * load16_f16(k + d);
                        sc[t] = hsum16(acc) * scale;
                    }
                } else
                    for (int t = t0; t <= P; t++) {
                        f16_to_f32_n(row, K + (size_t)t * HS, HS);
                        sc[t] = head_dot(qh, row, HS) * scale;
                    }
            } else {
                for (int d = 0; d < HS; d++) qh[d] = q[d] * qscale;
                const float *K = (const float *)g->kc + base;
                for (int t = t0; t <= P; t++) sc[t] = head_dot(qh, K + (size_t)t * HS, HS) * scale;
            }
            for (int t = t0; t <= P; t++) {
                if (cap > 0) sc[t] = tanhf(sc[t] * inv_cap) * cap;
                if (sc[t] > mx) mx = sc[t];
            }
            /* the sum in double, 1/sum as a float: ggml's soft_max; in its own loop, so the sum
             * stays in a register instead of being saved around every call of expf */
            for (int t = t0; t <= P; t++) sc[t] = expf(sc[t] - mx);
            double sum = 0;
            for (int t = t0; t <= P; t++) sum += sc[t];
            float inv = (float)(1.0 / sum), *o = g->atty + (size_t)r * g->QD + (size_t)h * HS;
            memset(o, 0, (size_t)HS * sizeof(float));
            if (f16 && vec) { /* the output head in registers, each value widened there */
                const uint16_t *V = (const uint16_t *)g->vc + base;
                v16 acc[ATT_MAX_V16];
                int nv = HS / 16;
                if (nv == 4) /* the common heads of 64 and 128 with the loop over them unrolled */
                    att_values(acc, 4, V, HS, sc, t0, P, inv);
                else if (nv == 8)
                    att_values(acc, 8, V, HS, sc, t0, P, inv);
                else
                    att_values(acc, nv, V, HS, sc, t0, P, inv);
                memcpy(o, acc, (size_t)HS * sizeof(float));
            } else if (f16) {
                const uint16_t *V = (const uint16_t *)g->vc + base;
                for (int t = t0; t <= P; t++) {
                    f16_to_f32_n(row, V + (size_t)t * HS, HS);
                    float w = f16_round(sc[t] * inv);
                    for (int d = 0; d < HS; d++) o[d] += w * row[d];
                }
            } else {
                const float *V = (const float *)g->vc + base;
                for (int t = t0; t <= P; t++) {
                    const float *v = V + (size_t)t * HS;
                    float w = sc[t] * inv;
                    for (int d = 0; d < HS; d++) o[d] += w * v[d];
                }
            }
        }
    }
}

int infer_forward(infer_engine *g, const int32_t *tokens, const int *slots, const int *pos, int n,
                  int n_decode, const int *out_rows, int n_out, float *logits, base_err *e) {
    int V = g->c.vocab_size, C = g->C, Q = g->Q, HS = g->HS, NH = g->NH, NKV = g->NKV;
    if (n < 1 || n > g->R)
        return base_fail(e, BASE_EINVAL, "a forward of %d rows (at most %d)", n, g->R);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return base_fail(e, BASE_EINVAL, "row %d: token %d is outside the vocabulary (%d)", i,
                             (int)tokens[i], V);
        if (slots[i] < 0 || slots[i] >= g->S)
            return base_fail(e, BASE_EINVAL, "row %d: slot %d of %d", i, slots[i], g->S);
        if (pos[i] < 0 || pos[i] >= g->ctx)
            return base_fail(e, BASE_EINVAL, "row %d: position %d outside the context (%d)", i,
                             pos[i], g->ctx);
        g->tok[i] = tokens[i];
    }
    if (n_decode < 0 || n_decode > n)
        return base_fail(e, BASE_EINVAL, "%d decode rows of %d rows", n_decode, n);
    int out_dec = 0; /* the output rows that are decode rows come first */
    for (int i = 0; i < n_out; i++) {
        if (out_rows[i] < 0 || out_rows[i] >= n)
            return base_fail(e, BASE_EINVAL, "output row %d of %d rows", out_rows[i], n);
        if (out_rows[i] < n_decode && out_dec++ != i)
            return base_fail(e, BASE_EINVAL, "output row %d (a decode row) after a prompt row",
                             out_rows[i]);
    }
    int nt = omp_get_max_threads();
    if (nt > g->att_threads) {
        float *a = alloc3((size_t)nt, (size_t)g->ctx + 2 * (size_t)g->HS, 1);
        if (!a) return base_fail(e, BASE_ENOMEM, "out of memory for attention scores");
        free(g->att);
        g->att = a;
        g->att_threads = nt;
    }
    /* Runs: maximal groups of rows of one slot at consecutive positions (a prefill chunk is
     * one run), for the position-dependent kernels (learned positions, RoPE). */
    int nr = 0;
    for (int i = 0; i < n; i++) {
        if (nr && slots[i] == slots[i - 1] && pos[i] == pos[i - 1] + 1)
            g->run_len[nr - 1]++;
        else
            g->run_start[nr] = i, g->run_len[nr] = 1, nr++;
    }
    /* the rows of each adapter in use, grouped (an adapter's products run once over its rows) */
    g->n_grp = 0;
    if (g->n_lora) {
        for (int i = 0; i < n; i++) { /* the adapters, in the order of their first rows */
            const infer_lora *a = g->slot_lora[slots[i]];
            int j = 0;
            while (a && j < g->n_grp && g->grp[j] != a) j++;
            if (a && j == g->n_grp) g->grp[g->n_grp++] = a;
        }
        int at = 0;
        for (int j = 0; j < g->n_grp; j++) { /* then each one's rows (a few adapters at most) */
            g->grp_off[j] = at;
            for (int i = 0; i < n; i++)
                if (g->slot_lora[slots[i]] == g->grp[j]) g->grp_rows[at++] = i;
        }
        g->grp_off[g->n_grp] = at;
    }
    const infer_weights *W = g->w;
    for (int i = 0; i < n; i++) { /* the embedding: one row of wte in its type, + wpe */
        float *x = g->x + (size_t)i * C;
        quant_dequantize_row(W->wte.type,
                             (const uint8_t *)W->wte.data + (size_t)g->tok[i] * W->wte.row_bytes, x,
                             (size_t)C);
        if (W->wpe)
            for (int c = 0; c < C; c++) x[c] += W->wpe[(size_t)pos[i] * C + c];
        if (W->hp.emb_scale > 0)
            for (int c = 0; c < C; c++) x[c] *= W->hp.emb_scale;
    }
    size_t head_stride = (size_t)g->ctx * HS, layer_stride = (size_t)g->S * NKV * head_stride;
    for (int l = 0; l < g->c.n_layer; l++) {
        const infer_layer *w = &W->layers[l];
        norm(g, g->ln, g->x, w->ln1w, w->ln1b, n);
        linear(g, g->qkv, g->ln, &w->qkv, n);
        if (g->n_grp) lora_apply(g, l, 0, g->qkv, Q, g->ln);
        if (W->hp.rope) /* q and k heads are adjacent: rotate NH + NKV heads */
            for (int k = 0; k < nr; k++) {
                int r0 = g->run_start[k];
                tensor_rope_fwd(g->qkv + (size_t)r0 * Q, 1, g->run_len[k], NH + NKV, HS, Q, pos[r0],
                                g->rope_cos, g->rope_sin);
            }
        for (int r = 0; r < n; r++) /* keys and values into the cache */
            for (int h = 0; h < NKV; h++) {
                size_t at = (size_t)l * layer_stride + ((size_t)slots[r] * NKV + h) * head_stride +
                            (size_t)pos[r] * HS;
                const float *row = g->qkv + (size_t)r * Q;
                if (g->kv == INFER_KV_F16) {
                    f32_to_f16_n((uint16_t *)g->kc + at, row + (size_t)(NH + h) * HS, HS);
                    f32_to_f16_n((uint16_t *)g->vc + at, row + (size_t)(NH + NKV + h) * HS, HS);
                } else {
                    memcpy((float *)g->kc + at, row + (size_t)(NH + h) * HS,
                           (size_t)HS * sizeof(float));
                    memcpy((float *)g->vc + at, row + (size_t)(NH + NKV + h) * HS,
                           (size_t)HS * sizeof(float));
                }
            }
        attend(g, l, slots, pos, n);
        linear(g, g->tmp, g->atty, &w->attproj, n);
        if (g->n_grp) lora_apply(g, l, 1, g->tmp, C, g->atty);
        residual_normed(g, w->post_att, n);
        norm(g, g->ln, g->x, w->ln2w, w->ln2b, n);
        linear(g, g->fch, g->ln, &w->fc, n);
        if (g->n_grp) lora_apply(g, l, 2, g->fch, g->FO, g->ln);
        if (W->hp.act == INFER_ACT_SWIGLU)
            tensor_swiglu_fwd(g->fact, g->fch, n, g->F);
        else if (W->hp.act == INFER_ACT_GEGLU)
            geglu_ggml(g->fact, g->fch, n, g->F);
        else
            tensor_gelu_fwd(g->fact, g->fch, (size_t)n * g->F);
        linear(g, g->tmp, g->fact, &w->fcproj, n);
        if (g->n_grp) lora_apply(g, l, 3, g->tmp, C, g->fact);
        residual_normed(g, w->post_ffn, n);
    }
    if (n_out < 1) return BASE_OK;
    /* The head only for the rows whose next token is wanted. */
    for (int i = 0; i < n_out; i++)
        memcpy(g->tmp + (size_t)i * C, g->x + (size_t)out_rows[i] * C, (size_t)C * sizeof(float));
    norm(g, g->ln, g->tmp, W->lnfw, W->lnfb, n_out);
    quant_matmul(logits, g->ln, W->head.data, W->head.type, n_out, V, C, g->qscratch);
    float cap = W->hp.final_softcap;
    if (cap > 0) /* Gemma 2: cap * tanh(logit / cap), as ggml's scale, tanh, scale */
        for (size_t i = 0; i < (size_t)n_out * V; i++)
            logits[i] = tanhf(logits[i] * (1.0f / cap)) * cap;
    return BASE_OK;
}
